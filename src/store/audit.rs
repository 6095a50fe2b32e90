//! The audit chains and the master key's footprint in the database.
//!
//! Each entry carries a MAC (HMAC-SHA256) under a key derived from the master key, over an
//! unambiguous encoding of its fields and the previous entry's MAC. The key is never stored, so
//! someone who can write to the database but does not hold the master key cannot rewrite an entry
//! and recompute the chain after it. Release 0.1.0 chained plain SHA-256 hashes; those chains are
//! checked and keyed once, at the first start with this version.
//!
//! `vault_check` holds the master key's check value (an HMAC of a fixed label, which reveals
//! nothing of the key): an instance started with another key is refused before it can seal
//! anything under it.

use std::sync::{Arc, OnceLock};

use chrono::Utc;

use super::sql::{args, Tx, Vals};
use super::{AuditEntry, Store, StoreError, GENESIS};

/// HMAC key of the audit chains (derived from the master key; never stored).
#[derive(Clone, Copy)]
pub struct AuditKey(pub [u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// The store's audit key, set once at start (see [`Store::set_audit_key`]).
#[derive(Clone, Default)]
pub struct AuditKeySlot(Arc<OnceLock<AuditKey>>);

impl AuditKeySlot {
    pub fn get(&self) -> Option<AuditKey> {
        self.0.get().copied()
    }
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // Length-prefixed: no choice of field contents makes two entries encode alike.
    let lengths: Vec<[u8; 8]> = parts.iter().map(|p| (p.len() as u64).to_be_bytes()).collect();
    let chunks: Vec<&[u8]> = parts.iter().zip(&lengths).flat_map(|(p, l)| [l.as_slice(), p]).collect();
    crate::crypto::hex(&crate::crypto::hmac_sha256(key, &chunks))
}

/// The MAC that chains an entry to the previous one of its scope.
#[allow(clippy::too_many_arguments)]
pub fn audit_mac(
    key: &AuditKey,
    prev: &str,
    scope: &str,
    seq: i64,
    action: &str,
    subject: &str,
    data: &str,
    at: &str,
) -> String {
    let seq = seq.to_string();
    hmac_hex(
        &key.0,
        &[
            b"dte-gateway audit v2",
            prev.as_bytes(),
            scope.as_bytes(),
            seq.as_bytes(),
            action.as_bytes(),
            subject.as_bytes(),
            data.as_bytes(),
            at.as_bytes(),
        ],
    )
}

/// Release 0.1.0's unkeyed link, read only to check a chain before keying it.
fn legacy_hash(e: &AuditEntry) -> String {
    let s = format!("{}|{}|{}|{}|{}|{}|{}", e.prev_hash, e.scope, e.seq, e.action, e.subject, e.data, e.created_at);
    crate::crypto::sha256_hex(s.as_bytes())
}

fn walk(entries: &[AuditEntry], link: impl Fn(&AuditEntry) -> String) -> Result<usize, String> {
    let mut last: std::collections::HashMap<&str, (i64, &str)> = std::collections::HashMap::new();
    for e in entries {
        let (prev_seq, prev_hash) = last.get(e.scope.as_str()).copied().unwrap_or((0, GENESIS));
        if e.seq != prev_seq + 1 {
            return Err(format!("entry {} (scope {}, seq {}): expected seq {}", e.id, e.scope, e.seq, prev_seq + 1));
        }
        if e.prev_hash != prev_hash {
            return Err(format!(
                "entry {} (scope {}, seq {}): prev_hash does not match the previous entry",
                e.id, e.scope, e.seq
            ));
        }
        if link(e) != e.hash {
            return Err(format!(
                "entry {} (scope {}, seq {}, {}): its MAC does not match its content (changed, or written without the master key)",
                e.id, e.scope, e.seq, e.action
            ));
        }
        last.insert(e.scope.as_str(), (e.seq, e.hash.as_str()));
    }
    Ok(entries.len())
}

/// Walks every chain (entries ordered by scope, seq); the first entry whose link or MAC is wrong.
pub fn verify_audit(key: &AuditKey, entries: &[AuditEntry]) -> Result<usize, String> {
    walk(entries, |e| audit_mac(key, &e.prev_hash, &e.scope, e.seq, &e.action, &e.subject, &e.data, &e.created_at))
}

fn entry(r: &Vals) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: r.i64(0)?,
        scope: r.text(1)?,
        seq: r.i64(2)?,
        action: r.text(3)?,
        subject: r.text(4)?,
        data: r.text(5)?,
        prev_hash: r.text(6)?,
        hash: r.text(7)?,
        created_at: r.text(8)?,
    })
}

