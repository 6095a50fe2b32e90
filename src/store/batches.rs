//! Batches and their items. The store is the truth about every item (pending, issued with its
//! folio, failed, dead); the queue only carries `(batch, index)` pointers to them, so a lost or
//! repeated message can neither lose an item nor issue it twice.

use chrono::{DateTime, Utc};

use super::sql::{args, placeholders, value_rows, Arg, Tx, Vals};
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
pub use crate::domain::{BatchState, ItemState};
pub const PENDING: ItemState = ItemState::Pending;
pub const ISSUED: ItemState = ItemState::Issued;
pub const FAILED: ItemState = ItemState::Failed;
pub const DEAD: ItemState = ItemState::Dead;

#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub key_id: Option<String>,
    /// `json`, `csv` or `zip`.
    pub format: String,
    pub all_or_nothing: bool,
    pub total: i64,
    /// `receiving` while its items are written, `open`, then `done` once no item is pending.
    pub state: BatchState,
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

#[derive(Debug, Clone)]
pub struct BatchItemRow {
    pub index: i64,
    pub company: String,
    pub reference: Option<String>,
    pub source: String,
    pub tipo: Option<i32>,
    pub folio: Option<i64>,
    pub state: ItemState,
    pub error: Option<String>,
    pub attempts: i64,
    /// The document's state once issued: issued, sent, accepted, rejected, …
    pub sii_state: Option<String>,
    pub sii_estado: Option<String>,
    pub mnt_total: Option<i64>,
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
    pub state: ItemState,
    pub error: Option<String>,
    pub attempts: i64,
}

fn batch(r: &Vals) -> Result<BatchRecord, StoreError> {
    Ok(BatchRecord {
        id: r.text(0)?,
        key_id: r.opt(1, Vals::text)?,
        format: r.text(2)?,
        all_or_nothing: r.i64(3)? != 0,
        total: r.i64(4)?,
        state: r.parse(5)?,
        created_at: r.ts(6)?,
        enqueued_at: r.opt(7, Vals::ts)?,
        idem_key: r.opt(8, Vals::text)?,
        request_hash: r.opt(9, Vals::text)?,
    })
}

fn item(r: &Vals) -> Result<BatchItemRow, StoreError> {
    Ok(BatchItemRow {
        index: r.i64(0)?,
        company: r.text(1)?,
        reference: r.opt(2, Vals::text)?,
        source: r.text(3)?,
        tipo: r.opt(4, Vals::i32)?,
        folio: r.opt(5, Vals::i64)?,
        state: r.parse(6)?,
        error: r.opt(7, Vals::text)?,
        attempts: r.i64(8)?,
        sii_state: r.opt(9, Vals::text)?,
        sii_estado: r.opt(10, Vals::text)?,
        mnt_total: r.opt(11, Vals::i64)?,
        totals: r.opt(12, Vals::text)?,
    })
}

impl Store {
    pub async fn create_batch(&self, b: BatchRecord) -> Result<(), StoreError> {
        let r = self
            .exec(
                "INSERT INTO batches (id, key_id, format, all_or_nothing, total, state, created_at, idem_key, request_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                args![b.id, b.key_id, b.format, b.all_or_nothing, b.total, b.state, b.created_at, b.idem_key, b.request_hash],
            )
            .await;
        match r {
            Err(StoreError::Conflict(_)) => {
                Err(StoreError::Conflict("a batch with this Idempotency-Key exists".into()))
            }
            other => other.map(|_| ()),
        }
    }

    /// Writes a chunk of items in one statement (a multi-row `VALUES`, which both backends take).
    pub async fn add_batch_items(
        &self,
        batch: &str,
        items: Vec<NewBatchItem>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut a = args![batch, now];
        let mut rows = Vec::with_capacity(items.len());
        for i in items {
            let state = if i.error.is_some() { FAILED } else { PENDING };
            let n = a.len();
            rows.push(format!("($1, {}, $2)", placeholders(n + 1, 8)));
            a.extend(args![i.idx, i.company, i.reference, i.source, i.tipo, i.payload, state, i.error]);
        }
        self.exec(
            &format!(
                "INSERT INTO batch_items (batch_id, idx, company, reference, source, tipo, payload, state, error, updated_at) VALUES {}",
                rows.join(", ")
            ),
            a,
        )
        .await
        .map(|_| ())
    }

