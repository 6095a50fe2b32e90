//! Service start-up shared by `serve`, `keys` and `audit`: settings → store → vault → service, the
//! background tasks, and the `--demo` company.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Utc};

use std::collections::HashMap;

use crate::batch::Batches;
use crate::caf::CafTrust;
use crate::config::Settings;
use crate::domain::Environment;
use crate::domain::{Company, Rut, TipoDte};
use crate::http::auth::Auth;
use crate::service::{CompanyBody, Service, ServiceError};
use crate::sii::api::SiiApi;
use crate::sii::boleta::{BoletaClient, BoletaEndpoints};
use crate::sii::client::{Endpoints, SiiClient};
use crate::sii::tokens::Tokens;
use crate::store::Store;
use crate::vault::Vault;
use crate::worker::SiiLink;

use crate::demo::{DEMO_AUTHORITY_CERT, DEMO_AUTHORITY_KEY, DEMO_COMPANY, DEMO_P12};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// The master key as configured (or the embedded store's key file), never creating one.
pub fn master_key_for(s: &Settings) -> Result<Vault, StartError> {
    master_key(s, false)
}

/// The master key: from the configuration; or, on the embedded SQLite store only, from the data
/// folder, generated there by `serve` (`create`) the first time. A database several instances
/// share needs the same explicit key on every one: a key file per instance would seal each
/// instance's secrets under its own key.
fn master_key(s: &Settings, create: bool) -> Result<Vault, StartError> {
    if let Some(k) = &s.master_key {
        return Vault::from_base64(k).map_err(|e| StartError::Other(e.to_string()));
    }
    if !s.database().starts_with("sqlite://") {
        return Err(StartError::Other(
            "master_key is not set: with PostgreSQL every instance needs the same explicit master_key \
             (DTE_GATEWAY_MASTER_KEY)"
                .into(),
        ));
    }
    // Embedded use only: a key of its own in the data folder, readable by the owner alone.
    let path = s.data_dir.join("master.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k,
        Err(_) if !create => {
            return Err(StartError::Other(format!(
                "no master key: {} does not exist; run `dte-gateway serve` once (it creates it) or set master_key",
                path.display()
            )))
        }
        Err(_) => {
            crate::vault::private_dir(&s.data_dir)
                .map_err(|e| StartError::Other(format!("{}: {e}", s.data_dir.display())))?;
            let k = Vault::generate_base64().map_err(|e| StartError::Other(e.to_string()))?;
            write_private(&path, k.as_bytes())?;
            tracing::warn!(path = %path.display(), "generated a master key; set master_key (or DTE_GATEWAY_MASTER_KEY) in production and back it up");
            k
        }
    };
    Vault::from_base64(&key).map_err(|e| StartError::Other(format!("{}: {e}", path.display())))
}

/// The outcome of a master-key rotation.
pub struct Rotated {
    /// The new key, base64; to be set as `master_key` when the key comes from the configuration.
    pub key: String,
    /// Where it was written, when the key lives in the data folder.
    pub file: Option<std::path::PathBuf>,
    pub certificates: usize,
    pub cafs: usize,
}

/// Re-seals every certificate and CAF key under a new master key (`new`, or a generated one).
/// Instances must be stopped: they would go on with the old key.
pub async fn rotate_master_key(s: &Settings, new: Option<String>) -> Result<Rotated, StartError> {
    let err = |e: String| StartError::Other(e);
    let key = match new {
        Some(k) => k,
        None => Vault::generate_base64().map_err(|e| err(e.to_string()))?,
    };
    let vault = Vault::from_base64(&key).map_err(|e| err(format!("new master key: {e}")))?;
    let file = s.master_key.is_none().then(|| s.data_dir.join("master.key"));
    if let Some(f) = &file {
        if !f.exists() {
            return Err(err(format!("{}: no master key to rotate", f.display())));
        }
    }
    let svc = service(s, false, false).await?;
    // The new key is on disk before any secret depends on it; it replaces the old one only after
    // the re-sealing committed.
    let staged = file.as_ref().map(|f| f.with_extension("key.new"));
    if let Some(p) = &staged {
        write_private(p, key.as_bytes())?;
    }
    let (certificates, cafs) = svc.rotate_master_key(&vault).await.map_err(|e| err(e.to_string()))?;
    if let (Some(p), Some(f)) = (&staged, &file) {
        std::fs::rename(p, f).map_err(|e| err(format!("{}: {e} (the new key is in {})", f.display(), p.display())))?;
    }
    Ok(Rotated { key, file, certificates, cafs })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).and_then(|mut f| f.write_all(bytes)).map_err(|e| StartError::Other(format!("{}: {e}", path.display())))
}

