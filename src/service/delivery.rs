//! Delivering issued documents to their buyers: where each buyer's exchange address comes from
//! (the document's `CorreoRecep`, the company's own list, the SII's list of authorised
//! taxpayers), the EnvioDTE for the buyer with its PDFs, resends, the buyers' answers about the
//! company's documents and the RCV events of issued documents.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{now_local, parse_rut, Result, Service, ServiceError};
use crate::domain::Rut;
use crate::store::{DeliveryOut, EventRow};
use crate::xml::libxml::{self as lx, child_text};
use crate::xml::{dsig, input, schema};

/// `PUT /v1/companies/{rut}/buyers/{buyer}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyerAddressBody {
    /// The buyer's exchange address (overrides the SII's list for this company).
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BuyerAddress {
    pub rut: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DirectoryImport {
    /// Rows read with a RUT and an exchange address.
    pub imported: u64,
    /// Rows skipped (no address, a RUT that is not one, the header).
    pub skipped: u64,
    /// Rows in the directory now.
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryInfo {
    pub id: i64,
    pub to_address: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentEvent {
    pub code: String,
    pub description: String,
    pub responsible: Option<String>,
    pub at: DateTime<Utc>,
    /// `buyer` (its answers by mail) or `rcv` (the SII's registry).
    pub source: String,
}

/// An issued document's life with its buyer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentExchangeInfo {
    pub rut_recep: String,
    /// `due`, `queued`, `delivered` or `delivery_failed`; absent when it does not go to the buyer
    /// (yet: only after the SII accepted it, and only when the company has an SMTP server).
    pub delivery_state: Option<String>,
    /// `buyer_received`, `buyer_accepted`, `buyer_rejected` or `goods_received`.
    pub buyer_state: Option<String>,
    pub deliveries: Vec<DeliveryInfo>,
    pub events: Vec<DocumentEvent>,
}

/// What a buyer's answer file came to.
#[derive(Debug, Clone, Default)]
pub struct AnswerReport {
    pub applied: usize,
    pub note: Option<String>,
}

fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| *b as char).collect()
}

pub fn delivered_event(company: &str, tipo: i32, folio: i64, ok: bool, detail: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "type": if ok { "document.delivered" } else { "document.delivery_failed" },
        "company": company,
        "tipo": tipo,
        "folio": folio,
        "detail": detail,
        "at": crate::store::ts(at),
    })
    .to_string()
}

