//! Uploads to the SII, the documents' verdicts and webhook deliveries, written once for both
//! backends. Claims and leases run in a write transaction; on PostgreSQL the rows they take are
//! locked `FOR UPDATE SKIP LOCKED`, so instances share the work without taking the same row (on
//! SQLite the transaction's write lock already makes them one at a time).

use chrono::{DateTime, Utc};

use super::ops::append_audit;
use super::sql::{args, placeholders, Arg, Stmt, Tx, Vals};
use super::*;

/// Types that go to their buyers (never boletas).
pub const DELIVERED_TYPES: [i32; 10] = [33, 34, 43, 46, 52, 56, 61, 110, 111, 112];

/// After a verdict, in its transaction: the documents `filter` selects (with `a` as `$1`…) that the
/// SII accepted become due for their buyers (when their company has an SMTP server to send from)
/// and, for 33, 34 and 43, for the RCV's watch.
pub(super) async fn mark_deliverable(
    tx: &mut Tx,
    filter: &str,
    a: Vec<Arg>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let types = DELIVERED_TYPES.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    tx.exec(
        &format!(
            "UPDATE documents SET delivery_state = 'due' WHERE {filter} AND delivery_state IS NULL
             AND state IN ('accepted', 'accepted_with_objections') AND tipo IN ({types}) AND rut_recep <> company
             AND EXISTS (SELECT 1 FROM mailboxes m WHERE m.company = documents.company AND m.smtp_url IS NOT NULL)"
        ),
        a.clone(),
    )
    .await?;
    let n = a.len() + 1;
    let mut with_now = a;
    with_now.push(Arg::from(now));
    tx.exec(
        &format!(
            "UPDATE documents SET rcv_next_at = ${n} WHERE {filter} AND rcv_next_at IS NULL
             AND state IN ('accepted', 'accepted_with_objections') AND tipo IN (33, 34, 43)"
        ),
        with_now,
    )
    .await?;
    Ok(())
}

pub(super) fn skip_locked(tx: &Tx) -> &'static str {
    if tx.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

/// Queues `events` for every webhook of `company`, in the caller's transaction.
pub(super) async fn enqueue_events(
    tx: &mut Tx,
    company: &str,
    events: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if events.is_empty()
        || tx
            .query("SELECT id FROM webhooks WHERE company = $1 AND deleted_at IS NULL", args![company])
            .await?
            .is_empty()
    {
        return Ok(());
    }
    for e in events {
        tx.exec(
            "INSERT INTO deliveries (webhook_id, event, state, attempts, next_at, created_at)
             SELECT id, $2, 'pending', 0, $3, $3 FROM webhooks WHERE company = $1 AND deleted_at IS NULL",
            args![company, e.as_str(), now],
        )
        .await?;
    }
    Ok(())
}

fn upload(r: &Vals) -> Result<UploadRow, StoreError> {
    Ok(UploadRow {
        id: r.i64(0)?,
        company: r.text(1)?,
        boleta: r.i64(2)? != 0,
        state: r.parse(3)?,
        envelope: r.opt(4, Vals::bytes)?,
        track_id: r.opt(5, Vals::text)?,
        attempts: r.i64(6)?,
    })
}

fn delivery(r: &Vals) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.i64(0)?,
        webhook_id: r.i64(1)?,
        url: r.text(2)?,
        secret: r.text(3)?,
        event: r.text(4)?,
        state: r.text(5)?,
        attempts: r.i64(6)?,
        last_status: r.opt(7, Vals::text)?,
    })
}

const DELIVERY_COLS: &str = "d.id, d.webhook_id, w.url, w.secret, d.event, d.state, d.attempts, d.last_status";

