//! `dte-gateway directory`: the buyers' exchange addresses from the SII's list.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use dte_gateway::config::Settings;
use dte_gateway::server;

#[derive(Args)]
pub struct DirectoryArgs {
    /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
    /// environment's DTE_GATEWAY_* variables override it).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: DirectoryCmd,
}

#[derive(Subcommand)]
enum DirectoryCmd {
    /// Imports the SII's list of authorised taxpayers (the CSV it publishes:
    /// RUT;RAZON SOCIAL;NUMERO RESOLUCION;FECHA RESOLUCION;MAIL INTERCAMBIO;URL, ISO-8859-1),
    /// adding or replacing each RUT's exchange address; read as a stream, in bounded memory.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

pub async fn run(a: &DirectoryArgs) -> Result<(), String> {
    let s = Settings::load(a.config.clone()).map_err(|e| e.to_string())?;
    let svc = server::service(&s, false, false).await.map_err(|e| e.to_string())?;
    match &a.cmd {
        DirectoryCmd::Import { file } => {
            let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let r = svc.import_directory(std::io::BufReader::new(f)).await.map_err(|e| e.to_string())?;
            println!("imported {} rows, skipped {}; the directory holds {}", r.imported, r.skipped, r.total);
        }
    }
    Ok(())
}
