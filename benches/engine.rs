//! Issuance throughput: JSON in → stamped, signed, schema-validated DTE out (5-line factura 33,
//! and the example factura de exportación 110), against the raw RSA-2048/SHA-1 signature rate that
//! bounds it. Run: `cargo bench --bench engine`.

#[path = "shared/factura.rs"]
mod factura;
use factura::repo;

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use dte_gateway::caf::{Caf, CafTrust};
use dte_gateway::cert::Certificate;
use dte_gateway::domain::tax::TaxTable;
use dte_gateway::domain::{Company, DocumentInput};
use dte_gateway::engine::Issuer;

const WINDOW: Duration = Duration::from_secs(3);

struct Fixture {
    company: Company,
    cert: Certificate,
    caf: Caf,
    taxes: TaxTable,
    input: Vec<u8>,
    now: NaiveDateTime,
}

fn fixture() -> Fixture {
    let input = serde_json::to_vec(&factura::five_lines()).expect("json");
    fixture_of(33, input)
}

/// The example factura de exportación, with its customs data and OtraMoneda.
fn fixture_110() -> Fixture {
    fixture_of(110, repo("examples/110-factura-exportacion.json"))
}

fn fixture_of(tipo: u16, input: Vec<u8>) -> Fixture {
    Fixture {
        company: Company::from_json(&repo("examples/company.json")).expect("company"),
        cert: Certificate::from_pkcs12(&repo("certs/test-company.p12"), "test1234").expect("cert"),
        caf: Caf::load(
            &repo(&format!("certs/cafs/caf-76192083-9-T{tipo}.xml")),
            &CafTrust::with_test_authority(&repo("certs/test-authority.pem")).expect("authority"),
        )
        .expect("caf"),
        taxes: TaxTable::default(),
        input,
        now: NaiveDateTime::parse_from_str("2026-11-20T10:00:00", "%Y-%m-%dT%H:%M:%S").expect("ts"),
    }
}

/// Documents per second on this thread, for `WINDOW`.
fn issue_rate(f: &Fixture, validate: bool, offset: u64) -> f64 {
    let issuer = Issuer { validate_schema: validate, ..Issuer::new(&f.company, &f.cert, &f.taxes) };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW {
        let doc = DocumentInput::from_json(&f.input).expect("input");
        let folio = (offset + n) % 100_000 + 1;
        let issued = issuer.issue(&doc, &f.caf, folio, f.now).expect("issue");
        std::hint::black_box(issued.xml.len());
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn rsa_rate(f: &Fixture) -> f64 {
    let data = [7u8; 600];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW {
        std::hint::black_box(f.cert.sign_sha1(&data).expect("sign"));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let f = fixture();
    // Warm up: schema compilation and page faults are not steady-state costs.
    issue_rate(&Fixture { ..fixture() }, true, 0);
    let raw = rsa_rate(&f);
    let full = issue_rate(&f, true, 10_000);
    let no_schema = issue_rate(&f, false, 20_000);
    let export = issue_rate(&fixture_110(), true, 40_000);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let all: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|i| {
                let f = &f;
                s.spawn(move || issue_rate(f, true, 30_000 + i as u64 * 10_000))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    println!("raw RSA-2048 SHA-1 signatures (1 core):        {raw:8.0} /s");
    println!(
        "issue, JSON -> signed + XSD-validated (1 core): {full:8.0} docs/s  ({:.0} % of raw RSA)",
        100.0 * full / raw
    );
    println!(
        "issue, XSD validation off (1 core):             {no_schema:8.0} docs/s  ({:.0} % of raw RSA)",
        100.0 * no_schema / raw
    );
    println!(
        "issue 110 (exportación), signed + XSD-validated (1 core): {export:8.0} docs/s  ({:.0} % of raw RSA)",
        100.0 * export / raw
    );
    println!("issue, JSON -> signed + XSD-validated ({cores} cores): {all:8.0} docs/s  ({:.2}x one core)", all / full);
}