    /// Marks the batch `open` (`total` items written) or, with `enqueued`, queued as well.
    pub async fn batch_progress(
        &self,
        batch: &str,
        total: i64,
        enqueued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE batches SET state = 'open', total = $2, enqueued_at = $3 WHERE id = $1",
            args![batch, total, enqueued],
        )
        .await
        .map(|_| ())
    }

    /// Drops a batch whose intake was refused before anything was queued.
    pub async fn delete_batch(&self, batch: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM batches WHERE id = $1", args![batch]).await.map(|_| ())
    }

    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        self.query_opt(&format!("SELECT {BATCH_COLS} FROM batches WHERE id = $1"), args![id])
            .await?
            .as_ref()
            .map(batch)
            .transpose()
    }

    /// Newest first; only those submitted with `key_id` when given.
    pub async fn list_batches(&self, key_id: Option<String>, limit: i64) -> Result<Vec<BatchRecord>, StoreError> {
        self.query(
            &format!("SELECT {BATCH_COLS} FROM batches WHERE $1::text IS NULL OR key_id = $1 ORDER BY created_at DESC LIMIT $2"),
            args![key_id, limit],
        )
        .await?
        .iter()
        .map(batch)
        .collect()
    }

    /// The batch submitted before with this API key and `Idempotency-Key`.
    pub async fn batch_by_idem(&self, key_id: &str, idem_key: &str) -> Result<Option<BatchRecord>, StoreError> {
        self.query_opt(
            &format!("SELECT {BATCH_COLS} FROM batches WHERE key_id = $1 AND idem_key = $2"),
            args![key_id, idem_key],
        )
        .await?
        .as_ref()
        .map(batch)
        .transpose()
    }

    pub async fn batch_companies(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.query("SELECT DISTINCT company FROM batch_items WHERE batch_id = $1", args![id])
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    pub async fn batch_counts(&self, id: &str) -> Result<BatchCounts, StoreError> {
        let items = self
            .query("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = $1 GROUP BY state", args![id])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.i64(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let documents = self
            .query(
                &format!("SELECT d.state, COUNT(*) FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.state = 'issued' GROUP BY d.state"),
                args![id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.opt(0, Vals::text)?.unwrap_or_default(), r.i64(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(BatchCounts { items, documents })
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
        let filter = if problems { "AND i.state IN ('failed', 'dead')" } else { "" };
        let xml_col = if xml { "d.xml" } else { "NULL::bytea" };
        self.query(
            &format!("SELECT {ITEM_COLS}, {xml_col} FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.idx > $2 {filter} ORDER BY i.idx LIMIT $3"),
            args![id, after, limit],
        )
        .await?
        .iter()
        .map(|r| Ok((item(r)?, r.opt(13, Vals::bytes)?)))
        .collect()
    }

    /// Items `idxs` of batch `id` with their document JSON (absent ones are left out).
    pub async fn batch_items_at(
        &self,
        id: &str,
        idxs: Vec<i64>,
    ) -> Result<Vec<(BatchItemRow, Option<String>)>, StoreError> {
        if idxs.is_empty() {
            return Ok(Vec::new());
        }
        let mut a = args![id];
        a.extend(idxs.iter().map(|i| Arg::from(*i)));
        self.query(
            &format!(
                "SELECT {ITEM_COLS}, i.payload FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.idx IN ({})",
                placeholders(2, idxs.len())
            ),
            a,
        )
        .await?
        .iter()
        .map(|r| Ok((item(r)?, r.opt(13, Vals::text)?)))
        .collect()
    }

    /// Final outcomes of a block of items in one statement: `(idx, state, folio, error)` with state
    /// `issued` or `failed`; an issued item never moves again.
    pub async fn settle_batch_items(
        &self,
        id: &str,
        outcomes: Vec<(i64, ItemState, Option<i64>, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut a = args![id, now];
        let rows = value_rows(3, outcomes.len(), 4, &["::bigint", "::text", "::bigint", "::text"]);
        for (idx, state, folio, error) in outcomes {
            a.extend(args![idx, state, folio, error]);
        }
        self.exec(
            &format!(
                "WITH t(x, s, f, e) AS (VALUES {})
                 UPDATE batch_items SET state = t.s, folio = COALESCE(t.f, batch_items.folio), error = t.e, updated_at = $2,
                   attempts = batch_items.attempts + 1
                 FROM t WHERE batch_items.batch_id = $1 AND batch_items.idx = t.x AND batch_items.state <> 'issued'",
                rows
            ),
            a,
        )
        .await
        .map(|_| ())
    }

    /// Moves an item to `state`; an issued item never moves again. A failed attempt that stays
    /// pending counts as an attempt; a replay (pending, no error) starts afresh.
    pub async fn set_batch_item(
        &self,
        id: &str,
        idx: i64,
        state: ItemState,
        folio: Option<i64>,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(
                "UPDATE batch_items SET state = $3, folio = COALESCE($4, folio), error = $5, updated_at = $6,
                   attempts = CASE WHEN $3 = 'pending' AND $5::text IS NULL THEN 0 ELSE attempts + 1 END
                 WHERE batch_id = $1 AND idx = $2 AND state <> 'issued'",
                args![id, idx, state, folio, error, now],
            )
            .await?;
        if n == 1 && state == PENDING {
            tx.exec("UPDATE batches SET state = 'open' WHERE id = $1 AND state = 'done'", args![id]).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Items of open batches to put back on the queue.
    pub async fn batch_backlog(&self, which: Backlog) -> Result<Vec<BacklogItem>, StoreError> {
        let (filter, a) = match which {
            Backlog::All => ("i.state IN ('pending', 'dead')", args![]),
            Backlog::Unqueued(t) => ("i.state = 'pending' AND b.enqueued_at IS NULL AND b.created_at < $1", args![t]),
            Backlog::Stale(t) => ("i.state = 'pending' AND i.updated_at < $1", args![t]),
            Backlog::Dead => ("i.state = 'dead'", args![]),
        };
        self.query(
            &format!(
                "SELECT i.batch_id, i.idx, i.state, i.error, i.attempts FROM batch_items i JOIN batches b ON b.id = i.batch_id
                 WHERE b.state <> 'receiving' AND {filter} ORDER BY b.created_at, i.idx"
            ),
            a,
        )
        .await?
        .iter()
        .map(|r| {
            Ok(BacklogItem {
                batch: r.text(0)?,
                idx: r.i64(1)?,
                state: r.parse(2)?,
                error: r.opt(3, Vals::text)?,
                attempts: r.i64(4)?,
            })
        })
        .collect()
    }

    /// Batches whose intake began before `before` and never finished (the instance died).
    pub async fn drop_unfinished_batches(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.exec("DELETE FROM batches WHERE state = 'receiving' AND created_at < $1", args![before]).await
    }

    /// When the oldest pending item was last touched.
    pub async fn oldest_pending_item(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.query_opt("SELECT MIN(updated_at) FROM batch_items WHERE state = 'pending'", args![]).await? {
            Some(r) => r.opt(0, Vals::ts),
            None => Ok(None),
        }
    }

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
            tx.rollback().await;
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
