//! The verification report for any DTE, EnvioDTE or EnvioBOLETA: schema, every signature (each
//! DTE's as a stand-alone document, the SII's rule; SetDTE's in place), every TED and its CAF.
//! Known quirks of real-world files are reported as warnings, never as passes or crashes.

use chrono::NaiveDate;
use libxml::tree::{Document, Node};

use crate::caf::CafTrust;
use crate::crypto::{b64, rsa_sha1_verify};
use crate::xml::dsig;
use crate::xml::libxml::{self as lx, child, child_text, dte_content, dte_path, path};
use crate::xml::schema::{self, Schema};
use crate::xml::{input, latin1, NS_DSIG, NS_SII};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub status: Status,
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub kind: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub(crate) fn add(&mut self, status: Status, check: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check { status, check: check.into(), detail: detail.into() });
    }
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
    /// The failed checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.starts_with("FAIL")).collect()
    }

    /// One line per check, as the CLI prints it.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| {
                let s = match c.status {
                    Status::Pass => "PASS",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                if c.detail.is_empty() {
                    format!("{s} {}", c.check)
                } else {
                    format!("{s} {}: {}", c.check, c.detail)
                }
            })
            .collect()
    }
}

/// Why a file could not be read at all (CLI exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Xml(#[from] input::XmlInputError),
    #[error("{0}")]
    Empty(String),
    #[error("the root element {0} is not DTE, EnvioDTE or EnvioBOLETA")]
    Root(String),
}

/// Inserts `xmlns="…SiiDte"` into the root start tag of a namespace-less document.
fn add_sii_namespace(text: &str, root: &str) -> Option<String> {
    let start = text.find(&format!("<{root}"))?;
    let at = start + 1 + root.len();
    Some(format!("{} xmlns=\"{NS_SII}\"{}", &text[..at], &text[at..]))
}

pub fn verify(bytes: &[u8], trust: &CafTrust) -> Result<Report, Unreadable> {
    let mut r = Report::default();
    let input::Decoded { text, encoding: enc } = input::decode(bytes)?;
    match enc.as_str() {
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" => {}
        other => r.add(Status::Warn, "encoding", format!("declared {other}; the SII requires ISO-8859-1")),
    }
    let doc = input::parse_text(&text)?;
    let root = doc.get_root_element().ok_or_else(|| Unreadable::Empty("empty document".into()))?;
    let name = root.get_name();
    r.kind = name.clone();
    match name.as_str() {
        "EnvioDTE" | "EnvioBOLETA" => {
            let kind = if name == "EnvioDTE" { Schema::EnvioDte } else { Schema::EnvioBoleta };
            check_schema(&mut r, kind, &doc);
            let set = child(&root, "SetDTE");
            match root.get_child_elements().into_iter().find(|c| c.get_name() == "Signature" && lx::ns_of(c) == NS_DSIG)
            {
                Some(sig) => sig_check(&mut r, "signature SetDTE (in place)", &dsig::verify(&doc, &sig)),
                None => r.add(Status::Fail, "signature SetDTE", "the envelope is not signed"),
            }
            let Some(set) = set else {
                r.add(Status::Fail, "structure", "no SetDTE");
                return Ok(r);
            };
            let dtes: Vec<Node> = set.get_child_elements().into_iter().filter(|c| c.get_name() == "DTE").collect();
            caratula_check(&mut r, &set, &dtes);
            for dte in &dtes {
                // The SII verifies each DTE's signature on the DTE as a document of its own.
                let own = doc.node_to_string(dte);
                match input::parse_text(&own) {
                    Ok(d) => dte_checks(&mut r, &d, trust, false),
                    Err(e) => r.add(Status::Fail, "DTE", e.to_string()),
                }
            }
        }
        "DTE" => {
            let tipo = dte_path(&root, &["Encabezado", "IdDoc", "TipoDTE"]).map(|n| n.get_content().trim().to_string());
            let kind = if matches!(tipo.as_deref(), Some("39") | Some("41")) { Schema::BoletaDte } else { Schema::Dte };
            standalone_schema(&mut r, kind, &root, &text);
            dte_checks(&mut r, &doc, trust, true);
        }
        other => return Err(Unreadable::Root(other.to_string())),
    }
    Ok(r)
}

