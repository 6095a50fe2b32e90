//! The console's home (the companies a gateway-wide key may open) and a company's Resumen: folios
//! left and how long they last, CAF and certificate expiry, the documents of today and of this
//! month by state, the link to the SII, and received documents near their deadline.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{Datelike, Duration, Utc};
use maud::html;

use super::{ok_page, see_other, state_name, tipo_name, when, Console, PageError};
use crate::service::{ReceivedQuery, Service};
use crate::worker::breaker::BreakerState;
use crate::worker::SiiLink;

pub async fn home(c: Console, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, PageError> {
    if let Some(rut) = &c.p.key.company {
        return Ok(see_other(&format!("/console/c/{rut}")));
    }
    // The API lets a gateway-wide key with `read` (or `admin`) read any company; the list is
    // theirs, and nobody else's.
    if !c.p.has("read") {
        return Err(PageError::Api(crate::http::problem::ApiError::Forbidden("read")));
    }
    let rows: Vec<(String, String, &str)> =
        svc.company_list().await?.into_iter().map(|(rut, name, env)| (rut, name, env.as_str())).collect();
    let body = html! {
        h1 { "Empresas" }
        @if rows.is_empty() {
            p { "Aún no hay empresas. Regístrelas con " code { "POST /v1/companies" } "." }
        } @else {
            table {
                thead { tr { th scope="col" { "RUT" } th scope="col" { "Razón social" } th scope="col" { "Ambiente" } } }
                tbody {
                    @for (rut, name, env) in &rows {
                        tr { td { a href={ "/console/c/" (rut) } { (rut) } } td { (name) } td { (env) } }
                    }
                }
            }
        }
    };
    Ok(ok_page(&c, None, "Empresas", "", body))
}

fn circuit(s: BreakerState) -> (&'static str, &'static str) {
    match s {
        BreakerState::Closed => ("ok", "Operativo"),
        BreakerState::HalfOpen => ("warn", "Probando"),
        BreakerState::Open => ("bad", "Cortado (el SII no responde)"),
    }
}

pub async fn summary(
    c: Console,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
    link: Option<web::Data<Arc<SiiLink>>>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    c.company(&rut, "read")?;
    let info = svc.company(&rut).await?;
    let forecast = svc.caf_forecast(&rut).await?;
    let cafs = svc.list_cafs(&rut).await?;
    let cert = svc.certificate_info(&rut).await.ok();
    let today = crate::service::now_local().date();
    let month = today.with_day(1).unwrap_or(today);
    let counts_today = svc.document_counts(&rut, today).await?;
    let counts_month = svc.document_counts(&rut, month).await?;
    let upload = svc.last_upload(&rut).await?;
    let near = svc
        .list_received(
            &rut,
            ReceivedQuery {
                state: Some("received".into()),
                deadline_before: Some(today + Duration::days(3)),
                limit: Some(50),
                ..Default::default()
            },
        )
        .await?
        .items;
    let env = info.environment;
    let circuits: Vec<(String, BreakerState)> = link
        .as_ref()
        .map(|l| {
            let mut v: Vec<_> = l
                .breakers
                .iter()
                .filter(|((e, _), _)| *e == env)
                .map(|((_, boleta), b)| (if *boleta { "Boletas (REST)" } else { "DTE (SOAP)" }.to_string(), b.state()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        })
        .unwrap_or_default();
    let now = Utc::now();
    let body = html! {
        h1 { (info.company.rzn_soc) }
        p class="sub" { "RUT " (rut) " · ambiente " strong { (env.as_str()) } }
        div class="cards" {
            section class="card wide" aria-labelledby="h-folios" {
                h2 id="h-folios" { "Folios disponibles" }
                @if forecast.is_empty() { p { "Sin CAF cargados." } }
                @else {
                    table {
                        thead { tr { th scope="col" { "Tipo" } th scope="col" { "Quedan" } th scope="col" { "Por día" } th scope="col" { "Alcanzan para" } th scope="col" { "CAF vence" } } }
                        tbody {
                            @for f in &forecast {
                                @let short = f.days_left.is_some_and(|d| d < 7.0) || f.folios_left == 0;
                                tr class=[short.then_some("warn")] {
                                    td { (f.tipo) " " span class="muted wide-only" { (tipo_name(f.tipo)) } }
                                    td class="num" { (f.folios_left) }
                                    td class="num" { (format!("{:.1}", f.per_day)) }
                                    td { @match f.days_left {
                                        Some(d) if d > 3650.0 => "más de 10 años",
                                        Some(d) => { (format!("{d:.0} días")) @if let Some(e) = f.exhausted_on { " (" (e.format("%d-%m-%Y")) ")" } }
                                        None => "sin emisiones recientes",
                                    } }
                                    td { @match f.expires_first_on { Some(d) => (d.format("%d-%m-%Y")), None => "—" } }
                                }
                            }
                        }
                    }
                }
                p class="muted" { (cafs.iter().filter(|c| !c.expired && !c.retired).count()) " CAF vigentes de " (cafs.len()) "." }
            }
            section class="card" aria-labelledby="h-cert" {
                h2 id="h-cert" { "Certificado digital" }
                @match &cert {
                    Some(ci) => {
                        @let days = (ci.not_after - now).num_days();
                        p { (ci.subject) }
                        p class=[(days < 30).then_some("warn")] { "Vence el " (when(ci.not_after)) " (" (days) " días)." }
                    }
                    None => p class="warn" { "La empresa no tiene certificado: no puede firmar." }
                }
            }
            section class="card" aria-labelledby="h-docs" {
                h2 id="h-docs" { "Documentos emitidos" }
                table {
                    thead { tr { th scope="col" { "Estado" } th scope="col" { "Hoy" } th scope="col" { "Este mes" } } }
                    tbody {
                        @for (state, n) in &counts_month {
                            tr {
                                td { (state_name(state)) }
                                td class="num" { (counts_today.iter().find(|(s, _)| s == state).map(|(_, n)| *n).unwrap_or(0)) }
                                td class="num" { (n) }
                            }
                        }
                        @if counts_month.is_empty() { tr { td colspan="3" { "Nada emitido este mes." } } }
                    }
                }
            }
            section class="card" aria-labelledby="h-sii" {
                h2 id="h-sii" { "Conexión con el SII" }
                @if circuits.is_empty() { p class="muted" { "El enlace con el SII no corre en esta instancia." } }
                ul class="plain" {
                    @for (name, s) in &circuits {
                        @let (class, label) = circuit(*s);
                        li { (name) ": " span class=(class) { (label) } }
                    }
                }
                @match &upload {
                    Some(u) => p { "Último envío: " (when(u.created_at)) ", " (state_name(&u.state))
                        @if let Some(t) = &u.track_id { ", TrackID " code { (t) } }
                        @if let Some(e) = &u.estado { ", estado " (e) } "." }
                    None => p { "Aún no hay envíos al SII." }
                }
            }
            section class="card" aria-labelledby="h-near" {
                h2 id="h-near" { "Recibidos por vencer" }
                @if near.is_empty() { p { "Ningún documento recibido vence en los próximos días." } }
                @else {
                    ul class="plain" {
                        @for r in &near {
                            li class=[r.days_left.is_some_and(|d| d <= 2).then_some("urgent")] {
                                (r.rzn_soc) ", " (tipo_name(r.tipo)) " N° " (r.folio) ": "
                                @match r.days_left { Some(d) => (super::received::days(d)), None => "plazo desconocido" }
                            }
                        }
                    }
                    p { a href={ "/console/c/" (rut) "/recibidos" } { "Ir a Recibidos" } }
                }
            }
        }
    };
    Ok(ok_page(&c, Some(&rut), "Resumen", "resumen", body))
}
