//! EnvioDTE / EnvioBOLETA (NOTES §9): the Carátula in XSD order, each signed DTE inserted verbatim,
//! then SetDTE signed in place. Every DTE's own signature is checked before it is packed, and the
//! finished envelope is validated against its schema and its signature verified again.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::cert::Certificate;
use crate::domain::{Company, Rut, TipoDte};
use crate::engine::XML_DECL;
use crate::error::DteError;
use crate::ted::TS_FORMAT;
use crate::xml::dsig::{self, SignedInfoScope};
use crate::xml::libxml::{self as lx, child, dte_path};
use crate::xml::schema::{self, Schema};
use crate::xml::writer::XmlOut;
use crate::xml::{input, latin1, NS_DSIG, NS_SII, NS_XSI};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvioKind {
    EnvioDte,
    EnvioBoleta,
}

impl EnvioKind {
    pub fn root(self) -> &'static str {
        match self {
            EnvioKind::EnvioDte => "EnvioDTE",
            EnvioKind::EnvioBoleta => "EnvioBOLETA",
        }
    }
    fn schema(self) -> Schema {
        match self {
            EnvioKind::EnvioDte => Schema::EnvioDte,
            EnvioKind::EnvioBoleta => Schema::EnvioBoleta,
        }
    }
    /// (max DTE, max SubTotDTE) from the XSDs.
    fn limits(self) -> (usize, usize) {
        match self {
            EnvioKind::EnvioDte => (2000, 20),
            EnvioKind::EnvioBoleta => (500, 2),
        }
    }
}

/// One signed DTE ready to be packed.
struct Packed {
    tipo: TipoDte,
    folio: String,
    text: String,
}

/// Checks a signed DTE (as its own document) and returns its text without the XML declaration.
fn unpack(i: usize, bytes: &[u8], emisor: Rut) -> Result<Packed, DteError> {
    let ctx = |m: String| DteError::Envelope(format!("DTE #{}: {m}", i + 1));
    let input::Decoded { text, encoding: enc } = input::decode(bytes).map_err(|e| ctx(e.to_string()))?;
    if !matches!(enc.as_str(), "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "utf-8" | "utf8") {
        return Err(ctx(format!("declared {enc}; only ISO-8859-1 (or UTF-8) DTEs are packed")));
    }
    let doc = input::parse_text(&text).map_err(|e| ctx(e.to_string()))?;
    let root = doc.get_root_element().ok_or_else(|| ctx("empty document".into()))?;
    if root.get_name() != "DTE" {
        return Err(ctx(format!("root element is {}, not DTE", root.get_name())));
    }
    let id_doc =
        dte_path(&root, &["Encabezado", "IdDoc"]).ok_or_else(|| ctx("no Documento/Encabezado/IdDoc".into()))?;
    let tipo = lx::child_text(&id_doc, "TipoDTE")
        .and_then(|t| t.trim().parse().ok())
        .and_then(TipoDte::from_code)
        .ok_or_else(|| ctx("TipoDTE missing or not supported".into()))?;
    let folio = lx::child_text(&id_doc, "Folio").unwrap_or_default().trim().to_string();
    let rut = dte_path(&root, &["Encabezado", "Emisor", "RUTEmisor"]).map(|n| n.get_content()).unwrap_or_default();
    if rut.trim().parse::<Rut>().ok() != Some(emisor) {
        return Err(ctx(format!("issued by {rut}, not by the company {emisor}")));
    }
    let sig = child(&root, "Signature").ok_or_else(|| ctx("the DTE is not signed".into()))?;
    let report = dsig::verify(&doc, &sig);
    if !report.ok() {
        return Err(ctx(format!("its signature does not verify: {}", report.errors.join("; "))));
    }
    Ok(Packed { tipo, folio, text: text.trim_end().to_string() })
}

