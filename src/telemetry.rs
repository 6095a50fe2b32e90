//! Logs (tracing: JSON or text to stdout, and JSON to daily/hourly rotating files) and metrics
//! (Prometheus text at `/metrics`). Metric names follow Prometheus conventions; the KPI names are
//! here, in one place, for the code, the alert rules and the dashboards.

use std::path::PathBuf;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub const DOCUMENTS_ISSUED: &str = "dte_documents_issued_total";
pub const ISSUANCE_SECONDS: &str = "dte_issuance_duration_seconds";
pub const ISSUANCE_STAGE_SECONDS: &str = "dte_issuance_stage_duration_seconds";
pub const ISSUANCE_GROUP_SIZE: &str = "dte_issuance_group_size";
pub const DOCUMENTS: &str = "dte_documents";
pub const SII_REQUESTS: &str = "dte_sii_requests_total";
pub const SII_REQUEST_SECONDS: &str = "dte_sii_request_duration_seconds";
pub const SII_TOKENS: &str = "dte_sii_token_acquisitions_total";
pub const SII_UPLOADS: &str = "dte_sii_uploads_total";
pub const SII_VERDICTS: &str = "dte_sii_upload_verdicts_total";
pub const SII_CIRCUIT_STATE: &str = "dte_sii_circuit_state";
pub const SII_CIRCUIT_OPENED: &str = "dte_sii_circuit_opened_total";
pub const CACHE_REQUESTS: &str = "dte_cache_requests_total";
pub const CACHE_DEGRADED: &str = "dte_cache_degraded";
pub const FOLIOS_LEFT: &str = "dte_caf_folios_left";
pub const CAF_EXPIRY: &str = "dte_caf_expiry_timestamp_seconds";
pub const CERT_EXPIRY: &str = "dte_certificate_expiry_timestamp_seconds";
pub const HTTP_REQUESTS: &str = "dte_http_requests_total";
pub const HTTP_SECONDS: &str = "dte_http_request_duration_seconds";
pub const WEBHOOK_DELIVERIES: &str = "dte_webhook_deliveries_total";
pub const UNSENT_AGE: &str = "dte_unsent_oldest_age_seconds";
pub const REDIS_POOL_IN_USE: &str = "dte_redis_pool_connections_in_use";
pub const REDIS_POOL_WAITING: &str = "dte_redis_pool_waiting";
pub const BATCH_QUEUE_DEPTH: &str = "dte_batch_queue_depth";
pub const BATCH_DLQ_SIZE: &str = "dte_batch_dead_letters";
pub const BATCH_OLDEST_PENDING_SECONDS: &str = "dte_batch_oldest_pending_age_seconds";
pub const BATCH_ITEMS: &str = "dte_batch_items_total";
pub const AUDIT_CHAIN_LENGTH: &str = "dte_audit_chain_length";
pub const AUTH_FAILURES: &str = "dte_auth_failures_total";
pub const CAF_DAYS_LEFT: &str = "dte_caf_days_left";
pub const CAF_WARNING_DAYS: &str = "dte_caf_warning_days";
pub const RECEIVED_DOCUMENTS: &str = "dte_received_documents";
pub const RECEIVED_DEADLINE_NEAR: &str = "dte_received_deadline_near";
pub const RECEIVED_TAKEN: &str = "dte_received_taken_total";
pub const RECEIVED_DECISIONS: &str = "dte_received_decisions_total";
pub const MAILBOX_POLLS: &str = "dte_mailbox_polls_total";
pub const RCV_CALLS: &str = "dte_rcv_calls_total";
pub const EXCHANGE_MAILS: &str = "dte_exchange_mails_total";
pub const BUYER_DELIVERIES: &str = "dte_buyer_deliveries_total";
pub const BUYER_ANSWERS: &str = "dte_buyer_answers_total";
pub const ISSUED_CLAIMS: &str = "dte_issued_claims_total";

