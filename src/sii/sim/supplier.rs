//! A simulated supplier, so the receiving side runs offline end to end: facturas issued by the
//! TEST company of `certs/` (its certificate, CAFs signed by the test authority) to a receiving
//! company, packed in an EnvioDTE addressed to it and mailed to its exchange mailbox by SMTP.
//! Never valid with the SII.

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use crate::caf::{Caf, CafTrust};
use crate::cert::Certificate;
use crate::demo::{DEMO_AUTHORITY_CERT, DEMO_AUTHORITY_KEY, DEMO_COMPANY, DEMO_P12};
use crate::domain::{Company, DocumentInput, Rut, TipoDte};
use crate::engine::Issuer;
use crate::xml::dsig::{self, SignedInfoScope};
use crate::xml::libxml::{self as lx};
use crate::xml::{input, latin1, NS_DSIG};

#[derive(Debug, Clone)]
pub struct SupplierMail {
    pub receptor: Rut,
    /// How many facturas (1-20).
    pub dtes: usize,
    /// The first folio (so repeated runs make different documents).
    pub first_folio: u64,
    /// Alter this DTE (1-based) after it was signed, then sign the envelope over it: the receiver
    /// must refuse that DTE's signature and take the others.
    pub tamper: Option<usize>,
    pub now: NaiveDateTime,
}

/// The supplier's RUT (the TEST company).
pub fn supplier_rut() -> Result<Rut, String> {
    let c: Company = serde_json::from_slice(DEMO_COMPANY).map_err(|e| e.to_string())?;
    c.rut().map_err(|e| e.to_string())
}

fn factura(receptor: Rut, n: usize) -> Result<DocumentInput, String> {
    let v: Value = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 33, "FmaPago": 2},
            "Receptor": {
                "RUTRecep": receptor.to_string(),
                "RznSocRecep": "Cliente de Prueba SpA",
                "GiroRecep": "Comercio",
                "DirRecep": "Calle Los Aromos 45",
                "CmnaRecep": "Ñuñoa",
                "CiudadRecep": "Santiago"
            }
        },
        "Detalle": [
            {"NmbItem": format!("Servicio de soporte, mes {n}"), "QtyItem": 1, "PrcItem": 100000 + 1000 * n as u64},
            {"NmbItem": "Resma papel carta", "QtyItem": 2, "PrcItem": 3990}
        ]
    });
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// The supplier's signed EnvioDTE for `m.receptor`, ISO-8859-1.
pub fn envelope(m: &SupplierMail) -> Result<Vec<u8>, String> {
    let company: Company = serde_json::from_slice(DEMO_COMPANY).map_err(|e| e.to_string())?;
    let cert = Certificate::from_pkcs12(DEMO_P12, "test1234").map_err(|e| e.to_string())?;
    let rut = company.rut().map_err(|e| e.to_string())?;
    let trust = CafTrust::with_test_authority(DEMO_AUTHORITY_CERT).map_err(|e| e.to_string())?;
    let n = m.dtes.clamp(1, 20) as u64;
    let caf_xml = crate::demo::make_caf(
        DEMO_AUTHORITY_KEY,
        rut,
        "EMPRESA DE PRUEBA SPA",
        TipoDte::Factura.code(),
        m.first_folio,
        m.first_folio + n - 1,
        m.now.date(),
    )
    .map_err(|e| e.to_string())?;
    let caf = Caf::load(caf_xml.as_bytes(), &trust).map_err(|e| e.to_string())?;
    let taxes = crate::domain::tax::TaxTable::default();
    let issuer = Issuer::new(&company, &cert, &taxes);
    let mut dtes = Vec::new();
    for i in 0..n as usize {
        let doc = factura(m.receptor, i + 1)?;
        let issued = issuer.issue(&doc, &caf, m.first_folio + i as u64, m.now).map_err(|e| e.to_string())?;
        dtes.push(issued.xml);
    }
    let bytes = crate::sii::envelope::build(&company, &cert, m.receptor, &dtes, m.now).map_err(|e| e.to_string())?;
    match m.tamper {
        Some(k) if k >= 1 && k <= dtes.len() => tampered(&bytes, k, &cert),
        _ => Ok(bytes),
    }
}

