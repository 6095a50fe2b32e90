//! Persistence behind one enum: SQLite (embedded default) and PostgreSQL, same tables, same
//! behaviour, the same test suite. Every mutation that matters appends to the audit chain in the
//! same transaction; issuance takes the folio, stores the signed document and the idempotency
//! record in one transaction, so a failure anywhere leaves the folio unconsumed.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::Company;
use crate::error::DteError;

/// Forwards a `Store` method to the backend's method of the same name.
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

mod audit;
pub mod batches;
mod console;
mod delivery;
mod issuance;
pub mod migrations;
mod ops;
mod postgres;
mod received;
mod sii_ops;
mod sql;
mod sqlite;
mod states;

use audit::AuditKeySlot;
pub use audit::{verify_audit, AuditKey, KeyCheckError, KeyCheckReport, Probe};
pub use console::{ConsoleSession, LastUpload};
pub use delivery::{DeliveryOut, DeliveryRecord, DocumentExchange};
pub use issuance::FolioLock;
pub use migrations::MigrationReport;
pub use postgres::PgStore;
pub use received::{
    EventRow, MailboxRow, NewEnvelope, NewMessage, NewReceived, NewResponse, ReceivedFilter, ReceivedRow, ResponseRow,
};
pub use sii_ops::DELIVERED_TYPES;
pub use sqlite::SqliteStore;

pub use crate::domain::{DocState, Environment, UploadStatus};

