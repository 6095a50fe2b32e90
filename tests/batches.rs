//! Batches end to end on real servers: CSV for three companies through to the SII simulator with
//! progress over Server-Sent Events, `kill -9` half-way on both queue backends, a poison item through
//! the dead letters and back, uploads refused whole, results.zip checked by xmlsec1, and the peak
//! memory of a 100 000-line CSV.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::batch::{count, csv, items, status, submit, wait_for};
use common::gateway::{caf_xml, factura, Gateway, RUT};
use common::redis::RedisServer;
use common::server::{postgres, sqlite, Server};
use common::sim::SimProcess;

const COMPANIES: [&str; 3] = [RUT, "76555835-2", "76177907-9"];

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("DTE_GATEWAY_RATE_LIMIT_PER_SECOND", "100000"),
        ("DTE_GATEWAY_RATE_LIMIT_BURST", "100000"),
        ("DTE_GATEWAY_BATCH_WORKERS", "4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, val) in pairs {
        v.retain(|(key, _)| key != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect()
}

/// Every item issued once: per company the stored folios are exactly 1..=n, and the items' folios
/// are those, each once.
async fn assert_exactly_once(g: &Gateway, id: &str, companies: &[&str], keys: &[String]) {
    let all = items(g, &g.admin, id).await;
    let mut by_company: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for it in &all {
        assert_eq!(it["state"], "issued", "{it}");
        by_company.entry(it["company"].as_str().unwrap().to_string()).or_default().push(it["Folio"].as_i64().unwrap());
    }
    for (rut, key) in companies.iter().zip(keys) {
        let mut folios = by_company.remove(*rut).unwrap_or_default();
        folios.sort();
        let n = folios.len() as i64;
        assert_eq!(folios, (1..=n).collect::<Vec<_>>(), "{rut}: item folios not 1..={n} once each");
        let mut stored = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let (_, b) = g.send("GET", &format!("/v1/companies/{rut}/documents?limit=500{q}"), key, None).await;
            stored.extend(b["items"].as_array().unwrap().iter().map(|d| d["folio"].as_i64().unwrap()));
            match b["next"].as_i64() {
                Some(x) => before = Some(x),
                None => break,
            }
        }
        stored.sort();
        assert_eq!(stored, (1..=n).collect::<Vec<_>>(), "{rut}: stored folios are not the items' folios");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csv_batch_of_three_companies_goes_to_the_sii_with_progress_events() {
    let redis = RedisServer::start();
    let sim = SimProcess::start(&["--processing-ms", "300"]);
    let e = env(&[
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", &sim.base),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", &sim.base),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", &sim.base),
        ("DTE_GATEWAY_CACHE_MODE", "tiered"),
        ("DTE_GATEWAY_REDIS_URLS", &redis.url()),
        ("DTE_GATEWAY_QUEUE_MODE", "redis"),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "300"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
    ]);
    let g = Gateway::start(postgres(), 2, &refs(&e), 100_000).await;
    let mut keys = vec![g.key.clone()];
    for rut in &COMPANIES[1..] {
        keys.push(g.add_company(rut, 100_000).await);
    }
    // The second company's system listens for its events.
    let rx = common::hooks::Receiver::start(0).await;
    let (s, b) = g
        .send("POST", &format!("/v1/companies/{}/webhooks", COMPANIES[1]), &g.admin, Some(json!({"url": rx.url})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let docs = 150;
    let body = csv(&COMPANIES, docs, 2).into_bytes();
    let (s, b) = g.raw_on(0, "POST", "/v1/batches", &g.admin, body.clone(), "text/csv", Some("marzo")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["total"], docs);
    // The same upload again with the same key (a client retry), on the other instance: same batch.
    let (s, again) = g.raw_on(1, "POST", "/v1/batches", &g.admin, body, "text/csv", Some("marzo")).await;
    assert_eq!((s, again["id"].as_str()), (StatusCode::ACCEPTED, Some(id.as_str())), "{again}");

    // Server-Sent Events from the other instance: progress events, then `complete`.
    let events =
        g.http.get(g.servers[1].url(&format!("/v1/batches/{id}/events"))).bearer_auth(&g.admin).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut events = events;
    let mut text = String::new();
    let start = Instant::now();
    while !text.contains("event: complete") {
        assert!(start.elapsed() < Duration::from_secs(120), "no complete event: {text}");
        match tokio::time::timeout(Duration::from_secs(30), events.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the event stream ended early ({other:?}): {text}"),
        }
    }
    let progress: Vec<Value> = text
        .split("\n\n")
        // Each event carries an id (items settled so far) for `Last-Event-ID`.
        .filter_map(|ev| {
            ev.strip_prefix("id: ").and_then(|e| e.split_once("\nevent: progress\ndata: ")).map(|(_, d)| d)
        })
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(progress.len() >= 2, "several progress events: {text}");
    let last: Value = serde_json::from_str(text.split("event: complete\ndata: ").nth(1).unwrap().trim()).unwrap();
    assert_eq!(last["state"], "complete");
    assert_eq!(count(&last, "items", "issued"), docs as u64, "{last}");
    assert_eq!(count(&last, "documents", "accepted"), docs as u64, "{last}");

    // Its webhook was told once that its part of the batch was issued.
    let start = Instant::now();
    let batch_events = loop {
        let got: Vec<Value> = rx
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .filter(|v| v["type"] == "batch.issued")
            .collect();
        if !got.is_empty() || start.elapsed() > Duration::from_secs(30) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(batch_events.len(), 1, "{batch_events:?}");
    let ev = &batch_events[0];
    assert_eq!((ev["batch"].as_str(), ev["company"].as_str()), (Some(id.as_str()), Some(COMPANIES[1])), "{ev}");
    assert_eq!(ev["items"]["issued"], docs / 3, "{ev}");

    let counters = sim.counters().await;
    let accepted = counters["accepted"].as_object().unwrap();
    assert_eq!(accepted.len(), docs, "{counters}");
    let listed =
        common::bin().args(["batch", "list", "--server", &g.servers[1].base, "--key", &g.admin]).output().unwrap();
    assert!(common::text(&listed).starts_with(&format!("{id}\t")), "{}", common::text(&listed));
    assert!(accepted.values().all(|v| v.as_u64() == Some(1)), "{counters}");
    assert_exactly_once(&g, &id, &COMPANIES, &keys).await;

    // results.zip: every signed XML and the report, with the SII's verdicts.
    let zip = g.http.get(g.url(&format!("/v1/batches/{id}/results.zip"))).bearer_auth(&g.admin).send().await.unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    let bytes = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(archive.len(), docs + 1);
    let mut report = String::new();
    archive.by_name("report.csv").unwrap().read_to_string(&mut report).unwrap();
    let rows: Vec<&str> = report.lines().collect();
    assert_eq!(rows.len(), docs + 1);
    assert!(rows[0].starts_with("index,reference,company,source,TipoDTE,Folio,MntNeto,MntExe,IVA,MntTotal,state"));
    assert!(rows[1..].iter().all(|r| r.contains(",issued,accepted,")), "{report}");
    assert!(rows[1].contains(",OC-0,") && rows[1].contains(",line 2,"), "{}", rows[1]);
}

/// Submits `docs` facturas, kills the only instance as soon as the first are issued (so the kill lands
/// while blocks are being issued and far from the end, however fast the machine), restarts it and
/// checks the batch completes with every item issued exactly once.
async fn killed_half_way(g: &mut Gateway, e: &[(String, String)], docs: usize) {
    // Submitted through the command line (which sends an Idempotency-Key).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("facturas.csv");
    std::fs::write(&file, csv(&[RUT], docs, 1)).unwrap();
    let out = common::bin()
        .args(["batch", "submit"])
        .arg(&file)
        .args(["--server", &g.servers[0].base, "--key", &g.admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let at_kill =
        wait_for(g, &g.admin.clone(), &id, Duration::from_secs(120), |v| count(v, "items", "issued") >= 1).await;
    g.servers[0].kill9();
    let issued_at_kill = count(&at_kill, "items", "issued");
    assert!(issued_at_kill < docs as u64, "killed too late: {at_kill}");
    g.servers[0] = Server::start(&g.db, &refs(e));
    let done =
        wait_for(g, &g.admin.clone(), &id, Duration::from_secs(180), |v| v["complete"].as_bool() == Some(true)).await;
    assert_eq!(count(&done, "items", "issued"), docs as u64, "{done}");
    assert_eq!(count(&done, "items", "failed") + count(&done, "items", "dead"), 0, "{done}");
    eprintln!("killed at {issued_at_kill}/{docs} issued; completed after the restart");
    assert_exactly_once(g, &id, &[RUT], std::slice::from_ref(&g.key)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_half_way_memory_queue_on_sqlite_completes_exactly_once() {
    let e = env(&[]);
    let mut g = Gateway::start(sqlite(), 1, &refs(&e), 100_000).await;
    killed_half_way(&mut g, &e, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_half_way_redis_streams_on_postgres_completes_exactly_once() {
    let redis = RedisServer::start();
    let e = env(&[
        ("DTE_GATEWAY_QUEUE_MODE", "redis"),
        ("DTE_GATEWAY_REDIS_URLS", &redis.url()),
        ("DTE_GATEWAY_BATCH_VISIBILITY_MS", "2000"),
    ]);
    let mut g = Gateway::start(postgres(), 1, &refs(&e), 100_000).await;
    killed_half_way(&mut g, &e, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_losing_its_data_mid_batch_the_batch_still_completes_exactly_once() {
    let mut redis = RedisServer::start();
    let e = env(&[
        ("DTE_GATEWAY_QUEUE_MODE", "redis"),
        ("DTE_GATEWAY_REDIS_URLS", &redis.url()),
        ("DTE_GATEWAY_BATCH_VISIBILITY_MS", "1000"),
        ("DTE_GATEWAY_BATCH_REQUEUE_AFTER_MS", "3000"),
        // Items waiting for folios must stay in the stream, not go to the dead letters.
        ("DTE_GATEWAY_BATCH_MAX_DELIVERIES", "100000"),
    ]);
    // The CAF holds 150 folios for 400 documents: the batch stops part-way whatever the speed of
    // this machine, with the rest of its messages in Redis, until the next CAF arrives.
    let (docs, first_caf) = (400u64, 150u64);
    let g = Gateway::start(sqlite(), 1, &refs(&e), first_caf).await;
    let ready = |g: &Gateway| {
        let url = g.url("/health/ready");
        let http = g.http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let r = ready(&g).await;
    assert_eq!((r["queue"]["mode"].as_str(), r["queue"]["ok"].as_bool()), (Some("redis"), Some(true)), "{r}");

    let (s, b) = submit(&g, &g.admin, csv(&[RUT], docs as usize, 1).into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let at_kill =
        wait_for(&g, &g.admin, &id, Duration::from_secs(120), |v| count(v, "items", "issued") == first_caf).await;
    assert_eq!(count(&at_kill, "items", "pending"), docs - first_caf, "{at_kill}");
    // Redis dies and comes back empty (no persistence): the stream, its group and messages are gone.
    redis.kill9();
    let r = ready(&g).await;
    assert_eq!((r["status"].as_str(), r["queue"]["ok"].as_bool()), (Some("degraded"), Some(false)), "{r}");
    redis.restart();
    let (s, b) = g
        .raw(
            "POST",
            &format!("/v1/companies/{RUT}/cafs"),
            &g.admin,
            caf_xml(33, first_caf + 1, docs, RUT).into_bytes(),
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let done = wait_for(&g, &g.admin, &id, Duration::from_secs(120), |v| v["complete"].as_bool() == Some(true)).await;
    assert_eq!(count(&done, "items", "issued"), docs, "{done}");
    assert_eq!(count(&done, "items", "failed") + count(&done, "items", "dead"), 0, "{done}");
    assert_exactly_once(&g, &id, &[RUT], std::slice::from_ref(&g.key)).await;
    assert_eq!(ready(&g).await["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_item_goes_to_the_dead_letters_and_replays_after_a_new_caf_memory_queue() {
    let e = env(&[("DTE_GATEWAY_BATCH_MAX_DELIVERIES", "3"), ("DTE_GATEWAY_BATCH_VISIBILITY_MS", "300")]);
    // The memory queue does not survive a restart: the dead letters come back from the store.
    poison(Gateway::start(sqlite(), 1, &refs(&e), 5).await, Loss::Gateway(&e)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_item_goes_to_the_dead_letters_and_replays_after_a_new_caf_redis_streams() {
    let mut redis = RedisServer::start();
    let e = env(&[
        ("DTE_GATEWAY_BATCH_MAX_DELIVERIES", "3"),
        ("DTE_GATEWAY_BATCH_VISIBILITY_MS", "300"),
        ("DTE_GATEWAY_BATCH_REQUEUE_AFTER_MS", "1000"),
        ("DTE_GATEWAY_QUEUE_MODE", "redis"),
        ("DTE_GATEWAY_REDIS_URLS", &redis.url()),
    ]);
    // Redis restarts empty once the items are dead: the dead letters come back from the store.
    poison(Gateway::start(postgres(), 1, &refs(&e), 5).await, Loss::Redis(&mut redis)).await;
}

/// What is lost once the items are dead letters.
enum Loss<'a> {
    /// The gateway restarts (with these settings).
    Gateway(&'a [(String, String)]),
    /// Redis restarts without its data.
    Redis(&'a mut RedisServer),
}

/// 5 folios for 8 documents: the last 3 are valid at intake and fail at issuance.
async fn poison(mut g: Gateway, loss: Loss<'_>) {
    let batch: Vec<Value> = (0..8)
        .map(|i| json!({"company": RUT, "reference": format!("P-{i}"), "document": factura(&format!("poison {i}"), 1000 + i)}))
        .collect();
    let (s, b) = submit(&g, &g.admin, serde_json::to_vec(&batch).unwrap(), "application/json", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let v = wait_for(&g, &g.admin, &id, Duration::from_secs(60), |v| count(v, "items", "pending") == 0).await;
    assert_eq!((count(&v, "items", "issued"), count(&v, "items", "dead")), (5, 3), "{v}");

    match loss {
        Loss::Gateway(e) => {
            g.servers[0].kill9();
            g.servers[0] = Server::start(&g.db, &refs(e));
        }
        Loss::Redis(redis) => {
            redis.restart();
            let start = Instant::now();
            while g.send("GET", "/v1/dead-letters", &g.admin, None).await.1.as_array().map_or(0, |a| a.len()) < 3 {
                assert!(start.elapsed() < Duration::from_secs(30), "the dead letters did not come back");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let (s, dlq) = g.send("GET", "/v1/dead-letters", &g.admin, None).await;
    assert_eq!(s, StatusCode::OK, "{dlq}");
    let dlq = dlq.as_array().unwrap().clone();
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    for d in &dlq {
        assert_eq!(d["batch"], id.as_str());
        assert_eq!(d["deliveries"], 3, "{d}");
        assert!(d["reason"].as_str().unwrap().contains("folios left"), "{d}");
    }
    // Only a gateway admin sees or replays dead letters.
    let (s, _) = g.send("GET", "/v1/dead-letters", &g.key, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, b) = g
        .raw(
            "POST",
            &format!("/v1/companies/{RUT}/cafs"),
            &g.admin,
            caf_xml(33, 6, 20, RUT).into_bytes(),
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // One through the CLI, the rest through the API.
    let first = dlq[0]["id"].as_str().unwrap();
    let out = common::bin()
        .args(["batch", "dlq", "replay", first, "--server", &g.servers[0].base, "--key", &g.admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let (s, b) = g.send("POST", "/v1/dead-letters/replay", &g.admin, None).await;
    assert_eq!((s, b["replayed"].as_u64()), (StatusCode::OK, Some(2)), "{b}");
    let v = wait_for(&g, &g.admin, &id, Duration::from_secs(60), |v| count(v, "items", "issued") == 8).await;
    assert_eq!(v["state"], "complete", "{v}");
    assert!(g.send("GET", "/v1/dead-letters", &g.admin, None).await.1.as_array().unwrap().is_empty());
    // Done, reopened by the replay, done again.
    let listed = g.send("GET", "/v1/batches", &g.admin, None).await.1;
    assert_eq!((listed[0]["id"].as_str(), listed[0]["state"].as_str()), (Some(id.as_str()), Some("done")), "{listed}");
    assert_exactly_once(&g, &id, &[RUT], std::slice::from_ref(&g.key)).await;
}

fn batches_in(g: &Gateway) -> i64 {
    let common::server::Db::Sqlite(dir) = &g.db else { panic!("sqlite only") };
    let c = rusqlite::Connection::open(dir.path().join("gw.sqlite")).unwrap();
    c.query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_are_refused_whole_with_their_lines_and_nothing_is_queued() {
    let e = env(&[("DTE_GATEWAY_BATCH_MAX_BYTES", "52428800")]);
    let g = Gateway::start(sqlite(), 1, &refs(&e), 1000).await;
    let good = csv(&[RUT], 3, 2);
    let refused = |s: StatusCode, b: &Value, path: &str, words: &str| {
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["type"], "/problems/invalid-batch", "{b}");
        let errs = b["errors"].as_array().unwrap();
        assert!(
            errs.iter().any(|e| e["path"] == path && e["message"].as_str().unwrap().contains(words)),
            "expected {path}: {words} in {b}"
        );
    };

    let missing = good.replacen("PrcItem", "Precio", 1);
    let (s, b) = submit(&g, &g.admin, missing.into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("PrcItem"), "{b}");
    assert_eq!(b["errors"][0]["path"], "line 1");

    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let (head, _) = lines[4].rsplit_once(',').unwrap();
    lines[4] = format!("{head},12O0");
    let (s, b) = submit(&g, &g.admin, (lines.join("\n") + "\n").into_bytes(), "text/csv", "").await;
    refused(s, &b, "line 5", "not a number");

    let latin1: Vec<u8> = good.chars().map(|c| u8::try_from(c as u32).unwrap()).collect();
    let (s, b) = submit(&g, &g.admin, latin1.clone(), "text/csv", "").await;
    refused(s, &b, "line 2", "not valid UTF-8");
    // The same bytes declared as ISO-8859-1 are fine.
    let (s, b) = submit(&g, &g.admin, latin1, "text/csv; charset=iso-8859-1", "?all_or_nothing=true").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let latin1_batch = b["id"].as_str().unwrap().to_string();

    let (s, b) =
        submit(&g, &g.admin, b"[{\"company\": \"76192083-9\",\n \"document\": {]".to_vec(), "application/json", "")
            .await;
    refused(s, &b, "line 2, column 15", "key must be a string");

    let (s, b) = submit(&g, &g.admin, b"<xml/>".to_vec(), "application/xml", "").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("/problems/unsupported-media-type")));

    // 60 MB: refused by its declared length, and streamed without one.
    let big = {
        let mut v = good.clone().into_bytes();
        let row = common::batch::csv_row(9, RUT, 0);
        while v.len() < 60 << 20 {
            v.extend_from_slice(row.as_bytes());
        }
        v
    };
    let (s, b) = submit(&g, &g.admin, big.clone(), "text/csv", "").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("/problems/payload-too-large")), "{b}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let r = g
        .http
        .post(g.url("/v1/batches"))
        .bearer_auth(&g.admin)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    // The server may answer 413 and close before the client has sent everything.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    // all_or_nothing: one invalid document refuses the batch, naming it.
    let batch = json!([
        {"company": RUT, "reference": "ok", "document": factura("bien", 1000)},
        {"company": RUT, "reference": "sin receptor", "document": {"Encabezado": {"IdDoc": {"TipoDTE": 33}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1}]}},
    ]);
    let (s, b) =
        submit(&g, &g.admin, serde_json::to_vec(&batch).unwrap(), "application/json", "?all_or_nothing=true").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/batch-rejected")), "{b}");
    assert_eq!(b["errors"][0]["path"], "item 1", "{b}");
    // A key bound to one company cannot slip in another's documents.
    let other = json!([{"company": "76555835-2", "document": factura("ajeno", 1000)}]);
    let (s, _) = submit(&g, &g.key, serde_json::to_vec(&other).unwrap(), "application/json", "").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    assert_eq!(batches_in(&g), 1, "only the ISO-8859-1 batch was taken");
    let v = wait_for(&g, &g.admin, &latin1_batch, Duration::from_secs(60), |v| v["complete"] == true).await;
    assert_eq!(count(&v, "items", "issued"), 3, "{v}");
    let d = g.send("GET", &format!("/v1/companies/{RUT}/documents/33/1"), &g.key, None).await.1;
    assert_eq!(d["state"], "issued", "{d}");

    // A ZIP of JSON files, one of them invalid: the valid ones go on, the invalid one is reported.
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        for i in 0..3 {
            z.start_file(format!("enero/f{i}.json"), o).unwrap();
            z.write_all(
                &serde_json::to_vec(
                    &json!({"company": RUT, "reference": format!("Z-{i}"), "document": factura("zip", 2000 + i)}),
                )
                .unwrap(),
            )
            .unwrap();
        }
        z.start_file("enero/mala.json", o).unwrap();
        z.write_all(&serde_json::to_vec(&batch[1]).unwrap()).unwrap();
        z.finish().unwrap();
    }
    let zip_bytes = buf.into_inner();
    let (s, b) =
        g.raw_on(0, "POST", "/v1/batches", &g.key, zip_bytes.clone(), "application/zip", Some("enero-1")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    // A retry with the same Idempotency-Key and upload gets the same batch; another upload, 422.
    let (s, again) = g.raw_on(0, "POST", "/v1/batches", &g.key, zip_bytes, "application/zip", Some("enero-1")).await;
    assert_eq!((s, again["id"].as_str()), (StatusCode::ACCEPTED, Some(id.as_str())), "{again}");
    let (s, other) = g
        .raw_on(
            0,
            "POST",
            "/v1/batches",
            &g.key,
            serde_json::to_vec(&batch).unwrap(),
            "application/json",
            Some("enero-1"),
        )
        .await;
    assert_eq!(
        (s, other["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/idempotency-key-reused"))
    );
    assert_eq!((count(&b, "items", "failed"), b["errors"][0]["source"].as_str()), (1, Some("enero/mala.json")), "{b}");
    let v = wait_for(&g, &g.key, &id, Duration::from_secs(60), |v| v["complete"] == true).await;
    assert_eq!(count(&v, "items", "issued"), 3, "{v}");

    // Lists: a gateway admin sees every batch, a company key the ones it submitted.
    let (_, all) = g.send("GET", "/v1/batches", &g.admin, None).await;
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str(), latin1_batch.as_str()], "newest first: {all}");
    let (_, own) = g.send("GET", "/v1/batches", &g.key, None).await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own[0]["href"], format!("/v1/batches/{id}"));

    // results.zip through the CLI; each XML passes xmlsec1.
    let dir = tempfile::tempdir().unwrap();
    let out_zip = dir.path().join("r.zip");
    let out = common::bin()
        .args(["batch", "results", &id, "-o"])
        .arg(&out_zip)
        .args(["--server", &g.servers[0].base, "--key", &g.key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&out_zip).unwrap()).unwrap();
    let names: BTreeSet<String> = archive.file_names().map(|n| n.unwrap().to_string()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for name in names.iter().filter(|n| n.ends_with(".xml")) {
        let mut xml = Vec::new();
        archive.by_name(name).unwrap().read_to_end(&mut xml).unwrap();
        let f = dir.path().join("doc.xml");
        std::fs::write(&f, xml).unwrap();
        let o = common::xmlsec1_verify(&f, "Documento", None);
        assert!(o.status.success(), "{name}: {}", common::text(&o));
    }
    let mut report = String::new();
    archive.by_name("report.csv").unwrap().read_to_string(&mut report).unwrap();
    assert!(
        report.lines().any(|l| l.starts_with("3,sin receptor,76192083-9,enero/mala.json,") && l.contains(",failed,")),
        "{report}"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_line_csv_is_taken_in_bounded_memory() {
    // This instance takes batches in and issues nothing: the measure is the intake alone.
    let e = env(&[("DTE_GATEWAY_BATCH_WORKERS", "0")]);
    let g = Gateway::start(sqlite(), 1, &refs(&e), 10).await;
    let pid = g.servers[0].pid().unwrap();
    let before = peak_rss_kib(pid);
    let body = csv(&[RUT], 50_000, 2);
    assert_eq!(body.lines().count(), 100_001);
    let mb = body.len() as f64 / 1e6;
    let started = Instant::now();
    let (s, b) = submit(&g, &g.admin, body.into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!((b["total"].as_u64(), count(&b, "items", "pending")), (Some(50_000), 50_000), "{b}");
    let took = started.elapsed();
    let peak = peak_rss_kib(pid);
    eprintln!(
        "100 000-line CSV ({mb:.1} MB, 50 000 documents) taken in {took:.1?}: server peak RSS {} MB (before {} MB)",
        peak / 1024,
        before / 1024
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    let v = status(&g, &g.admin, b["id"].as_str().unwrap()).await;
    assert_eq!(v["state"], "issuing");
}
