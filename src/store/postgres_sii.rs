//! PostgreSQL: uploads to the SII, document verdicts and webhook deliveries. Claims and leases use
//! `FOR UPDATE SKIP LOCKED`, so instances share the work without taking the same row.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;

pub(super) async fn enqueue_events(
    tx: &impl GenericClient,
    company: &str,
    events: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO deliveries (webhook_id, event, state, attempts, next_at, created_at)
         SELECT w.id, e, 'pending', 0, $3, $3 FROM webhooks w, unnest($2::TEXT[]) AS e WHERE w.company = $1",
        &[&company, &events, &now],
    )
    .await?;
    Ok(())
}

fn upload_row(r: &Row) -> Result<UploadRow, StoreError> {
    Ok(UploadRow {
        id: r.try_get(0)?,
        company: r.try_get(1)?,
        boleta: r.try_get(2)?,
        state: r.try_get(3)?,
        envelope: r.try_get(4)?,
        track_id: r.try_get(5)?,
        attempts: r.try_get(6)?,
    })
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get(0),
        webhook_id: r.get(1),
        url: r.get(2),
        secret: r.get(3),
        event: r.get(4),
        state: r.get(5),
        attempts: r.get(6),
        last_status: r.get(7),
    }
}

impl PgStore {
    pub async fn claim_upload(
        &self,
        max: i64,
        older_than: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let group = tx
            .query_opt(
                "SELECT company, tipo IN (39, 41) AS boleta FROM documents WHERE state = 'issued' AND upload_id IS NULL
                 GROUP BY company, boleta HAVING COUNT(*) >= $1 OR MIN(created_at) <= $2 ORDER BY MIN(created_at) LIMIT 1",
                &[&max, &older_than],
            )
            .await?;
        let Some(group) = group else { return Ok(None) };
        let (company, boleta): (String, bool) = (group.get(0), group.get(1));
        let docs = tx
            .query(
                "SELECT id FROM documents WHERE company = $1 AND (tipo IN (39, 41)) = $2 AND state = 'issued' AND upload_id IS NULL
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&company, &boleta, &max],
            )
            .await?;
        if docs.is_empty() {
            return Ok(None);
        }
        let ids: Vec<i64> = docs.iter().map(|r| r.get(0)).collect();
        let id: i64 = tx
            .query_one("INSERT INTO uploads (company, boleta, state, attempts, next_at, created_at) VALUES ($1, $2, 'new', 0, $3, $3) RETURNING id", &[&company, &boleta, &now])
            .await?
            .get(0);
        tx.execute("UPDATE documents SET upload_id = $1 WHERE id = ANY($2)", &[&id, &ids]).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn upload_documents(&self, upload: i64) -> Result<Vec<(i32, i64, Vec<u8>)>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query("SELECT tipo, folio, xml FROM documents WHERE upload_id = $1 ORDER BY tipo, folio", &[&upload])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub async fn lease_upload(
        &self,
        states: Vec<String>,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<UploadRow>, StoreError> {
        let c = self.pool.get().await?;
        let until = now + lease;
        let row = c
            .query_opt(
                "UPDATE uploads SET lease_until = $3 WHERE id = (SELECT id FROM uploads WHERE state = ANY($1) AND next_at <= $2
                 AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, company, boleta, state, envelope, track_id, attempts::BIGINT",
                &[&states, &now, &until],
            )
            .await?;
        row.as_ref().map(upload_row).transpose()
    }

    pub async fn upload_sent(
        &self,
        id: i64,
        envelope: Vec<u8>,
        track_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE uploads SET state = 'sent', envelope = $2, track_id = $3, attempts = attempts + 1, next_at = $4, lease_until = NULL, last_error = NULL WHERE id = $1",
            &[&id, &envelope, &track_id, &now],
        )
        .await?;
        let docs = tx.query("UPDATE documents SET state = 'sent', sii_estado = 'REC' WHERE upload_id = $1 RETURNING company, tipo, folio", &[&id]).await?;
        if let Some(first) = docs.first() {
            let company: String = first.get(0);
            let events: Vec<String> = docs
                .iter()
                .map(|r| state_event(r.get(0), r.get(1), r.get(2), "sent", "REC", &format!("TrackID {track_id}"), now))
                .collect();
            enqueue_events(&tx, &company, &events, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn upload_later(
        &self,
        id: i64,
        state: &str,
        envelope: Option<Vec<u8>>,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE uploads SET state = $2, envelope = COALESCE($3, envelope), attempts = attempts + 1, last_error = $4, next_at = $5, lease_until = NULL WHERE id = $1",
            &[&id, &state, &envelope, &error, &next_at],
        )
        .await?;
        Ok(())
    }

    pub async fn upload_final(
        &self,
        id: i64,
        state: &str,
        estado: &str,
        glosa: &str,
        verdicts: Vec<DocVerdict>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let company: String = tx.query_one("UPDATE uploads SET state = $2, estado = $3, glosa = $4, lease_until = NULL WHERE id = $1 RETURNING company", &[&id, &state, &estado, &glosa]).await?.get(0);
        let mut events = Vec::with_capacity(verdicts.len());
        for v in &verdicts {
            tx.execute(
                "UPDATE documents SET state = $4, sii_estado = $5, sii_glosa = $6 WHERE upload_id = $1 AND tipo = $2 AND folio = $3",
                &[&id, &v.tipo, &v.folio, &v.state, &v.estado, &v.glosa],
            )
            .await?;
            events.push(state_event(&company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now));
        }
        enqueue_events(&tx, &company, &events, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_document_sii_state(
        &self,
        company: &str,
        v: DocVerdict,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE documents SET state = $4, sii_estado = $5, sii_glosa = $6 WHERE company = $1 AND tipo = $2 AND folio = $3
                 AND (state <> $4 OR sii_estado IS DISTINCT FROM $5)",
                &[&company, &v.tipo, &v.folio, &v.state, &v.estado, &v.glosa],
            )
            .await?;
        if n > 0 {
            enqueue_events(
                &tx,
                company,
                &[state_event(company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now)],
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_webhook(
        &self,
        company: &str,
        url: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_one(
            "INSERT INTO webhooks (company, url, secret, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&company, &url, &secret, &now],
        )
        .await?
        .get(0))
    }

    pub async fn list_webhooks(&self, company: &str) -> Result<Vec<WebhookRow>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT id, company, url, secret, created_at FROM webhooks WHERE company = $1 ORDER BY id",
                &[&company],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| WebhookRow {
                id: r.get(0),
                company: r.get(1),
                url: r.get(2),
                secret: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    pub async fn lease_delivery(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let c = self.pool.get().await?;
        let until = now + lease;
        let row = c
            .query_opt(
                "WITH d AS (UPDATE deliveries SET lease_until = $2 WHERE id = (SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= $1
                   AND (lease_until IS NULL OR lease_until < $1) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *)
                 SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.state, d.attempts::BIGINT, d.last_status FROM d JOIN webhooks w ON w.id = d.webhook_id",
                &[&now, &until],
            )
            .await?;
        Ok(row.as_ref().map(delivery_row))
    }

    pub async fn delivery_outcome(
        &self,
        id: i64,
        state: &str,
        status: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute("UPDATE deliveries SET state = $2, last_status = $3, attempts = attempts + 1, next_at = $4, lease_until = NULL WHERE id = $1", &[&id, &state, &status, &next_at]).await?;
        Ok(())
    }

    pub async fn list_deliveries(&self, company: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.state, d.attempts::BIGINT, d.last_status FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE w.company = $1 ORDER BY d.id DESC LIMIT $2",
                &[&company, &limit],
            )
            .await?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    pub async fn active_companies(&self, since: DateTime<Utc>) -> Result<Vec<(String, bool)>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query("SELECT DISTINCT company, tipo IN (39, 41) FROM documents WHERE created_at >= $1", &[&since])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn oldest_unsent(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_one("SELECT MIN(created_at) FROM documents WHERE state = 'issued'", &[]).await?.get(0))
    }

    pub async fn document_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query("SELECT state, COUNT(*) FROM documents GROUP BY state ORDER BY state", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
