//! The interactive API documentation in a real headless Chromium: the viewer (vendored Swagger
//! UI) renders every operation of `/openapi.json` offline, makes no request outside the gateway,
//! logs no console error, and "Try it out" sends a request to the gateway with an API key.

mod common;

use common::gateway::{Gateway, RUT};
use common::server;

#[tokio::test]
async fn the_interactive_docs_load_offline_and_send_a_request() {
    let g = Gateway::start(server::sqlite(), 1, &[], 10).await;
    let spec: serde_json::Value = g.http.get(g.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operations: usize =
        spec["paths"].as_object().unwrap().values().map(|item| item.as_object().map(|o| o.len()).unwrap_or(0)).sum();
    // Every operation says what it does in a line and in a paragraph; issuing and quoting show the
    // documents of examples/.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let text = |k: &str| op[k].as_str().is_some_and(|s| s.len() > 10);
            assert!(text("summary") && text("description"), "{method} {path}: {op}");
        }
    }
    for path in ["/v1/companies/{rut}/documents", "/v1/tax/quote"] {
        let examples = &spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"];
        assert_eq!(examples.as_object().map(|e| e.len()), Some(12), "{path}: {examples}");
        assert_eq!(examples["33-factura"]["value"]["Encabezado"]["IdDoc"]["TipoDTE"], 33);
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("api-docs.png");
    let out = tokio::task::spawn_blocking({
        let (base, key) = (g.url(""), g.key.clone());
        move || {
            std::process::Command::new("python3")
                .arg(common::repo("tests/tools/docs_browser.py"))
                .args([base.trim_end_matches('/'), &key, RUT])
                .arg(&shot)
                .output()
                .expect("python3 with playwright (scripts/deps test installs it)")
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    assert_eq!(r["operations"].as_u64(), Some(operations as u64), "{r}");
    assert_eq!(r["outside"], serde_json::json!([]), "requests outside the gateway: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "console errors: {r}");
    assert_eq!(r["status"].as_str(), Some("200"), "{r}");
    assert!(r["body"].as_str().is_some_and(|b| b.contains(RUT)), "{r}");
    assert!(std::fs::metadata(dir.path().join("api-docs.png")).is_ok_and(|m| m.len() > 10_000), "a screenshot");
}