impl Store {
    /// Claims up to `max` unsent documents of one company and kind (boletas apart) into a new
    /// upload, when there are `max` of them or the oldest is older than `older_than`. A document is
    /// claimed by one upload only, whatever the number of instances.
    pub async fn claim_upload(
        &self,
        max: i64,
        older_than: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let Some(group) = tx
            .query_opt(
                "SELECT company, tipo IN (39, 41) AS boleta FROM documents WHERE state = 'issued' AND upload_id IS NULL
                 GROUP BY company, boleta HAVING COUNT(*) >= $1 OR MIN(created_at) <= $2 ORDER BY MIN(created_at) LIMIT 1",
                args![max, older_than],
            )
            .await?
        else {
            tx.rollback().await;
            return Ok(None);
        };
        let (company, boleta) = (group.text(0)?, group.i64(1)? != 0);
        let lock = skip_locked(&tx);
        let ids: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT id FROM documents WHERE company = $1 AND (tipo IN (39, 41)) = $2 AND state = 'issued' AND upload_id IS NULL
                     ORDER BY id LIMIT $3{lock}"
                ),
                args![company.as_str(), boleta, max],
            )
            .await?
            .iter()
            .map(|r| r.i64(0))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.rollback().await;
            return Ok(None);
        }
        let id = tx
            .query_opt(
                "INSERT INTO uploads (company, boleta, state, attempts, next_at, created_at) VALUES ($1, $2, 'new', 0, $3, $3) RETURNING id",
                args![company.as_str(), boleta, now],
            )
            .await?
            .ok_or_else(|| StoreError::Db("no id for the new upload".into()))?
            .i64(0)?;
        let mut a = args![id];
        a.extend(ids.iter().map(|i| Arg::from(*i)));
        tx.exec(&format!("UPDATE documents SET upload_id = $1 WHERE id IN ({})", placeholders(2, ids.len())), a)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The signed DTEs of an upload, in folio order.
    pub async fn upload_documents(&self, upload: i64) -> Result<Vec<(i32, i64, Vec<u8>)>, StoreError> {
        self.query("SELECT tipo, folio, xml FROM documents WHERE upload_id = $1 ORDER BY tipo, folio", args![upload])
            .await?
            .iter()
            .map(|r| Ok((r.i32(0)?, r.i64(1)?, r.bytes(2)?)))
            .collect()
    }

    /// Leases one upload due for sending (`new`/`pending`) or tracking (`sent`) for `lease`.
    pub async fn lease_upload(
        &self,
        states: &[UploadStatus],
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<UploadRow>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let lock = skip_locked(&tx);
        let mut a = args![now];
        a.extend(states.iter().map(|s| Arg::from(s.as_str())));
        let row = tx
            .query_opt(
                &format!(
                    "SELECT id, company, boleta, state, envelope, track_id, attempts FROM uploads WHERE state IN ({}) AND next_at <= $1
                     AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_at LIMIT 1{lock}",
                    placeholders(2, states.len())
                ),
                a,
            )
            .await?;
        let Some(row) = row else {
            // The usual idle poll: end cleanly so the connection goes back to the pool.
            tx.rollback().await;
            return Ok(None);
        };
        let u = upload(&row)?;
        tx.exec("UPDATE uploads SET lease_until = $1 WHERE id = $2", args![now + lease, u.id]).await?;
        tx.commit().await?;
        Ok(Some(u))
    }

    /// Received by the SII: the TrackID, and its documents become `sent`.
    pub async fn upload_sent(
        &self,
        id: i64,
        envelope: Vec<u8>,
        track_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "UPDATE uploads SET state = 'sent', envelope = $2, track_id = $3, attempts = attempts + 1, next_at = $4, lease_until = NULL, last_error = NULL WHERE id = $1",
            args![id, envelope, track_id, now],
        )
        .await?;
        let docs = tx
            .query(
                "UPDATE documents SET state = 'sent', sii_estado = 'REC' WHERE upload_id = $1 RETURNING company, tipo, folio",
                args![id],
            )
            .await?;
        if let Some(first) = docs.first() {
            let company = first.text(0)?;
            let glosa = format!("TrackID {track_id}");
            let events = docs
                .iter()
                .map(|r| Ok(state_event(&company, r.i32(1)?, r.i64(2)?, DocState::Sent.as_str(), "REC", &glosa, now)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            enqueue_events(&mut tx, &company, &events, now).await?;
        }
        tx.commit().await
    }

    /// Try again at `next_at` (sending, or tracking when `state` is `sent`).
    pub async fn upload_later(
        &self,
        id: i64,
        state: UploadStatus,
        envelope: Option<Vec<u8>>,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE uploads SET state = $2, envelope = COALESCE($3, envelope), attempts = attempts + 1, last_error = $4, next_at = $5, lease_until = NULL WHERE id = $1",
            args![id, state.as_str(), envelope, error, next_at],
        )
        .await
        .map(|_| ())
    }

    /// The final verdict: the upload and each document's state, and an event per document.
    pub async fn upload_final(
        &self,
        id: i64,
        state: UploadStatus,
        estado: &str,
        glosa: &str,
        verdicts: Vec<DocVerdict>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        let company = tx
            .query_opt(
                "UPDATE uploads SET state = $2, estado = $3, glosa = $4, lease_until = NULL WHERE id = $1 RETURNING company",
                args![id, state.as_str(), estado, glosa],
            )
            .await?
            .ok_or_else(|| StoreError::Db(format!("upload {id} not found")))?
            .text(0)?;
        let mut events = Vec::with_capacity(verdicts.len());
        for v in &verdicts {
            tx.exec(
                "UPDATE documents SET state = $4, sii_estado = $5, sii_glosa = $6 WHERE upload_id = $1 AND tipo = $2 AND folio = $3",
                args![id, v.tipo, v.folio, v.state.as_str(), v.estado.as_str(), v.glosa.as_str()],
            )
            .await?;
            events.push(state_event(&company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now));
        }
        mark_deliverable(&mut tx, "upload_id = $1", args![id], now).await?;
        enqueue_events(&mut tx, &company, &events, now).await?;
        tx.commit().await
    }

    /// A verdict for one document (asked on demand); an event only when something changed.
    pub async fn set_document_sii_state(
        &self,
        company: &str,
        v: DocVerdict,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(
                "UPDATE documents SET state = $4, sii_estado = $5, sii_glosa = $6 WHERE company = $1 AND tipo = $2 AND folio = $3
                 AND (state <> $4 OR sii_estado IS DISTINCT FROM $5)",
                args![company, v.tipo, v.folio, v.state.as_str(), v.estado.as_str(), v.glosa.as_str()],
            )
            .await?;
        if n > 0 {
            mark_deliverable(
                &mut tx,
                "company = $1 AND tipo = $2 AND folio = $3",
                args![company, v.tipo, v.folio],
                now,
            )
            .await?;
            let event = state_event(company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now);
            enqueue_events(&mut tx, company, &[event], now).await?;
        }
        tx.commit().await
    }

    /// Registers a webhook (its secret already sealed) and audits it.
    pub async fn add_webhook(
        &self,
        company: &str,
        url: &str,
        sealed_secret: &str,
        mut audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let id = tx
            .query_opt(
                "INSERT INTO webhooks (company, url, secret, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                args![company, url, sealed_secret, now],
            )
            .await?
            .ok_or_else(|| StoreError::Db("no id for the new webhook".into()))?
            .i64(0)?;
        audit.subject = id.to_string();
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes a webhook: it is no longer listed nor sent to, its pending deliveries are
    /// cancelled, and its past deliveries stay listed. False when there is no such webhook.
    pub async fn delete_webhook(
        &self,
        company: &str,
        id: i64,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let first = Stmt::new(
            "UPDATE webhooks SET deleted_at = $3 WHERE company = $1 AND id = $2 AND deleted_at IS NULL",
            args![company, id, now],
        );
        let cancel = Stmt::new(
            "UPDATE deliveries SET state = 'cancelled' WHERE webhook_id = $1 AND state = 'pending'",
            args![id],
        );
        self.change_audited(first, Some(cancel), audit, now).await
    }

    /// Replaces a webhook's sealed secret. False when there is no such webhook.
    pub async fn set_webhook_secret(
        &self,
        company: &str,
        id: i64,
        sealed_secret: &str,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let first = Stmt::new(
            "UPDATE webhooks SET secret = $3 WHERE company = $1 AND id = $2 AND deleted_at IS NULL",
            args![company, id, sealed_secret],
        );
        self.change_audited(first, None, audit, now).await
    }

    /// The trace context of an upload's first traced document (see `otel`).
    pub async fn upload_trace(&self, upload: i64) -> Result<Option<String>, StoreError> {
        self.query_opt(
            "SELECT trace FROM documents WHERE upload_id = $1 AND trace IS NOT NULL ORDER BY id LIMIT 1",
            args![upload],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()
    }

    /// Seals the secrets stored in plain text by release 0.1.0; how many there were.
    pub async fn seal_plain_webhook_secrets(
        &self,
        seal: &(dyn Fn(&str, &str) -> Result<String, String> + Send + Sync),
    ) -> Result<usize, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let rows =
            tx.query("SELECT id, url, secret FROM webhooks WHERE secret NOT LIKE 'v1:%' ORDER BY id", args![]).await?;
        for r in &rows {
            let (id, url, secret) = (r.i64(0)?, r.text(1)?, r.text(2)?);
            let sealed = seal(&url, &secret).map_err(|e| StoreError::Db(format!("webhook {id}: {e}")))?;
            tx.exec("UPDATE webhooks SET secret = $1 WHERE id = $2", args![sealed, id]).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    pub async fn list_webhooks(&self, company: &str) -> Result<Vec<WebhookRow>, StoreError> {
        self.query(
            "SELECT id, company, url, secret, created_at FROM webhooks WHERE company = $1 AND deleted_at IS NULL ORDER BY id",
            args![company],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(WebhookRow {
                id: r.i64(0)?,
                company: r.text(1)?,
                url: r.text(2)?,
                secret: r.text(3)?,
                created_at: r.ts(4)?,
            })
        })
        .collect()
    }

    pub async fn lease_delivery(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let lock = if tx.is_postgres() { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.state = 'pending' AND d.next_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < $1)
                       AND w.deleted_at IS NULL ORDER BY d.id LIMIT 1{lock}"
                ),
                args![now],
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await;
            return Ok(None);
        };
        let d = delivery(&row)?;
        tx.exec("UPDATE deliveries SET lease_until = $1 WHERE id = $2", args![now + lease, d.id]).await?;
        tx.commit().await?;
        Ok(Some(d))
    }

    /// After a delivery attempt: `done`, or `pending` again at `next_at`, or `failed` for good.
    pub async fn delivery_outcome(
        &self,
        id: i64,
        state: &str,
        status: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE deliveries SET state = $2, last_status = $3, attempts = attempts + 1, next_at = $4, lease_until = NULL
             WHERE id = $1 AND state = 'pending'",
            args![id, state, status, next_at],
        )
        .await
        .map(|_| ())
    }

    pub async fn list_deliveries(&self, company: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.query(
            &format!(
                "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE w.company = $1 ORDER BY d.id DESC LIMIT $2"
            ),
            args![company, limit],
        )
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    /// Companies that issued since `since`, with whether they issued boletas and other types.
    pub async fn active_companies(&self, since: DateTime<Utc>) -> Result<Vec<(String, bool)>, StoreError> {
        self.query("SELECT DISTINCT company, tipo IN (39, 41) FROM documents WHERE created_at >= $1", args![since])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.i64(1)? != 0)))
            .collect()
    }

    /// When the oldest document not yet received by the SII was issued.
    pub async fn oldest_unsent(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.query_opt("SELECT MIN(created_at) FROM documents WHERE state = 'issued'", args![]).await? {
            Some(r) => r.opt(0, Vals::ts),
            None => Ok(None),
        }
    }

    /// Documents per state (all companies), for progress and metrics.
    pub async fn document_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.query("SELECT state, COUNT(*) FROM documents GROUP BY state ORDER BY state", args![])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.i64(1)?)))
            .collect()
    }
}
