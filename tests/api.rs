//! The HTTP API on real servers, on SQLite and on PostgreSQL.

mod common;

use common::gateway::{caf_xml, factura, Gateway, RUT};
use common::server::{postgres, sqlite, Db};
use common::{repo, xmlsec1_verify};
use reqwest::StatusCode;
use serde_json::json;

async fn flow(db: Db) {
    let g = Gateway::start(db, 1, &[], 1000).await;
    // Issue, then fetch metadata and the signed XML.
    let (s, b) = g.issue(0, &factura("Servicio de prueba", 1000), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!((b["folio"].as_i64(), b["mnt_total"].as_i64()), (Some(1), Some(1190)));
    assert!(b["ted"].as_str().unwrap_or_default().starts_with("<TED version=\"1.0\">"));
    let (s, m) = g.send("GET", &format!("/v1/companies/{RUT}/documents/33/1"), &g.key, None).await;
    assert_eq!((s, m["state"].as_str()), (StatusCode::OK, Some("issued")), "{m}");
    let resp =
        g.http.get(g.url(&format!("/v1/companies/{RUT}/documents/33/1/xml"))).bearer_auth(&g.key).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/xml; charset=ISO-8859-1");
    let xml = resp.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.xml");
    std::fs::write(&f, &xml).unwrap();
    assert!(xmlsec1_verify(&f, "http://www.sii.cl/SiiDte:Documento", None).status.success());

    // Verify endpoint on the stored XML.
    let (s, v) = g.raw("POST", "/v1/verify", &g.key, xml.to_vec(), "application/xml").await;
    assert_eq!((s, v["passed"].as_bool()), (StatusCode::OK, Some(true)), "{v}");

    // More documents; list with filters and pagination.
    for i in 0..4 {
        let (s, b) = g.issue(0, &factura(&format!("Item {i}"), 100 + i), None).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, page) = g.send("GET", &format!("/v1/companies/{RUT}/documents?tipo=33&limit=2"), &g.key, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["folio"].as_i64(), Some(5), "newest first");
    let next = page["next"].as_i64().unwrap();
    let (_, page2) =
        g.send("GET", &format!("/v1/companies/{RUT}/documents?tipo=33&limit=2&before={next}"), &g.key, None).await;
    assert_eq!(page2["items"][0]["folio"].as_i64(), Some(3));
    let today = chrono::Local::now().date_naive();
    let (_, none) =
        g.send("GET", &format!("/v1/companies/{RUT}/documents?from={}", today.succ_opt().unwrap()), &g.key, None).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let (_, none) = g.send("GET", &format!("/v1/companies/{RUT}/documents?tipo=39"), &g.key, None).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    assert_eq!(g.all_documents().await.len(), 5);

    // CAF listing shows where it stands.
    let cafs = g.cafs().await;
    assert_eq!((cafs[0]["next_folio"].as_i64(), cafs[0]["folios_left"].as_i64()), (Some(6), Some(995)), "{cafs}");

    // Certificate metadata only.
    let (s, c) = g.send("GET", &format!("/v1/companies/{RUT}/certificate"), &g.key, None).await;
    assert_eq!((s, c["holder_rut"].as_str()), (StatusCode::OK, Some("11111111-1")), "{c}");
    assert!(c.get("pkcs12").is_none() && c.get("password").is_none());

    // Quote takes no folio.
    let (s, q) = g.send("POST", "/v1/tax/quote", &g.key, Some(factura("x", 1000))).await;
    assert_eq!((s, q["MntTotal"].as_f64()), (StatusCode::OK, Some(1190.0)), "{q}");
    assert_eq!(g.cafs().await[0]["next_folio"].as_i64(), Some(6));

    // OpenAPI and docs are served.
    let spec: serde_json::Value = g.http.get(g.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/v1/companies/{rut}/documents"]["post"].is_object());
    assert_eq!(g.http.get(g.url("/docs")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(g.http.get(g.url("/health/ready")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_on_sqlite() {
    flow(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_on_postgres() {
    flow(postgres()).await;
}

async fn idempotency(db: Db) {
    let g = Gateway::start(db, 1, &[], 1000).await;
    let doc = factura("Idempotente", 5000);
    let (s1, b1) = g.issue(0, &doc, Some("order-1")).await;
    let (s2, b2) = g.issue(0, &doc, Some("order-1")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(b1, b2, "a replay returns the first response");
    let (s3, b3) = g.issue(0, &factura("Otra cosa", 1), Some("order-1")).await;
    assert_eq!(
        (s3, b3["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/idempotency-key-reused")),
        "{b3}"
    );
    // Concurrent duplicates: one document, one folio, the same answer for all.
    let doc2 = factura("Concurrente", 7000);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (g2, d) = (g.http.clone(), doc2.clone());
        let (url, key) = (g.url(&format!("/v1/companies/{RUT}/documents")), g.key.clone());
        set.spawn(async move {
            let r = g2.post(url).bearer_auth(key).header("idempotency-key", "order-2").json(&d).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        });
    }
    let mut folios = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let (s, b) = r.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{b}");
        folios.insert(b["folio"].as_i64().unwrap());
    }
    assert_eq!(folios.len(), 1, "{folios:?}");
    assert_eq!(g.all_documents().await.len(), 2);
    assert_eq!(g.cafs().await[0]["next_folio"].as_i64(), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_on_sqlite() {
    idempotency(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_on_postgres() {
    idempotency(postgres()).await;
}

async fn bad_input_changes_nothing(db: Db) {
    let g = Gateway::start(db, 1, &[], 1000).await;
    let docs_path = format!("/v1/companies/{RUT}/documents");
    let snapshot = async || (g.all_documents().await.len(), g.cafs().await);
    let before = snapshot().await;
    let problem = |s: StatusCode, b: &serde_json::Value, status: u16, kind: &str| {
        assert_eq!(s.as_u16(), status, "{b}");
        assert_eq!(b["type"].as_str(), Some(kind), "{b}");
        assert_eq!(b["status"].as_u64(), Some(status as u64));
    };
    let (s, b) = g.raw("POST", &docs_path, &g.key, b"{\"Encabezado\": ".to_vec(), "application/json").await;
    problem(s, &b, 400, "/problems/malformed-input");
    let mut wrong = factura("x", 1);
    wrong["Detalle"][0]["QtyItem"] = json!("uno");
    let (s, b) = g.send("POST", &docs_path, &g.key, Some(wrong)).await;
    problem(s, &b, 422, "/problems/invalid-document");
    assert_eq!(b["errors"][0]["path"].as_str(), Some("Detalle[0].QtyItem"), "{b}");
    let mut bad_rut = factura("x", 1);
    bad_rut["Encabezado"]["Receptor"]["RUTRecep"] = json!("76555835-3");
    let (s, b) = g.send("POST", &docs_path, &g.key, Some(bad_rut)).await;
    problem(s, &b, 422, "/problems/invalid-document");
    assert_eq!(b["errors"][0]["code"].as_str(), Some("rut-check-digit"));
    let big = vec![b' '; 20 * 1024 * 1024];
    let (s, b) = g.raw("POST", &docs_path, &g.key, big, "application/json").await;
    problem(s, &b, 413, "/problems/payload-too-large");
    // CAFs: tampered, another company's.
    let tampered = caf_xml(33, 5000, 5100, RUT).replace("<H>5100</H>", "<H>9100</H>");
    let (s, b) =
        g.raw("POST", &format!("/v1/companies/{RUT}/cafs"), &g.admin, tampered.into_bytes(), "application/xml").await;
    problem(s, &b, 422, "/problems/caf-signature");
    let other = caf_xml(33, 5000, 5100, "76555835-2");
    let (s, b) =
        g.raw("POST", &format!("/v1/companies/{RUT}/cafs"), &g.admin, other.into_bytes(), "application/xml").await;
    problem(s, &b, 422, "/problems/caf-wrong-company");
    // Wrong certificate password.
    let p12 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(repo("certs/test-company.p12")).unwrap(),
    );
    let (s, b) = g
        .send(
            "PUT",
            &format!("/v1/companies/{RUT}/certificate"),
            &g.admin,
            Some(json!({"pkcs12": p12, "password": "wrong"})),
        )
        .await;
    problem(s, &b, 422, "/problems/certificate-password");
    // XXE to /v1/verify.
    let xxe =
        b"<?xml version=\"1.0\"?><!DOCTYPE DTE [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><DTE>&x;</DTE>".to_vec();
    let (s, b) = g.raw("POST", "/v1/verify", &g.key, xxe, "application/xml").await;
    problem(s, &b, 400, "/problems/bad-request");
    assert!(!b.to_string().contains("root:"));
    assert_eq!(snapshot().await, before, "bad input changed the database");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_sqlite() {
    bad_input_changes_nothing(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_postgres() {
    bad_input_changes_nothing(postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_scopes_revocation_and_rate_limit() {
    let g = Gateway::start(
        postgres(),
        2,
        &[("DTE_GATEWAY_RATE_LIMIT_PER_SECOND", "5"), ("DTE_GATEWAY_RATE_LIMIT_BURST", "10")],
        1000,
    )
    .await;
    let path = format!("/v1/companies/{RUT}/documents");
    // No key, a wrong key.
    let (s, b) = g.send("GET", &path, "", None).await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::UNAUTHORIZED, Some("/problems/unauthorized")));
    assert_eq!(g.send("GET", &path, "dgw_nope", None).await.0, StatusCode::UNAUTHORIZED);
    // A read-only key cannot issue.
    let (_, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let read = k["key"].as_str().unwrap().to_string();
    let (s, b) = g.raw("POST", &path, &read, serde_json::to_vec(&factura("x", 1)).unwrap(), "application/json").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::FORBIDDEN, Some("/problems/forbidden")));
    // A key of another company sees nothing here.
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo("examples/company.json")).unwrap()).unwrap();
    other["RUTEmisor"] = json!("76555835-2");
    assert_eq!(g.send("POST", "/v1/companies", &g.admin, Some(other)).await.0, StatusCode::CREATED);
    let (_, k) =
        g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": "76555835-2", "scopes": ["issue", "read"]}))).await;
    let foreign = k["key"].as_str().unwrap().to_string();
    assert_eq!(g.send("GET", &path, &foreign, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(g.send("GET", &format!("/v1/companies/{RUT}"), &foreign, None).await.0, StatusCode::NOT_FOUND);
    // Revoked on server 0 → refused by server 1 within a second.
    let (_, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let (id, victim) = (k["id"].as_str().unwrap().to_string(), k["key"].as_str().unwrap().to_string());
    assert_eq!(g.raw_on(1, "GET", &path, &victim, vec![], "application/json", None).await.0, StatusCode::OK);
    let (s, _) = g.send("DELETE", &format!("/v1/keys/{id}"), &g.admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let t = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        g.raw_on(1, "GET", &path, &victim, vec![], "application/json", None).await.0,
        StatusCode::UNAUTHORIZED,
        "after {:?}",
        t.elapsed()
    );
    // Rate limit: burst 10, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..30 {
        let r = g.http.get(g.url(&path)).bearer_auth(&g.key).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("no 429 after 30 requests at burst 10");
    assert!(r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_the_old_key_for_the_grace_period() {
    let g = Gateway::start(sqlite(), 1, &[("DTE_GATEWAY_KEY_ROTATION_GRACE_SECONDS", "2")], 100).await;
    let (_, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let (id, old) = (k["id"].as_str().unwrap().to_string(), k["key"].as_str().unwrap().to_string());
    let (s, n) = g.send("POST", &format!("/v1/keys/{id}/rotate"), &g.admin, None).await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    let new = n["key"].as_str().unwrap().to_string();
    let path = format!("/v1/companies/{RUT}");
    assert_eq!(g.send("GET", &path, &old, None).await.0, StatusCode::OK);
    assert_eq!(g.send("GET", &path, &new, None).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(g.send("GET", &path, &old, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(g.send("GET", &path, &new, None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn caf_exhaustion_moves_to_the_next_caf_then_409() {
    let g = Gateway::start(sqlite(), 1, &[], 2).await;
    for f in 1..=2 {
        let (s, b) = g.issue(0, &factura("x", 10), None).await;
        assert_eq!((s, b["folio"].as_i64()), (StatusCode::CREATED, Some(f)), "{b}");
    }
    let (s, b) = g.issue(0, &factura("x", 10), None).await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/caf-exhausted")), "{b}");
    let (s, _) = g
        .raw(
            "POST",
            &format!("/v1/companies/{RUT}/cafs"),
            &g.admin,
            caf_xml(33, 3, 4, RUT).into_bytes(),
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = g.issue(0, &factura("x", 10), None).await;
    assert_eq!((s, b["folio"].as_i64()), (StatusCode::CREATED, Some(3)), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_chain_verifies_and_names_a_tampered_entry() {
    let db = sqlite();
    let g = Gateway::start(db, 1, &[], 100).await;
    for i in 0..3 {
        assert_eq!(g.issue(0, &factura(&format!("a{i}"), 10), None).await.0, StatusCode::CREATED);
    }
    let dir = tempfile::tempdir().unwrap();
    let verify =
        || common::bin().args(["audit", "verify"]).envs(common::server::env(&g.db, dir.path())).output().unwrap();
    let o = verify();
    assert!(o.status.success(), "{}", common::text(&o));
    assert!(common::text(&o).contains("audit chain intact"));
    // Tamper with one entry behind the gateway's back.
    let common::server::Db::Sqlite(d) = &g.db else { unreachable!() };
    let conn = rusqlite::Connection::open(d.path().join("gw.sqlite")).unwrap();
    conn.execute("UPDATE audit SET data = 'forged' WHERE scope = ?1 AND seq = 3", [RUT]).unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", common::text(&o));
    assert!(common::text(&o).contains(&format!("scope {RUT}, seq 3")), "{}", common::text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_https_directly_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let db = sqlite();
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let server = common::server::Server::start(
        &db,
        &[("DTE_GATEWAY_TLS_CERT", c.as_str()), ("DTE_GATEWAY_TLS_KEY", k.as_str())],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let trusted = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(trusted).build().unwrap();
    let r = client.get(server.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::get(server.url("/health/live").replacen("https://", "http://", 1)).await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
}
