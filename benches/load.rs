//! Load test of the HTTP service: the release binary on PostgreSQL (the harness starts its own
//! cluster unless DTE_TEST_POSTGRES_URL is given), an open-loop client issuing facturas at a fixed
//! rate, latency measured from each request's scheduled time (no coordinated omission).
//! Run: `cargo bench --bench load` (LOAD_RPS, default 300; LOAD_SECONDS, default 30; LOAD_INSTANCES,
//! default 1: instances on the same database, the requests spread over them in turn). Every
//! request issues for the same company, the hardest case for folio allocation.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::gateway::{factura, Gateway, RUT};
use common::server::postgres;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let rps: u64 = std::env::var("LOAD_RPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let secs: u64 = std::env::var("LOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let instances: usize = std::env::var("LOAD_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let g = Gateway::start(postgres(), instances, &[("DTE_GATEWAY_RATE_LIMIT_PER_SECOND", "100000"), ("DTE_GATEWAY_RATE_LIMIT_BURST", "100000")], 1_000_000).await;
        let urls: Vec<String> =
            g.servers.iter().map(|s| s.url(&format!("/v1/companies/{RUT}/documents"))).collect();
        // Warm-up: connections, schema compilation on every worker.
        for i in 0..50 * instances {
            let url = &urls[i % instances];
            let _ = g.http.post(url).bearer_auth(&g.key).json(&factura(&format!("warm {i}"), 100)).send().await;
        }
        let total = rps * secs;
        let interval = Duration::from_secs_f64(1.0 / rps as f64);
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..total {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let (http, key, url) = (g.http.clone(), g.key.clone(), urls[i as usize % instances].clone());
            set.spawn(async move {
                let r = http.post(&url).bearer_auth(&key).json(&factura(&format!("carga {i}"), 1000 + i)).send().await;
                let ok = matches!(&r, Ok(r) if r.status() == reqwest::StatusCode::CREATED);
                (due.elapsed(), ok)
            });
        }
        let mut lat = Vec::with_capacity(total as usize);
        let mut errors = 0u64;
        while let Some(r) = set.join_next().await {
            let (d, ok) = r.expect("task");
            if ok {
                lat.push(d);
            } else {
                errors += 1;
            }
        }
        let wall = start.elapsed();
        lat.sort();
        println!("load: {rps} rps offered for {secs} s, POST /v1/companies/{{rut}}/documents (factura 33, one company), {instances} instance(s) of the release binary on PostgreSQL");
        println!("  completed {} ({errors} errors) in {:.1} s = {:.0} docs/s", lat.len(), wall.as_secs_f64(), lat.len() as f64 / wall.as_secs_f64());
        println!(
            "  latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            pct(&lat, 0.50).as_secs_f64() * 1e3,
            pct(&lat, 0.90).as_secs_f64() * 1e3,
            pct(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        // The server's own view: time from the request entering its issuance group to the answer,
        // and how many documents the groups carried.
        for s in &g.servers {
            let m = g.http.get(s.metrics_url()).send().await.expect("metrics").text().await.unwrap_or_default();
            let value = |name: &str| -> f64 {
                m.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                    .sum()
            };
            let mean = |name: &str| value(&format!("{name}_sum")) / value(&format!("{name}_count"));
            let stage = |st: &str| -> f64 {
                let sel = |suffix: &str| {
                    m.lines()
                        .filter(|l| l.starts_with(&format!("dte_issuance_stage_duration_seconds_{suffix}")))
                        .filter(|l| l.contains(&format!("stage=\"{st}\"")))
                        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                        .sum::<f64>()
                };
                sel("sum") / sel("count")
            };
            println!(
                "  server means: issuance (group queue to answer) {:.2} ms [tax {:.2}, sign {:.2}, validate {:.2}], HTTP {:.2} ms; documents per group {:.2} (max {})",
                mean("dte_issuance_duration_seconds") * 1e3,
                stage("tax") * 1e3,
                stage("sign") * 1e3,
                stage("validate") * 1e3,
                mean("dte_http_request_duration_seconds") * 1e3,
                mean("dte_issuance_group_size"),
                m.lines()
                    .filter(|l| l.starts_with("dte_issuance_group_size{quantile=\"1\"}"))
                    .find_map(|l| l.rsplit(' ').next())
                    .unwrap_or("?"),
            );
        }
    });
}