const ENTRIES: &str =
    "SELECT id, scope, seq, action, subject, data, prev_hash, hash, created_at FROM audit ORDER BY scope, seq";

async fn entries_in(tx: &mut Tx) -> Result<Vec<AuditEntry>, StoreError> {
    tx.query(ENTRIES, args![]).await?.iter().map(entry).collect()
}

/// Rewrites every chain's links with `key` (the entries themselves are untouched).
async fn rekey(tx: &mut Tx, entries: &[AuditEntry], key: &AuditKey) -> Result<(), StoreError> {
    let mut prev: Option<(&str, String)> = None;
    for e in entries {
        let p = match &prev {
            Some((scope, h)) if *scope == e.scope => h.clone(),
            _ => GENESIS.to_string(),
        };
        let h = audit_mac(key, &p, &e.scope, e.seq, &e.action, &e.subject, &e.data, &e.created_at);
        tx.exec("UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3", args![p, h.as_str(), e.id]).await?;
        prev = Some((e.scope.as_str(), h));
    }
    Ok(())
}

/// Why an instance may not use this database with its master key.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "the master key does not match the one this database was sealed with (key check value differs); \
         start every instance with the same master_key"
    )]
    Mismatch,
    #[error("the master key does not open this database's sealed {0}; start with the key it was sealed with")]
    CannotOpen(String),
    #[error(
        "the audit chain written before this version does not verify ({0}); restore the audit table from a backup"
    )]
    BrokenAudit(String),
    #[error(
        "the database has audit entries but no master key check value, and was not upgraded by this start: \
         the check value was removed outside the gateway; restore the database from a backup, or, if its first \
         start after the upgrade was interrupted, run `dte-gateway audit key-legacy`"
    )]
    Missing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens a sealed value with the instance's key (certificates and CAF keys use their company as
/// associated data); used once, to tell a database sealed under another key before it has a
/// check value.
pub type Probe<'a> = &'a (dyn Fn(&str, &[u8]) -> bool + Send + Sync);

/// What the first start under a check value did.
#[derive(Debug, Default)]
pub struct KeyCheckReport {
    /// The check value was written by this start (a new or upgraded database).
    pub created: bool,
    /// Unkeyed audit entries keyed by this start.
    pub keyed_entries: usize,
}

