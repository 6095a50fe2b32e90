//! The security review's findings, each tried as an attacker would against a running server.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::gateway::{Gateway, RUT};
use common::server::sqlite;

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
