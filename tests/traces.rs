//! One trace across instances: a batch submitted to instance A (which issues it) and uploaded by
//! instance B (which runs the SII link) is exported over OTLP by both as one trace — the one the
//! client started with its `traceparent` — and the SII simulator receives that trace's context.
//! The OTLP receiver here decodes the protobuf with the official definitions.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use common::gateway::{Gateway, RUT};
use common::server::{postgres, Server};

/// (trace id hex, span name, service.instance.id)
type Spans = Arc<Mutex<Vec<(String, String, String)>>>;

async fn otlp_receiver() -> (String, Spans) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let spans: Spans = Arc::default();
    let store = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.trim().eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    if let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        let mut got = store.lock().unwrap();
                        for rs in req.resource_spans {
                            let instance = rs
                                .resource
                                .iter()
                                .flat_map(|res| res.attributes.iter())
                                .find(|kv| kv.key == "service.instance.id")
                                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                                .map(|v| match v {
                                    AnyValue::StringValue(s) => s.clone(),
                                    other => format!("{other:?}"),
                                })
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for s in ss.spans {
                                    let id: String = s.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                                    got.push((id, s.name, instance.clone()));
                                }
                            }
                        }
                    }
                    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if r.get_mut().write_all(ok.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_item_issued_on_one_instance_and_uploaded_by_another_is_one_trace() {
    let (otlp, spans) = otlp_receiver().await;
    let sim = common::sim::SimProcess::start(&["--processing-ms", "200"]);
    // A takes the batch and issues it; B runs the SII link only.
    let a = [("DTE_GATEWAY_OTLP_ENDPOINT", otlp.as_str()), ("DTE_GATEWAY_SII_WORKERS", "false")];
    let b = [
        ("DTE_GATEWAY_OTLP_ENDPOINT", otlp.as_str()),
        ("DTE_GATEWAY_BATCH_WORKERS", "0"),
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "200"),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
    ];
    let mut g = Gateway::start(postgres(), 1, &a, 10).await;
    g.servers.push(Server::start(&g.db, &b));

    // The client starts the trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let csv = common::batch::csv(&[RUT], 1, 1);
    let r = g
        .http
        .post(g.url("/v1/batches"))
        .bearer_auth(&g.admin)
        .header("content-type", "text/csv")
        .header("traceparent", &traceparent)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Issued on A, uploaded by B, accepted by the simulator.
    let started = Instant::now();
    loop {
        let docs = g.all_documents().await;
        if docs.iter().any(|d| d["state"] == "accepted") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not accepted: {docs:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The simulator got the trace's context with the upload.
    let counters = sim.counters().await;
    let got: Vec<String> = serde_json::from_value(counters["upload_traceparents"].clone()).unwrap();
    assert!(got.iter().any(|tp| tp.split('-').nth(1) == Some(trace_id)), "{got:?}");

    // Both instances exported spans of that one trace (the batch exporter sends every few
    // seconds).
    let started = Instant::now();
    loop {
        let by_instance: BTreeMap<String, BTreeSet<String>> = {
            let s = spans.lock().unwrap();
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (t, name, inst) in s.iter().filter(|(t, _, _)| t == trace_id) {
                let _ = t;
                m.entry(inst.clone()).or_default().insert(name.clone());
            }
            m
        };
        let a_side = by_instance.values().any(|n| n.contains("request") && n.contains("batch_item"));
        let b_side = by_instance.values().any(|n| n.contains("upload"));
        if by_instance.len() >= 2 && a_side && b_side {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spans of trace {trace_id} by instance: {by_instance:?}; all: {:?}",
            spans.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