pub(crate) fn check_schema(r: &mut Report, kind: Schema, doc: &Document) {
    match schema::validate(kind, doc) {
        Ok(()) => r.add(Status::Pass, format!("schema {}", kind.file()), ""),
        Err(e) => r.add(Status::Fail, format!("schema {}", kind.file()), e.join("; ")),
    }
}

/// A stand-alone DTE: issuers sign them without a namespace and some append vendor elements after
/// the Signature. Both are named as warnings and the SII content is validated without them.
pub(crate) fn standalone_schema(r: &mut Report, kind: Schema, root: &Node, text: &str) {
    let mut text = text.to_string();
    if lx::ns_of(root).is_empty() {
        r.add(
            Status::Warn,
            "namespace",
            "the DTE has no SiiDte namespace; validated with xmlns=\"http://www.sii.cl/SiiDte\" added",
        );
        match add_sii_namespace(&text, "DTE") {
            Some(t) => text = t,
            None => return r.add(Status::Fail, format!("schema {}", kind.file()), "cannot add the namespace"),
        }
    }
    let doc = match input::parse_text(&text) {
        Ok(d) => d,
        Err(e) => return r.add(Status::Fail, format!("schema {}", kind.file()), e.to_string()),
    };
    if let Some(root) = doc.get_root_element() {
        for mut extra in root
            .get_child_elements()
            .into_iter()
            .filter(|c| !matches!(c.get_name().as_str(), "Documento" | "Liquidacion" | "Exportaciones" | "Signature"))
        {
            r.add(
                Status::Warn,
                "vendor element",
                format!("<{}> after the SII content is not in the SII schema; ignored", extra.get_name()),
            );
            extra.unlink();
        }
    }
    check_schema(r, kind, &doc);
}

pub(crate) fn sig_check(r: &mut Report, what: &str, s: &dsig::SigReport) {
    for w in &s.warnings {
        r.add(Status::Warn, what, w.clone());
    }
    if s.ok() {
        r.add(Status::Pass, what, s.signer.clone().map(|x| format!("signed by {x}")).unwrap_or_default());
    } else {
        r.add(Status::Fail, what, s.errors.join("; "));
    }
}

pub(crate) fn caratula_check(r: &mut Report, set: &Node, dtes: &[Node]) {
    let Some(car) = child(set, "Caratula") else {
        return r.add(Status::Fail, "caratula", "no Caratula");
    };
    let mut declared: Vec<(String, usize)> = car
        .get_child_elements()
        .into_iter()
        .filter(|c| c.get_name() == "SubTotDTE")
        .map(|s| {
            (
                child_text(&s, "TpoDTE").unwrap_or_default().trim().to_string(),
                child_text(&s, "NroDTE").unwrap_or_default().trim().parse().unwrap_or(0),
            )
        })
        .collect();
    let mut actual: std::collections::BTreeMap<String, usize> = Default::default();
    for d in dtes {
        let t = dte_path(d, &["Encabezado", "IdDoc", "TipoDTE"])
            .map(|n| n.get_content().trim().to_string())
            .unwrap_or_default();
        *actual.entry(t).or_default() += 1;
    }
    declared.sort();
    let actual: Vec<(String, usize)> = actual.into_iter().collect();
    if declared == actual {
        r.add(Status::Pass, "caratula", format!("{} DTE, SubTotDTE match", dtes.len()));
    } else {
        r.add(Status::Fail, "caratula", format!("SubTotDTE {declared:?} but the envelope holds {actual:?}"));
    }
}

