//! Batches: intake into the store and the queue, progress, dead letters. Intake reads the spooled
//! upload twice — once to check it whole (nothing is written for a refused file), once to write its
//! items in chunks — so memory stays bounded whatever its size.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Seek;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::intake::{self, Format, RawItem, MAX_ERRORS};
use crate::error::FieldError;
use crate::queue::{Queue, QueueError};
use crate::service::{Service, ServiceError};
use crate::store::batches::{
    BatchItemRow, BatchRecord, BatchState, ItemState, NewBatchItem, DEAD, FAILED, ISSUED, PENDING,
};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the upload cannot be read as a {0} batch")]
    Malformed(&'static str, Vec<FieldError>),
    #[error("all_or_nothing: {} item(s) are invalid, nothing was queued", .0.len())]
    Rejected(Vec<FieldError>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Service(e.into())
    }
}

impl From<QueueError> for BatchError {
    fn from(e: QueueError) -> Self {
        BatchError::Service(ServiceError::Internal(e.to_string()))
    }
}

type Result<T> = std::result::Result<T, BatchError>;

/// Who submits or reads: the API key's id and the company it is bound to, if any.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub key_id: Option<String>,
    pub company: Option<String>,
    /// The submitting request's id: it goes with every item, into the workers' logs.
    pub request_id: Option<String>,
    /// `Idempotency-Key` and the SHA-256 of the upload: the same key and upload get the first
    /// batch back instead of a second one.
    pub idempotency: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Concurrent issuers per instance; 0 takes batches in but issues nothing here.
    pub workers: usize,
    /// How long a taken item may stay unacknowledged before another consumer takes it over.
    pub visibility: Duration,
    /// Deliveries before an item goes to the dead letters.
    pub max_deliveries: u64,
    /// Pending items older than this that the queue does not hold are queued again.
    pub requeue_after: Duration,
}

/// The queue's message: a pointer to the item in the store.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ItemRef {
    pub b: String,
    pub i: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<String>,
    /// The submitting request's W3C trace context: the item's issuance joins its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
}

pub(super) fn message(batch: &str, idx: i64, request_id: Option<&str>, traceparent: Option<&str>) -> Vec<u8> {
    let r = ItemRef { b: batch.into(), i: idx, r: request_id.map(String::from), t: traceparent.map(String::from) };
    serde_json::to_vec(&r).unwrap_or_default()
}

/// One item of a batch as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    pub index: i64,
    pub company: String,
    pub reference: Option<String>,
    pub source: String,
    #[serde(rename = "TipoDTE")]
    pub tipo: Option<i32>,
    #[serde(rename = "Folio")]
    pub folio: Option<i64>,
    pub state: ItemState,
    pub error: Option<String>,
    pub attempts: i64,
    /// The document's state once issued: issued, sent, accepted, rejected, …
    pub sii_state: Option<String>,
    pub sii_estado: Option<String>,
    #[serde(rename = "MntTotal")]
    pub mnt_total: Option<i64>,
    #[serde(skip)]
    pub totals: Option<String>,
}

