//! A supplier's file as the receiver reads it: every DTE with its verification and the reception
//! code the SII's message format gives it ("Formato Mensaje de Respuesta a DTE" v1.0: `EstadoRecepEnv`
//! for the envelope, `EstadoRecepDTE` for each DTE). Verification is the SII's: each DTE's signature
//! on the DTE as a document of its own; where a strict, in-context verifier (xmlsec1) would reject a
//! signature the SII accepts, the difference is a warning, not a failure.

use chrono::NaiveDate;
use libxml::tree::{Document, Node};
use serde::Serialize;

use crate::caf::CafTrust;
use crate::domain::Rut;
use crate::engine::XML_DECL;
use crate::verify::{self, Report, Status};
use crate::xml::libxml::{self as lx, child, path};
use crate::xml::schema::Schema;
use crate::xml::{dsig, input, latin1, NS_DSIG};

/// `EstadoRecepEnv` (RespuestaEnvioDTE_v10.xsd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EnvelopeCode {
    Ok = 0,
    Schema = 1,
    Signature = 2,
    WrongReceptor = 3,
    Repeated = 90,
    Unreadable = 91,
    Other = 99,
}

impl EnvelopeCode {
    pub fn code(self) -> i32 {
        self as i32
    }
    /// The SII's glosa for the code.
    pub fn glosa(self) -> &'static str {
        match self {
            EnvelopeCode::Ok => "Envío Recibido Conforme",
            EnvelopeCode::Schema => "Envío Rechazado - Error de Schema",
            EnvelopeCode::Signature => "Envío Rechazado - Error de Firma",
            EnvelopeCode::WrongReceptor => "Envío Rechazado - RUT Receptor No Corresponde",
            EnvelopeCode::Repeated => "Envío Rechazado - Archivo Repetido",
            EnvelopeCode::Unreadable => "Envío Rechazado - Archivo Ilegible",
            EnvelopeCode::Other => "Envío Rechazado - Otros",
        }
    }
}

/// `EstadoRecepDTE` (RespuestaEnvioDTE_v10.xsd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DteCode {
    Ok = 0,
    Signature = 1,
    EmisorRut = 2,
    ReceptorRut = 3,
    Repeated = 4,
    Other = 99,
}

impl DteCode {
    pub fn code(self) -> i32 {
        self as i32
    }
    pub fn glosa(self) -> &'static str {
        match self {
            DteCode::Ok => "DTE Recibido OK",
            DteCode::Signature => "DTE No Recibido - Error de Firma",
            DteCode::EmisorRut => "DTE No Recibido - Error en RUT Emisor",
            DteCode::ReceptorRut => "DTE No Recibido - Error en RUT Receptor",
            DteCode::Repeated => "DTE No Recibido - DTE Repetido",
            DteCode::Other => "DTE No Recibido - Otros",
        }
    }
}

/// One DTE of a supplier's file.
#[derive(Debug, Clone)]
pub struct ReceivedDte {
    pub id: String,
    pub tipo: u16,
    pub folio: i64,
    pub fch_emis: NaiveDate,
    pub rut_emisor: String,
    pub rzn_soc: String,
    /// The issuer's `CorreoEmisor`: where answers go when the mail's sender is unknown.
    pub correo_emisor: Option<String>,
    pub rut_recep: String,
    pub mnt_total: i64,
    /// The DTE as a stand-alone ISO-8859-1 document, as the SII verifies it.
    pub xml: Vec<u8>,
    pub code: DteCode,
    pub glosa: String,
    pub report: Report,
}

/// A supplier's file: an EnvioDTE, or a bare DTE (some issuers mail DTEs unpacked).
#[derive(Debug, Clone)]
pub struct ReceivedEnvelope {
    /// `SetDTE/@ID` (or the bare DTE's `Documento/@ID`): `EnvioDTEID` in the answer.
    pub envio_id: String,
    /// The envelope's own DigestValue (`Digest` in the answer); for a bare DTE, its Documento's.
    pub digest: String,
    pub rut_emisor: Option<String>,
    pub rut_receptor: Option<String>,
    pub code: EnvelopeCode,
    pub glosa: String,
    pub report: Report,
    pub dtes: Vec<ReceivedDte>,
}

