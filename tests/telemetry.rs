//! Operations: the KPI series at `/metrics` reflect the work done, and logs are JSON with the
//! request id, rotate, and carry no secret.

mod common;

use std::time::{Duration, Instant};

use common::gateway::{factura, Gateway, RUT};
use common::server::{sqlite, MASTER_KEY};
use common::sim::SimProcess;
use reqwest::StatusCode;

/// The value of the series `name{labels…}` whose labels include every `want` pair.
fn value(scrape: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, labels) =
            series.split_once('{').map(|(n, rest)| (n, rest.trim_end_matches('}'))).unwrap_or((series, ""));
        if n != name {
            return None;
        }
        want.iter()
            .all(|(k, val)| labels.split(',').any(|p| p == format!("{k}=\"{val}\"")))
            .then(|| v.parse().ok())
            .flatten()
    })
}

fn env(sim: &str, extra: &[(&'static str, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("DTE_GATEWAY_SII_WORKERS", if sim.is_empty() { "false" } else { "true" }),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "200"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_reflect_the_work_done() {
    let sim = SimProcess::start(&["--processing-ms", "200"]);
    let e = env(&sim.base, &[]);
    let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let g = Gateway::start(sqlite(), 1, &refs, 1000).await;
    for i in 0..5 {
        assert_eq!(g.issue(0, &factura(&format!("m{i}"), 1000), None).await.0, StatusCode::CREATED);
    }
    for _ in 0..2 {
        assert_eq!(g.send("POST", "/v1/tax/quote", &g.key, Some(factura("quote", 1000))).await.0, StatusCode::OK);
    }
    // A batch of three more.
    let batch: Vec<serde_json::Value> =
        (0..3).map(|i| serde_json::json!({"company": RUT, "document": factura(&format!("b{i}"), 1000)})).collect();
    let (s, b) = common::batch::submit(&g, &g.key, serde_json::to_vec(&batch).unwrap(), "application/json", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let start = Instant::now();
    let mut scrape = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        scrape = g.http.get(g.servers[0].metrics_url()).send().await.unwrap().text().await.unwrap();
        let accepted = value(&scrape, "dte_documents", &[("state", "accepted")]).unwrap_or(0.0);
        let left = value(&scrape, "dte_caf_folios_left", &[("company", RUT), ("tipo", "33")]);
        let batch_done = value(&scrape, "dte_batch_items_total", &[("outcome", "issued")]) == Some(3.0)
            && value(&scrape, "dte_batch_queue_depth", &[]) == Some(0.0);
        if accepted == 8.0 && left == Some(992.0) && batch_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&scrape, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{scrape}"))
    };
    assert_eq!(v("dte_documents_issued_total", &[("company", RUT), ("tipo", "33")]), 8.0);
    assert_eq!(v("dte_issuance_duration_seconds_count", &[]), 8.0);
    assert_eq!(v("dte_issuance_stage_duration_seconds_count", &[("stage", "sign")]), 8.0);
    assert_eq!(v("dte_batch_items_total", &[("outcome", "issued")]), 3.0);
    assert_eq!(v("dte_batch_queue_depth", &[]), 0.0);
    assert_eq!(v("dte_batch_dead_letters", &[]), 0.0);
    assert_eq!(v("dte_batch_oldest_pending_age_seconds", &[]), 0.0);
    assert_eq!(
        v(
            "dte_http_requests_total",
            &[("route", "/v1/companies/{rut}/documents"), ("method", "POST"), ("status", "201")]
        ),
        5.0
    );
    // The second quote, and every use of the SII token after the first, are hits.
    assert!(v("dte_cache_requests_total", &[("layer", "l1"), ("result", "hit")]) >= 2.0);
    assert!(v("dte_cache_requests_total", &[("layer", "l1"), ("result", "miss")]) >= 1.0);
    assert_eq!(v("dte_cache_degraded", &[]), 0.0);
    assert_eq!(v("dte_sii_token_acquisitions_total", &[("result", "ok")]), 1.0);
    assert!(v("dte_sii_uploads_total", &[("outcome", "received")]) >= 1.0);
    assert!(v("dte_sii_upload_verdicts_total", &[("estado", "EPR")]) >= 1.0);
    assert!(v("dte_sii_requests_total", &[("operation", "upload"), ("outcome", "ok")]) >= 1.0);
    assert_eq!(v("dte_sii_circuit_state", &[]), 0.0);
    assert_eq!(v("dte_documents", &[("state", "accepted")]), 8.0);
    assert_eq!(v("dte_caf_folios_left", &[("company", RUT), ("tipo", "33")]), 992.0);
    // The test certificate is valid to 2045-01-01.
    assert_eq!(v("dte_certificate_expiry_timestamp_seconds", &[("company", RUT)]), 2_366_841_600.0);
    assert!(v("dte_caf_expiry_timestamp_seconds", &[("company", RUT), ("tipo", "33")]) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_are_json_carry_the_request_id_rotate_and_hold_no_secret() {
    let logs = tempfile::tempdir().unwrap();
    let e = env(
        "",
        &[
            ("DTE_GATEWAY_LOG_DIR", logs.path().display().to_string()),
            ("DTE_GATEWAY_LOG_ROTATION", "minutely".into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let g = Gateway::start(sqlite(), 1, &refs, 1000).await;
    let files = || std::fs::read_dir(logs.path()).unwrap().filter_map(|f| f.ok()).map(|f| f.path()).collect::<Vec<_>>();
    // Work until the minute turns and a second file appears.
    let start = Instant::now();
    let mut n = 0;
    while files().len() < 2 && start.elapsed() < Duration::from_secs(75) {
        let r = g
            .http
            .post(g.url(&format!("/v1/companies/{RUT}/documents")))
            .bearer_auth(&g.key)
            .header("x-request-id", format!("req-{n}"))
            .json(&factura("log", 100))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-request-id"], format!("req-{n}").as_str());
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(files().len() >= 2, "no rotation in {:?}: {:?}", start.elapsed(), files());
    // A batch: its items' log lines carry the id of the request that submitted it.
    let batch = serde_json::json!([{"company": RUT, "document": factura("lote", 100)}]);
    let r = g
        .http
        .post(g.url("/v1/batches"))
        .bearer_auth(&g.key)
        .header("x-request-id", "batch-req")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    common::batch::wait_for(&g, &g.key, &id, Duration::from_secs(30), |v| v["complete"] == true).await;
    // A generated id when none is given.
    let r = g.http.get(g.url("/health/live")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 16);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secrets = [g.key.as_str(), g.admin.as_str(), "test1234", MASTER_KEY];
    let mut ids = std::collections::HashSet::new();
    let mut batch_item_logged = false;
    for f in files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if let Some(id) = v["span"]["request_id"].as_str() {
                ids.insert(id.to_string());
                batch_item_logged |= id == "batch-req" && v["span"]["name"] == "batch_item";
            }
            for s in secrets {
                assert!(!line.contains(s), "a secret reached the log: {line}");
            }
        }
    }
    for i in 0..n {
        assert!(ids.contains(&format!("req-{i}")), "request req-{i} left no log line");
    }
    assert!(batch_item_logged, "no batch item log line carries the submitting request's id");
}
