//! The RCV web service ("WS Consulta y Registro de Aceptación/Reclamo a DTE recibido" v1.2):
//! SOAP 1.1 with the operation element in the service's namespace and unqualified parameters,
//! the ordinary SII token in `Cookie: TOKEN`. A SOAP Fault about the token (or HTTP 401/403) is
//! `TokenRefused`, so the caller authenticates again once.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::client::{SiiError, USER_AGENT};
use super::soap::NS_SOAP;
use crate::domain::{Environment, Rut};
use crate::exchange::rcv::{self, Accion, Evento};
use crate::otel::Traced;
use crate::xml::libxml::{self as lx};
use crate::xml::writer::escape_text;

pub const NS_RCV: &str = "http://ws.registroreclamodte.diii.sdi.sii.cl";

/// The service URL of an environment.
pub fn default_url(env: Environment) -> &'static str {
    match env {
        Environment::Certificacion => "https://ws2.sii.cl/WSREGISTRORECLAMODTECERT/registroreclamodteservice",
        Environment::Produccion => "https://ws1.sii.cl/WSREGISTRORECLAMODTE/registroreclamodteservice",
    }
}

/// The `return` of an operation: `codResp`, `descResp` and any events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RcvAnswer {
    pub cod: i32,
    pub desc: String,
    pub events: Vec<Evento>,
    /// For `consultarFechaRecepcionSii`: the bare string.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RcvError {
    #[error("the SII refused the token: {0}")]
    TokenRefused(String),
    #[error(transparent)]
    Sii(#[from] SiiError),
}

impl RcvError {
    pub fn retryable(&self) -> bool {
        match self {
            RcvError::TokenRefused(_) => false,
            RcvError::Sii(e) => e.retryable(),
        }
    }
}

/// The request body of `op` for a document of `emisor`.
pub fn request(op: &str, emisor: Rut, tipo: u16, folio: i64, accion: Option<Accion>) -> String {
    let mut p = format!(
        "<rutEmisor>{}</rutEmisor><dvEmisor>{}</dvEmisor><tipoDoc>{tipo}</tipoDoc><folio>{folio}</folio>",
        emisor.number(),
        emisor.dv().to_ascii_uppercase()
    );
    if let Some(a) = accion {
        p.push_str(&format!("<accionDoc>{}</accionDoc>", a.code()));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" xmlns:ws=\"{NS_RCV}\"><soapenv:Header/><soapenv:Body><ws:{op}>{p}</ws:{op}></soapenv:Body></soapenv:Envelope>"
    )
}

/// For the simulator: an answer as the service writes it.
pub fn response(op: &str, a: &RcvAnswer, bare_text: bool) -> String {
    let inner = if bare_text {
        escape_text(&a.text).into_owned()
    } else {
        let mut s = format!("<codResp>{}</codResp><descResp>{}</descResp>", a.cod, escape_text(&a.desc));
        for e in &a.events {
            let (num, dv) = e
                .responsible
                .as_deref()
                .and_then(|r| r.parse::<Rut>().ok())
                .map(|r| (r.number().to_string(), r.dv().to_string()))
                .unwrap_or_default();
            s.push_str(&format!(
                "<listaEventosDoc><codEvento>{}</codEvento><descEvento>{}</descEvento><rutResponsable>{num}</rutResponsable><dvResponsable>{dv}</dvResponsable><fechaEvento>{}</fechaEvento></listaEventosDoc>",
                escape_text(&e.code),
                escape_text(&e.description),
                rcv::format_sii_datetime(e.at)
            ));
        }
        s
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><S:Envelope xmlns:S=\"{NS_SOAP}\"><S:Body><ns2:{op}Response xmlns:ns2=\"{NS_RCV}\"><return>{inner}</return></ns2:{op}Response></S:Body></S:Envelope>"
    )
}

/// Reads an answer of `op`. Events come as repeated `listaEventosDoc` (one is not a list).
pub fn parse(bytes: &[u8], op: &str) -> Result<RcvAnswer, RcvError> {
    let malformed = |m: String| RcvError::Sii(SiiError::Malformed(m));
    let doc = crate::xml::input::parse(bytes).map_err(|e| malformed(e.to_string()))?.0;
    let root = doc.get_root_element().ok_or_else(|| malformed("empty".into()))?;
    let body = lx::child(&root, "Body").ok_or_else(|| malformed("no SOAP Body".into()))?;
    let first = body.get_child_elements().into_iter().next().ok_or_else(|| malformed("empty SOAP Body".into()))?;
    if first.get_name() == "Fault" {
        let msg = lx::child_text(&first, "faultstring").unwrap_or_default();
        if msg.to_ascii_uppercase().contains("TOKEN") {
            return Err(RcvError::TokenRefused(msg));
        }
        return Err(malformed(format!("SOAP fault: {msg}")));
    }
    if first.get_name() != format!("{op}Response") {
        return Err(malformed(format!("expected {op}Response, got {}", first.get_name())));
    }
    // Only the reception date comes back as a bare string (empty when the SII has not received
    // the document); every other answer must carry its codResp, or it confirms nothing.
    let bare = op == "consultarFechaRecepcionSii";
    let Some(ret) = lx::child(&first, "return") else {
        return if bare { Ok(RcvAnswer::default()) } else { Err(malformed(format!("{op}: no return"))) };
    };
    let t = |n: &libxml::tree::Node, f: &str| lx::child_text(n, f).map(|s| s.trim().to_string()).unwrap_or_default();
    let events = ret
        .get_child_elements()
        .into_iter()
        .filter(|c| c.get_name() == "listaEventosDoc")
        .filter_map(|e| {
            let responsible = format!("{}-{}", t(&e, "rutResponsable"), t(&e, "dvResponsable"));
            Some(Evento {
                code: t(&e, "codEvento"),
                description: t(&e, "descEvento"),
                responsible: responsible.parse::<Rut>().ok().map(|r| r.to_string()),
                at: rcv::parse_sii_datetime(&t(&e, "fechaEvento"))?,
            })
        })
        .collect();
    let cod = t(&ret, "codResp");
    if cod.is_empty() && !bare {
        return Err(malformed(format!("{op}: no codResp")));
    }
    Ok(RcvAnswer {
        cod: if cod.is_empty() { 0 } else { cod.parse().map_err(|_| malformed(format!("codResp {cod:?}")))? },
        desc: t(&ret, "descResp"),
        events,
        text: ret.get_content().trim().to_string(),
    })
}

