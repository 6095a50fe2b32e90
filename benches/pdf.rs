//! Printed documents: PDFs per second on one core for a 5-line factura 33, letter and 80 mm, from
//! its signed XML (parse, PDF417 timbre, layout, PDF), and their size. Run: `cargo bench --bench pdf`.

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
use dte_gateway::print::{self, Format, Options, PrintDoc};

const WINDOW: Duration = Duration::from_secs(3);

/// The signed XML of a 5-line factura, made by the engine.
fn signed_factura(company: &Company) -> Vec<u8> {
    let input = factura::five_lines();
    let cert = Certificate::from_pkcs12(&repo("certs/test-company.p12"), "test1234").expect("cert");
    let trust = CafTrust::with_test_authority(&repo("certs/test-authority.pem")).expect("authority");
    let caf = Caf::load(&repo("certs/cafs/caf-76192083-9-T33.xml"), &trust).expect("caf");
    let taxes = TaxTable::default();
    let issuer = Issuer::new(company, &cert, &taxes);
    let doc = DocumentInput::from_json(&serde_json::to_vec(&input).expect("json")).expect("input");
    let now = NaiveDateTime::parse_from_str("2026-11-20T10:00:00", "%Y-%m-%dT%H:%M:%S").expect("ts");
    issuer.issue(&doc, &caf, 1, now).expect("issue").xml
}

/// PDFs per second on this thread for `WINDOW`, and the size of one.
fn rate(xml: &[u8], opts: &Options) -> (f64, usize) {
    let mut size = 0;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW {
        let doc = PrintDoc::from_xml(xml, None).expect("parse");
        let pdf = print::render(&doc, opts).expect("render");
        size = std::hint::black_box(pdf.len());
        n += 1;
    }
    (n as f64 / start.elapsed().as_secs_f64(), size)
}

fn main() {
    let company = Company::from_json(&repo("examples/company.json")).expect("company");
    let xml = signed_factura(&company);
    for (name, format) in [("letter", Format::Letter), ("80 mm ", Format::Thermal80)] {
        let opts = Options { format: Some(format), ..Options::default() }.for_company(&company);
        rate(&xml, &opts); // warm-up
        let (r, size) = rate(&xml, &opts);
        println!("PDF {name}, signed XML -> PDF with timbre (1 core): {r:8.0} /s  ({size} bytes, no logo)");
    }
}
