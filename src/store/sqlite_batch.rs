//! SQLite: batches and their items.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::batches::*;
use super::*;

fn item_row(r: &Row<'_>) -> rusqlite::Result<BatchItemRow> {
    Ok(BatchItemRow {
        index: r.get(0)?,
        company: r.get(1)?,
        reference: r.get(2)?,
        source: r.get(3)?,
        tipo: r.get(4)?,
        folio: r.get(5)?,
        state: r.get(6)?,
        error: r.get(7)?,
        attempts: r.get(8)?,
        sii_state: r.get(9)?,
        sii_estado: r.get(10)?,
        mnt_total: r.get(11)?,
        totals: r.get(12)?,
    })
}

fn batch_row(r: &Row<'_>) -> rusqlite::Result<BatchRecord> {
    Ok(BatchRecord {
        id: r.get(0)?,
        key_id: r.get(1)?,
        format: r.get(2)?,
        all_or_nothing: r.get(3)?,
        total: r.get(4)?,
        state: r.get(5)?,
        created_at: parse_ts(&r.get::<_, String>(6)?),
        enqueued_at: r.get::<_, Option<String>>(7)?.map(|s| parse_ts(&s)),
        idem_key: r.get(8)?,
        request_hash: r.get(9)?,
    })
}

impl SqliteStore {
    pub async fn create_batch(&self, b: BatchRecord) -> Result<(), StoreError> {
        self.with(move |c| {
            let r = c.execute(
                "INSERT INTO batches (id, key_id, format, all_or_nothing, total, state, created_at, idem_key, request_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    b.id,
                    b.key_id,
                    b.format,
                    b.all_or_nothing,
                    b.total,
                    b.state,
                    ts(b.created_at),
                    b.idem_key,
                    b.request_hash
                ],
            );
            match r {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict("a batch with this Idempotency-Key exists".into()))
                }
                other => other.map(|_| ()).map_err(Into::into),
            }
        })
        .await
    }

    pub async fn add_batch_items(
        &self,
        batch: &str,
        items: Vec<NewBatchItem>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let batch = batch.to_string();
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO batch_items (batch_id, idx, company, reference, source, tipo, payload, state, error, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                let at = ts(now);
                for i in items {
                    let state = if i.error.is_some() { FAILED } else { PENDING };
                    st.execute(params![
                        batch,
                        i.idx,
                        i.company,
                        i.reference,
                        i.source,
                        i.tipo,
                        i.payload,
                        state,
                        i.error,
                        at
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn batch_progress(
        &self,
        batch: &str,
        total: i64,
        enqueued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let batch = batch.to_string();
        self.with(move |c| {
            c.execute(
                "UPDATE batches SET state = 'open', total = ?2, enqueued_at = ?3 WHERE id = ?1",
                params![batch, total, enqueued.map(ts)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete_batch(&self, batch: &str) -> Result<(), StoreError> {
        let batch = batch.to_string();
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM batch_items WHERE batch_id = ?1", params![batch])?;
            tx.execute("DELETE FROM batches WHERE id = ?1", params![batch])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            Ok(c.query_row(&format!("SELECT {BATCH_COLS} FROM batches WHERE id = ?1"), params![id], batch_row)
                .optional()?)
        })
        .await
    }

    pub async fn list_batches(&self, key_id: Option<String>, limit: i64) -> Result<Vec<BatchRecord>, StoreError> {
        self.with(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {BATCH_COLS} FROM batches WHERE ?1 IS NULL OR key_id = ?1 ORDER BY created_at DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![key_id, limit], batch_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn batch_by_idem(&self, key_id: &str, idem_key: &str) -> Result<Option<BatchRecord>, StoreError> {
        let (key_id, idem_key) = (key_id.to_string(), idem_key.to_string());
        self.with(move |c| {
            Ok(c.query_row(
                &format!("SELECT {BATCH_COLS} FROM batches WHERE key_id = ?1 AND idem_key = ?2"),
                params![key_id, idem_key],
                batch_row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn batch_companies(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let mut st = c.prepare("SELECT DISTINCT company FROM batch_items WHERE batch_id = ?1")?;
            let rows = st.query_map(params![id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn batch_counts(&self, id: &str) -> Result<BatchCounts, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = ?1 GROUP BY state")?;
            let items = st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
            let mut st = c.prepare(&format!(
                "SELECT d.state, COUNT(*) FROM {ITEM_JOIN} WHERE i.batch_id = ?1 AND i.state = 'issued' GROUP BY d.state"
            ))?;
            let documents = st
                .query_map(params![id], |r| Ok((r.get::<_, Option<String>>(0)?.unwrap_or_default(), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BatchCounts { items, documents })
        })
        .await
    }

    pub async fn batch_items(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        problems: bool,
        xml: bool,
    ) -> Result<Vec<(BatchItemRow, Option<Vec<u8>>)>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let filter = if problems { "AND i.state IN ('failed', 'dead')" } else { "" };
            let xml_col = if xml { "d.xml" } else { "NULL" };
            let mut st = c.prepare(&format!(
                "SELECT {ITEM_COLS}, {xml_col} FROM {ITEM_JOIN} WHERE i.batch_id = ?1 AND i.idx > ?2 {filter} ORDER BY i.idx LIMIT ?3"
            ))?;
            let rows = st
                .query_map(params![id, after, limit], |r| Ok((item_row(r)?, r.get::<_, Option<Vec<u8>>>(13)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn batch_item(&self, id: &str, idx: i64) -> Result<Option<(BatchItemRow, Option<String>)>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                &format!("SELECT {ITEM_COLS}, i.payload FROM {ITEM_JOIN} WHERE i.batch_id = ?1 AND i.idx = ?2"),
                params![id, idx],
                |r| Ok((item_row(r)?, r.get(13)?)),
            )
            .optional()?)
        })
        .await
    }

    pub async fn batch_items_at(
        &self,
        id: &str,
        idxs: Vec<i64>,
    ) -> Result<Vec<(BatchItemRow, Option<String>)>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ITEM_COLS}, i.payload FROM {ITEM_JOIN} WHERE i.batch_id = ?1 AND i.idx = ?2"
            ))?;
            let mut out = Vec::with_capacity(idxs.len());
            for idx in idxs {
                if let Some(r) = st.query_row(params![id, idx], |r| Ok((item_row(r)?, r.get(13)?))).optional()? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn settle_batch_items(
        &self,
        id: &str,
        outcomes: Vec<(i64, &'static str, Option<i64>, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE batch_items SET state = ?3, folio = COALESCE(?4, folio), error = ?5, updated_at = ?6,
                       attempts = attempts + 1 WHERE batch_id = ?1 AND idx = ?2 AND state <> 'issued'",
                )?;
                let at = ts(now);
                for (idx, state, folio, error) in &outcomes {
                    st.execute(params![id, idx, state, folio, error, at])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn set_batch_item(
        &self,
        id: &str,
        idx: i64,
        state: &str,
        folio: Option<i64>,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, state) = (id.to_string(), state.to_string());
        self.with(move |c| {
            // A failed attempt that stays pending counts as an attempt; a replay starts afresh.
            let n = c.execute(
                "UPDATE batch_items SET state = ?3, folio = COALESCE(?4, folio), error = ?5, updated_at = ?6,
                   attempts = CASE WHEN ?3 = 'pending' AND ?5 IS NULL THEN 0 ELSE attempts + 1 END
                 WHERE batch_id = ?1 AND idx = ?2 AND state <> 'issued'",
                params![id, idx, state, folio, error, ts(now)],
            )?;
            if n == 1 && state == PENDING {
                c.execute("UPDATE batches SET state = 'open' WHERE id = ?1 AND state = 'done'", params![id])?;
            }
            Ok(n == 1)
        })
        .await
    }

    pub async fn batch_backlog(&self, which: Backlog) -> Result<Vec<BacklogItem>, StoreError> {
        self.with(move |c| {
            let (filter, at) = match which {
                Backlog::All => ("i.state IN ('pending', 'dead')", None),
                Backlog::Unqueued(t) => ("i.state = 'pending' AND b.enqueued_at IS NULL AND b.created_at < ?1", Some(t)),
                Backlog::Stale(t) => ("i.state = 'pending' AND i.updated_at < ?1", Some(t)),
                Backlog::Dead => ("i.state = 'dead'", None),
            };
            let mut st = c.prepare(&format!(
                "SELECT i.batch_id, i.idx, i.state, i.error, i.attempts FROM batch_items i JOIN batches b ON b.id = i.batch_id
                 WHERE b.state <> 'receiving' AND {filter} ORDER BY b.created_at, i.idx"
            ))?;
            let map = |r: &Row<'_>| {
                Ok(BacklogItem {
                    batch: r.get(0)?,
                    idx: r.get(1)?,
                    state: r.get(2)?,
                    error: r.get(3)?,
                    attempts: r.get(4)?,
                })
            };
            let rows = match at {
                Some(t) => st.query_map(params![ts(t)], map)?.collect::<Result<Vec<_>, _>>()?,
                None => st.query_map([], map)?.collect::<Result<Vec<_>, _>>()?,
            };
            Ok(rows)
        })
        .await
    }

    pub async fn drop_unfinished_batches(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(move |c| {
            let n =
                c.execute("DELETE FROM batches WHERE state = 'receiving' AND created_at < ?1", params![ts(before)])?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn oldest_pending_item(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|c| {
            let t: Option<String> =
                c.query_row("SELECT MIN(updated_at) FROM batch_items WHERE state = 'pending'", [], |r| r.get(0))?;
            Ok(t.map(|s| parse_ts(&s)))
        })
        .await
    }
}
