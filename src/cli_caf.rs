//! `dte-gateway caf`: the CAF lifecycle from the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use dte_gateway::config::Settings;
use dte_gateway::server;

#[derive(Args)]
pub struct CafArgs {
    /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
    /// environment's DTE_GATEWAY_* variables override it).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: CafCmd,
}

#[derive(Subcommand)]
enum CafCmd {
    /// The folios of expired or retired CAFs never used, one range a line, as the SII's annulment
    /// of folios asks for them: RUT, document type, first folio, last folio.
    Unused {
        /// The company.
        #[arg(long, value_name = "RUT")]
        company: String,
    },
    /// Per type: folios left, the pace of the last 7 days and the day they run out.
    Forecast {
        /// The company.
        #[arg(long, value_name = "RUT")]
        company: String,
    },
}

pub async fn run(a: &CafArgs) -> Result<(), String> {
    let s = Settings::load(a.config.clone()).map_err(|e| e.to_string())?;
    let svc = server::service(&s, false, false).await.map_err(|e| e.to_string())?;
    match &a.cmd {
        CafCmd::Unused { company } => {
            let rut = dte_gateway::service::parse_rut(company).map_err(|e| e.to_string())?.to_string();
            let ranges = svc.unused_folios(&rut).await.map_err(|e| e.to_string())?;
            if ranges.is_empty() {
                println!("no unused folios to annul");
            }
            for r in ranges {
                println!(
                    "{}\t{}\t{}\t{}\t({} folios, CAF {} {})",
                    r.company, r.tipo, r.desde, r.hasta, r.folios, r.caf_id, r.reason
                );
            }
        }
        CafCmd::Forecast { company } => {
            let rut = dte_gateway::service::parse_rut(company).map_err(|e| e.to_string())?.to_string();
            for f in svc.caf_forecast(&rut).await.map_err(|e| e.to_string())? {
                let when = match (f.exhausted_on, f.days_left) {
                    (Some(d), Some(n)) => format!("run out on {d} ({n:.0} days)"),
                    _ => "no issuance in the last 7 days".into(),
                };
                println!("T{}\t{} folios left\t{:.1}/day\t{when}", f.tipo, f.folios_left, f.per_day);
            }
        }
    }
    Ok(())
}
