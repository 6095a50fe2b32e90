//! The SII client (reqwest, TLS verification always on): seed, token, DTEUpload, QueryEstUp,
//! QueryEstDte, each answer mapped to what the caller should do — retry, re-authenticate, or a
//! final accept / reject (NOTES §1–§4).

use crate::otel::Traced;
use std::time::Duration;

use super::soap::{self, Respuesta, SoapError};
use super::TrackId;
use crate::cert::Certificate;
use crate::domain::Environment;
use crate::domain::Rut;

pub const USER_AGENT: &str = "Mozilla/5.0 (compatible; PROG 1.0; dte-gateway)";

#[derive(Debug, thiserror::Error)]
pub enum SiiError {
    #[error("SII unreachable: {0}")]
    Transport(String),
    #[error("SII answered HTTP {0}")]
    Http(u16),
    #[error("SII answered something unreadable: {0}")]
    Malformed(String),
    #[error("SII refused: ESTADO {estado} {glosa}")]
    Refused { estado: String, glosa: String },
    #[error("signing the seed failed: {0}")]
    Sign(String),
}

impl SiiError {
    /// Worth trying again later (the SII or the network failed, not the request).
    pub fn retryable(&self) -> bool {
        matches!(self, SiiError::Transport(_) | SiiError::Http(_) | SiiError::Malformed(_))
    }
}

impl From<SoapError> for SiiError {
    fn from(e: SoapError) -> Self {
        SiiError::Malformed(e.to_string())
    }
}

/// What an upload came to (DTEUpload `STATUS`, NOTES §3).
#[derive(Debug, Clone, PartialEq)]
pub enum Upload {
    /// `STATUS 0`: received; track it.
    Received(TrackId),
    /// `STATUS 5`: the token is not valid; authenticate again and resend.
    Reauthenticate,
    /// `STATUS 9` (SII blocked / internal) or a failed try: send again later.
    Retry(String),
    /// Any other status: the envelope itself is refused (permission, size, schema, signature…).
    Rejected { status: String, detail: Vec<String> },
}

/// The state of an upload (QueryEstUp, NOTES §4).
#[derive(Debug, Clone, PartialEq)]
pub enum UploadState {
    /// REC, SOK, CRT, FOK, PDR/PRD and the processing codes: ask again later.
    Pending(String),
    /// EPR with the counts; RLV / RPR: accepted with objections.
    Processed { estado: String, glosa: String, informados: u32, aceptados: u32, rechazados: u32, reparos: u32 },
    /// RSC, RFR, RCT, RCH, RPT, VOF: the envelope was rejected.
    Rejected { estado: String, glosa: String },
    /// 001-003: the token is not valid.
    Reauthenticate,
}

/// The state of one document (QueryEstDte).
#[derive(Debug, Clone, PartialEq)]
pub struct DteState {
    pub estado: String,
    pub glosa: String,
}

#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base of the SOAP services and the upload CGI (`https://maullin.sii.cl`).
    pub base: String,
}

impl Endpoints {
    pub fn for_env(env: Environment) -> Endpoints {
        match env {
            Environment::Certificacion => Endpoints { base: "https://maullin.sii.cl".into() },
            Environment::Produccion => Endpoints { base: "https://palena.sii.cl".into() },
        }
    }
    fn service(&self, name: &str) -> String {
        format!("{}/DTEWS/{name}.jws", self.base)
    }
    /// The SOAP namespace is the service URL on the SII's host.
    fn ns(&self, name: &str) -> String {
        self.service(name)
    }
}

#[derive(Clone)]
pub struct SiiClient {
    http: reqwest::Client,
    pub endpoints: Endpoints,
}

fn split_rut(r: Rut) -> (String, String) {
    (r.number().to_string(), r.dv().to_string())
}

