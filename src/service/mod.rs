//! The gateway's operations, shared by HTTP handlers and the CLI: companies, certificates, CAFs,
//! issuance, queries, API keys and the audit chain. Handlers parse and map errors; the work and the
//! rules live here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caf::{Authority, Caf, CafTrust};
use crate::cert::Certificate;
use crate::domain::tax::{TaxTable, Totals};
use crate::domain::{Company, DocumentInput, Rut, TipoDte};
use crate::engine;
use crate::error::{DteError, FieldError};
use crate::store::{
    self, CafRecord, CertRecord, CompanyRecord, DocFilter, DocState, Environment, Idem, NewAudit, Store, StoreError,
};
use crate::vault::Vault;

mod cafs;
mod console;
mod delivery;
mod edges;
mod environment;
mod issuance;
mod keys;
mod print;
mod received;
mod signing;
mod uploads;
mod webhooks;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Dte(#[from] DteError),
    #[error("{0}")]
    Conflict(String),
    #[error("no CAF of type {0} has folios left; upload a new CAF")]
    CafExhausted(u16),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("the company has no signing certificate; PUT one first")]
    NoCertificate,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Print(#[from] crate::print::PrintError),
    /// The SII's RCV refused the action (its `codResp` and description).
    #[error("the SII's RCV refused it: {code} {detail}")]
    Rcv { code: i32, detail: String },
    /// The 8-day window of Ley 19.983 closed.
    #[error("{0}")]
    PastDeadline(String),
    /// The SII did not answer (or answered "try later") after the retries.
    #[error("the SII is unavailable: {0}")]
    SiiUnavailable(String),
    /// A part the gateway needs (the shared session store) does not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::Build(d) => ServiceError::Dte(d),
            StoreError::Db(m) => ServiceError::Internal(m),
        }
    }
}

