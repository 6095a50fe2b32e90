//! The SII link's and the webhook deliverer's door to the store: uploads claimed, leased, sent,
//! retried and judged, the documents' verdicts, and webhook deliveries. The workers see the
//! service's types, never the store's rows.

use chrono::{DateTime, Utc};

use super::{Result, Service};
use crate::domain::{DocState, UploadStatus};
use crate::store::{DocVerdict, UploadRow};

/// An upload (one EnvioDTE / EnvioBOLETA) on its way to the SII.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: i64,
    pub company: String,
    pub boleta: bool,
    pub status: UploadStatus,
    pub envelope: Option<Vec<u8>>,
    pub track_id: Option<String>,
    pub attempts: i64,
}

impl From<UploadRow> for Upload {
    fn from(u: UploadRow) -> Upload {
        Upload {
            id: u.id,
            company: u.company,
            boleta: u.boleta,
            status: u.state,
            envelope: u.envelope,
            track_id: u.track_id,
            attempts: u.attempts,
        }
    }
}

/// A document's state after the SII judged it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub tipo: i32,
    pub folio: i64,
    pub state: DocState,
    pub estado: String,
    pub glosa: String,
}

impl From<Verdict> for DocVerdict {
    fn from(v: Verdict) -> DocVerdict {
        DocVerdict { tipo: v.tipo, folio: v.folio, state: v.state, estado: v.estado, glosa: v.glosa }
    }
}

/// A webhook event due for delivery, leased to this instance.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub attempts: i64,
}

impl Service {
    /// Gathers unsent documents of one company and kind into a new upload (see the store's rule).
    pub async fn claim_upload(&self, max: i64, older_than: DateTime<Utc>, now: DateTime<Utc>) -> Result<Option<i64>> {
        Ok(self.store.claim_upload(max, older_than, now).await?)
    }

    /// One upload in one of `states`, due now, leased to this instance for `lease`.
    pub async fn lease_upload(
        &self,
        states: &[UploadStatus],
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<Upload>> {
        Ok(self.store.lease_upload(states, now, lease).await?.map(Upload::from))
    }

    /// The signed DTEs of an upload, `(tipo, folio, xml)` in folio order.
    pub async fn upload_documents(&self, upload: i64) -> Result<Vec<(i32, i64, Vec<u8>)>> {
        Ok(self.store.upload_documents(upload).await?)
    }

    pub async fn upload_sent(&self, id: i64, envelope: Vec<u8>, track_id: &str, next: DateTime<Utc>) -> Result<()> {
        Ok(self.store.upload_sent(id, envelope, track_id, next).await?)
    }

    pub async fn upload_later(
        &self,
        id: i64,
        status: UploadStatus,
        envelope: Option<Vec<u8>>,
        error: &str,
        next: DateTime<Utc>,
    ) -> Result<()> {
        Ok(self.store.upload_later(id, status, envelope, error, next).await?)
    }

    pub async fn upload_final(
        &self,
        id: i64,
        status: UploadStatus,
        estado: &str,
        glosa: &str,
        verdicts: Vec<Verdict>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let verdicts = verdicts.into_iter().map(DocVerdict::from).collect();
        Ok(self.store.upload_final(id, status, estado, glosa, verdicts, now).await?)
    }

    pub async fn set_document_sii_state(&self, company: &str, v: Verdict, now: DateTime<Utc>) -> Result<()> {
        Ok(self.store.set_document_sii_state(company, v.into(), now).await?)
    }

    /// Companies that issued since `since`, with whether they issued boletas.
    pub async fn active_companies(&self, since: DateTime<Utc>) -> Result<Vec<(String, bool)>> {
        Ok(self.store.active_companies(since).await?)
    }

    pub async fn lease_delivery(&self, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Option<DueDelivery>> {
        let Some(d) = self.store.lease_delivery(now, lease).await? else { return Ok(None) };
        Ok(Some(DueDelivery {
            id: d.id,
            secret: self.open_webhook_secret(&d.url, &d.secret)?,
            url: d.url,
            event: d.event,
            attempts: d.attempts,
        }))
    }

    /// The trace an upload continues: its first traced document's.
    pub async fn upload_trace(&self, upload: i64) -> Result<Option<String>> {
        Ok(self.store.upload_trace(upload).await?)
    }

    /// After a delivery attempt: `done`, `pending` again at `next`, or `failed` for good.
    pub async fn delivery_outcome(&self, id: i64, state: &str, status: &str, next: DateTime<Utc>) -> Result<()> {
        Ok(self.store.delivery_outcome(id, state, status, next).await?)
    }
}
