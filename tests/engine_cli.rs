//! The DTE engine through its CLI, checked by verifiers nobody here wrote: `xmlsec1` for every
//! signature, `xmllint` for the SII schemas.

mod common;

use std::path::Path;

use common::*;

const TYPES: [u16; 12] = [33, 34, 39, 41, 43, 46, 52, 56, 61, 110, 111, 112];

fn build_ok(dir: &Path, tipo: u16, folio: u64) -> std::path::PathBuf {
    let out = dir.join(format!("{tipo}-{folio}.xml"));
    let o = build(&example(tipo), &caf(tipo), folio, &out, &[]);
    assert!(o.status.success(), "build {tipo}: {}", text(&o));
    out
}

#[test]
fn every_type_builds_and_passes_xmlsec1_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    for tipo in TYPES {
        let out = build_ok(dir.path(), tipo, 7);
        let root = match tipo {
            43 => "Liquidacion",
            110..=112 => "Exportaciones",
            _ => "Documento",
        };
        let x = xmlsec1_verify(&out, &format!("http://www.sii.cl/SiiDte:{root}"), None);
        assert!(x.status.success(), "xmlsec1 rejects the {tipo}: {}", text(&x));
        if tipo != 39 && tipo != 41 {
            let l = xmllint("DTE_v10.xsd", &out);
            assert!(l.status.success(), "xmllint rejects the {tipo}: {}", text(&l));
        }
        let v = run(bin()
            .args(["dte", "verify", "--trust-test-authority"])
            .arg(repo("certs/test-authority.pem"))
            .arg(&out));
        assert!(v.status.success(), "dte verify {tipo}: {}", text(&v));
        let report = text(&v);
        assert!(!report.contains("FAIL"), "{report}");
        for check in ["PASS schema", "PASS signature DTE", "PASS TED DTE", "CAF DTE"] {
            assert!(report.contains(check), "{tipo}: no {check} in {report}");
        }
        // ISO-8859-1 on the wire, with the declaration the SII expects.
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"));
        assert!(std::str::from_utf8(&bytes).is_err() || !bytes.iter().any(|b| *b >= 0x80), "{tipo} is not Latin-1");
    }
}

#[test]
fn a_test_caf_is_refused_unless_its_authority_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.xml");
    let mut c = bin();
    c.args(["dte", "build", "--input"]).arg(example(33));
    c.arg("--company").arg(repo("examples/company.json")).arg("--cert").arg(repo("certs/test-company.p12"));
    c.args(["--cert-password", PASS, "--folio", "1", "--timestamp", TS])
        .arg("--caf")
        .arg(caf(33))
        .arg("--output")
        .arg(&out);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("caf-signature"), "{}", text(&o));
    assert!(!out.exists());
}

/// The DTE elements of an envelope, each as a stand-alone ISO-8859-1 document.
fn extract_dtes(envelope: &[u8]) -> Vec<Vec<u8>> {
    let s = dte_gateway::xml::latin1::decode(envelope);
    let mut out = Vec::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("<DTE ") {
        let j = rest[i..].find("</DTE>").unwrap() + i + "</DTE>".len();
        let doc = format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n{}", &rest[i..j]);
        out.push(dte_gateway::xml::latin1::encode(&doc).unwrap());
        rest = &rest[j..];
    }
    out
}

fn envio(dir: &Path, name: &str, dtes: &[std::path::PathBuf]) -> std::process::Output {
    let mut c = bin();
    c.args(["envio", "build", "--company"]).arg(repo("examples/company.json"));
    c.arg("--cert").arg(repo("certs/test-company.p12")).args([
        "--cert-password",
        PASS,
        "--timestamp",
        "2026-11-20T12:00:00",
    ]);
    c.arg("--output").arg(dir.join(name));
    c.args(dtes);
    run(&mut c)
}