impl From<crate::vault::VaultError> for ServiceError {
    fn from(e: crate::vault::VaultError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

type Result<T> = std::result::Result<T, ServiceError>;

/// A registered company: its Emisor data, environment and registration time.
#[derive(Debug, Clone)]
pub struct CompanyInfo {
    pub rut: String,
    pub company: Company,
    pub environment: Environment,
    pub created_at: DateTime<Utc>,
}

impl From<CompanyRecord> for CompanyInfo {
    fn from(r: CompanyRecord) -> CompanyInfo {
        CompanyInfo { rut: r.rut, company: r.company, environment: r.environment, created_at: r.created_at }
    }
}

/// Which documents to list: by type, FchEmis range and state, newest first, a page of `limit`
/// (1-500, 50 by default) before the document id `before`.
#[derive(Debug, Clone, Default)]
pub struct DocumentQuery {
    pub tipo: Option<i32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub state: Option<DocState>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
    pub rut_recep: Option<String>,
    pub folio: Option<i64>,
}

/// A company as the API takes and shows it: the Emisor in the SII's names plus the environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompanyBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub company: Company,
    #[serde(default = "default_env")]
    pub environment: Environment,
}

fn default_env() -> Environment {
    Environment::Certificacion
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateInfo {
    pub subject: String,
    pub holder_rut: String,
    pub not_after: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CafInfo {
    pub id: i64,
    pub tipo: i32,
    pub desde: i64,
    pub hasta: i64,
    pub next_folio: i64,
    pub folios_left: i64,
    pub fecha_autorizacion: NaiveDate,
    pub expires_on: Option<NaiveDate>,
    pub expired: bool,
    /// Retired by hand (`…/cafs/{id}/retire`).
    pub retired: bool,
    pub authority: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentInfo {
    pub company: String,
    pub tipo: i32,
    pub folio: i64,
    pub id: String,
    pub fch_emis: NaiveDate,
    pub rut_recep: String,
    pub mnt_total: i64,
    #[schema(value_type = Object)]
    pub totals: serde_json::Value,
    pub state: crate::domain::DocState,
    pub created_at: DateTime<Utc>,
    pub xml_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ted: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentPage {
    pub items: Vec<DocumentInfo>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewKey {
    pub id: String,
    /// Shown once; only its SHA-256 is stored.
    pub key: String,
    pub company: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub enum Issue {
    Created(serde_json::Value),
    Replayed(serde_json::Value),
}

pub const SCOPES: [&str; 3] = ["admin", "issue", "read"];

use crate::crypto::sha256_hex;
pub use cafs::{CafForecast, UnusedRange};
pub use console::{ConsoleSession, LastUpload, SessionLimits};
pub use delivery::{
    delivered_event, BuyerAddress, BuyerAddressBody, DeliveryInfo, DirectoryImport, DocumentEvent, DocumentExchangeInfo,
};
pub use edges::{ApiKey, Delivery, Webhook};
pub use environment::EnvironmentChange;
pub use print::LogoInfo;
pub use received::{
    by_law_event, deadline_event, local_to_utc, utc_to_local, DecisionBody, IntakeReport, MailboxAccess, MailboxBody,
    MailboxInfo, ReceivedInfo, ReceivedPage, ReceivedQuery, ResponseInfo, RECEIVED_STATES,
};
pub use uploads::{DueDelivery, Upload, Verdict};

/// Local wall-clock time to the second: the SII's timestamps carry no zone.
pub fn now_local() -> NaiveDateTime {
    let n = Local::now().naive_local();
    n.with_nanosecond(0).unwrap_or(n)
}

pub fn parse_rut(s: &str) -> Result<Rut> {
    s.parse::<Rut>()
        .map_err(|e| ServiceError::Dte(DteError::Invalid(vec![FieldError::new("rut", "rut-format", e.to_string())])))
}

/// A decrypted certificate and the `updated_at` of the row it came from.
type CertVersion = (Instant, DateTime<Utc>, Arc<Certificate>);

/// How long a company record or certificate is served from memory before the database is asked
/// again: a new certificate reaches every instance within this time.
const RECORD_TTL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Service {
    pub store: Store,
    vault: Vault,
    pub taxes: Arc<TaxTable>,
    trust: CafTrust,
    pub key_grace: Duration,
    /// Decrypted certificates by company, with the version they were decrypted from.
    certs: Mutex<HashMap<String, CertVersion>>,
    /// Company records read in the last few seconds: issuance is the hot path.
    companies: Mutex<HashMap<String, (Instant, CompanyInfo)>>,
    issuance: Arc<issuance::Issuance>,
    /// Tax quotes are cached by the hash of their normalised input.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// Which webhook receivers tenants may register.
    pub webhook_policy: crate::netguard::TargetPolicy,
    /// The software provider's RUT, written in boletas (`RUTProvSW`); from configuration.
    pub rut_prov_sw: Option<String>,
    /// The UF's value in pesos for the boletas above 135 UF (Ley 21.713); from configuration.
    pub uf_pesos: Option<rust_decimal::Decimal>,
}

impl Service {
    pub fn new(store: Store, vault: Vault, trust: CafTrust, key_grace: Duration) -> Service {
        let taxes = Arc::new(TaxTable::default());
        Service {
            issuance: Arc::new(issuance::Issuance::new(store.clone(), vault.clone(), trust.clone(), taxes.clone())),
            store,
            vault,
            taxes,
            trust,
            key_grace,
            certs: Mutex::new(HashMap::new()),
            companies: Mutex::new(HashMap::new()),
            cache: None,
            webhook_policy: crate::netguard::TargetPolicy::default(),
            rut_prov_sw: None,
            uf_pesos: None,
        }
    }

    pub fn trust(&self) -> &CafTrust {
        &self.trust
    }

    pub async fn company(&self, rut: &str) -> Result<CompanyInfo> {
        if let Some((_, c)) =
            self.companies.lock().ok().and_then(|m| m.get(rut).filter(|(at, _)| at.elapsed() < RECORD_TTL).cloned())
        {
            return Ok(c);
        }
        let c: CompanyInfo =
            self.store.get_company(rut).await?.ok_or_else(|| ServiceError::NotFound(format!("company {rut}")))?.into();
        if let Ok(mut m) = self.companies.lock() {
            m.insert(rut.to_string(), (Instant::now(), c.clone()));
        }
        Ok(c)
    }

    pub async fn create_company(&self, body: CompanyBody) -> Result<CompanyInfo> {
        let mut company = body.company;
        company.validate()?;
        company.register_resolution(body.environment)?;
        company.rut_emisor = company.rut()?.to_string();
        let rec = CompanyRecord {
            rut: company.rut_emisor.clone(),
            company,
            environment: body.environment,
            created_at: Utc::now(),
        };
        let audit = NewAudit {
            scope: rec.rut.clone(),
            action: "company.create",
            subject: rec.rut.clone(),
            data: rec.environment.as_str().into(),
        };
        self.store.create_company(rec.clone(), audit).await?;
        crate::telemetry::register_company(&rec.rut);
        Ok(rec.into())
    }

    pub async fn put_certificate(&self, rut: &str, pkcs12: &[u8], password: &str) -> Result<CertificateInfo> {
        self.company(rut).await?;
        let cert = Certificate::from_pkcs12(pkcs12, password).map_err(DteError::from)?;
        cert.check_valid_at(Utc::now().naive_utc()).map_err(DteError::from)?;
        let holder = cert.holder.ok_or_else(|| {
            DteError::single(
                "pkcs12",
                "certificate-no-rut",
                "the certificate carries no holder RUT (neither subjectAltName 1.3.6.1.4.1.8321.1 nor the subject serialNumber)",
            )
        })?;
        let mut plain = (password.len() as u32).to_be_bytes().to_vec();
        plain.extend_from_slice(password.as_bytes());
        plain.extend_from_slice(pkcs12);
        let now = Utc::now();
        let rec = CertRecord {
            company: rut.to_string(),
            sealed: self.vault.seal(&plain, rut.as_bytes())?,
            subject: cert.subject.clone(),
            holder_rut: holder.to_string(),
            not_after: cert.not_after,
            updated_at: now,
        };
        let audit = NewAudit {
            scope: rut.into(),
            action: "certificate.put",
            subject: holder.to_string(),
            data: format!("{}; not_after {}", cert.subject, cert.not_after),
        };
        self.store.put_certificate(rec.clone(), audit).await?;
        if let Ok(mut m) = self.certs.lock() {
            m.remove(rut);
        }
        Ok(CertificateInfo {
            subject: rec.subject,
            holder_rut: rec.holder_rut,
            not_after: rec.not_after,
            updated_at: rec.updated_at,
        })
    }

    pub async fn certificate_info(&self, rut: &str) -> Result<CertificateInfo> {
        self.company(rut).await?;
        let c = self
            .store
            .get_certificate(rut)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("certificate of {rut}")))?;
        Ok(CertificateInfo {
            subject: c.subject,
            holder_rut: c.holder_rut,
            not_after: c.not_after,
            updated_at: c.updated_at,
        })
    }

    /// The company's certificate, decrypted once per version and shared.
    pub async fn certificate(&self, rut: &str) -> Result<Arc<Certificate>> {
        if let Some((_, _, c)) =
            self.certs.lock().ok().and_then(|m| m.get(rut).filter(|(at, _, _)| at.elapsed() < RECORD_TTL).cloned())
        {
            return Ok(c);
        }
        let rec = self.store.get_certificate(rut).await?.ok_or(ServiceError::NoCertificate)?;
        let known = self
            .certs
            .lock()
            .ok()
            .and_then(|m| m.get(rut).filter(|(_, v, _)| *v == rec.updated_at).map(|(_, _, c)| c.clone()));
        if let Some(c) = known {
            if let Ok(mut m) = self.certs.lock() {
                m.insert(rut.to_string(), (Instant::now(), rec.updated_at, c.clone()));
            }
            return Ok(c);
        }
        let plain = self.vault.open(&rec.sealed, rut.as_bytes())?;
        let n = plain
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| ServiceError::Internal("sealed certificate".into()))?;
        let password = std::str::from_utf8(plain.get(4..4 + n).unwrap_or_default())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let cert = Arc::new(
            Certificate::from_pkcs12(plain.get(4 + n..).unwrap_or_default(), password).map_err(DteError::from)?,
        );
        if let Ok(mut cache) = self.certs.lock() {
            cache.insert(rut.to_string(), (Instant::now(), rec.updated_at, cert.clone()));
        }
        Ok(cert)
    }

    pub async fn add_caf(&self, rut: &str, xml: &[u8]) -> Result<CafInfo> {
        let company = self.company(rut).await?;
        let caf = Caf::load(xml, &self.trust).map_err(DteError::from)?;
        let emisor = company.company.rut()?;
        if caf.rut_emisor != emisor {
            return Err(DteError::from(crate::caf::CafError::WrongRut {
                caf: caf.rut_emisor.to_string(),
                company: emisor.to_string(),
            })
            .into());
        }
        if TipoDte::from_code(caf.tipo).is_none() {
            return Err(DteError::single(
                "caf.TD",
                "unknown-type",
                format!("CAFs of type {} are not issued by this gateway", caf.tipo),
            )
            .into());
        }
        match (company.environment, caf.authority) {
            (Environment::Produccion, Authority::SiiProduccion)
            | (Environment::Certificacion, Authority::SiiCertificacion | Authority::Test) => {}
            (env, a) => {
                return Err(DteError::single(
                    "caf.IDK",
                    "caf-environment",
                    format!("a CAF signed by {a:?} cannot be used in {}", env.as_str()),
                )
                .into());
            }
        }
        let rec = CafRecord {
            id: 0,
            company: rut.into(),
            tipo: caf.tipo as i32,
            desde: caf.desde as i64,
            hasta: caf.hasta as i64,
            next_folio: caf.desde as i64,
            fa: caf.fecha_autorizacion,
            expires_on: caf.expires_on(),
            idk: caf.idk,
            authority: format!("{:?}", caf.authority),
            sealed: self.vault.seal(xml, rut.as_bytes())?,
            created_at: Utc::now(),
            retired_at: None,
        };
        let audit = NewAudit {
            scope: rut.into(),
            action: "caf.add",
            subject: format!("T{} {}-{}", caf.tipo, caf.desde, caf.hasta),
            data: format!("IDK {} FA {}", caf.idk, caf.fecha_autorizacion),
        };
        let id = self.store.add_caf(rec.clone(), audit).await?;
        Ok(caf_info(&CafRecord { id, ..rec }, Local::now().date_naive()))
    }

    pub async fn list_cafs(&self, rut: &str) -> Result<Vec<CafInfo>> {
        self.company(rut).await?;
        let today = Local::now().date_naive();
        Ok(self.store.list_cafs(rut).await?.iter().map(|c| caf_info(c, today)).collect())
    }

    /// [`Service::quote`] through the cache: the same normalised input for the same emisor is
    /// computed once. Returns the JSON of the totals.
    pub async fn quote_cached(&self, body: &[u8], emisor: Option<Rut>) -> Result<Vec<u8>> {
        let normalised = serde_json::from_slice::<serde_json::Value>(body).map(|v| v.to_string()).unwrap_or_default();
        let key = crate::cache::Key::TaxQuote(sha256_hex(
            format!("{}|{normalised}", emisor.map(|r| r.to_string()).unwrap_or_default()).as_bytes(),
        ));
        if let Some(c) = &self.cache {
            if let Some(hit) = c.get(&key).await {
                return Ok(hit);
            }
        }
        let totals =
            serde_json::to_vec(&self.quote(body, emisor)?).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Some(c) = &self.cache {
            c.set(&key, &totals, std::time::Duration::from_secs(600)).await;
        }
        Ok(totals)
    }

    /// Totals for a document without taking a folio.
    pub fn quote(&self, body: &[u8], emisor: Option<Rut>) -> Result<Totals> {
        let input = DocumentInput::from_json(body)?;
        // Without a company the Emisor check has nothing to compare with: use the document's own.
        let emisor = match (emisor, input.encabezado.emisor.as_ref().and_then(|e| e.rut_emisor.parse::<Rut>().ok())) {
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) => Rut::from_number(1),
        };
        let (_, computed) = engine::quote_at_uf(&input, emisor, &self.taxes, Local::now().date_naive(), self.uf_pesos)?;
        Ok(computed.totals)
    }

    /// Issues one document: rules and taxes once, here (bad input never reaches the database nor
    /// takes a folio), then the company's issuance group: folio, stamp, signature, schema and
    /// storage, committed with whatever else of the company was waiting.
    pub async fn issue(
        &self,
        rut: &str,
        key_id: Option<&str>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Result<Issue> {
        let company = self.company(rut).await?;
        let input = DocumentInput::from_json(body)?;
        let emisor = company.company.rut()?;
        let now = now_local();
        let started = Instant::now();
        let (prepared, computed) = engine::quote_at_uf(&input, emisor, &self.taxes, now.date(), self.uf_pesos)?;
        metrics::histogram!(crate::telemetry::ISSUANCE_STAGE_SECONDS, "stage" => "tax")
            .record(started.elapsed().as_secs_f64());
        let cert = self.certificate(rut).await?;
        // Checked here too so that an expired certificate is one clear error, not one per group.
        cert.check_valid_at(now).map_err(DteError::from)?;
        let idem = match (idempotency_key, key_id) {
            (Some(k), Some(id)) => {
                let normalised =
                    serde_json::from_slice::<serde_json::Value>(body).map(|v| v.to_string()).unwrap_or_default();
                Some(Idem { key_id: id.into(), key: k.into(), request_hash: sha256_hex(normalised.as_bytes()) })
            }
            _ => None,
        };
        let work = issuance::Work {
            company: company.company,
            cert,
            prepared,
            computed,
            now,
            rut: rut.to_string(),
            key_id: key_id.map(String::from),
            // Taken here, in the caller's span: the group that issues it runs in a task of its own.
            trace: crate::otel::traceparent(),
            rut_prov_sw: self.rut_prov_sw.clone(),
        };
        self.issuance.submit(work, idem).await
    }

    pub async fn document(&self, rut: &str, tipo: i32, folio: i64) -> Result<DocumentInfo> {
        let d = self
            .store
            .get_document(rut, tipo, folio)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("document {tipo}/{folio}")))?;
        Ok(doc_info(d))
    }

    pub async fn document_xml(&self, rut: &str, tipo: i32, folio: i64) -> Result<Vec<u8>> {
        self.store
            .get_document_xml(rut, tipo, folio)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("document {tipo}/{folio}")))
    }

