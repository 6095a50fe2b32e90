//! The cache against real Redis (standalone, killed and restarted, and a 3-master Cluster), and
//! SII tokens shared by several instances through it, against the simulator.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::{RedisCluster, RedisServer};
use common::repo;
use common::sim::SimProcess;
use dte_gateway::cache::{Cache, CacheConfig, Key};
use dte_gateway::cert::Certificate;
use dte_gateway::sii::api::SiiApi;
use dte_gateway::sii::client::{Endpoints, SiiClient};
use dte_gateway::sii::tokens::Tokens;

fn cfg(mode: &str, urls: Vec<String>, cluster: bool) -> CacheConfig {
    CacheConfig { mode: mode.into(), redis_urls: urls, cluster, ..CacheConfig::default() }
}

fn shared(name: &str) -> Key {
    Key::SiiToken { env: "test".into(), cert: name.into() }
}

async fn exercise(c: &Cache) {
    let k = shared(&format!("q-{}", c.mode()));
    assert_eq!(c.get(&k).await, None);
    c.set(&k, b"{\"MntTotal\":1190}", Duration::from_millis(400)).await;
    assert_eq!(c.get(&k).await.as_deref(), Some(&b"{\"MntTotal\":1190}"[..]));
    let keys: Vec<Key> = (0..20).map(|i| shared(&format!("m{i}"))).collect();
    for (i, k) in keys.iter().enumerate().step_by(2) {
        c.set(k, i.to_string().as_bytes(), Duration::from_secs(30)).await;
    }
    let got = c.get_many(&keys).await;
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.is_some(), i % 2 == 0, "key {i}");
    }
    let lock = Key::SiiTokenLock { env: "certificacion".into(), cert: c.mode().into() };
    assert!(c.set_nx(&lock, b"1", Duration::from_secs(5)).await);
    assert!(!c.set_nx(&lock, b"1", Duration::from_secs(5)).await);
    c.del(&lock).await;
    assert!(c.set_nx(&lock, b"1", Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.get(&k).await, None, "TTL not honoured in {}", c.mode());
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_redis_and_tiered_behave_alike() {
    let redis = RedisServer::start();
    for mode in ["memory", "redis", "tiered"] {
        let c = Cache::new(&cfg(mode, vec![redis.url()], false)).await.unwrap();
        exercise(&c).await;
        assert!(!c.degraded());
        // Tax quotes stay in this instance's memory, whatever the mode.
        let q = Key::TaxQuote(format!("local-{mode}"));
        c.set(&q, b"1", Duration::from_secs(60)).await;
        assert_eq!(c.get(&q).await.as_deref(), Some(&b"1"[..]));
        let found = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "exists", &q.render("dtegw")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "0", "{mode} sent a tax quote to Redis");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_serves_the_cache() {
    let cluster = RedisCluster::start();
    let c = Cache::new(&cfg("tiered", cluster.urls(), true)).await.unwrap();
    exercise(&c).await;
    assert!(!c.degraded());
    // Tax quotes are served from the instance's memory, never from the Cluster.
    let q = Key::TaxQuote("cluster".into());
    c.set(&q, b"{}", Duration::from_secs(60)).await;
    assert_eq!(c.get(&q).await.as_deref(), Some(&b"{}"[..]));
    for n in &cluster.nodes {
        let found = std::process::Command::new("redis-cli")
            .args(["-c", "-p", &n.port.to_string(), "exists", &q.render("dtegw")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "0");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_the_cache_degrades_to_memory_and_recovers() {
    let mut redis = RedisServer::start();
    let c = Cache::new(&cfg("redis", vec![redis.url()], false)).await.unwrap();
    let k = shared("survivor");
    c.set(&k, b"before", Duration::from_secs(60)).await;
    redis.kill9();
    // Every call still answers; writes land in memory.
    c.set(&k, b"during", Duration::from_secs(60)).await;
    assert!(c.degraded());
    assert_eq!(c.get(&k).await.as_deref(), Some(&b"during"[..]));
    redis.restart();
    let start = std::time::Instant::now();
    while c.degraded() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!c.degraded(), "the cache did not go back to Redis");
    c.set(&k, b"after", Duration::from_secs(60)).await;
    let direct = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "get", &k.render("dtegw")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&direct.stdout).trim(), "after");
}

fn cert() -> Certificate {
    Certificate::from_pkcs12(&std::fs::read(repo("certs/test-company.p12")).unwrap(), "test1234").unwrap()
}

/// A stampede of 1 000 requests across two "instances" (two caches on the same Redis): one
/// seed/token exchange in the simulator.
async fn stampede(urls: Vec<String>, cluster: bool) {
    let sim = SimProcess::start(&["--latency-ms", "50"]);
    let client = SiiApi::Soap(SiiClient::new(Endpoints { base: sim.base.clone() }, Duration::from_secs(10)).unwrap());
    let mut instances: Vec<Arc<Tokens>> = Vec::new();
    for _ in 0..2 {
        let cache = Cache::new(&cfg("tiered", urls.clone(), cluster)).await.unwrap();
        instances.push(Tokens::new(cache, Duration::from_secs(300)));
    }
    let cert = Arc::new(cert());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (t, c, cl) = (instances[i % 2].clone(), cert.clone(), client.clone());
        set.spawn(async move { t.get("certificacion", &c, &cl).await.unwrap() });
    }
    let mut tokens = std::collections::HashSet::new();
    while let Some(t) = set.join_next().await {
        tokens.insert(t.unwrap());
    }
    assert_eq!(tokens.len(), 1);
    let counters = sim.counters().await;
    assert_eq!((counters["seeds"].as_u64(), counters["tokens"].as_u64()), (Some(1), Some(1)), "{counters}");
    // Invalidation (the SII refused the token): exactly one new exchange.
    let old = tokens.iter().next().cloned().unwrap();
    instances[0].invalidate("certificacion", &cert, "not-the-token").await;
    assert_eq!(
        instances[1].get("certificacion", &cert, &client).await.unwrap(),
        old,
        "only the refused token is dropped"
    );
    instances[0].invalidate("certificacion", &cert, &old).await;
    let t2 = instances[1].get("certificacion", &cert, &client).await.unwrap();
    assert!(!tokens.contains(&t2));
    assert_eq!(sim.counters().await["tokens"].as_u64(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_exchange_for_a_stampede_on_redis() {
    let redis = RedisServer::start();
    stampede(vec![redis.url()], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_exchange_for_a_stampede_on_a_cluster() {
    let cluster = RedisCluster::start();
    stampede(cluster.urls(), true).await;
}
