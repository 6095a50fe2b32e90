//! The receiver's answers to a supplier, signed with the receiver's certificate and validated
//! against their schemas before they leave: `RespuestaDTE` with `RecepcionEnvio` (the technical
//! receipt) or `ResultadoDTE` (the commercial result) — SII "Formato Mensaje de Respuesta a DTE"
//! v1.0, RespuestaEnvioDTE_v10.xsd — and `EnvioRecibos` (Ley 19.983 receipt of goods or services,
//! EnvioRecibos_v10.xsd: one signature per `DocumentoRecibo`, one for `SetRecibos`).

use chrono::{NaiveDate, NaiveDateTime};

use crate::cert::Certificate;
use crate::domain::Rut;
use crate::engine::XML_DECL;
use crate::error::DteError;
use crate::ted::TS_FORMAT;
use crate::xml::dsig::{self, SignedInfoScope};
use crate::xml::libxml::{self as lx};
use crate::xml::schema::{self, Schema};
use crate::xml::writer::XmlOut;
use crate::xml::{input, latin1, NS_SII, NS_XSI};

/// The fixed declaration of every `Recibo` (Recibos_v10.xsd, Ley 19.983 art. 4 b and 5 c).
pub const DECLARACION: &str = "El acuse de recibo que se declara en este acto, de acuerdo a lo dispuesto en la letra b) del Art. 4, y la letra c) del Art. 5 de la Ley 19.983, acredita que la entrega de mercaderias o servicio(s) prestado(s) ha(n) sido recibido(s).";

/// Who answers whom, and when.
#[derive(Debug, Clone)]
pub struct Responder {
    /// The receiving company (`RutResponde`).
    pub rut_responde: Rut,
    /// The supplier (`RutRecibe`).
    pub rut_recibe: Rut,
    pub contacto: Option<String>,
    pub mail: Option<String>,
    pub now: NaiveDateTime,
}

/// The identity of a DTE as the answers repeat it.
#[derive(Debug, Clone)]
pub struct DteRef {
    pub tipo: u16,
    pub folio: i64,
    pub fch_emis: NaiveDate,
    pub rut_emisor: Rut,
    pub rut_recep: Rut,
    pub mnt_total: i64,
}

#[derive(Debug, Clone)]
pub struct RecepcionDte {
    pub dte: DteRef,
    pub estado: i32,
    pub glosa: String,
}

#[derive(Debug, Clone)]
pub struct RecepcionEnvio {
    pub nmb_envio: String,
    pub fch_recep: NaiveDateTime,
    pub cod_envio: i64,
    pub envio_dte_id: String,
    pub digest: Option<String>,
    pub rut_emisor: Option<Rut>,
    pub rut_receptor: Option<Rut>,
    pub estado: i32,
    pub glosa: String,
    pub dtes: Vec<RecepcionDte>,
}

/// `EstadoDTE` of a commercial result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstadoDte {
    Aceptado = 0,
    AceptadoConDiscrepancia = 1,
    Rechazado = 2,
}

#[derive(Debug, Clone)]
pub struct ResultadoDte {
    pub dte: DteRef,
    pub cod_envio: i64,
    pub estado: EstadoDte,
    pub glosa: String,
}

/// At most `n` characters that ISO-8859-1 can carry (others become `?`), without control characters.
fn cut(s: &str, n: usize) -> String {
    s.chars().filter(|c| !c.is_control()).map(|c| if c as u32 > 0xFF { '?' } else { c }).take(n).collect()
}

fn dte_fields(o: &mut XmlOut, d: &DteRef, tipo_tag: &str) {
    o.leaf_display(tipo_tag, d.tipo);
    o.leaf_display("Folio", d.folio);
    o.leaf_display("FchEmis", d.fch_emis);
    o.leaf_display("RUTEmisor", d.rut_emisor);
    o.leaf_display("RUTRecep", d.rut_recep);
    o.leaf_display("MntTotal", d.mnt_total);
}

fn root_start(o: &mut XmlOut, root: &str, schema: Schema) {
    let location = format!("{NS_SII} {}", schema.file());
    o.start_attrs(
        root,
        &[("xmlns", NS_SII), ("xmlns:xsi", NS_XSI), ("version", "1.0"), ("xsi:schemaLocation", &location)],
    );
}

