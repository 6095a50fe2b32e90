//! Group issuance on PostgreSQL: one pooled connection in an explicit transaction for the group.
//! The CAF rows are locked `FOR UPDATE`, so groups of the same company and type on every instance
//! take turns; each statement writes the whole group (arrays through `UNNEST`), so a group costs a
//! handful of round trips and one commit whatever its size.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Object;

use super::postgres::{audit_head, caf_row, insert_audits, PgStore, CAF_COLS};
use super::{CafRecord, DocumentRecord, Idem, IdemState, IssuedRow, StoreError};

/// A connection inside `BEGIN`. Dropped without [`PgTx::commit`]: the connection is taken out of
/// the pool and closed, which makes the server roll the transaction back (a drop cannot await a
/// `ROLLBACK`, and the connection must never go back to the pool mid-transaction).
pub(crate) struct PgTx {
    conn: Option<Object>,
    /// Idempotency keys this transaction claimed, `(key_id, idem_key)`.
    claimed: Vec<(String, String)>,
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(Object::take(c));
        }
    }
}

impl PgTx {
    fn client(&self) -> Result<&Object, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Db("connection".into()))
    }
}

impl PgStore {
    pub(super) async fn lock_folios(
        &self,
        company: &str,
        tipo: i32,
        today: NaiveDate,
        idems: &[Option<Idem>],
    ) -> Result<(Vec<CafRecord>, Vec<IdemState>, PgTx), StoreError> {
        let conn = self.pool.get().await?;
        conn.batch_execute("BEGIN").await?;
        let mut tx = PgTx { conn: Some(conn), claimed: Vec::new() };
        let mut mine = Vec::new();
        let c = tx.client()?;
        let mut idem = vec![IdemState::New; idems.len()];
        // Keys claimed in one sorted statement: two groups claiming overlapping keys wait for each
        // other instead of deadlocking; a key another transaction holds makes this one wait for it.
        let mut keyed: Vec<(usize, &Idem)> =
            idems.iter().enumerate().filter_map(|(n, i)| i.as_ref().map(|i| (n, i))).collect();
        keyed.sort_by(|a, b| (&a.1.key_id, &a.1.key).cmp(&(&b.1.key_id, &b.1.key)));
        if !keyed.is_empty() {
            let key_ids: Vec<&str> = keyed.iter().map(|(_, i)| i.key_id.as_str()).collect();
            let keys: Vec<&str> = keyed.iter().map(|(_, i)| i.key.as_str()).collect();
            let hashes: Vec<&str> = keyed.iter().map(|(_, i)| i.request_hash.as_str()).collect();
            let now = Utc::now();
            let claimed = c
                .query(
                    "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at)
                     SELECT k, i, h, NULL, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(k, i, h)
                     ON CONFLICT DO NOTHING RETURNING key_id, idem_key",
                    &[&key_ids, &keys, &hashes, &now],
                )
                .await?;
            let is_claimed =
                |i: &Idem| claimed.iter().any(|r| r.get::<_, &str>(0) == i.key_id && r.get::<_, &str>(1) == i.key);
            for (n, i) in &keyed {
                if is_claimed(i) {
                    mine.push((i.key_id.clone(), i.key.clone()));
                    continue;
                }
                let row = c
                    .query_opt(
                        "SELECT request_hash, response FROM idempotency WHERE key_id = $1 AND idem_key = $2",
                        &[&i.key_id, &i.key],
                    )
                    .await?;
                idem[*n] = match row {
                    Some(r) if r.get::<_, String>(0) == i.request_hash => IdemState::Replay(
                        r.get::<_, Option<String>>(1).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
                    ),
                    Some(_) => IdemState::Mismatch,
                    // The old record expired and was cleaned up meanwhile: the key is free again.
                    None => {
                        let now = Utc::now();
                        c.execute(
                            "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at) VALUES ($1, $2, $3, NULL, $4)",
                            &[&i.key_id, &i.key, &i.request_hash, &now],
                        )
                        .await?;
                        mine.push((i.key_id.clone(), i.key.clone()));
                        IdemState::New
                    }
                };
            }
        }
        tx.claimed = mine;
        if !idem.iter().any(|s| matches!(s, IdemState::New)) {
            return Ok((Vec::new(), idem, tx));
        }
        let c = tx.client()?;
        // Every usable CAF, not only the first: a group may run past the end of one. A CAF that
        // the transaction we waited for exhausted is re-checked by the lock and drops out.
        let select = c
            .prepare_cached(&format!(
                "SELECT {CAF_COLS} FROM cafs WHERE company = $1 AND tipo = $2 AND next_folio <= hasta
                 AND (expires_on IS NULL OR expires_on >= $3) ORDER BY desde FOR UPDATE"
            ))
            .await?;
        let cafs = c.query(&select, &[&company, &tipo, &today]).await?.iter().map(caf_row).collect();
        Ok((cafs, idem, tx))
    }
}

impl PgTx {
    /// Rolls back and returns the connection to the pool (a failed rollback closes it instead).
    pub(super) async fn rollback(mut self: Box<Self>) {
        if let Some(c) = self.conn.take() {
            if c.batch_execute("ROLLBACK").await.is_err() {
                drop(Object::take(c));
            }
        }
    }

