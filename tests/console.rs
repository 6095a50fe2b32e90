//! The web console with real parts: a real headless Chromium (Playwright) signs in, uploads a
//! 200-document CSV with the keyboard and watches the bar reach 100 %, downloads the results and a
//! document's PDF (checked by `qpdf`), decides a received document against the simulated RCV, and
//! is refused a revoked key, another company's page and a form without its CSRF token; no request
//! leaves the gateway and no console error is logged. Over plain HTTP: the cookie's flags, the
//! session kept only as a hash, idle and absolute expiry, revocation, and sessions in Redis shared
//! by two instances.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::gateway::{Gateway, RUT};
use common::redis::RedisServer;
use common::server::{self, Db};
use common::sim::SimProcess;
use common::{repo, wait_for};

const BUYER: &str = "76555835-2";
const SUPPLIER: &str = "76192083-9";

async fn start(db: Db, servers: usize, sim: &SimProcess, extra: &[(&str, &str)]) -> Gateway {
    let rcv = format!("{}/WSREGISTRORECLAMODTECERT/registroreclamodteservice", sim.base);
    let mut env = vec![
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_RCV_URL_CERTIFICACION", rcv.as_str()),
        ("DTE_GATEWAY_EXCHANGE_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_RCV_RECHECK_SECONDS", "1"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "300"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
    ];
    env.extend_from_slice(extra);
    Gateway::start(db, servers, &env, 1000).await
}

async fn sim_post(sim: &SimProcess, path: &str, body: Value) -> Vec<u8> {
    let r = reqwest::Client::new().post(format!("{}{path}", sim.base)).json(&body).send().await.expect("sim");
    assert!(r.status().is_success(), "{}", r.status());
    r.bytes().await.expect("body").to_vec()
}

/// A client that follows no redirects and keeps no cookies: each test sees them as they come.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// An HTML form's body.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// The sign-in form's double-submit token (its cookie and its field).
async fn signin_token(http: &reqwest::Client, base: &str) -> (String, String) {
    let (_, value) = signin_cookie(http, base, "dgw_signin").await;
    (value.clone(), value)
}

/// The sign-in form's cookie `name` as set (flags and all) and its value.
async fn signin_cookie(http: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let r = http.get(format!("{base}/console/entrar")).send().await.expect("form");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .expect("sign-in cookie")
        .to_string();
    let value = cookie.split(';').next().unwrap_or("").trim_start_matches(&format!("{name}=")).to_string();
    let html = r.text().await.expect("html");
    assert!(html.contains(&value), "the form carries the cookie's value");
    (cookie, value)
}

/// Signs in over HTTP; returns the session cookie as the server set it.
async fn sign_in(http: &reqwest::Client, base: &str, key: &str) -> (StatusCode, Option<String>) {
    let (cookie, field) = signin_token(http, base).await;
    let r = http
        .post(format!("{base}/console/entrar"))
        .header("cookie", format!("dgw_signin={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", key), ("_csrf", field.as_str())]))
        .send()
        .await
        .expect("sign in");
    let status = r.status();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("dgw_session=") && !c.starts_with("dgw_session=;"))
        .map(String::from);
    (status, session)
}