/// Every metric the service exports (alert rules and dashboards may use only these).
pub const ALL: &[&str] = &[
    DOCUMENTS_ISSUED,
    ISSUANCE_SECONDS,
    ISSUANCE_STAGE_SECONDS,
    ISSUANCE_GROUP_SIZE,
    DOCUMENTS,
    SII_REQUESTS,
    SII_REQUEST_SECONDS,
    SII_TOKENS,
    SII_UPLOADS,
    SII_VERDICTS,
    SII_CIRCUIT_STATE,
    SII_CIRCUIT_OPENED,
    CACHE_REQUESTS,
    CACHE_DEGRADED,
    FOLIOS_LEFT,
    CAF_EXPIRY,
    CERT_EXPIRY,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    WEBHOOK_DELIVERIES,
    UNSENT_AGE,
    REDIS_POOL_IN_USE,
    REDIS_POOL_WAITING,
    BATCH_QUEUE_DEPTH,
    BATCH_DLQ_SIZE,
    BATCH_OLDEST_PENDING_SECONDS,
    BATCH_ITEMS,
    AUDIT_CHAIN_LENGTH,
    AUTH_FAILURES,
    CAF_DAYS_LEFT,
    CAF_WARNING_DAYS,
    RECEIVED_DOCUMENTS,
    RECEIVED_DEADLINE_NEAR,
    RECEIVED_TAKEN,
    RECEIVED_DECISIONS,
    MAILBOX_POLLS,
    RCV_CALLS,
    EXCHANGE_MAILS,
    BUYER_DELIVERIES,
    BUYER_ANSWERS,
    ISSUED_CLAIMS,
];

/// Label values known before any traffic: every series an alert or a dashboard reads exists from
/// the first scrape, at zero, so "no data" means a dead target, not an idle one.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub companies: Vec<String>,
    /// (route pattern, method, the status it answers when it works)
    pub routes: Vec<(String, String, u16)>,
}

/// Every operation the SII link counts (`sii::api`).
pub const SII_OPERATIONS: [&str; 12] = [
    "token",
    "boleta_token",
    "upload",
    "boleta_upload",
    "upload_status",
    "boleta_upload_status",
    "document_status",
    "boleta_status",
    "ingresarAceptacionReclamoDoc",
    "listarEventosHistDoc",
    "consultarDocDteCedible",
    "consultarFechaRecepcionSii",
];
/// What an RCV call came to (`worker::exchange`).
pub const RCV_OUTCOMES: [&str; 7] = ["ok", "already", "past_deadline", "refused", "retry", "token_refused", "failed"];
const SII_OUTCOMES: [&str; 4] = ["ok", "refused", "failed", "error"];
/// Upload verdicts the SII gives (accepted, with objections, rejected).
const SII_ESTADOS: [&str; 9] = ["EPR", "RLV", "RPR", "RSC", "RFR", "RCT", "RCH", "RPT", "VOF"];
const UPLOAD_OUTCOMES: [&str; 4] = ["received", "reauthenticate", "retry", "rejected"];
const BATCH_OUTCOMES: [&str; 4] = ["issued", "failed", "retried", "dead"];