    pub(super) async fn commit(
        mut self: Box<Self>,
        rows: Vec<IssuedRow>,
        advanced: Vec<(i64, i64)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        let c = self.client()?;
        let (s_caf, s_release, s_docs, s_idem) = tokio::try_join!(
            c.prepare_cached(
                "UPDATE cafs SET next_folio = t.n FROM UNNEST($1::bigint[], $2::bigint[]) AS t(id, n)
                 WHERE cafs.id = t.id AND cafs.next_folio < t.n",
            ),
            c.prepare_cached(
                "DELETE FROM idempotency USING UNNEST($1::text[], $2::text[]) AS t(k, i)
                 WHERE idempotency.key_id = t.k AND idempotency.idem_key = t.i AND idempotency.response IS NULL",
            ),
            c.prepare_cached(
                "INSERT INTO documents (company, tipo, folio, caf_id, fch_emis, rut_recep, mnt_total, totals, xml, ted, state, api_key_id, created_at)
                 SELECT $1, $2, f, ca, fe, rr, m, t, x, te, 'issued', k, $12
                 FROM UNNEST($3::bigint[], $4::bigint[], $5::date[], $6::text[], $7::bigint[], $8::text[], $9::bytea[], $10::text[], $11::text[])
                   AS u(f, ca, fe, rr, m, t, x, te, k)
                 RETURNING id, folio",
            ),
            c.prepare_cached(
                "UPDATE idempotency SET response = t.r FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(k, i, r)
                 WHERE idempotency.key_id = t.k AND idempotency.idem_key = t.i",
            ),
        )
        .map_err(StoreError::from)?;
        let (caf_ids, nexts): (Vec<i64>, Vec<i64>) = advanced.iter().copied().unzip();
        // A key claimed for a document that left the group (it failed, or no folio was left) is
        // released: the client's retry must be issued, not answered with nothing.
        let released: Vec<&(String, String)> = self
            .claimed
            .iter()
            .filter(|(k, i)| !rows.iter().filter_map(|r| r.idem.as_ref()).any(|x| x.key_id == *k && x.key == *i))
            .collect();
        let rel_k: Vec<&str> = released.iter().map(|(k, _)| k.as_str()).collect();
        let rel_i: Vec<&str> = released.iter().map(|(_, i)| i.as_str()).collect();
        let (company, tipo) = rows.first().map(|r| (r.doc.company.clone(), r.doc.tipo)).unwrap_or_default();
        let folios: Vec<i64> = rows.iter().map(|r| r.doc.folio).collect();
        let doc_cafs: Vec<i64> = rows.iter().map(|r| r.doc.caf_id).collect();
        let fch: Vec<NaiveDate> = rows.iter().map(|r| r.doc.fch_emis).collect();
        let recep: Vec<&str> = rows.iter().map(|r| r.doc.rut_recep.as_str()).collect();
        let mnt: Vec<i64> = rows.iter().map(|r| r.doc.mnt_total).collect();
        let totals: Vec<String> = rows.iter().map(|r| r.doc.totals.to_string()).collect();
        let xml: Vec<&[u8]> = rows.iter().map(|r| r.doc.xml.as_slice()).collect();
        let ted: Vec<&str> = rows.iter().map(|r| r.doc.ted.as_str()).collect();
        let keys: Vec<Option<&str>> = rows.iter().map(|r| r.doc.api_key_id.as_deref()).collect();
        let idem: Vec<(&Idem, String)> =
            rows.iter().filter_map(|r| r.idem.as_ref().map(|i| (i, r.response.to_string()))).collect();
        let idem_k: Vec<&str> = idem.iter().map(|(i, _)| i.key_id.as_str()).collect();
        let idem_i: Vec<&str> = idem.iter().map(|(i, _)| i.key.as_str()).collect();
        let idem_r: Vec<&str> = idem.iter().map(|(_, r)| r.as_str()).collect();
        let audits: Vec<_> = rows.iter().map(|r| r.audit.clone()).collect();
        // Independent statements go out together (tokio-postgres pipelines what is polled at
        // once), so the group pays about one round trip for all of them.
        let (_, _, ids, _, head) = tokio::try_join!(
            async {
                if caf_ids.is_empty() {
                    return Ok(0);
                }
                c.execute(&s_caf, &[&caf_ids, &nexts]).await.map_err(StoreError::from)
            },
            async {
                if rel_k.is_empty() {
                    return Ok(0);
                }
                c.execute(&s_release, &[&rel_k, &rel_i]).await.map_err(StoreError::from)
            },
            async {
                if folios.is_empty() {
                    return Ok(Vec::new());
                }
                c.query(
                    &s_docs,
                    &[&company, &tipo, &folios, &doc_cafs, &fch, &recep, &mnt, &totals, &xml, &ted, &keys, &now],
                )
                .await
                .map_err(StoreError::from)
            },
            async {
                if idem_k.is_empty() {
                    return Ok(0);
                }
                c.execute(&s_idem, &[&idem_k, &idem_i, &idem_r]).await.map_err(StoreError::from)
            },
            async {
                if audits.is_empty() {
                    return Ok((0, String::new()));
                }
                audit_head(c, &company).await
            },
        )?;
        if !audits.is_empty() {
            insert_audits(c, &company, head, &audits, now).await?;
        }
        let ids: std::collections::HashMap<i64, i64> =
            ids.iter().map(|r| (r.get::<_, i64>(1), r.get::<_, i64>(0))).collect();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let folio = r.doc.folio;
            let id = ids.get(&folio).copied().ok_or_else(|| StoreError::Db(format!("folio {folio} was not stored")))?;
            out.push(r.doc.stored(id, now));
        }
        c.batch_execute("COMMIT").await?;
        // Committed: the connection goes back to the pool clean.
        drop(self.conn.take());
        Ok(out)
    }
}