pub fn trust_of(s: &Settings, demo: bool) -> Result<CafTrust, StartError> {
    match (&s.trust_test_authority, demo) {
        (Some(p), _) => CafTrust::with_test_authority(
            &std::fs::read(p).map_err(|e| StartError::Other(format!("{}: {e}", p.display())))?,
        ),
        (None, true) => CafTrust::with_test_authority(DEMO_AUTHORITY_CERT),
        (None, false) => Ok(CafTrust::sii_only()),
    }
    .map_err(|e| StartError::Other(e.to_string()))
}

/// The service on the configured store. `serve` may `create_key` (embedded store only, see
/// [`master_key`]); other commands use the key that exists.
pub async fn service(s: &Settings, demo: bool, create_key: bool) -> Result<Arc<Service>, StartError> {
    service_with(s, demo, create_key, false).await
}

/// [`service`]; `key_legacy_audit` keys audit chains written before keyed chains even when this
/// start did not upgrade the database (`dte-gateway audit key-legacy`).
pub async fn service_with(
    s: &Settings,
    demo: bool,
    create_key: bool,
    key_legacy_audit: bool,
) -> Result<Arc<Service>, StartError> {
    let vault = master_key(s, create_key)?;
    if s.database().starts_with("sqlite://") {
        crate::vault::private_dir(&s.data_dir)
            .map_err(|e| StartError::Other(format!("{}: {e}", s.data_dir.display())))?;
    }
    let (store, migrated) = Store::open_reporting(&s.database(), s.database_pool).await?;
    // The start that brings the check value in is the one that keys the old chains.
    let upgraded = migrated.applied.iter().any(|(version, _)| *version == crate::store::migrations::KEY_CHECK_VERSION);
    let trust = trust_of(s, demo)?;
    let mut svc = Service::new(store, vault, trust, chrono::Duration::seconds(s.key_rotation_grace_seconds));
    let mut tries = 0;
    let report = loop {
        match svc.check_master_key(upgraded || key_legacy_audit).await {
            // Another instance may be completing the upgrade it applied: give it a moment.
            Err(crate::store::KeyCheckError::Missing) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => break other.map_err(|e| StartError::Other(e.to_string()))?,
        }
    };
    if report.created {
        tracing::info!("recorded the master key's check value in the database");
    }
    if report.keyed_entries > 0 {
        tracing::warn!(entries = report.keyed_entries, "keyed the audit chains written before this version");
    }
    let sealed = svc.seal_plain_webhook_secrets().await.map_err(|e| StartError::Other(e.to_string()))?;
    if sealed > 0 {
        tracing::info!(webhooks = sealed, "sealed webhook secrets stored in plain text");
    }
    svc.webhook_policy =
        crate::netguard::TargetPolicy { allow_http: s.webhook_allow_http, allow_private: s.webhook_allow_private };
    svc.rut_prov_sw =
        s.rut_prov_sw.as_deref().and_then(|r| r.parse::<crate::domain::Rut>().ok()).map(|r| r.to_string());
    svc.uf_pesos = s.uf_pesos.as_deref().and_then(|u| u.parse().ok());
    svc.cache = Some(crate::cache::Cache::new(&s.cache()).await.map_err(|e| StartError::Other(e.to_string()))?);
    Ok(Arc::new(svc))
}

