//! The receiving side with real parts: a supplier's EnvioDTE mailed through a real SMTP server
//! into a real dovecot mailbox, polled over IMAP by two instances and taken once, answered with a
//! RecepcionEnvio that lands in the supplier's mailbox and passes `xmllint` and `xmlsec1`; files of
//! other implementations and broken ones with the SII's reception codes; decisions against the
//! simulated RCV with its transition rules, deadline, token refusal and internal errors.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::gateway::Gateway;
use common::hooks::Receiver;
use common::mail::{MailServers, PASSWORD};
use common::server::{self, Db};
use common::sim::SimProcess;
use common::{repo, wait_for, xmllint, xmlsec1_verify};

/// The receiving company (the examples' buyer); the supplier is the TEST company 76192083-9.
const BUYER: &str = "76555835-2";
const SUPPLIER: &str = "76192083-9";

async fn start(db: Db, servers: usize, sim: &SimProcess) -> Gateway {
    let rcv = format!("{}/WSREGISTRORECLAMODTECERT/registroreclamodteservice", sim.base);
    Gateway::start(
        db,
        servers,
        &[
            ("DTE_GATEWAY_SII_WORKERS", "true"),
            ("DTE_GATEWAY_SII_URL_CERTIFICACION", &sim.base),
            ("DTE_GATEWAY_SII_RCV_URL_CERTIFICACION", &rcv),
            ("DTE_GATEWAY_EXCHANGE_INTERVAL_MS", "100"),
            ("DTE_GATEWAY_RCV_RECHECK_SECONDS", "1"),
            ("RUST_LOG", "warn,dte_gateway::worker::exchange=debug"),
        ],
        10,
    )
    .await
}

async fn supplier_envelope(sim: &SimProcess, body: Value) -> Vec<u8> {
    let r =
        reqwest::Client::new().post(format!("{}/sim/supplier-mail", sim.base)).json(&body).send().await.expect("sim");
    let status = r.status();
    let bytes = r.bytes().await.expect("envelope").to_vec();
    assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&bytes));
    bytes
}

async fn take(g: &Gateway, key: &str, rut: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    g.raw("POST", &format!("/v1/companies/{rut}/received?filename={name}"), key, bytes, "application/xml").await
}

