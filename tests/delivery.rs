//! Delivering to buyers end to end, offline, with real mail servers and the SII simulator: a
//! company issues facturas to two buyers that are companies of the gateway too; once the SII
//! accepted them, each buyer's mailbox gets the signed EnvioDTE addressed to it with the PDFs;
//! the buyers take them in, answer, accept and claim in the simulated RCV, and the issuer sees
//! every answer and RCV event. Then SMTP down, a resend, and a buyer without an address.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::gateway::{factura, Gateway, RUT};
use common::hooks::Receiver;
use common::mail::{MailServers, PASSWORD};
use common::server;
use common::sim::SimProcess;
use common::{wait_for, xmllint, xmlsec1_verify};

const B1: &str = "76555835-2";
const B2: &str = "96790240-3";

async fn start(sim: &SimProcess) -> Gateway {
    let rcv = format!("{}/WSREGISTRORECLAMODTECERT/registroreclamodteservice", sim.base);
    Gateway::start(
        server::sqlite(),
        1,
        &[
            ("DTE_GATEWAY_SII_WORKERS", "true"),
            ("DTE_GATEWAY_SII_URL_CERTIFICACION", &sim.base),
            ("DTE_GATEWAY_SII_RCV_URL_CERTIFICACION", &rcv),
            ("DTE_GATEWAY_EXCHANGE_INTERVAL_MS", "100"),
            ("DTE_GATEWAY_RCV_RECHECK_SECONDS", "1"),
            ("DTE_GATEWAY_RCV_TRACK_ISSUED", "true"),
            ("DTE_GATEWAY_EXCHANGE_MAIL_ATTEMPTS", "2"),
            ("DTE_GATEWAY_EXCHANGE_MAIL_BACKOFF_MS", "200"),
        ],
        20,
    )
    .await
}

fn mailbox(mail: &MailServers, user: &str) -> Value {
    json!({
        "imap_url": format!("imap://127.0.0.1:{}", mail.imap_port), "username": user, "password": PASSWORD,
        "smtp_url": format!("smtp://127.0.0.1:{}", mail.smtp_port), "smtp_username": user, "smtp_password": PASSWORD,
        "from_address": user, "poll_seconds": 15
    })
}

fn to(buyer: &str, item: &str, price: u64) -> Value {
    let mut f = factura(item, price);
    f["Encabezado"]["Receptor"]["RUTRecep"] = json!(buyer);
    f
}

async fn exchange(g: &Gateway, folio: i64) -> Value {
    g.send("GET", &format!("/v1/companies/{RUT}/documents/33/{folio}/exchange"), &g.key, None).await.1
}

