//! One `Settings` for the service: built-in defaults, then `dte-gateway.toml` (or the file named by
//! `--config` / `DTE_GATEWAY_CONFIG`), then environment variables. Validated at start with one
//! message per bad value.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    pub bind: String,
    /// Worker threads for HTTP (0: one per core).
    pub workers: usize,
    /// Folder for the embedded database and the generated master key.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` (embedded default) or `postgres://…`.
    pub database_url: Option<String>,
    /// Pool size for PostgreSQL.
    pub database_pool: usize,
    /// 32-byte key (base64) that encrypts certificates and CAF keys at rest. Never stored in the
    /// database; when absent, one is generated into `data_dir/master.key` (embedded use only).
    pub master_key: Option<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Certificate (PEM) of a test CAF authority to trust besides the SII (demo and tests only;
    /// refused for companies in producción).
    pub trust_test_authority: Option<PathBuf>,
    /// Per-API-key token bucket: sustained requests per second and burst.
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: f64,
    /// How long a rotated key keeps working, seconds.
    pub key_rotation_grace_seconds: i64,
    /// How long idempotency keys are kept, hours (at least 24).
    pub idempotency_hours: i64,
    /// How often each instance reads the revocation list, milliseconds.
    pub revocation_poll_ms: u64,
    /// `memory` (embedded default), `redis` or `tiered` (memory in front of Redis).
    pub cache_mode: String,
    /// Redis for the cache: one URL, or every node of a Cluster.
    pub redis_urls: Vec<String>,
    pub redis_cluster: bool,
    /// SII hosts per environment (point both at `dte-gateway sii-sim` for tests).
    pub sii_url_certificacion: String,
    pub sii_url_produccion: String,
    /// The boleta REST API: its API host and its envío host, per environment.
    pub sii_boleta_api_url_certificacion: String,
    pub sii_boleta_envio_url_certificacion: String,
    pub sii_boleta_api_url_produccion: String,
    pub sii_boleta_envio_url_produccion: String,
    pub sii_timeout_ms: u64,
    /// How long an SII token is reused (no SII figure is published).
    pub sii_token_ttl_seconds: u64,
    /// Run the sender, tracker and webhook workers in this instance.
    pub sii_workers: bool,
    pub sender_max_docs: i64,
    pub sender_max_age_ms: u64,
    pub worker_interval_ms: u64,
    pub track_every_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    pub circuit_failures: u32,
    pub circuit_cooldown_ms: u64,
    /// Log filter (`RUST_LOG` syntax; `RUST_LOG` wins), stdout format `json` or `text`.
    pub log_level: String,
    pub log_format: String,
    /// Also write JSON logs to rotating files in this folder.
    pub log_dir: Option<PathBuf>,
    /// `daily`, `hourly` (or `minutely`, for tests); files kept.
    pub log_rotation: String,
    pub log_keep: usize,
    /// Serve HTTPS directly with this certificate chain and key (PEM); plain HTTP without them.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Batch queue: `memory` (one instance) or `redis` (Redis Streams on `redis_urls`).
    pub queue_mode: String,
    /// Concurrent batch issuers per instance (0: this instance takes batches in, others issue).
    pub batch_workers: usize,
    /// The largest batch upload.
    pub batch_max_bytes: u64,
    /// A taken batch item not acknowledged within this time is handed to another worker.
    pub batch_visibility_ms: u64,
    /// Deliveries of an item before it goes to the dead letters.
    pub batch_max_deliveries: u64,
    /// Pending items the queue does not hold (an instance died before queueing them, or Redis
    /// lost its data) are queued again once they are this old.
    pub batch_requeue_after_ms: u64,
    /// Webhook receivers over plain `http://`.
    pub webhook_allow_http: bool,
    /// Webhook receivers on loopback, private or link-local addresses (on-premise ERPs).
    pub webhook_allow_private: bool,
    /// The Prometheus endpoint's own listener ("" keeps `/metrics` on the API port, where it then
    /// needs `metrics_token`).
    pub metrics_bind: String,
    /// Bearer token for `/metrics` (required when it shares the API port).
    pub metrics_token: Option<String>,
    /// A request body (or upload) that is not fully read within this is cut with `408`.
    pub body_read_timeout_ms: u64,
    /// An event stream ends after this long (the client reconnects with `Last-Event-ID`).
    pub event_stream_max_seconds: u64,
    /// How often an open event stream checks that its key is still valid.
    pub event_stream_recheck_ms: u64,
    /// Failed authentications per client address and minute before `429`.
    pub auth_failures_per_minute: u32,
    /// Alert when a type's folios run out in fewer days than this at the last week's pace
    /// (exported as `dte_caf_warning_days` for the alert rule).
    pub caf_warning_days: u32,
    /// Export traces over OTLP/HTTP to this collector (e.g. `http://127.0.0.1:4318`); off when unset.
    pub otlp_endpoint: Option<String>,
    /// The SII's RCV web service (acceptance and claims of received DTEs) per environment.
    pub sii_rcv_url_certificacion: String,
    pub sii_rcv_url_produccion: String,
    /// Poll exchange mailboxes, send answers to suppliers and follow the RCV in this instance.
    pub exchange_workers: bool,
    /// Pause between the exchange worker's rounds, milliseconds.
    pub exchange_interval_ms: u64,
    /// `received.deadline_near` fires (and the alert counts a document) this many days before the
    /// 8-day window of a received document closes.
    pub received_deadline_warning_days: u32,
    /// A web console session ends after this many minutes without use…
    pub console_idle_minutes: u32,
    /// …and this many hours after sign-in whatever happens.
    pub console_session_hours: u32,
    /// Console cookies always `Secure` (with the `__Host-` prefix), for a gateway behind a TLS proxy
    /// that does not say so in `X-Forwarded-Proto`; under the gateway's own TLS they are anyway.
    pub console_secure_cookies: bool,
    /// The software provider's RUT, written in every boleta (`RUTProvSW`, EnvioBOLETA_v11): this
    /// gateway's operator, or the company itself for its own installation. None: not written.
    pub rut_prov_sw: Option<String>,
    /// The UF's value in pesos, for the boletas above 135 UF (Ley 21.713: the buyer's RUT, code
    /// and name and the means of payment are then required). Unset: not applied.
    pub uf_pesos: Option<String>,
    /// How boletas reach the SII in certificación: `rest` (the boleta API, as in producción) or
    /// `dteupload` (SOAP DTEUpload, the only channel the SII's boleta certification set counts).
    pub boleta_channel_certificacion: String,
    /// How often an undecided received document's RCV state is asked again, seconds.
    pub rcv_recheck_seconds: u64,
    /// Follow the RCV's history of issued 33/34/43 (buyers' acceptances and claims).
    pub rcv_track_issued: bool,
    /// Tries of a mail to a supplier or a buyer before it fails, and the first retry's delay
    /// (doubling per try, at most an hour).
    pub exchange_mail_attempts: i64,
    pub exchange_mail_backoff_ms: u64,
    /// Exchange mailboxes (IMAP, SMTP) on loopback, private or link-local addresses (on-premise
    /// mail servers); plain `imap://` and `smtp://` without STARTTLS only there.
    pub mailbox_allow_private: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_pool: 16,
            master_key: None,
            max_body_bytes: 2 * 1024 * 1024,
            trust_test_authority: None,
            rate_limit_per_second: 200.0,
            rate_limit_burst: 400.0,
            key_rotation_grace_seconds: 86_400,
            idempotency_hours: 48,
            revocation_poll_ms: 250,
            cache_mode: "memory".into(),
            redis_urls: vec![],
            redis_cluster: false,
            sii_url_certificacion: "https://maullin.sii.cl".into(),
            sii_url_produccion: "https://palena.sii.cl".into(),
            sii_boleta_api_url_certificacion: "https://apicert.sii.cl".into(),
            sii_boleta_envio_url_certificacion: "https://pangal.sii.cl".into(),
            sii_boleta_api_url_produccion: "https://api.sii.cl".into(),
            sii_boleta_envio_url_produccion: "https://rahue.sii.cl".into(),
            sii_timeout_ms: 30_000,
            sii_token_ttl_seconds: 300,
            sii_workers: true,
            sender_max_docs: 50,
            sender_max_age_ms: 2_000,
            worker_interval_ms: 200,
            track_every_ms: 500,
            retry_backoff_ms: 500,
            retry_max_backoff_ms: 60_000,
            circuit_failures: 5,
            circuit_cooldown_ms: 5_000,
            log_level: "info".into(),
            log_format: "json".into(),
            log_dir: None,
            log_rotation: "daily".into(),
            log_keep: 7,
            tls_cert: None,
            tls_key: None,
            queue_mode: "memory".into(),
            batch_workers: 2,
            batch_max_bytes: 50 * 1024 * 1024,
            batch_visibility_ms: 30_000,
            batch_max_deliveries: 5,
            batch_requeue_after_ms: 120_000,
            webhook_allow_http: false,
            webhook_allow_private: false,
            metrics_bind: "127.0.0.1:9464".into(),
            metrics_token: None,
            body_read_timeout_ms: 30_000,
            event_stream_max_seconds: 3600,
            event_stream_recheck_ms: 5_000,
            auth_failures_per_minute: 30,
            caf_warning_days: 14,
            otlp_endpoint: None,
            sii_rcv_url_certificacion: crate::sii::rcv::default_url(crate::domain::Environment::Certificacion).into(),
            sii_rcv_url_produccion: crate::sii::rcv::default_url(crate::domain::Environment::Produccion).into(),
            exchange_workers: true,
            exchange_interval_ms: 1_000,
            received_deadline_warning_days: 2,
            console_idle_minutes: 30,
            console_session_hours: 12,
            console_secure_cookies: false,
            rut_prov_sw: None,
            uf_pesos: None,
            boleta_channel_certificacion: "rest".into(),
            rcv_recheck_seconds: 3_600,
            rcv_track_issued: true,
            exchange_mail_attempts: 8,
            exchange_mail_backoff_ms: 30_000,
            mailbox_allow_private: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

const ENV: &[&str] = &[
    "BIND",
    "WORKERS",
    "DATA_DIR",
    "DATABASE_URL",
    "DATABASE_POOL",
    "MASTER_KEY",
    "MAX_BODY_BYTES",
    "TRUST_TEST_AUTHORITY",
    "RATE_LIMIT_PER_SECOND",
    "RATE_LIMIT_BURST",
    "KEY_ROTATION_GRACE_SECONDS",
    "IDEMPOTENCY_HOURS",
    "REVOCATION_POLL_MS",
    "CACHE_MODE",
    "REDIS_URLS",
    "REDIS_CLUSTER",
    "SII_URL_CERTIFICACION",
    "SII_URL_PRODUCCION",
    "SII_BOLETA_API_URL_CERTIFICACION",
    "SII_BOLETA_ENVIO_URL_CERTIFICACION",
    "SII_BOLETA_API_URL_PRODUCCION",
    "SII_BOLETA_ENVIO_URL_PRODUCCION",
    "SII_TIMEOUT_MS",
    "SII_TOKEN_TTL_SECONDS",
    "SII_WORKERS",
    "SENDER_MAX_DOCS",
    "SENDER_MAX_AGE_MS",
    "WORKER_INTERVAL_MS",
    "TRACK_EVERY_MS",
    "RETRY_BACKOFF_MS",
    "RETRY_MAX_BACKOFF_MS",
    "CIRCUIT_FAILURES",
    "CIRCUIT_COOLDOWN_MS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LOG_DIR",
    "LOG_ROTATION",
    "LOG_KEEP",
    "TLS_CERT",
    "TLS_KEY",
    "QUEUE_MODE",
    "BATCH_WORKERS",
    "BATCH_MAX_BYTES",
    "BATCH_VISIBILITY_MS",
    "BATCH_MAX_DELIVERIES",
    "BATCH_REQUEUE_AFTER_MS",
    "WEBHOOK_ALLOW_HTTP",
    "WEBHOOK_ALLOW_PRIVATE",
    "METRICS_BIND",
    "METRICS_TOKEN",
    "BODY_READ_TIMEOUT_MS",
    "EVENT_STREAM_MAX_SECONDS",
    "EVENT_STREAM_RECHECK_MS",
    "AUTH_FAILURES_PER_MINUTE",
    "CAF_WARNING_DAYS",
    "OTLP_ENDPOINT",
    "SII_RCV_URL_CERTIFICACION",
    "SII_RCV_URL_PRODUCCION",
    "EXCHANGE_WORKERS",
    "EXCHANGE_INTERVAL_MS",
    "RECEIVED_DEADLINE_WARNING_DAYS",
    "CONSOLE_IDLE_MINUTES",
    "CONSOLE_SESSION_HOURS",
    "CONSOLE_SECURE_COOKIES",
    "RUT_PROV_SW",
    "UF_PESOS",
    "BOLETA_CHANNEL_CERTIFICACION",
    "RCV_RECHECK_SECONDS",
    "RCV_TRACK_ISSUED",
    "EXCHANGE_MAIL_ATTEMPTS",
    "EXCHANGE_MAIL_BACKOFF_MS",
    "MAILBOX_ALLOW_PRIVATE",
];

impl Settings {
    /// Defaults < file < environment (`DTE_GATEWAY_<NAME>`, and `DATABASE_URL`).
    pub fn load(file: Option<PathBuf>) -> Result<Settings, ConfigError> {
        let path = file.or_else(|| std::env::var_os("DTE_GATEWAY_CONFIG").map(PathBuf::from));
        let explicit = path.is_some();
        let path = path.unwrap_or_else(|| PathBuf::from("dte-gateway.toml"));
        let mut table: toml::Table = match std::fs::read_to_string(&path) {
            Ok(s) => s.parse().map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?,
            Err(_) if !explicit => toml::Table::new(),
            Err(e) => return Err(ConfigError(vec![format!("{}: {e}", path.display())])),
        };
        let mut errors = Vec::new();
        for name in ENV {
            let var = format!("DTE_GATEWAY_{name}");
            let value = std::env::var(&var)
                .ok()
                .or_else(|| (*name == "DATABASE_URL").then(|| std::env::var("DATABASE_URL").ok()).flatten());
            if let Some(v) = value {
                let key = name.to_ascii_lowercase();
                let parsed = match key.as_str() {
                    "workers"
                    | "database_pool"
                    | "max_body_bytes"
                    | "key_rotation_grace_seconds"
                    | "idempotency_hours"
                    | "revocation_poll_ms"
                    | "sii_timeout_ms"
                    | "sii_token_ttl_seconds"
                    | "sender_max_docs"
                    | "sender_max_age_ms"
                    | "worker_interval_ms"
                    | "track_every_ms"
                    | "retry_backoff_ms"
                    | "retry_max_backoff_ms"
                    | "circuit_failures"
                    | "circuit_cooldown_ms"
                    | "log_keep"
                    | "batch_workers"
                    | "batch_max_bytes"
                    | "batch_visibility_ms"
                    | "batch_max_deliveries"
                    | "batch_requeue_after_ms"
                    | "body_read_timeout_ms"
                    | "event_stream_max_seconds"
                    | "event_stream_recheck_ms"
                    | "auth_failures_per_minute"
                    | "caf_warning_days"
                    | "exchange_interval_ms"
                    | "received_deadline_warning_days"
                    | "console_idle_minutes"
                    | "console_session_hours"
                    | "rcv_recheck_seconds"
                    | "exchange_mail_attempts"
                    | "exchange_mail_backoff_ms" => {
                        v.parse::<i64>().map(toml::Value::Integer).map_err(|_| format!("{var} must be a whole number"))
                    }
                    "redis_cluster"
                    | "sii_workers"
                    | "webhook_allow_http"
                    | "webhook_allow_private"
                    | "exchange_workers"
                    | "rcv_track_issued"
                    | "mailbox_allow_private"
                    | "console_secure_cookies" => {
                        v.parse::<bool>().map(toml::Value::Boolean).map_err(|_| format!("{var} must be true or false"))
                    }
                    "redis_urls" => Ok(toml::Value::Array(
                        v.split(',')
                            .map(str::trim)
                            .filter(|u| !u.is_empty())
                            .map(|u| toml::Value::String(u.into()))
                            .collect(),
                    )),
                    "rate_limit_per_second" | "rate_limit_burst" => {
                        v.parse::<f64>().map(toml::Value::Float).map_err(|_| format!("{var} must be a number"))
                    }
                    _ => Ok(toml::Value::String(v)),
                };
                match parsed {
                    Ok(p) => {
                        table.insert(key, p);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let s: Settings = table.try_into_settings()?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut e = Vec::new();
        if self.bind.parse::<SocketAddr>().is_err() {
            e.push(format!("bind {:?} is not an address:port", self.bind));
        }
        if let Some(u) = &self.database_url {
            if !(u.starts_with("sqlite://") || u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                e.push("database_url must start with sqlite:// or postgres://".into());
            }
        }
        if let Some(k) = &self.master_key {
            if crate::vault::Vault::from_base64(k).is_err() {
                e.push("master_key must be 32 bytes in base64".into());
            }
        }
        if !self.metrics_bind.is_empty() && self.metrics_bind.parse::<SocketAddr>().is_err() {
            e.push(format!("metrics_bind {:?} is not an address:port", self.metrics_bind));
        }
        if self.metrics_bind.is_empty() && self.metrics_token.as_deref().is_none_or(|t| t.len() < 16) {
            e.push(
                "with metrics_bind empty, /metrics shares the API port and needs metrics_token (16+ characters)".into(),
            );
        }
        if self.auth_failures_per_minute == 0 {
            e.push("auth_failures_per_minute must be at least 1".into());
        }
        if self.body_read_timeout_ms == 0 || self.event_stream_max_seconds == 0 || self.event_stream_recheck_ms == 0 {
            e.push("body_read_timeout_ms, event_stream_max_seconds and event_stream_recheck_ms must be above 0".into());
        }
        if !matches!(self.queue_mode.as_str(), "memory" | "redis") {
            e.push("queue_mode must be memory or redis".into());
        }
        if self.queue_mode == "redis" && self.redis_urls.is_empty() {
            e.push("queue_mode redis needs redis_urls".into());
        }
        if self.batch_max_deliveries == 0 || self.batch_visibility_ms < 100 {
            e.push("batch_max_deliveries must be at least 1 and batch_visibility_ms at least 100".into());
        }
        if self.database_pool == 0 {
            e.push("database_pool must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            e.push("max_body_bytes must be at least 1024".into());
        }
        if self.rate_limit_per_second.is_nan()
            || self.rate_limit_per_second <= 0.0
            || self.rate_limit_burst.is_nan()
            || self.rate_limit_burst < 1.0
        {
            e.push("rate_limit_per_second must be > 0 and rate_limit_burst ≥ 1".into());
        }
        if self.idempotency_hours < 24 {
            e.push("idempotency_hours must be at least 24".into());
        }
        if self.key_rotation_grace_seconds < 0 {
            e.push("key_rotation_grace_seconds must not be negative".into());
        }
        if !matches!(self.boleta_channel_certificacion.as_str(), "rest" | "dteupload") {
            e.push(format!(
                "boleta_channel_certificacion {:?} is not rest or dteupload",
                self.boleta_channel_certificacion
            ));
        }
        if self
            .uf_pesos
            .as_deref()
            .is_some_and(|u| u.parse::<rust_decimal::Decimal>().map_or(true, |d| d <= rust_decimal::Decimal::ZERO))
        {
            e.push("uf_pesos must be a positive amount of pesos, e.g. 39643.59".into());
        }
        if let Some(r) = &self.rut_prov_sw {
            if r.parse::<crate::domain::Rut>().is_err() {
                e.push(format!("rut_prov_sw {r:?} is not a valid RUT"));
            }
        }
        if self.console_session_hours == 0 || self.console_session_hours > 720 {
            e.push("console_session_hours must be 1..720".into());
        }
        if self.console_idle_minutes == 0 || self.console_idle_minutes > self.console_session_hours.saturating_mul(60) {
            e.push("console_idle_minutes must be at least 1 and at most console_session_hours".into());
        }
        if self.revocation_poll_ms == 0 || self.revocation_poll_ms > 1000 {
            e.push("revocation_poll_ms must be 1..1000 (revocations must reach every instance within 1 s)".into());
        }
        if !matches!(self.cache_mode.as_str(), "memory" | "redis" | "tiered") {
            e.push("cache_mode must be memory, redis or tiered".into());
        } else if self.cache_mode != "memory" && self.redis_urls.is_empty() {
            e.push("cache_mode redis/tiered needs redis_urls".into());
        }
        if self.redis_urls.iter().any(|u| !u.starts_with("redis://")) {
            e.push("redis_urls must be redis://host:port".into());
        }
        for (n, u) in [
            ("sii_url_certificacion", &self.sii_url_certificacion),
            ("sii_url_produccion", &self.sii_url_produccion),
            ("sii_rcv_url_certificacion", &self.sii_rcv_url_certificacion),
            ("sii_rcv_url_produccion", &self.sii_rcv_url_produccion),
        ] {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                e.push(format!("{n} must be an http(s) URL"));
            }
        }
        if self.sii_token_ttl_seconds == 0
            || self.sender_max_docs < 1
            || self.sender_max_docs > 2000
            || self.circuit_failures == 0
        {
            e.push("sii_token_ttl_seconds, circuit_failures must be positive and sender_max_docs 1..2000".into());
        }
        if !matches!(self.log_format.as_str(), "json" | "text")
            || !matches!(self.log_rotation.as_str(), "daily" | "hourly" | "minutely")
        {
            e.push("log_format is json or text; log_rotation is daily, hourly or minutely".into());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                for p in [c, k] {
                    if !p.exists() {
                        e.push(format!("{} does not exist", p.display()));
                    }
                }
            }
            (None, None) => {}
            _ => e.push("tls_cert and tls_key go together".into()),
        }
        if let Some(p) = &self.trust_test_authority {
            if !p.exists() {
                e.push(format!("trust_test_authority {} does not exist", p.display()));
            }
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(e))
        }
    }

    /// The database URL, defaulting to SQLite in `data_dir`.
    pub fn console(&self) -> crate::http::console::ConsoleSettings {
        crate::http::console::ConsoleSettings {
            limits: crate::service::SessionLimits {
                idle: chrono::Duration::minutes(self.console_idle_minutes as i64),
                absolute: chrono::Duration::hours(self.console_session_hours as i64),
            },
            secure_cookies: self.console_secure_cookies,
        }
    }

    pub fn cache(&self) -> crate::cache::CacheConfig {
        crate::cache::CacheConfig {
            mode: self.cache_mode.clone(),
            redis_urls: self.redis_urls.clone(),
            cluster: self.redis_cluster,
            ..Default::default()
        }
    }

    pub fn exchange(&self) -> crate::worker::exchange::ExchangeConfig {
        use std::time::Duration;
        crate::worker::exchange::ExchangeConfig {
            interval: Duration::from_millis(self.exchange_interval_ms.max(50)),
            deadline_warning: chrono::Duration::days(self.received_deadline_warning_days as i64),
            rcv_recheck: chrono::Duration::seconds(self.rcv_recheck_seconds.max(1) as i64),
            track_issued: self.rcv_track_issued,
            mail_tries: self.exchange_mail_attempts.clamp(1, 100),
            // Doubled up to 7 times: an hour at most keeps the arithmetic far from overflowing.
            mail_backoff: chrono::Duration::milliseconds(self.exchange_mail_backoff_ms.clamp(1, 3_600_000) as i64),
            mail_policy: crate::netguard::TargetPolicy { allow_http: false, allow_private: self.mailbox_allow_private },
            ..Default::default()
        }
    }

    pub fn link(&self) -> crate::worker::LinkConfig {
        use std::time::Duration;
        crate::worker::LinkConfig {
            max_docs: self.sender_max_docs,
            max_age: Duration::from_millis(self.sender_max_age_ms),
            interval: Duration::from_millis(self.worker_interval_ms),
            backoff: Duration::from_millis(self.retry_backoff_ms),
            max_backoff: Duration::from_millis(self.retry_max_backoff_ms),
            track_every: Duration::from_millis(self.track_every_ms),
            boletas_by_dteupload_certificacion: self.boleta_channel_certificacion == "dteupload",
            ..Default::default()
        }
    }

    pub fn batches(&self) -> crate::batch::BatchConfig {
        crate::batch::BatchConfig {
            workers: self.batch_workers,
            visibility: std::time::Duration::from_millis(self.batch_visibility_ms),
            max_deliveries: self.batch_max_deliveries,
            requeue_after: std::time::Duration::from_millis(self.batch_requeue_after_ms.max(1000)),
        }
    }

    pub fn logs(&self) -> crate::telemetry::LogConfig {
        crate::telemetry::LogConfig {
            level: self.log_level.clone(),
            format: self.log_format.clone(),
            dir: self.log_dir.clone(),
            rotation: self.log_rotation.clone(),
            keep: self.log_keep,
            otlp_endpoint: self.otlp_endpoint.clone().filter(|e| !e.is_empty()),
        }
    }

    pub fn database(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("dte-gateway.sqlite").display()))
    }
}

trait IntoSettings {
    fn try_into_settings(self) -> Result<Settings, ConfigError>;
}

impl IntoSettings for toml::Table {
    fn try_into_settings(self) -> Result<Settings, ConfigError> {
        toml::Value::Table(self).try_into().map_err(|e: toml::de::Error| ConfigError(vec![e.message().to_string()]))
    }
}
