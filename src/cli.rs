//! Command line: `serve`, `dte build|verify|pdf`, `envio build`, `batch`, `keys`, `audit`, `caf`,
//! `doctor`, `migrate`, `completions`. Exit codes are in `EXIT_CODES` (shown by `--help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{Local, NaiveDateTime, Timelike};
use clap::{Args, Parser, Subcommand};

use dte_gateway::caf::{Caf, CafTrust};
use dte_gateway::cert::Certificate;
use dte_gateway::config::Settings;
use dte_gateway::domain::tax::TaxTable;
use dte_gateway::domain::{Company, DocumentInput, Rut};
use dte_gateway::engine::Issuer;
use dte_gateway::http::auth::Auth;
use dte_gateway::ted::TS_FORMAT;
use dte_gateway::{server, sii, verify, DteError};
use std::sync::Arc;

/// Files larger than this are refused before parsing.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DTE_GATEWAY_COMMIT"), ")");

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  a check ran and found a problem (dte verify, audit verify, doctor, batch --watch with failures)
  2  bad input or a refusal; the reason is on stderr
  3  serve: the master key was rotated under the running instance (restart it with the new key)";

#[derive(Parser)]
#[command(
    name = "dte-gateway",
    version = VERSION,
    args_override_self = true,
    about = "Chile's electronic tax documents (DTE): build, stamp, sign, validate, verify",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP service (embedded SQLite and an in-process cache unless configured otherwise).
    Serve {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Overrides `bind` (`127.0.0.1:0` picks a free port).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Also create the DEMO company 76192083-9 with TEST certificate and CAFs (never valid with
        /// the SII) and print an API key for it.
        #[arg(long)]
        demo: bool,
    },
    /// An offline SII speaking the real wire formats, for tests and integrators.
    SiiSim {
        /// The port to listen on (0: a free one, printed).
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Added to every answer, milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Share (0-1) of requests answered HTTP 500.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Share (0-1) of requests that hang for --hang-ms.
        #[arg(long, default_value_t = 0.0)]
        timeout_rate: f64,
        /// How long a hanging request hangs, milliseconds.
        #[arg(long, default_value_t = 120_000)]
        hang_ms: u64,
        /// Share (0-1) of answers that are not XML.
        #[arg(long, default_value_t = 0.0)]
        malformed_rate: f64,
        /// Token lifetime, seconds.
        #[arg(long, default_value_t = 3600)]
        token_ttl_s: u64,
        /// Answer every upload STATUS 9 (SII blocked).
        #[arg(long)]
        blocked: bool,
        /// Time from upload to its final state, milliseconds.
        #[arg(long, default_value_t = 2000)]
        processing_ms: u64,
        /// Also trust CAFs signed by this test authority.
        #[arg(long, value_name = "CERT.pem")]
        trust_test_authority: Option<PathBuf>,
    },
    /// API keys.
    Keys {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// The audit chain.
    Audit {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// The master key that seals certificates and CAF keys at rest.
    MasterKey {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: MasterKeyCmd,
    },
    /// Bring the database schema up to date (the service also does it at start).
    Migrate {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only list the migrations that would be applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Single documents.
    Dte {
        #[command(subcommand)]
        cmd: DteCmd,
    },
    /// Batches on a running gateway: submit, follow, results, dead letters.
    Batch(crate::cli_batch::BatchArgs),
    /// EnvioDTE / EnvioBOLETA envelopes.
    Envio {
        #[command(subcommand)]
        cmd: EnvioCmd,
    },
    /// Check the deployment: configuration, database and migrations, master key, Redis, each
    /// company's certificate and CAFs, the SII endpoints. One line per check; exit 1 if any fails.
    Doctor {
        /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
        /// environment's DTE_GATEWAY_* variables override it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The CAF lifecycle: folios to annul at the SII, and when folios run out.
    Caf(crate::cli_caf::CafArgs),
    /// Suppliers' documents received: the inbox, one document, and the RCV decision.
    Received(crate::cli_received::ReceivedArgs),
    /// The buyers' exchange addresses: import the SII's list of authorised taxpayers.
    Directory(crate::cli_directory::DirectoryArgs),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum DteCmd {
    /// Build, stamp, sign and validate one DTE from its JSON.
    Build(BuildArgs),
    /// Check schema, every signature, every TED and its CAF of a DTE, EnvioDTE or EnvioBOLETA.
    Verify {
        /// PEM of a test CAF authority to trust besides the SII's (test documents).
        #[arg(long, value_name = "CERT.pem")]
        trust_test_authority: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The DTE, EnvioDTE or EnvioBOLETA file.
        file: PathBuf,
    },
    /// The printed copy (PDF with the PDF417 timbre) of a signed DTE.
    Pdf(crate::cli_pdf::PdfArgs),
}

#[derive(Args)]
struct CertArgs {
    /// The issuing company (Emisor fields, SII resolution).
    #[arg(long, value_name = "COMPANY.json")]
    company: PathBuf,
    /// The signing certificate and key (PKCS#12).
    #[arg(long, value_name = "CERT.p12")]
    cert: PathBuf,
    /// The PKCS#12 password.
    #[arg(long, value_name = "PASS")]
    cert_password: String,
    /// Signing time (default: now, local time), `YYYY-MM-DDTHH:MM:SS`.
    #[arg(long, value_name = "TIMESTAMP")]
    timestamp: Option<String>,
}

#[derive(Args)]
struct BuildArgs {
    /// The document in the input format (JSON with the SII's element names).
    #[arg(long, value_name = "DOC.json")]
    input: PathBuf,
    #[command(flatten)]
    signer: CertArgs,
    /// The CAF the folio belongs to, as the SII delivers it.
    #[arg(long, value_name = "CAF.xml")]
    caf: PathBuf,
    /// The folio to use (within the CAF's range).
    #[arg(long)]
    folio: u64,
    /// PEM of a test CAF authority to trust besides the SII's (test CAFs).
    #[arg(long, value_name = "CERT.pem")]
    trust_test_authority: Option<PathBuf>,
    /// Skip XSD validation (measurement only).
    #[arg(long, hide = true)]
    no_schema: bool,
    /// The software provider's RUT, written in boletas (RUTProvSW).
    #[arg(long, value_name = "RUT")]
    rut_prov_sw: Option<String>,
    /// The UF's value in pesos: boletas above 135 UF then follow Ley 21.713 (buyer identified,
    /// means of payment stated).
    #[arg(long, value_name = "PESOS")]
    uf_pesos: Option<rust_decimal::Decimal>,
    /// Where to write the signed DTE (ISO-8859-1).
    #[arg(long, value_name = "OUT.xml")]
    output: PathBuf,
}

#[derive(Subcommand)]
enum EnvioCmd {
    /// Pack signed DTEs into an EnvioDTE (or EnvioBOLETA for 39/41) and sign it.
    Build {
        #[command(flatten)]
        signer: CertArgs,
        /// 60803000-K (the SII) unless it is the copy for the buyer.
        #[arg(long, value_name = "RUT", default_value = "60803000-K")]
        rut_receptor: String,
        /// Where to write the signed envelope.
        #[arg(long, value_name = "ENVIO.xml")]
        output: PathBuf,
        /// The signed DTEs to pack, in order.
        #[arg(required = true, value_name = "DTE.xml")]
        dtes: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; it is printed once and only its SHA-256 is stored.
    Create {
        /// Bind the key to one company.
        #[arg(long, value_name = "RUT")]
        company: Option<String>,
        /// Comma-separated: admin, issue, read.
        #[arg(long, value_delimiter = ',', default_value = "issue,read")]
        scopes: Vec<String>,
        /// A gateway-wide admin key (same as --scopes admin without --company).
        #[arg(long)]
        admin: bool,
    },
    /// Revoke a key on every instance.
    Revoke {
        /// The key's id (as `keys create` printed it).
        id: String,
    },
    /// Issue a replacement key; the old one works for the grace period.
    Rotate {
        /// The key's id.
        id: String,
        /// How long the old key keeps working (default: key_rotation_grace_seconds).
        #[arg(long)]
        grace_seconds: Option<i64>,
    },
}

#[derive(Subcommand)]
enum MasterKeyCmd {
    /// Re-seal every certificate and CAF key under a new key (from $DTE_GATEWAY_NEW_MASTER_KEY, or
    /// generated) in one transaction. Stop the instances first; start them with the new key.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk every chain and name the first broken entry.
    Verify,
    /// Check the chains written before keyed chains (SHA-256) and key them with the master key; only
    /// for a database whose first start after the upgrade was interrupted.
    KeyLegacy,
}

enum Failure {
    Input(String),
    Dte(DteError),
    /// A check ran and failed (exit 1).
    Verify,
}

impl From<DteError> for Failure {
    fn from(e: DteError) -> Self {
        Failure::Dte(e)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_INPUT {
        return Err(Failure::Input(format!("{}: larger than {} MiB", path.display(), MAX_INPUT >> 20)));
    }
    std::fs::read(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// Writes through a temporary file so a failure never leaves a partial output behind.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::Input(format!("{}: {e}", path.display()))
    })
}

fn now(ts: &Option<String>) -> Result<NaiveDateTime, Failure> {
    match ts {
        Some(s) => NaiveDateTime::parse_from_str(s, TS_FORMAT)
            .map_err(|_| Failure::Input(format!("--timestamp {s:?} is not YYYY-MM-DDTHH:MM:SS"))),
        None => {
            let n = Local::now().naive_local();
            Ok(n.with_nanosecond(0).unwrap_or(n))
        }
    }
}

fn trust(p: &Option<PathBuf>) -> Result<CafTrust, Failure> {
    match p {
        Some(p) => Ok(CafTrust::with_test_authority(&read(p)?).map_err(DteError::from)?),
        None => Ok(CafTrust::sii_only()),
    }
}

fn signer(a: &CertArgs) -> Result<(Company, Certificate, NaiveDateTime), Failure> {
    let company = Company::from_json(&read(&a.company)?)?;
    let cert = Certificate::from_pkcs12(&read(&a.cert)?, &a.cert_password).map_err(DteError::from)?;
    Ok((company, cert, now(&a.timestamp)?))
}

fn build(a: &BuildArgs) -> Result<(), Failure> {
    let input = DocumentInput::from_json(&read(&a.input)?)?;
    let (company, cert, now) = signer(&a.signer)?;
    let caf = Caf::load(&read(&a.caf)?, &trust(&a.trust_test_authority)?).map_err(DteError::from)?;
    let taxes = TaxTable::default();
    let prov_sw = a
        .rut_prov_sw
        .as_deref()
        .map(|r| r.parse::<dte_gateway::domain::Rut>().map(|r| r.to_string()))
        .transpose()
        .map_err(|e| Failure::Input(format!("--rut-prov-sw: {e}")))?;
    let issuer = Issuer {
        company: &company,
        cert: &cert,
        taxes: &taxes,
        validate_schema: !a.no_schema,
        rut_prov_sw: prov_sw.as_deref(),
        uf_pesos: a.uf_pesos,
    };
    let issued = issuer.issue(&input, &caf, a.folio, now)?;
    write_atomic(&a.output, &issued.xml)?;
    println!(
        "{} folio {} ({}) total {} -> {}",
        issued.tipo.code(),
        issued.folio,
        issued.id,
        issued.totals.mnt_total,
        a.output.display()
    );
    Ok(())
}

fn envio(signer_args: &CertArgs, rut_receptor: &str, output: &Path, dtes: &[PathBuf]) -> Result<(), Failure> {
    let (company, cert, now) = signer(signer_args)?;
    let rut: Rut = rut_receptor.parse().map_err(|e| Failure::Input(format!("--rut-receptor: {e}")))?;
    let files = dtes.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>()?;
    let bytes = sii::envelope::build(&company, &cert, rut, &files, now)?;
    write_atomic(output, &bytes)?;
    println!("{} DTE -> {}", files.len(), output.display());
    Ok(())
}

fn report_failure(f: Failure) -> ExitCode {
    match f {
        Failure::Verify => return ExitCode::from(1),
        Failure::Input(m) => eprintln!("error: {m}"),
        Failure::Dte(DteError::Invalid(errs)) => {
            eprintln!("error[invalid-document]:");
            for e in errs {
                eprintln!("  {}: {} ({})", e.path, e.message, e.code);
            }
        }
        Failure::Dte(e) => eprintln!("error[{}]: {e}", e.kind()),
    }
    ExitCode::from(2)
}

fn runtime_block<F: std::future::Future<Output = Result<(), Failure>>>(f: F) -> Result<(), Failure> {
    actix_web::rt::System::new().block_on(f)
}

fn settings(config: &Option<PathBuf>) -> Result<Settings, Failure> {
    Settings::load(config.clone()).map_err(|e| Failure::Input(e.to_string()))
}

fn start_err(e: dte_gateway::server::StartError) -> Failure {
    Failure::Input(e.to_string())
}

fn svc_err(e: dte_gateway::service::ServiceError) -> Failure {
    match e {
        dte_gateway::service::ServiceError::Dte(d) => Failure::Dte(d),
        other => Failure::Input(other.to_string()),
    }
}

fn stderr_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(config: &Option<PathBuf>, bind: &Option<String>, demo: bool) -> Result<(), Failure> {
    let mut s = settings(config)?;
    let _guards = dte_gateway::telemetry::init_logs(&s.logs()).map_err(|e| Failure::Input(format!("logs: {e}")))?;
    dte_gateway::telemetry::metrics();
    if let Some(b) = bind {
        s.bind = b.clone();
        s.validate().map_err(|e| Failure::Input(e.to_string()))?;
    }
    let svc = server::service(&s, demo, true).await.map_err(start_err)?;
    if demo {
        let key = server::demo(&svc, &s.data_dir).await.map_err(start_err)?;
        println!("DEMO company 76192083-9 ready (TEST certificate and CAFs, never valid with the SII)");
        println!("DEMO API key (also in {}): {key}", s.data_dir.join("demo-api-key.txt").display());
    }
    // Every series dashboards and alerts read exists from the first scrape.
    dte_gateway::telemetry::register_known(&dte_gateway::telemetry::Known {
        companies: svc.companies().await.map_err(svc_err)?,
        routes: dte_gateway::http::openapi::routes(),
    });
    metrics::gauge!(dte_gateway::telemetry::CAF_WARNING_DAYS).set(s.caf_warning_days as f64);
    let shared = svc.cache.clone().filter(|c| c.mode() != "memory");
    let auth = Arc::new(Auth::new(
        svc.clone(),
        shared,
        s.rate_limit_per_second,
        s.rate_limit_burst,
        s.auth_failures_per_minute,
    ));
    auth.refresh_revocations().await.map_err(|e| Failure::Input(e.to_string()))?;
    // The demo's TEST material would only be refused by the real SII: its link runs only when
    // pointed somewhere else (a simulator).
    let demo_offline = demo && s.sii_url_certificacion == Settings::default().sii_url_certificacion;
    if demo_offline {
        println!(
            "SII link off in demo mode (set DTE_GATEWAY_SII_URL_CERTIFICACION to a `dte-gateway sii-sim` to try it)"
        );
    }
    let link = if s.sii_workers && !demo_offline { Some(server::sii_link(&svc, &s).map_err(start_err)?) } else { None };
    let exchange = server::exchange(&svc, &s, link.as_ref()).map_err(start_err)?;
    server::background(svc.clone(), auth.clone(), link.clone(), Some(exchange.clone()), &s);
    let batches = server::batches(&svc, &s, link.is_some()).await.map_err(start_err)?;
    batches.start().await;
    let backend = svc.backend();
    let tls = s.tls_cert.clone().zip(s.tls_key.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = dte_gateway::http::Listen {
        bind: s.bind.clone(),
        workers: s.workers,
        body_limit: s.max_body_bytes,
        batch_limit: s.batch_max_bytes,
        tls,
        body_timeout: std::time::Duration::from_millis(s.body_read_timeout_ms),
        streams: dte_gateway::http::StreamLimits {
            max_lifetime: std::time::Duration::from_secs(s.event_stream_max_seconds),
            recheck: std::time::Duration::from_millis(s.event_stream_recheck_ms),
        },
        metrics_bind: s.metrics_bind.clone(),
        metrics_token: s.metrics_token.clone(),
        console: s.console(),
    };
    dte_gateway::http::serve(svc, auth, link, Some(exchange), batches, listen, |addr, metrics| {
        use std::io::Write;
        if let Some(m) = metrics {
            println!("metrics on http://{m}/metrics");
        }
        println!("listening on {scheme}://{addr} (store: {backend})");
        println!("console on {scheme}://{addr}/console, API docs on {scheme}://{addr}/docs");
        let _ = std::io::stdout().flush();
    })
    .await
    .map_err(|e| Failure::Input(format!("server: {e}")))
}

async fn keys(config: &Option<PathBuf>, cmd: &KeysCmd) -> Result<(), Failure> {
    let s = settings(config)?;
    let svc = server::service(&s, false, false).await.map_err(start_err)?;
    match cmd {
        KeysCmd::Create { company, scopes, admin } => {
            let (company, scopes) =
                if *admin { (None, vec!["admin".to_string()]) } else { (company.clone(), scopes.clone()) };
            let company = company
                .map(|c| c.parse::<Rut>().map(|r| r.to_string()))
                .transpose()
                .map_err(|e| Failure::Input(format!("--company: {e}")))?;
            let k = svc.create_key(company.as_deref(), &scopes, None, "cli").await.map_err(svc_err)?;
            println!("id: {}", k.id);
            println!("key: {}", k.key);
            println!(
                "scopes: {}{}",
                k.scopes.join(","),
                k.company.map(|c| format!(" (company {c})")).unwrap_or_else(|| " (gateway-wide)".into())
            );
        }
        KeysCmd::Revoke { id } => {
            svc.revoke_key(id, "cli").await.map_err(svc_err)?;
            println!("revoked {id}");
        }
        KeysCmd::Rotate { id, grace_seconds } => {
            let k = svc.rotate_key(id, grace_seconds.map(chrono::Duration::seconds), "cli").await.map_err(svc_err)?;
            println!("id: {}", k.id);
            println!("key: {}", k.key);
            println!("the old key {id} keeps working for the grace period");
        }
    }
    Ok(())
}

async fn rotate_master_key(config: &Option<PathBuf>) -> Result<(), Failure> {
    let s = settings(config)?;
    let new = std::env::var("DTE_GATEWAY_NEW_MASTER_KEY").ok();
    let given = new.is_some();
    let r = server::rotate_master_key(&s, new).await.map_err(start_err)?;
    println!("re-sealed {} certificate(s) and {} CAF(s)", r.certificates, r.cafs);
    match (&r.file, given) {
        (Some(f), _) => println!("the new key replaced {}; back it up", f.display()),
        (None, true) => {
            println!("set master_key (DTE_GATEWAY_MASTER_KEY) to the new key before starting the instances")
        }
        (None, false) => {
            println!("new master key (set it as master_key / DTE_GATEWAY_MASTER_KEY before starting the instances):");
            println!("{}", r.key);
        }
    }
    Ok(())
}

async fn audit(config: &Option<PathBuf>) -> Result<(), Failure> {
    let s = settings(config)?;
    let svc = server::service(&s, false, false).await.map_err(start_err)?;
    match svc.verify_audit().await.map_err(svc_err)? {
        Ok(n) => {
            println!("audit chain intact: {n} entries");
            // What to compare with the heads anchored earlier (log lines "audit chain head").
            for (scope, seq, mac) in svc.audit_heads().await.map_err(svc_err)? {
                println!("head {scope} {seq} {mac}");
            }
            Ok(())
        }
        Err(broken) => {
            println!("audit chain BROKEN at {broken}");
            Err(Failure::Verify)
        }
    }
}

async fn audit_key_legacy(config: &Option<PathBuf>) -> Result<(), Failure> {
    let s = settings(config)?;
    let svc = server::service_with(&s, false, false, true).await.map_err(start_err)?;
    for (scope, seq, mac) in svc.audit_heads().await.map_err(svc_err)? {
        println!("head {scope} {seq} {mac}");
    }
    Ok(())
}

async fn migrate(config: &Option<PathBuf>, dry_run: bool) -> Result<(), Failure> {
    let s = settings(config)?;
    let store = dte_gateway::store::Store::connect(&s.database(), 1).map_err(|e| Failure::Input(e.to_string()))?;
    let r = store.migrate(dry_run).await.map_err(|e| Failure::Input(e.to_string()))?;
    println!("database: {} (schema version {})", store.backend(), r.version);
    if r.adopted {
        println!("made before versioned migrations: adopted as version 1 (nothing in it changes)");
    }
    let verb = if dry_run { "would apply" } else { "applied" };
    for (version, name) in &r.applied {
        println!("{verb} {version:04}_{name}");
    }
    if r.applied.is_empty() {
        println!("up to date");
    }
    // The migration that brings the key check value is completed with the master key: the check
    // value recorded and the chains written before keyed chains keyed (see `audit key-legacy`).
    if !dry_run && r.applied.iter().any(|(v, _)| *v == dte_gateway::store::migrations::KEY_CHECK_VERSION) {
        server::service_with(&s, false, false, true).await.map_err(start_err)?;
        println!("recorded the master key's check value and keyed the audit chains");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn sii_sim(
    host: &str,
    port: u16,
    latency_ms: u64,
    error_rate: f64,
    timeout_rate: f64,
    hang_ms: u64,
    malformed_rate: f64,
    token_ttl_s: u64,
    blocked: bool,
    processing_ms: u64,
    trust_path: &Option<PathBuf>,
) -> Result<(), Failure> {
    for (name, v) in
        [("--error-rate", error_rate), ("--timeout-rate", timeout_rate), ("--malformed-rate", malformed_rate)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(Failure::Input(format!("{name} must be between 0 and 1")));
        }
    }
    let cfg = sii::sim::SimConfig {
        latency: std::time::Duration::from_millis(latency_ms),
        error_rate,
        timeout_rate,
        hang: std::time::Duration::from_millis(hang_ms),
        malformed_rate,
        token_ttl: std::time::Duration::from_secs(token_ttl_s),
        blocked,
        processing: std::time::Duration::from_millis(processing_ms),
        trust: trust(trust_path)?,
    };
    sii::sim::serve(cfg, &format!("{host}:{port}"), |addr| {
        use std::io::Write;
        println!("listening on http://{addr} (SII simulator)");
        let _ = std::io::stdout().flush();
    })
    .await
    .map_err(|e| Failure::Input(format!("simulator: {e}")))
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Serve { .. }) {
        stderr_logs();
    }
    let result = match &cli.cmd {
        Cmd::SiiSim {
            port,
            host,
            latency_ms,
            error_rate,
            timeout_rate,
            hang_ms,
            malformed_rate,
            token_ttl_s,
            blocked,
            processing_ms,
            trust_test_authority,
        } => runtime_block(sii_sim(
            host,
            *port,
            *latency_ms,
            *error_rate,
            *timeout_rate,
            *hang_ms,
            *malformed_rate,
            *token_ttl_s,
            *blocked,
            *processing_ms,
            trust_test_authority,
        )),
        Cmd::Serve { config, bind, demo } => runtime_block(serve(config, bind, *demo)),
        Cmd::Batch(args) => {
            return match actix_web::rt::System::new().block_on(crate::cli_batch::run(args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => report_failure(Failure::Input(e)),
            };
        }
        Cmd::Keys { config, cmd } => runtime_block(keys(config, cmd)),
        Cmd::Audit { config, cmd: AuditCmd::Verify } => runtime_block(audit(config)),
        Cmd::Audit { config, cmd: AuditCmd::KeyLegacy } => runtime_block(audit_key_legacy(config)),
        Cmd::Migrate { config, dry_run } => runtime_block(migrate(config, *dry_run)),
        Cmd::MasterKey { config, cmd: MasterKeyCmd::Rotate } => runtime_block(rotate_master_key(config)),
        Cmd::Dte { cmd: DteCmd::Build(a) } => build(a),
        Cmd::Envio { cmd: EnvioCmd::Build { signer, rut_receptor, output, dtes } } => {
            envio(signer, rut_receptor, output, dtes)
        }
        Cmd::Caf(args) => {
            return match actix_web::rt::System::new().block_on(crate::cli_caf::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report_failure(Failure::Input(e)),
            };
        }
        Cmd::Directory(args) => {
            return match actix_web::rt::System::new().block_on(crate::cli_directory::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report_failure(Failure::Input(e)),
            };
        }
        Cmd::Received(args) => {
            return match actix_web::rt::System::new().block_on(crate::cli_received::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report_failure(Failure::Input(e)),
            };
        }
        Cmd::Doctor { config } => {
            let ok = actix_web::rt::System::new().block_on(crate::cli_doctor::run(config));
            return if ok { ExitCode::SUCCESS } else { ExitCode::from(1) };
        }
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "dte-gateway", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Cmd::Dte { cmd: DteCmd::Pdf(args) } => {
            return match crate::cli_pdf::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report_failure(Failure::Input(e)),
            };
        }
        Cmd::Dte { cmd: DteCmd::Verify { trust_test_authority, json, file } } => {
            let outcome = (|| -> Result<verify::Report, Failure> {
                let bytes = read(file)?;
                let t = trust(trust_test_authority)?;
                verify::verify(&bytes, &t).map_err(|e| Failure::Input(e.to_string()))
            })();
            return match outcome {
                Err(f) => report_failure(f),
                Ok(report) => {
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                    } else {
                        for l in report.lines() {
                            println!("{l}");
                        }
                    }
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report_failure(f),
    }
}
