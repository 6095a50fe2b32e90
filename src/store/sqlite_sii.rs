//! SQLite: uploads to the SII, document verdicts and webhook deliveries.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::*;

pub(super) fn enqueue_events(
    tx: &Transaction<'_>,
    company: &str,
    events: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let hooks: Vec<i64> = {
        let mut st = tx.prepare("SELECT id FROM webhooks WHERE company = ?1")?;
        let rows = st.query_map(params![company], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
        rows
    };
    for h in hooks {
        for e in events {
            tx.execute("INSERT INTO deliveries (webhook_id, event, state, attempts, next_at, created_at) VALUES (?1, ?2, 'pending', 0, ?3, ?3)", params![h, e, ts(now)])?;
        }
    }
    Ok(())
}

impl SqliteStore {
    pub async fn claim_upload(
        &self,
        max: i64,
        older_than: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let group: Option<(String, bool)> = tx
                .query_row(
                    "SELECT company, tipo IN (39, 41) AS boleta FROM documents WHERE state = 'issued' AND upload_id IS NULL
                     GROUP BY company, boleta HAVING COUNT(*) >= ?1 OR MIN(created_at) <= ?2 ORDER BY MIN(created_at) LIMIT 1",
                    params![max, ts(older_than)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((company, boleta)) = group else { return Ok(None) };
            tx.execute("INSERT INTO uploads (company, boleta, state, attempts, next_at, created_at) VALUES (?1, ?2, 'new', 0, ?3, ?3)", params![company, boleta, ts(now)])?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE documents SET upload_id = ?1 WHERE id IN (SELECT id FROM documents WHERE company = ?2 AND (tipo IN (39, 41)) = ?3
                 AND state = 'issued' AND upload_id IS NULL ORDER BY id LIMIT ?4)",
                params![id, company, boleta, max],
            )?;
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }

    pub async fn upload_documents(&self, upload: i64) -> Result<Vec<(i32, i64, Vec<u8>)>, StoreError> {
        self.with(move |c| {
            let mut st =
                c.prepare("SELECT tipo, folio, xml FROM documents WHERE upload_id = ?1 ORDER BY tipo, folio")?;
            let rows = st
                .query_map(params![upload], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn lease_upload(
        &self,
        states: Vec<String>,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<UploadRow>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let list = states.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(",");
            let row = tx
                .query_row(
                    &format!(
                        "SELECT id, company, boleta, state, envelope, track_id, attempts FROM uploads WHERE state IN ({list}) AND next_at <= ?1
                         AND (lease_until IS NULL OR lease_until < ?1) ORDER BY next_at LIMIT 1"
                    ),
                    params![ts(now)],
                    |r| Ok(UploadRow { id: r.get(0)?, company: r.get(1)?, boleta: r.get(2)?, state: r.get(3)?, envelope: r.get(4)?, track_id: r.get(5)?, attempts: r.get(6)? }),
                )
                .optional()?;
            if let Some(u) = &row {
                tx.execute("UPDATE uploads SET lease_until = ?1 WHERE id = ?2", params![ts(now + lease), u.id])?;
            }
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    pub async fn upload_sent(
        &self,
        id: i64,
        envelope: Vec<u8>,
        track_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let track_id = track_id.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE uploads SET state = 'sent', envelope = ?2, track_id = ?3, attempts = attempts + 1, next_at = ?4, lease_until = NULL, last_error = NULL WHERE id = ?1",
                params![id, envelope, track_id, ts(now)],
            )?;
            let docs: Vec<(String, i32, i64)> = {
                let mut st = tx.prepare("SELECT company, tipo, folio FROM documents WHERE upload_id = ?1")?;
                let rows = st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
                rows
            };
            tx.execute("UPDATE documents SET state = 'sent', sii_estado = 'REC' WHERE upload_id = ?1", params![id])?;
            if let Some((company, _, _)) = docs.first() {
                let events: Vec<String> = docs.iter().map(|(co, t, f)| state_event(co, *t, *f, "sent", "REC", &format!("TrackID {track_id}"), now)).collect();
                enqueue_events(&tx, company, &events, now)?;
            }
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn upload_later(
        &self,
        id: i64,
        state: &str,
        envelope: Option<Vec<u8>>,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, error) = (state.to_string(), error.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE uploads SET state = ?2, envelope = COALESCE(?3, envelope), attempts = attempts + 1, last_error = ?4, next_at = ?5, lease_until = NULL WHERE id = ?1",
                params![id, state, envelope, error, ts(next_at)],
            )?;
            Ok(())
        })
        .await
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
        let (state, estado, glosa) = (state.to_string(), estado.to_string(), glosa.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let company: String = tx.query_row("SELECT company FROM uploads WHERE id = ?1", params![id], |r| r.get(0))?;
            tx.execute("UPDATE uploads SET state = ?2, estado = ?3, glosa = ?4, lease_until = NULL WHERE id = ?1", params![id, state, estado, glosa])?;
            let mut events = Vec::with_capacity(verdicts.len());
            for v in &verdicts {
                tx.execute(
                    "UPDATE documents SET state = ?4, sii_estado = ?5, sii_glosa = ?6 WHERE upload_id = ?1 AND tipo = ?2 AND folio = ?3",
                    params![id, v.tipo, v.folio, v.state, v.estado, v.glosa],
                )?;
                events.push(state_event(&company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now));
            }
            enqueue_events(&tx, &company, &events, now)?;
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn set_document_sii_state(
        &self,
        company: &str,
        v: DocVerdict,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let company = company.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old: Option<(String, Option<String>)> = tx
                .query_row("SELECT state, sii_estado FROM documents WHERE company = ?1 AND tipo = ?2 AND folio = ?3", params![company, v.tipo, v.folio], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if old.as_ref().is_some_and(|(s, e)| *s != v.state.as_str() || e.as_deref() != Some(v.estado.as_str())) {
                tx.execute(
                    "UPDATE documents SET state = ?4, sii_estado = ?5, sii_glosa = ?6 WHERE company = ?1 AND tipo = ?2 AND folio = ?3",
                    params![company, v.tipo, v.folio, v.state, v.estado, v.glosa],
                )?;
                enqueue_events(&tx, &company, &[state_event(&company, v.tipo, v.folio, v.state.as_str(), &v.estado, &v.glosa, now)], now)?;
            }
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn add_webhook(
        &self,
        company: &str,
        url: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let (company, url, secret) = (company.to_string(), url.to_string(), secret.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO webhooks (company, url, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![company, url, secret, ts(now)],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    pub async fn list_webhooks(&self, company: &str) -> Result<Vec<WebhookRow>, StoreError> {
        let company = company.to_string();
        self.with(move |c| {
            let mut st =
                c.prepare("SELECT id, company, url, secret, created_at FROM webhooks WHERE company = ?1 ORDER BY id")?;
            let rows = st
                .query_map(params![company], |r| {
                    Ok(WebhookRow {
                        id: r.get(0)?,
                        company: r.get(1)?,
                        url: r.get(2)?,
                        secret: r.get(3)?,
                        created_at: parse_ts(&r.get::<_, String>(4)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn lease_delivery(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = tx
                .query_row(
                    "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.state, d.attempts, d.last_status FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.state = 'pending' AND d.next_at <= ?1 AND (d.lease_until IS NULL OR d.lease_until < ?1) ORDER BY d.id LIMIT 1",
                    params![ts(now)],
                    |r| Ok(DeliveryRow { id: r.get(0)?, webhook_id: r.get(1)?, url: r.get(2)?, secret: r.get(3)?, event: r.get(4)?, state: r.get(5)?, attempts: r.get(6)?, last_status: r.get(7)? }),
                )
                .optional()?;
            if let Some(d) = &row {
                tx.execute("UPDATE deliveries SET lease_until = ?1 WHERE id = ?2", params![ts(now + lease), d.id])?;
            }
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    pub async fn delivery_outcome(
        &self,
        id: i64,
        state: &str,
        status: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, status) = (state.to_string(), status.to_string());
        self.with(move |c| {
            c.execute("UPDATE deliveries SET state = ?2, last_status = ?3, attempts = attempts + 1, next_at = ?4, lease_until = NULL WHERE id = ?1", params![id, state, status, ts(next_at)])?;
            Ok(())
        })
        .await
    }

    pub async fn list_deliveries(&self, company: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let company = company.to_string();
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.state, d.attempts, d.last_status FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE w.company = ?1 ORDER BY d.id DESC LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![company, limit], |r| {
                    Ok(DeliveryRow { id: r.get(0)?, webhook_id: r.get(1)?, url: r.get(2)?, secret: r.get(3)?, event: r.get(4)?, state: r.get(5)?, attempts: r.get(6)?, last_status: r.get(7)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn active_companies(&self, since: DateTime<Utc>) -> Result<Vec<(String, bool)>, StoreError> {
        self.with(move |c| {
            let mut st =
                c.prepare("SELECT DISTINCT company, tipo IN (39, 41) FROM documents WHERE created_at >= ?1")?;
            let rows =
                st.query_map(params![ts(since)], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn oldest_unsent(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|c| {
            let v: Option<String> =
                c.query_row("SELECT MIN(created_at) FROM documents WHERE state = 'issued'", [], |r| r.get(0))?;
            Ok(v.map(|s| parse_ts(&s)))
        })
        .await
    }

    pub async fn document_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM documents GROUP BY state ORDER BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
