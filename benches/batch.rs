//! A 10 000-document CSV batch for 3 companies, end to end: upload, issuance, EnvioDTE uploads to
//! the SII simulator and tracking until every document is accepted. The release binary on
//! PostgreSQL with the Redis Streams queue (the harness starts its own servers).
//! Run: `cargo bench --bench batch` (BATCH_DOCS, default 10000; BATCH_COMPANIES, 1 to 3, default
//! 3; BATCH_SII=0 measures issuance alone, without the SII link).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::batch::{count, csv, status, submit};
use common::gateway::{Gateway, RUT};
use common::redis::RedisServer;
use common::server::postgres;
use common::sim::SimProcess;

fn main() {
    let docs: usize = std::env::var("BATCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let sii = std::env::var("BATCH_SII").map(|v| v != "0").unwrap_or(true);
    let n_companies: usize =
        std::env::var("BATCH_COMPANIES").ok().and_then(|v| v.parse().ok()).unwrap_or(3).clamp(1, 3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let redis = RedisServer::start();
        let sim = SimProcess::start(&["--processing-ms", "300"]);
        let redis_url = redis.url();
        let env = [
            ("DTE_GATEWAY_RATE_LIMIT_PER_SECOND", "100000"),
            ("DTE_GATEWAY_RATE_LIMIT_BURST", "100000"),
            ("DTE_GATEWAY_SII_WORKERS", if sii { "true" } else { "false" }),
            ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
            ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim.base.as_str()),
            ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim.base.as_str()),
            ("DTE_GATEWAY_CACHE_MODE", "tiered"),
            ("DTE_GATEWAY_REDIS_URLS", redis_url.as_str()),
            ("DTE_GATEWAY_QUEUE_MODE", "redis"),
            ("DTE_GATEWAY_BATCH_WORKERS", "4"),
            ("DTE_GATEWAY_SENDER_MAX_DOCS", "500"),
            ("DTE_GATEWAY_TRACK_EVERY_MS", "300"),
        ];
        let g = Gateway::start(postgres(), 1, &env, 1_000_000).await;
        let all = [RUT, "76555835-2", "76177907-9"];
        let companies = &all[..n_companies];
        for rut in &companies[1..] {
            g.add_company(rut, 1_000_000).await;
        }
        let body = csv(companies, docs, 2);
        let mb = body.len() as f64 / 1e6;
        let started = Instant::now();
        let (s, b) = submit(&g, &g.admin, body.into_bytes(), "text/csv", "").await;
        assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{b}");
        let intake = started.elapsed();
        let id = b["id"].as_str().expect("id").to_string();
        let mut issued_at = None;
        loop {
            let v = status(&g, &g.admin, &id).await;
            if issued_at.is_none() && count(&v, "items", "pending") == 0 {
                issued_at = Some(started.elapsed());
            }
            if v["complete"] == true {
                assert_eq!(count(&v, "items", "issued"), docs as u64, "{v}");
                if sii {
                    assert_eq!(count(&v, "documents", "accepted"), docs as u64, "{v}");
                }
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "not complete after 30 min: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let total = started.elapsed();
        let issued = issued_at.unwrap_or(total);
        if !sii {
            println!("batch of {docs} documents ({n_companies} companies, {mb:.1} MB CSV), SII link off:");
            println!("  intake: {:.1} s", intake.as_secs_f64());
            println!("  all issued: {:.1} s ({:.0} docs/s)", issued.as_secs_f64(), docs as f64 / issued.as_secs_f64());
            return;
        }
        let counters = sim.counters().await;
        let accepted = counters["accepted"].as_object().expect("accepted");
        assert_eq!(accepted.len(), docs);
        assert!(accepted.values().all(|v| v.as_u64() == Some(1)));
        println!("batch of {docs} documents ({n_companies} companies, {mb:.1} MB CSV, 2 lines each):");
        println!("  intake (upload, checks, stored, queued): {:.1} s", intake.as_secs_f64());
        println!("  all issued:   {:.1} s ({:.0} docs/s)", issued.as_secs_f64(), docs as f64 / issued.as_secs_f64());
        println!(
            "  all accepted by the simulator: {:.1} s wall ({:.0} docs/s end to end)",
            total.as_secs_f64(),
            docs as f64 / total.as_secs_f64()
        );
        println!("  simulator: {} token exchange(s), each folio accepted once", counters["tokens"]);
    });
}