fn text_of(n: &Node, p: &[&str]) -> String {
    path(n, p).map(|x| x.get_content().trim().to_string()).unwrap_or_default()
}

/// Signature and TED of one DTE, given as its own document.
pub(crate) fn dte_checks(r: &mut Report, doc: &Document, trust: &CafTrust, standalone: bool) {
    let Some(root) = doc.get_root_element() else { return };
    let Some(documento) = dte_content(&root) else {
        return r.add(Status::Fail, "DTE", "no Documento");
    };
    let id = documento.get_attribute("ID").unwrap_or_default();
    let label = format!("DTE {id}");
    match child(&root, "Signature") {
        Some(sig) => {
            let what =
                if standalone { format!("signature {label}") } else { format!("signature {label} (stand-alone)") };
            let mut report = dsig::verify(doc, &sig);
            if !report.digest_ok && lx::ns_of(&root).is_empty() {
                // SII's MiPyme portal signs `<DTE xmlns=SiiDte>` and hands out the file without the
                // namespace: the digest then matches only with the namespace back in scope.
                if let Some(mut again) = namespaced_again(doc, &root).filter(|a| a.ok()) {
                    again.warnings.push("the digest matches only with xmlns=\"http://www.sii.cl/SiiDte\" in scope (signed namespaced, stored without)".into());
                    report = again;
                }
            }
            sig_check(r, &what, &report);
        }
        None => r.add(Status::Fail, format!("signature {label}"), "the DTE is not signed"),
    }
    ted_check(r, &label, &documento, trust);
}

fn namespaced_again(doc: &Document, root: &Node) -> Option<dsig::SigReport> {
    let text = add_sii_namespace(&doc.node_to_string(root), "DTE")?;
    let d = input::parse_text(&text).ok()?;
    let sig = child(&d.get_root_element()?, "Signature")?;
    Some(dsig::verify(&d, &sig))
}