impl Service {
    /// Imports the SII's list of authorised taxpayers (`RUT;RAZON SOCIAL;NUMERO RESOLUCION;FECHA
    /// RESOLUCION;MAIL INTERCAMBIO;URL`, ISO-8859-1, no quoting) from a reader, in slices: memory
    /// stays bounded whatever the file's size.
    pub async fn import_directory(&self, reader: impl Read + Send + 'static) -> Result<DirectoryImport> {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<std::result::Result<(Vec<(String, String, String)>, u64), String>>(2);
        std::thread::spawn(move || {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(b';')
                .quoting(false)
                .flexible(true)
                .has_headers(false)
                .from_reader(reader);
            let mut slice = Vec::with_capacity(1000);
            let mut skipped = 0u64;
            let mut rec = csv::ByteRecord::new();
            loop {
                match r.read_byte_record(&mut rec) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        let _ = tx
                            .blocking_send(Err(format!("line {}: {e}", rec.position().map(|p| p.line()).unwrap_or(0))));
                        return;
                    }
                }
                let field = |i: usize| rec.get(i).map(|f| latin1_to_string(f).trim().to_string()).unwrap_or_default();
                let (rut, name, email) = (field(0), field(1), field(4).to_lowercase());
                match rut.to_uppercase().parse::<Rut>() {
                    Ok(r) if email.parse::<lettre::Address>().is_ok() => slice.push((r.to_string(), name, email)),
                    _ => skipped += 1,
                }
                if slice.len() == 1000 {
                    if tx.blocking_send(Ok((std::mem::take(&mut slice), skipped))).is_err() {
                        return;
                    }
                    skipped = 0;
                }
            }
            let _ = tx.blocking_send(Ok((slice, skipped)));
        });
        let (mut imported, mut skipped) = (0u64, 0u64);
        while let Some(part) = rx.recv().await {
            let (rows, s) = part.map_err(ServiceError::BadRequest)?;
            imported += rows.len() as u64;
            skipped += s;
            self.store.upsert_directory(&rows, Utc::now()).await?;
        }
        Ok(DirectoryImport { imported, skipped, total: self.store.directory_size().await? })
    }

    pub async fn put_buyer_address(&self, rut: &str, buyer: &str, b: BuyerAddressBody) -> Result<BuyerAddress> {
        self.company(rut).await?;
        let buyer = parse_rut(buyer)?.to_string();
        if b.email.parse::<lettre::Address>().is_err() {
            return Err(ServiceError::BadRequest("email: not an e-mail address".into()));
        }
        self.store.put_buyer_address(rut, &buyer, &b.email, Utc::now()).await?;
        Ok(BuyerAddress { rut: buyer, email: b.email })
    }

    pub async fn buyer_addresses(&self, rut: &str) -> Result<Vec<BuyerAddress>> {
        self.company(rut).await?;
        Ok(self.store.buyer_addresses(rut).await?.into_iter().map(|(rut, email)| BuyerAddress { rut, email }).collect())
    }

    /// Where a delivery goes: the documents' `CorreoRecep`, else the company's address for the
    /// buyer, else the SII's list; `None` when none has one.
    pub async fn buyer_address_for(&self, d: &DeliveryOut) -> Result<Option<String>> {
        for (_, _, _, xml) in &d.documents {
            let doc = input::parse(xml).map_err(|e| ServiceError::Internal(e.to_string()))?.0;
            if let Some(root) = doc.get_root_element() {
                let c = lx::dte_path(&root, &["Encabezado", "Receptor", "CorreoRecep"]).map(|n| n.get_content());
                if let Some(c) = c.map(|c| c.trim().to_string()).filter(|c| c.parse::<lettre::Address>().is_ok()) {
                    return Ok(Some(c));
                }
            }
        }
        Ok(self.store.buyer_address(&d.company, &d.buyer).await?.map(|(e, _)| e))
    }

    pub async fn claim_buyer_delivery(&self) -> Result<Option<i64>> {
        Ok(self.store.claim_buyer_delivery(Utc::now()).await?)
    }

    pub async fn lease_buyer_delivery(&self, lease: chrono::Duration) -> Result<Option<DeliveryOut>> {
        Ok(self.store.lease_buyer_delivery(Utc::now(), lease).await?)
    }

    /// The EnvioDTE for the buyer (its `RutReceptor`), signed by the company, and a PDF per document.
    pub async fn buyer_package(&self, d: &DeliveryOut) -> Result<(Vec<u8>, Vec<(String, Vec<u8>)>)> {
        let company = self.company(&d.company).await?;
        let cert = self.certificate(&d.company).await?;
        let buyer = parse_rut(&d.buyer)?;
        let dtes: Vec<Vec<u8>> = d.documents.iter().map(|(_, _, _, x)| x.clone()).collect();
        let c = company.company.clone();
        let envelope =
            tokio::task::spawn_blocking(move || crate::sii::envelope::build(&c, &cert, buyer, &dtes, now_local()))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??;
        let mut pdfs = Vec::new();
        for (_, tipo, folio, _) in &d.documents {
            let pdf = self.document_pdf(&d.company, *tipo, *folio, crate::print::Format::Letter, false).await?;
            pdfs.push((format!("{}-T{tipo}F{folio}.pdf", d.company), pdf));
        }
        Ok((envelope, pdfs))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn buyer_delivery_outcome(
        &self,
        d: &DeliveryOut,
        state: &str,
        to: Option<&str>,
        error: Option<&str>,
        message_id: Option<&str>,
        next: DateTime<Utc>,
    ) -> Result<()> {
        let now = Utc::now();
        let ok = state == "sent";
        let detail = if ok { to.unwrap_or("").to_string() } else { error.unwrap_or("").to_string() };
        let company = d.company.clone();
        let hook = |t: i32, f: i64| delivered_event(&company, t, f, ok, &detail, now);
        Ok(self.store.buyer_delivery_outcome(d, state, to, error, message_id, next, hook, now).await?)
    }

    /// `POST …/documents/{tipo}/{folio}/deliver`: a new delivery, due now.
    pub async fn resend_to_buyer(&self, rut: &str, tipo: i32, folio: i64) -> Result<DocumentExchangeInfo> {
        self.company(rut).await?;
        if self.store.get_document(rut, tipo, folio).await?.is_none() {
            return Err(ServiceError::NotFound(format!("document {tipo} {folio}")));
        }
        self.store.resend_to_buyer(rut, tipo, folio, Utc::now()).await?;
        self.document_exchange(rut, tipo, folio).await
    }

    pub async fn document_exchange(&self, rut: &str, tipo: i32, folio: i64) -> Result<DocumentExchangeInfo> {
        self.company(rut).await?;
        let x = self
            .store
            .document_exchange(rut, tipo, folio)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("document {tipo} {folio}")))?;
        Ok(DocumentExchangeInfo {
            rut_recep: x.rut_recep,
            delivery_state: x.delivery_state,
            buyer_state: x.buyer_state,
            deliveries: x
                .deliveries
                .into_iter()
                .map(|d| DeliveryInfo {
                    id: d.id,
                    to_address: d.to_address,
                    state: d.state,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    message_id: d.smtp_id,
                    created_at: d.created_at,
                    sent_at: d.sent_at,
                })
                .collect(),
            events: x
                .events
                .into_iter()
                .map(|e| DocumentEvent {
                    code: e.code,
                    description: e.description,
                    responsible: e.responsible,
                    at: e.at,
                    source: e.source,
                })
                .collect(),
        })
    }

    /// A buyer's RespuestaDTE (RecepcionEnvio / ResultadoDTE) or EnvioRecibos about this company's
    /// documents: validated, every signature verified, each line applied to its document.
    pub async fn take_buyer_answer(&self, rut: &str, xml: Vec<u8>) -> Result<AnswerReport> {
        let me = parse_rut(rut)?;
        let lines = tokio::task::spawn_blocking(move || read_answer(&xml, me))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let lines = match lines {
            Ok(l) => l,
            Err(why) => return Ok(AnswerReport { applied: 0, note: Some(why) }),
        };
        let now = Utc::now();
        let mut applied = 0;
        for l in lines {
            // Stamped with the buyer's signing time: the same answer mailed twice is one event.
            let event = EventRow {
                code: l.code.clone(),
                description: l.description.clone(),
                responsible: l.signer.clone().or(Some(l.buyer.clone())),
                at: l.at.map(super::local_to_utc).unwrap_or(now),
                source: "buyer".into(),
            };
            let hook = serde_json::json!({
                "type": "document.buyer_response",
                "company": rut,
                "tipo": l.tipo,
                "folio": l.folio,
                "buyer": l.buyer,
                "state": l.state,
                "answer": l.code,
                "signer": l.signer,
                "detail": l.description,
                "at": crate::store::ts(now),
            })
            .to_string();
            if self.store.buyer_answer(rut, &l.buyer, l.tipo, l.folio, l.state, event, hook, now).await? {
                applied += 1;
                metrics::counter!(crate::telemetry::BUYER_ANSWERS, "state" => l.state).increment(1);
            }
        }
        Ok(AnswerReport { applied, note: None })
    }

    /// Issued documents due for a look at their RCV history.
    pub async fn issued_rcv_due(&self, limit: i64) -> Result<Vec<(i64, String, i32, i64, DateTime<Utc>)>> {
        Ok(self.store.issued_rcv_due(Utc::now(), limit, chrono::Duration::minutes(5)).await?)
    }

    /// The RCV's history of an issued document; each new event gets a `document.rcv_event`
    /// webhook, a claim is counted. `next`: when to look again (`None`: the window closed).
    pub async fn issued_rcv_events(
        &self,
        id: i64,
        company: &str,
        tipo: i32,
        folio: i64,
        events: &[crate::exchange::rcv::Evento],
        next: Option<DateTime<Utc>>,
    ) -> Result<usize> {
        let now = Utc::now();
        let rows = super::received::rcv_rows(events);
        let hook = |e: &EventRow| {
            serde_json::json!({
                "type": "document.rcv_event",
                "company": company,
                "tipo": tipo,
                "folio": folio,
                "event": e.code,
                "description": e.description,
                "responsible": e.responsible,
                "claim": matches!(e.code.as_str(), "RCD" | "RFP" | "RFT"),
                "event_at": crate::store::ts(e.at),
                "at": crate::store::ts(now),
            })
            .to_string()
        };
        let new = self.store.issued_rcv_events(id, company, &rows, hook, next, now).await?;
        for e in &new {
            if matches!(e.code.as_str(), "RCD" | "RFP" | "RFT") {
                metrics::counter!(crate::telemetry::ISSUED_CLAIMS, "company" => company.to_string()).increment(1);
            }
        }
        Ok(new.len())
    }
}

