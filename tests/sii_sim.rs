//! The SII client against the simulator over real HTTP: authentication, uploads of envelopes the
//! engine built, tracking to a final state, rejections, token expiry and injected faults.

mod common;

use std::time::Duration;

use chrono::NaiveDateTime;
use common::sim::SimProcess;
use common::{repo, TS};
use dte_gateway::caf::{Caf, CafTrust};
use dte_gateway::cert::Certificate;
use dte_gateway::domain::tax::TaxTable;
use dte_gateway::domain::{Company, DocumentInput, Rut};
use dte_gateway::engine::Issuer;
use dte_gateway::sii::client::{Endpoints, SiiClient, SiiError, Upload, UploadState};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(repo(p)).unwrap()
}

fn cert() -> Certificate {
    Certificate::from_pkcs12(&read("certs/test-company.p12"), "test1234").unwrap()
}

fn client(sim: &SimProcess, timeout: Duration) -> SiiClient {
    SiiClient::new(Endpoints { base: sim.base.clone() }, timeout).unwrap()
}

fn company() -> Company {
    Company::from_json(&read("examples/company.json")).unwrap()
}

/// An EnvioDTE with facturas 33 `folios`, built and signed by the engine.
fn envelope(folios: &[u64]) -> Vec<u8> {
    let (company, cert) = (company(), cert());
    let trust = CafTrust::with_test_authority(&read("certs/test-authority.pem")).unwrap();
    let caf = Caf::load(&read("certs/cafs/caf-76192083-9-T33.xml"), &trust).unwrap();
    let taxes = TaxTable::default();
    let now = NaiveDateTime::parse_from_str(TS, "%Y-%m-%dT%H:%M:%S").unwrap();
    let issuer = Issuer::new(&company, &cert, &taxes);
    let input = DocumentInput::from_json(&read("examples/33-factura.json")).unwrap();
    let dtes: Vec<Vec<u8>> = folios.iter().map(|f| issuer.issue(&input, &caf, *f, now).unwrap().xml).collect();
    dte_gateway::sii::envelope::build(&company, &cert, Rut::SII, &dtes, now).unwrap()
}

fn rut(s: &str) -> Rut {
    s.parse().unwrap()
}

