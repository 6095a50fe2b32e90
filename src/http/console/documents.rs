//! Documentos: a company's issued documents filtered as the API filters them, and a document's
//! page with its totals, its SII state and history, its buyer's events, its downloads and the
//! actions the API has (ask the SII again, resend to the buyer).

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::sign::Csrf;
use super::{notice_for, page, pesos, see_other, state_name, tipo_name, when, Console, Notice, PageError};
use crate::domain::DocState;
use crate::http::problem::ApiError;
use crate::print::Format;
use crate::service::{DocumentQuery, Service};
use crate::worker::SiiLink;

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    tipo: String,
    #[serde(default)]
    desde: String,
    #[serde(default)]
    hasta: String,
    #[serde(default)]
    estado: String,
    #[serde(default)]
    receptor: String,
    #[serde(default)]
    folio: String,
    antes: Option<i64>,
}

fn some(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// The form's text as the API's query; a field that does not read names itself.
fn query(f: &Filter) -> Result<DocumentQuery, String> {
    let num = |name: &str, v: &str| v.parse::<i64>().map_err(|_| format!("{name}: \"{v}\" no es un número"));
    let date = |name: &str, v: &str| {
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| format!("{name}: \"{v}\" no es una fecha AAAA-MM-DD"))
    };
    Ok(DocumentQuery {
        tipo: some(&f.tipo).map(|v| num("tipo", v).map(|n| n as i32)).transpose()?,
        from: some(&f.desde).map(|v| date("desde", v)).transpose()?,
        to: some(&f.hasta).map(|v| date("hasta", v)).transpose()?,
        state: some(&f.estado).map(|v| v.parse::<DocState>()).transpose()?,
        rut_recep: some(&f.receptor)
            .map(|v| crate::service::parse_rut(v).map(|r| r.to_string()).map_err(|e| format!("receptor: {e}")))
            .transpose()?,
        folio: some(&f.folio).map(|v| num("folio", v)).transpose()?,
        before: f.antes,
        limit: Some(50),
    })
}

pub async fn list(
    c: Console,
    rut: web::Path<String>,
    f: web::Query<Filter>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    c.company(&rut, "read")?;
    let (notice, page_) = match query(&f) {
        Ok(q) => match svc.documents(&rut, q).await {
            Ok(p) => (None, Some(p)),
            Err(e) => (Some(Notice::of("filter", &e.into())), None),
        },
        Err(m) => (Some(Notice::bad("filter", &m)), None),
    };
    let keep = |next: i64| {
        format!(
            "?tipo={}&desde={}&hasta={}&estado={}&receptor={}&folio={}&antes={next}",
            enc(&f.tipo),
            enc(&f.desde),
            enc(&f.hasta),
            enc(&f.estado),
            enc(&f.receptor),
            enc(&f.folio)
        )
    };
    let body = html! {
        h1 { "Documentos emitidos" }
        form class="filters" method="get" action={ "/console/c/" (rut) "/documentos" } {
            div { label for="f-tipo" { "Tipo" } input id="f-tipo" name="tipo" inputmode="numeric" size="4" value=(f.tipo); }
            div { label for="f-desde" { "Desde" } input id="f-desde" name="desde" type="date" value=(f.desde); }
            div { label for="f-hasta" { "Hasta" } input id="f-hasta" name="hasta" type="date" value=(f.hasta); }
            div {
                label for="f-estado" { "Estado" }
                select id="f-estado" name="estado" {
                    option value="" { "Todos" }
                    @for s in DocState::ALL {
                        option value=(s.as_str()) selected[f.estado == s.as_str()] { (state_name(s.as_str())) }
                    }
                }
            }
            div { label for="f-receptor" { "RUT receptor" } input id="f-receptor" name="receptor" size="12" value=(f.receptor); }
            div { label for="f-folio" { "Folio" } input id="f-folio" name="folio" inputmode="numeric" size="8" value=(f.folio); }
            button type="submit" { "Filtrar" }
            (notice_for(notice.as_ref(), "filter"))
        }
        @if let Some(p) = &page_ {
            @if p.items.is_empty() { p { "No hay documentos con ese filtro." } }
            @else {
                div class="scroll" {
                    table {
                        thead { tr { th scope="col" { "Tipo" } th scope="col" { "Folio" } th scope="col" { "Fecha" } th scope="col" { "Receptor" } th scope="col" { "Total" } th scope="col" { "Estado" } } }
                        tbody {
                            @for d in &p.items {
                                tr {
                                    td { (d.tipo) " " span class="muted wide-only" { (tipo_name(d.tipo)) } }
                                    td { a href={ "/console/c/" (rut) "/documentos/" (d.tipo) "/" (d.folio) } { (d.folio) } }
                                    td { (d.fch_emis.format("%d-%m-%Y")) }
                                    td { (d.rut_recep) }
                                    td class="num" { (pesos(d.mnt_total)) }
                                    td { span class={ "state " (d.state.as_str()) } { (state_name(d.state.as_str())) } }
                                }
                            }
                        }
                    }
                }
                @if let Some(n) = p.next { p { a href=(keep(n)) { "Más antiguos →" } } }
            }
        }
    };
    let status = notice.as_ref().map(Notice::status).unwrap_or(StatusCode::OK);
    Ok(page(status, Some(&c), Some(&rut), "Documentos", "documentos", body))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

type DocPath = web::Path<(String, i32, i64)>;

/// The document's `Totales` in the order of the printed copy: amounts in pesos, rates in percent,
/// each additional tax on its own line, and the total last.
fn total_rows(t: &serde_json::Value) -> Vec<(String, String)> {
    let amount = |v: &serde_json::Value| v.as_i64().map(pesos).unwrap_or_else(|| v.to_string());
    let mut rows = Vec::new();
    let Some(o) = t.as_object() else { return rows };
    for k in ["MntNeto", "MntExe", "TasaIVA", "IVA"] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
            rows.push((k.to_string(), if k == "TasaIVA" { format!("{v} %") } else { amount(v) }));
        }
    }
    for i in o.get("ImptoReten").and_then(|v| v.as_array()).into_iter().flatten() {
        rows.push((format!("Impuesto {} ({} %)", i["TipoImp"], i["TasaImp"]), amount(&i["MontoImp"])));
    }
    for (k, v) in o {
        let shown = ["MntNeto", "MntExe", "TasaIVA", "IVA", "ImptoReten", "MntTotal"].contains(&k.as_str());
        if !shown && !v.is_null() {
            rows.push((k.clone(), if v.is_number() { amount(v) } else { v.to_string() }));
        }
    }
    if let Some(v) = o.get("MntTotal") {
        rows.push(("MntTotal".into(), amount(v)));
    }
    rows
}