impl SiiClient {
    pub fn new(endpoints: Endpoints, timeout: Duration) -> Result<SiiClient, SiiError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| SiiError::Transport(e.to_string()))?;
        Ok(SiiClient { http, endpoints })
    }

    async fn soap(
        &self,
        service: &str,
        op: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<Respuesta, SiiError> {
        let body = soap::request(&self.endpoints.ns(service), op, params);
        let mut req = self
            .http
            .post(self.endpoints.service(service))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"");
        if let Some(t) = token {
            req = req.header("cookie", format!("TOKEN={t}"));
        }
        let resp = req.body(body).traced().send().await.map_err(|e| SiiError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SiiError::Transport(e.to_string()))?;
        if !status.is_success() && !bytes.starts_with(b"<?xml") {
            return Err(SiiError::Http(status.as_u16()));
        }
        let ret = soap::parse_return(&bytes, op)?;
        Ok(soap::parse_respuesta(&ret)?)
    }

    pub async fn get_seed(&self) -> Result<String, SiiError> {
        let r = self.soap("CrSeed", "getSeed", &[], None).await?;
        if r.estado() != "00" {
            return Err(SiiError::Refused { estado: r.estado().into(), glosa: r.glosa().into() });
        }
        r.body.get("SEMILLA").cloned().filter(|s| !s.is_empty()).ok_or_else(|| SiiError::Malformed("no SEMILLA".into()))
    }

    pub async fn get_token(&self, signed_seed: &str) -> Result<String, SiiError> {
        let r = self.soap("GetTokenFromSeed", "getToken", &[("pszXml", signed_seed)], None).await?;
        if r.estado() != "00" {
            return Err(SiiError::Refused { estado: r.estado().into(), glosa: r.glosa().into() });
        }
        r.body.get("TOKEN").cloned().filter(|s| !s.is_empty()).ok_or_else(|| SiiError::Malformed("no TOKEN".into()))
    }

    /// Seed → signed seed → token.
    pub async fn authenticate(&self, cert: &Certificate) -> Result<String, SiiError> {
        let seed = self.get_seed().await?;
        let signed = super::auth::signed_seed(&seed, cert).map_err(|e| SiiError::Sign(e.to_string()))?;
        self.get_token(&signed).await
    }

    /// DTEUpload: multipart in the SII's field order, the envelope as ISO-8859-1 bytes.
    pub async fn upload(
        &self,
        token: &str,
        sender: Rut,
        company: Rut,
        filename: &str,
        envelope: Vec<u8>,
    ) -> Result<Upload, SiiError> {
        let form = upload_form(sender, company, filename, envelope, "text/xml")?;
        let resp = self
            .http
            .post(format!("{}/cgi_dte/UPL/DTEUpload", self.endpoints.base))
            .header("cookie", format!("TOKEN={token}"))
            .multipart(form)
            .traced()
            .send()
            .await
            .map_err(|e| SiiError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SiiError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(SiiError::Http(status.as_u16()));
        }
        // LibreDTE treats a bare "Error 500" body as a failed try.
        if bytes.trim_ascii() == b"Error 500" {
            return Ok(Upload::Retry("Error 500".into()));
        }
        parse_recepcion(&bytes)
    }

    pub async fn query_upload(&self, token: &str, company: Rut, track_id: &str) -> Result<UploadState, SiiError> {
        let (rc, dc) = split_rut(company);
        let r = self
            .soap(
                "QueryEstUp",
                "getEstUp",
                &[("RutCompania", &rc), ("DvCompania", &dc), ("TrackId", track_id), ("Token", token)],
                Some(token),
            )
            .await?;
        Ok(upload_state(&r))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn query_document(
        &self,
        token: &str,
        consultante: Rut,
        company: Rut,
        receptor: Rut,
        tipo: u16,
        folio: u64,
        fecha: chrono::NaiveDate,
        monto: i64,
    ) -> Result<DteState, SiiError> {
        let (rq, dq) = split_rut(consultante);
        let (rc, dc) = split_rut(company);
        let (rr, dr) = split_rut(receptor);
        let (t, f, fe, m) =
            (tipo.to_string(), folio.to_string(), fecha.format("%d%m%Y").to_string(), monto.to_string());
        let r = self
            .soap(
                "QueryEstDte",
                "getEstDte",
                &[
                    ("RutConsultante", &rq),
                    ("DvConsultante", &dq),
                    ("RutCompania", &rc),
                    ("DvCompania", &dc),
                    ("RutReceptor", &rr),
                    ("DvReceptor", &dr),
                    ("TipoDte", &t),
                    ("FolioDte", &f),
                    ("FechaEmisionDte", &fe),
                    ("MontoDte", &m),
                    ("Token", token),
                ],
                Some(token),
            )
            .await?;
        Ok(DteState { estado: r.estado().into(), glosa: r.glosa().into() })
    }
}