#[test]
fn envelopes_validate_and_every_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let dtes: Vec<_> = [33, 34, 46, 52, 56, 61].iter().map(|t| build_ok(dir.path(), *t, 11)).collect();
    let boletas: Vec<_> = [39, 41].iter().map(|t| build_ok(dir.path(), *t, 11)).collect();

    for (name, files, schema, count) in
        [("envio.xml", &dtes, "EnvioDTE_v10.xsd", 6), ("boletas.xml", &boletas, "EnvioBOLETA_v11.xsd", 2)]
    {
        let o = envio(dir.path(), name, files);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let path = dir.path().join(name);
        let l = xmllint(schema, &path);
        assert!(l.status.success(), "xmllint {name}: {}", text(&l));
        let x = xmlsec1_verify(&path, "http://www.sii.cl/SiiDte:SetDTE", Some("/*/*[local-name()='Signature']"));
        assert!(x.status.success(), "xmlsec1 SetDTE {name}: {}", text(&x));
        let bytes = std::fs::read(&path).unwrap();
        let inner = extract_dtes(&bytes);
        assert_eq!(inner.len(), count);
        for (i, d) in inner.iter().enumerate() {
            let f = dir.path().join(format!("{name}-inner-{i}.xml"));
            std::fs::write(&f, d).unwrap();
            let x = xmlsec1_verify(&f, "http://www.sii.cl/SiiDte:Documento", None);
            assert!(x.status.success(), "inner DTE {i} of {name}: {}", text(&x));
        }
        // Each packed DTE is byte-for-byte the signed file.
        for f in files.iter() {
            let original = dte_gateway::xml::latin1::decode(&std::fs::read(f).unwrap());
            let body = original.split_once("?>\n").unwrap().1;
            assert!(dte_gateway::xml::latin1::decode(&bytes).contains(body), "{} not verbatim", f.display());
        }
        let v = run(bin()
            .args(["dte", "verify", "--trust-test-authority"])
            .arg(repo("certs/test-authority.pem"))
            .arg(&path));
        assert!(v.status.success(), "{}", text(&v));
        assert!(text(&v).contains("PASS signature SetDTE"));
        assert!(text(&v).contains("PASS caratula"));
        let t = dte_gateway::xml::latin1::decode(&bytes);
        assert!(t.contains("<RutReceptor>60803000-K</RutReceptor>"));
        assert!(t.contains("<RutEnvia>11111111-1</RutEnvia>"));
    }

    // Boletas and facturas never share an envelope.
    let mixed = vec![dtes[0].clone(), boletas[0].clone()];
    let o = envio(dir.path(), "mixed.xml", &mixed);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!dir.path().join("mixed.xml").exists());
    // Nor does a folio appear twice.
    let twice = vec![dtes[0].clone(), dtes[0].clone()];
    let o = envio(dir.path(), "twice.xml", &twice);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn legacy_pkcs12_signs_like_a_modern_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("legacy.xml");
    let cert = repo("certs/test-company-legacy.p12");
    let o = build(&example(33), &caf(33), 3, &out, &["--cert", cert.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let x = xmlsec1_verify(&out, "http://www.sii.cl/SiiDte:Documento", None);
    assert!(x.status.success(), "{}", text(&x));
}

/// Writes `json` as an input file after applying `edit` to the given example.
fn edited(dir: &Path, tipo: u16, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(example(tipo)).unwrap()).unwrap();
    edit(&mut v);
    let p = dir.join(format!("edited-{}.json", rand_name()));
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// (name, input, CAF, folio, extra CLI args, expected fragments of the error)
type BadCase<'a> = (&'a str, std::path::PathBuf, std::path::PathBuf, u64, Vec<String>, Vec<&'a str>);

#[test]
fn bad_input_is_a_typed_error_with_exit_2_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |x: &str| x.to_string();
    let long_name = "x".repeat(81);
    let cases: Vec<BadCase> = vec![
        (
            "invalid RUT check digit",
            edited(d, 33, |v| v["Encabezado"]["Receptor"]["RUTRecep"] = "76555835-3".into()),
            caf(33),
            1,
            vec![],
            vec!["Encabezado.Receptor.RUTRecep", "rut-check-digit"],
        ),
        (
            "unknown TipoDTE",
            edited(d, 33, |v| v["Encabezado"]["IdDoc"]["TipoDTE"] = 99.into()),
            caf(33),
            1,
            vec![],
            vec!["Encabezado.IdDoc.TipoDTE", "unknown-type"],
        ),
        (
            "no Detalle",
            edited(d, 33, |v| v["Detalle"] = serde_json::json!([])),
            caf(33),
            1,
            vec![],
            vec!["Detalle", "required"],
        ),
        (
            "61 Detalle lines",
            edited(d, 33, |v| {
                v["Detalle"] = serde_json::Value::Array(vec![serde_json::json!({"NmbItem": "x", "PrcItem": 1}); 61])
            }),
            caf(33),
            1,
            vec![],
            vec!["Detalle", "too-many"],
        ),
        (
            "negative QtyItem",
            edited(d, 33, |v| v["Detalle"][0]["QtyItem"] = (-1).into()),
            caf(33),
            1,
            vec![],
            vec!["Detalle[0].QtyItem", "negative"],
        ),
        (
            "61 without Referencia",
            edited(d, 61, |v| v.as_object_mut().unwrap().remove("Referencia").map(|_| ()).unwrap()),
            caf(61),
            1,
            vec![],
            vec!["Referencia", "required"],
        ),
        ("folio outside the CAF", example(33), caf(33), 100_001, vec![], vec!["folio-out-of-range"]),
        ("expired CAF", example(33), repo("certs/cafs/caf-76192083-9-T33-expired.xml"), 1, vec![], vec!["caf-expired"]),
        (
            "CAF of another RUT",
            example(33),
            repo("certs/cafs/caf-76555835-2-T33.xml"),
            1,
            vec![],
            vec!["caf-wrong-company"],
        ),
        ("CAF of another type", example(33), caf(34), 1, vec![], vec!["caf-wrong-type"]),
        (
            "wrong certificate password",
            example(33),
            caf(33),
            1,
            vec![s("--cert-password"), s("nope")],
            vec!["certificate-password"],
        ),
        (
            "expired certificate",
            example(33),
            caf(33),
            1,
            vec![s("--cert"), repo("certs/test-company-expired.p12").display().to_string()],
            vec!["certificate-expired"],
        ),
        (
            "emoji in NmbItem",
            edited(d, 33, |v| v["Detalle"][0]["NmbItem"] = "Café ☕ 🙂".into()),
            caf(33),
            1,
            vec![],
            vec!["Detalle[0].NmbItem", "not-latin1"],
        ),
        (
            "NmbItem over 80 characters",
            edited(d, 33, |v| v["Detalle"][1]["NmbItem"] = long_name.clone().into()),
            caf(33),
            1,
            vec![],
            vec!["Detalle[1].NmbItem", "too-long"],
        ),
        (
            "declared MntTotal differs",
            edited(d, 33, |v| v["Encabezado"]["Totales"] = serde_json::json!({"MntTotal": 1559589})),
            caf(33),
            1,
            vec![],
            vec!["Encabezado.Totales.MntTotal", "mismatch", "1559588"],
        ),
        (
            "wrong JSON type",
            edited(d, 33, |v| v["Detalle"][0]["QtyItem"] = "uno".into()),
            caf(33),
            1,
            vec![],
            vec!["Detalle[0].QtyItem", "wrong-type"],
        ),
    ];
    for (name, input, caf_file, folio, extra, expect) in cases {
        let out = d.join("never.xml");
        let extra: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
        let o = build(&input, &caf_file, folio, &out, &extra);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {t}");
        for e in expect {
            assert!(t.contains(e), "{name}: expected {e:?} in {t}");
        }
        assert!(!out.exists(), "{name}: an output file was written");
        assert!(!t.contains("panicked"), "{name}: {t}");
    }
}