    pub async fn documents(&self, rut: &str, q: DocumentQuery) -> Result<DocumentPage> {
        self.company(rut).await?;
        let f = DocFilter {
            tipo: q.tipo,
            from: q.from,
            to: q.to,
            state: q.state,
            before_id: q.before,
            limit: q.limit.unwrap_or(50).clamp(1, 500),
            rut_recep: q.rut_recep,
            folio: q.folio,
        };
        let rows = self.store.list_documents(rut, &f).await?;
        let next = if rows.len() as i64 == f.limit { rows.last().map(|d| d.id) } else { None };
        Ok(DocumentPage { items: rows.into_iter().map(doc_info).collect(), next })
    }

    pub async fn verify_audit(&self) -> Result<std::result::Result<usize, String>> {
        let key = store::AuditKey(self.vault.audit_key());
        Ok(store::verify_audit(&key, &self.store.audit_entries().await?))
    }

    /// Whether the database is still sealed with this instance's master key.
    pub async fn master_key_current(&self) -> Result<bool> {
        Ok(self.store.key_check_value().await?.is_none_or(|v| v == self.vault.check_value()))
    }

    /// The last entry of every audit chain (scope, seq, MAC), to anchor off-site.
    pub async fn audit_heads(&self) -> Result<Vec<(String, i64, String)>> {
        Ok(self.store.audit_heads().await?)
    }

