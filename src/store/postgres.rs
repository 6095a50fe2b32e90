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

async fn append_audit(tx: &impl GenericClient, a: &NewAudit, now: DateTime<Utc>) -> Result<(), StoreError> {
    append_audits(tx, std::slice::from_ref(a), now).await
}

/// Appends entries of one scope to its chain in order, in the caller's transaction.
pub(super) async fn append_audits(
    tx: &impl GenericClient,
    entries: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(scope) = entries.first().map(|a| a.scope.clone()) else { return Ok(()) };
    let head = audit_head(tx, &scope).await?;
    insert_audits(tx, &scope, head, entries, now).await
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

const DOC_COLS: &str = "id, company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, state, created_at";
/// Fallible: a state the domain does not know is an error, not a panic.
fn doc_row(r: &Row) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        id: r.try_get(0)?,
        company: r.try_get(1)?,
        tipo: r.try_get(2)?,
        folio: r.try_get(3)?,
        caf_id: r.try_get(4)?,
        fch_emis: r.try_get(5)?,
        rut_recep: r.try_get(6)?,
        mnt_total: r.try_get(7)?,
        totals: serde_json::from_str(r.try_get::<_, &str>(8)?).unwrap_or_default(),
        state: r.try_get(9)?,
        created_at: r.try_get(10)?,
    })
}

