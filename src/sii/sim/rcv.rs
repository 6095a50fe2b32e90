//! The simulator's RCV web service: the four operations, the five actions and the transition rules
//! and codes of the spec v1.2, reception dates a test can set (`POST /sim/rcv/documents`), and
//! faults: a stale token gets the SII's SOAP Fault, and `POST /sim/rcv/faults` makes the next
//! calls answer `codResp` −1.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::{cookie_token, Sim};
use crate::domain::Rut;
use crate::exchange::rcv::{self, Accion, Evento};
use crate::sii::rcv::{response, RcvAnswer};
use crate::xml::libxml as lx;

pub const PATH_CERT: &str = "/WSREGISTRORECLAMODTECERT/registroreclamodteservice";
pub const PATH_PROD: &str = "/WSREGISTRORECLAMODTE/registroreclamodteservice";

/// A document the simulated SII received, with its RCV events.
#[derive(Debug, Clone)]
pub(crate) struct RcvDoc {
    received: NaiveDateTime,
    events: Vec<Evento>,
}

#[derive(Default)]
pub(crate) struct RcvState {
    docs: HashMap<String, RcvDoc>,
    /// Calls left to answer −1, and the operation they are for (any when `None`).
    internal_errors: u32,
    faulty: Option<String>,
}

fn key(emisor: &str, tipo: u16, folio: i64) -> String {
    format!("{emisor}/{tipo}/{folio}")
}

use super::now;

/// Registers a document as received by the SII at `at` (the uploads the simulator accepts are
/// registered too).
pub(crate) fn received(sim: &Sim, emisor: &str, tipo: u16, folio: i64, at: NaiveDateTime) {
    if let Ok(mut s) = sim.rcv.lock() {
        s.docs.entry(key(emisor, tipo, folio)).or_insert(RcvDoc { received: at, events: Vec::new() }).received = at;
    }
}

fn answer(cod: i32) -> RcvAnswer {
    RcvAnswer { cod, desc: rcv::cod_resp_description(cod).to_string(), ..Default::default() }
}

/// The spec's transition rules for `accion` on a document with `events`.
fn decide(events: &[Evento], accion: Accion) -> i32 {
    let done: Vec<String> = events.iter().map(|e| e.code.clone()).collect();
    rcv::transition(&done, accion)
}