    /// Checks the master key against the database (and records it on the first start), then
    /// keys this store's audit entries with it.
    pub async fn check_master_key(
        &self,
        legacy: bool,
    ) -> std::result::Result<store::KeyCheckReport, store::KeyCheckError> {
        let key = store::AuditKey(self.vault.audit_key());
        let vault = self.vault.clone();
        let probe = move |company: &str, sealed: &[u8]| vault.open(sealed, company.as_bytes()).is_ok();
        let report = self.store.check_master_key(&self.vault.check_value(), &key, &probe, legacy).await?;
        self.store.set_audit_key(key);
        Ok(report)
    }
}

impl CafInfo {
    /// Folios may still be taken from it: not expired and not retired.
    pub fn usable(&self) -> bool {
        !self.expired && !self.retired
    }
}

fn caf_info(c: &CafRecord, today: NaiveDate) -> CafInfo {
    CafInfo {
        id: c.id,
        tipo: c.tipo,
        desde: c.desde,
        hasta: c.hasta,
        next_folio: c.next_folio,
        folios_left: (c.hasta - c.next_folio + 1).max(0),
        fecha_autorizacion: c.fa,
        expires_on: c.expires_on,
        expired: c.expires_on.is_some_and(|e| e < today),
        retired: c.retired_at.is_some(),
        authority: c.authority.clone(),
    }
}

fn doc_info(d: store::DocumentRecord) -> DocumentInfo {
    DocumentInfo {
        id: crate::xml::render::documento_id(d.tipo as u16, d.folio as u64),
        xml_url: format!("/v1/companies/{}/documents/{}/{}/xml", d.company, d.tipo, d.folio),
        company: d.company,
        tipo: d.tipo,
        folio: d.folio,
        fch_emis: d.fch_emis,
        rut_recep: d.rut_recep,
        mnt_total: d.mnt_total,
        totals: d.totals,
        state: d.state,
        created_at: d.created_at,
        ted: None,
    }
}