fn token_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").trim_start_matches("dgw_session=").to_string()
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (StatusCode, String) {
    let r = http.get(url).header("cookie", format!("dgw_session={token}")).send().await.expect("get");
    let status = r.status();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = r.text().await.unwrap_or_default();
    (status, if status == StatusCode::SEE_OTHER { location } else { body })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accountant_uses_the_console_in_a_real_browser() {
    let sim = SimProcess::start(&[]);
    let g = start(server::sqlite(), 1, &sim, &[]).await;
    let buyer_key = g.add_company(BUYER, 10).await;

    // Two supplier documents for the buyer: folio 1 reached the SII now (8 days left), folio 2
    // seven days ago (1 day left: highlighted).
    let ago = (chrono::Local::now().naive_local() - chrono::Duration::days(7)).format("%Y-%m-%dT%H:%M:%S").to_string();
    let envelope = sim_post(&sim, "/sim/supplier-mail", json!({"receptor": BUYER, "dtes": 2, "first_folio": 1})).await;
    sim_post(&sim, "/sim/rcv/documents", json!({"rut_emisor": SUPPLIER, "tipo": 33, "folio": 2, "received_at": ago}))
        .await;
    let (s, b) = g
        .raw(
            "POST",
            &format!("/v1/companies/{BUYER}/received?filename=envio.xml"),
            &buyer_key,
            envelope,
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let doc = |f: i64| format!("/v1/companies/{BUYER}/received/{SUPPLIER}/33/{f}");
    wait_for("the SII's reception dates", Duration::from_secs(30), async || {
        let (_, a) = g.send("GET", &doc(1), &buyer_key, None).await;
        let (_, b) = g.send("GET", &doc(2), &buyer_key, None).await;
        (a["days_left"].as_i64()? == 8 && b["days_left"].as_i64()? <= 2).then_some(())
    })
    .await;

    // A key made and revoked.
    let (s, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let (s, _) = g.send("DELETE", &format!("/v1/keys/{}", k["id"].as_str().unwrap()), &g.admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("facturas.csv");
    std::fs::write(&csv, common::batch::csv(&[RUT], 200, 2)).unwrap();
    // Line 3 (the second document) has a receptor RUT whose check digit is wrong.
    let bad_csv = work.path().join("malos.csv");
    let mut bad = common::batch::csv(&[RUT], 2, 1);
    bad = bad.replacen("76555835-2", "76555835-3", 2).replacen("76555835-3", "76555835-2", 1);
    std::fs::write(&bad_csv, bad).unwrap();
    // A CAF of another company: what the API says of it, the console must say too.
    let bad_caf = work.path().join("otra.xml");
    let other_caf = common::gateway::caf_xml(33, 1, 5, "96790240-3");
    std::fs::write(&bad_caf, &other_caf).unwrap();
    let (s, api_says) = g
        .raw("POST", &format!("/v1/companies/{BUYER}/cafs"), &buyer_key, other_caf.into_bytes(), "application/xml")
        .await;
    assert!(s.is_client_error(), "{api_says}");
    let shots = repo("target/console-screenshots");
    let cfg = json!({
        "base": g.url("").trim_end_matches('/'), "rut": RUT, "buyer_rut": BUYER,
        "issuer": g.key, "buyer": buyer_key, "revoked": k["key"], "csv": csv, "bad_csv": bad_csv, "bad_caf": bad_caf, "shots": shots.join("pages"),
    });
    let cfg_path = work.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(repo("tests/tools/console_browser.py"))
            .arg(&cfg_path)
            .output()
            .expect("python3 with playwright (scripts/deps test installs it)")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");

    assert_eq!(r["redirected_to"], "/console/entrar", "{r}");
    assert_eq!(r["revoked_path"], "/console/entrar", "{r}");
    assert!(r["revoked_message"].as_str().is_some_and(|m| m.contains("revocada")), "{r}");
    assert_eq!(r["issuer_path"], format!("/console/c/{RUT}"), "{r}");
    assert_eq!(r["other_company_status"], 404, "{r}");
    assert_eq!((r["csrf_missing_status"].as_u64(), r["csrf_wrong_status"].as_u64()), (Some(403), Some(403)), "{r}");
    assert_eq!(r["all_or_nothing_checked"], true, "{r}");
    assert_eq!(r["bar"], json!([200, 200]), "{r}");
    assert!(r["bar_text"].as_str().is_some_and(|t| t.starts_with("100%")), "{r}");
    assert_eq!(r["event_stream"], json!(["text/event-stream"]), "the bar is fed by the event stream: {r}");
    // One XML per document plus the report.
    assert!(r["results_entries"].as_u64().is_some_and(|n| n > 200), "{r}");
    assert!(r["dropped"].as_str().is_some_and(|t| t.contains("malos.csv")), "{r}");
    let rows = r["refused_rows"].as_array().expect("error rows");
    assert_eq!(rows.len(), 1, "{r}");
    assert!(
        rows[0].as_str().is_some_and(|t| t.starts_with("line 3") && t.contains("RUTRecep")),
        "the line and field of the error: {r}"
    );
    assert!(r["refused_message"].as_str().is_some_and(|t| !t.is_empty()), "{r}");
    let caf_message = r["caf_message"].as_str().unwrap_or_default();
    assert!(caf_message.contains(api_says["detail"].as_str().expect("detail")), "{caf_message} / {api_says}");
    assert!(r["document_path"].as_str().is_some_and(|p| p.starts_with(&format!("/console/c/{RUT}/documentos/33/"))));
    let pdf = r["pdf"].as_str().expect("pdf path");
    assert!(std::fs::read(pdf).is_ok_and(|b| b.starts_with(b"%PDF-")), "a PDF");
    let qpdf = std::process::Command::new("qpdf").arg("--check").arg(pdf).output().expect("qpdf");
    assert!(qpdf.status.success(), "{}", String::from_utf8_lossy(&qpdf.stdout));
    assert_eq!(r["after_signout"], "/console/entrar", "{r}");
    assert_eq!(r["urgent_rows"], json!(["2"]), "{r}");
    assert_eq!(r["decided_path"], format!("/console/c/{BUYER}/recibidos"), "{r}");
    assert!(r["decided_message"].as_str().is_some_and(|m| m.contains("ACD")), "{r}");
    assert_eq!((r["new_key_shown"].as_bool(), r["key_shown_again"].as_bool()), (Some(true), Some(false)), "{r}");
    assert_eq!(r["phone_overflow"], false, "{r}");
    assert_eq!(r["outside"], json!([]), "requests outside the gateway: {r}");
    assert_eq!(r["errors"], json!([]), "console errors: {r}");
    assert_eq!(r["unlabeled"], json!([]), "controls without a label: {r}");

    // What the browser did went through the same services as the API.
    let (_, d) = g.send("GET", &doc(1), &buyer_key, None).await;
    assert_eq!((d["state"].as_str(), d["decision"].as_str()), (Some("accepted"), Some("ACD")), "{d}");
    let states = g.states(RUT, &g.key).await;
    assert_eq!(states.values().sum::<usize>(), 200, "{states:?}");

    // Screenshots for the README, when asked for.
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let to = repo("docs/console");
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(shots.join("pages")).unwrap().flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn sessions_are_kept_as_hashes_and_end_when_idle_when_old_and_with_their_key() {
    let g = Gateway::start(server::sqlite(), 1, &[], 10).await;
    let http = client();
    let base = g.url("").trim_end_matches('/').to_string();

    // The form is refused without its double-submit token.
    let r = http
        .post(format!("{base}/console/entrar"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", g.key.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (s, cookie) = sign_in(&http, &base, "dgw_not-a-key").await;
    assert_eq!((s, cookie), (StatusCode::UNAUTHORIZED, None));

    let (s, cookie) = sign_in(&http, &base, &g.key).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("session cookie");
    let lower = cookie.to_ascii_lowercase();
    assert!(lower.contains("httponly") && lower.contains("samesite=strict") && lower.contains("path=/"), "{cookie}");
    assert!(!lower.contains("secure"), "plain HTTP: {cookie}");
    let token = token_of(&cookie);
    let (s, page) = get(&http, &format!("{base}/console/c/{RUT}"), &token).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Folios disponibles"));

    // Only the token's SHA-256 is in the database.
    let Db::Sqlite(dir) = &g.db else { unreachable!() };
    let db = rusqlite::Connection::open(dir.path().join("gw.sqlite")).unwrap();
    let stored: Vec<String> = db
        .prepare("SELECT id_hash FROM console_sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored, vec![dte_gateway::crypto::sha256_hex(token.as_bytes())]);

    // Idle for 31 minutes: back to the sign-in, and the session is gone.
    db.execute("UPDATE console_sessions SET last_seen = '2020-01-01T00:00:00Z'", []).unwrap();
    let (s, to) = get(&http, &format!("{base}/console/c/{RUT}"), &token).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/console/entrar"));
    let left: i64 = db.query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);

    // Past its absolute end, however recently used.
    let (_, cookie) = sign_in(&http, &base, &g.key).await;
    let token = token_of(&cookie.unwrap());
    db.execute("UPDATE console_sessions SET expires_at = '2020-01-01T00:00:00Z'", []).unwrap();
    let (s, _) = get(&http, &format!("{base}/console/c/{RUT}"), &token).await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // Revoking the key ends its sessions.
    let (_, cookie) = sign_in(&http, &base, &g.key).await;
    let token = token_of(&cookie.unwrap());
    let (s, _) = get(&http, &format!("{base}/console/c/{RUT}/documentos"), &token).await;
    assert_eq!(s, StatusCode::OK);
    let id =
        db.query_row("SELECT key_id FROM console_sessions", [], |r| r.get::<_, String>(0)).expect("the session's key");
    let (s, _) = g.send("DELETE", &format!("/v1/keys/{id}"), &g.admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, to) = get(&http, &format!("{base}/console/c/{RUT}/documentos"), &token).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/console/entrar"));

    // A key that may only read: no upload, decided before the file is read.
    let (_, ro) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    let (_, cookie) = sign_in(&http, &base, ro["key"].as_str().unwrap()).await;
    let token = token_of(&cookie.unwrap());
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n\r\nDocumento\r\n--b--\r\n";
    let r = http
        .post(format!("{base}/console/lotes"))
        .header("cookie", format!("dgw_session={token}"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // `/` leads to the console.
    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/console"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_session_opened_on_one_instance_works_on_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let g = Gateway::start(
        server::sqlite(),
        2,
        &[("DTE_GATEWAY_CACHE_MODE", "redis"), ("DTE_GATEWAY_REDIS_URLS", url.as_str())],
        10,
    )
    .await;
    let http = client();
    let (a, b) = (g.servers[0].url(""), g.servers[1].url(""));
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let (s, cookie) = sign_in(&http, a, &g.admin).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let token = token_of(&cookie.expect("cookie"));
    // A gateway-wide key sees the list of companies, on the other instance.
    let (s, page) = get(&http, &format!("{b}/console"), &token).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains(RUT), "{page}");

    // The session is in Redis under its own key space, by hash; not in the database.
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*console-session*").query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&dte_gateway::crypto::sha256_hex(token.as_bytes())), "{keys:?}");
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 30 * 60, "idle expiry as the TTL: {ttl}");
    let Db::Sqlite(dir) = &g.db else { unreachable!() };
    let db = rusqlite::Connection::open(dir.path().join("gw.sqlite")).unwrap();
    let rows: i64 = db.query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);

    // Signing out on the first instance ends it on the second.
    let (_, page) = get(&http, &format!("{a}/console/lotes"), &token).await;
    let csrf =
        page.split("name=\"_csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf").to_string();
    let r = http
        .post(format!("{a}/console/salir"))
        .header("cookie", format!("dgw_session={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("_csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (s, to) = get(&http, &format!("{b}/console"), &token).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/console/entrar"));
}

#[tokio::test]
async fn behind_https_the_cookies_are_secure_and_host_only() {
    let g = Gateway::start(server::sqlite(), 1, &[("DTE_GATEWAY_CONSOLE_SECURE_COOKIES", "true")], 10).await;
    let http = client();
    let base = g.url("").trim_end_matches('/').to_string();
    let (cookie, value) = signin_cookie(&http, &base, "__Host-dgw_signin").await;
    assert!(cookie.to_ascii_lowercase().contains("; secure"), "{cookie}");
    // The plain name is not taken for the prefixed one.
    let r = http
        .post(format!("{base}/console/entrar"))
        .header("cookie", format!("dgw_signin={value}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", g.key.as_str()), ("_csrf", value.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{base}/console/entrar"))
        .header("cookie", format!("__Host-dgw_signin={value}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", g.key.as_str()), ("_csrf", value.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-dgw_session="))
        .expect("session cookie")
        .to_string();
    let lower = session.to_ascii_lowercase();
    assert!(lower.contains("; secure") && lower.contains("path=/") && !lower.contains("domain="), "{session}");
    let token = session.split(';').next().unwrap().trim_start_matches("__Host-dgw_session=").to_string();
    let page = |name: &'static str| {
        http.get(format!("{base}/console/c/{RUT}")).header("cookie", format!("{name}={token}")).send()
    };
    assert_eq!(page("__Host-dgw_session").await.unwrap().status(), StatusCode::OK);
    assert_eq!(page("dgw_session").await.unwrap().status(), StatusCode::SEE_OTHER);
}