/// One line of a buyer's answer, as it applies to an issued document.
#[derive(Debug, Clone)]
struct AnswerLine {
    buyer: String,
    tipo: i32,
    folio: i64,
    state: &'static str,
    code: String,
    description: String,
    /// When the buyer signed it (the SII's local time).
    at: Option<chrono::NaiveDateTime>,
    /// The RUT of the certificate that signed it.
    signer: Option<String>,
}

/// Reads a buyer's answer addressed to `me`: schema, signatures, and its lines about `me`'s DTEs.
/// Only what a signature covers counts, the Carátula must name `me` as the one it answers and the
/// buyer as the one answering, and each line must be that buyer's. The signing certificate's chain
/// is not checked against the accredited authorities: its holder is reported as the signer.
fn read_answer(xml: &[u8], me: Rut) -> std::result::Result<Vec<AnswerLine>, String> {
    let (doc, _) = input::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.get_root_element().ok_or("empty answer")?;
    let kind = match root.get_name().as_str() {
        "RespuestaDTE" => schema::Schema::RespuestaDte,
        "EnvioRecibos" => schema::Schema::EnvioRecibos,
        other => return Err(format!("{other} is not an answer")),
    };
    schema::validate(kind, &doc).map_err(|e| format!("schema {}: {}", kind.file(), e.join("; ")))?;
    let t = |n: &libxml::tree::Node, f: &str| child_text(n, f).map(|s| s.trim().to_string()).unwrap_or_default();
    let rut = |s: String| s.parse::<Rut>().ok();
    // The element each signature covers (by its ID), with the signer's RUT.
    let mut sigs = Vec::new();
    lx::descendants(&root, "Signature", &mut sigs);
    let mut signed: Vec<(String, Option<String>)> = Vec::new();
    for s in &sigs {
        let r = dsig::verify(&doc, s);
        if !r.ok() {
            return Err(format!("a signature does not verify: {}", r.errors.join("; ")));
        }
        let signer = lx::path(s, &["KeyInfo", "X509Data", "X509Certificate"])
            .and_then(|c| crate::crypto::b64(&c.get_content()).ok())
            .and_then(|der| crate::cert::certificate_rut_der(&der))
            .map(|r| r.to_string());
        signed.push((r.reference.trim_start_matches('#').to_string(), signer));
    }
    let covering = |n: &libxml::tree::Node| -> Option<Option<String>> {
        let mut cur = Some(n.clone());
        while let Some(c) = cur {
            if let Some(id) = c.get_attribute("ID") {
                if let Some((_, signer)) = signed.iter().find(|(r, _)| *r == id) {
                    return Some(signer.clone());
                }
            }
            cur = c.get_parent();
        }
        None
    };
    let mut cars = Vec::new();
    lx::descendants(&root, "Caratula", &mut cars);
    let car = cars.first().ok_or("no Caratula")?;
    let (responde, recibe) = (rut(t(car, "RutResponde")), rut(t(car, "RutRecibe")));
    if recibe != Some(me) {
        return Err(format!("the answer is for {}, not this company", t(car, "RutRecibe")));
    }
    let responde = responde.ok_or("no RutResponde")?;
    let ts =
        |n: &libxml::tree::Node, f: &str| chrono::NaiveDateTime::parse_from_str(&t(n, f), "%Y-%m-%dT%H:%M:%S").ok();
    let signed_at = ts(car, "TmstFirmaResp").or_else(|| ts(car, "TmstFirmaEnv"));
    // Lines about this company's DTEs, from the buyer that answers, under a signature.
    let mine = |n: &libxml::tree::Node| rut(t(n, "RUTEmisor")) == Some(me) && rut(t(n, "RUTRecep")) == Some(responde);
    let mut out = Vec::new();
    let mut nodes = Vec::new();
    lx::descendants(&root, "RecepcionDTE", &mut nodes);
    for n in nodes.iter().filter(|n| mine(n)) {
        let Some(signer) = covering(n) else { continue };
        let estado = t(n, "EstadoRecepDTE");
        // 4 ("DTE repetido") is what a buyer answers to a document sent again: not a refusal.
        if estado == "4" {
            continue;
        }
        out.push(AnswerLine {
            buyer: responde.to_string(),
            tipo: t(n, "TipoDTE").parse().unwrap_or(0),
            folio: t(n, "Folio").parse().unwrap_or(0),
            state: if estado == "0" { "buyer_received" } else { "buyer_refused" },
            code: format!("RecepcionDTE {estado}"),
            description: t(n, "RecepDTEGlosa"),
            at: signed_at,
            signer,
        });
    }
    let mut nodes = Vec::new();
    lx::descendants(&root, "ResultadoDTE", &mut nodes);
    for n in nodes.iter().filter(|n| mine(n)) {
        let Some(signer) = covering(n) else { continue };
        let estado = t(n, "EstadoDTE");
        out.push(AnswerLine {
            buyer: responde.to_string(),
            tipo: t(n, "TipoDTE").parse().unwrap_or(0),
            folio: t(n, "Folio").parse().unwrap_or(0),
            state: if estado == "2" { "buyer_rejected" } else { "buyer_accepted" },
            code: format!("ResultadoDTE {estado}"),
            description: t(n, "EstadoDTEGlosa"),
            at: signed_at,
            signer,
        });
    }
    let mut nodes = Vec::new();
    lx::descendants(&root, "DocumentoRecibo", &mut nodes);
    for n in nodes.iter().filter(|n| mine(n)) {
        let Some(signer) = covering(n) else { continue };
        out.push(AnswerLine {
            buyer: responde.to_string(),
            tipo: t(n, "TipoDoc").parse().unwrap_or(0),
            folio: t(n, "Folio").parse().unwrap_or(0),
            state: "goods_received",
            code: "Recibo".into(),
            description: format!("Recibo de mercaderías en {}", t(n, "Recinto")),
            at: ts(n, "TmstFirmaRecibo").or(signed_at),
            signer,
        });
    }
    Ok(out)
}
