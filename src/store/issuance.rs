//! Group issuance in the store: one transaction per group of documents of one company and type.
//! [`Store::lock_folios`] opens it — idempotency keys claimed, the usable CAFs locked — and hands
//! back a [`FolioLock`]; the service stamps and signs with the folios [`crate::folio`] allocates,
//! then [`FolioLock::commit`] writes every document, idempotency answer, audit entry and CAF
//! position in a few statements and commits once. Dropping the lock without committing rolls
//! everything back: no folio is used, no key stays claimed.
//!
//! Written once for both backends. What differs is locking: SQLite's transaction holds the
//! database's single write lock from its start; PostgreSQL locks the CAF rows `FOR UPDATE`, and an
//! idempotency key claimed by another instance's open transaction makes this one wait for it.

use chrono::{DateTime, NaiveDate, Utc};

use super::ops::{audit_head, audit_insert, caf, CAF_COLS};
use super::sql::{args, placeholders, value_rows, Arg, Stmt, Tx};
use super::{CafRecord, DocumentRecord, Idem, IdemState, IssuedRow, NewDocument, Store, StoreError};

/// An open issuance transaction holding the CAF locks of one company and type.
pub struct FolioLock {
    /// The CAFs with folios left and not expired, oldest range first, as locked.
    pub cafs: Vec<CafRecord>,
    /// Per document of the group, in the order asked.
    pub idem: Vec<IdemState>,
    tx: Tx,
    /// Idempotency keys this transaction claimed, `(key_id, idem_key)`.
    claimed: Vec<(String, String)>,
}

impl Store {
    /// Opens a group's transaction: claims the idempotency keys (`idems`, one per document) and
    /// locks the usable CAFs of `company` and `tipo` on `today`. Another group of the same company
    /// and type, on any instance, waits until this one commits or is dropped.
    pub async fn lock_folios(
        &self,
        company: &str,
        tipo: i32,
        today: NaiveDate,
        idems: &[Option<Idem>],
    ) -> Result<FolioLock, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let mut idem = vec![IdemState::New; idems.len()];
        let mut claimed = Vec::new();
        // Claimed in one statement, sorted: two groups claiming overlapping keys wait for each
        // other instead of deadlocking.
        let mut keyed: Vec<(usize, &Idem)> =
            idems.iter().enumerate().filter_map(|(n, i)| i.as_ref().map(|i| (n, i))).collect();
        keyed.sort_by(|a, b| (&a.1.key_id, &a.1.key).cmp(&(&b.1.key_id, &b.1.key)));
        if !keyed.is_empty() {
            let claim = if tx.is_postgres() {
                let col = |f: &dyn Fn(&Idem) -> String| Arg::Texts(keyed.iter().map(|(_, i)| Some(f(i))).collect());
                Stmt::new(
                    "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at)
                     SELECT k, i, h, NULL, $1 FROM UNNEST($2::text[], $3::text[], $4::text[]) AS t(k, i, h)
                     ON CONFLICT DO NOTHING RETURNING key_id, idem_key",
                    vec![
                        Arg::from(Utc::now()),
                        col(&|i| i.key_id.clone()),
                        col(&|i| i.key.clone()),
                        col(&|i| i.request_hash.clone()),
                    ],
                )
            } else {
                let mut a = args![Utc::now()];
                for (_, i) in &keyed {
                    a.extend(args![i.key_id.as_str(), i.key.as_str(), i.request_hash.as_str()]);
                }
                // `WHERE true`: SQLite needs it to read `ON CONFLICT` after a SELECT as an upsert.
                Stmt::new(
                    format!(
                        "WITH t(k, i, h) AS (VALUES {}) INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at)
                         SELECT k, i, h, NULL, $1 FROM t WHERE true ON CONFLICT DO NOTHING RETURNING key_id, idem_key",
                        value_rows(2, keyed.len(), 3, &[])
                    ),
                    a,
                )
            };
            let got = tx.query(&claim.sql, claim.args).await?;
            let mut taken = Vec::with_capacity(got.len());
            for r in &got {
                taken.push((r.text(0)?, r.text(1)?));
            }
            for (n, i) in &keyed {
                let key = (i.key_id.clone(), i.key.clone());
                if taken.contains(&key) {
                    claimed.push(key);
                    continue;
                }
                let prior = tx
                    .query_opt(
                        "SELECT request_hash, response FROM idempotency WHERE key_id = $1 AND idem_key = $2",
                        args![i.key_id.as_str(), i.key.as_str()],
                    )
                    .await?;
                idem[*n] = match prior {
                    Some(r) if r.text(0)? == i.request_hash => IdemState::Replay(
                        r.opt(1, super::sql::Vals::text)?
                            .and_then(|s| serde_json::from_str(&s).ok())
                            .unwrap_or_default(),
                    ),
                    Some(_) => IdemState::Mismatch,
                    // The old record expired and was cleaned up meanwhile: the key is free again.
                    None => {
                        tx.exec(
                            "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at) VALUES ($1, $2, $3, NULL, $4)",
                            args![i.key_id.as_str(), i.key.as_str(), i.request_hash.as_str(), Utc::now()],
                        )
                        .await?;
                        claimed.push(key);
                        IdemState::New
                    }
                };
            }
        }
        let mut cafs = Vec::new();
        if idem.iter().any(|s| matches!(s, IdemState::New)) {
            // Every usable CAF, not only the first: a group may run past the end of one. On
            // PostgreSQL a CAF that the transaction we waited for exhausted drops out on re-check.
            let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
            for r in tx
                .query(
                    &format!(
                        "SELECT {CAF_COLS} FROM cafs WHERE company = $1 AND tipo = $2 AND next_folio <= hasta
                         AND (expires_on IS NULL OR expires_on >= $3) AND retired_at IS NULL ORDER BY desde{lock}"
                    ),
                    args![company, tipo, today],
                )
                .await?
            {
                cafs.push(caf(&r)?);
            }
        }
        Ok(FolioLock { cafs, idem, tx, claimed })
    }
}