/// The SII link of this instance: token manager on the shared cache, one client and circuit per
/// environment, and the sender/tracker and webhook workers.
pub fn sii_link(svc: &Arc<Service>, s: &Settings) -> Result<Arc<SiiLink>, StartError> {
    let cache = svc.cache.clone().ok_or_else(|| StartError::Other("no cache".into()))?;
    let tokens = Tokens::new(cache, Duration::from_secs(s.sii_token_ttl_seconds));
    let timeout = Duration::from_millis(s.sii_timeout_ms);
    let mut clients = HashMap::new();
    let err = |e: crate::sii::client::SiiError| StartError::Other(e.to_string());
    let trim = |u: &str| u.trim_end_matches('/').to_string();
    for (env, base, api, envio) in [
        (
            Environment::Certificacion,
            &s.sii_url_certificacion,
            &s.sii_boleta_api_url_certificacion,
            &s.sii_boleta_envio_url_certificacion,
        ),
        (
            Environment::Produccion,
            &s.sii_url_produccion,
            &s.sii_boleta_api_url_produccion,
            &s.sii_boleta_envio_url_produccion,
        ),
    ] {
        clients
            .insert((env, false), SiiApi::Soap(SiiClient::new(Endpoints { base: trim(base) }, timeout).map_err(err)?));
        let rest = BoletaClient::new(BoletaEndpoints { api: trim(api), envio: trim(envio) }, timeout).map_err(err)?;
        clients.insert((env, true), SiiApi::Boleta(rest));
    }
    Ok(SiiLink::new(
        svc.clone(),
        tokens,
        clients,
        (s.circuit_failures, Duration::from_millis(s.circuit_cooldown_ms)),
        s.link(),
    ))
}

/// The receiving side of this instance: RCV clients per environment, sharing the SII link's
/// tokens (without a link, intake and the inbox work and RCV decisions answer 503).
pub fn exchange(
    svc: &Arc<Service>,
    s: &Settings,
    link: Option<&Arc<SiiLink>>,
) -> Result<Arc<crate::worker::exchange::Exchange>, StartError> {
    let timeout = Duration::from_millis(s.sii_timeout_ms);
    let mut auth = HashMap::new();
    let mut rcv = HashMap::new();
    for (env, url) in [
        (Environment::Certificacion, &s.sii_rcv_url_certificacion),
        (Environment::Produccion, &s.sii_rcv_url_produccion),
    ] {
        if let Some(c) = link.and_then(|l| l.soap_client(env)) {
            auth.insert(env, c);
        }
        rcv.insert(env, crate::sii::rcv::RcvClient::new(url, timeout).map_err(|e| StartError::Other(e.to_string()))?);
    }
    Ok(crate::worker::exchange::Exchange::new(svc.clone(), link.map(|l| l.tokens.clone()), auth, rcv, s.exchange()))
}

/// The batch queue of this instance and the batch service on it.
pub async fn batches(svc: &Arc<Service>, s: &Settings, tracks_sii: bool) -> Result<Arc<Batches>, StartError> {
    let cfg = s.batches();
    let queue = match s.queue_mode.as_str() {
        "redis" => crate::queue::Queue::redis(
            &s.redis_urls,
            s.redis_cluster,
            "{dte}:batch-items",
            cfg.visibility,
            cfg.max_deliveries,
        )
        .await
        .map_err(|e| StartError::Other(e.to_string()))?,
        _ => crate::queue::Queue::memory(cfg.visibility, cfg.max_deliveries),
    };
    Ok(Arc::new(Batches::new(svc.clone(), Arc::new(queue), cfg, tracks_sii)))
}