/// The envelope with DTE `k`'s MntTotal raised by one peso and SetDTE signed again.
fn tampered(bytes: &[u8], k: usize, cert: &Certificate) -> Result<Vec<u8>, String> {
    let text = input::decode(bytes).map_err(|e| e.to_string())?.text;
    let mut at = 0;
    for _ in 0..k {
        at += text[at..].find("<MntTotal>").ok_or("no MntTotal")? + 1;
    }
    let start = at - 1 + "<MntTotal>".len();
    let end = start + text[start..].find('<').ok_or("no MntTotal end")?;
    let total: i64 = text[start..end].parse().map_err(|_| "MntTotal")?;
    let changed = format!("{}{}{}", &text[..start], total + 1, &text[end..]);
    // Drop the envelope's Signature (the last child of the root) and sign SetDTE again.
    let sig_at = changed.rfind(&format!("<Signature xmlns=\"{NS_DSIG}\">")).ok_or("no envelope signature")?;
    let body = changed[..sig_at].trim_start_matches(|c| c != '<');
    let body = body.split_once("?>").map(|x| x.1.trim_start()).unwrap_or(body);
    let doc = input::parse_text(&format!("{body}</EnvioDTE>")).map_err(|e| e.to_string())?;
    let set = doc.get_root_element().and_then(|r| lx::child(&r, "SetDTE")).ok_or("no SetDTE")?;
    let c14n = lx::c14n(&doc, &set)?;
    let sig = dsig::sign(cert, "#SetDoc", &c14n, SignedInfoScope::Envelope).map_err(|e| e.to_string())?;
    let mut out = crate::engine::XML_DECL.as_bytes().to_vec();
    out.extend(latin1::encode(&format!("{body}{sig}</EnvioDTE>")).map_err(|c| format!("character {c:?}"))?);
    Ok(out)
}

/// Mails `envelope` to `to` through the SMTP server at `smtp` (`host:port`, plain, as a local
/// test server speaks).
pub async fn send(smtp: &str, from: &str, to: &str, envelope: Vec<u8>, folio: u64) -> Result<String, String> {
    use lettre::AsyncTransport;
    let (host, port) = smtp.rsplit_once(':').ok_or("--smtp is host:port")?;
    let port: u16 = port.parse().map_err(|_| "--smtp port")?;
    let msg = crate::exchange::mail::with_xml(
        from,
        to,
        &format!("Envio de DTE (folio {folio})"),
        "Adjuntamos el EnvioDTE de los documentos emitidos a su empresa.",
        &format!("EnvioDTE-{folio}.xml"),
        envelope,
    )
    .map_err(|e| e.to_string())?;
    let id = msg.headers().get_raw("Message-ID").unwrap_or_default().to_string();
    let t = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host).port(port).build();
    t.send(msg).await.map_err(|e| e.to_string())?;
    Ok(id)
}

#[derive(serde::Deserialize)]
pub(crate) struct MailBody {
    receptor: String,
    #[serde(default = "one")]
    dtes: usize,
    #[serde(default = "one_u64")]
    first_folio: u64,
    tamper: Option<usize>,
    /// `host:port` of the SMTP server; without it the envelope is the answer.
    smtp: Option<String>,
    to: Option<String>,
    from: Option<String>,
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}

/// `POST /sim/supplier-mail`: the supplier issues, the simulated SII records the reception of each
/// DTE (the RCV window starts), and the envelope is mailed to the receiver's mailbox.
pub(crate) async fn mail(
    body: actix_web::web::Json<MailBody>,
    sim: actix_web::web::Data<std::sync::Arc<super::Sim>>,
) -> actix_web::HttpResponse {
    use actix_web::HttpResponse;
    let Ok(receptor) = body.receptor.parse::<Rut>() else { return HttpResponse::BadRequest().body("receptor") };
    let now = super::now();
    let m = SupplierMail { receptor, dtes: body.dtes, first_folio: body.first_folio, tamper: body.tamper, now };
    let bytes = match envelope(&m) {
        Ok(b) => b,
        Err(e) => return HttpResponse::InternalServerError().body(e),
    };
    let Ok(supplier) = supplier_rut() else { return HttpResponse::InternalServerError().body("supplier") };
    for i in 0..m.dtes.clamp(1, 20) as u64 {
        super::rcv::received(&sim, &supplier.to_string(), 33, (m.first_folio + i) as i64, now);
    }
    match (&body.smtp, &body.to) {
        (Some(smtp), Some(to)) => {
            let from = body.from.clone().unwrap_or_else(|| "dte@proveedor.example.test".into());
            match send(smtp, &from, to, bytes, m.first_folio).await {
                Ok(id) => {
                    HttpResponse::Ok().json(serde_json::json!({"message_id": id, "supplier": supplier.to_string()}))
                }
                Err(e) => HttpResponse::BadGateway().body(e),
            }
        }
        _ => HttpResponse::Ok().content_type("application/xml").body(bytes),
    }
}
