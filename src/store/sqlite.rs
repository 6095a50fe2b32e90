//! SQLite: the embedded default. One connection in WAL mode behind a mutex, used from blocking
//! threads; SQLite has one writer anyway, and `BEGIN IMMEDIATE` makes issuance take it up front.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    /// An async mutex: a group's issuance holds the connection across its signing (see
    /// `sqlite_issue`), and everything else waits without tying up a thread.
    pub(super) conn: Arc<tokio::sync::Mutex<Connection>>,
}

fn date(s: String) -> NaiveDate {
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").unwrap_or_default()
}

fn append_audit(tx: &Transaction<'_>, a: &NewAudit, now: DateTime<Utc>) -> Result<(), StoreError> {
    append_audits(tx, std::slice::from_ref(a), now)
}

/// Appends entries to their chains in order; the caller's transaction holds SQLite's write lock.
pub(super) fn append_audits(c: &Connection, entries: &[NewAudit], now: DateTime<Utc>) -> Result<(), StoreError> {
    let at = ts(now);
    let mut heads: std::collections::HashMap<&str, (i64, String)> = std::collections::HashMap::new();
    let mut insert = c.prepare_cached(
        "INSERT INTO audit (scope, seq, action, subject, data, prev_hash, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for a in entries {
        let head = match heads.remove(a.scope.as_str()) {
            Some(h) => h,
            None => c
                .query_row(
                    "SELECT seq, hash FROM audit WHERE scope = ?1 ORDER BY seq DESC LIMIT 1",
                    params![a.scope],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((0, GENESIS.to_string())),
        };
        let seq = head.0 + 1;
        let h = audit_hash(&head.1, &a.scope, seq, a.action, &a.subject, &a.data, &at);
        insert.execute(params![a.scope, seq, a.action, a.subject, a.data, head.1, h, at])?;
        heads.insert(a.scope.as_str(), (seq, h));
    }
    Ok(())
}

fn company_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) const CAF_COLS: &str =
    "id, company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at";
pub(super) fn caf_row(r: &Row<'_>) -> rusqlite::Result<CafRecord> {
    Ok(CafRecord {
        id: r.get(0)?,
        company: r.get(1)?,
        tipo: r.get(2)?,
        desde: r.get(3)?,
        hasta: r.get(4)?,
        next_folio: r.get(5)?,
        fa: date(r.get(6)?),
        expires_on: r.get::<_, Option<String>>(7)?.map(date),
        idk: r.get(8)?,
        authority: r.get(9)?,
        sealed: r.get(10)?,
        created_at: parse_ts(&r.get::<_, String>(11)?),
    })
}

const DOC_COLS: &str = "id, company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, state, created_at";
fn doc_row(r: &Row<'_>) -> rusqlite::Result<DocumentRecord> {
    Ok(DocumentRecord {
        id: r.get(0)?,
        company: r.get(1)?,
        tipo: r.get(2)?,
        folio: r.get(3)?,
        caf_id: r.get(4)?,
        fch_emis: date(r.get(5)?),
        rut_recep: r.get(6)?,
        mnt_total: r.get(7)?,
        totals: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        state: r.get(9)?,
        created_at: parse_ts(&r.get::<_, String>(10)?),
    })
}