async fn show_with(
    c: &Console,
    svc: &Service,
    rut: &str,
    tipo: i32,
    folio: i64,
    notice: Option<Notice>,
) -> Result<HttpResponse, PageError> {
    let d = svc.document(rut, tipo, folio).await?;
    let upload = svc.document_upload(rut, tipo, folio).await?;
    let exchange = svc.document_exchange(rut, tipo, folio).await.ok();
    let totals = total_rows(&d.totals);
    let base = format!("/console/c/{rut}/documentos/{tipo}/{folio}");
    let cedible = matches!(tipo, 33 | 34 | 43 | 46 | 52);
    let can_act = c.p.has("issue");
    let body = html! {
        p { a href={ "/console/c/" (rut) "/documentos" } { "← Documentos" } }
        h1 { (tipo_name(tipo)) " N° " (folio) }
        p class="sub" { "Emitida el " (d.fch_emis.format("%d-%m-%Y")) " a " (d.rut_recep) " · "
            span class={ "state " (d.state.as_str()) } { (state_name(d.state.as_str())) } }
        div class="cards" {
            section class="card" aria-labelledby="h-totals" {
                h2 id="h-totals" { "Totales" }
                table { tbody { @for (k, v) in &totals { tr { th scope="row" { (k) } td class="num" { (v) } } } } }
            }
            section class="card" aria-labelledby="h-files" {
                h2 id="h-files" { "Descargas" }
                ul class="plain" {
                    li { a href={ (base) "/xml" } download { "XML firmado" } }
                    li { a id="pdf-letter" href={ (base) "/pdf?formato=carta" } { "PDF tamaño carta" } }
                    li { a href={ (base) "/pdf?formato=80mm" } { "PDF 80 mm" } }
                    @if cedible { li { a href={ (base) "/pdf?formato=carta&cedible=1" } { "PDF cedible" } } }
                }
            }
            section class="card" aria-labelledby="h-sii" {
                h2 id="h-sii" { "SII" }
                ol class="history" {
                    li { (when(d.created_at)) ": emitido y firmado" }
                    @if let Some(u) = &upload {
                        li { (when(u.created_at)) ": envío " (u.id) " (" (state_name(&u.state)) ")"
                            @if let Some(t) = &u.track_id { ", TrackID " code { (t) } }
                            @if u.attempts > 1 { ", " (u.attempts) " intentos" }
                            @if let Some(e) = &u.last_error { ", último error: " (e) } }
                        @if let Some(e) = &u.estado { li { "Estado del envío: " (e) @if let Some(g) = &u.glosa { " — " (g) } } }
                    } @else { li { "Aún no enviado al SII." } }
                    li { "Estado del documento: " strong { (state_name(d.state.as_str())) } }
                }
                @if can_act {
                    form method="post" action={ (base) "/consultar" } {
                        (c.csrf())
                        button type="submit" { "Consultar al SII" }
                        (notice_for(notice.as_ref(), "ask"))
                    }
                }
            }
            section class="card" aria-labelledby="h-buyer" {
                h2 id="h-buyer" { "Comprador" }
                @match &exchange {
                    Some(x) => {
                        p { "Entrega: " (x.delivery_state.as_deref().map(state_name).unwrap_or("no corresponde aún"))
                            @if let Some(b) = &x.buyer_state { " · " (state_name(b)) } }
                        @if !x.deliveries.is_empty() {
                            ul class="plain" {
                                @for dl in &x.deliveries {
                                    li { (when(dl.created_at)) ": " (dl.state) @if let Some(a) = &dl.to_address { " a " (a) }
                                        @if let Some(e) = &dl.last_error { " — " (e) } }
                                }
                            }
                        }
                        @if !x.events.is_empty() {
                            ol class="history" {
                                @for ev in &x.events {
                                    li { (when(ev.at)) ": " (ev.code) " " (ev.description) " (" (ev.source) ")" }
                                }
                            }
                        }
                    }
                    None => p { "Sin información de intercambio." }
                }
                @if can_act {
                    form method="post" action={ (base) "/reenviar" } {
                        (c.csrf())
                        button type="submit" { "Reenviar al comprador" }
                        (notice_for(notice.as_ref(), "resend"))
                    }
                }
            }
        }
    };
    let status = notice.as_ref().map(Notice::status).unwrap_or(StatusCode::OK);
    Ok(page(status, Some(c), Some(rut), &format!("{tipo} N° {folio}"), "documentos", body))
}