#[test]
fn official_and_real_samples_verify_with_their_quirks_as_warnings() {
    let cases = [
        (
            "tests/data/F60T33-ejemplo-oficial-SII.xml",
            vec![
                "PASS signature SetDTE",
                "WARN signature DTE F60T33 (stand-alone): X509Certificate does not match KeyValue",
                "PASS CAF DTE F60T33: FRMA signed by SII IDK 100",
            ],
        ),
        (
            "tests/data/real-dte/DTE--60910000-1--33--2336600.xml",
            vec!["WARN encoding: declared windows-1252", "PASS signature DTE", "SII IDK 300"],
        ),
        (
            "tests/data/real-dte/DTE--76354771-K--33--170.xml",
            vec!["WARN signature DTE MiPE76354771-13419: the digest matches only with", "PASS TED"],
        ),
        (
            "tests/data/real-dte/DTE--96670340-7--61--110616.xml",
            vec!["WARN vendor element: <DocPersonalizado>", "PASS schema DTE_v10.xsd"],
        ),
    ];
    for (file, expect) in cases {
        let o = run(bin().args(["dte", "verify"]).arg(repo(file)));
        let t = text(&o);
        assert!(o.status.success(), "{file}: {t}");
        assert!(!t.contains("FAIL"), "{file}: {t}");
        for e in expect {
            assert!(t.contains(e), "{file}: expected {e:?} in {t}");
        }
    }
}

#[test]
fn verify_fails_tampered_documents_and_refuses_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_ok(dir.path(), 33, 21);
    let s = dte_gateway::xml::latin1::decode(&std::fs::read(&out).unwrap());
    let tampered = dir.path().join("tampered.xml");
    std::fs::write(
        &tampered,
        dte_gateway::xml::latin1::encode(&s.replace("<MntTotal>1559588</MntTotal>", "<MntTotal>1559587</MntTotal>"))
            .unwrap(),
    )
    .unwrap();
    let o = run(bin()
        .args(["dte", "verify", "--trust-test-authority"])
        .arg(repo("certs/test-authority.pem"))
        .arg(&tampered));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL signature DTE F21T33"));
    assert!(text(&o).contains("FAIL TED DTE F21T33 data"));
    let x = xmlsec1_verify(&tampered, "http://www.sii.cl/SiiDte:Documento", None);
    assert!(!x.status.success(), "xmlsec1 accepted a tampered document");

    let junk = dir.path().join("junk.xml");
    std::fs::write(&junk, b"<DTE><unclosed>").unwrap();
    assert_eq!(run(bin().args(["dte", "verify"]).arg(&junk)).status.code(), Some(2));
    let xxe = dir.path().join("xxe.xml");
    std::fs::write(
        &xxe,
        b"<?xml version=\"1.0\"?><!DOCTYPE DTE [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><DTE>&x;</DTE>",
    )
    .unwrap();
    let o = run(bin().args(["dte", "verify"]).arg(&xxe));
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o).contains("root:"), "{}", text(&o));
}