async fn track(c: &SiiClient, token: &str, id: &str) -> UploadState {
    for _ in 0..100 {
        match c.query_upload(token, rut("76192083-9"), id).await.unwrap() {
            UploadState::Pending(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => return other,
        }
    }
    panic!("upload {id} never reached a final state");
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_needs_a_fresh_seed_signed_by_a_valid_certificate() {
    let sim = SimProcess::start(&[]);
    let c = client(&sim, Duration::from_secs(10));
    let token = c.authenticate(&cert()).await.unwrap();
    assert!(!token.is_empty());
    // A seed signed, then tampered with; a seed used twice; an expired certificate.
    let seed = c.get_seed().await.unwrap();
    let signed = dte_gateway::sii::auth::signed_seed(&seed, &cert()).unwrap();
    let tampered = signed.replacen("<Semilla>", "<Semilla>1", 1);
    assert!(matches!(c.get_token(&tampered).await, Err(SiiError::Refused { .. })));
    assert!(c.get_token(&signed).await.is_ok());
    assert!(matches!(c.get_token(&signed).await, Err(SiiError::Refused { .. })), "a seed is good once");
    let expired = Certificate::from_pkcs12(&read("certs/test-company-expired.p12"), "test1234").unwrap();
    let seed = c.get_seed().await.unwrap();
    let signed = dte_gateway::sii::auth::signed_seed(&seed, &expired).unwrap();
    assert!(matches!(c.get_token(&signed).await, Err(SiiError::Refused { .. })));
    let counters = sim.counters().await;
    assert_eq!(
        (counters["seeds"].as_u64(), counters["tokens"].as_u64(), counters["token_refusals"].as_u64()),
        (Some(3), Some(2), Some(3)),
        "{counters}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envelope_is_received_tracked_and_accepted() {
    let sim = SimProcess::start(&["--processing-ms", "300"]);
    let c = client(&sim, Duration::from_secs(10));
    let token = c.authenticate(&cert()).await.unwrap();
    let up =
        c.upload(&token, rut("11111111-1"), rut("76192083-9"), "envio.xml", envelope(&[101, 102, 103])).await.unwrap();
    let Upload::Received(id) = up else { panic!("{up:?}") };
    // Pending first, then processed with the counts.
    assert!(
        matches!(c.query_upload(&token, rut("76192083-9"), &id).await.unwrap(), UploadState::Pending(e) if e == "REC")
    );
    match track(&c, &token, &id).await {
        UploadState::Processed { estado, informados, aceptados, rechazados, .. } => {
            assert_eq!((estado.as_str(), informados, aceptados, rechazados), ("EPR", 3, 3, 0))
        }
        other => panic!("{other:?}"),
    }
    let fecha = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let dok = c
        .query_document(&token, rut("11111111-1"), rut("76192083-9"), rut("76555835-2"), 33, 102, fecha, 1559588)
        .await
        .unwrap();
    assert_eq!(dok.estado, "DOK");
    let fau = c
        .query_document(&token, rut("11111111-1"), rut("76192083-9"), rut("76555835-2"), 33, 999, fecha, 1)
        .await
        .unwrap();
    assert_eq!(fau.estado, "FAU");
    let counters = sim.counters().await;
    assert_eq!(counters["accepted"]["76192083-9/33/101"].as_u64(), Some(1), "{counters}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejections_expired_tokens_and_a_blocked_sii() {
    let sim = SimProcess::start(&["--processing-ms", "200"]);
    let c = client(&sim, Duration::from_secs(10));
    let token = c.authenticate(&cert()).await.unwrap();
    let good = dte_gateway::xml::latin1::decode(&envelope(&[201, 202]));
    // A SetDTE changed after signing: received, then RFR.
    let bad_sig = good.replacen("<NroResol>80</NroResol>", "<NroResol>81</NroResol>", 1);
    let up = c
        .upload(
            &token,
            rut("11111111-1"),
            rut("76192083-9"),
            "e.xml",
            dte_gateway::xml::latin1::encode(&bad_sig).unwrap(),
        )
        .await
        .unwrap();
    let Upload::Received(id) = up else { panic!("{up:?}") };
    assert!(matches!(track(&c, &token, &id).await, UploadState::Rejected { estado, .. } if estado == "RFR"));
    // A schema error: refused at upload with STATUS 7.
    let bad_schema = good.replacen("<RutEnvia>11111111-1</RutEnvia>", "", 1);
    let up = c
        .upload(
            &token,
            rut("11111111-1"),
            rut("76192083-9"),
            "e.xml",
            dte_gateway::xml::latin1::encode(&bad_schema).unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(&up, Upload::Rejected { status, .. } if status == "7"), "{up:?}");
    // Forced token expiry: STATUS 5, then a new token works.
    reqwest::Client::new().post(format!("{}/sim/expire-tokens", sim.base)).send().await.unwrap();
    let bytes = dte_gateway::xml::latin1::encode(&good).unwrap();
    assert_eq!(
        c.upload(&token, rut("11111111-1"), rut("76192083-9"), "e.xml", bytes.clone()).await.unwrap(),
        Upload::Reauthenticate
    );
    assert_eq!(c.query_upload(&token, rut("76192083-9"), &id).await.unwrap(), UploadState::Reauthenticate);
    let token = c.authenticate(&cert()).await.unwrap();
    assert!(matches!(
        c.upload(&token, rut("11111111-1"), rut("76192083-9"), "e.xml", bytes.clone()).await.unwrap(),
        Upload::Received(_)
    ));

    let blocked = SimProcess::start(&["--blocked"]);
    let cb = client(&blocked, Duration::from_secs(10));
    let t = cb.authenticate(&cert()).await.unwrap();
    assert!(matches!(
        cb.upload(&t, rut("11111111-1"), rut("76192083-9"), "e.xml", bytes).await.unwrap(),
        Upload::Retry(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_are_retryable_errors() {
    let e500 = SimProcess::start(&["--error-rate", "1"]);
    let r = client(&e500, Duration::from_secs(5)).get_seed().await;
    assert!(matches!(&r, Err(SiiError::Http(500))) && r.as_ref().unwrap_err().retryable(), "{r:?}");
    let junk = SimProcess::start(&["--malformed-rate", "1"]);
    let r = client(&junk, Duration::from_secs(5)).get_seed().await;
    assert!(matches!(&r, Err(SiiError::Malformed(_))) && r.as_ref().unwrap_err().retryable(), "{r:?}");
    let slow = SimProcess::start(&["--timeout-rate", "1", "--hang-ms", "5000"]);
    let started = std::time::Instant::now();
    let r = client(&slow, Duration::from_millis(500)).get_seed().await;
    assert!(matches!(&r, Err(SiiError::Transport(_))) && r.as_ref().unwrap_err().retryable(), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