/// Builds and signs an envelope of `dtes` (each a signed DTE file's bytes) for `rut_receptor`
/// (the SII, 60803000-K, unless it is the copy for a buyer).
pub fn build(
    company: &Company,
    cert: &Certificate,
    rut_receptor: Rut,
    dtes: &[Vec<u8>],
    now: NaiveDateTime,
) -> Result<Vec<u8>, DteError> {
    let emisor = company.rut()?;
    cert.check_valid_at(now)?;
    let rut_envia = cert.holder.ok_or_else(|| {
        DteError::Envelope("the certificate carries no holder RUT (neither subjectAltName 1.3.6.1.4.1.8321.1 nor the subject serialNumber)".into())
    })?;
    if dtes.is_empty() {
        return Err(DteError::Envelope("an envelope needs at least one DTE".into()));
    }
    let packed = dtes.iter().enumerate().map(|(i, b)| unpack(i, b, emisor)).collect::<Result<Vec<_>, _>>()?;
    let boletas = packed.iter().filter(|p| p.tipo.is_boleta()).count();
    let kind = match boletas {
        0 => EnvioKind::EnvioDte,
        n if n == packed.len() => EnvioKind::EnvioBoleta,
        _ => {
            return Err(DteError::Envelope(
                "boletas (39, 41) travel in EnvioBOLETA and other types in EnvioDTE: do not mix them".into(),
            ))
        }
    };
    let mut seen = std::collections::HashSet::new();
    for p in &packed {
        if !seen.insert((p.tipo, p.folio.clone())) {
            return Err(DteError::Envelope(format!("folio {} of type {} appears twice", p.folio, p.tipo.code())));
        }
    }
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for p in &packed {
        *counts.entry(p.tipo.code()).or_default() += 1;
    }
    let (max_dte, max_types) = kind.limits();
    if packed.len() > max_dte || counts.len() > max_types {
        return Err(DteError::Envelope(format!(
            "{} allows at most {max_dte} DTE of {max_types} types; got {} of {}",
            kind.root(),
            packed.len(),
            counts.len()
        )));
    }

    let mut o = XmlOut::with_capacity(packed.iter().map(|p| p.text.len()).sum::<usize>() + 8192);
    let schema_location = format!("{NS_SII} {}", kind.schema().file());
    o.start_attrs(
        kind.root(),
        &[("xmlns", NS_SII), ("xmlns:xsi", NS_XSI), ("version", "1.0"), ("xsi:schemaLocation", &schema_location)],
    );
    o.start_attrs("SetDTE", &[("ID", "SetDoc")]);
    o.start_attrs("Caratula", &[("version", "1.0")]);
    o.leaf_display("RutEmisor", emisor);
    o.leaf_display("RutEnvia", rut_envia);
    o.leaf_display("RutReceptor", rut_receptor);
    o.leaf_display("FchResol", company.fch_resol);
    o.leaf_display("NroResol", company.nro_resol);
    o.leaf_display("TmstFirmaEnv", now.format(TS_FORMAT));
    for (tipo, n) in &counts {
        o.start("SubTotDTE");
        o.leaf_display("TpoDTE", tipo);
        o.leaf_display("NroDTE", n);
        o.end("SubTotDTE");
    }
    o.end("Caratula");
    for p in &packed {
        o.raw(&p.text);
    }
    o.end("SetDTE");
    let unsigned = o.into_string();

    // SetDTE is digested in its final context: the root's namespaces are in scope.
    let doc = input::parse_text(&format!("{unsigned}</{}>", kind.root())).map_err(|e| DteError::Xml(e.to_string()))?;
    let set = doc
        .get_root_element()
        .and_then(|r| child(&r, "SetDTE"))
        .ok_or_else(|| DteError::Xml("SetDTE not found".into()))?;
    let c14n = lx::c14n(&doc, &set).map_err(DteError::Xml)?;
    let signature = dsig::sign(cert, "#SetDoc", &c14n, SignedInfoScope::Envelope)?;
    let xml = format!("{unsigned}{signature}</{}>", kind.root());
    let mut bytes = XML_DECL.as_bytes().to_vec();
    bytes.extend(
        latin1::encode(&xml)
            .map_err(|c| DteError::Envelope(format!("character {c:?} cannot be sent in ISO-8859-1")))?,
    );

    let doc = input::parse(&bytes).map_err(|e| DteError::Xml(e.to_string()))?.0;
    schema::validate(kind.schema(), &doc)
        .map_err(|errors| DteError::Schema { schema: kind.schema().file(), errors })?;
    let root = doc.get_root_element().ok_or_else(|| DteError::Xml("empty envelope".into()))?;
    let sig = root.get_child_elements().into_iter().find(|c| c.get_name() == "Signature" && lx::ns_of(c) == NS_DSIG);
    let report = sig.map(|s| dsig::verify(&doc, &s)).unwrap_or_default();
    if !report.ok() {
        return Err(DteError::Signature(format!(
            "the envelope does not verify after signing: {}",
            report.errors.join("; ")
        )));
    }
    Ok(bytes)
}
