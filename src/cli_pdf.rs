//! `dte-gateway dte pdf`: the printed copy of any signed DTE file.

use std::path::PathBuf;

use clap::Args;

use dte_gateway::caf::CafTrust;
use dte_gateway::domain::Company;
use dte_gateway::print::{self, Format, Options};

#[derive(Args)]
pub struct PdfArgs {
    /// The signed DTE, or an EnvioDTE / EnvioBOLETA holding it (then name it with --folio).
    #[arg(long, value_name = "DTE.xml")]
    input: PathBuf,
    /// The issuing company (for its SII office and resolution).
    #[arg(long, value_name = "COMPANY.json")]
    company: PathBuf,
    /// `letter` (default) or `80mm` (thermal roll).
    #[arg(long, default_value = "letter")]
    format: String,
    /// The cedible copy (facturas, liquidaciones-factura and guías only).
    #[arg(long)]
    cedible: bool,
    /// A PNG or JPEG logo for the top left.
    #[arg(long, value_name = "LOGO.png")]
    logo: Option<PathBuf>,
    /// Which DTE of an envelope.
    #[arg(long)]
    folio: Option<u64>,
    /// Print a document that does not verify, marked "NO VÁLIDO" across every page.
    #[arg(long)]
    force: bool,
    /// PEM of a test CAF authority to trust besides the SII's (test documents).
    #[arg(long, value_name = "CERT.pem")]
    trust_test_authority: Option<PathBuf>,
    /// Where to write the PDF.
    #[arg(long, value_name = "OUT.pdf")]
    output: PathBuf,
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes the PDF; `Err` is the reason (exit 2).
pub fn run(a: &PdfArgs) -> Result<(), String> {
    let xml = read(&a.input)?;
    let company = Company::from_json(&read(&a.company)?).map_err(|e| format!("{}: {e}", a.company.display()))?;
    let format: Format = a.format.parse()?;
    let logo = a
        .logo
        .as_ref()
        .map(|p| read(p).and_then(|b| print::logo::decode(&b).map_err(|e| e.to_string())))
        .transpose()?;
    let trust = match &a.trust_test_authority {
        Some(p) => CafTrust::with_test_authority(&read(p)?).map_err(|e| e.to_string())?,
        None => CafTrust::sii_only(),
    };
    let opts = Options { format: Some(format), cedible: a.cedible, logo, ..Options::default() }.for_company(&company);
    let pdf = print::pdf_of_file(&xml, a.folio, opts, a.force, &trust).map_err(|e| e.to_string())?;
    std::fs::write(&a.output, pdf).map_err(|e| format!("{}: {e}", a.output.display()))
}
