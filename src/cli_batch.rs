//! `dte-gateway batch …`: an accountant's client for a running gateway's batch API.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct BatchArgs {
    /// The gateway's base URL (default: $DTE_GATEWAY_SERVER or http://127.0.0.1:8080).
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// API key (default: $DTE_GATEWAY_KEY).
    #[arg(long, global = true, value_name = "KEY")]
    key: Option<String>,
    #[command(subcommand)]
    cmd: BatchCmd,
}

#[derive(Subcommand)]
enum BatchCmd {
    /// Upload a batch: .csv, .json (an array of items) or .zip (of JSON files).
    Submit {
        /// The batch file: .csv, .json or .zip.
        file: PathBuf,
        /// Refuse the whole batch if any item is invalid.
        #[arg(long)]
        all_or_nothing: bool,
        /// CSV encoding: utf-8 (default) or iso-8859-1.
        #[arg(long)]
        encoding: Option<String>,
        /// Follow the batch with a progress bar until it completes; exit 1 if any item failed
        /// or any document was rejected.
        #[arg(long)]
        watch: bool,
    },
    /// The newest batches (all for a gateway admin key, else this key's).
    List {
        /// How many batches, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// A batch's counts and errors.
    Status {
        /// The batch's id.
        id: String,
        /// Follow it with a progress bar until it completes.
        #[arg(long)]
        watch: bool,
    },
    /// Download every signed XML and the report.
    Results {
        /// The batch's id.
        id: String,
        /// Where to write the archive.
        #[arg(short, long, value_name = "FILE.zip")]
        output: PathBuf,
    },
    /// Items that failed past the retry limit (admin key).
    Dlq {
        #[command(subcommand)]
        cmd: DlqCmd,
    },
}

#[derive(Subcommand)]
enum DlqCmd {
    /// Every dead letter with its reason and deliveries.
    List,
    /// Put dead letters back on the queue once their cause is mended.
    Replay {
        /// One dead letter's id; all of them with --all.
        id: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(a: &BatchArgs) -> Result<Client, String> {
        let base = a
            .server
            .clone()
            .or_else(|| std::env::var("DTE_GATEWAY_SERVER").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let key = a
            .key
            .clone()
            .or_else(|| std::env::var("DTE_GATEWAY_KEY").ok())
            .ok_or("an API key is needed: --key or DTE_GATEWAY_KEY")?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("dte-gateway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client { http, base: base.trim_end_matches('/').to_string(), key })
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let res = r.bearer_auth(&self.key).send().await.map_err(|e| format!("{}: {e}", self.base))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        let mut msg = format!("{status}: {}", body.get("detail").and_then(Value::as_str).unwrap_or(""));
        for e in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            msg.push_str(&format!("\n  {}: {}", field("path"), field("message")));
        }
        Err(msg)
    }

    async fn json(&self, r: reqwest::RequestBuilder) -> Result<Value, String> {
        self.send(r).await?.json().await.map_err(|e| e.to_string())
    }

    async fn status(&self, id: &str) -> Result<Value, String> {
        self.json(self.http.get(format!("{}/v1/batches/{id}", self.base))).await
    }
}

fn content_type(file: &Path, encoding: &Option<String>) -> Result<String, String> {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Ok(format!("text/csv; charset={}", encoding.as_deref().unwrap_or("utf-8"))),
        "json" => Ok("application/json".into()),
        "zip" => Ok("application/zip".into()),
        _ => Err(format!("{}: use a .csv, .json or .zip file", file.display())),
    }
}

fn count(v: &Value, group: &str, k: &str) -> i64 {
    v.get(group).and_then(|g| g.get(k)).and_then(Value::as_i64).unwrap_or(0)
}

fn progress_line(v: &Value) -> String {
    let total = v.get("total").and_then(Value::as_i64).unwrap_or(0).max(1);
    let done = total - count(v, "items", "pending");
    let width = 30;
    let filled = (done * width / total) as usize;
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width as usize - filled));
    let docs: Vec<String> = v
        .get("documents")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, n)| format!("{k} {n}")).collect())
        .unwrap_or_default();
    format!(
        "[{bar}] {done}/{total}  issued {}  failed {}  dead {}  | {}",
        count(v, "items", "issued"),
        count(v, "items", "failed"),
        count(v, "items", "dead"),
        docs.join("  ")
    )
}