/// Registers every metric with zero for its known label values (see [`Known`]); counting from
/// zero changes nothing already counted. Gauges the background tasks fill in (folios, expiries)
/// get their values there, and the SII circuits theirs when the link starts.
pub fn register_known(k: &Known) {
    use metrics::{counter, gauge, histogram};
    for company in &k.companies {
        register_company(company);
    }
    let _ = histogram!(ISSUANCE_SECONDS);
    let _ = histogram!(ISSUANCE_GROUP_SIZE);
    for stage in ["tax", "sign", "validate"] {
        let _ = histogram!(ISSUANCE_STAGE_SECONDS, "stage" => stage);
    }
    for state in crate::domain::DocState::ALL {
        gauge!(DOCUMENTS, "state" => state.as_str()).increment(0.0);
    }
    for op in SII_OPERATIONS {
        for outcome in SII_OUTCOMES {
            counter!(SII_REQUESTS, "operation" => op, "outcome" => outcome).increment(0);
        }
        let _ = histogram!(SII_REQUEST_SECONDS, "operation" => op);
    }
    for result in ["ok", "error"] {
        counter!(SII_TOKENS, "result" => result).increment(0);
    }
    for outcome in UPLOAD_OUTCOMES {
        counter!(SII_UPLOADS, "outcome" => outcome).increment(0);
    }
    for estado in SII_ESTADOS {
        counter!(SII_VERDICTS, "estado" => estado).increment(0);
    }
    for layer in ["l1", "l2"] {
        for result in ["hit", "miss"] {
            counter!(CACHE_REQUESTS, "layer" => layer, "result" => result).increment(0);
        }
    }
    gauge!(CACHE_DEGRADED).increment(0.0);
    for (route, method, status) in &k.routes {
        counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
            .increment(0);
        let _ = histogram!(HTTP_SECONDS, "route" => route.clone());
    }
    for outcome in ["delivered", "failed"] {
        counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for g in [
        UNSENT_AGE,
        REDIS_POOL_IN_USE,
        REDIS_POOL_WAITING,
        BATCH_QUEUE_DEPTH,
        BATCH_DLQ_SIZE,
        BATCH_OLDEST_PENDING_SECONDS,
    ] {
        gauge!(g).increment(0.0);
    }
    for outcome in BATCH_OUTCOMES {
        counter!(BATCH_ITEMS, "outcome" => outcome).increment(0);
    }
    counter!(AUTH_FAILURES).increment(0);
    for state in crate::exchange::rcv::RECEIVED_STATES {
        gauge!(RECEIVED_DOCUMENTS, "state" => state).increment(0.0);
    }
    for source in ["mailbox", "upload"] {
        counter!(RECEIVED_TAKEN, "source" => source).increment(0);
    }
    for a in crate::exchange::rcv::Accion::ALL {
        counter!(RECEIVED_DECISIONS, "decision" => a.code()).increment(0);
    }
    for op in &SII_OPERATIONS[8..] {
        for outcome in RCV_OUTCOMES {
            counter!(RCV_CALLS, "operation" => *op, "outcome" => outcome).increment(0);
        }
    }
    for outcome in ["sent", "retry", "failed"] {
        counter!(EXCHANGE_MAILS, "outcome" => outcome).increment(0);
        counter!(BUYER_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for state in ["buyer_received", "buyer_accepted", "buyer_rejected", "goods_received"] {
        counter!(BUYER_ANSWERS, "state" => state).increment(0);
    }
}

/// A company's series, at zero (at start, and when a company is registered).
pub fn register_company(rut: &str) {
    metrics::gauge!(RECEIVED_DEADLINE_NEAR, "company" => rut.to_string()).increment(0.0);
    metrics::counter!(ISSUED_CLAIMS, "company" => rut.to_string()).increment(0);
    for outcome in ["ok", "failed"] {
        metrics::counter!(MAILBOX_POLLS, "company" => rut.to_string(), "outcome" => outcome).increment(0);
    }
    for tipo in crate::domain::TipoDte::ALL {
        metrics::counter!(DOCUMENTS_ISSUED, "tipo" => tipo.code().to_string(), "company" => rut.to_string())
            .increment(0);
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `RUST_LOG` syntax; `RUST_LOG` itself wins.
    pub level: String,
    /// `json` or `text` on stdout.
    pub format: String,
    /// Also write JSON lines to rotating files here.
    pub dir: Option<PathBuf>,
    /// `daily`, `hourly` or `minutely`.
    pub rotation: String,
    /// Files kept.
    pub keep: usize,
    /// Export the spans over OTLP/HTTP here (see `otel`).
    pub otlp_endpoint: Option<String>,
}

/// What keeps the logs and traces flowing: drop it last (it flushes).
pub struct LogGuards {
    _files: Vec<WorkerGuard>,
    _otel: Option<crate::otel::Exporting>,
}

/// Installs the log subscriber (and the trace exporter when configured); keep the guards alive
/// for the life of the process (they flush).
pub fn init_logs(cfg: &LogConfig) -> Result<LogGuards, String> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&cfg.level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let mut guards = Vec::new();
    let (stdout, g) = tracing_appender::non_blocking(std::io::stdout());
    guards.push(g);
    let console = if cfg.format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(stdout)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(stdout).with_filter(filter()).boxed()
    };
    let file = match &cfg.dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let rotation = match cfg.rotation.as_str() {
                "hourly" => Rotation::HOURLY,
                "minutely" => Rotation::MINUTELY,
                _ => Rotation::DAILY,
            };
            let appender = RollingFileAppender::builder()
                .rotation(rotation)
                .filename_prefix("dte-gateway")
                .filename_suffix("log")
                .max_log_files(cfg.keep.max(1))
                .build(dir)
                .map_err(|e| e.to_string())?;
            let (w, g) = tracing_appender::non_blocking(appender);
            guards.push(g);
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_ansi(false)
                    .with_writer(w)
                    .with_filter(filter())
                    .boxed(),
            )
        }
    };
    let (otel, exporting) = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            let instance = format!("{}-{}", hostname(), std::process::id());
            let (layer, exporting) = crate::otel::layer(endpoint, &instance)?;
            // The gateway's own spans at info, whatever the log level: the traces are their own
            // record.
            let targets = tracing_subscriber::filter::Targets::new().with_target("dte_gateway", tracing::Level::INFO);
            (Some(layer.with_filter(targets)), Some(exporting))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(console).with(file).with(otel).try_init().map_err(|e| e.to_string())?;
    Ok(LogGuards { _files: guards, _otel: exporting })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into())
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}