const KEY_COLS: &str = "id, hash, company, scopes, created_at, expires_at, revoked_at";
fn key_row(r: &Row) -> ApiKeyRecord {
    ApiKeyRecord {
        id: r.get(0),
        hash: r.get(1),
        company: r.get(2),
        scopes: r.get::<_, String>(3).split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        created_at: r.get(4),
        expires_at: r.get(5),
        revoked_at: r.get(6),
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

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    pub async fn reseal(&self, f: ResealFn, audit: NewAudit) -> Result<(usize, usize), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let certs = tx.query("SELECT company, sealed FROM certificates FOR UPDATE", &[]).await?;
        for r in &certs {
            let (company, sealed): (String, Vec<u8>) = (r.get(0), r.get(1));
            let new = f(&company, &sealed).map_err(|e| StoreError::Db(format!("certificate of {company}: {e}")))?;
            tx.execute("UPDATE certificates SET sealed = $1 WHERE company = $2", &[&new, &company]).await?;
        }
        let cafs =
            tx.query("SELECT id, company, sealed FROM cafs ORDER BY company, tipo, desde FOR UPDATE", &[]).await?;
        for r in &cafs {
            let (id, company, sealed): (i64, String, Vec<u8>) = (r.get(0), r.get(1), r.get(2));
            let new = f(&company, &sealed).map_err(|e| StoreError::Db(format!("CAF {id}: {e}")))?;
            tx.execute("UPDATE cafs SET sealed = $1 WHERE id = $2", &[&new, &id]).await?;
        }
        append_audit(&tx, &audit, Utc::now()).await?;
        tx.commit().await?;
        Ok((certs.len(), cafs.len()))
    }

    pub async fn create_company(&self, rec: CompanyRecord, audit: NewAudit) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let data = serde_json::to_string(&rec.company).map_err(|e| StoreError::Db(e.to_string()))?;
        let n = tx
            .execute(
                "INSERT INTO companies (rut, data, environment, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (rut) DO NOTHING",
                &[&rec.rut, &data, &rec.environment.as_str(), &rec.created_at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("company {} already exists", rec.rut)));
        }
        append_audit(&tx, &audit, rec.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_company(&self, rut: &str) -> Result<Option<CompanyRecord>, StoreError> {
        let c = self.pool.get().await?;
        let row =
            c.query_opt("SELECT rut, data, environment, created_at FROM companies WHERE rut = $1", &[&rut]).await?;
        row.map(|r| {
            let company = serde_json::from_str(r.get::<_, &str>(1)).map_err(|e| StoreError::Db(e.to_string()))?;
            Ok(CompanyRecord {
                rut: r.get(0),
                company,
                environment: r.get::<_, &str>(2).parse::<Environment>().map_err(StoreError::Db)?,
                created_at: r.get(3),
            })
        })
        .transpose()
    }

    pub async fn put_certificate(&self, rec: CertRecord, audit: NewAudit) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO certificates (company, sealed, subject, holder_rut, not_after, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (company) DO UPDATE SET sealed = excluded.sealed, subject = excluded.subject, holder_rut = excluded.holder_rut,
             not_after = excluded.not_after, updated_at = excluded.updated_at",
            &[&rec.company, &rec.sealed, &rec.subject, &rec.holder_rut, &rec.not_after, &rec.updated_at],
        )
        .await?;
        append_audit(&tx, &audit, rec.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_certificate(&self, rut: &str) -> Result<Option<CertRecord>, StoreError> {
        let c = self.pool.get().await?;
        let row = c.query_opt("SELECT company, sealed, subject, holder_rut, not_after, updated_at FROM certificates WHERE company = $1", &[&rut]).await?;
        Ok(row.map(|r| CertRecord {
            company: r.get(0),
            sealed: r.get(1),
            subject: r.get(2),
            holder_rut: r.get(3),
            not_after: r.get(4),
            updated_at: r.get(5),
        }))
    }

    pub async fn add_caf(&self, rec: CafRecord, audit: NewAudit) -> Result<i64, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Serialise CAF uploads of one company so the overlap check cannot race.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('caf:' || $1))", &[&rec.company]).await?;
        let overlap: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM cafs WHERE company = $1 AND tipo = $2 AND desde <= $4 AND hasta >= $3",
                &[&rec.company, &rec.tipo, &rec.desde, &rec.hasta],
            )
            .await?
            .get(0);
        if overlap > 0 {
            return Err(StoreError::Conflict(format!(
                "a CAF of type {} already covers part of folios {}-{}",
                rec.tipo, rec.desde, rec.hasta
            )));
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO cafs (company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $3, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[&rec.company, &rec.tipo, &rec.desde, &rec.hasta, &rec.fa, &rec.expires_on, &rec.idk, &rec.authority, &rec.sealed, &rec.created_at],
            )
            .await?
            .get(0);
        append_audit(&tx, &audit, rec.created_at).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_cafs(&self, rut: &str) -> Result<Vec<CafRecord>, StoreError> {
        let c = self.pool.get().await?;
        let rows =
            c.query(&format!("SELECT {CAF_COLS} FROM cafs WHERE company = $1 ORDER BY tipo, desde"), &[&rut]).await?;
        Ok(rows.iter().map(caf_row).collect())
    }

    pub async fn get_document(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<DocumentRecord>, StoreError> {
        let c = self.pool.get().await?;
        let r = c
            .query_opt(
                &format!("SELECT {DOC_COLS} FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3"),
                &[&rut, &tipo, &folio],
            )
            .await?;
        r.as_ref().map(doc_row).transpose()
    }

    pub async fn get_document_xml(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.pool.get().await?;
        let r = c
            .query_opt(
                "SELECT xml FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3",
                &[&rut, &tipo, &folio],
            )
            .await?;
        Ok(r.map(|r| r.get(0)))
    }

    pub async fn list_documents(&self, rut: &str, f: &DocFilter) -> Result<Vec<DocumentRecord>, StoreError> {
        let c = self.pool.get().await?;
        let sql = format!(
            "SELECT {DOC_COLS} FROM documents WHERE company = $1 AND ($2::INT IS NULL OR tipo = $2) AND ($3::DATE IS NULL OR fch_emis >= $3)
             AND ($4::DATE IS NULL OR fch_emis <= $4) AND ($5::TEXT IS NULL OR state = $5) AND ($6::BIGINT IS NULL OR id < $6) ORDER BY id DESC LIMIT $7"
        );
        let rows = c.query(&sql, &[&rut, &f.tipo, &f.from, &f.to, &f.state, &f.before_id, &f.limit]).await?;
        rows.iter().map(doc_row).collect()
    }

    pub async fn count_documents(&self) -> Result<i64, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_one("SELECT COUNT(*) FROM documents", &[]).await?.get(0))
    }

    pub async fn create_api_key(&self, k: ApiKeyRecord, audit: NewAudit) -> Result<(), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO api_keys (id, hash, company, scopes, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            &[&k.id, &k.hash, &k.company, &k.scopes.join(","), &k.created_at, &k.expires_at],
        )
        .await?;
        append_audit(&tx, &audit, k.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(&format!("SELECT {KEY_COLS} FROM api_keys WHERE hash = $1"), &[&hash])
            .await?
            .as_ref()
            .map(key_row))
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1"), &[&id]).await?.as_ref().map(key_row))
    }

    pub async fn revoke_api_key(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING hash",
                &[&id, &now],
            )
            .await?
        else {
            return Ok(false);
        };
        let hash: String = row.get(0);
        tx.execute(
            "INSERT INTO revoked_keys (hash, revoked_at, expires_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
            &[&hash, &now, &until],
        )
        .await?;
        append_audit(&tx, &audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn expire_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            &[&id, &at],
        )
        .await?;
        Ok(())
    }

    pub async fn revocation_list(&self) -> Result<Vec<String>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query("SELECT hash FROM revoked_keys", &[]).await?.iter().map(|r| r.get(0)).collect())
    }

    pub async fn cleanup(&self, now: DateTime<Utc>, idem_before: DateTime<Utc>) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute("DELETE FROM revoked_keys WHERE expires_at < $1", &[&now]).await?;
        c.execute("DELETE FROM idempotency WHERE created_at < $1", &[&idem_before]).await?;
        Ok(())
    }

    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c.query("SELECT id, scope, seq, action, subject, data, prev_hash, hash, created_at FROM audit ORDER BY scope, seq", &[]).await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                scope: r.get(1),
                seq: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                data: r.get(5),
                prev_hash: r.get(6),
                hash: r.get(7),
                created_at: r.get(8),
            })
            .collect())
    }
}