/// The upload form of DTEUpload and of the boleta envío: the SII's fields, in its order.
pub fn upload_form(
    sender: Rut,
    company: Rut,
    filename: &str,
    envelope: Vec<u8>,
    mime: &str,
) -> Result<reqwest::multipart::Form, SiiError> {
    let (rs, ds) = split_rut(sender);
    let (rc, dc) = split_rut(company);
    let part = reqwest::multipart::Part::bytes(envelope)
        .file_name(filename.to_string())
        .mime_str(mime)
        .map_err(|e| SiiError::Transport(e.to_string()))?;
    Ok(reqwest::multipart::Form::new()
        .text("rutSender", rs)
        .text("dvSender", ds)
        .text("rutCompany", rc)
        .text("dvCompany", dc)
        .part("archivo", part))
}

/// `RECEPCIONDTE` → what to do.
pub fn parse_recepcion(bytes: &[u8]) -> Result<Upload, SiiError> {
    let doc = crate::xml::input::parse(bytes).map_err(|e| SiiError::Malformed(e.to_string()))?.0;
    let root = doc.get_root_element().ok_or_else(|| SiiError::Malformed("empty".into()))?;
    if root.get_name() != "RECEPCIONDTE" {
        return Err(SiiError::Malformed(format!("expected RECEPCIONDTE, got {}", root.get_name())));
    }
    let status = crate::xml::libxml::child_text(&root, "STATUS").unwrap_or_default().trim().to_string();
    let mut detail = Vec::new();
    if let Some(d) = crate::xml::libxml::child(&root, "DETAIL") {
        detail = d.get_child_elements().iter().map(|e| e.get_content().trim().to_string()).collect();
    }
    Ok(match status.as_str() {
        "0" => match crate::xml::libxml::child_text(&root, "TRACKID")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
        {
            Some(t) => Upload::Received(t),
            None => return Err(SiiError::Malformed("STATUS 0 without TRACKID".into())),
        },
        "5" => Upload::Reauthenticate,
        "9" => Upload::Retry("STATUS 9: SII system blocked".into()),
        "" => return Err(SiiError::Malformed("no STATUS".into())),
        _ => Upload::Rejected { status, detail },
    })
}

fn count(r: &Respuesta, k: &str) -> u32 {
    r.body.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn upload_state(r: &Respuesta) -> UploadState {
    let (estado, glosa) = (r.estado().to_string(), r.glosa().to_string());
    match estado.as_str() {
        "EPR" | "RLV" | "RPR" => UploadState::Processed {
            informados: count(r, "INFORMADOS"),
            aceptados: count(r, "ACEPTADOS"),
            rechazados: count(r, "RECHAZADOS"),
            reparos: count(r, "REPAROS"),
            estado,
            glosa,
        },
        "RSC" | "RFR" | "RCT" | "RCH" | "RPT" | "VOF" => UploadState::Rejected { estado, glosa },
        "001" | "002" | "003" => UploadState::Reauthenticate,
        _ => UploadState::Pending(estado),
    }
}
