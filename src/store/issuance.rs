//! Group issuance in the store: one transaction per group of documents of one company and type.
//! [`Store::lock_folios`] opens it — idempotency keys claimed, the usable CAFs locked — and hands
//! back a [`FolioLock`]; the service stamps and signs with the folios [`crate::folio`] allocates,
//! then [`FolioLock::commit`] writes every document, idempotency answer, audit entry and CAF
//! position at once. Dropping the lock without committing rolls everything back: no folio is used.

use chrono::{DateTime, NaiveDate, Utc};

use super::{CafRecord, DocumentRecord, Idem, IdemState, IssuedRow, Store, StoreError};

/// An open issuance transaction holding the CAF locks of one company and type.
pub struct FolioLock {
    /// The CAFs with folios left and not expired, oldest range first, as locked.
    pub cafs: Vec<CafRecord>,
    /// Per document of the group, in the order asked.
    pub idem: Vec<IdemState>,
    tx: LockTx,
}

enum LockTx {
    Sqlite(super::sqlite_issue::SqliteTx),
    Postgres(Box<super::postgres_issue::PgTx>),
}

impl FolioLock {
    /// Writes the group and commits: documents (in `rows` order), their idempotency answers and
    /// audit entries, and each CAF's new `next_folio` from `advanced`.
    pub async fn commit(
        self,
        rows: Vec<IssuedRow>,
        advanced: Vec<(i64, i64)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        match self.tx {
            LockTx::Sqlite(t) => t.commit(rows, advanced, now).await,
            LockTx::Postgres(t) => t.commit(rows, advanced, now).await,
        }
    }
}

impl FolioLock {
    /// Ends the transaction without writing (nothing of the group is issued).
    pub async fn release(self) {
        match self.tx {
            LockTx::Sqlite(t) => t.rollback().await,
            LockTx::Postgres(t) => t.rollback().await,
        }
    }
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
        Ok(match self {
            Store::Sqlite(s) => {
                let (cafs, idem, tx) = s.lock_folios(company, tipo, today, idems).await?;
                FolioLock { cafs, idem, tx: LockTx::Sqlite(tx) }
            }
            Store::Postgres(s) => {
                let (cafs, idem, tx) = s.lock_folios(company, tipo, today, idems).await?;
                FolioLock { cafs, idem, tx: LockTx::Postgres(Box::new(tx)) }
            }
        })
    }
}