fn caratula(o: &mut XmlOut, r: &Responder, id_respuesta: Option<i64>, detalles: Option<usize>, tmst_tag: &str) {
    o.start_attrs("Caratula", &[("version", "1.0")]);
    o.leaf_display("RutResponde", r.rut_responde);
    o.leaf_display("RutRecibe", r.rut_recibe);
    if let Some(id) = id_respuesta {
        o.leaf_display("IdRespuesta", id);
    }
    if let Some(n) = detalles {
        o.leaf_display("NroDetalles", n);
    }
    o.leaf_opt("NmbContacto", r.contacto.as_deref().map(|c| cut(c, 40)).as_deref());
    o.leaf_opt("MailContacto", r.mail.as_deref().map(|c| cut(c, 80)).as_deref());
    o.leaf_display(tmst_tag, r.now.format(TS_FORMAT));
    o.end("Caratula");
}

/// Digests the element `#id` of `text` (closed with `close`) in its final context and returns
/// the Signature for it.
fn sign_in_context(text_unclosed: &str, close: &str, id: &str, cert: &Certificate) -> Result<String, DteError> {
    let doc = input::parse_text(&format!("{text_unclosed}{close}")).map_err(|e| DteError::Xml(e.to_string()))?;
    let root = doc.get_root_element().ok_or_else(|| DteError::Xml("empty answer".into()))?;
    let mut all = Vec::new();
    for name in ["Resultado", "SetRecibos", "DocumentoRecibo"] {
        lx::descendants(&root, name, &mut all);
    }
    let node = all
        .into_iter()
        .find(|n| n.get_attribute("ID").as_deref() == Some(id))
        .ok_or_else(|| DteError::Xml(format!("element #{id} not found")))?;
    let c14n = lx::c14n(&doc, &node).map_err(DteError::Xml)?;
    Ok(dsig::sign(cert, &format!("#{id}"), &c14n, SignedInfoScope::Envelope)?)
}

/// ISO-8859-1 bytes, validated against `schema`, every signature verified again.
fn finish(xml: &str, schema: Schema) -> Result<Vec<u8>, DteError> {
    let mut bytes = XML_DECL.as_bytes().to_vec();
    bytes.extend(
        latin1::encode(xml).map_err(|c| DteError::Envelope(format!("character {c:?} cannot be sent in ISO-8859-1")))?,
    );
    let doc = input::parse(&bytes).map_err(|e| DteError::Xml(e.to_string()))?.0;
    schema::validate(schema, &doc).map_err(|errors| DteError::Schema { schema: schema.file(), errors })?;
    let root = doc.get_root_element().ok_or_else(|| DteError::Xml("empty answer".into()))?;
    let mut sigs = Vec::new();
    lx::descendants(&root, "Signature", &mut sigs);
    for s in sigs {
        let r = dsig::verify(&doc, &s);
        if !r.ok() {
            return Err(DteError::Signature(format!(
                "the answer does not verify after signing: {}",
                r.errors.join("; ")
            )));
        }
    }
    Ok(bytes)
}

fn check_cert(cert: &Certificate, now: NaiveDateTime) -> Result<(), DteError> {
    cert.check_valid_at(now)?;
    Ok(())
}

/// `RespuestaDTE` with one `RecepcionEnvio` per envelope received.
pub fn recepcion_envio(
    r: &Responder,
    cert: &Certificate,
    id_respuesta: i64,
    envios: &[RecepcionEnvio],
) -> Result<Vec<u8>, DteError> {
    check_cert(cert, r.now)?;
    if envios.is_empty() || envios.len() > 1000 {
        return Err(DteError::Envelope("a RespuestaDTE answers 1 to 1000 envelopes".into()));
    }
    let mut o = XmlOut::with_capacity(2048 + envios.len() * 1024);
    root_start(&mut o, "RespuestaDTE", Schema::RespuestaDte);
    let id = format!("R{id_respuesta}");
    o.start_attrs("Resultado", &[("ID", &id)]);
    caratula(&mut o, r, Some(id_respuesta), Some(envios.len()), "TmstFirmaResp");
    for e in envios {
        o.start("RecepcionEnvio");
        o.leaf("NmbEnvio", &cut(&e.nmb_envio, 80));
        o.leaf_display("FchRecep", e.fch_recep.format(TS_FORMAT));
        o.leaf_display("CodEnvio", e.cod_envio);
        o.leaf("EnvioDTEID", &cut(&e.envio_dte_id, 80));
        o.leaf_opt("Digest", e.digest.as_deref().filter(|d| !d.is_empty()));
        o.leaf_display_opt("RutEmisor", e.rut_emisor);
        o.leaf_display_opt("RutReceptor", e.rut_receptor);
        o.leaf_display("EstadoRecepEnv", e.estado);
        o.leaf("RecepEnvGlosa", &cut(&e.glosa, 256));
        if !e.dtes.is_empty() {
            o.leaf_display("NroDTE", e.dtes.len());
        }
        for d in &e.dtes {
            o.start("RecepcionDTE");
            dte_fields(&mut o, &d.dte, "TipoDTE");
            o.leaf_display("EstadoRecepDTE", d.estado);
            o.leaf("RecepDTEGlosa", &cut(&d.glosa, 256));
            o.end("RecepcionDTE");
        }
        o.end("RecepcionEnvio");
    }
    o.end("Resultado");
    let unsigned = o.into_string();
    let sig = sign_in_context(&unsigned, "</RespuestaDTE>", &id, cert)?;
    finish(&format!("{unsigned}{sig}</RespuestaDTE>"), Schema::RespuestaDte)
}

