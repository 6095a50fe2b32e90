//! What the cache pays for: a tax quote computed vs served from memory (L1) vs from Redis (L2),
//! and SII token acquisition under a 1 000-request stampede across two instances.
//! Run: `cargo bench --bench cache` (starts its own redis-server and SII simulator).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::repo;
use common::sim::SimProcess;
use dte_gateway::cache::{Cache, CacheConfig, Key};
use dte_gateway::cert::Certificate;
use dte_gateway::domain::tax::TaxTable;
use dte_gateway::domain::DocumentInput;
use dte_gateway::sii::api::SiiApi;
use dte_gateway::sii::client::{Endpoints, SiiClient};
use dte_gateway::sii::tokens::Tokens;

fn per_op(n: u32, d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let redis = RedisServer::start();
        let body = std::fs::read(repo("examples/33-factura.json")).expect("example");
        let taxes = TaxTable::default();
        let emisor = "76192083-9".parse().expect("rut");
        let today = chrono::Local::now().date_naive();

        let n = 20_000u32;
        let t = Instant::now();
        for _ in 0..n {
            let input = DocumentInput::from_json(&body).expect("input");
            let (_, c) = dte_gateway::engine::quote(&input, emisor, &taxes, today).expect("quote");
            std::hint::black_box(serde_json::to_vec(&c.totals).expect("json"));
        }
        let compute = per_op(n, t.elapsed());

        let key = Key::TaxQuote("bench".into());
        let value = vec![b'x'; 180];
        let mem = Cache::new(&CacheConfig::default()).await.expect("memory");
        mem.set(&key, &value, Duration::from_secs(600)).await;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(mem.get(&key).await);
        }
        let l1 = per_op(n, t.elapsed());

        let cfg = CacheConfig { mode: "redis".into(), redis_urls: vec![redis.url()], ..CacheConfig::default() };
        let l2c = Cache::new(&cfg).await.expect("redis");
        // Quotes never go to Redis; a shared key measures what an L2 hit would cost them.
        let shared = Key::SiiToken { env: "bench".into(), cert: "l2".into() };
        l2c.set(&shared, &value, Duration::from_secs(600)).await;
        let m = 5_000u32;
        let t = Instant::now();
        for _ in 0..m {
            std::hint::black_box(l2c.get(&shared).await);
        }
        let l2 = per_op(m, t.elapsed());

        println!("tax quote (5-line factura 33, JSON in → totals JSON):");
        println!("  computed             {compute:8.1} µs/op");
        println!("  L1 hit (memory)      {l1:8.1} µs/op  ({:.0}x cheaper)", compute / l1);
        println!("  L2 hit (Redis, loopback, GET + PTTL) {l2:8.1} µs/op  ({:.0}x dearer than computing: quotes are kept in L1 only)", l2 / compute);

        // A full in-process cache (the default capacity, 100 000 entries, all live) taking new
        // keys: every insert must evict.
        let full = dte_gateway::cache::MemoryCache::new(100_000);
        for i in 0..100_000 {
            full.set(&format!("fill-{i}"), &value, Duration::from_secs(600 + i % 600));
        }
        let mut inserts = Vec::with_capacity(20_000);
        for i in 0..20_000 {
            let t = Instant::now();
            full.set(&format!("new-{i}"), &value, Duration::from_secs(600));
            inserts.push(t.elapsed());
        }
        inserts.sort();
        let at = |p: f64| inserts[((inserts.len() as f64 * p) as usize).min(inserts.len() - 1)].as_secs_f64() * 1e6;
        println!("full in-process cache (100 000 live entries), 20 000 inserts of new keys:");
        println!(
            "  p50 {:.1} µs  p99 {:.1} µs  p99.99 {:.1} µs  max {:.1} µs  over 1 ms: {}  (entries after: {})",
            at(0.50),
            at(0.99),
            at(0.9999),
            inserts.last().map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0),
            inserts.iter().filter(|d| d.as_micros() > 1000).count(),
            full.len()
        );

        let sim = SimProcess::start(&["--latency-ms", "20"]);
        let client = SiiApi::Soap(SiiClient::new(Endpoints { base: sim.base.clone() }, Duration::from_secs(10)).expect("client"));
        let cert = Arc::new(Certificate::from_pkcs12(&std::fs::read(repo("certs/test-company.p12")).expect("p12"), "test1234").expect("cert"));
        let tiered = CacheConfig { mode: "tiered".into(), redis_urls: vec![redis.url()], ..CacheConfig::default() };
        let instances = [Tokens::new(Cache::new(&tiered).await.expect("c1"), Duration::from_secs(300)), Tokens::new(Cache::new(&tiered).await.expect("c2"), Duration::from_secs(300))];
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let (tk, c, cl) = (instances[i % 2].clone(), cert.clone(), client.clone());
            set.spawn(async move { tk.get("certificacion", &c, &cl).await.expect("token") });
        }
        while set.join_next().await.is_some() {}
        let wall = t.elapsed();
        let counters = sim.counters().await;
        println!("SII token, 1 000 concurrent requests over 2 instances sharing Redis (simulator latency 20 ms):");
        println!(
            "  seed/token exchanges: {} (simulator counters: seeds {}, tokens {}), all served in {:.1} ms",
            instances.iter().map(|t| t.exchanges.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>(),
            counters["seeds"],
            counters["tokens"],
            wall.as_secs_f64() * 1e3
        );
    });
}
