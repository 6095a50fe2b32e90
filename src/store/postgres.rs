//! PostgreSQL: any number of gateway instances on one database. Issuance locks the CAF row it
//! takes a folio from (`FOR UPDATE`) for the length of the transaction that stores the document,
//! so folios are handed out once, in order, with no gap, whatever the number of instances.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Runtime};
use tokio_postgres::{NoTls, Row};

use super::*;

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Pool,
}

/// Takes the chain's lock (one writer per chain; it ends with the transaction) and reads its last
/// entry: `(seq, hash)`, or the genesis. Both statements go out together, the lock first.
pub(super) async fn audit_head(tx: &impl GenericClient, scope: &str) -> Result<(i64, String), StoreError> {
    let (lock, head) = tokio::try_join!(
        tx.prepare_cached("SELECT pg_advisory_xact_lock(hashtext($1))"),
        tx.prepare_cached("SELECT seq, hash FROM audit WHERE scope = $1 ORDER BY seq DESC LIMIT 1"),
    )?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&scope];
    let (_, last) = tokio::try_join!(tx.execute(&lock, &params), tx.query_opt(&head, &params))?;
    Ok(last.map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))).unwrap_or((0, GENESIS.to_string())))
}

/// Writes `entries` after `head` (from [`audit_head`], in the same transaction).
pub(super) async fn insert_audits(
    tx: &impl GenericClient,
    scope: &str,
    head: (i64, String),
    entries: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    debug_assert!(entries.iter().all(|a| a.scope == scope));
    let (mut seq, mut prev) = head;
    let at = ts(now);
    let mut cols: [Vec<String>; 5] = Default::default();
    let mut seqs = Vec::with_capacity(entries.len());
    for a in entries {
        seq += 1;
        let h = audit_hash(&prev, scope, seq, a.action, &a.subject, &a.data, &at);
        seqs.push(seq);
        for (col, v) in cols.iter_mut().zip([a.action.to_string(), a.subject.clone(), a.data.clone(), prev, h.clone()])
        {
            col.push(v);
        }
        prev = h;
    }
    let [actions, subjects, data, prevs, hashes] = cols;
    let insert = tx
        .prepare_cached(
            "INSERT INTO audit (scope, seq, action, subject, data, prev_hash, hash, created_at)
             SELECT $1, s, a, su, d, p, h, $8 FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS t(s, a, su, d, p, h)",
        )
        .await?;
    tx.execute(&insert, &[&scope, &seqs, &actions, &subjects, &data, &prevs, &hashes, &at]).await?;
    Ok(())
}

pub(super) const CAF_COLS: &str =
    "id, company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at";
pub(super) fn caf_row(r: &Row) -> CafRecord {
    CafRecord {
        id: r.get(0),
        company: r.get(1),
        tipo: r.get(2),
        desde: r.get(3),
        hasta: r.get(4),
        next_folio: r.get(5),
        fa: r.get(6),
        expires_on: r.get(7),
        idk: r.get(8),
        authority: r.get(9),
        sealed: r.get(10),
        created_at: r.get(11),
    }
}

impl PgStore {
    pub fn open(url: &str, size: usize) -> Result<PgStore, StoreError> {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(url.to_string());
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(size));
        let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls).map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(PgStore { pool })
    }

    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        let mut c = self.pool.get().await?;
        super::migrations::run_postgres(&mut c, dry_run).await
    }
}
