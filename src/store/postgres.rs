//! PostgreSQL: any number of gateway instances on one database, through a connection pool.
//! Issuance locks the CAF rows it takes folios from (`FOR UPDATE`) for the length of the group's
//! transaction, so folios are handed out once, in order, with no gap, whatever the number of
//! instances. The statements themselves are shared with SQLite.

use deadpool_postgres::{Pool, Runtime};
use tokio_postgres::NoTls;

use super::*;

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Pool,
    pub(super) audit_key: AuditKeySlot,
}

impl PgStore {
    pub fn open(url: &str, size: usize) -> Result<PgStore, StoreError> {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(url.to_string());
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(size));
        let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls).map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(PgStore { pool, audit_key: AuditKeySlot::default() })
    }

    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        let mut c = self.pool.get().await?;
        super::migrations::run_postgres(&mut c, dry_run).await
    }
}