fn ted_check(r: &mut Report, label: &str, documento: &Node, trust: &CafTrust) {
    let what = format!("TED {label}");
    let Some(ted) = child(documento, "TED") else {
        return r.add(Status::Fail, what, "no TED");
    };
    let (Some(dd), Some(frmt)) = (child(&ted, "DD"), child_text(&ted, "FRMT")) else {
        return r.add(Status::Fail, what, "TED without DD or FRMT");
    };
    let key = (|| {
        let m = b64(&text_of(&dd, &["CAF", "DA", "RSAPK", "M"])).ok()?;
        let e = b64(&text_of(&dd, &["CAF", "DA", "RSAPK", "E"])).ok()?;
        let rsa = openssl::rsa::Rsa::from_public_components(
            openssl::bn::BigNum::from_slice(&m).ok()?,
            openssl::bn::BigNum::from_slice(&e).ok()?,
        )
        .ok()?;
        openssl::pkey::PKey::from_rsa(rsa).ok()
    })();
    let (Some(key), Ok(sig)) = (key, b64(&frmt)) else {
        return r.add(Status::Fail, what, "unreadable CAF key or FRMT");
    };
    let signed = [false, true]
        .into_iter()
        .find(|aq| latin1::encode(&lx::flatten(&dd, *aq)).is_ok_and(|bytes| rsa_sha1_verify(&key, &bytes, &sig)));
    match signed {
        Some(false) => r.add(Status::Pass, what.clone(), "FRMT verifies with the CAF key"),
        Some(true) => r.add(Status::Warn, what.clone(), "FRMT verifies only with ' and \" escaped in text"),
        None => r.add(Status::Fail, what.clone(), "FRMT does not verify with the CAF key"),
    }

    // The DD must say what the document says.
    let enc = |p: &[&str]| text_of(documento, &[&["Encabezado"][..], p].concat());
    let pairs = [
        ("RE", enc(&["Emisor", "RUTEmisor"])),
        ("TD", enc(&["IdDoc", "TipoDTE"])),
        ("F", enc(&["IdDoc", "Folio"])),
        ("FE", enc(&["IdDoc", "FchEmis"])),
        ("RR", enc(&["Receptor", "RUTRecep"])),
        ("MNT", enc(&["Totales", "MntTotal"])),
    ];
    let bad: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| text_of(&dd, &[k]) != *v)
        .map(|(k, v)| format!("DD/{k} {} ≠ {v}", text_of(&dd, &[k])))
        .collect();
    if bad.is_empty() {
        r.add(Status::Pass, format!("{what} data"), "RE, TD, F, FE, RR, MNT match the document");
    } else {
        r.add(Status::Fail, format!("{what} data"), bad.join("; "));
    }

    // The CAF inside the TED: signed by the SII (or a trusted test authority), covering the folio.
    let caf_what = format!("CAF {label}");
    let Some(da) = path(&dd, &["CAF", "DA"]) else {
        return r.add(Status::Fail, caf_what, "no CAF/DA");
    };
    let idk: i64 = text_of(&da, &["IDK"]).parse().unwrap_or(-1);
    let frma = b64(&text_of(&dd, &["CAF", "FRMA"])).unwrap_or_default();
    let verdict = [false, true]
        .into_iter()
        .map(|aq| latin1::encode(&lx::flatten(&da, aq)).map_err(|_| ()).map(|b| trust.verify(idk, &b, &frma)))
        .find(|v| matches!(v, Ok(Ok(_))));
    match verdict {
        Some(Ok(Ok(a))) => {
            let who = match a {
                crate::caf::Authority::SiiCertificacion => "SII IDK 100 (certificación)",
                crate::caf::Authority::SiiProduccion => "SII IDK 300 (producción)",
                crate::caf::Authority::Test => "the trusted TEST authority (not valid with the SII)",
            };
            let st = if a == crate::caf::Authority::Test { Status::Warn } else { Status::Pass };
            r.add(st, caf_what.clone(), format!("FRMA signed by {who}"));
        }
        _ => {
            let why = latin1::encode(&lx::flatten(&da, false)).map(|b| trust.verify(idk, &b, &frma)).map_err(|_| ());
            let msg = match why {
                Ok(Err(e)) => e.to_string(),
                _ => "FRMA does not verify".into(),
            };
            r.add(Status::Fail, caf_what.clone(), msg);
        }
    }
    let folio: u64 = enc(&["IdDoc", "Folio"]).parse().unwrap_or(0);
    let (d, h): (u64, u64) =
        (text_of(&da, &["RNG", "D"]).parse().unwrap_or(0), text_of(&da, &["RNG", "H"]).parse().unwrap_or(0));
    let range_ok = folio >= d
        && folio <= h
        && text_of(&da, &["TD"]) == enc(&["IdDoc", "TipoDTE"])
        && text_of(&da, &["RE"]) == enc(&["Emisor", "RUTEmisor"]);
    let fa = NaiveDate::parse_from_str(&text_of(&da, &["FA"]), "%Y-%m-%d").ok();
    let fe = NaiveDate::parse_from_str(&enc(&["IdDoc", "FchEmis"]), "%Y-%m-%d").ok();
    if !range_ok {
        r.add(
            Status::Fail,
            format!("{caf_what} range"),
            format!(
                "folio {folio} of type {} by {} is not in the CAF ({}-{} of type {} for {})",
                enc(&["IdDoc", "TipoDTE"]),
                enc(&["Emisor", "RUTEmisor"]),
                d,
                h,
                text_of(&da, &["TD"]),
                text_of(&da, &["RE"])
            ),
        );
    } else if fa.zip(fe).is_some_and(|(fa, fe)| fe < fa) {
        r.add(Status::Fail, format!("{caf_what} range"), "FchEmis is before the CAF's authorisation");
    } else {
        r.add(Status::Pass, format!("{caf_what} range"), format!("folio {folio} in {d}-{h}"));
    }
}