/// The demo company 76192083-9 with the test certificate and fresh test CAFs for every type; prints
/// and saves an API key for it.
pub async fn demo(svc: &Service, data_dir: &Path) -> Result<String, StartError> {
    let company: Company = serde_json::from_slice(DEMO_COMPANY).map_err(|e| StartError::Other(e.to_string()))?;
    let rut: Rut =
        company.rut_emisor.parse().map_err(|e: crate::domain::rut::RutError| StartError::Other(e.to_string()))?;
    let rut_s = rut.to_string();
    let err = |e: ServiceError| StartError::Other(e.to_string());
    match svc.create_company(CompanyBody { company, environment: Environment::Certificacion }).await {
        Ok(_) | Err(ServiceError::Conflict(_)) => {}
        Err(e) => return Err(err(e)),
    }
    svc.put_certificate(&rut_s, DEMO_P12, "test1234").await.map_err(err)?;
    let today = Local::now().date_naive();
    let existing = svc.list_cafs(&rut_s).await.map_err(err)?;
    for tipo in TipoDte::ALL {
        let usable = existing.iter().any(|c| c.tipo == tipo.code() as i32 && c.folios_left > 0 && !c.expired);
        if usable {
            continue;
        }
        let start =
            existing.iter().filter(|c| c.tipo == tipo.code() as i32).map(|c| c.hasta + 1).max().unwrap_or(1) as u64;
        let xml = crate::demo::make_caf(
            DEMO_AUTHORITY_KEY,
            rut,
            "EMPRESA DE PRUEBA SPA",
            tipo.code(),
            start,
            start + 99_999,
            today,
        )
        .map_err(|e| StartError::Other(e.to_string()))?;
        svc.add_caf(&rut_s, xml.as_bytes()).await.map_err(err)?;
    }
    let key =
        svc.create_key(Some(&rut_s), &["issue".into(), "read".into()], None, "serve --demo").await.map_err(err)?;
    std::fs::create_dir_all(data_dir).map_err(|e| StartError::Other(e.to_string()))?;
    write_private(&data_dir.join("demo-api-key.txt"), key.key.as_bytes())?;
    Ok(key.key)
}

/// The gauges read from the database: folios left and expiry per company and type, certificate
/// expiry, documents per state.
pub async fn refresh_gauges(svc: &Service, warning: chrono::Duration) -> Result<(), ServiceError> {
    use crate::telemetry::{
        CAF_EXPIRY, CERT_EXPIRY, DOCUMENTS, FOLIOS_LEFT, RECEIVED_DEADLINE_NEAR, RECEIVED_DOCUMENTS,
    };
    let (received, near) = svc.received_counts(warning).await?;
    for rut in svc.companies().await? {
        let n = near.iter().find(|(c, _)| *c == rut).map(|(_, n)| *n).unwrap_or(0);
        metrics::gauge!(RECEIVED_DEADLINE_NEAR, "company" => rut.clone()).set(n as f64);
        let mut left: HashMap<i32, i64> = HashMap::new();
        let mut expiry: HashMap<i32, chrono::NaiveDate> = HashMap::new();
        let cafs = svc.list_cafs(&rut).await?;
        for c in &cafs {
            let usable = if c.usable() { c.folios_left } else { 0 };
            *left.entry(c.tipo).or_default() += usable;
            if let (Some(e), true) = (c.expires_on, usable > 0) {
                expiry.entry(c.tipo).and_modify(|x| *x = (*x).min(e)).or_insert(e);
            }
        }
        for (tipo, n) in left {
            metrics::gauge!(FOLIOS_LEFT, "company" => rut.clone(), "tipo" => tipo.to_string()).set(n as f64);
        }
        for (tipo, e) in expiry {
            let ts = e.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp()).unwrap_or(0);
            metrics::gauge!(CAF_EXPIRY, "company" => rut.clone(), "tipo" => tipo.to_string()).set(ts as f64);
        }
        if let Ok(c) = svc.certificate_info(&rut).await {
            metrics::gauge!(CERT_EXPIRY, "company" => rut.clone()).set(c.not_after.timestamp() as f64);
        }
        for f in svc.caf_forecast_of(&rut, &cafs).await? {
            // No issuance in the window: never at this pace.
            let days = f.days_left.unwrap_or(f64::INFINITY);
            metrics::gauge!(crate::telemetry::CAF_DAYS_LEFT, "company" => rut.clone(), "tipo" => f.tipo.to_string())
                .set(days);
        }
    }
    // A state no document is in any more reads zero, not its last count.
    for state in crate::domain::DocState::ALL {
        metrics::gauge!(DOCUMENTS, "state" => state.as_str()).set(0.0);
    }
    for (state, n) in svc.document_states().await? {
        metrics::gauge!(DOCUMENTS, "state" => state).set(n as f64);
    }
    for state in crate::service::RECEIVED_STATES {
        metrics::gauge!(RECEIVED_DOCUMENTS, "state" => state).set(0.0);
    }
    for (state, n) in received {
        metrics::gauge!(RECEIVED_DOCUMENTS, "state" => state).set(n as f64);
    }
    let age = svc.oldest_unsent().await?.map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0);
    metrics::gauge!(crate::telemetry::UNSENT_AGE).set(age.max(0.0));
    if let Some((in_use, waiting)) = svc.cache.as_ref().and_then(|c| c.pool_status()) {
        metrics::gauge!(crate::telemetry::REDIS_POOL_IN_USE).set(in_use as f64);
        metrics::gauge!(crate::telemetry::REDIS_POOL_WAITING).set(waiting as f64);
    }
    Ok(())
}