impl ReceivedEnvelope {
    fn unreadable(why: String) -> ReceivedEnvelope {
        let mut report = Report { kind: "unreadable".into(), ..Default::default() };
        report.add(Status::Fail, "read", why.clone());
        ReceivedEnvelope {
            envio_id: "desconocido".into(),
            digest: String::new(),
            rut_emisor: None,
            rut_receptor: None,
            code: EnvelopeCode::Unreadable,
            glosa: format!("{}: {}", EnvelopeCode::Unreadable.glosa(), clip(&why, 180)),
            report,
            dtes: Vec::new(),
        }
    }
}

/// The SII's own RUT, the receptor of the copy every issuer uploads.
fn sii() -> Rut {
    Rut::from_number(60803000)
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn text(n: &Node, p: &[&str]) -> String {
    path(n, p).map(|x| x.get_content().trim().to_string()).unwrap_or_default()
}

fn same_rut(a: &str, b: &Rut) -> bool {
    a.trim().parse::<Rut>().ok().as_ref() == Some(b)
}

/// The DigestValue of the Signature directly under `n`.
fn own_digest(n: &Node) -> String {
    n.get_child_elements()
        .into_iter()
        .find(|c| c.get_name() == "Signature" && lx::ns_of(c) == NS_DSIG)
        .and_then(|s| path(&s, &["SignedInfo", "Reference", "DigestValue"]))
        .map(|d| d.get_content().trim().to_string())
        .unwrap_or_default()
}

/// Reads a supplier's file addressed to `company`. Never fails: what cannot be read is code 91.
pub fn read(bytes: &[u8], company: Rut, trust: &CafTrust) -> ReceivedEnvelope {
    let decoded = match input::decode(bytes) {
        Ok(d) => d,
        Err(e) => return ReceivedEnvelope::unreadable(e.to_string()),
    };
    let doc = match input::parse_text(&decoded.text) {
        Ok(d) => d,
        Err(e) => return ReceivedEnvelope::unreadable(e.to_string()),
    };
    let Some(root) = doc.get_root_element() else {
        return ReceivedEnvelope::unreadable("empty document".into());
    };
    match root.get_name().as_str() {
        "EnvioDTE" => envelope(&doc, &root, company, trust),
        "DTE" => bare(&decoded.text, &root, company, trust),
        other => ReceivedEnvelope::unreadable(format!("the root element {other} is not EnvioDTE or DTE")),
    }
}

fn envelope(doc: &Document, root: &Node, company: Rut, trust: &CafTrust) -> ReceivedEnvelope {
    let mut report = Report { kind: "EnvioDTE".into(), ..Default::default() };
    verify::check_schema(&mut report, Schema::EnvioDte, doc);
    let schema_ok = report.passed();
    let sig = root.get_child_elements().into_iter().find(|c| c.get_name() == "Signature" && lx::ns_of(c) == NS_DSIG);
    let sig_ok = match sig {
        Some(s) => {
            let r = dsig::verify(doc, &s);
            verify::sig_check(&mut report, "signature SetDTE (in place)", &r);
            r.ok()
        }
        None => {
            report.add(Status::Fail, "signature SetDTE", "the envelope is not signed");
            false
        }
    };
    let set = child(root, "SetDTE");
    let envio_id = set.as_ref().and_then(|s| s.get_attribute("ID")).unwrap_or_else(|| "SetDoc".into());
    let car = |f: &str| set.as_ref().map(|s| text(s, &["Caratula", f])).filter(|v| !v.is_empty());
    let rut_emisor = car("RutEmisor");
    let rut_receptor = car("RutReceptor");
    let dte_nodes: Vec<Node> = set
        .as_ref()
        .map(|s| s.get_child_elements().into_iter().filter(|c| c.get_name() == "DTE").collect())
        .unwrap_or_default();
    if let Some(s) = &set {
        verify::caratula_check(&mut report, s, &dte_nodes);
    }
    let receptor_ok = rut_receptor.as_deref().is_some_and(|r| same_rut(r, &company));
    // Suppliers do forward the copy they made for the SII; its DTEs still name this company, so it
    // is taken in, and the difference is said.
    let to_sii = !receptor_ok
        && rut_receptor.as_deref().is_some_and(|r| same_rut(r, &sii()))
        && dte_nodes.iter().all(|d| same_rut(&text(d, &["Documento", "Encabezado", "Receptor", "RUTRecep"]), &company));
    if to_sii {
        report.add(Status::Warn, "caratula receptor", format!("the envelope is addressed to the SII (RutReceptor {}), not to this company; its DTEs are addressed to {company}", sii()));
    }
    let receptor_ok = receptor_ok || to_sii;
    let code = if !schema_ok {
        EnvelopeCode::Schema
    } else if !sig_ok {
        EnvelopeCode::Signature
    } else if !receptor_ok {
        EnvelopeCode::WrongReceptor
    } else {
        EnvelopeCode::Ok
    };
    let glosa = match code {
        EnvelopeCode::Ok => code.glosa().to_string(),
        EnvelopeCode::WrongReceptor => format!(
            "{}: the Caratula names {}, this company is {company}",
            code.glosa(),
            rut_receptor.as_deref().unwrap_or("no receptor")
        ),
        _ => format!("{}: {}", code.glosa(), clip(&report.failures().join("; "), 200)),
    };
    let dtes = dte_nodes.iter().map(|n| in_envelope(doc, n, rut_emisor.as_deref(), company, trust)).collect();
    ReceivedEnvelope {
        envio_id,
        digest: set.as_ref().map(|_| own_digest(root)).unwrap_or_default(),
        rut_emisor,
        rut_receptor,
        code,
        glosa,
        report,
        dtes,
    }
}

/// One DTE of an envelope: verified as the SII does (stand-alone), compared with a strict
/// in-context verification, and given its code.
fn in_envelope(
    doc: &Document,
    dte: &Node,
    caratula_emisor: Option<&str>,
    company: Rut,
    trust: &CafTrust,
) -> ReceivedDte {
    let own = doc.node_to_string(dte);
    let strict = child(dte, "Signature").map(|s| dsig::verify(doc, &s).ok());
    let mut d = standalone(&own, company, trust);
    if let (Some(false), true) = (strict, d.code != DteCode::Signature && d.report.checks.iter().any(is_sig_pass)) {
        d.report.add(
            Status::Warn,
            format!("signature DTE {} (in context)", d.id),
            "a strict verifier canonicalising the DTE inside the envelope (xmlsec1) rejects this signature; the SII verifies each DTE as a document of its own, and so it verifies",
        );
    }
    if d.code == DteCode::Ok && caratula_emisor.is_some_and(|e| e.parse::<Rut>().ok() != d.rut_emisor.parse().ok()) {
        d.code = DteCode::EmisorRut;
        d.glosa = format!(
            "{}: the DTE is issued by {}, the Caratula by {}",
            d.code.glosa(),
            d.rut_emisor,
            caratula_emisor.unwrap_or("")
        );
    }
    d
}

fn is_sig_pass(c: &verify::Check) -> bool {
    c.check.starts_with("signature DTE") && c.status == Status::Pass
}

fn bare(textual: &str, root: &Node, company: Rut, trust: &CafTrust) -> ReceivedEnvelope {
    let d = standalone(textual, company, trust);
    let mut report = Report { kind: "DTE".into(), ..Default::default() };
    report.add(
        Status::Warn,
        "envelope",
        "a DTE outside an EnvioDTE: taken in as an envelope of one, with no envelope signature",
    );
    let digest = own_digest(root);
    ReceivedEnvelope {
        envio_id: d.id.clone(),
        digest,
        rut_emisor: Some(d.rut_emisor.clone()),
        rut_receptor: Some(d.rut_recep.clone()),
        code: EnvelopeCode::Ok,
        glosa: EnvelopeCode::Ok.glosa().to_string(),
        report,
        dtes: vec![d],
    }
}

/// A DTE given as its own document's text.
fn standalone(own: &str, company: Rut, trust: &CafTrust) -> ReceivedDte {
    let mut report = Report { kind: "DTE".into(), ..Default::default() };
    let parsed = input::parse_text(own);
    let (doc, root) = match parsed.as_ref().ok().and_then(|d| d.get_root_element().map(|r| (d, r))) {
        Some(x) => x,
        None => {
            report.add(Status::Fail, "DTE", "unreadable");
            return ReceivedDte {
                id: String::new(),
                tipo: 0,
                folio: 0,
                fch_emis: NaiveDate::default(),
                rut_emisor: String::new(),
                rzn_soc: String::new(),
                correo_emisor: None,
                rut_recep: String::new(),
                mnt_total: 0,
                xml: Vec::new(),
                code: DteCode::Other,
                glosa: format!("{}: unreadable", DteCode::Other.glosa()),
                report,
            };
        }
    };
    let enc = |p: &[&str]| text(&root, &[&["Documento", "Encabezado"][..], p].concat());
    let id = crate::xml::libxml::dte_content(&root).and_then(|d| d.get_attribute("ID")).unwrap_or_default();
    let tipo: u16 = enc(&["IdDoc", "TipoDTE"]).parse().unwrap_or(0);
    let kind = if matches!(tipo, 39 | 41) { Schema::BoletaDte } else { Schema::Dte };
    verify::standalone_schema(&mut report, kind, &root, own);
    verify::dte_checks(&mut report, doc, trust, false);
    let rut_emisor = enc(&["Emisor", "RUTEmisor"]);
    let rut_recep = enc(&["Receptor", "RUTRecep"]);
    let fch_emis = NaiveDate::parse_from_str(&enc(&["IdDoc", "FchEmis"]), "%Y-%m-%d");
    let folio = enc(&["IdDoc", "Folio"]).parse::<i64>();
    let mnt_total = enc(&["Totales", "MntTotal"]).parse::<i64>();
    let failed = |prefix: &str| {
        report
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail && c.check.starts_with(prefix))
            .map(|c| c.detail.clone())
            .next()
    };
    let (code, why) = if let Some(w) = failed("signature") {
        (DteCode::Signature, w)
    } else if rut_emisor.parse::<Rut>().is_err() {
        (DteCode::EmisorRut, format!("RUTEmisor {rut_emisor:?} is not a valid RUT"))
    } else if !same_rut(&rut_recep, &company) {
        (DteCode::ReceptorRut, format!("RUTRecep is {rut_recep}, this company is {company}"))
    } else if fch_emis.is_err() || folio.is_err() || mnt_total.is_err() || tipo == 0 {
        (DteCode::Other, "TipoDTE, Folio, FchEmis or MntTotal missing or unreadable".into())
    } else if let Some(w) = report.failures().first() {
        (DteCode::Other, w.trim_start_matches("FAIL ").to_string())
    } else {
        (DteCode::Ok, String::new())
    };
    let glosa =
        if why.is_empty() { code.glosa().to_string() } else { format!("{}: {}", code.glosa(), clip(&why, 200)) };
    // Stored as the SII reads it: ISO-8859-1 with its declaration.
    let mut xml = XML_DECL.as_bytes().to_vec();
    let body = own.trim_start();
    let body = if body.starts_with("<?xml") { body.split_once("?>").map(|x| x.1).unwrap_or(body) } else { body };
    match latin1::encode(body.trim()) {
        Ok(b) => xml.extend(b),
        Err(_) => xml = own.as_bytes().to_vec(),
    }
    ReceivedDte {
        id,
        tipo,
        folio: folio.unwrap_or(0),
        fch_emis: fch_emis.unwrap_or_default(),
        rut_emisor,
        rzn_soc: enc(&["Emisor", "RznSoc"]),
        correo_emisor: Some(enc(&["Emisor", "CorreoEmisor"])).filter(|c| c.contains('@')),
        rut_recep,
        mnt_total: mnt_total.unwrap_or(0),
        xml,
        code,
        glosa,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(p: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_sii_sample_is_received_with_the_strict_verifier_difference_as_a_warning() {
        let env = read(&data("F60T33-ejemplo-oficial-SII.xml"), "77777777-7".parse().unwrap(), &CafTrust::sii_only());
        assert_eq!(env.envio_id, "SetDoc");
        assert_eq!(env.digest, "4OTWXyRl5fw3htjTyZXQtYEsC3E=");
        assert_eq!(env.dtes.len(), 1);
        let d = &env.dtes[0];
        assert_eq!((d.tipo, d.folio, d.mnt_total, d.rut_emisor.as_str()), (33, 60, 119000, "97975000-5"));
        assert!(
            d.report.checks.iter().any(|c| c.status == Status::Warn && c.check.contains("in context")),
            "{:?}",
            d.report.lines()
        );
        assert!(d.report.checks.iter().any(is_sig_pass));
    }

    #[test]
    fn another_receptor_gets_code_3() {
        let env = read(&data("F60T33-ejemplo-oficial-SII.xml"), "76192083-9".parse().unwrap(), &CafTrust::sii_only());
        assert_eq!(env.dtes[0].code, DteCode::ReceptorRut);
    }

    #[test]
    fn garbage_is_code_91_and_a_bare_dte_is_an_envelope_of_one() {
        let env = read(b"<EnvioDTE><SetDTE>", "76192083-9".parse().unwrap(), &CafTrust::sii_only());
        assert_eq!(env.code, EnvelopeCode::Unreadable);
        let bare = read(
            &data("real-dte/DTE--60910000-1--33--2336600.xml"),
            "76192083-9".parse().unwrap(),
            &CafTrust::sii_only(),
        );
        assert_eq!(bare.dtes.len(), 1);
        assert_eq!(bare.dtes[0].folio, 2336600);
    }
}