impl From<BatchItemRow> for BatchItem {
    fn from(r: BatchItemRow) -> BatchItem {
        BatchItem {
            index: r.index,
            company: r.company,
            reference: r.reference,
            source: r.source,
            tipo: r.tipo,
            folio: r.folio,
            state: r.state,
            error: r.error,
            attempts: r.attempts,
            sii_state: r.sii_state,
            sii_estado: r.sii_estado,
            mnt_total: r.mnt_total,
            totals: r.totals,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatus {
    pub id: String,
    pub format: String,
    /// `receiving`, `issuing` (items pending), `sending` (waiting for SII verdicts) or `complete`.
    pub state: String,
    pub complete: bool,
    pub all_or_nothing: bool,
    pub created_at: DateTime<Utc>,
    pub total: i64,
    /// Items by state: pending, issued, failed, dead.
    pub items: BTreeMap<String, i64>,
    /// Issued documents by state: issued (not yet sent), sent, accepted, rejected.
    pub documents: BTreeMap<String, i64>,
    /// The first failed or dead items, with their errors.
    pub errors: Vec<BatchItem>,
    pub links: BTreeMap<String, String>,
}

/// A batch in a list: what it was, without its counts (`links.self` has them).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSummary {
    pub id: String,
    pub format: String,
    /// `receiving`, `open` or `done`.
    pub state: BatchState,
    pub total: i64,
    pub all_or_nothing: bool,
    pub created_at: DateTime<Utc>,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub batch: String,
    pub index: i64,
    pub reason: String,
    pub deliveries: u64,
}

pub struct Batches {
    pub(super) svc: Arc<Service>,
    pub(super) queue: Arc<Queue>,
    pub(super) cfg: BatchConfig,
    /// Whether issued documents go on to the SII here (a batch is complete only with verdicts).
    pub(super) tracks_sii: bool,
}

const CHUNK: usize = 500;
const SHOWN_ERRORS: i64 = 100;

fn new_id() -> String {
    let mut b = [0u8; 10];
    let _ = openssl::rand::rand_bytes(&mut b);
    format!("b{}", crate::crypto::hex(&b))
}

fn internal(e: impl std::fmt::Display) -> BatchError {
    BatchError::Service(ServiceError::Internal(e.to_string()))
}

/// What the first pass learned: enough to write the items without checking the valid ones again.
struct Survey {
    items: usize,
    /// Each item's TipoDTE when it passed the rules and taxes.
    tipos: Vec<Option<i32>>,
    companies: BTreeSet<String>,
    invalid: Vec<FieldError>,
    invalid_count: usize,
}

impl Batches {
    pub fn new(svc: Arc<Service>, queue: Arc<Queue>, cfg: BatchConfig, tracks_sii: bool) -> Batches {
        Batches { svc, queue, cfg, tracks_sii }
    }

    pub fn queue_mode(&self) -> &'static str {
        match *self.queue {
            Queue::Memory(_) => "memory",
            Queue::Redis(_) => "redis",
        }
    }

    pub async fn queue_depth(&self) -> std::result::Result<u64, QueueError> {
        self.queue.depth().await
    }

    /// The batch an earlier request with the same `Idempotency-Key` made, if any.
    async fn earlier(&self, caller: &Caller) -> Result<Option<BatchStatus>> {
        let (Some(key_id), Some((key, hash))) = (&caller.key_id, &caller.idempotency) else { return Ok(None) };
        match self.svc.store.batch_by_idem(key_id, key).await? {
            Some(b) if b.request_hash.as_deref() != Some(hash.as_str()) => {
                Err(ServiceError::IdempotencyMismatch.into())
            }
            Some(b) => Ok(Some(self.status(&b.id, caller).await?)),
            None => Ok(None),
        }
    }

    /// Checks the spooled upload, writes its items and queues the valid ones. True with a batch an
    /// earlier request with the same `Idempotency-Key` made.
    pub async fn submit(
        &self,
        mut upload: std::fs::File,
        format: Format,
        all_or_nothing: bool,
        caller: &Caller,
    ) -> Result<(BatchStatus, bool)> {
        if let Some(b) = self.earlier(caller).await? {
            return Ok((b, true));
        }
        let taxes = self.svc.taxes.clone();
        let uf = self.svc.uf_pesos;
        let today = Local::now().date_naive();
        let (upload, structural, survey) = tokio::task::spawn_blocking(move || {
            let mut s =
                Survey { items: 0, tipos: Vec::new(), companies: BTreeSet::new(), invalid: vec![], invalid_count: 0 };
            let _ = upload.rewind();
            let errors = intake::scan(&upload, format, |item: RawItem| {
                s.items += 1;
                if !item.company.is_empty() {
                    s.companies.insert(item.company.clone());
                }
                match intake::check(&item, &taxes, uf, today) {
                    Ok((tipo, _)) => s.tipos.push(Some(tipo)),
                    Err(e) => {
                        s.tipos.push(None);
                        s.invalid_count += 1;
                        if s.invalid.len() < MAX_ERRORS {
                            s.invalid.push(FieldError::new(item.source.clone(), "invalid-item", e));
                        }
                    }
                }
            });
            (upload, errors, s)
        })
        .await
        .map_err(internal)?;
        if !structural.is_empty() {
            return Err(BatchError::Malformed(format.name(), structural));
        }
        if survey.items == 0 {
            return Err(BatchError::Malformed(format.name(), vec![FieldError::new("upload", "empty", "no items")]));
        }
        let mut known = HashSet::new();
        let mut unknown = Vec::new();
        for c in &survey.companies {
            if caller.company.as_ref().is_some_and(|bound| bound != c) {
                return Err(ServiceError::Forbidden(format!("this API key may not issue for {c}")).into());
            }
            match self.svc.company(c).await {
                Ok(_) => {
                    known.insert(c.clone());
                }
                Err(ServiceError::NotFound(_)) => {
                    unknown.push(FieldError::new(c.clone(), "unknown-company", "no such company"))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if all_or_nothing && (survey.invalid_count > 0 || !unknown.is_empty()) {
            let mut errs = unknown;
            errs.extend(survey.invalid);
            return Err(BatchError::Rejected(errs));
        }

        let id = new_id();
        let now = Utc::now();
        let created = self
            .svc
            .store
            .create_batch(BatchRecord {
                id: id.clone(),
                key_id: caller.key_id.clone(),
                format: format.name().into(),
                all_or_nothing,
                total: survey.items as i64,
                state: BatchState::Receiving,
                created_at: now,
                enqueued_at: None,
                idem_key: caller.idempotency.as_ref().map(|i| i.0.clone()),
                request_hash: caller.idempotency.as_ref().map(|i| i.1.clone()),
            })
            .await;
        match created {
            // A twin request with the same key got there first.
            Err(StoreError::Conflict(_)) => {
                if let Some(b) = self.earlier(caller).await? {
                    return Ok((b, true));
                }
                return Err(ServiceError::Conflict("a batch with this Idempotency-Key exists".into()).into());
            }
            other => other?,
        }
        match self.write_items(&id, upload, format, known, survey.tipos, now).await {
            Ok(pending) => {
                self.svc.store.batch_progress(&id, survey.items as i64, None).await?;
                // The items are stored: if the queue fails now, the recovery loop queues them later,
                // and the client must not send the batch again.
                let mut queued = true;
                let trace = crate::otel::traceparent();
                for chunk in pending.chunks(5000) {
                    let msgs: Vec<Vec<u8>> = chunk
                        .iter()
                        .map(|idx| message(&id, *idx, caller.request_id.as_deref(), trace.as_deref()))
                        .collect();
                    if let Err(e) = self.queue.push_many(&msgs).await {
                        tracing::warn!(batch = %id, error = %e, "batch stored; it will be queued when the queue is back");
                        queued = false;
                        break;
                    }
                }
                if queued {
                    self.svc.store.batch_progress(&id, survey.items as i64, Some(Utc::now())).await?;
                }
                // Every item failed at intake: nothing will finish it later.
                self.finish(&id).await;
                tracing::info!(batch = %id, items = survey.items, invalid = survey.invalid_count, "batch queued");
                Ok((self.status(&id, caller).await?, false))
            }
            Err(e) => {
                let _ = self.svc.store.delete_batch(&id).await;
                Err(e)
            }
        }
    }

    /// The second pass: items go to the store in chunks; returns the indexes to queue.
    async fn write_items(
        &self,
        id: &str,
        mut upload: std::fs::File,
        format: Format,
        known: HashSet<String>,
        tipos: Vec<Option<i32>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<NewBatchItem>>(2);
        let taxes = self.svc.taxes.clone();
        let uf = self.svc.uf_pesos;
        let today = Local::now().date_naive();
        let reader = tokio::task::spawn_blocking(move || {
            let _ = upload.rewind();
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut idx = 0i64;
            intake::scan(&upload, format, |item| {
                let tipo = tipos.get(idx as usize).copied().flatten();
                let checked = match (known.contains(&item.company), tipo, &item.document) {
                    (false, ..) => Err(format!("company {:?} not found", item.company)),
                    (true, Some(t), Ok(doc)) => Ok((t, doc.to_string())),
                    // Only the invalid ones are checked again, for their error.
                    (true, ..) => intake::check(&item, &taxes, uf, today),
                };
                let (tipo, payload, error) = match checked {
                    Ok((t, p)) => (Some(t), Some(p), None),
                    Err(e) => (None, None, Some(e)),
                };
                chunk.push(NewBatchItem {
                    idx,
                    company: item.company,
                    reference: item.reference,
                    source: item.source,
                    tipo,
                    payload,
                    error,
                });
                idx += 1;
                if chunk.len() == CHUNK && !tx.is_closed() {
                    let _ = tx.blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
                }
            });
            if !chunk.is_empty() {
                let _ = tx.blocking_send(chunk);
            }
        });
        let mut pending = Vec::new();
        while let Some(chunk) = rx.recv().await {
            pending.extend(chunk.iter().filter(|i| i.error.is_none()).map(|i| i.idx));
            self.svc.store.add_batch_items(id, chunk, now).await?;
        }
        reader.await.map_err(internal)?;
        Ok(pending)
    }

    /// The batch, if the caller may see it: a key bound to a company sees only its own batches.
    pub async fn get(&self, id: &str, caller: &Caller) -> Result<BatchRecord> {
        let not_found = || BatchError::Service(ServiceError::NotFound(format!("batch {id}")));
        let b = self.svc.store.get_batch(id).await?.ok_or_else(not_found)?;
        if let Some(bound) = &caller.company {
            if self.svc.store.batch_companies(id).await?.iter().any(|c| c != bound) {
                return Err(not_found());
            }
        }
        Ok(b)
    }

    pub async fn status(&self, id: &str, caller: &Caller) -> Result<BatchStatus> {
        let b = self.get(id, caller).await?;
        self.status_of(b).await
    }

    /// The status again, for a caller already let in by [`Batches::get`] (the event stream polls
    /// this without repeating the access check).
    pub async fn poll(&self, id: &str) -> Result<BatchStatus> {
        let b = self.svc.store.get_batch(id).await?;
        self.status_of(b.ok_or_else(|| BatchError::Service(ServiceError::NotFound(format!("batch {id}"))))?).await
    }

    async fn status_of(&self, b: BatchRecord) -> Result<BatchStatus> {
        let id = b.id.as_str();
        let counts = self.svc.store.batch_counts(id).await?;
        let mut items: BTreeMap<String, i64> =
            [PENDING, ISSUED, FAILED, DEAD].iter().map(|s| (s.to_string(), 0)).collect();
        items.extend(counts.items);
        let documents: BTreeMap<String, i64> = counts.documents.into_iter().collect();
        let errors = self
            .svc
            .store
            .batch_items(id, -1, SHOWN_ERRORS, true, false)
            .await?
            .into_iter()
            .map(|r| r.0.into())
            .collect();
        let issuing = b.state == BatchState::Receiving || items.get(PENDING.as_str()).copied().unwrap_or(0) > 0;
        let awaiting_sii = self.tracks_sii && documents.iter().any(|(s, n)| *n > 0 && (s == "issued" || s == "sent"));
        let state = if b.state == BatchState::Receiving {
            "receiving"
        } else if issuing {
            "issuing"
        } else if awaiting_sii {
            "sending"
        } else {
            "complete"
        };
        let base = format!("/v1/batches/{id}");
        let links = [
            ("self", base.clone()),
            ("events", format!("{base}/events")),
            ("items", format!("{base}/items")),
            ("results", format!("{base}/results.zip")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(BatchStatus {
            id: b.id,
            format: b.format,
            state: state.into(),
            complete: state == "complete",
            all_or_nothing: b.all_or_nothing,
            created_at: b.created_at,
            total: b.total,
            items,
            documents,
            errors,
            links,
        })
    }

    /// The newest batches: all of them for a gateway admin, else those this key submitted.
    pub async fn list(&self, caller: &Caller, all: bool, limit: i64) -> Result<Vec<BatchSummary>> {
        let key = if all { None } else { caller.key_id.clone() };
        Ok(self
            .svc
            .store
            .list_batches(key, limit.clamp(1, 500))
            .await?
            .into_iter()
            .map(|b| BatchSummary {
                href: format!("/v1/batches/{}", b.id),
                id: b.id,
                format: b.format,
                state: b.state,
                total: b.total,
                all_or_nothing: b.all_or_nothing,
                created_at: b.created_at,
            })
            .collect())
    }

    pub async fn items(
        &self,
        id: &str,
        caller: &Caller,
        after: i64,
        limit: i64,
        problems: bool,
    ) -> Result<Vec<BatchItem>> {
        self.get(id, caller).await?;
        Ok(self
            .svc
            .store
            .batch_items(id, after, limit.clamp(1, 1000), problems, false)
            .await?
            .into_iter()
            .map(|r| r.0.into())
            .collect())
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterView>> {
        Ok(self
            .queue
            .dead_letters()
            .await?
            .into_iter()
            .filter_map(|d| {
                let r: ItemRef = serde_json::from_slice(&d.payload).ok()?;
                Some(DeadLetterView { id: d.id, batch: r.b, index: r.i, reason: d.reason, deliveries: d.deliveries })
            })
            .collect())
    }

    /// Puts dead letters back on the queue (one, or all with `None`); their items become pending.
    pub async fn replay(&self, id: Option<&str>) -> Result<usize> {
        let mut n = 0;
        for d in self.dead_letters().await? {
            if id.is_some_and(|want| want != d.id) {
                continue;
            }
            // Pending before the message is back: a worker seeing a dead item would drop it.
            self.svc.store.set_batch_item(&d.batch, d.index, PENDING, None, None, Utc::now()).await?;
            if self.queue.replay(&d.id).await? {
                n += 1;
            } else {
                self.svc.store.set_batch_item(&d.batch, d.index, DEAD, None, Some(d.reason), Utc::now()).await?;
            }
        }
        if n == 0 {
            if let Some(id) = id {
                return Err(ServiceError::NotFound(format!("dead letter {id}")).into());
            }
        }
        Ok(n)
    }
}
