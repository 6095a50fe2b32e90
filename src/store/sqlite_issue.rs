//! Group issuance on SQLite: `BEGIN IMMEDIATE` takes the database's single write lock for the
//! group (other processes on the same file wait for it), and the connection stays with the group
//! until it commits or is dropped.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::OwnedMutexGuard;

use super::sqlite::{append_audits, caf_row, SqliteStore, CAF_COLS};
use super::{ts, CafRecord, DocumentRecord, Idem, IdemState, IssuedRow, StoreError};

/// The connection with an open transaction. Dropped without [`SqliteTx::commit`]: rolled back.
pub(crate) struct SqliteTx {
    conn: Option<OwnedMutexGuard<Connection>>,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            // Nothing was written before commit: the rollback only releases the lock.
            let _ = c.execute_batch("ROLLBACK");
        }
    }
}

impl SqliteStore {
    pub(super) async fn lock_folios(
        &self,
        company: &str,
        tipo: i32,
        today: NaiveDate,
        idems: &[Option<Idem>],
    ) -> Result<(Vec<CafRecord>, Vec<IdemState>, SqliteTx), StoreError> {
        let guard = self.conn.clone().lock_owned().await;
        let (company, idems) = (company.to_string(), idems.to_vec());
        tokio::task::spawn_blocking(move || {
            guard.execute_batch("BEGIN IMMEDIATE")?;
            // From here on the guard rolls back if anything fails.
            let tx = SqliteTx { conn: Some(guard) };
            let c = tx.conn.as_ref().ok_or_else(|| StoreError::Db("connection".into()))?;
            let mut prior =
                c.prepare_cached("SELECT request_hash, response FROM idempotency WHERE key_id = ?1 AND idem_key = ?2")?;
            let mut idem = Vec::with_capacity(idems.len());
            for i in &idems {
                idem.push(match i {
                    None => IdemState::New,
                    Some(i) => {
                        let row: Option<(String, Option<String>)> =
                            prior.query_row(params![i.key_id, i.key], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                        match row {
                            None => IdemState::New,
                            Some((h, _)) if h != i.request_hash => IdemState::Mismatch,
                            Some((_, resp)) => {
                                IdemState::Replay(resp.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default())
                            }
                        }
                    }
                });
            }
            drop(prior);
            if !idem.iter().any(|s| matches!(s, IdemState::New)) {
                return Ok((Vec::new(), idem, tx));
            }
            let mut st = c.prepare_cached(&format!(
                "SELECT {CAF_COLS} FROM cafs WHERE company = ?1 AND tipo = ?2 AND next_folio <= hasta
                 AND (expires_on IS NULL OR expires_on >= ?3) ORDER BY desde"
            ))?;
            let cafs =
                st.query_map(params![company, tipo, today.to_string()], caf_row)?.collect::<Result<Vec<_>, _>>()?;
            drop(st);
            Ok((cafs, idem, tx))
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?
    }
}

impl SqliteTx {
    pub(super) async fn rollback(mut self) {
        if let Some(c) = self.conn.take() {
            let _ = tokio::task::spawn_blocking(move || c.execute_batch("ROLLBACK")).await;
        }
    }

    pub(super) async fn commit(
        mut self,
        rows: Vec<IssuedRow>,
        advanced: Vec<(i64, i64)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        tokio::task::spawn_blocking(move || {
            let c = self.conn.as_ref().ok_or_else(|| StoreError::Db("connection".into()))?;
            for (id, next) in &advanced {
                c.prepare_cached("UPDATE cafs SET next_folio = ?1 WHERE id = ?2 AND next_folio < ?1")?
                    .execute(params![next, id])?;
            }
            let at = ts(now);
            let mut out = Vec::with_capacity(rows.len());
            let mut audits = Vec::with_capacity(rows.len());
            for r in rows {
                let d = &r.doc;
                c.prepare_cached(
                    "INSERT INTO documents (company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, xml, ted, state, api_key_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'issued', ?11, ?12)",
                )?
                .execute(params![
                    d.company,
                    d.tipo,
                    d.folio,
                    d.caf_id,
                    d.fch_emis.to_string(),
                    d.rut_recep,
                    d.mnt_total,
                    d.totals.to_string(),
                    d.xml,
                    d.ted,
                    d.api_key_id,
                    at
                ])?;
                let id = c.last_insert_rowid();
                if let Some(i) = &r.idem {
                    c.prepare_cached(
                        "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![i.key_id, i.key, i.request_hash, r.response.to_string(), at])?;
                }
                audits.push(r.audit);
                out.push(r.doc.stored(id, now));
            }
            append_audits(c, &audits, now)?;
            c.execute_batch("COMMIT")?;
            // Committed: nothing left for the drop to roll back.
            drop(self.conn.take());
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?
    }
}
