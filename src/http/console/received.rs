//! Recibidos: the suppliers' documents with their verification and the days left to decide
//! (highlighted from 2 down), and the decisions of Ley 19.983 (accept, receipt of goods, claim)
//! through a confirmation page, by the same service as the API.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::{notice_for, page, pesos, see_other, state_name, tipo_name, when, Console, Notice, PageError};
use crate::exchange::rcv::Accion;
use crate::http::problem::ApiError;
use crate::service::{DecisionBody, ReceivedInfo, ReceivedQuery, Service, RECEIVED_STATES};
use crate::worker::exchange::Exchange;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    estado: String,
    /// The decision just taken (its code) and the folio it was on: the page says it in its own
    /// words, never the link's.
    hecho: Option<String>,
    folio: Option<i64>,
}

fn verification(r: &ReceivedInfo) -> (&'static str, String) {
    let fails = r.verification.iter().filter(|l| l.starts_with("FAIL")).count();
    let warns = r.verification.iter().filter(|l| l.starts_with("WARN")).count();
    match (fails, warns) {
        (0, 0) => ("ok", "Verificado".into()),
        (0, w) => ("warn", format!("Verificado con {w} advertencia(s)")),
        (f, _) => ("bad", format!("{f} verificación(es) fallida(s)")),
    }
}

pub fn days(d: i64) -> String {
    match d {
        0 => "hoy es el último día".into(),
        1 => "1 día".into(),
        n => format!("{n} días"),
    }
}

fn undecided(r: &ReceivedInfo) -> bool {
    r.decision.is_none() && r.state == "received"
}

