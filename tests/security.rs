//! The security review's findings, each tried as an attacker would against a running server.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};

use std::time::Duration;

use common::gateway::{Gateway, RUT};
use common::hooks::Receiver;
use common::server::{sqlite, Server};
use common::sim::SimProcess;

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

fn utf16le(s: &str) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFE];
    v.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
    v
}

async fn read_only_key(g: &Gateway) -> String {
    let (s, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    k["key"].as_str().expect("key").to_string()
}

fn problem(s: StatusCode, b: &Value) {
    assert!(s.is_client_error(), "{s} {b}");
    assert!(b["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xml_bombs_in_any_encoding_are_refused_without_growing_the_server() {
    let g = Gateway::start(sqlite(), 1, &[], 10).await;
    let reader = read_only_key(&g).await;
    let pid = g.servers[0].pid().expect("pid");
    // Warm up the paths once so what is measured is the attack, not first-use allocations.
    let (s, _) = g.raw("POST", "/v1/verify", &reader, b"<DTE/>".to_vec(), "application/xml").await;
    assert!(s.is_client_error() || s.is_success(), "{s}");
    let idle = rss_mb(pid);

    // An internal DTD in UTF-16LE: a byte search for "<!DOCTYPE" does not see it.
    let entity = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\
        <!DOCTYPE AUTORIZACION [<!ENTITY e \"ECHOED-ENTITY\">]><AUTORIZACION><CAF><DA><RE>&e;</RE></DA></CAF></AUTORIZACION>";
    let (s, b) = g.raw("POST", "/v1/verify", &reader, utf16le(entity), "application/xml").await;
    problem(s, &b);
    assert!(b.to_string().contains("DTD"), "{b}");
    let (s, b) =
        g.raw("POST", &format!("/v1/companies/{RUT}/cafs"), &g.admin, utf16le(entity), "application/xml").await;
    problem(s, &b);
    assert!(!b.to_string().contains("ECHOED-ENTITY"), "the entity was expanded: {b}");

    // Quadratic blow-up: one large entity referenced many times, ~70 KB on the wire, sent by a
    // read-only key, in UTF-8 and in UTF-16.
    let big = "A".repeat(30_000);
    let refs = "&a;".repeat(13_000);
    let bomb = format!("<?xml version=\"1.0\"?><!DOCTYPE DTE [<!ENTITY a \"{big}\">]><DTE>{refs}</DTE>");
    for _ in 0..5 {
        let (s, b) = g.raw("POST", "/v1/verify", &reader, bomb.clone().into_bytes(), "application/xml").await;
        problem(s, &b);
        let utf16 = bomb.replacen("?>", " encoding=\"UTF-16\"?>", 1);
        let (s, b) = g.raw("POST", "/v1/verify", &reader, utf16le(&utf16), "application/xml").await;
        problem(s, &b);
    }
    let grown = rss_mb(pid) - idle;
    assert!(grown < 50.0, "the server grew {grown:.1} MB over its idle {idle:.1} MB");
}

fn link_env(sim: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "200"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.extend(extra.iter().map(|(k, s)| (k.to_string(), s.to_string())));
    v
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect()
}

async fn deliveries(g: &Gateway) -> Vec<Value> {
    let (s, b) = g.send("GET", &format!("/v1/companies/{RUT}/webhooks/deliveries?limit=1000"), &g.key, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b.as_array().cloned().unwrap_or_default()
}

/// Waits until every delivery has left `pending` (or failed its first attempt).
async fn settled(g: &Gateway, n: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let d = deliveries(g).await;
        if d.len() >= n && d.iter().all(|d| d["attempts"].as_i64().unwrap_or(0) >= 1) {
            return d;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "deliveries did not settle: {d:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_cannot_reach_internal_addresses_nor_follow_redirects() {
    let sim = SimProcess::start(&["--processing-ms", "100"]);
    let strict = link_env(&sim.base, &[("DTE_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "false")]);
    let mut g = Gateway::start(sqlite(), 1, &refs(&strict), 100).await;
    let rx = Receiver::start(0).await;
    let hooks = format!("/v1/companies/{RUT}/webhooks");
    let port = rx.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();

    // Addresses in the URL are refused when registered.
    for url in [rx.url.clone(), format!("http://[::1]:{port}/hook"), "http://169.254.169.254/latest".into()] {
        let (s, b) = g.send("POST", &hooks, &g.admin, Some(json!({ "url": url }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {b}");
        assert!(b["detail"].as_str().unwrap_or_default().contains("not a public address"), "{b}");
    }
    // A name is refused where it resolves to loopback, at connect time, with a coarse outcome.
    let (s, local) =
        g.send("POST", &hooks, &g.admin, Some(json!({"url": format!("http://localhost:{port}/hook")}))).await;
    assert_eq!(s, StatusCode::CREATED, "{local}");
    assert_eq!(g.issue(0, &common::gateway::factura("a", 1000), None).await.0, StatusCode::CREATED);
    let d = settled(&g, 1).await;
    assert!(d.iter().all(|d| d["last_status"] == "address not allowed"), "{d:?}");
    assert!(rx.got.lock().unwrap().is_empty(), "a loopback receiver was reached");

    // Allowed for on-premise receivers; a 302 is a failed delivery, never followed.
    g.servers[0].kill9();
    let onprem = link_env(&sim.base, &[("DTE_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "true")]);
    g.servers[0] = Server::start(&g.db, &refs(&onprem));
    let (s, hook) = g.send("DELETE", &format!("{hooks}/{}", local["id"]), &g.admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{hook}");
    let redirecting = Receiver::redirecting().await;
    let (s, b) = g.send("POST", &hooks, &g.admin, Some(json!({"url": redirecting.url}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let before = deliveries(&g).await.len();
    assert_eq!(g.issue(0, &common::gateway::factura("b", 1000), None).await.0, StatusCode::CREATED);
    let d = settled(&g, before + 1).await;
    let to_redirecting: Vec<&Value> = d.iter().filter(|d| d["url"] == redirecting.url.as_str()).collect();
    assert!(!to_redirecting.is_empty() && to_redirecting.iter().all(|d| d["last_status"] == "302"), "{d:?}");
    let got = redirecting.got.lock().unwrap().clone();
    assert!(!got.is_empty() && got.iter().all(|r| r.path == "/hook"), "the redirect was followed: {got:?}");
}
