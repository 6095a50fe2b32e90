//! The store's operations on companies, certificates, CAFs, documents, API keys and the audit
//! chain, each written once for both backends through [`super::sql`]. Where the backends really
//! differ — PostgreSQL takes row and advisory locks that SQLite's single write lock makes
//! unnecessary — the statement says so next to the shared one.

use chrono::{DateTime, Utc};

use super::sql::{args, Arg, Stmt, Tx, Vals};
use super::*;

pub(super) const CAF_COLS: &str =
    "id, company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at, retired_at";
const DOC_COLS: &str = "id, company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, state, created_at";
pub(super) const KEY_COLS: &str = "id, hash, company, scopes, created_at, expires_at, revoked_at";

pub(super) fn caf(r: &Vals) -> Result<CafRecord, StoreError> {
    Ok(CafRecord {
        id: r.i64(0)?,
        company: r.text(1)?,
        tipo: r.i32(2)?,
        desde: r.i64(3)?,
        hasta: r.i64(4)?,
        next_folio: r.i64(5)?,
        fa: r.date(6)?,
        expires_on: r.opt(7, Vals::date)?,
        idk: r.i64(8)?,
        authority: r.text(9)?,
        sealed: r.bytes(10)?,
        created_at: r.ts(11)?,
        retired_at: r.opt(12, Vals::ts)?,
    })
}

fn document(r: &Vals) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        id: r.i64(0)?,
        company: r.text(1)?,
        tipo: r.i32(2)?,
        folio: r.i64(3)?,
        caf_id: r.i64(4)?,
        fch_emis: r.date(5)?,
        rut_recep: r.text(6)?,
        mnt_total: r.i64(7)?,
        totals: serde_json::from_str(&r.text(8)?).map_err(|e| StoreError::Db(format!("totals: {e}")))?,
        state: r.parse(9)?,
        created_at: r.ts(10)?,
    })
}

pub(super) fn key(r: &Vals) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: r.text(0)?,
        hash: r.text(1)?,
        company: r.opt(2, Vals::text)?,
        scopes: r.text(3)?.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        created_at: r.ts(4)?,
        expires_at: r.opt(5, Vals::ts)?,
        revoked_at: r.opt(6, Vals::ts)?,
    })
}

/// Appends `a` to its chain in the caller's transaction.
pub(super) async fn append_audit(tx: &mut Tx, a: &NewAudit, now: DateTime<Utc>) -> Result<(), StoreError> {
    append_audits(tx, std::slice::from_ref(a), now).await
}

/// Appends entries to their chains in order, in the caller's transaction.
pub(super) async fn append_audits(tx: &mut Tx, entries: &[NewAudit], now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut scopes: Vec<&str> = Vec::new();
    for e in entries {
        if !scopes.contains(&e.scope.as_str()) {
            scopes.push(&e.scope);
        }
    }
    for scope in scopes {
        let head = tx.run_all(audit_head(tx, scope), true).await?.pop().and_then(|(_, mut r)| r.pop());
        let mine: Vec<NewAudit> = entries.iter().filter(|e| e.scope == scope).cloned().collect();
        let insert = audit_insert(tx, scope, head.as_ref(), &mine, now)?;
        tx.exec(&insert.sql, insert.args).await?;
    }
    Ok(())
}

/// The statements that take a chain's lock (one writer per chain; SQLite's write lock already
/// gives that) and read its last entry; the last statement's row is the head.
pub(super) fn audit_head(tx: &Tx, scope: &str) -> Vec<Stmt> {
    let mut v = Vec::new();
    if tx.is_postgres() {
        v.push(Stmt::new("SELECT pg_advisory_xact_lock(hashtext($1))", args![scope]));
    }
    v.push(Stmt::new("SELECT seq, hash FROM audit WHERE scope = $1 ORDER BY seq DESC LIMIT 1", args![scope]));
    v
}

type Link<'a> = (i64, &'a NewAudit, String, String);

