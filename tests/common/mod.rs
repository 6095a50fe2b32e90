//! Helpers shared by the integration suites: the built binary, the repo's test material, and the
//! independent verifiers (`xmlsec1`, `xmllint`) that must be installed (CI installs them).

#![allow(dead_code)]

pub mod batch;
pub mod gateway;
pub mod hooks;
pub mod mail;
pub mod redis;
pub mod server;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TS: &str = "2026-11-20T10:00:00";
pub const PASS: &str = "test1234";

/// Polls `f` every 150 ms until it gives a value; fails the test naming `what` after `limit`.
pub async fn wait_for<T>(what: &str, limit: std::time::Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn repo(p: &str) -> PathBuf {
    root().join(p)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dte-gateway"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("failed to start the command")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn example(tipo: u16) -> PathBuf {
    let name = match tipo {
        33 => "33-factura",
        34 => "34-factura-exenta",
        39 => "39-boleta",
        41 => "41-boleta-exenta",
        43 => "43-liquidacion-factura",
        46 => "46-factura-compra",
        52 => "52-guia-despacho",
        56 => "56-nota-debito",
        61 => "61-nota-credito",
        110 => "110-factura-exportacion",
        111 => "111-nota-debito-exportacion",
        112 => "112-nota-credito-exportacion",
        _ => panic!("no example for {tipo}"),
    };
    repo(&format!("examples/{name}.json"))
}

pub fn caf(tipo: u16) -> PathBuf {
    repo(&format!("certs/cafs/caf-76192083-9-T{tipo}.xml"))
}

/// `dte build` with the test material; extra args are appended.
pub fn build(input: &Path, caf: &Path, folio: u64, out: &Path, extra: &[&str]) -> Output {
    let mut c = bin();
    c.args(["dte", "build", "--input"]).arg(input);
    c.arg("--company").arg(repo("examples/company.json"));
    c.arg("--cert").arg(repo("certs/test-company.p12"));
    c.args(["--cert-password", PASS]);
    c.arg("--caf").arg(caf);
    c.args(["--folio", &folio.to_string()]);
    c.arg("--trust-test-authority").arg(repo("certs/test-authority.pem"));
    c.args(["--timestamp", TS]);
    c.arg("--output").arg(out);
    // Later flags of the same name win with clap: the extras override the defaults above.
    c.args(extra);
    run(&mut c)
}

pub fn xmlsec1_verify(file: &Path, id_attr: &str, node_xpath: Option<&str>) -> Output {
    let mut c = Command::new("xmlsec1");
    c.args(["--verify", "--id-attr:ID", id_attr]);
    if let Some(x) = node_xpath {
        c.args(["--node-xpath", x]);
    }
    c.arg(file);
    c.output().expect("xmlsec1 is required (apt-get install xmlsec1)")
}

pub fn xmllint(schema: &str, file: &Path) -> Output {
    Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(repo(&format!("schemas/{schema}")))
        .arg(file)
        .output()
        .expect("xmllint is required (apt-get install libxml2-utils)")
}

/// Builds the JSON `input` (its `TipoDTE` names the CAF) as folio `folio` into `dir/name.xml`,
/// checks it with the independent verifiers — `xmllint` against DTE_v10.xsd, `xmlsec1` on its
/// signed element, `dte verify` with its TED — and returns the path and the text (Latin-1 read
/// as chars).
pub fn build_verified(dir: &Path, name: &str, input: &serde_json::Value, folio: u64) -> (PathBuf, String) {
    let tipo = input["Encabezado"]["IdDoc"]["TipoDTE"].as_u64().expect("TipoDTE") as u16;
    let json = dir.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_vec(input).expect("json")).expect("write");
    let out = dir.join(format!("{name}.xml"));
    let o = build(&json, &caf(tipo), folio, &out, &[]);
    assert!(o.status.success(), "{name}: {}", text(&o));
    let l = xmllint("DTE_v10.xsd", &out);
    assert!(l.status.success(), "xmllint rejects {name}: {}", text(&l));
    let root = match tipo {
        43 => "Liquidacion",
        110..=112 => "Exportaciones",
        _ => "Documento",
    };
    let x = xmlsec1_verify(&out, &format!("http://www.sii.cl/SiiDte:{root}"), None);
    assert!(x.status.success(), "xmlsec1 rejects {name}: {}", text(&x));
    let v =
        run(bin().args(["dte", "verify", "--trust-test-authority"]).arg(repo("certs/test-authority.pem")).arg(&out));
    let report = text(&v);
    assert!(v.status.success() && !report.contains("FAIL"), "dte verify {name}: {report}");
    assert!(report.contains("PASS TED") && report.contains("FRMT verifies with the CAF key"), "{name}: {report}");
    let xml = std::fs::read(&out).expect("read").iter().map(|b| *b as char).collect();
    (out, xml)
}