fn print_errors(v: &Value) {
    for e in v.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let s = |k: &str| e.get(k).map(|x| x.to_string().trim_matches('"').to_string()).unwrap_or_default();
        eprintln!("  #{} {} ({}): {} — {}", s("index"), s("source"), s("state"), s("reference"), s("error"));
    }
}

/// Follows the batch until it is complete; false when any item failed or any document was rejected.
async fn watch(c: &Client, id: &str) -> Result<bool, String> {
    let mut err = std::io::stderr();
    loop {
        let v = c.status(id).await?;
        let _ = write!(err, "\r{:<110}", progress_line(&v));
        let _ = err.flush();
        if v.get("complete").and_then(Value::as_bool).unwrap_or(false) {
            let _ = writeln!(err);
            print_errors(&v);
            let bad = count(&v, "items", "failed") + count(&v, "items", "dead") + count(&v, "documents", "rejected");
            return Ok(bad == 0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Ok(false): the command worked but the batch has failures (exit 1).
pub async fn run(a: &BatchArgs) -> Result<bool, String> {
    let c = Client::new(a)?;
    match &a.cmd {
        BatchCmd::Submit { file, all_or_nothing, encoding, watch: follow } => {
            let ct = content_type(file, encoding)?;
            let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let url = format!("{}/v1/batches?all_or_nothing={all_or_nothing}", c.base);
            // One key for this submission: a retry after a lost answer gets the same batch back.
            let mut raw = [0u8; 16];
            openssl::rand::rand_bytes(&mut raw).map_err(|e| e.to_string())?;
            let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let mut attempt = 0;
            let v = loop {
                let req =
                    c.http.post(&url).header("content-type", &ct).header("idempotency-key", &key).body(body.clone());
                match c.json(req).await {
                    Err(e) if e.starts_with(&c.base) && attempt < 2 => {
                        attempt += 1;
                        eprintln!("{e}; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    other => break other?,
                }
            };
            let id = v.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            println!("{id}");
            eprintln!("batch {id}: {} items, {} failed at intake", v["total"], count(&v, "items", "failed"));
            if *follow {
                return watch(&c, &id).await;
            }
            Ok(true)
        }
        BatchCmd::List { limit } => {
            let v = c.json(c.http.get(format!("{}/v1/batches?limit={limit}", c.base))).await?;
            for b in v.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{} items\t{}",
                    b["id"].as_str().unwrap_or(""),
                    b["created_at"].as_str().unwrap_or(""),
                    b["format"].as_str().unwrap_or(""),
                    b["total"],
                    b["state"].as_str().unwrap_or("")
                );
            }
            Ok(true)
        }
        BatchCmd::Status { id, watch: follow } => {
            if *follow {
                return watch(&c, id).await;
            }
            let v = c.status(id).await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(true)
        }
        BatchCmd::Results { id, output } => {
            let res = c.send(c.http.get(format!("{}/v1/batches/{id}/results.zip", c.base))).await?;
            let bytes = res.bytes().await.map_err(|e| e.to_string())?;
            std::fs::write(output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
            eprintln!("{}: {} bytes", output.display(), bytes.len());
            Ok(true)
        }
        BatchCmd::Dlq { cmd: DlqCmd::List } => {
            let v = c.json(c.http.get(format!("{}/v1/dead-letters", c.base))).await?;
            for d in v.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}#{}\t{} deliveries\t{}",
                    d["id"].as_str().unwrap_or(""),
                    d["batch"].as_str().unwrap_or(""),
                    d["index"],
                    d["deliveries"],
                    d["reason"].as_str().unwrap_or("")
                );
            }
            Ok(true)
        }
        BatchCmd::Dlq { cmd: DlqCmd::Replay { id, all } } => {
            let url = match (id, all) {
                (Some(id), false) => format!("{}/v1/dead-letters/{id}/replay", c.base),
                (None, true) => format!("{}/v1/dead-letters/replay", c.base),
                _ => return Err("give one dead letter's id or --all".into()),
            };
            let v = c.json(c.http.post(url)).await?;
            println!("replayed {}", v["replayed"]);
            Ok(true)
        }
    }
}