pub async fn list(
    c: Console,
    rut: web::Path<String>,
    q: web::Query<ListQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    c.company(&rut, "read")?;
    let state = Some(q.estado.trim().to_string()).filter(|s| !s.is_empty());
    let items = svc.list_received(&rut, ReceivedQuery { state, limit: Some(200), ..Default::default() }).await?.items;
    let can_decide = c.p.has("issue");
    let body = html! {
        h1 { "Documentos recibidos" }
        @if let (Some(h), Some(f)) = (q.hecho.as_deref().filter(|h| accion_of(h).is_some()), q.folio) {
            p class="done" role="status" { "Decisión registrada (" (h) "): " (accion_label(h)) ", folio " (f) "." }
        }
        form class="filters" method="get" action={ "/console/c/" (rut) "/recibidos" } {
            div {
                label for="r-estado" { "Estado" }
                select id="r-estado" name="estado" {
                    option value="" { "Todos" }
                    @for s in RECEIVED_STATES { option value=(s) selected[q.estado == *s] { (state_name(s)) } }
                }
            }
            button type="submit" { "Filtrar" }
        }
        @if items.is_empty() { p { "No hay documentos recibidos." } }
        @else {
            div class="scroll" {
                table id="inbox" {
                    thead { tr {
                        th scope="col" { "Emisor" } th scope="col" { "Documento" } th scope="col" { "Fecha" } th scope="col" { "Total" }
                        th scope="col" { "Verificación" } th scope="col" { "Plazo" } th scope="col" { "Estado" } th scope="col" { "Acciones" }
                    } }
                    tbody {
                        @for r in &items {
                            @let (vclass, vtext) = verification(r);
                            @let urgent = undecided(r) && r.days_left.is_some_and(|d| d <= 2);
                            @let base = format!("/console/c/{rut}/recibidos/{}/{}/{}/decidir", r.rut_emisor, r.tipo, r.folio);
                            tr class=[urgent.then_some("urgent")] data-folio=(r.folio) {
                                td { (r.rzn_soc) br; span class="muted" { (r.rut_emisor) } }
                                td { (tipo_name(r.tipo)) " N° " (r.folio) }
                                td { (r.fch_emis.format("%d-%m-%Y")) }
                                td class="num" { (pesos(r.mnt_total)) }
                                td { span class=(vclass) title=(r.verification.join("\n")) { (vtext) } }
                                td {
                                    @match (undecided(r), r.days_left) {
                                        (true, Some(d)) => { strong class=[urgent.then_some("urgent")] { (days(d)) } }
                                        (true, None) => "—",
                                        (false, _) => "decidido",
                                    }
                                }
                                td { (state_name(&r.state)) }
                                td class="actions" {
                                    @if can_decide && undecided(r) {
                                        a class="button" href={ (base) "?accion=ACD" } { "Aceptar" }
                                        " "
                                        a class="button" href={ (base) "?accion=ERM" } { "Recibo de mercaderías" }
                                        " "
                                        a class="button danger" href={ (base) "?accion=RCD" } { "Reclamar" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, Some(&c), Some(&rut), "Recibidos", "recibidos", body))
}

type DocPath = web::Path<(String, String, i32, i64)>;

#[derive(Deserialize)]
pub struct ConfirmQuery {
    accion: Option<String>,
}

fn accion_of(s: &str) -> Option<Accion> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn accion_label(s: &str) -> &'static str {
    match s {
        "ACD" => "Aceptar el contenido",
        "ERM" => "Otorgar recibo de mercaderías o servicios",
        "RCD" => "Reclamar el contenido",
        "RFP" => "Reclamar falta parcial de mercaderías",
        "RFT" => "Reclamar falta total de mercaderías",
        _ => "Acción",
    }
}

fn confirm_page(c: &Console, rut: &str, r: &ReceivedInfo, accion: &str, notice: Option<Notice>) -> HttpResponse {
    let claim = matches!(accion, "RCD" | "RFP" | "RFT");
    let action = format!("/console/c/{rut}/recibidos/{}/{}/{}/decidir", r.rut_emisor, r.tipo, r.folio);
    let body = html! {
        p { a href={ "/console/c/" (rut) "/recibidos" } { "← Recibidos" } }
        h1 { "Confirmar: " (accion_label(accion)) }
        dl class="facts" {
            dt { "Emisor" } dd { (r.rzn_soc) " (" (r.rut_emisor) ")" }
            dt { "Documento" } dd { (tipo_name(r.tipo)) " N° " (r.folio) " del " (r.fch_emis.format("%d-%m-%Y")) }
            dt { "Total" } dd { (pesos(r.mnt_total)) }
            @if let Some(d) = r.deadline { dt { "Plazo" } dd { "hasta el " (when(d)) } }
        }
        p { "La decisión se registra en el SII (Registro de Compras y Ventas) y se avisa al emisor. No se puede deshacer." }
        form id="decision" method="post" action=(action) {
            (c.csrf())
            @if claim {
                div {
                    label for="accion" { "Tipo de reclamo" }
                    select id="accion" name="accion" {
                        @for a in ["RCD", "RFP", "RFT"] { option value=(a) selected[a == accion] { (accion_label(a)) } }
                    }
                }
                div {
                    label for="reason" { "Motivo (se envía al emisor)" }
                    textarea id="reason" name="reason" rows="3" maxlength="256" required {}
                }
            } @else {
                input type="hidden" name="accion" value=(accion);
                @if accion == "ERM" {
                    div {
                        label for="recinto" { "Recinto donde se recibió (opcional)" }
                        input id="recinto" name="recinto" maxlength="80";
                    }
                }
            }
            (notice_for(notice.as_ref(), "decision"))
            button type="submit" class=[claim.then_some("danger")] { "Confirmar" }
            " "
            a href={ "/console/c/" (rut) "/recibidos" } { "Cancelar" }
        }
    };
    let status = notice.as_ref().map(Notice::status).unwrap_or(StatusCode::OK);
    page(status, Some(c), Some(rut), "Confirmar decisión", "recibidos", body)
}

pub async fn confirm(
    c: Console,
    path: DocPath,
    q: web::Query<ConfirmQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    c.company(&rut, "issue")?;
    let r = svc.get_received(&rut, &emisor, tipo, folio).await?;
    let accion = q.accion.clone().unwrap_or_else(|| "ACD".into());
    if accion_of(&accion).is_none() {
        return Err(PageError::Api(ApiError::BadRequest(format!("acción {accion:?}: ACD, ERM, RCD, RFP o RFT"))));
    }
    Ok(confirm_page(&c, &rut, &r, &accion, None))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    accion: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    recinto: String,
}

pub async fn decide(
    c: Console,
    path: DocPath,
    f: web::Form<DecisionForm>,
    svc: web::Data<Arc<Service>>,
    exchange: Option<web::Data<Arc<Exchange>>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, emisor, tipo, folio) = path.into_inner();
    c.company(&rut, "issue")?;
    let r = svc.get_received(&rut, &emisor, tipo, folio).await?;
    let Some(accion) = accion_of(&f.accion) else {
        let n = Notice::bad("decision", "Elija una acción: ACD, ERM, RCD, RFP o RFT.");
        return Ok(confirm_page(&c, &rut, &r, "ACD", Some(n)));
    };
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let body = DecisionBody { accion, reason: text(&f.reason), recinto: text(&f.recinto) };
    let Some(x) = exchange else {
        let e = PageError::Api(ApiError::Unavailable("la recepción no corre en esta instancia".into()));
        return Ok(confirm_page(&c, &rut, &r, &f.accion, Some(Notice::of("decision", &e))));
    };
    match x.decide(&rut, &emisor, tipo, folio, body, c.id()).await {
        Ok(_) => Ok(see_other(&format!("/console/c/{rut}/recibidos?hecho={}&folio={folio}", f.accion))),
        Err(e) => Ok(confirm_page(&c, &rut, &r, &f.accion, Some(Notice::of("decision", &e.into())))),
    }
}