/// One statement appending `entries` (all of `scope`) after `head` (from [`audit_head`]).
pub(super) fn audit_insert(
    tx: &Tx,
    scope: &str,
    head: Option<&Vals>,
    entries: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<Stmt, StoreError> {
    let (mut seq, mut prev) = match head {
        Some(r) => (r.i64(0)?, r.text(1)?),
        None => (0, GENESIS.to_string()),
    };
    let at = ts(now);
    let key = tx
        .audit_key
        .ok_or_else(|| StoreError::Db("no audit key: the store was opened without the master key".into()))?;
    // (seq, entry, prev_hash, hash) of each new link.
    let mut chain: Vec<Link> = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let h = super::audit::audit_mac(&key, &prev, scope, seq, e.action, &e.subject, &e.data, &at);
        chain.push((seq, e, std::mem::replace(&mut prev, h.clone()), h));
    }
    if tx.is_postgres() {
        // Columns as arrays: one statement text whatever the number of entries.
        let col = |f: &dyn Fn(&Link) -> String| Arg::Texts(chain.iter().map(|c| Some(f(c))).collect());
        return Ok(Stmt::new(
            "INSERT INTO audit (scope, seq, action, subject, data, prev_hash, hash, created_at)
             SELECT $1, s, a, su, d, p, h, $2 FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
               AS t(s, a, su, d, p, h)",
            vec![
                Arg::from(scope),
                Arg::from(at.as_str()),
                Arg::Ints(chain.iter().map(|c| c.0).collect()),
                col(&|c| c.1.action.to_string()),
                col(&|c| c.1.subject.clone()),
                col(&|c| c.1.data.clone()),
                col(&|c| c.2.clone()),
                col(&|c| c.3.clone()),
            ],
        ));
    }
    let mut a = args![scope, at.as_str()];
    let mut rows = Vec::new();
    for (seq, e, prev, h) in &chain {
        let n = a.len();
        rows.push(format!("($1, ${}, ${}, ${}, ${}, ${}, ${}, $2)", n + 1, n + 2, n + 3, n + 4, n + 5, n + 6));
        a.extend(args![*seq, e.action, e.subject.as_str(), e.data.as_str(), prev.as_str(), h.as_str()]);
    }
    Ok(Stmt::new(
        format!(
            "INSERT INTO audit (scope, seq, action, subject, data, prev_hash, hash, created_at) VALUES {}",
            rows.join(", ")
        ),
        a,
    ))
}

