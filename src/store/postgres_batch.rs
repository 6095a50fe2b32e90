//! PostgreSQL: batches and their items.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::batches::*;
use super::*;

fn batch_row(r: &Row) -> BatchRecord {
    BatchRecord {
        id: r.get(0),
        key_id: r.get(1),
        format: r.get(2),
        all_or_nothing: r.get(3),
        total: r.get(4),
        state: r.get(5),
        created_at: r.get(6),
        enqueued_at: r.get(7),
        idem_key: r.get(8),
        request_hash: r.get(9),
    }
}

fn item_row(r: &Row) -> BatchItemRow {
    BatchItemRow {
        index: r.get(0),
        company: r.get(1),
        reference: r.get(2),
        source: r.get(3),
        tipo: r.get(4),
        folio: r.get(5),
        state: r.get(6),
        error: r.get(7),
        attempts: r.get(8),
        sii_state: r.get(9),
        sii_estado: r.get(10),
        mnt_total: r.get(11),
        totals: r.get(12),
    }
}

impl PgStore {
    pub async fn create_batch(&self, b: BatchRecord) -> Result<(), StoreError> {
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO batches (id, key_id, format, all_or_nothing, total, state, created_at, idem_key, request_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&b.id, &b.key_id, &b.format, &b.all_or_nothing, &b.total, &b.state, &b.created_at, &b.idem_key, &b.request_hash],
            )
            .await?;
        Ok(())
    }

    pub async fn add_batch_items(
        &self,
        batch: &str,
        items: Vec<NewBatchItem>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement per chunk: the columns go as arrays and UNNEST turns them into rows.
        let n = items.len();
        let (mut idx, mut company, mut reference, mut source) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut tipo, mut payload, mut state, mut error) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for i in items {
            state.push(if i.error.is_some() { FAILED } else { PENDING }.to_string());
            idx.push(i.idx);
            company.push(i.company);
            reference.push(i.reference);
            source.push(i.source);
            tipo.push(i.tipo);
            payload.push(i.payload);
            error.push(i.error);
        }
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO batch_items (batch_id, idx, company, reference, source, tipo, payload, state, error, updated_at)
                 SELECT $1, u.*, $10 FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[]) AS u",
                &[&batch, &idx, &company, &reference, &source, &tipo, &payload, &state, &error, &now],
            )
            .await?;
        Ok(())
    }

    pub async fn batch_progress(
        &self,
        batch: &str,
        total: i64,
        enqueued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.pool
            .get()
            .await?
            .execute(
                "UPDATE batches SET state = 'open', total = $2, enqueued_at = $3 WHERE id = $1",
                &[&batch, &total, &enqueued],
            )
            .await?;
        Ok(())
    }

    pub async fn delete_batch(&self, batch: &str) -> Result<(), StoreError> {
        self.pool.get().await?.execute("DELETE FROM batches WHERE id = $1", &[&batch]).await?;
        Ok(())
    }

    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(&format!("SELECT {BATCH_COLS} FROM batches WHERE id = $1"), &[&id])
            .await?;
        Ok(row.as_ref().map(batch_row))
    }

    pub async fn batch_by_idem(&self, key_id: &str, idem_key: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                &format!("SELECT {BATCH_COLS} FROM batches WHERE key_id = $1 AND idem_key = $2"),
                &[&key_id, &idem_key],
            )
            .await?;
        Ok(row.as_ref().map(batch_row))
    }

    pub async fn list_batches(&self, key_id: Option<String>, limit: i64) -> Result<Vec<BatchRecord>, StoreError> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {BATCH_COLS} FROM batches WHERE $1::text IS NULL OR key_id = $1 ORDER BY created_at DESC LIMIT $2"
                ),
                &[&key_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(batch_row).collect())
    }

    pub async fn batch_companies(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .pool
            .get()
            .await?
            .query("SELECT DISTINCT company FROM batch_items WHERE batch_id = $1", &[&id])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn batch_counts(&self, id: &str) -> Result<BatchCounts, StoreError> {
        let c = self.pool.get().await?;
        let items =
            c.query("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = $1 GROUP BY state", &[&id]).await?;
        let docs = c
            .query(
                &format!(
                    "SELECT d.state, COUNT(*) FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.state = 'issued' GROUP BY d.state"
                ),
                &[&id],
            )
            .await?;
        Ok(BatchCounts {
            items: items.iter().map(|r| (r.get(0), r.get(1))).collect(),
            documents: docs.iter().map(|r| (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1))).collect(),
        })
    }

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
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {ITEM_COLS}, {xml_col} FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.idx > $2 {filter} ORDER BY i.idx LIMIT $3"
                ),
                &[&id, &after, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| (item_row(r), r.get(13))).collect())
    }

    pub async fn batch_item(&self, id: &str, idx: i64) -> Result<Option<(BatchItemRow, Option<String>)>, StoreError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                &format!("SELECT {ITEM_COLS}, i.payload FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.idx = $2"),
                &[&id, &idx],
            )
            .await?;
        Ok(row.map(|r| (item_row(&r), r.get(13))))
    }

    pub async fn batch_items_at(
        &self,
        id: &str,
        idxs: Vec<i64>,
    ) -> Result<Vec<(BatchItemRow, Option<String>)>, StoreError> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!("SELECT {ITEM_COLS}, i.payload FROM {ITEM_JOIN} WHERE i.batch_id = $1 AND i.idx = ANY($2)"),
                &[&id, &idxs],
            )
            .await?;
        Ok(rows.iter().map(|r| (item_row(r), r.get(13))).collect())
    }

    pub async fn settle_batch_items(
        &self,
        id: &str,
        outcomes: Vec<(i64, &'static str, Option<i64>, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let idx: Vec<i64> = outcomes.iter().map(|o| o.0).collect();
        let states: Vec<&str> = outcomes.iter().map(|o| o.1).collect();
        let folios: Vec<Option<i64>> = outcomes.iter().map(|o| o.2).collect();
        let errors: Vec<Option<&str>> = outcomes.iter().map(|o| o.3.as_deref()).collect();
        self.pool
            .get()
            .await?
            .execute(
                "UPDATE batch_items i SET state = t.s, folio = COALESCE(t.f, i.folio), error = t.e, updated_at = $6,
                   attempts = i.attempts + 1
                 FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS t(x, s, f, e)
                 WHERE i.batch_id = $1 AND i.idx = t.x AND i.state <> 'issued'",
                &[&id, &idx, &states, &folios, &errors, &now],
            )
            .await?;
        Ok(())
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
        let n = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE batch_items SET state = $3, folio = COALESCE($4, folio), error = $5, updated_at = $6,
                   attempts = CASE WHEN $3 = 'pending' AND $5::text IS NULL THEN 0 ELSE attempts + 1 END
                 WHERE batch_id = $1 AND idx = $2 AND state <> 'issued'",
                &[&id, &idx, &state, &folio, &error, &now],
            )
            .await?;
        if n == 1 && state == PENDING {
            self.pool
                .get()
                .await?
                .execute("UPDATE batches SET state = 'open' WHERE id = $1 AND state = 'done'", &[&id])
                .await?;
        }
        Ok(n == 1)
    }

    pub async fn batch_backlog(&self, which: Backlog) -> Result<Vec<BacklogItem>, StoreError> {
        let (filter, at) = match which {
            Backlog::All => ("i.state IN ('pending', 'dead') AND $1::timestamptz IS NULL", None),
            Backlog::Unqueued(t) => ("i.state = 'pending' AND b.enqueued_at IS NULL AND b.created_at < $1", Some(t)),
            Backlog::Stale(t) => ("i.state = 'pending' AND i.updated_at < $1", Some(t)),
            Backlog::Dead => ("i.state = 'dead' AND $1::timestamptz IS NULL", None),
        };
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT i.batch_id, i.idx, i.state, i.error, i.attempts FROM batch_items i JOIN batches b ON b.id = i.batch_id
                     WHERE b.state <> 'receiving' AND {filter} ORDER BY b.created_at, i.idx"
                ),
                &[&at],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| BacklogItem {
                batch: r.get(0),
                idx: r.get(1),
                state: r.get(2),
                error: r.get(3),
                attempts: r.get(4),
            })
            .collect())
    }

    pub async fn drop_unfinished_batches(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .pool
            .get()
            .await?
            .execute("DELETE FROM batches WHERE state = 'receiving' AND created_at < $1", &[&before])
            .await?)
    }

    pub async fn oldest_pending_item(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let r = self
            .pool
            .get()
            .await?
            .query_one("SELECT MIN(updated_at) FROM batch_items WHERE state = 'pending'", &[])
            .await?;
        Ok(r.get(0))
    }
}
