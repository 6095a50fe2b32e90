//! Batch helpers shared by the batch suite and the batch bench: a CSV generator, submission, and
//! waiting for a batch to reach a state.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::gateway::Gateway;

pub const CSV_HEADER: &str =
    "Documento,RUTEmisor,TipoDTE,RUTRecep,RznSocRecep,GiroRecep,DirRecep,CmnaRecep,Referencia,NmbItem,QtyItem,PrcItem\n";

/// One CSV row: `doc` is the document key, `line` its Detalle line.
pub fn csv_row(doc: usize, company: &str, line: usize) -> String {
    format!(
        "F{doc},{company},33,76555835-2,\"Ñandú & Cía. Limitada\",Comercio,Los Aromos 45,Ñuñoa,OC-{doc},\"Ítem {line}, lote {doc}\",{},{}\n",
        line + 1,
        1000 + (doc % 997) * 10 + line
    )
}

/// `docs` facturas spread round-robin over `companies`, each of `lines` Detalle lines.
pub fn csv(companies: &[&str], docs: usize, lines: usize) -> String {
    let mut out = String::from(CSV_HEADER);
    for d in 0..docs {
        for l in 0..lines {
            out.push_str(&csv_row(d, companies[d % companies.len()], l));
        }
    }
    out
}

pub async fn submit(g: &Gateway, key: &str, body: Vec<u8>, ctype: &str, query: &str) -> (StatusCode, Value) {
    g.raw("POST", &format!("/v1/batches{query}"), key, body, ctype).await
}

pub async fn status(g: &Gateway, key: &str, id: &str) -> Value {
    let (s, b) = g.send("GET", &format!("/v1/batches/{id}"), key, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

pub fn count(v: &Value, group: &str, k: &str) -> u64 {
    v[group][k].as_u64().unwrap_or(0)
}

/// Polls the batch until `done` holds or `limit` passes (then panics with the last status).
pub async fn wait_for(g: &Gateway, key: &str, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = status(g, key, id).await;
        if done(&v) {
            return v;
        }
        assert!(start.elapsed() < limit, "batch {id} did not get there in {limit:?}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item of the batch, page by page.
pub async fn items(g: &Gateway, key: &str, id: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = -1i64;
    loop {
        let (s, b) = g.send("GET", &format!("/v1/batches/{id}/items?limit=1000&after={after}"), key, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let page = b.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { return out };
        after = last["index"].as_i64().expect("index");
        out.extend(page);
    }
}