pub async fn show(c: Console, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, PageError> {
    let (rut, tipo, folio) = path.into_inner();
    c.company(&rut, "read")?;
    show_with(&c, &svc, &rut, tipo, folio, None).await
}

pub async fn xml(c: Console, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, PageError> {
    let (rut, tipo, folio) = path.into_inner();
    c.company(&rut, "read")?;
    let xml = svc.document_xml(&rut, tipo, folio).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/xml")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{rut}-T{tipo}F{folio}.xml\"")))
        .body(xml))
}

#[derive(Deserialize)]
pub struct PdfQuery {
    formato: Option<String>,
    cedible: Option<String>,
}

pub async fn pdf(
    c: Console,
    path: DocPath,
    q: web::Query<PdfQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    let (rut, tipo, folio) = path.into_inner();
    c.company(&rut, "read")?;
    let format: Format = q.formato.as_deref().unwrap_or("carta").parse().map_err(ApiError::BadRequest)?;
    let cedible = q.cedible.as_deref().is_some_and(|v| v == "1" || v == "true");
    let bytes = svc.document_pdf(&rut, tipo, folio, format, cedible).await?;
    let suffix = if cedible { "-cedible" } else { "" };
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{rut}-T{tipo}F{folio}{suffix}.pdf\""),
        ))
        .body(bytes))
}

pub async fn ask_sii(
    c: Console,
    path: DocPath,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
    link: Option<web::Data<Arc<SiiLink>>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, tipo, folio) = path.into_inner();
    c.company(&rut, "issue")?;
    svc.document(&rut, tipo, folio).await?;
    let asked = match link {
        None => Err(PageError::Api(ApiError::Unavailable("el enlace con el SII no corre en esta instancia".into()))),
        Some(l) => l.document_status(&rut, tipo, folio).await.map_err(|e| PageError::Api(ApiError::Unavailable(e))),
    };
    match asked {
        Ok(_) => Ok(see_other(&format!("/console/c/{rut}/documentos/{tipo}/{folio}"))),
        Err(e) => show_with(&c, &svc, &rut, tipo, folio, Some(Notice::of("ask", &e))).await,
    }
}

pub async fn resend(
    c: Console,
    path: DocPath,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, tipo, folio) = path.into_inner();
    c.company(&rut, "issue")?;
    match svc.resend_to_buyer(&rut, tipo, folio).await {
        Ok(_) => Ok(see_other(&format!("/console/c/{rut}/documentos/{tipo}/{folio}"))),
        Err(e) => show_with(&c, &svc, &rut, tipo, folio, Some(Notice::of("resend", &e.into()))).await,
    }
}
