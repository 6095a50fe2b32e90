//! The SII link end to end: documents issued over HTTP on two gateway instances sharing Redis and
//! PostgreSQL reach the simulator, are tracked to their verdict and reported by webhooks; one
//! token exchange serves them all; faults, an SII outage and token expiry are ridden out.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::{factura, Gateway, RUT};
use common::hooks::Receiver;
use common::redis::RedisServer;
use common::server::postgres;
use common::sim::SimProcess;
use reqwest::StatusCode;
use serde_json::json;

const COMPANIES: [&str; 3] = [RUT, "76555835-2", "76177907-9"];

fn link_env(sim: &str, redis: &str) -> Vec<(String, String)> {
    [
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_CACHE_MODE", "tiered"),
        ("DTE_GATEWAY_REDIS_URLS", redis),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "300"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_RETRY_BACKOFF_MS", "100"),
        ("DTE_GATEWAY_RETRY_MAX_BACKOFF_MS", "1500"),
        ("DTE_GATEWAY_SII_TIMEOUT_MS", "1000"),
        ("DTE_GATEWAY_CIRCUIT_FAILURES", "3"),
        ("DTE_GATEWAY_CIRCUIT_COOLDOWN_MS", "500"),
        ("DTE_GATEWAY_RATE_LIMIT_PER_SECOND", "100000"),
        ("DTE_GATEWAY_RATE_LIMIT_BURST", "100000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect()
}

fn boleta(i: usize) -> serde_json::Value {
    let tipo = if i.is_multiple_of(4) { 41 } else { 39 };
    json!({"Encabezado": {"IdDoc": {"TipoDTE": tipo}}, "Detalle": [{"NmbItem": format!("Café {i}"), "QtyItem": 1, "PrcItem": 990 + i}]})
}

/// `n` issuances spread over `keys` (one per company) and every server, by `clients` clients.
async fn issue_many(g: &Gateway, keys: &[(String, String)], n: usize, clients: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (http, next, keys) = (g.http.clone(), next.clone(), keys.to_vec());
        let urls: Vec<String> = g.servers.iter().map(|s| s.base.clone()).collect();
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let (rut, key) = &keys[i % keys.len()];
                let url = format!("{}/v1/companies/{rut}/documents", urls[(i + c) % urls.len()]);
                let r = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&factura(&format!("e2e {i}"), 1000 + i as u64))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("client");
    }
}