fn check_answer(xml: &[u8], schema: &str, id_attr: &str, node_xpath: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("answer.xml");
    std::fs::write(&f, xml).expect("write");
    let o = xmllint(schema, &f);
    assert!(o.status.success(), "xmllint {schema}: {}", String::from_utf8_lossy(&o.stderr));
    let o = xmlsec1_verify(&f, id_attr, node_xpath);
    assert!(o.status.success(), "xmlsec1 {id_attr}: {}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test]
async fn a_mailed_envelope_is_taken_once_by_two_instances_and_answered_to_the_supplier() {
    let mail = MailServers::start(&["company@example.test", "supplier@example.test"]).expect("mail servers");
    let sim = SimProcess::start(&[]);
    let g = start(server::postgres(), 2, &sim).await;
    let key = g.add_company(BUYER, 10).await;

    // The supplier mails one envelope of 3 facturas; the mail system delivers it twice.
    let sent = supplier_envelope(
        &sim,
        json!({"receptor": BUYER, "dtes": 3, "first_folio": 101, "smtp": format!("127.0.0.1:{}", mail.smtp_port),
               "to": "company@example.test", "from": "supplier@example.test"}),
    )
    .await;
    let sent: Value = serde_json::from_slice(&sent).expect("json");
    assert!(sent["message_id"].as_str().is_some_and(|m| !m.is_empty()), "{sent}");
    let inbox = mail.maildir("company@example.test");
    let delivered = wait_for("the supplier's mail", Duration::from_secs(10), async || {
        std::fs::read_dir(inbox.join("new")).ok()?.flatten().next().map(|e| e.path())
    })
    .await;
    std::fs::copy(&delivered, inbox.join("new").join("1700000000.duplicate.example.test")).expect("duplicate");

    let mailbox = json!({
        "imap_url": format!("imap://127.0.0.1:{}", mail.imap_port), "username": "company@example.test", "password": PASSWORD,
        "smtp_url": format!("smtp://127.0.0.1:{}", mail.smtp_port), "smtp_username": "company@example.test",
        "smtp_password": PASSWORD, "from_address": "company@example.test", "poll_seconds": 15
    });
    let (s, b) = g.send("PUT", &format!("/v1/companies/{BUYER}/mailbox"), &key, Some(mailbox.clone())).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("password").is_none() && b.get("smtp_password").is_none(), "{b}");

    let list = wait_for("3 received documents", Duration::from_secs(30), async || {
        let (_, m) = g.send("GET", &format!("/v1/companies/{BUYER}/mailbox"), &key, None).await;
        assert!(m["last_error"].is_null(), "{m}");
        let (_, b) = g.send("GET", &format!("/v1/companies/{BUYER}/received"), &key, None).await;
        (b["items"].as_array()?.len() >= 3).then_some(b)
    })
    .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{list}");
    for d in items {
        assert_eq!(
            (d["rut_emisor"].as_str(), d["tipo"].as_i64(), d["state"].as_str()),
            (Some(SUPPLIER), Some(33), Some("received")),
            "{d}"
        );
        assert!(
            d["verification"]
                .as_array()
                .is_some_and(|v| v.iter().all(|l| !l.as_str().unwrap_or("").starts_with("FAIL"))),
            "{d}"
        );
    }

    // One RecepcionEnvio reaches the supplier's mailbox, valid and signed.
    let answers = wait_for("the RecepcionEnvio in the supplier's mailbox", Duration::from_secs(30), async || {
        let m = mail.messages("supplier@example.test");
        (!m.is_empty()).then_some(m)
    })
    .await;
    let parsed = dte_gateway::exchange::mail::read(&answers[0]).expect("a mail message");
    assert_eq!(parsed.xml.len(), 1);
    let xml = &parsed.xml[0].1;
    let text = String::from_utf8_lossy(xml);
    assert!(text.contains("<RecepcionEnvio>") && text.contains("<EstadoRecepEnv>0</EstadoRecepEnv>"), "{text}");
    assert_eq!(text.matches("<EstadoRecepDTE>0</EstadoRecepDTE>").count(), 3, "{text}");
    check_answer(xml, "RespuestaEnvioDTE_v10.xsd", "Resultado", None);

    // Polled again from the first message (another URL for the same server resets the folder's
    // progress) and by the other instance: nothing is taken twice, nobody answered twice.
    let mut again = mailbox.clone();
    again["imap_url"] = json!(format!("imap://localhost:{}", mail.imap_port));
    let (s, b) = g.send("PUT", &format!("/v1/companies/{BUYER}/mailbox"), &key, Some(again)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let polled = wait_for("a second poll", Duration::from_secs(30), async || {
        let (_, b) = g.send("GET", &format!("/v1/companies/{BUYER}/mailbox"), &key, None).await;
        b["last_poll_at"].as_str().map(String::from)
    })
    .await;
    let r = g
        .http
        .post(g.servers[1].url(&format!("/v1/companies/{BUYER}/mailbox/poll")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("poll");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    wait_for("a third poll", Duration::from_secs(30), async || {
        let (_, b) = g.send("GET", &format!("/v1/companies/{BUYER}/mailbox"), &key, None).await;
        (b["last_poll_at"].as_str()? != polled && b["last_error"].is_null()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, b) = g.send("GET", &format!("/v1/companies/{BUYER}/received"), &key, None).await;
    assert_eq!(b["items"].as_array().map(Vec::len), Some(3), "{b}");
    assert_eq!(mail.messages("supplier@example.test").len(), 1, "answered once");
    let (s, b) =
        g.send("GET", &format!("/v1/companies/{BUYER}/received/{SUPPLIER}/33/101/responses"), &key, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b[0]["kind"].as_str(), b[0]["state"].as_str()), (Some("RecepcionEnvio"), Some("sent")), "{b}");
}

/// A company for a file's receptor, with the test certificate.
async fn company(g: &Gateway, rut: &str) -> String {
    g.add_company(rut, 10).await
}

fn code_of(report: &Value) -> (i64, Vec<i64>) {
    let e = &report["envelopes"][0];
    (
        e["estado"].as_i64().unwrap_or(-1),
        e["dtes"].as_array().map(|d| d.iter().filter_map(|x| x["estado"].as_i64()).collect()).unwrap_or_default(),
    )
}

#[tokio::test]
async fn files_of_other_implementations_are_taken_and_bad_ones_get_the_sii_codes() {
    let sim = SimProcess::start(&[]);
    let g = start(server::sqlite(), 1, &sim).await;

    // The SII's own sample: its DTE inherits the envelope's namespace, which a strict verifier rejects.
    let sample_key = company(&g, "77777777-7").await;
    let (s, b) = take(
        &g,
        &sample_key,
        "77777777-7",
        "F60T33.xml",
        std::fs::read(repo("tests/data/F60T33-ejemplo-oficial-SII.xml")).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(code_of(&b), (0, vec![0]), "{b}");
    let (_, d) = g.send("GET", "/v1/companies/77777777-7/received/97975000-5/33/60", &sample_key, None).await;
    let lines: Vec<&str> = d["verification"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
    assert!(lines.iter().any(|l| l.starts_with("WARN signature DTE F60T33 (in context)")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("WARN caratula receptor")), "{lines:?}");

    // Three production DTEs as their issuers mailed them (bare, namespace-less, windows-1252, vendor elements).
    let buyer_key = company(&g, BUYER).await;
    for (file, receptor, emisor, tipo, folio) in [
        ("DTE--60910000-1--33--2336600.xml", "76555835-2", "60910000-1", 33, 2336600),
        ("DTE--76354771-K--33--170.xml", "96790240-3", "76354771-K", 33, 170),
        ("DTE--96670340-7--61--110616.xml", "81675600-6", "96670340-7", 61, 110616),
    ] {
        let key = if receptor == BUYER { buyer_key.clone() } else { company(&g, receptor).await };
        let bytes = std::fs::read(repo(&format!("tests/data/real-dte/{file}"))).unwrap();
        let (s, b) = take(&g, &key, receptor, file, bytes).await;
        assert_eq!(s, StatusCode::CREATED, "{file}: {b}");
        assert_eq!(code_of(&b), (0, vec![0]), "{file}: {b}");
        let (s, d) =
            g.send("GET", &format!("/v1/companies/{receptor}/received/{emisor}/{tipo}/{folio}"), &key, None).await;
        assert_eq!(s, StatusCode::OK, "{file}: {d}");
        assert_eq!(d["rcv"].as_bool(), Some(tipo == 33), "{d}");
    }

    // A namespace-less production DTE packed in an envelope by another sender.
    let mut c: Value = serde_json::from_slice(&std::fs::read(repo("examples/company.json")).unwrap()).unwrap();
    c["RUTEmisor"] = json!("60910000-1");
    let issuer: dte_gateway::domain::Company = serde_json::from_value(c).unwrap();
    let cert = dte_gateway::cert::Certificate::from_pkcs12(
        &std::fs::read(repo("certs/test-company.p12")).unwrap(),
        "test1234",
    )
    .unwrap();
    // Its sender re-declared it as ISO-8859-1, as the SII wants it (the bytes are the same).
    let raw = std::fs::read(repo("tests/data/real-dte/DTE--60910000-1--33--2336600.xml")).unwrap();
    let at = raw.windows(12).position(|w| w == b"windows-1252").unwrap();
    let dte = [&raw[..at], b"ISO-8859-1", &raw[at + 12..]].concat();
    let now = chrono::Local::now().naive_local();
    let envelope =
        dte_gateway::sii::envelope::build(&issuer, &cert, BUYER.parse().unwrap(), &[dte], now).expect("envelope");
    let (s, b) = take(&g, &buyer_key, BUYER, "EnvioDTE-60910000.xml", envelope).await;
    // Its DTE was taken in bare above by this same company: the envelope is fine, the DTE repeated.
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(code_of(&b), (0, vec![4]), "{b}");

    // The supplier's envelopes: one good, then the same file again, the same envelope in another
    // file, a DTE repeated, a tampered DTE, a broken envelope signature, another receptor.
    let good = supplier_envelope(&sim, json!({"receptor": BUYER, "dtes": 2, "first_folio": 1})).await;
    let (s, b) = take(&g, &buyer_key, BUYER, "good.xml", good.clone()).await;
    assert_eq!((s, code_of(&b)), (StatusCode::CREATED, (0, vec![0, 0])), "{b}");
    let (s, b) = take(&g, &buyer_key, BUYER, "good.xml", good.clone()).await;
    assert_eq!((s, b["taken"].as_bool()), (StatusCode::OK, Some(false)), "{b}");
    let mut copy = good.clone();
    copy.extend_from_slice(b"\n");
    let (_, b) = take(&g, &buyer_key, BUYER, "copy.xml", copy).await;
    assert_eq!(code_of(&b).0, 90, "{b}");
    let overlapping = supplier_envelope(&sim, json!({"receptor": BUYER, "dtes": 2, "first_folio": 2})).await;
    let (_, b) = take(&g, &buyer_key, BUYER, "overlap.xml", overlapping).await;
    assert_eq!(code_of(&b), (0, vec![4, 0]), "{b}");
    let tampered = supplier_envelope(&sim, json!({"receptor": BUYER, "dtes": 3, "first_folio": 10, "tamper": 2})).await;
    let (_, b) = take(&g, &buyer_key, BUYER, "tampered.xml", tampered).await;
    assert_eq!(code_of(&b), (0, vec![0, 1, 0]), "{b}");
    let broken = String::from_utf8_lossy(
        &supplier_envelope(&sim, json!({"receptor": BUYER, "dtes": 1, "first_folio": 20})).await,
    )
    .into_owned();
    let at = broken.rfind("<SignatureValue>").unwrap() + "<SignatureValue>".len();
    let flipped = if &broken[at..at + 1] == "A" { "B" } else { "A" };
    let broken = format!("{}{flipped}{}", &broken[..at], &broken[at + 1..]);
    let (_, b) = take(&g, &buyer_key, BUYER, "broken.xml", broken.into_bytes()).await;
    assert_eq!(code_of(&b).0, 2, "{b}");
    let other = supplier_envelope(&sim, json!({"receptor": "96790240-3", "dtes": 1, "first_folio": 30})).await;
    let (_, b) = take(&g, &buyer_key, BUYER, "other.xml", other).await;
    assert_eq!(code_of(&b).0, 3, "{b}");
    let (_, b) = take(&g, &buyer_key, BUYER, "junk.xml", b"<EnvioDTE><SetDTE>".to_vec()).await;
    assert_eq!(code_of(&b).0, 91, "{b}");

    // Each envelope got its RecepcionEnvio (kept for download: no address, no SMTP); it validates and verifies.
    let (_, r) =
        g.send("GET", &format!("/v1/companies/{BUYER}/received/{SUPPLIER}/33/10/responses"), &buyer_key, None).await;
    let id = r[0]["id"].as_i64().expect("an answer");
    let x = g
        .http
        .get(g.servers[0].url(&format!("/v1/companies/{BUYER}/responses/{id}/xml")))
        .bearer_auth(&buyer_key)
        .send()
        .await
        .unwrap();
    let xml = x.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&xml);
    assert!(text.contains("<EstadoRecepDTE>1</EstadoRecepDTE>"), "{text}");
    check_answer(&xml, "RespuestaEnvioDTE_v10.xsd", "Resultado", None);
    let (_, page) = g.send("GET", &format!("/v1/companies/{BUYER}/received?emisor={SUPPLIER}"), &buyer_key, None).await;
    let folios: Vec<i64> = page["items"].as_array().unwrap().iter().filter_map(|d| d["folio"].as_i64()).collect();
    assert_eq!(folios.len(), 5, "1, 2, 3, 10, 12: {folios:?}");
}

fn sim_post(sim: &SimProcess, path: &str, body: Value) -> impl std::future::Future<Output = ()> {
    let url = format!("{}{path}", sim.base);
    async move {
        let r = reqwest::Client::new().post(url).json(&body).send().await.expect("sim");
        assert!(r.status().is_success(), "{}", r.status());
    }
}

#[tokio::test]
async fn decisions_go_to_the_simulated_rcv_with_its_rules_and_answers_on_sqlite() {
    decisions(server::sqlite()).await;
}

#[tokio::test]
async fn decisions_go_to_the_simulated_rcv_with_its_rules_and_answers_on_postgres() {
    decisions(server::postgres()).await;
}

async fn decisions(db: Db) {
    let sim = SimProcess::start(&[]);
    let g = start(db, 1, &sim).await;
    let key = g.add_company(BUYER, 10).await;
    let rx = Receiver::start(0).await;
    let (s, b) = g.send("POST", &format!("/v1/companies/{BUYER}/webhooks"), &key, Some(json!({"url": rx.url}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // Folios 1-6 reach the SII now; 7 reached it 9 days ago, 8 seven days ago.
    let envelope = supplier_envelope(&sim, json!({"receptor": BUYER, "dtes": 8, "first_folio": 1})).await;
    let ago = |days: i64| {
        (chrono::Local::now().naive_local() - chrono::Duration::days(days)).format("%Y-%m-%dT%H:%M:%S").to_string()
    };
    sim_post(
        &sim,
        "/sim/rcv/documents",
        json!({"rut_emisor": SUPPLIER, "tipo": 33, "folio": 7, "received_at": ago(9)}),
    )
    .await;
    sim_post(
        &sim,
        "/sim/rcv/documents",
        json!({"rut_emisor": SUPPLIER, "tipo": 33, "folio": 8, "received_at": ago(7)}),
    )
    .await;
    let (s, b) = take(&g, &key, BUYER, "envio.xml", envelope).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let doc = |f: i64| format!("/v1/companies/{BUYER}/received/{SUPPLIER}/33/{f}");
    wait_for("the SII's reception dates", Duration::from_secs(30), async || {
        let (_, d) = g.send("GET", &doc(1), &key, None).await;
        (d["days_left"].as_i64()? == 8).then_some(())
    })
    .await;
    let decide = async |f: i64, body: Value| g.send("POST", &format!("{}/decision", doc(f)), &key, Some(body)).await;

    // ACD, then a claim is refused (11) and ACD again is the same decision.
    let (s, d) = decide(1, json!({"accion": "ACD"})).await;
    assert_eq!((s, d["state"].as_str()), (StatusCode::OK, Some("accepted")), "{d}");
    let (s, p) = decide(1, json!({"accion": "RCD", "reason": "precio distinto del pactado"})).await;
    assert_eq!((s, p["type"].as_str().map(|t| t.ends_with("rcv-refused"))), (StatusCode::CONFLICT, Some(true)), "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("11"), "{p}");
    let (s, d) = decide(1, json!({"accion": "ACD"})).await;
    assert_eq!((s, d["state"].as_str()), (StatusCode::OK, Some("accepted")), "{d}");
    // ERM after ACD is allowed; a claim without its reason is not even sent.
    let (s, d) = decide(1, json!({"accion": "ERM", "recinto": "Bodega central"})).await;
    assert_eq!((s, d["state"].as_str()), (StatusCode::OK, Some("goods_received")), "{d}");
    let (s, _) = decide(2, json!({"accion": "RCD"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A claim with an Idempotency-Key, replayed.
    let claim = json!({"accion": "RCD", "reason": "mercadería no corresponde a la orden de compra"});
    let req = |k: &str| {
        g.http
            .post(g.servers[0].url(&format!("{}/decision", doc(2))))
            .bearer_auth(&key)
            .header("idempotency-key", k)
            .json(&claim)
    };
    let first = req("claim-2").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = req("claim-2").send().await.unwrap();
    assert_eq!(second.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let (s, p) = decide(2, json!({"accion": "ACD"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "12: {p}");

    // The SII forgets the token: the gateway authenticates again once. Then a −1, retried.
    let before = sim.counters().await;
    sim_post(&sim, "/sim/expire-tokens", json!({})).await;
    let (s, d) = decide(3, json!({"accion": "RFP", "reason": "faltan 2 de 10 cajas"})).await;
    assert_eq!((s, d["state"].as_str()), (StatusCode::OK, Some("claimed")), "{d}");
    let after = sim.counters().await;
    let n = |c: &Value, k: &str| c[k].as_u64().unwrap_or(0);
    assert!(
        n(&after, "tokens") > n(&before, "tokens") && n(&after, "token_refusals") > n(&before, "token_refusals"),
        "{after}"
    );
    sim_post(&sim, "/sim/rcv/faults", json!({"internal_errors": 1, "operation": "ingresarAceptacionReclamoDoc"})).await;
    let calls = |c: &Value| c["rcv_calls"]["ingresarAceptacionReclamoDoc"].as_u64().unwrap_or(0);
    let n = calls(&sim.counters().await);
    let (s, d) = decide(4, json!({"accion": "RFT", "reason": "no llegó nada"})).await;
    assert_eq!((s, d["state"].as_str()), (StatusCode::OK, Some("claimed")), "{d}");
    assert_eq!(calls(&sim.counters().await), n + 2, "one −1, then done");

    // Day 9: refused with 409 and the date; the document was accepted by law.
    let (s, p) = decide(7, json!({"accion": "RCD", "reason": "tarde"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("8-day") || d.contains("window")), "{p}");

    // The answers: ResultadoDTE (accepted, and rejected for the claim) and EnvioRecibos, both signature levels.
    let (gr, kr) = (&g, &key);
    let answers = |f: i64| async move {
        let (g, key) = (gr, kr);
        let (_, r) = g.send("GET", &format!("{}/responses", doc(f)), key, None).await;
        let mut out = Vec::new();
        for a in r.as_array().cloned().unwrap_or_default() {
            let id = a["id"].as_i64().unwrap();
            let x = g
                .http
                .get(g.servers[0].url(&format!("/v1/companies/{BUYER}/responses/{id}/xml")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            out.push((a["kind"].as_str().unwrap().to_string(), x.bytes().await.unwrap().to_vec()));
        }
        out
    };
    let one = answers(1).await;
    let kinds: Vec<&str> = one.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["RecepcionEnvio", "ResultadoDTE", "EnvioRecibos"], "ACD once, ERM once");
    check_answer(&one[1].1, "RespuestaEnvioDTE_v10.xsd", "Resultado", None);
    assert!(String::from_utf8_lossy(&one[1].1).contains("<EstadoDTE>0</EstadoDTE>"));
    check_answer(
        &one[2].1,
        "EnvioRecibos_v10.xsd",
        "SetRecibos",
        Some("/*[local-name()='EnvioRecibos']/*[local-name()='Signature']"),
    );
    check_answer(
        &one[2].1,
        "EnvioRecibos_v10.xsd",
        "DocumentoRecibo",
        Some("//*[local-name()='Recibo']/*[local-name()='Signature']"),
    );
    let two = answers(2).await;
    let claim_xml = String::from_utf8_lossy(&two[1].1).into_owned();
    assert!(claim_xml.contains("<EstadoDTE>2</EstadoDTE>") && claim_xml.contains("Ley 19.983"), "{claim_xml}");
    check_answer(&two[1].1, "RespuestaEnvioDTE_v10.xsd", "Resultado", None);

    // Webhooks: one per received document, per decision, the deadline near (folio 8) and the
    // acceptance by law (folio 7).
    let events = wait_for("the webhooks", Duration::from_secs(30), async || {
        let got: Vec<Value> =
            rx.got.lock().unwrap().iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        let count = |t: &str| got.iter().filter(|e| e["type"] == t).count();
        (count("received.new") == 8 && count("received.deadline_near") >= 1 && count("received.decided") >= 6)
            .then_some(got)
    })
    .await;
    let near: Vec<i64> =
        events.iter().filter(|e| e["type"] == "received.deadline_near").filter_map(|e| e["folio"].as_i64()).collect();
    assert_eq!(near, [8], "{events:?}");
    assert!(
        events.iter().any(|e| e["type"] == "received.decided" && e["folio"] == 7 && e["decision"] == "LEY"),
        "{events:?}"
    );
    let (_, d) = g.send("GET", &doc(7), &key, None).await;
    assert_eq!(d["state"].as_str(), Some("accepted_by_law"), "{d}");

    // The same inbox from the command line.
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["received", "list", "--company", BUYER, "--state", "claimed"])
        .envs(server::env(&g.db, dir.path()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().count(), 3, "folios 2, 3, 4: {text}");
    assert!(text.lines().all(|l| l.starts_with(SUPPLIER) && l.contains("\tclaimed")), "{text}");
}