/// Revocation list reload and clean-up, the SII link and webhooks, for the life of the server.
pub fn background(
    svc: Arc<Service>,
    auth: Arc<Auth>,
    link: Option<Arc<SiiLink>>,
    exchange: Option<Arc<crate::worker::exchange::Exchange>>,
    s: &Settings,
) {
    if let Some(x) = exchange.filter(|_| s.exchange_workers) {
        actix_web::rt::spawn(x.run());
    }
    if let Some(link) = link {
        actix_web::rt::spawn(link.run());
        let hooks = svc.clone();
        let every = Duration::from_millis(s.worker_interval_ms);
        actix_web::rt::spawn(async move {
            match crate::worker::webhooks::client(hooks.webhook_policy) {
                Ok(http) => crate::worker::webhooks::run(hooks, http, every).await,
                Err(e) => tracing::error!(error = %e, "webhook client could not be built; no webhook is delivered"),
            }
        });
    }
    let poll = Duration::from_millis(s.revocation_poll_ms);
    let idem = chrono::Duration::hours(s.idempotency_hours);
    let a = auth.clone();
    actix_web::rt::spawn(async move {
        loop {
            if let Err(e) = a.refresh_revocations().await {
                tracing::warn!(error = %e, "could not reload the revocation list");
            }
            actix_web::rt::time::sleep(poll).await;
        }
    });
    let gauges = svc.clone();
    let warning = chrono::Duration::days(s.received_deadline_warning_days as i64);
    actix_web::rt::spawn(async move {
        loop {
            if let Err(e) = refresh_gauges(&gauges, warning).await {
                tracing::warn!(error = %e, "could not refresh the gauges");
            }
            // Slow-moving values: the alerts built on them look at minutes, not seconds.
            actix_web::rt::time::sleep(Duration::from_secs(15)).await;
        }
    });
    let audit = svc.clone();
    actix_web::rt::spawn(async move {
        // Each chain's newest MAC, logged when it moves: copied off-site, it anchors the chain (an
        // entry rewritten later no longer leads to an anchored MAC).
        let mut logged: HashMap<String, i64> = HashMap::new();
        loop {
            // The master key was rotated under this instance: everything it would seal or audit
            // from now on would be under a key the database no longer has. Stop, and be refused
            // at the next start with the reason.
            if let Ok(false) = audit.master_key_current().await {
                tracing::error!("the database's master key check value changed (the master key was rotated): stopping");
                std::process::exit(3);
            }
            match audit.audit_heads().await {
                Ok(heads) => {
                    for (scope, seq, mac) in heads {
                        metrics::gauge!(crate::telemetry::AUDIT_CHAIN_LENGTH, "scope" => scope.clone()).set(seq as f64);
                        if logged.get(&scope) != Some(&seq) {
                            tracing::info!(target: "audit", scope = %scope, seq, mac = %mac, "audit chain head");
                            logged.insert(scope, seq);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the audit chain heads"),
            }
            actix_web::rt::time::sleep(Duration::from_secs(60)).await;
        }
    });
    actix_web::rt::spawn(async move {
        loop {
            let now = Utc::now();
            if let Err(e) = svc.cleanup(now, now - idem).await {
                tracing::warn!(error = %e, "clean-up failed");
            }
            actix_web::rt::time::sleep(Duration::from_secs(60)).await;
        }
    });
}