impl Store {
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", args![]).await.map(|_| ())
    }

    /// Re-seals every certificate, CAF key and webhook secret and re-keys the audit chains under a
    /// new master key, in one transaction; (certificates, CAFs).
    pub async fn reseal(
        &self,
        f: ResealFn,
        to: (&AuditKey, &str),
        audit: NewAudit,
    ) -> Result<(usize, usize), StoreError> {
        let old = self.audit_key().ok_or_else(|| StoreError::Db("no audit key".into()))?;
        let mut tx = Tx::begin(self).await?;
        // On PostgreSQL the rows are locked in the order issuance groups lock CAFs.
        let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
        let certs =
            tx.query(&format!("SELECT company, sealed FROM certificates ORDER BY company{lock}"), args![]).await?;
        for r in &certs {
            let (company, sealed) = (r.text(0)?, r.bytes(1)?);
            let new = f(&company, &sealed).map_err(|e| StoreError::Db(format!("certificate of {company}: {e}")))?;
            tx.exec("UPDATE certificates SET sealed = $1 WHERE company = $2", args![new, company]).await?;
        }
        let cafs = tx
            .query(&format!("SELECT id, company, sealed FROM cafs ORDER BY company, tipo, desde{lock}"), args![])
            .await?;
        for r in &cafs {
            let (id, company, sealed) = (r.i64(0)?, r.text(1)?, r.bytes(2)?);
            let new = f(&company, &sealed).map_err(|e| StoreError::Db(format!("CAF {id}: {e}")))?;
            tx.exec("UPDATE cafs SET sealed = $1 WHERE id = $2", args![new, id]).await?;
        }
        let hooks = tx.query(&format!("SELECT id, url, secret FROM webhooks ORDER BY id{lock}"), args![]).await?;
        for r in &hooks {
            let (id, url, secret) = (r.i64(0)?, r.text(1)?, r.text(2)?);
            let sealed = crate::vault::unwrap_text(&secret)
                .ok_or_else(|| StoreError::Db(format!("webhook {id}: its secret is not sealed")))?;
            let new = f(&crate::vault::webhook_aad(&url), &sealed)
                .map_err(|e| StoreError::Db(format!("webhook {id}: {e}")))?;
            tx.exec("UPDATE webhooks SET secret = $1 WHERE id = $2", args![crate::vault::wrap_text(&new), id]).await?;
        }
        let boxes = tx
            .query(&format!("SELECT company, password, smtp_password FROM mailboxes ORDER BY company{lock}"), args![])
            .await?;
        for r in &boxes {
            let company = r.text(0)?;
            let again = |slot: &str, v: Option<String>| -> Result<Option<String>, StoreError> {
                let Some(v) = v else { return Ok(None) };
                let sealed = crate::vault::unwrap_text(&v)
                    .ok_or_else(|| StoreError::Db(format!("mailbox of {company}: its {slot} is not sealed")))?;
                let new = f(&crate::vault::mailbox_aad(&company, slot), &sealed)
                    .map_err(|e| StoreError::Db(format!("mailbox of {company}: {e}")))?;
                Ok(Some(crate::vault::wrap_text(&new)))
            };
            let imap = again("imap", Some(r.text(1)?))?;
            let smtp = again("smtp", r.opt(2, Vals::text)?)?;
            tx.exec(
                "UPDATE mailboxes SET password = $1, smtp_password = $2 WHERE company = $3",
                args![imap, smtp, company.as_str()],
            )
            .await?;
        }
        Store::rekey_audit(&mut tx, &old, to.0, to.1).await?;
        // The rotation's own entry is the first under the new key.
        tx.audit_key = Some(*to.0);
        append_audit(&mut tx, &audit, Utc::now()).await?;
        tx.commit().await?;
        Ok((certs.len(), cafs.len()))
    }

    pub async fn create_company(&self, rec: CompanyRecord, audit: NewAudit) -> Result<(), StoreError> {
        let data = serde_json::to_string(&rec.company).map_err(|e| StoreError::Db(e.to_string()))?;
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(
                "INSERT INTO companies (rut, data, environment, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (rut) DO NOTHING",
                args![rec.rut.as_str(), data, rec.environment.as_str(), rec.created_at],
            )
            .await?;
        if n == 0 {
            tx.rollback().await;
            return Err(StoreError::Conflict(format!("company {} already exists", rec.rut)));
        }
        append_audit(&mut tx, &audit, rec.created_at).await?;
        tx.commit().await
    }

    /// Moves a company to `env` with its data (resolution) in one transaction: first the CAFs of
    /// the other environment are retired (which waits for issuance that holds them), then, if a
    /// document still waits to be sent or for its verdict, nothing is written.
    pub async fn switch_environment(
        &self,
        rut: &str,
        company: &crate::domain::Company,
        env: Environment,
        usable: &[&str],
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let data = serde_json::to_string(company).map_err(|e| StoreError::Db(e.to_string()))?;
        let kept: Vec<String> = usable.iter().map(|a| format!("'{a}'")).collect();
        let mut tx = Tx::begin(self).await?;
        let retired = tx
            .exec(
                &format!(
                    "UPDATE cafs SET retired_at = $2 WHERE company = $1 AND retired_at IS NULL AND authority NOT IN ({})",
                    kept.join(", ")
                ),
                args![rut, now],
            )
            .await?;
        let waiting = tx
            .query_opt("SELECT COUNT(*) FROM documents WHERE company = $1 AND state IN ('issued', 'sent')", args![rut])
            .await?
            .map(|r| r.i64(0))
            .transpose()?
            .unwrap_or(0);
        if waiting > 0 {
            tx.rollback().await;
            return Err(StoreError::Conflict(format!(
                "{waiting} document(s) of {rut} wait to be sent or for the SII's verdict; switch environment once they have it"
            )));
        }
        tx.exec("UPDATE companies SET data = $2, environment = $3 WHERE rut = $1", args![rut, data, env.as_str()])
            .await?;
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(retired)
    }

    pub async fn get_company(&self, rut: &str) -> Result<Option<CompanyRecord>, StoreError> {
        let Some(r) = self
            .query_opt("SELECT rut, data, environment, created_at FROM companies WHERE rut = $1", args![rut])
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(CompanyRecord {
            rut: r.text(0)?,
            company: serde_json::from_str(&r.text(1)?).map_err(|e| StoreError::Db(e.to_string()))?,
            environment: r.parse(2)?,
            created_at: r.ts(3)?,
        }))
    }

    /// Every company's RUT.
    pub async fn companies(&self) -> Result<Vec<String>, StoreError> {
        self.query("SELECT rut FROM companies ORDER BY rut", args![]).await?.iter().map(|r| r.text(0)).collect()
    }

    pub async fn put_certificate(&self, rec: CertRecord, audit: NewAudit) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "INSERT INTO certificates (company, sealed, subject, holder_rut, not_after, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (company) DO UPDATE SET sealed = excluded.sealed, subject = excluded.subject, holder_rut = excluded.holder_rut,
             not_after = excluded.not_after, updated_at = excluded.updated_at",
            args![rec.company.as_str(), rec.sealed.clone(), rec.subject.as_str(), rec.holder_rut.as_str(), rec.not_after, rec.updated_at],
        )
        .await?;
        append_audit(&mut tx, &audit, rec.updated_at).await?;
        tx.commit().await
    }

    pub async fn get_certificate(&self, rut: &str) -> Result<Option<CertRecord>, StoreError> {
        let Some(r) = self
            .query_opt(
                "SELECT company, sealed, subject, holder_rut, not_after, updated_at FROM certificates WHERE company = $1",
                args![rut],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(CertRecord {
            company: r.text(0)?,
            sealed: r.bytes(1)?,
            subject: r.text(2)?,
            holder_rut: r.text(3)?,
            not_after: r.ts(4)?,
            updated_at: r.ts(5)?,
        }))
    }

    /// Adds a CAF unless it overlaps one of the same company and type.
    pub async fn add_caf(&self, rec: CafRecord, audit: NewAudit) -> Result<i64, StoreError> {
        let mut tx = Tx::begin(self).await?;
        if tx.is_postgres() {
            // Serialise CAF uploads of one company so the overlap check cannot race.
            tx.exec("SELECT pg_advisory_xact_lock(hashtext('caf:' || $1))", args![rec.company.as_str()]).await?;
        }
        let overlap = tx
            .query_opt(
                "SELECT COUNT(*) FROM cafs WHERE company = $1 AND tipo = $2 AND desde <= $4 AND hasta >= $3",
                args![rec.company.as_str(), rec.tipo, rec.desde, rec.hasta],
            )
            .await?
            .map(|r| r.i64(0))
            .transpose()?
            .unwrap_or(0);
        if overlap > 0 {
            tx.rollback().await;
            return Err(StoreError::Conflict(format!(
                "a CAF of type {} already covers part of folios {}-{}",
                rec.tipo, rec.desde, rec.hasta
            )));
        }
        let id = tx
            .query_opt(
                "INSERT INTO cafs (company, tipo, desde, hasta, next_folio, fa, expires_on, idk, authority, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $3, $5, $6, $7, $8, $9, $10) RETURNING id",
                args![
                    rec.company.as_str(),
                    rec.tipo,
                    rec.desde,
                    rec.hasta,
                    rec.fa,
                    rec.expires_on,
                    rec.idk,
                    rec.authority.as_str(),
                    rec.sealed.clone(),
                    rec.created_at
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Db("no id for the new CAF".into()))?
            .i64(0)?;
        append_audit(&mut tx, &audit, rec.created_at).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_cafs(&self, rut: &str) -> Result<Vec<CafRecord>, StoreError> {
        self.query(&format!("SELECT {CAF_COLS} FROM cafs WHERE company = $1 ORDER BY tipo, desde"), args![rut])
            .await?
            .iter()
            .map(caf)
            .collect()
    }

    pub async fn get_document(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<DocumentRecord>, StoreError> {
        self.query_opt(
            &format!("SELECT {DOC_COLS} FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3"),
            args![rut, tipo, folio],
        )
        .await?
        .as_ref()
        .map(document)
        .transpose()
    }

    pub async fn get_document_xml(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.query_opt(
            "SELECT xml FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3",
            args![rut, tipo, folio],
        )
        .await?
        .map(|r| r.bytes(0))
        .transpose()
    }

    /// A company's documents, newest first, filtered and paged by id.
    pub async fn list_documents(&self, rut: &str, f: &DocFilter) -> Result<Vec<DocumentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DOC_COLS} FROM documents WHERE company = $1 AND ($2::INT IS NULL OR tipo = $2) AND ($3::DATE IS NULL OR fch_emis >= $3)
             AND ($4::DATE IS NULL OR fch_emis <= $4) AND ($5::TEXT IS NULL OR state = $5) AND ($6::BIGINT IS NULL OR id < $6)
             AND ($8::TEXT IS NULL OR rut_recep = $8) AND ($9::BIGINT IS NULL OR folio = $9) ORDER BY id DESC LIMIT $7"
        );
        let state = f.state.map(|s| s.as_str());
        self.query(&sql, args![rut, f.tipo, f.from, f.to, state, f.before_id, f.limit, f.rut_recep.clone(), f.folio])
            .await?
            .iter()
            .map(document)
            .collect()
    }

    pub async fn create_api_key(&self, k: ApiKeyRecord, audit: NewAudit) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "INSERT INTO api_keys (id, hash, company, scopes, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            args![k.id.as_str(), k.hash.as_str(), k.company.clone(), k.scopes.join(","), k.created_at, k.expires_at],
        )
        .await?;
        append_audit(&mut tx, &audit, k.created_at).await?;
        tx.commit().await
    }

    pub async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.query_opt(&format!("SELECT {KEY_COLS} FROM api_keys WHERE hash = $1"), args![hash])
            .await?
            .as_ref()
            .map(key)
            .transpose()
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.query_opt(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1"), args![id])
            .await?
            .as_ref()
            .map(key)
            .transpose()
    }

    /// Marks the key revoked and lists its hash in the revocation list until `until`.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let Some(r) = tx
            .query_opt(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING hash",
                args![id, now],
            )
            .await?
        else {
            tx.rollback().await;
            return Ok(false);
        };
        tx.exec(
            "INSERT INTO revoked_keys (hash, revoked_at, expires_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
            args![r.text(0)?, now, until],
        )
        .await?;
        // The console's sessions opened with the key end with it.
        tx.exec("DELETE FROM console_sessions WHERE key_id = $1", args![id]).await?;
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a key an end of life (the old key of a rotation).
    pub async fn expire_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec(
            "UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            args![id, at],
        )
        .await
        .map(|_| ())
    }

    pub async fn revocation_list(&self) -> Result<Vec<String>, StoreError> {
        self.query("SELECT hash FROM revoked_keys", args![]).await?.iter().map(|r| r.text(0)).collect()
    }

    /// Deletes expired revocation-list entries and idempotency records older than `idem_before`.
    pub async fn cleanup(&self, now: DateTime<Utc>, idem_before: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec("DELETE FROM revoked_keys WHERE expires_at < $1", args![now]).await?;
        self.exec("DELETE FROM idempotency WHERE created_at < $1", args![idem_before]).await?;
        self.exec("DELETE FROM console_sessions WHERE expires_at < $1", args![now]).await?;
        Ok(())
    }

    /// Sets (or replaces) a company's logo, audited.
    pub async fn put_logo(
        &self,
        company: &str,
        media_type: &str,
        data: Vec<u8>,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "INSERT INTO company_logos (company, media_type, data, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (company) DO UPDATE SET media_type = excluded.media_type, data = excluded.data, updated_at = excluded.updated_at",
            args![company, media_type, data, now],
        )
        .await?;
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await
    }

    /// Retires a CAF by hand: no folio is taken from it any more. False when there is no such CAF
    /// or it was retired already. (On PostgreSQL the row lock waits for an issuance group that
    /// holds the CAF.)
    pub async fn retire_caf(
        &self,
        company: &str,
        id: i64,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let first = Stmt::new(
            "UPDATE cafs SET retired_at = $3 WHERE company = $1 AND id = $2 AND retired_at IS NULL",
            args![company, id, now],
        );
        self.change_audited(first, None, audit, now).await
    }

    /// `first`, then `then`, audited, in one transaction; false (nothing written) when `first`
    /// changed no row.
    pub(super) async fn change_audited(
        &self,
        first: Stmt,
        then: Option<Stmt>,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        if tx.exec(&first.sql, first.args).await? == 0 {
            tx.rollback().await;
            return Ok(false);
        }
        if let Some(t) = then {
            tx.exec(&t.sql, t.args).await?;
        }
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Documents issued by a company since `since`, per type.
    pub async fn issued_since(&self, company: &str, since: DateTime<Utc>) -> Result<Vec<(i32, i64)>, StoreError> {
        self.query(
            "SELECT tipo, COUNT(*) FROM documents WHERE company = $1 AND created_at >= $2 GROUP BY tipo ORDER BY tipo",
            args![company, since],
        )
        .await?
        .iter()
        .map(|r| Ok((r.i32(0)?, r.i64(1)?)))
        .collect()
    }

    /// A company's logo: (media type, bytes).
    pub async fn get_logo(&self, company: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.query_opt("SELECT media_type, data FROM company_logos WHERE company = $1", args![company])
            .await?
            .map(|r| Ok((r.text(0)?, r.bytes(1)?)))
            .transpose()
    }

    /// The last entry of every chain: (scope, seq, MAC).
    pub async fn audit_heads(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.query(
            "SELECT a.scope, a.seq, a.hash FROM audit a
             JOIN (SELECT scope, MAX(seq) AS seq FROM audit GROUP BY scope) h ON h.scope = a.scope AND h.seq = a.seq
             ORDER BY a.scope",
            args![],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.i64(1)?, r.text(2)?)))
        .collect()
    }
}