impl Store {
    /// Every audit entry, chain by chain (scope, seq).
    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.query(ENTRIES, args![]).await?.iter().map(entry).collect()
    }

    /// The key audit entries are MACed with from now on; set once, at start.
    pub fn set_audit_key(&self, key: AuditKey) {
        let slot = match self {
            Store::Sqlite(s) => &s.audit_key,
            Store::Postgres(p) => &p.audit_key,
        };
        let _ = slot.0.set(key);
    }

    pub(super) fn audit_key(&self) -> Option<AuditKey> {
        match self {
            Store::Sqlite(s) => s.audit_key.get(),
            Store::Postgres(p) => p.audit_key.get(),
        }
    }

    /// Checks this instance's master key against the database's check value, and on the first start
    /// (a new database or one from before the check value) records it, after making sure the key
    /// opens what is already sealed and keying the audit chains. Instances starting together are
    /// serialised; the second one sees the first one's value.
    ///
    /// Unkeyed chains are keyed only by the start that upgraded the database (`legacy`: it applied
    /// the migration that brought the check value) or on an operator's explicit request: otherwise
    /// removing the check value and rewriting the chain the old way would have it keyed, and so
    /// laundered, by the next start.
    pub async fn check_master_key(
        &self,
        check_value: &str,
        key: &AuditKey,
        probe: Probe<'_>,
        legacy: bool,
    ) -> Result<KeyCheckReport, KeyCheckError> {
        let mut tx = Tx::begin(self).await?;
        if tx.is_postgres() {
            tx.query("SELECT pg_advisory_xact_lock(hashtext('dte-gateway vault_check'))", args![]).await?;
        }
        let found = tx.query_opt("SELECT check_value FROM vault_check WHERE id = 1", args![]).await?;
        if let Some(r) = found {
            tx.rollback().await;
            return if r.text(0)? == check_value {
                Ok(KeyCheckReport::default())
            } else {
                Err(KeyCheckError::Mismatch)
            };
        }
        for (what, sql) in [
            ("certificates", "SELECT company, sealed FROM certificates ORDER BY company LIMIT 1"),
            ("CAF keys", "SELECT company, sealed FROM cafs ORDER BY id LIMIT 1"),
        ] {
            if let Some(r) = tx.query_opt(sql, args![]).await? {
                if !probe(&r.text(0)?, &r.bytes(1)?) {
                    tx.rollback().await;
                    return Err(KeyCheckError::CannotOpen(what.into()));
                }
            }
        }
        let entries = entries_in(&mut tx).await?;
        let mut report = KeyCheckReport { created: true, keyed_entries: 0 };
        if verify_audit(key, &entries).is_err() {
            if !legacy {
                tx.rollback().await;
                return Err(KeyCheckError::Missing);
            }
            if let Err(e) = walk(&entries, legacy_hash) {
                tx.rollback().await;
                return Err(KeyCheckError::BrokenAudit(e));
            }
            rekey(&mut tx, &entries, key).await?;
            report.keyed_entries = entries.len();
        }
        let now = Utc::now();
        tx.exec(
            "INSERT INTO vault_check (id, check_value, created_at, audit_keyed_at) VALUES (1, $1, $2, $2)",
            args![check_value, now],
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// The recorded check value, if any.
    pub async fn key_check_value(&self) -> Result<Option<String>, StoreError> {
        self.query_opt("SELECT check_value FROM vault_check WHERE id = 1", args![])
            .await?
            .map(|r| r.text(0))
            .transpose()
    }

    /// Master-key rotation's part of the audit: every chain checked under the old key, then
    /// re-keyed and the check value replaced, in the caller's transaction.
    pub(super) async fn rekey_audit(
        tx: &mut Tx,
        old: &AuditKey,
        new: &AuditKey,
        new_check: &str,
    ) -> Result<usize, StoreError> {
        let entries = entries_in(tx).await?;
        verify_audit(old, &entries)
            .map_err(|e| StoreError::Db(format!("the audit chain does not verify under the current key: {e}")))?;
        rekey(tx, &entries, new).await?;
        tx.exec("UPDATE vault_check SET check_value = $1 WHERE id = 1", args![new_check]).await?;
        Ok(entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: i64, prev: &str, hash: &str, data: &str) -> AuditEntry {
        AuditEntry {
            id: seq,
            scope: "76192083-9".into(),
            seq,
            action: "webhook.add".into(),
            subject: "1".into(),
            data: data.into(),
            prev_hash: prev.into(),
            hash: hash.into(),
            created_at: "2026-11-30T12:00:00.000000Z".into(),
        }
    }

    #[test]
    fn a_chain_recomputed_without_the_key_is_detected() {
        let key = AuditKey([7; 32]);
        let h1 = audit_mac(&key, GENESIS, "76192083-9", 1, "webhook.add", "1", "a", "2026-11-30T12:00:00.000000Z");
        let h2 = audit_mac(&key, &h1, "76192083-9", 2, "webhook.add", "1", "b", "2026-11-30T12:00:00.000000Z");
        let good = vec![e(1, GENESIS, &h1, "a"), e(2, &h1, &h2, "b")];
        assert_eq!(verify_audit(&key, &good), Ok(2));
        // Rewritten and re-linked with the old unkeyed scheme (all a forger can compute).
        let mut forged = vec![e(1, GENESIS, "", "evil"), e(2, "", "", "b")];
        forged[0].hash = legacy_hash(&forged[0]);
        forged[1].prev_hash = forged[0].hash.clone();
        forged[1].hash = legacy_hash(&forged[1]);
        assert!(verify_audit(&key, &forged).is_err());
        // Or with a guessed key.
        let guess = AuditKey([0; 32]);
        let g1 = audit_mac(&guess, GENESIS, "76192083-9", 1, "webhook.add", "1", "evil", "2026-11-30T12:00:00.000000Z");
        assert!(verify_audit(&key, &[e(1, GENESIS, &g1, "evil")]).is_err());
        // Field boundaries are part of the MAC: moving a character between fields changes it.
        assert_ne!(
            audit_mac(&key, GENESIS, "s", 1, "ab", "c", "", "t"),
            audit_mac(&key, GENESIS, "s", 1, "a", "bc", "", "t")
        );
    }
}
