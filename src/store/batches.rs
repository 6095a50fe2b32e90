//! Batches and their items. The store is the truth about every item (pending, issued with its
//! folio, failed, dead); the queue only carries `(batch, index)` pointers to them, so a lost or
//! repeated message can neither lose an item nor issue it twice.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// The columns of a batch row (both backends).
pub(super) const BATCH_COLS: &str =
    "id, key_id, format, all_or_nothing, total, state, created_at, enqueued_at, idem_key, request_hash";

/// The columns of an item row and the join that adds its document's state (both backends).
pub(super) const ITEM_COLS: &str =
    "i.idx, i.company, i.reference, i.source, i.tipo, i.folio, i.state, i.error, i.attempts, \
     d.state, d.sii_estado, d.mnt_total, d.totals";
pub(super) const ITEM_JOIN: &str =
    "batch_items i LEFT JOIN documents d ON d.company = i.company AND d.tipo = i.tipo AND d.folio = i.folio";

/// Item states. `dead`: failed at issuance past the retry limit, in the dead letters until replayed.
pub const PENDING: &str = "pending";
pub const ISSUED: &str = "issued";
pub const FAILED: &str = "failed";
pub const DEAD: &str = "dead";

#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub key_id: Option<String>,
    /// `json`, `csv` or `zip`.
    pub format: String,
    pub all_or_nothing: bool,
    pub total: i64,
    /// `receiving` while its items are written, `open`, then `done` once no item is pending.
    pub state: String,
    pub created_at: DateTime<Utc>,
    /// When every pending item's message was on the queue.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// The client's `Idempotency-Key` (scoped to `key_id`) and the SHA-256 of the upload.
    pub idem_key: Option<String>,
    pub request_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBatchItem {
    pub idx: i64,
    pub company: String,
    pub reference: Option<String>,
    /// Where it came from in the upload: `line 12`, `item 3`, `facturas/a.json`.
    pub source: String,
    pub tipo: Option<i32>,
    /// The document, in the engine's JSON format; absent when it failed at intake.
    pub payload: Option<String>,
    /// Set when the item failed at intake: it is stored as `failed` and never queued.
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItemRow {
    pub index: i64,
    pub company: String,
    pub reference: Option<String>,
    pub source: String,
    #[serde(rename = "TipoDTE")]
    pub tipo: Option<i32>,
    #[serde(rename = "Folio")]
    pub folio: Option<i64>,
    pub state: String,
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

/// Item and document counts of one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchCounts {
    pub items: Vec<(String, i64)>,
    pub documents: Vec<(String, i64)>,
}

/// `(company, state, count)` rows, ordered by company → each company's counts.
pub(super) fn by_company(rows: Vec<(String, String, i64)>) -> Vec<(String, Vec<(String, i64)>)> {
    let mut out: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (company, state, n) in rows {
        match out.last_mut() {
            Some((c, counts)) if *c == company => counts.push((state, n)),
            _ => out.push((company, vec![(state, n)])),
        }
    }
    out
}

/// The webhook event of a batch whose items are all processed, for one of its companies.
pub fn batch_event(batch: &str, company: &str, counts: &[(String, i64)], at: DateTime<Utc>) -> String {
    let items: serde_json::Map<String, serde_json::Value> =
        counts.iter().map(|(k, n)| (k.clone(), (*n).into())).collect();
    serde_json::json!({"type": "batch.issued", "batch": batch, "company": company, "items": items, "at": super::ts(at)})
        .to_string()
}

/// Which items of taken batches to put back on the queue.
#[derive(Debug, Clone, Copy)]
pub enum Backlog {
    /// Every pending and dead item (the memory queue, after a restart).
    All,
    /// Pending items of batches never marked queued, created before the time.
    Unqueued(DateTime<Utc>),
    /// Pending items untouched since the time (the queue lost its messages).
    Stale(DateTime<Utc>),
    /// Dead items (to compare with the queue's dead letters).
    Dead,
}

/// A queued item to put back on the queue (after a restart on the memory queue, or when an
/// instance died between writing a batch and queueing it).
#[derive(Debug, Clone)]
pub struct BacklogItem {
    pub batch: String,
    pub idx: i64,
    pub state: String,
    pub error: Option<String>,
    pub attempts: i64,
}

impl Store {
    pub async fn create_batch(&self, b: BatchRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_batch(b).await)
    }
    pub async fn add_batch_items(
        &self,
        batch: &str,
        items: Vec<NewBatchItem>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_batch_items(batch, items, now).await)
    }
    /// Marks the batch `open` (`total` items written) or, with `enqueued`, queued as well.
    pub async fn batch_progress(
        &self,
        batch: &str,
        total: i64,
        enqueued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.batch_progress(batch, total, enqueued).await)
    }
    /// Drops a batch whose intake was refused before anything was queued.
    pub async fn delete_batch(&self, batch: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete_batch(batch).await)
    }
    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        dispatch!(self, s => s.get_batch(id).await)
    }
    /// Newest first; only those submitted with `key_id` when given.
    pub async fn list_batches(&self, key_id: Option<String>, limit: i64) -> Result<Vec<BatchRecord>, StoreError> {
        dispatch!(self, s => s.list_batches(key_id, limit).await)
    }
    /// The batch submitted before with this API key and `Idempotency-Key`.
    pub async fn batch_by_idem(&self, key_id: &str, idem_key: &str) -> Result<Option<BatchRecord>, StoreError> {
        dispatch!(self, s => s.batch_by_idem(key_id, idem_key).await)
    }
    pub async fn batch_companies(&self, id: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.batch_companies(id).await)
    }
    pub async fn batch_counts(&self, id: &str) -> Result<BatchCounts, StoreError> {
        dispatch!(self, s => s.batch_counts(id).await)
    }
    /// Items after index `after`, in order; `problems` keeps only failed and dead ones; `xml` adds
    /// each issued document's signed XML.
    pub async fn batch_items(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        problems: bool,
        xml: bool,
    ) -> Result<Vec<(BatchItemRow, Option<Vec<u8>>)>, StoreError> {
        dispatch!(self, s => s.batch_items(id, after, limit, problems, xml).await)
    }
    /// One item and its document JSON.
    pub async fn batch_item(&self, id: &str, idx: i64) -> Result<Option<(BatchItemRow, Option<String>)>, StoreError> {
        dispatch!(self, s => s.batch_item(id, idx).await)
    }
    /// Items `idxs` of batch `id` with their document JSON (absent ones are left out).
    pub async fn batch_items_at(
        &self,
        id: &str,
        idxs: Vec<i64>,
    ) -> Result<Vec<(BatchItemRow, Option<String>)>, StoreError> {
        dispatch!(self, s => s.batch_items_at(id, idxs).await)
    }
    /// Final outcomes of a block of items in one write: `(idx, state, folio, error)` with state
    /// `issued` or `failed`; an issued item never moves again.
    pub async fn settle_batch_items(
        &self,
        id: &str,
        outcomes: Vec<(i64, &'static str, Option<i64>, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.settle_batch_items(id, outcomes, now).await)
    }
    /// Moves an item to `state`; an issued item never moves again.
    pub async fn set_batch_item(
        &self,
        id: &str,
        idx: i64,
        state: &str,
        folio: Option<i64>,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_batch_item(id, idx, state, folio, error, now).await)
    }
    /// Items of open batches to put back on the queue.
    pub async fn batch_backlog(&self, which: Backlog) -> Result<Vec<BacklogItem>, StoreError> {
        dispatch!(self, s => s.batch_backlog(which).await)
    }
    /// Drops batches whose intake never finished (their instance died while writing them; the
    /// client got no answer). Returns how many.
    pub async fn drop_unfinished_batches(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.drop_unfinished_batches(before).await)
    }
    /// When the oldest pending item was queued.
    pub async fn oldest_pending_item(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        dispatch!(self, s => s.oldest_pending_item().await)
    }
}

impl Store {
    /// Marks the batch done once no item is pending and queues its `batch.issued` event for each
    /// of its companies, in one transaction (so exactly once, whichever worker gets here first).
    pub async fn finish_batch(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        use super::sql::{args, Tx};
        // Most calls find items still pending: a read first, without a transaction.
        let waiting = self
            .query_opt("SELECT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = $1 AND state = 'pending')", args![id])
            .await?
            .map(|r| r.i64(0))
            .transpose()?
            .unwrap_or(0);
        if waiting != 0 {
            return Ok(false);
        }
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(
                "UPDATE batches SET state = 'done' WHERE id = $1 AND state = 'open'
                   AND NOT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = $1 AND state = 'pending')",
                args![id],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        let rows = tx
            .query(
                "SELECT company, state, COUNT(*) FROM batch_items WHERE batch_id = $1 GROUP BY company, state ORDER BY company",
                args![id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.i64(2)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for (company, counts) in by_company(rows) {
            let event = batch_event(id, &company, &counts, now);
            super::sii_ops::enqueue_events(&mut tx, &company, &[event], now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
