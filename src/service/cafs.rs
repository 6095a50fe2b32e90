//! The CAF lifecycle: when a company's folios run out at its recent pace, which folios must be
//! annulled at the SII (those of expired or retired CAFs never used), and retiring a CAF by hand.

use chrono::{Duration, Local, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{CafInfo, Result, Service, ServiceError};
use crate::store::NewAudit;

/// The window the issuing rate is measured over.
pub const RATE_DAYS: i64 = 7;

/// One document type's folios at the recent pace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CafForecast {
    pub tipo: i32,
    /// Folios left in the usable CAFs (not expired, not retired).
    pub folios_left: i64,
    /// Documents issued over the last `RATE_DAYS` days.
    pub issued_last_7_days: i64,
    pub per_day: f64,
    /// Days until the folios run out at that rate (none when nothing was issued).
    pub days_left: Option<f64>,
    pub exhausted_on: Option<NaiveDate>,
    /// The earliest expiry of a usable CAF with folios left (folios not used by then are lost).
    pub expires_first_on: Option<NaiveDate>,
}

/// Folios of an expired or retired CAF that were never used: what the SII's annulment of folios
/// asks for (company, document type, first and last folio).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct UnusedRange {
    pub company: String,
    pub tipo: i32,
    pub desde: i64,
    pub hasta: i64,
    pub folios: i64,
    pub caf_id: i64,
    /// `expired` or `retired`.
    pub reason: String,
}

/// The forecast of one type from its CAFs and the count issued in the window (pure).
pub fn forecast(tipo: i32, cafs: &[CafInfo], issued: i64, today: NaiveDate) -> CafForecast {
    let usable: Vec<&CafInfo> = cafs.iter().filter(|c| c.tipo == tipo && c.usable()).collect();
    let folios_left: i64 = usable.iter().map(|c| c.folios_left).sum();
    let per_day = issued as f64 / RATE_DAYS as f64;
    // Out of folios is out today, whatever the pace; no pace means never at this pace.
    let days_left = if folios_left == 0 { Some(0.0) } else { (per_day > 0.0).then(|| folios_left as f64 / per_day) };
    let exhausted_on = days_left.and_then(|d| today.checked_add_days(chrono::Days::new(d.floor() as u64)));
    let expires_first_on = usable.iter().filter(|c| c.folios_left > 0).filter_map(|c| c.expires_on).min();
    CafForecast { tipo, folios_left, issued_last_7_days: issued, per_day, days_left, exhausted_on, expires_first_on }
}

/// The never-used folios of expired or retired CAFs (pure).
pub fn unused(company: &str, cafs: &[CafInfo]) -> Vec<UnusedRange> {
    cafs.iter()
        .filter(|c| !c.usable() && c.next_folio <= c.hasta)
        .map(|c| UnusedRange {
            company: company.to_string(),
            tipo: c.tipo,
            desde: c.next_folio,
            hasta: c.hasta,
            folios: c.hasta - c.next_folio + 1,
            caf_id: c.id,
            reason: if c.retired { "retired" } else { "expired" }.into(),
        })
        .collect()
}

impl Service {
    /// Every type with a CAF: folios left, the pace of the last week and when they run out.
    pub async fn caf_forecast(&self, rut: &str) -> Result<Vec<CafForecast>> {
        let cafs = self.list_cafs(rut).await?;
        self.caf_forecast_of(rut, &cafs).await
    }

    /// [`Service::caf_forecast`] over CAFs already read (see `list_cafs`).
    pub async fn caf_forecast_of(&self, rut: &str, cafs: &[CafInfo]) -> Result<Vec<CafForecast>> {
        let issued = self.store.issued_since(rut, Utc::now() - Duration::days(RATE_DAYS)).await?;
        let today = Local::now().date_naive();
        let mut tipos: Vec<i32> = cafs.iter().map(|c| c.tipo).collect();
        tipos.sort_unstable();
        tipos.dedup();
        Ok(tipos
            .into_iter()
            .map(|t| forecast(t, cafs, issued.iter().find(|(k, _)| *k == t).map_or(0, |(_, n)| *n), today))
            .collect())
    }

    /// The folios to annul at the SII: those of expired or retired CAFs that were never used.
    pub async fn unused_folios(&self, rut: &str) -> Result<Vec<UnusedRange>> {
        Ok(unused(rut, &self.list_cafs(rut).await?))
    }

    /// Retires a CAF by hand (a lost or replaced range): issuance stops taking its folios.
    pub async fn retire_caf(&self, rut: &str, id: i64, by: &str) -> Result<CafInfo> {
        self.company(rut).await?;
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "caf.retire",
            subject: id.to_string(),
            data: serde_json::json!({"by": by}).to_string(),
        };
        if !self.store.retire_caf(rut, id, audit, Utc::now()).await? {
            return Err(ServiceError::NotFound(format!("unretired CAF {id}")));
        }
        self.list_cafs(rut)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("CAF {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caf(id: i64, tipo: i32, desde: i64, hasta: i64, next: i64, expired: bool, retired: bool) -> CafInfo {
        CafInfo {
            id,
            tipo,
            desde,
            hasta,
            next_folio: next,
            folios_left: (hasta - next + 1).max(0),
            fecha_autorizacion: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            expires_on: NaiveDate::from_ymd_opt(2026, 12, 1),
            expired,
            retired,
            authority: "Test".into(),
        }
    }

    #[test]
    fn pace_projection_and_unused_ranges() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let cafs = [
            caf(1, 33, 1, 100, 51, true, false),
            caf(2, 33, 101, 300, 121, false, false),
            caf(3, 39, 1, 50, 1, false, true),
        ];
        // 14 in a week: 2 a day; 180 usable folios → 90 days.
        let f = forecast(33, &cafs, 14, today);
        assert_eq!((f.folios_left, f.per_day, f.days_left), (180, 2.0, Some(90.0)));
        assert_eq!(f.exhausted_on, NaiveDate::from_ymd_opt(2027, 2, 28));
        assert_eq!(f.expires_first_on, NaiveDate::from_ymd_opt(2026, 12, 1));
        // Type 39's only CAF is retired: no folios, so out today.
        assert_eq!(forecast(39, &cafs, 0, today).days_left, Some(0.0));
        assert_eq!(forecast(39, &[caf(4, 39, 1, 50, 1, false, false)], 0, today).days_left, None);
        let u = unused("76192083-9", &cafs);
        assert_eq!(
            u.iter().map(|r| (r.tipo, r.desde, r.hasta, r.reason.as_str())).collect::<Vec<_>>(),
            vec![(33, 51, 100, "expired"), (39, 1, 50, "retired")]
        );
    }
}