#[tokio::test]
async fn facturas_reach_two_buyers_who_answer_accept_and_claim() {
    let mail =
        MailServers::start(&["issuer@example.test", "b1@example.test", "b2@example.test"]).expect("mail servers");
    let sim = SimProcess::start(&[]);
    let g = start(&sim).await;
    let k1 = g.add_company(B1, 10).await;
    let k2 = g.add_company(B2, 10).await;
    let rx = Receiver::start(0).await;
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/webhooks"), &g.admin, Some(json!({"url": rx.url}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for (rut, key, user) in
        [(RUT, &g.admin, "issuer@example.test"), (B1, &k1, "b1@example.test"), (B2, &k2, "b2@example.test")]
    {
        let (s, b) = g.send("PUT", &format!("/v1/companies/{rut}/mailbox"), key, Some(mailbox(&mail, user))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // B1's address is the issuer's own; B2's comes from the SII's list.
    let (s, b) = g
        .send("PUT", &format!("/v1/companies/{RUT}/buyers/{B1}"), &g.admin, Some(json!({"email": "b1@example.test"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let csv = format!(
        "RUT;RAZON SOCIAL;NUMERO RESOLUCION;FECHA RESOLUCION;MAIL INTERCAMBIO;URL\n{B2};COMPRADOR DOS SPA;80;22-08-2014 ;B2@Example.test;\n11111111-1;SIN CASILLA LTDA;42;01-01-2020 ;;\n"
    );
    let (s, b) = g.raw("PUT", "/v1/directory", &g.admin, csv.into_bytes(), "text/csv").await;
    assert_eq!((s, b["imported"].as_u64(), b["skipped"].as_u64()), (StatusCode::OK, Some(1), Some(2)), "{b}");

    // Five facturas: 1-3 to B1, 4-5 to B2.
    for (i, buyer) in [B1, B1, B1, B2, B2].iter().enumerate() {
        let (s, b) = g.issue(0, &to(buyer, &format!("servicio {i}"), 10_000 + i as u64), None).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    // Each buyer's mailbox gets one message: the EnvioDTE addressed to it and the PDFs.
    for (user, buyer, n) in [("b1@example.test", B1, 3), ("b2@example.test", B2, 2)] {
        let got = wait_for(&format!("the delivery to {user}"), Duration::from_secs(60), async || {
            let m = mail.messages(user);
            (!m.is_empty()).then_some(m)
        })
        .await;
        assert_eq!(got.len(), 1, "{user}: one message for the documents accepted together");
        let parsed = dte_gateway::exchange::mail::read(&got[0]).expect("mail");
        assert_eq!(parsed.xml.len(), 1, "{user}: the EnvioDTE");
        let envio = &parsed.xml[0].1;
        let text = String::from_utf8_lossy(envio);
        assert!(text.contains(&format!("<RutReceptor>{buyer}</RutReceptor>")), "{text}");
        assert_eq!(text.matches("<DTE ").count() + text.matches("<DTE>").count(), n, "{user}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("envio.xml");
        std::fs::write(&f, envio).unwrap();
        let o = xmllint("EnvioDTE_v10.xsd", &f);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = xmlsec1_verify(&f, "SetDTE", Some("/*/*[local-name()='Signature']"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let raw = String::from_utf8_lossy(&got[0]);
        assert_eq!(raw.matches("application/pdf").count(), n, "{user}: a PDF per document");
    }
    for folio in 1..=5 {
        assert_eq!(exchange(&g, folio).await["delivery_state"].as_str(), Some("delivered"));
    }

    // The buyers take them in and answer (RecepcionEnvio); then decide in the RCV.
    for (buyer, key, folios) in [(B1, &k1, vec![1, 2, 3]), (B2, &k2, vec![4, 5])] {
        wait_for(&format!("{buyer}'s inbox"), Duration::from_secs(60), async || {
            let (_, b) = g.send("GET", &format!("/v1/companies/{buyer}/received"), key, None).await;
            (b["items"].as_array()?.len() == folios.len()).then_some(())
        })
        .await;
        for f in folios {
            let (accion, reason) = if f == 5 { ("RCD", "precio distinto del pactado") } else { ("ACD", "") };
            let (s, b) = g
                .send(
                    "POST",
                    &format!("/v1/companies/{buyer}/received/{RUT}/33/{f}/decision"),
                    key,
                    Some(json!({"accion": accion, "reason": reason})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    }

    // The issuer sees every answer and the RCV's events.
    let states = wait_for("the buyers' answers and RCV events at the issuer", Duration::from_secs(90), async || {
        let mut out = Vec::new();
        for folio in 1..=5 {
            let x = exchange(&g, folio).await;
            let codes: Vec<String> =
                x["events"].as_array()?.iter().filter_map(|e| e["code"].as_str().map(String::from)).collect();
            let rcv = codes.iter().any(|c| c == "ACD" || c == "RCD");
            let received = codes.iter().any(|c| c == "RecepcionDTE 0");
            let answered = codes.iter().any(|c| c.starts_with("ResultadoDTE"));
            if !(rcv && received && answered) {
                return None;
            }
            out.push((x["buyer_state"].as_str()?.to_string(), codes));
        }
        Some(out)
    })
    .await;
    let accepted = states.iter().filter(|(s, _)| s == "buyer_accepted").count();
    assert_eq!(accepted, 4, "{states:?}");
    assert_eq!(states[4].0, "buyer_rejected", "{states:?}");
    assert!(states[4].1.iter().any(|c| c == "RCD"), "the claim: {states:?}");

    let events = wait_for("the issuer's webhooks", Duration::from_secs(30), async || {
        let got: Vec<Value> =
            rx.got.lock().unwrap().iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        let n = |t: &str| got.iter().filter(|e| e["type"] == t).count();
        (n("document.delivered") == 5 && n("document.rcv_event") == 5 && n("document.buyer_response") >= 10)
            .then_some(got)
    })
    .await;
    let claims: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "document.rcv_event" && e["claim"] == true).collect();
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0]["folio"].as_i64(), Some(5));
    // Cedibility, as the SII's RCV says: the claimed one is not.
    let (s, c) = g.send("GET", &format!("/v1/companies/{RUT}/documents/33/5/cedible"), &g.key, None).await;
    assert_eq!((s, c["cedible"].as_bool()), (StatusCode::OK, Some(false)), "{c}");
}

#[tokio::test]
async fn smtp_down_is_retried_then_failed_and_a_resend_delivers_and_no_address_is_said() {
    let mail = MailServers::start(&["issuer@example.test", "b1@example.test"]).expect("mail servers");
    let sim = SimProcess::start(&[]);
    let g = start(&sim).await;
    let (s, b) = g
        .send("PUT", &format!("/v1/companies/{RUT}/mailbox"), &g.admin, Some(mailbox(&mail, "issuer@example.test")))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = g
        .send("PUT", &format!("/v1/companies/{RUT}/buyers/{B1}"), &g.admin, Some(json!({"email": "b1@example.test"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    mail.set_smtp_failure(Some("451 4.3.0 mail system busy")).unwrap();

    let (s, b) = g.issue(0, &to(B1, "servicio", 10_000), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = g.issue(0, &to(B2, "servicio", 20_000), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let failed = wait_for("the delivery to fail", Duration::from_secs(60), async || {
        let x = exchange(&g, 1).await;
        (x["delivery_state"] == "delivery_failed").then_some(x)
    })
    .await;
    let d = &failed["deliveries"][0];
    assert_eq!(d["attempts"].as_i64(), Some(2), "{failed}");
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("busy")), "{failed}");
    let none = wait_for("no address", Duration::from_secs(60), async || {
        let x = exchange(&g, 2).await;
        (x["delivery_state"] == "delivery_failed").then_some(x)
    })
    .await;
    assert_eq!(none["deliveries"][0]["last_error"].as_str(), Some("no address"), "{none}");
    assert!(mail.messages("b1@example.test").is_empty());

    // SMTP is back: a resend by hand delivers it.
    mail.set_smtp_failure(None).unwrap();
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/documents/33/1/deliver"), &g.key, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let done = wait_for("the resend", Duration::from_secs(30), async || {
        let x = exchange(&g, 1).await;
        (x["delivery_state"] == "delivered").then_some(x)
    })
    .await;
    assert!(done["deliveries"][0]["message_id"].as_str().is_some_and(|m| m.contains('@')), "{done}");
    assert_eq!(mail.messages("b1@example.test").len(), 1);
    // Not accepted by the SII (a boleta never goes to buyers): refused.
    let (s, _) = g.send("POST", &format!("/v1/companies/{RUT}/documents/33/999/deliver"), &g.key, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn a_directory_of_100_000_rows_is_imported_in_bounded_memory() {
    let db = server::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ce_empresas_dwnld.csv");
    let mut text = String::from("RUT;RAZON SOCIAL;NUMERO RESOLUCION;FECHA RESOLUCION;MAIL INTERCAMBIO;URL\n");
    for i in 0..100_000u32 {
        let rut = dte_gateway::domain::Rut::from_number(10_000_000 + i * 7);
        // ISO-8859-1 names, as the SII writes them; every tenth row has no address.
        let mail = if i % 10 == 0 { String::new() } else { format!("dte{i}@empresa{i}.cl") };
        text.push_str(&format!("{rut};EMPRESA N\u{00da}MERO {i} LIMITADA;80;22-08-2014 ;{mail};\n"));
    }
    std::fs::write(&csv, dte_gateway::xml::latin1::encode(&text).unwrap()).unwrap();
    // The peak resident memory of the import, as the kernel counts it for a child process.
    let probe = "import resource, subprocess, sys\nr = subprocess.run(sys.argv[1:], capture_output=True, text=True)\nsys.stdout.write(r.stdout)\nsys.stderr.write(r.stderr)\nprint('maxrss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)";
    let data = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("python3")
        .args(["-c", probe])
        .arg(env!("CARGO_BIN_EXE_dte-gateway"))
        .args(["directory", "import"])
        .arg(&csv)
        .envs(server::env(&db, data.path()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("imported 90000 rows, skipped 10001; the directory holds 90000"), "{stdout}");
    let kb: u64 =
        stdout.lines().find_map(|l| l.strip_prefix("maxrss_kb ")).and_then(|v| v.trim().parse().ok()).unwrap();
    println!(
        "directory import of 100 000 rows ({} MB file): {:.1} s, peak RSS {} MB",
        std::fs::metadata(&csv).unwrap().len() >> 20,
        started.elapsed().as_secs_f64(),
        kb / 1024
    );
    assert!(kb < 96 * 1024, "peak RSS {kb} KB");
}
