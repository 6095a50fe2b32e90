//! SQLite: the embedded default. One connection in WAL mode behind an async mutex, used from
//! blocking threads; SQLite has one writer anyway, and every write transaction takes it up front
//! (`BEGIN IMMEDIATE`, in `sql::Tx`). The statements themselves are shared with PostgreSQL.

use std::sync::Arc;

use rusqlite::Connection;

use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    /// An async mutex: a group's issuance holds the connection across its signing (see
    /// `issuance`), and everything else waits without tying up a thread.
    pub(super) conn: Arc<tokio::sync::Mutex<Connection>>,
    pub(super) audit_key: AuditKeySlot,
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                crate::vault::private_dir(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
            }
        }
        let conn = Connection::open(path)?;
        // Before the first write: SQLite gives the -wal and -shm files the database file's mode.
        crate::vault::private_file(std::path::Path::new(path)).map_err(|e| StoreError::Db(format!("{path}: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a document answered 201 survives a power cut, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteStore { conn: Arc::new(tokio::sync::Mutex::new(conn)), audit_key: AuditKeySlot::default() })
    }

    /// The connection, for as long as the returned value lives.
    pub(super) async fn hold(&self) -> Held {
        Held(self.conn.clone().lock_owned().await)
    }

    pub(super) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut held = self.hold().await;
        tokio::task::spawn_blocking(move || f(&mut held)).await.map_err(|e| StoreError::Db(e.to_string()))?
    }

    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        self.with(move |c| super::migrations::run_sqlite(c, dry_run)).await
    }
}

/// The held connection. Whoever drops it — a call that finished, one whose caller went away while
/// it ran on a blocking thread, a panic — leaves no transaction open: with one connection, a
/// transaction left open would take in every later write and lose it.
pub(super) struct Held(tokio::sync::OwnedMutexGuard<Connection>);

impl std::ops::Deref for Held {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}