/// `RespuestaDTE` with the commercial result of each DTE.
pub fn resultado_dte(
    r: &Responder,
    cert: &Certificate,
    id_respuesta: i64,
    items: &[ResultadoDte],
) -> Result<Vec<u8>, DteError> {
    check_cert(cert, r.now)?;
    if items.is_empty() || items.len() > 1000 {
        return Err(DteError::Envelope("a RespuestaDTE answers 1 to 1000 DTEs".into()));
    }
    let mut o = XmlOut::with_capacity(2048 + items.len() * 512);
    root_start(&mut o, "RespuestaDTE", Schema::RespuestaDte);
    let id = format!("R{id_respuesta}");
    o.start_attrs("Resultado", &[("ID", &id)]);
    caratula(&mut o, r, Some(id_respuesta), Some(items.len()), "TmstFirmaResp");
    for i in items {
        o.start("ResultadoDTE");
        dte_fields(&mut o, &i.dte, "TipoDTE");
        o.leaf_display("CodEnvio", i.cod_envio);
        o.leaf_display("EstadoDTE", i.estado as i32);
        o.leaf("EstadoDTEGlosa", &cut(&i.glosa, 256));
        o.end("ResultadoDTE");
    }
    o.end("Resultado");
    let unsigned = o.into_string();
    let sig = sign_in_context(&unsigned, "</RespuestaDTE>", &id, cert)?;
    finish(&format!("{unsigned}{sig}</RespuestaDTE>"), Schema::RespuestaDte)
}

/// `EnvioRecibos`: one signed `Recibo` per DTE (`Recinto` is where the goods were received) and
/// the set signed again. `RutFirma` is the certificate holder's RUT.
pub fn envio_recibos(r: &Responder, cert: &Certificate, recibos: &[(DteRef, String)]) -> Result<Vec<u8>, DteError> {
    check_cert(cert, r.now)?;
    let rut_firma = cert.holder.ok_or_else(|| {
        DteError::Envelope("the certificate carries no holder RUT (neither subjectAltName 1.3.6.1.4.1.8321.1 nor the subject serialNumber)".into())
    })?;
    if recibos.is_empty() {
        return Err(DteError::Envelope("EnvioRecibos needs at least one Recibo".into()));
    }
    let ids: Vec<String> =
        recibos.iter().map(|(d, _)| format!("R{}T{}F{}", d.rut_emisor.number(), d.tipo, d.folio)).collect();
    let render = |sigs: &[String]| {
        let mut o = XmlOut::with_capacity(2048 + recibos.len() * 4096);
        root_start(&mut o, "EnvioRecibos", Schema::EnvioRecibos);
        o.start_attrs("SetRecibos", &[("ID", "SetRecibos")]);
        caratula(&mut o, r, None, None, "TmstFirmaEnv");
        for (i, (d, recinto)) in recibos.iter().enumerate() {
            o.start_attrs("Recibo", &[("version", "1.0")]);
            o.start_attrs("DocumentoRecibo", &[("ID", &ids[i])]);
            dte_fields(&mut o, d, "TipoDoc");
            o.leaf("Recinto", &cut(recinto, 80));
            o.leaf_display("RutFirma", rut_firma);
            o.leaf("Declaracion", DECLARACION);
            o.leaf_display("TmstFirmaRecibo", r.now.format(TS_FORMAT));
            o.end("DocumentoRecibo");
            if let Some(s) = sigs.get(i) {
                o.raw(s);
            }
            o.end("Recibo");
        }
        o.end("SetRecibos");
        o.into_string()
    };
    // Each DocumentoRecibo is digested in its final context; its sibling signatures do not touch it.
    let bare = render(&[]);
    let sigs =
        ids.iter().map(|id| sign_in_context(&bare, "</EnvioRecibos>", id, cert)).collect::<Result<Vec<_>, _>>()?;
    let signed = render(&sigs);
    let sig = sign_in_context(&signed, "</EnvioRecibos>", "SetRecibos", cert)?;
    finish(&format!("{signed}{sig}</EnvioRecibos>"), Schema::EnvioRecibos)
}