impl FolioLock {
    /// Ends the transaction without writing (nothing of the group is issued).
    pub async fn release(self) {
        self.tx.rollback().await;
    }

    /// Writes the group and commits: documents (in `rows` order), their idempotency answers and
    /// audit entries, and each CAF's new `next_folio` from `advanced`.
    pub async fn commit(
        mut self,
        docs: Vec<IssuedRow>,
        advanced: Vec<(i64, i64)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        // Everything that does not depend on another answer goes out together (one round trip on
        // PostgreSQL); then the audit entries, which chain on the head read here, with the COMMIT.
        let mut first = Vec::new();
        if !advanced.is_empty() {
            let mut a = Vec::new();
            for (id, next) in &advanced {
                a.extend(args![*id, *next]);
            }
            first.push(Stmt::new(
                format!(
                    "WITH t(id, n) AS (VALUES {}) UPDATE cafs SET next_folio = t.n FROM t WHERE cafs.id = t.id AND cafs.next_folio < t.n",
                    value_rows(1, advanced.len(), 2, &["::bigint", "::bigint"])
                ),
                a,
            ));
        }
        // A key claimed for a document that left the group (it failed, or no folio was left) is
        // released: the client's retry must be issued, not answered with nothing.
        let released: Vec<&(String, String)> = self
            .claimed
            .iter()
            .filter(|(k, i)| !docs.iter().filter_map(|r| r.idem.as_ref()).any(|x| x.key_id == *k && x.key == *i))
            .collect();
        if !released.is_empty() {
            let mut a = Vec::new();
            for (k, i) in &released {
                a.extend(args![k.as_str(), i.as_str()]);
            }
            first.push(Stmt::new(
                format!(
                    "DELETE FROM idempotency WHERE response IS NULL AND (key_id, idem_key) IN (VALUES {})",
                    value_rows(1, released.len(), 2, &["::text", "::text"])
                ),
                a,
            ));
        }
        let Some(head_doc) = docs.first() else {
            self.tx.run_all(first, false).await?;
            self.tx.commit().await?;
            return Ok(Vec::new());
        };
        let scope = head_doc.audit.scope.clone();
        let docs_at = first.len();
        let (company, tipo) = (head_doc.doc.company.as_str(), head_doc.doc.tipo);
        first.push(if self.tx.is_postgres() {
            // Columns as arrays: one statement text whatever the group's size.
            let col = |f: &dyn Fn(&NewDocument) -> Option<String>| Arg::Texts(docs.iter().map(|r| f(&r.doc)).collect());
            Stmt::new(
                "INSERT INTO documents (company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, xml, ted, state, api_key_id, trace, created_at)
                 SELECT $1, $2, f, ca, fe, rr, m, t, x, te, 'issued', k, tr, $3
                 FROM UNNEST($4::bigint[], $5::bigint[], $6::date[], $7::text[], $8::bigint[], $9::text[], $10::bytea[], $11::text[], $12::text[], $13::text[])
                   AS u(f, ca, fe, rr, m, t, x, te, k, tr)
                 RETURNING id, folio",
                vec![
                    Arg::from(company),
                    Arg::from(tipo),
                    Arg::from(now),
                    Arg::Ints(docs.iter().map(|r| r.doc.folio).collect()),
                    Arg::Ints(docs.iter().map(|r| r.doc.caf_id).collect()),
                    Arg::Dates(docs.iter().map(|r| r.doc.fch_emis).collect()),
                    col(&|d| Some(d.rut_recep.clone())),
                    Arg::Ints(docs.iter().map(|r| r.doc.mnt_total).collect()),
                    col(&|d| Some(d.totals.to_string())),
                    Arg::Blobs(docs.iter().map(|r| r.doc.xml.clone()).collect()),
                    col(&|d| Some(d.ted.clone())),
                    col(&|d| d.api_key_id.clone()),
                    col(&|d| d.trace.clone()),
                ],
            )
        } else {
            let mut a = args![company, tipo, now];
            let mut values = Vec::with_capacity(docs.len());
            for r in &docs {
                let d = &r.doc;
                let b = a.len() + 1;
                values.push(format!("($1, $2, {}, 'issued', ${}, ${}, $3)", placeholders(b, 8), b + 8, b + 9));
                a.extend(args![
                    d.folio,
                    d.caf_id,
                    d.fch_emis,
                    d.rut_recep.as_str(),
                    d.mnt_total,
                    d.totals.to_string(),
                    d.xml.clone(),
                    d.ted.as_str(),
                    d.api_key_id.clone(),
                    d.trace.clone()
                ]);
            }
            Stmt::new(
                format!(
                    "INSERT INTO documents (company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, xml, ted, state, api_key_id, trace, created_at)
                     VALUES {} RETURNING id, folio",
                    values.join(", ")
                ),
                a,
            )
        });
        let answered: Vec<(&Idem, String)> =
            docs.iter().filter_map(|r| r.idem.as_ref().map(|i| (i, r.response.to_string()))).collect();
        if !answered.is_empty() {
            first.push(if self.tx.is_postgres() {
                let col =
                    |f: &dyn Fn(&(&Idem, String)) -> String| Arg::Texts(answered.iter().map(|x| Some(f(x))).collect());
                Stmt::new(
                    "UPDATE idempotency SET response = t.r FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(k, i, r)
                     WHERE idempotency.key_id = t.k AND idempotency.idem_key = t.i",
                    vec![col(&|x| x.0.key_id.clone()), col(&|x| x.0.key.clone()), col(&|x| x.1.clone())],
                )
            } else {
                let mut a = Vec::new();
                for (i, resp) in &answered {
                    a.extend(args![i.key_id.as_str(), i.key.as_str(), resp.as_str()]);
                }
                Stmt::new(
                    format!(
                        "WITH t(k, i, r) AS (VALUES {}) UPDATE idempotency SET response = t.r FROM t
                         WHERE idempotency.key_id = t.k AND idempotency.idem_key = t.i",
                        value_rows(1, answered.len(), 3, &[])
                    ),
                    a,
                )
            });
        }
        first.extend(audit_head(&self.tx, &scope));
        let mut results = self.tx.run_all(first, true).await?;
        let head = results.pop().and_then(|(_, mut r)| r.pop());
        let mut by_folio = std::collections::HashMap::with_capacity(docs.len());
        for r in &results[docs_at].1 {
            by_folio.insert(r.i64(1)?, r.i64(0)?);
        }
        let audits: Vec<_> = docs.iter().map(|r| r.audit.clone()).collect();
        let insert = audit_insert(&self.tx, &scope, head.as_ref(), &audits, now)?;
        let mut out = Vec::with_capacity(docs.len());
        for r in docs {
            let folio = r.doc.folio;
            let id =
                by_folio.get(&folio).copied().ok_or_else(|| StoreError::Db(format!("folio {folio} was not stored")))?;
            out.push(r.doc.stored(id, now));
        }
        self.tx.commit_with(vec![insert]).await?;
        Ok(out)
    }
}