const KEY_COLS: &str = "id, hash, company, scopes, created_at, expires_at, revoked_at";
fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        hash: r.get(1)?,
        company: r.get(2)?,
        scopes: r.get::<_, String>(3)?.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        created_at: parse_ts(&r.get::<_, String>(4)?),
        expires_at: r.get::<_, Option<String>>(5)?.map(|s| parse_ts(&s)),
        revoked_at: r.get::<_, Option<String>>(6)?.map(|s| parse_ts(&s)),
    })
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
            }
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a document answered 201 survives a power cut, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteStore { conn: Arc::new(tokio::sync::Mutex::new(conn)) })
    }

    pub(super) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut guard)).await.map_err(|e| StoreError::Db(e.to_string()))?
    }

    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        self.with(move |c| super::migrations::run_sqlite(c, dry_run)).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    pub async fn reseal(&self, f: ResealFn, audit: NewAudit) -> Result<(usize, usize), StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let certs: Vec<(String, Vec<u8>)> = {
                let mut st = tx.prepare("SELECT company, sealed FROM certificates")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
                rows
            };
            for (company, sealed) in &certs {
                let new = f(company, sealed).map_err(|e| StoreError::Db(format!("certificate of {company}: {e}")))?;
                tx.execute("UPDATE certificates SET sealed = ?1 WHERE company = ?2", params![new, company])?;
            }
            let cafs: Vec<(i64, String, Vec<u8>)> = {
                let mut st = tx.prepare("SELECT id, company, sealed FROM cafs")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
                rows
            };
            for (id, company, sealed) in &cafs {
                let new = f(company, sealed).map_err(|e| StoreError::Db(format!("CAF {id}: {e}")))?;
                tx.execute("UPDATE cafs SET sealed = ?1 WHERE id = ?2", params![new, id])?;
            }
            append_audit(&tx, &audit, Utc::now())?;
            tx.commit()?;
            Ok((certs.len(), cafs.len()))
        })
        .await
    }

    pub async fn create_company(&self, rec: CompanyRecord, audit: NewAudit) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let data = serde_json::to_string(&rec.company).map_err(|e| StoreError::Db(e.to_string()))?;
            let n = tx.execute(
                "INSERT INTO companies (rut, data, environment, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (rut) DO NOTHING",
                params![rec.rut, data, rec.environment.as_str(), ts(rec.created_at)],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("company {} already exists", rec.rut)));
            }
            append_audit(&tx, &audit, rec.created_at)?;
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn get_company(&self, rut: &str) -> Result<Option<CompanyRecord>, StoreError> {
        let rut = rut.to_string();
        self.with(move |c| {
            let row = c
                .query_row(
                    "SELECT rut, data, environment, created_at FROM companies WHERE rut = ?1",
                    params![rut],
                    company_row,
                )
                .optional()?;
            row.map(|(rut, data, env, at)| {
                let company = serde_json::from_str(&data).map_err(|e| StoreError::Db(e.to_string()))?;
                let environment = env.parse::<Environment>().map_err(StoreError::Db)?;
                Ok(CompanyRecord { rut, company, environment, created_at: parse_ts(&at) })
            })
            .transpose()
        })
        .await
    }

    pub async fn put_certificate(&self, rec: CertRecord, audit: NewAudit) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO certificates (company, sealed, subject, holder_rut, not_after, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (company) DO UPDATE SET sealed = excluded.sealed, subject = excluded.subject, holder_rut = excluded.holder_rut,
                 not_after = excluded.not_after, updated_at = excluded.updated_at",
                params![rec.company, rec.sealed, rec.subject, rec.holder_rut, ts(rec.not_after), ts(rec.updated_at)],
            )?;
            append_audit(&tx, &audit, rec.updated_at)?;
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn get_certificate(&self, rut: &str) -> Result<Option<CertRecord>, StoreError> {
        let rut = rut.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT company, sealed, subject, holder_rut, not_after, updated_at FROM certificates WHERE company = ?1",
                params![rut],
                |r| {
                    Ok(CertRecord {
                        company: r.get(0)?,
                        sealed: r.get(1)?,
                        subject: r.get(2)?,
                        holder_rut: r.get(3)?,
                        not_after: parse_ts(&r.get::<_, String>(4)?),
                        updated_at: parse_ts(&r.get::<_, String>(5)?),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    pub async fn add_caf(&self, rec: CafRecord, audit: NewAudit) -> Result<i64, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let overlap: i64 = tx.query_row(
                "SELECT COUNT(*) FROM cafs WHERE company = ?1 AND tipo = ?2 AND desde <= ?4 AND hasta >= ?3",
                params![rec.company, rec.tipo, rec.desde, rec.hasta],
                |r| r.get(0),
            )?;
            if overlap > 0 {
                return Err(StoreError::Conflict(format!("a CAF of type {} already covers part of folios {}-{}", rec.tipo, rec.desde, rec.hasta)));
            }
            tx.execute(
                "INSERT INTO cafs (company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    rec.company,
                    rec.tipo,
                    rec.desde,
                    rec.hasta,
                    rec.desde,
                    rec.fa.to_string(),
                    rec.expires_on.map(|d| d.to_string()),
                    rec.idk,
                    rec.authority,
                    rec.sealed,
                    ts(rec.created_at)
                ],
            )?;
            let id = tx.last_insert_rowid();
            append_audit(&tx, &audit, rec.created_at)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    pub async fn list_cafs(&self, rut: &str) -> Result<Vec<CafRecord>, StoreError> {
        let rut = rut.to_string();
        self.with(move |c| {
            let mut st = c.prepare(&format!("SELECT {CAF_COLS} FROM cafs WHERE company = ?1 ORDER BY tipo, desde"))?;
            let rows = st.query_map(params![rut], caf_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn get_document(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<DocumentRecord>, StoreError> {
        let rut = rut.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DOC_COLS} FROM documents WHERE company = ?1 AND tipo = ?2 AND folio = ?3"),
                params![rut, tipo, folio],
                doc_row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn get_document_xml(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let rut = rut.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT xml FROM documents WHERE company = ?1 AND tipo = ?2 AND folio = ?3",
                params![rut, tipo, folio],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub async fn list_documents(&self, rut: &str, f: &DocFilter) -> Result<Vec<DocumentRecord>, StoreError> {
        let rut = rut.to_string();
        let f = f.clone();
        self.with(move |c| {
            let sql = format!(
                "SELECT {DOC_COLS} FROM documents WHERE company = ?1 AND (?2 IS NULL OR tipo = ?2) AND (?3 IS NULL OR fch_emis >= ?3)
                 AND (?4 IS NULL OR fch_emis <= ?4) AND (?5 IS NULL OR state = ?5) AND (?6 IS NULL OR id < ?6) ORDER BY id DESC LIMIT ?7"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st
                .query_map(params![rut, f.tipo, f.from.map(|d| d.to_string()), f.to.map(|d| d.to_string()), f.state, f.before_id, f.limit], doc_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn count_documents(&self) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?)).await
    }

    pub async fn create_api_key(&self, k: ApiKeyRecord, audit: NewAudit) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO api_keys (id, hash, company, scopes, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                params![k.id, k.hash, k.company, k.scopes.join(","), ts(k.created_at), k.expires_at.map(ts)],
            )?;
            append_audit(&tx, &audit, k.created_at)?;
            Ok(tx.commit()?)
        })
        .await
    }

    pub async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let hash = hash.to_string();
        self.with(move |c| {
            Ok(c.query_row(&format!("SELECT {KEY_COLS} FROM api_keys WHERE hash = ?1"), params![hash], key_row)
                .optional()?)
        })
        .await
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            Ok(c.query_row(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"), params![id], key_row)
                .optional()?)
        })
        .await
    }

    pub async fn revoke_api_key(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let hash: Option<String> =
                tx.query_row("SELECT hash FROM api_keys WHERE id = ?1 AND revoked_at IS NULL", params![id], |r| r.get(0)).optional()?;
            let Some(hash) = hash else { return Ok(false) };
            tx.execute("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2", params![ts(now), id])?;
            tx.execute(
                "INSERT INTO revoked_keys (hash, revoked_at, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING",
                params![hash, ts(now), ts(until)],
            )?;
            append_audit(&tx, &audit, now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub async fn expire_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            c.execute(
                "UPDATE api_keys SET expires_at = ?1 WHERE id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
                params![ts(at), id],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn revocation_list(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT hash FROM revoked_keys")?;
            let rows = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn cleanup(&self, now: DateTime<Utc>, idem_before: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute("DELETE FROM revoked_keys WHERE expires_at < ?1", params![ts(now)])?;
            c.execute("DELETE FROM idempotency WHERE created_at < ?1", params![ts(idem_before)])?;
            Ok(())
        })
        .await
    }

    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, scope, seq, action, subject, data, prev_hash, hash, created_at FROM audit ORDER BY scope, seq")?;
            let rows = st
                .query_map([], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        scope: r.get(1)?,
                        seq: r.get(2)?,
                        action: r.get(3)?,
                        subject: r.get(4)?,
                        data: r.get(5)?,
                        prev_hash: r.get(6)?,
                        hash: r.get(7)?,
                        created_at: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
