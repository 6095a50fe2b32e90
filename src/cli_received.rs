//! `dte-gateway received`: the inbox of suppliers' documents from the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use dte_gateway::config::Settings;
use dte_gateway::exchange::rcv::Accion;
use dte_gateway::server;
use dte_gateway::service::{DecisionBody, ReceivedInfo, ReceivedQuery};

#[derive(Args)]
pub struct ReceivedArgs {
    /// The configuration file (default: $DTE_GATEWAY_CONFIG or ./dte-gateway.toml; the
    /// environment's DTE_GATEWAY_* variables override it).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: ReceivedCmd,
}

#[derive(Subcommand)]
enum ReceivedCmd {
    /// The inbox, one document a line: issuer, type, folio, total, state, days left.
    List {
        /// The receiving company.
        #[arg(long, value_name = "RUT")]
        company: String,
        /// Only this state (received, accepted, goods_received, claimed, rejected, accepted_by_law).
        #[arg(long)]
        state: Option<String>,
        /// Only this issuer.
        #[arg(long, value_name = "RUT")]
        emisor: Option<String>,
    },
    /// One document: verification, SII reception, deadline and RCV events (JSON).
    Show {
        /// The receiving company.
        #[arg(long, value_name = "RUT")]
        company: String,
        /// The issuer.
        #[arg(long, value_name = "RUT")]
        emisor: String,
        /// The document type.
        #[arg(long)]
        tipo: i32,
        /// The folio.
        #[arg(long)]
        folio: i64,
    },
    /// Accept, give the receipt of goods or claim a document in the SII's RCV and answer the supplier.
    Decide {
        /// The receiving company.
        #[arg(long, value_name = "RUT")]
        company: String,
        /// The issuer.
        #[arg(long, value_name = "RUT")]
        emisor: String,
        /// The document type.
        #[arg(long)]
        tipo: i32,
        /// The folio.
        #[arg(long)]
        folio: i64,
        /// ACD (accept), ERM (receipt of goods), RCD (claim content), RFP / RFT (partial / total lack of goods).
        #[arg(long)]
        accion: String,
        /// The reason of a claim.
        #[arg(long)]
        reason: Option<String>,
        /// Where the goods were received (ERM).
        #[arg(long)]
        recinto: Option<String>,
    },
}

fn line(d: &ReceivedInfo) -> String {
    let left = match (&d.state[..], d.days_left) {
        ("received", Some(n)) => format!("{n} days left"),
        ("received", None) => "deadline unknown".into(),
        _ => String::new(),
    };
    format!("{}\t{}\t{}\t{}\t{}\t{}\t{left}", d.rut_emisor, d.tipo, d.folio, d.fch_emis, d.mnt_total, d.state)
}

pub async fn run(a: &ReceivedArgs) -> Result<(), String> {
    let s = Settings::load(a.config.clone()).map_err(|e| e.to_string())?;
    let svc = server::service(&s, false, false).await.map_err(|e| e.to_string())?;
    let rut = |c: &str| dte_gateway::service::parse_rut(c).map(|r| r.to_string()).map_err(|e| e.to_string());
    match &a.cmd {
        ReceivedCmd::List { company, state, emisor } => {
            let q =
                ReceivedQuery { state: state.clone(), emisor: emisor.clone(), limit: Some(500), ..Default::default() };
            let page = svc.list_received(&rut(company)?, q).await.map_err(|e| e.to_string())?;
            if page.items.is_empty() {
                println!("no received documents");
            }
            for d in &page.items {
                println!("{}", line(d));
            }
        }
        ReceivedCmd::Show { company, emisor, tipo, folio } => {
            let d = svc.get_received(&rut(company)?, emisor, *tipo, *folio).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?);
        }
        ReceivedCmd::Decide { company, emisor, tipo, folio, accion, reason, recinto } => {
            let accion = Accion::parse(accion).ok_or("--accion: ACD, ERM, RCD, RFP or RFT")?;
            let link = server::sii_link(&svc, &s).map_err(|e| e.to_string())?;
            let x = server::exchange(&svc, &s, Some(&link)).map_err(|e| e.to_string())?;
            let body = DecisionBody { accion, reason: reason.clone(), recinto: recinto.clone() };
            let d = x.decide(&rut(company)?, emisor, *tipo, *folio, body, "cli").await.map_err(|e| e.to_string())?;
            println!("{}", line(&d));
        }
    }
    Ok(())
}
