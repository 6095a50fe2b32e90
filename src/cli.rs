//! Command line: `dte build`, `dte verify`, `envio build`. Exit codes: 0 success, 1 a verification
//! failed, 2 bad input (nothing is written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{Local, NaiveDateTime, Timelike};
use clap::{Args, Parser, Subcommand};

use dte_gateway::caf::{Caf, CafTrust};
use dte_gateway::cert::Certificate;
use dte_gateway::domain::tax::TaxTable;
use dte_gateway::domain::{Company, DocumentInput, Rut};
use dte_gateway::engine::Issuer;
use dte_gateway::xml::ted::TS_FORMAT;
use dte_gateway::{sii, verify, DteError};

/// Files larger than this are refused before parsing.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "dte-gateway",
    version,
    args_override_self = true,
    about = "Chile's electronic tax documents (DTE): build, stamp, sign, validate, verify"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Single documents.
    Dte {
        #[command(subcommand)]
        cmd: DteCmd,
    },
    /// EnvioDTE / EnvioBOLETA envelopes.
    Envio {
        #[command(subcommand)]
        cmd: EnvioCmd,
    },
}

#[derive(Subcommand)]
enum DteCmd {
    /// Build, stamp, sign and validate one DTE from its JSON.
    Build(BuildArgs),
    /// Check schema, every signature, every TED and its CAF of a DTE, EnvioDTE or EnvioBOLETA.
    Verify {
        #[arg(long, value_name = "CERT.pem")]
        trust_test_authority: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
}

#[derive(Args)]
struct CertArgs {
    #[arg(long, value_name = "COMPANY.json")]
    company: PathBuf,
    #[arg(long, value_name = "CERT.p12")]
    cert: PathBuf,
    #[arg(long, value_name = "PASS")]
    cert_password: String,
    /// Signing time (default: now, local time), `YYYY-MM-DDTHH:MM:SS`.
    #[arg(long, value_name = "TIMESTAMP")]
    timestamp: Option<String>,
}

#[derive(Args)]
struct BuildArgs {
    #[arg(long, value_name = "DOC.json")]
    input: PathBuf,
    #[command(flatten)]
    signer: CertArgs,
    #[arg(long, value_name = "CAF.xml")]
    caf: PathBuf,
    #[arg(long)]
    folio: u64,
    #[arg(long, value_name = "CERT.pem")]
    trust_test_authority: Option<PathBuf>,
    /// Skip XSD validation (measurement only).
    #[arg(long, hide = true)]
    no_schema: bool,
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
        #[arg(long, value_name = "ENVIO.xml")]
        output: PathBuf,
        #[arg(required = true, value_name = "DTE.xml")]
        dtes: Vec<PathBuf>,
    },
}

enum Failure {
    Input(String),
    Dte(DteError),
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
    let issuer = Issuer { company: &company, cert: &cert, taxes: &taxes, validate_schema: !a.no_schema };
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

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Dte { cmd: DteCmd::Build(a) } => build(a),
        Cmd::Envio { cmd: EnvioCmd::Build { signer, rut_receptor, output, dtes } } => {
            envio(signer, rut_receptor, output, dtes)
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
