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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_not_served_to_tenants() {
    let g = Gateway::start(sqlite(), 1, &[], 10).await;
    // On the API port there is no /metrics; the metrics listener has it.
    let r = g.http.get(g.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let m = g.http.get(g.servers[0].metrics_url()).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("dte_http_requests_total"), "{m}");
    // Sharing the API port needs a token, and then asks for it.
    let out = Server::refused(&g.db, &[("DTE_GATEWAY_METRICS_BIND", "")], &[]);
    assert!(out.contains("metrics_token"), "{out}");
    let token = "scrape-token-0123456789";
    let s = Server::start(&g.db, &[("DTE_GATEWAY_METRICS_BIND", ""), ("DTE_GATEWAY_METRICS_TOKEN", token)]);
    assert!(s.metrics.is_none());
    let r = g.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = g.http.get(s.url("/metrics")).bearer_auth(&g.admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "an API key is not the metrics token");
    let r = g.http.get(s.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("dte_http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_trickled_in_is_cut_after_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = Gateway::start(sqlite(), 1, &[("DTE_GATEWAY_BODY_READ_TIMEOUT_MS", "1500")], 10).await;
    let addr = g.servers[0].base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/tax/quote HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n",
        g.key
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // One byte a second, as long as the server keeps listening (at most 20 s).
    for _ in 0..20 {
        if sock.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(6), "cut after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_keys_event_stream_is_closed_and_streams_end_after_their_lifetime() {
    use futures_util::StreamExt;
    let g = Gateway::start(
        sqlite(),
        1,
        &[
            ("DTE_GATEWAY_EVENT_STREAM_RECHECK_MS", "300"),
            ("DTE_GATEWAY_EVENT_STREAM_MAX_SECONDS", "4"),
            // The slowest revocation poll allowed: the revoking instance must not wait for it.
            ("DTE_GATEWAY_REVOCATION_POLL_MS", "1000"),
        ],
        3,
    )
    .await;
    // 3 folios for 5 documents: the batch stays open (two items wait for a CAF).
    let rows = common::batch::csv(&[RUT], 5, 1);
    let (s, b) = common::batch::submit(&g, &g.admin, rows.into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let events = format!("/v1/batches/{}/events", b["id"].as_str().unwrap());
    let (s, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let (reader, key_id) = (k["key"].as_str().unwrap().to_string(), k["id"].as_str().unwrap().to_string());
    let open = |key: String| {
        let (http, url) = (g.http.clone(), g.url(&events));
        async move { http.get(url).bearer_auth(key).send().await.unwrap() }
    };
    // Ends by itself after its lifetime, telling the client to reconnect.
    let started = std::time::Instant::now();
    let body =
        tokio::time::timeout(Duration::from_secs(20), open(g.admin.clone()).await.text()).await.unwrap().unwrap();
    assert!(body.contains("event: reconnect"), "{body}");
    assert!(body.contains("\nid: ") || body.starts_with("id: "), "{body}");
    assert!(started.elapsed() >= Duration::from_secs(3), "ended early: {:?}", started.elapsed());

    // Revoked while open: closed within a few re-checks.
    let r = open(reader.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("progress"));
    let (s, b) = g.send("DELETE", &format!("/v1/keys/{key_id}"), &g.admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    // Refused at once by the instance that revoked it.
    let (s, _) = g.send("GET", &events, &reader, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let revoked_at = std::time::Instant::now();
    let mut rest = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("no longer valid"), "{rest}");
    assert!(revoked_at.elapsed() < Duration::from_secs(3), "closed after {:?}", revoked_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_keys_is_rate_limited_per_address_and_headers_are_safe() {
    let g = Gateway::start(sqlite(), 1, &[("DTE_GATEWAY_AUTH_FAILURES_PER_MINUTE", "10")], 10).await;
    // A response that shows a secret is never cached.
    let r = g
        .http
        .post(g.url("/v1/keys"))
        .bearer_auth(&g.admin)
        .json(&json!({"company": RUT, "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");

    // A client of that address in use just before (its key is known to this instance).
    assert_eq!(g.send("GET", &format!("/v1/companies/{RUT}"), &g.key, None).await.0, StatusCode::OK);
    let mut codes = Vec::new();
    for i in 0..15 {
        let (s, _) = g.send("GET", &format!("/v1/companies/{RUT}"), &format!("dgw_guess_{i}"), None).await;
        codes.push(s.as_u16());
    }
    assert_eq!(&codes[..10], &[401; 10], "{codes:?}");
    assert_eq!(&codes[10..], &[429; 5], "{codes:?}");
    let r = g.http.get(g.url(&format!("/v1/companies/{RUT}"))).bearer_auth("dgw_guess_x").send().await.unwrap();
    assert!(r.headers().get("retry-after").is_some());
    // A key in use from that address goes on working meanwhile.
    let (s, b) = g.send("GET", &format!("/v1/companies/{RUT}"), &g.key, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Headers: every response; a CSP on HTML; no-store where a secret is shown.
    let r = g.http.get(g.url("/docs")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let r = g.http.get(g.url("/health/live")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_huge_document_in_a_batch_is_refused_at_its_first_excess_line_in_bounded_memory() {
    let g = Gateway::start(sqlite(), 1, &[("DTE_GATEWAY_BATCH_MAX_BYTES", "52428800")], 10).await;
    let pid = g.servers[0].pid().expect("pid");
    let (s, _) =
        common::batch::submit(&g, &g.admin, common::batch::csv(&[RUT], 1, 1).into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let idle = rss_mb(pid);
    // 10 MB of rows, all of one Documento.
    let mut csv = common::batch::csv(&[RUT], 1, 1);
    let row = common::batch::csv_row(0, RUT, 1);
    while csv.len() < 10 << 20 {
        csv.push_str(&row);
    }
    let (s, b) = common::batch::submit(&g, &g.admin, csv.into_bytes(), "text/csv", "").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::BAD_REQUEST, Some("/problems/invalid-batch")), "{b}");
    assert_eq!(b["errors"][0]["path"], "line 62", "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("more than 60 Detalle lines"), "{b}");
    // One JSON item of 10 MB.
    let item = json!([{"company": RUT, "document": {"Detalle": [{"NmbItem": "x".repeat(10 << 20)}]}}]);
    let (s, b) = common::batch::submit(&g, &g.admin, serde_json::to_vec(&item).unwrap(), "application/json", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["errors"][0]["code"], "too-large", "{b}");
    let grown = rss_mb(pid) - idle;
    assert!(grown < 50.0, "the server grew {grown:.1} MB over its idle {idle:.1} MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_csv_cells_are_spreadsheet_safe() {
    use std::io::Read;
    let g = Gateway::start(sqlite(), 1, &[], 10).await;
    let formula = "=HYPERLINK(\"http://attacker.example/\",\"abrir\")";
    let items = json!([
        {"company": RUT, "reference": formula, "document": common::gateway::factura("uno", 1000)},
        {"company": RUT, "reference": "@SUM(1+1)", "document": {"Encabezado": {"IdDoc": {"TipoDTE": 33}}}},
    ]);
    let (s, b) = common::batch::submit(&g, &g.admin, serde_json::to_vec(&items).unwrap(), "application/json", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    common::batch::wait_for(&g, &g.admin, &id, Duration::from_secs(60), |v| v["complete"] == true).await;
    let zip = g
        .http
        .get(g.url(&format!("/v1/batches/{id}/results.zip")))
        .bearer_auth(&g.admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let mut report = String::new();
    archive.by_name("report.csv").unwrap().read_to_string(&mut report).unwrap();
    let mut rows = csv::Reader::from_reader(report.as_bytes());
    let refs: Vec<String> = rows.records().map(|r| r.unwrap()[1].to_string()).collect();
    assert_eq!(refs, vec![format!("'{formula}"), "'@SUM(1+1)".to_string()], "{report}");
    assert!(report.lines().skip(1).all(|l| !l.starts_with('=') && !l.contains(",=")), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_files_are_for_the_owner_only() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut child = common::bin()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DTE_GATEWAY_CONFIG", "/dev/null")
        .env("DTE_GATEWAY_DATA_DIR", &data)
        .env("DTE_GATEWAY_METRICS_BIND", "127.0.0.1:0")
        .env("DTE_GATEWAY_SII_WORKERS", "false")
        .env_remove("DTE_GATEWAY_MASTER_KEY")
        .env_remove("DTE_GATEWAY_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("listening on "));
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    let modes: Vec<(String, u32)> = ["", "master.key", "dte-gateway.sqlite", "dte-gateway.sqlite-wal"]
        .iter()
        .map(|f| (f.to_string(), mode(&data.join(f))))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the server did not start");
    assert_eq!(
        modes,
        vec![
            (String::new(), 0o700),
            ("master.key".into(), 0o600),
            ("dte-gateway.sqlite".into(), 0o600),
            ("dte-gateway.sqlite-wal".into(), 0o600)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totals_past_eighteen_digits_are_a_422_naming_the_field_and_take_no_folio() {
    let g = Gateway::start(sqlite(), 1, &[], 10).await;
    let mut doc = common::gateway::factura("grande", 1);
    doc["Detalle"][0]["QtyItem"] = json!(999_999_999_999u64);
    doc["Detalle"][0]["PrcItem"] = json!(999_999_999_999u64);
    let (s, b) = g.issue(0, &doc, None).await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/invalid-document")), "{b}");
    let paths: Vec<&str> = b["errors"].as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
    assert!(paths.contains(&"Detalle[0].MontoItem") && paths.contains(&"Encabezado.Totales.MntTotal"), "{b}");
    assert!(b["errors"].as_array().unwrap().iter().all(|e| e["code"] == "out-of-range"), "{b}");
    let (s, b) = g.send("POST", "/v1/tax/quote", &g.key, Some(doc)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // The largest that fits is issued.
    let mut fits = common::gateway::factura("justo", 1);
    fits["Detalle"][0]["QtyItem"] = json!(1);
    fits["Detalle"][0]["PrcItem"] = json!(999_999_999_999u64);
    let (s, b) = g.issue(0, &fits, None).await;
    assert_eq!((s, b["folio"].as_u64()), (StatusCode::CREATED, Some(1)), "{b}");
}
