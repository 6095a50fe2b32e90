//! Issued documents to their buyers: deliveries claimed per buyer, the EnvioDTE with its PDFs
//! mailed from the company's mailbox (retried with backoff, then `delivery_failed` with the SMTP
//! reason), the RCV's history of issued 33/34/43 until their window closes, and cedibility.

use chrono::Utc;

use super::{count, mail_outcome, Exchange};
use crate::domain::Rut;
use crate::service::ServiceError;
use crate::telemetry::BUYER_DELIVERIES;

impl Exchange {
    /// Gathers due documents into deliveries and sends one; true when there was work.
    pub async fn deliver_one(&self) -> Result<bool, ServiceError> {
        let claimed = self.svc.claim_buyer_delivery().await?.is_some();
        let Some(d) = self.svc.lease_buyer_delivery(self.cfg.lease).await? else { return Ok(claimed) };
        let now = Utc::now();
        // A failure of the gateway itself (the database, a worker thread) is tried again; one of
        // the documents or the company's material is final.
        let transient = |e: &ServiceError| matches!(e, ServiceError::Internal(_) | ServiceError::SiiUnavailable(_));
        let address = self.svc.buyer_address_for(&d).await;
        let outcome = match address {
            Err(e) => Err((e.to_string(), !transient(&e), None)),
            Ok(None) => Err(("no address".to_string(), true, None)),
            Ok(Some(to)) => match self.svc.buyer_package(&d).await {
                Err(e) => Err((format!("the EnvioDTE could not be built: {e}"), !transient(&e), Some(to))),
                Ok((envelope, pdfs)) => {
                    let company = self.svc.company(&d.company).await.map(|c| c.company.rzn_soc).unwrap_or_default();
                    let folios =
                        d.documents.iter().map(|(_, t, f, _)| format!("T{t}F{f}")).collect::<Vec<_>>().join(", ");
                    let mut files = vec![(format!("EnvioDTE-{}-{}.xml", d.company, d.id), "application/xml", envelope)];
                    files.extend(pdfs.into_iter().map(|(n, b)| (n, "application/pdf", b)));
                    let subject = format!("DTE de {company} ({}): {folios}", d.company);
                    let body = "Documentos tributarios electrónicos emitidos a su empresa: el EnvioDTE firmado y su representación impresa.";
                    match self.send_mail(&d.company, &to, &subject, body, files).await {
                        Ok(id) => Ok((to, id)),
                        Err((e, permanent)) => Err((e, permanent, Some(to))),
                    }
                }
            },
        };
        let (state, to, error, id, next) = match outcome {
            Ok((to, id)) => ("sent", Some(to), None, Some(id), now),
            Err((e, permanent, to)) => {
                let (state, next) = self.after_failure(d.attempts, permanent, now);
                (state, to, Some(e), None, next)
            }
        };
        metrics::counter!(BUYER_DELIVERIES, "outcome" => mail_outcome(state)).increment(1);
        if let Some(e) = &error {
            tracing::warn!(
                company = d.company,
                buyer = d.buyer,
                delivery = d.id,
                error = e,
                state,
                "delivery to the buyer not sent"
            );
        }
        self.svc.buyer_delivery_outcome(&d, state, to.as_deref(), error.as_deref(), id.as_deref(), next).await?;
        Ok(true)
    }

    /// The RCV's history of issued 33/34/43 due for a look; true when any was.
    pub async fn issued_rcv_round(&self) -> Result<bool, ServiceError> {
        let now = Utc::now();
        let due = self.svc.issued_rcv_due(20).await?;
        for (id, company, tipo, folio, created) in &due {
            let Ok(me) = company.parse::<Rut>() else { continue };
            let (t, f) = (*tipo as u16, *folio);
            let op = "listarEventosHistDoc";
            let got = self
                .rcv_call(company, op, move |c, tok| Box::pin(async move { c.eventos(&tok, me, t, f).await }))
                .await;
            // The window closes 8 days after the SII's reception, which is within a day of issue.
            let open = now < *created + chrono::Duration::days(10);
            let next = open.then(|| now + self.cfg.rcv_recheck);
            match got {
                Ok(a) => {
                    count(op, "ok");
                    self.svc.issued_rcv_events(*id, company, *tipo, *folio, &a.events, next).await?;
                }
                Err(e) => {
                    tracing::warn!(company, tipo, folio, error = %e, "no RCV history from the SII");
                    let again = open.then(|| now + chrono::Duration::minutes(5));
                    self.svc.issued_rcv_events(*id, company, *tipo, *folio, &[], again).await?;
                }
            }
        }
        Ok(!due.is_empty())
    }

    /// `consultarDocDteCedible` for an issued document (factoring needs it): cedible for codes 22
    /// (no claim nor receipt yet), 23 (no claims) and 25 (8 days passed).
    pub async fn cedible(&self, company: &str, tipo: i32, folio: i64) -> Result<serde_json::Value, ServiceError> {
        self.svc.document_exchange(company, tipo, folio).await?;
        let me: Rut =
            company.parse().map_err(|e: crate::domain::rut::RutError| ServiceError::BadRequest(e.to_string()))?;
        let op = "consultarDocDteCedible";
        let a = self
            .rcv_call(company, op, move |c, t| Box::pin(async move { c.cedible(&t, me, tipo as u16, folio).await }))
            .await?;
        count(op, "ok");
        let description =
            if a.desc.is_empty() { crate::exchange::rcv::cod_resp_description(a.cod).to_string() } else { a.desc };
        Ok(serde_json::json!({"cedible": matches!(a.cod, 22 | 23 | 25), "code": a.cod, "description": description}))
    }
}