async fn service(req: HttpRequest, body: web::Bytes, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    let fault = |m: &str| HttpResponse::InternalServerError().content_type("text/xml").body(super::soap::fault(m));
    let holder = match cookie_token(&req).map(|t| sim.token_holder(&t)) {
        Some(Ok(h)) => h,
        _ => {
            sim.count(|c| c.token_refusals += 1);
            return fault("Error de Autenticacion: TOKEN invalido");
        }
    };
    let Ok((doc, _)) = crate::xml::input::parse(&body) else { return fault("malformed request") };
    let Some(op) = doc
        .get_root_element()
        .and_then(|r| lx::child(&r, "Body"))
        .and_then(|b| b.get_child_elements().into_iter().next())
    else {
        return fault("no operation");
    };
    let name = op.get_name();
    let p = |f: &str| lx::child_text(&op, f).map(|s| s.trim().to_string()).unwrap_or_default();
    let emisor = format!("{}-{}", p("rutEmisor"), p("dvEmisor"));
    let tipo: u16 = p("tipoDoc").parse().unwrap_or(0);
    let folio: i64 = p("folio").parse().unwrap_or(0);
    sim.count(|c| *c.rcv_calls.entry(name.clone()).or_default() += 1);
    let internal = sim
        .rcv
        .lock()
        .map(|mut s| {
            let hit = s.internal_errors > 0 && s.faulty.as_deref().is_none_or(|o| o == name);
            if hit {
                s.internal_errors -= 1;
            }
            hit
        })
        .unwrap_or(false);
    let a = if internal {
        answer(-1)
    } else if emisor.parse::<Rut>().is_err() {
        answer(1)
    } else if !rcv::in_rcv(tipo) {
        answer(3)
    } else {
        let Ok(mut st) = sim.rcv.lock() else { return fault("state") };
        let d = st.docs.get_mut(&key(&emisor, tipo, folio));
        let open = d.as_ref().is_some_and(|d| now() <= rcv::deadline(d.received));
        match (name.as_str(), d) {
            ("consultarFechaRecepcionSii", d) => {
                let text = d.map(|d| rcv::format_sii_datetime(d.received)).unwrap_or_default();
                let body = response(&name, &RcvAnswer { text, ..Default::default() }, true);
                return HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(body);
            }
            (_, None) => answer(18),
            ("ingresarAceptacionReclamoDoc", Some(d)) => match Accion::parse(&p("accionDoc")) {
                None => answer(4),
                Some(_) if !open => answer(8),
                Some(a) => {
                    let cod = decide(&d.events, a);
                    if cod == 0 {
                        d.events.push(Evento {
                            code: a.code().into(),
                            description: a.description().into(),
                            responsible: Some(holder),
                            at: now(),
                        });
                    }
                    answer(cod)
                }
            },
            ("listarEventosHistDoc", Some(d)) if d.events.is_empty() => answer(16),
            ("listarEventosHistDoc", Some(d)) => RcvAnswer { events: d.events.clone(), ..answer(15) },
            ("consultarDocDteCedible", Some(d)) => {
                let has = |c: &str| d.events.iter().any(|e| e.code == c);
                answer(if ["RCD", "RFP", "RFT"].iter().any(|c| has(c)) {
                    24
                } else if !open {
                    25
                } else if has("ACD") || has("ERM") {
                    23
                } else {
                    22
                })
            }
            _ => return fault(&format!("no operation {name}")),
        }
    };
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(response(&name, &a, false))
}

#[derive(Deserialize)]
struct DocBody {
    rut_emisor: String,
    tipo: u16,
    folio: i64,
    /// Local time `YYYY-MM-DDTHH:MM:SS`; now when absent.
    received_at: Option<NaiveDateTime>,
}

async fn set_document(body: web::Json<DocBody>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let Ok(rut) = body.rut_emisor.parse::<Rut>() else { return HttpResponse::BadRequest().body("rut_emisor") };
    received(&sim, &rut.to_string(), body.tipo, body.folio, body.received_at.unwrap_or_else(now));
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct FaultBody {
    internal_errors: u32,
    /// Only calls of this operation fail.
    operation: Option<String>,
}

async fn set_faults(body: web::Json<FaultBody>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Ok(mut s) = sim.rcv.lock() {
        s.internal_errors = body.internal_errors;
        s.faulty = body.operation.clone();
    }
    HttpResponse::NoContent().finish()
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH_CERT, web::post().to(service))
        .route(PATH_PROD, web::post().to(service))
        .route("/sim/rcv/documents", web::post().to(set_document))
        .route("/sim/rcv/faults", web::post().to(set_faults));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str) -> Evento {
        Evento { code: code.into(), description: String::new(), responsible: None, at: now() }
    }

    #[test]
    fn transition_rules_of_the_spec() {
        assert_eq!(decide(&[], Accion::Rcd), 0);
        assert_eq!(decide(&[ev("RCD")], Accion::Acd), 12);
        assert_eq!(decide(&[ev("RCD")], Accion::Erm), 6);
        assert_eq!(decide(&[ev("RCD")], Accion::Rfp), 0);
        assert_eq!(decide(&[ev("RCD")], Accion::Rcd), 7);
        assert_eq!(decide(&[ev("ACD")], Accion::Erm), 0);
        assert_eq!(decide(&[ev("ACD")], Accion::Rft), 11);
        assert_eq!(decide(&[ev("ACD")], Accion::Acd), 7);
        assert_eq!(decide(&[ev("ERM")], Accion::Acd), 0);
        assert_eq!(decide(&[ev("ERM")], Accion::Rcd), 13);
        assert_eq!(decide(&[ev("ERM")], Accion::Erm), 7);
    }
}