#[derive(Debug, Clone)]
pub struct CompanyRecord {
    pub rut: String,
    pub company: Company,
    pub environment: Environment,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CertRecord {
    pub company: String,
    /// The PKCS#12 bytes and its password, sealed by the vault.
    pub sealed: Vec<u8>,
    pub subject: String,
    pub holder_rut: String,
    pub not_after: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CafRecord {
    pub id: i64,
    pub company: String,
    pub tipo: i32,
    pub desde: i64,
    pub hasta: i64,
    pub next_folio: i64,
    pub fa: NaiveDate,
    pub expires_on: Option<NaiveDate>,
    pub idk: i64,
    pub authority: String,
    /// The CAF file, sealed by the vault (it holds the private key).
    pub sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// Retired by hand: no folio is taken from it any more.
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub company: String,
    pub tipo: i32,
    pub folio: i64,
    pub caf_id: i64,
    pub fch_emis: NaiveDate,
    pub rut_recep: String,
    pub mnt_total: i64,
    pub totals: serde_json::Value,
    pub xml: Vec<u8>,
    pub ted: String,
    pub api_key_id: Option<String>,
    /// The W3C trace context it was issued in (when traces are exported).
    pub trace: Option<String>,
}

impl NewDocument {
    /// The record of this document once stored as row `id`, in its first state.
    pub fn stored(self, id: i64, at: DateTime<Utc>) -> DocumentRecord {
        DocumentRecord {
            id,
            company: self.company,
            tipo: self.tipo,
            folio: self.folio,
            caf_id: self.caf_id,
            fch_emis: self.fch_emis,
            rut_recep: self.rut_recep,
            mnt_total: self.mnt_total,
            totals: self.totals,
            state: DocState::Issued,
            created_at: at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DocumentRecord {
    pub id: i64,
    pub company: String,
    pub tipo: i32,
    pub folio: i64,
    pub caf_id: i64,
    pub fch_emis: NaiveDate,
    pub rut_recep: String,
    pub mnt_total: i64,
    pub totals: serde_json::Value,
    pub state: DocState,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub hash: String,
    pub company: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub scope: String,
    pub seq: i64,
    pub action: String,
    pub subject: String,
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
    pub created_at: String,
}

/// An audit entry to append; `scope` is the company RUT (or `*` for gateway-wide events).
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub scope: String,
    pub action: &'static str,
    pub subject: String,
    pub data: String,
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
}

#[derive(Debug, Clone, Default)]
pub struct DocFilter {
    pub tipo: Option<i32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub state: Option<DocState>,
    /// Keyset pagination: documents with id below this one (newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
    /// The receptor's RUT, exactly.
    pub rut_recep: Option<String>,
    pub folio: Option<i64>,
}

/// The client's idempotency key, scoped to its API key, with a hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idem {
    pub key_id: String,
    pub key: String,
    pub request_hash: String,
}

/// What a group's issuance transaction found for one document's idempotency key (see
/// [`FolioLock`]).
#[derive(Debug, Clone)]
pub enum IdemState {
    /// No key, or a key seen for the first time (claimed by this transaction).
    New,
    /// The same key and body came before: its response, unchanged.
    Replay(serde_json::Value),
    /// The same key came before with another body.
    Mismatch,
}

/// One signed document for the group's commit.
#[derive(Debug, Clone)]
pub struct IssuedRow {
    pub doc: NewDocument,
    /// The `201` body, kept as the idempotency answer.
    pub response: serde_json::Value,
    pub idem: Option<Idem>,
    pub audit: NewAudit,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(String),
    #[error(transparent)]
    Build(#[from] DteError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        // A unique key taken is a conflict on both backends (PostgreSQL: `UNIQUE_VIOLATION`).
        if let rusqlite::Error::SqliteFailure(f, msg) = &e {
            if matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) {
                return StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()));
            }
        }
        StoreError::Db(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(db.message().to_string());
            }
        }
        // The driver's message alone ("error deserializing column 9") hides the cause.
        match std::error::Error::source(&e) {
            Some(cause) => StoreError::Db(format!("{e}: {cause}")),
            None => StoreError::Db(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// An upload (one EnvioDTE / EnvioBOLETA) on its way to the SII.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: i64,
    pub company: String,
    pub boleta: bool,
    /// new (documents claimed) → pending (to send or resend) → sent (TrackID) → final | rejected
    pub state: UploadStatus,
    pub envelope: Option<Vec<u8>>,
    pub track_id: Option<String>,
    pub attempts: i64,
}

/// A document's new state after its upload was judged.
#[derive(Debug, Clone)]
pub struct DocVerdict {
    pub tipo: i32,
    pub folio: i64,
    pub state: DocState,
    pub estado: String,
    pub glosa: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookRow {
    pub id: i64,
    pub company: String,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub event: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<String>,
}

/// The JSON event of a document's state change, as webhooks receive it.
pub fn state_event(
    company: &str,
    tipo: i32,
    folio: i64,
    state: &str,
    estado: &str,
    glosa: &str,
    at: DateTime<Utc>,
) -> String {
    serde_json::json!({
        "type": "document.state_changed",
        "company": company,
        "tipo": tipo,
        "folio": folio,
        "state": state,
        "sii_estado": estado,
        "sii_glosa": glosa,
        "at": ts(at),
    })
    .to_string()
}

/// Re-seals one secret: `(aad, sealed) → sealed again`, for master-key rotation.
pub type ResealFn = Box<dyn Fn(&str, &[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the database and brings its schema up to date (see [`migrations`]).
    pub async fn open(url: &str, pool: usize) -> Result<Store, StoreError> {
        Ok(Store::open_reporting(url, pool).await?.0)
    }

    /// [`Store::open`], and what its migration run did.
    pub async fn open_reporting(url: &str, pool: usize) -> Result<(Store, MigrationReport), StoreError> {
        let store = Store::connect(url, pool)?;
        let report = store.migrate(false).await?;
        if report.adopted {
            tracing::info!("adopted a database made before versioned migrations");
        }
        for (version, name) in &report.applied {
            tracing::info!(version, name, "migration applied");
        }
        Ok((store, report))
    }

    /// Opens the database without touching its schema (for `migrate --dry-run`).
    pub fn connect(url: &str, pool: usize) -> Result<Store, StoreError> {
        Ok(if let Some(path) = url.strip_prefix("sqlite://") {
            Store::Sqlite(SqliteStore::open(path)?)
        } else {
            Store::Postgres(PgStore::open(url, pool)?)
        })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies the pending migrations under a lock, or with `dry_run` only lists them.
    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        dispatch!(self, s => s.migrate(dry_run).await)
    }
}
