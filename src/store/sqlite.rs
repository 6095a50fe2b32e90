//! SQLite: the embedded default. One connection in WAL mode behind a mutex, used from blocking
//! threads; SQLite has one writer anyway, and `BEGIN IMMEDIATE` makes issuance take it up front.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

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
}