#[derive(Clone)]
pub struct RcvClient {
    http: reqwest::Client,
    pub url: String,
}

impl RcvClient {
    pub fn new(url: &str, timeout: Duration) -> Result<RcvClient, SiiError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| SiiError::Transport(e.to_string()))?;
        Ok(RcvClient { http, url: url.to_string() })
    }

    async fn call(
        &self,
        token: &str,
        op: &'static str,
        emisor: Rut,
        tipo: u16,
        folio: i64,
        accion: Option<Accion>,
    ) -> Result<RcvAnswer, RcvError> {
        let started = std::time::Instant::now();
        let r = self.send(token, op, emisor, tipo, folio, accion).await;
        let outcome = match &r {
            Ok(_) => "ok",
            Err(RcvError::TokenRefused(_)) => "refused",
            Err(e) if e.retryable() => "failed",
            Err(_) => "error",
        };
        metrics::counter!(crate::telemetry::SII_REQUESTS, "operation" => op, "outcome" => outcome).increment(1);
        metrics::histogram!(crate::telemetry::SII_REQUEST_SECONDS, "operation" => op)
            .record(started.elapsed().as_secs_f64());
        r
    }

    async fn send(
        &self,
        token: &str,
        op: &'static str,
        emisor: Rut,
        tipo: u16,
        folio: i64,
        accion: Option<Accion>,
    ) -> Result<RcvAnswer, RcvError> {
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .header("cookie", format!("TOKEN={token}"))
            .body(request(op, emisor, tipo, folio, accion))
            .traced()
            .send()
            .await
            .map_err(|e| SiiError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SiiError::Transport(e.to_string()))?;
        if matches!(status.as_u16(), 401 | 403) {
            return Err(RcvError::TokenRefused(format!("HTTP {status}")));
        }
        if !status.is_success() && !bytes.trim_ascii_start().starts_with(b"<") {
            return Err(SiiError::Http(status.as_u16()).into());
        }
        parse(&bytes, op)
    }

    pub async fn ingresar(
        &self,
        token: &str,
        emisor: Rut,
        tipo: u16,
        folio: i64,
        accion: Accion,
    ) -> Result<RcvAnswer, RcvError> {
        self.call(token, "ingresarAceptacionReclamoDoc", emisor, tipo, folio, Some(accion)).await
    }

    pub async fn eventos(&self, token: &str, emisor: Rut, tipo: u16, folio: i64) -> Result<RcvAnswer, RcvError> {
        self.call(token, "listarEventosHistDoc", emisor, tipo, folio, None).await
    }

    pub async fn cedible(&self, token: &str, emisor: Rut, tipo: u16, folio: i64) -> Result<RcvAnswer, RcvError> {
        self.call(token, "consultarDocDteCedible", emisor, tipo, folio, None).await
    }

    /// When the SII received the document (the start of the 8-day window); `None` when it has not.
    pub async fn fecha_recepcion(
        &self,
        token: &str,
        emisor: Rut,
        tipo: u16,
        folio: i64,
    ) -> Result<Option<NaiveDateTime>, RcvError> {
        let a = self.call(token, "consultarFechaRecepcionSii", emisor, tipo, folio, None).await?;
        Ok(rcv::parse_sii_datetime(&a.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_a_list_of_one_and_a_token_fault_is_told_apart() {
        let ev = Evento {
            code: "ACD".into(),
            description: "Acepta Contenido del Documento".into(),
            responsible: Some("45000055-8".into()),
            at: rcv::parse_sii_datetime("29-12-2016 12:05:36").unwrap(),
        };
        let a = RcvAnswer { cod: 15, desc: "Listado".into(), events: vec![ev.clone()], text: String::new() };
        let back = parse(response("listarEventosHistDoc", &a, false).as_bytes(), "listarEventosHistDoc").unwrap();
        assert_eq!((back.cod, back.events), (15, vec![ev]));
        let date = RcvAnswer { text: "21-02-2017 19:02:03".into(), ..Default::default() };
        let back = parse(response("consultarFechaRecepcionSii", &date, true).as_bytes(), "consultarFechaRecepcionSii");
        assert_eq!(rcv::parse_sii_datetime(&back.unwrap().text), rcv::parse_sii_datetime("21-02-2017 19:02:03"));
        let fault = super::super::soap::fault("Error de Autenticacion: TOKEN invalido");
        assert!(matches!(parse(fault.as_bytes(), "listarEventosHistDoc"), Err(RcvError::TokenRefused(_))));
        let req = request("ingresarAceptacionReclamoDoc", "76354771-K".parse().unwrap(), 33, 170, Some(Accion::Rcd));
        assert!(
            req.contains("<rutEmisor>76354771</rutEmisor><dvEmisor>K</dvEmisor>")
                && req.contains("<accionDoc>RCD</accionDoc>")
        );
    }
}