async fn wait_all_accepted(
    g: &Gateway,
    keys: &[(String, String)],
    expected: usize,
    limit: Duration,
) -> BTreeMap<String, usize> {
    let start = Instant::now();
    loop {
        let mut total: BTreeMap<String, usize> = BTreeMap::new();
        for (rut, key) in keys {
            for (s, n) in g.states(rut, key).await {
                *total.entry(s).or_default() += n;
            }
        }
        if total.get("accepted").copied().unwrap_or(0) == expected || start.elapsed() > limit {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_documents_of_three_companies_through_two_instances() {
    let redis = RedisServer::start();
    let sim = SimProcess::start(&["--processing-ms", "300"]);
    let env = link_env(&sim.base, &redis.url());
    let g = Gateway::start(postgres(), 2, &refs(&env), 100_000).await;
    let mut keys = vec![(RUT.to_string(), g.key.clone())];
    for rut in &COMPANIES[1..] {
        keys.push((rut.to_string(), g.add_company(rut, 100_000).await));
    }
    // A webhook receiver that fails its first 3 deliveries (they must be retried).
    let rx = Receiver::start(3).await;
    let (s, hook) =
        g.send("POST", &format!("/v1/companies/{RUT}/webhooks"), &g.admin, Some(json!({"url": rx.url}))).await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();

    issue_many(&g, &keys, 500, 64).await;
    let states = wait_all_accepted(&g, &keys, 500, Duration::from_secs(120)).await;
    assert_eq!(states.get("accepted"), Some(&500), "{states:?}");

    let counters = sim.counters().await;
    // One certificate in one environment, well within the token lifetime: one exchange.
    assert_eq!(counters["tokens"].as_u64(), Some(1), "{counters}");
    let accepted = counters["accepted"].as_object().unwrap();
    assert_eq!(accepted.len(), 500, "{counters}");
    assert!(accepted.values().all(|v| v.as_u64() == Some(1)), "a folio was accepted in two envelopes: {counters}");

    // Webhooks: each document of the company told once of `sent` and once of `accepted`, signed.
    let company_docs = 500 / 3 + usize::from(500 % 3 > 0);
    let start = Instant::now();
    while rx.got.lock().unwrap().len() < company_docs * 2 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    let mut seen: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for r in &got {
        let ts: i64 = r.header("x-dte-timestamp").unwrap().parse().unwrap();
        assert_eq!(
            r.header("x-dte-signature").unwrap(),
            dte_gateway::worker::webhooks::signature(&secret, ts, &r.body),
            "bad signature"
        );
        let e: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(e["company"].as_str(), Some(RUT));
        *seen.entry((e["folio"].as_i64().unwrap(), e["state"].as_str().unwrap().to_string())).or_default() += 1;
    }
    assert_eq!(seen.len(), company_docs * 2, "{} events for {company_docs} documents", got.len());
    assert!(seen.values().all(|n| *n == 1), "an event was delivered twice");
    assert!(rx.refused.load(Ordering::SeqCst) >= 3);
    let (_, deliveries) =
        g.send("GET", &format!("/v1/companies/{RUT}/webhooks/deliveries?limit=1000"), &g.key, None).await;
    assert!(
        deliveries.as_array().unwrap().iter().any(|d| d["attempts"].as_i64().unwrap_or(0) >= 2),
        "no delivery shows its retry"
    );

    // On demand: QueryEstDte for one document.
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/documents/33/1/sii-status"), &g.key, None).await;
    assert_eq!((s, b["estado"].as_str(), b["state"].as_str()), (StatusCode::OK, Some("DOK"), Some("accepted")), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_an_outage_and_token_expiry_are_ridden_out() {
    let redis = RedisServer::start();
    let mut sim = SimProcess::start(&[
        "--processing-ms",
        "200",
        "--error-rate",
        "0.3",
        "--timeout-rate",
        "0.1",
        "--hang-ms",
        "3000",
    ]);
    let port = sim.port();
    let env = link_env(&sim.base, &redis.url());
    let g = Gateway::start(postgres(), 2, &refs(&env), 100_000).await;
    let keys = vec![(RUT.to_string(), g.key.clone())];
    issue_many(&g, &keys, 60, 8).await;
    let states = wait_all_accepted(&g, &keys, 60, Duration::from_secs(120)).await;
    assert_eq!(states.get("accepted"), Some(&60), "{states:?}");

    // An SII outage: the circuit opens; when the SII returns it closes and the backlog drains.
    sim.kill9();
    issue_many(&g, &keys, 20, 4).await;
    let opened = |b: &serde_json::Value| b["sii"]["certificacion"]["opened"].as_u64().unwrap_or(0);
    let start = Instant::now();
    let mut health = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(30) {
        health = g.http.get(g.url("/health/ready")).send().await.unwrap().json().await.unwrap();
        if opened(&health) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(opened(&health) >= 1, "the circuit never opened: {health}");
    let sim = SimProcess::start_on(port, &["--processing-ms", "200"]);
    // Tokens the old simulator issued mean nothing to the new one: STATUS 5, then a new token.
    let states = wait_all_accepted(&g, &keys, 80, Duration::from_secs(120)).await;
    assert_eq!(states.get("accepted"), Some(&80), "{states:?}");
    // An instance that opened its circuit closed it again by working; none is left open. (An idle
    // instance may sit half-open, waiting for its next call to be the probe.)
    let mut issued = 80;
    let mut circuits = Vec::new();
    for _ in 0..10 {
        circuits.clear();
        for s in &g.servers {
            let h: serde_json::Value = g.http.get(s.url("/health/ready")).send().await.unwrap().json().await.unwrap();
            let c = &h["sii"]["certificacion"];
            circuits.push((c["opened"].as_u64().unwrap_or(0), c["state"].as_str().unwrap_or("").to_string()));
        }
        if circuits.iter().any(|(o, s)| *o >= 1 && s == "closed") {
            break;
        }
        // Give every instance work, so each circuit gets its probe.
        issue_many(&g, &keys, 4, 2).await;
        issued += 4;
        wait_all_accepted(&g, &keys, issued, Duration::from_secs(30)).await;
    }
    assert!(circuits.iter().any(|(o, s)| *o >= 1 && s == "closed"), "{circuits:?}");
    assert!(circuits.iter().all(|(_, s)| s != "open"), "{circuits:?}");

    // Forced token expiry mid-run: the gateway re-authenticates by itself.
    let before = sim.counters().await["tokens"].as_u64().unwrap();
    reqwest::Client::new().post(format!("{}/sim/expire-tokens", sim.base)).send().await.unwrap();
    issue_many(&g, &keys, 10, 2).await;
    let states = wait_all_accepted(&g, &keys, issued + 10, Duration::from_secs(60)).await;
    assert_eq!(states.get("accepted"), Some(&(issued + 10)), "{states:?}");
    let counters = sim.counters().await;
    assert_eq!(counters["tokens"].as_u64(), Some(before + 1), "one re-authentication: {counters}");
    assert!(counters["accepted"].as_object().unwrap().values().all(|v| v.as_u64() == Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_run_no_request_fails_and_the_cache_returns_to_redis() {
    let mut redis = RedisServer::start();
    let sim = SimProcess::start(&["--processing-ms", "200"]);
    let env = link_env(&sim.base, &redis.url());
    let g = Gateway::start(postgres(), 2, &refs(&env), 100_000).await;
    let keys = vec![(RUT.to_string(), g.key.clone())];
    let ready = |i: usize| {
        let (http, url) = (g.http.clone(), g.servers[i].url("/health/ready"));
        async move { http.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    issue_many(&g, &keys, 20, 4).await;
    redis.kill9();
    // Issuance and quotes keep answering while Redis is gone.
    issue_many(&g, &keys, 40, 8).await;
    for i in 0..20 {
        let (s, b) = g.send("POST", "/v1/tax/quote", &g.key, Some(factura(&format!("q{i}"), 100 + i))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let down = ready(0).await;
    assert_eq!(
        (down["status"].as_str(), down["cache"]["degraded"].as_bool()),
        (Some("degraded"), Some(true)),
        "{down}"
    );
    let scrape = |i: usize| {
        let (http, url) = (g.http.clone(), g.servers[i].metrics_url());
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(scrape(0).await.lines().any(|l| l == "dte_cache_degraded 1"), "the metric does not say degraded");
    redis.restart();
    let start = Instant::now();
    let mut up = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(10) {
        up = ready(0).await;
        if up["status"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!((up["status"].as_str(), up["cache"]["degraded"].as_bool()), (Some("ready"), Some(false)), "{up}");
    let metrics = scrape(0).await;
    assert!(metrics.lines().any(|l| l == "dte_cache_degraded 0"), "the metric still says degraded");
    // And it uses Redis again: the restarted (empty) Redis receives the SII token anew.
    issue_many(&g, &keys, 10, 2).await;
    let states = wait_all_accepted(&g, &keys, 70, Duration::from_secs(60)).await;
    assert_eq!(states.get("accepted"), Some(&70), "{states:?}");
    let keys_in_redis = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--scan", "--pattern", "dtegw:sii-token:*"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&keys_in_redis.stdout).trim().is_empty(),
        "nothing was written to Redis after it came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boletas_travel_by_the_rest_api_and_facturas_by_soap() {
    let redis = RedisServer::start();
    let sim = SimProcess::start(&["--processing-ms", "200"]);
    let env = link_env(&sim.base, &redis.url());
    let g = Gateway::start(postgres(), 2, &refs(&env), 100_000).await;
    for tipo in [39u16, 41] {
        let (s, b) = g
            .raw(
                "POST",
                &format!("/v1/companies/{RUT}/cafs"),
                &g.admin,
                common::gateway::caf_xml(tipo, 1, 1000, RUT).into_bytes(),
                "application/xml",
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let path = format!("/v1/companies/{RUT}/documents");
    for i in 0..40 {
        let (s, b) = g
            .raw_on(i % 2, "POST", &path, &g.key, serde_json::to_vec(&boleta(i)).unwrap(), "application/json", None)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let keys = vec![(RUT.to_string(), g.key.clone())];
    issue_many(&g, &keys, 10, 2).await;
    let states = wait_all_accepted(&g, &keys, 50, Duration::from_secs(60)).await;
    assert_eq!(states.get("accepted"), Some(&50), "{states:?}");
    let counters = sim.counters().await;
    // One token per API: the SOAP services and the boleta REST API.
    assert_eq!(counters["tokens"].as_u64(), Some(2), "{counters}");
    let accepted = counters["accepted"].as_object().unwrap();
    assert_eq!(accepted.keys().filter(|k| k.contains("/39/") || k.contains("/41/")).count(), 40, "{counters}");
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/documents/39/1/sii-status"), &g.key, None).await;
    assert_eq!((s, b["estado"].as_str()), (StatusCode::OK, Some("DOK")), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_and_revocations_are_shared_through_redis() {
    let redis = RedisServer::start();
    let sim = SimProcess::start(&[]);
    let mut env = link_env(&sim.base, &redis.url());
    env.retain(|(k, _)| !k.starts_with("DTE_GATEWAY_RATE_LIMIT"));
    env.push(("DTE_GATEWAY_RATE_LIMIT_PER_SECOND".into(), "2".into()));
    env.push(("DTE_GATEWAY_RATE_LIMIT_BURST".into(), "10".into()));
    let g = Gateway::start(postgres(), 2, &refs(&env), 1000).await;
    let path = format!("/v1/companies/{RUT}/documents?limit=1");
    // One bucket for the key, whichever instance answers: about 10, not 20, before 429.
    let (_, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let key = k["key"].as_str().unwrap().to_string();
    let mut ok = 0;
    let started = Instant::now();
    for i in 0..30 {
        let (s, _) = g.raw_on(i % 2, "GET", &path, &key, vec![], "application/json", None).await;
        if s == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    // A burst of 10, plus what 2/s refilled while the loop ran; two separate buckets would pass 20.
    let refilled = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(ok >= 10 && ok <= 10 + refilled, "{ok} requests passed a shared bucket of 10 (+{refilled} refilled)");
    assert!(ok < 20, "{ok}: the instances do not share the bucket");

    // A revocation reaches the other instance through Redis within a second.
    let (_, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let (id, victim) = (k["id"].as_str().unwrap().to_string(), k["key"].as_str().unwrap().to_string());
    assert_eq!(g.raw_on(1, "GET", &path, &victim, vec![], "application/json", None).await.0, StatusCode::OK);
    let t = Instant::now();
    assert_eq!(g.send("DELETE", &format!("/v1/keys/{id}"), &g.admin, None).await.0, StatusCode::NO_CONTENT);
    let mut refused = None;
    while t.elapsed() < Duration::from_secs(3) {
        if g.raw_on(1, "GET", &path, &victim, vec![], "application/json", None).await.0 == StatusCode::UNAUTHORIZED {
            refused = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the revoked key still works");
    assert!(refused < Duration::from_secs(1), "took {refused:?}");
    let listed = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "zcard", "dtegw:revoked"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_warmed_at_start_for_recently_active_companies() {
    let redis = RedisServer::start();
    let sim = SimProcess::start(&[]);
    let db = postgres();
    // Issue with the SII link off…
    let g = Gateway::start(db, 1, &[], 1000).await;
    let keys = vec![(RUT.to_string(), g.key.clone())];
    issue_many(&g, &keys, 3, 1).await;
    // …then start an instance with it on, holding envelopes back: the token comes from warm-up.
    let mut env = link_env(&sim.base, &redis.url());
    env.push(("DTE_GATEWAY_SENDER_MAX_DOCS".into(), "2000".into()));
    env.push(("DTE_GATEWAY_SENDER_MAX_AGE_MS".into(), "600000".into()));
    let _linked = common::server::Server::start(&g.db, &refs(&env));
    let start = Instant::now();
    while sim.counters().await["tokens"].as_u64() != Some(1) && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = sim.counters().await;
    assert_eq!((counters["tokens"].as_u64(), counters["uploads"].as_u64()), (Some(1), Some(0)), "{counters}");
}
