//! Lotes: a CSV, ZIP or JSON upload (file picker or drag-and-drop; without a script the form
//! still works), its live progress fed by the batch's event stream, the errors with their lines,
//! the results download, and the dead letters with their replay for gateway admins.

use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::form;
use super::sign::Csrf;
use super::{notice_for, page, see_other, state_name, when, Console, Notice, PageError};
use crate::batch::csv::Encoding;
use crate::batch::intake::Format;
use crate::batch::{BatchError, Batches};
use crate::error::FieldError;
use crate::http::auth::Auth;
use crate::http::batches::{caller, event_stream, reader, zip_download, BatchLimit, StreamSession};
use crate::http::problem::ApiError;
use crate::http::StreamLimits;
use crate::service::Service;

/// What an upload came to when it was refused: the message and each line's error.
struct Refused {
    notice: Notice,
    lines: Vec<FieldError>,
}

async fn render(c: &Console, batches: &Batches, refused: Option<Refused>) -> Result<HttpResponse, PageError> {
    let who = reader(&c.p)?;
    let admin = c.p.global_admin().is_ok();
    let list = batches.list(&who, admin, 30).await?;
    let dead = if admin { batches.dead_letters().await.unwrap_or_default() } else { vec![] };
    let company = c.p.key.company.clone();
    let can_issue = c.p.has("issue");
    let body = html! {
        h1 { "Lotes" }
        @if can_issue {
            section class="card" aria-labelledby="h-upload" {
                h2 id="h-upload" { "Subir un lote" }
                form id="upload" method="post" action="/console/lotes" enctype="multipart/form-data" {
                    (c.csrf())
                    div class="drop" id="drop" {
                        label for="file" { "Archivo CSV, ZIP o JSON" }
                        input id="file" name="file" type="file" accept=".csv,.zip,.json,text/csv,application/zip,application/json" required;
                        p class="muted" { "o arrástrelo aquí" }
                    }
                    div {
                        label for="encoding" { "Codificación del CSV" }
                        select id="encoding" name="encoding" {
                            option value="utf-8" { "UTF-8" }
                            option value="iso-8859-1" { "ISO-8859-1 (Excel antiguo)" }
                        }
                    }
                    div class="check" {
                        input id="aon" name="all_or_nothing" type="checkbox" value="true";
                        label for="aon" { "Todo o nada: si un documento tiene errores, no se emite ninguno" }
                    }
                    @if let Some(r) = &refused { (notice_for(Some(&r.notice), "upload")) (error_table(&r.lines)) }
                    button type="submit" { "Subir y emitir" }
                }
            }
        }
        section aria-labelledby="h-list" {
            h2 id="h-list" { "Lotes recientes" }
            @if list.is_empty() { p { "Aún no hay lotes." } }
            @else {
                div class="scroll" {
                    table {
                        thead { tr { th scope="col" { "Lote" } th scope="col" { "Formato" } th scope="col" { "Documentos" } th scope="col" { "Estado" } th scope="col" { "Creado" } } }
                        tbody {
                            @for b in &list {
                                tr { td { a href={ "/console/lotes/" (b.id) } { code { (b.id) } } } td { (b.format) } td class="num" { (b.total) }
                                    td { (format!("{:?}", b.state).to_lowercase()) } td { (when(b.created_at)) } }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            section aria-labelledby="h-dead" {
                h2 id="h-dead" { "Cartas muertas" }
                @if dead.is_empty() { p { "No hay documentos detenidos." } }
                @else {
                    form method="post" action="/console/lotes/muertos/reintentar" {
                        (c.csrf()) button type="submit" { "Reintentar todas (" (dead.len()) ")" }
                    }
                    table {
                        thead { tr { th scope="col" { "Lote" } th scope="col" { "Ítem" } th scope="col" { "Motivo" } th scope="col" { "Entregas" } th scope="col" { "" } } }
                        tbody {
                            @for d in &dead {
                                tr { td { code { (d.batch) } } td class="num" { (d.index) } td { (d.reason) } td class="num" { (d.deliveries) }
                                    td { form method="post" action={ "/console/lotes/muertos/" (d.id) "/reintentar" } { (c.csrf()) button type="submit" { "Reintentar" } } } }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = refused.as_ref().map(|r| r.notice.status()).unwrap_or(StatusCode::OK);
    Ok(page(status, Some(c), company.as_deref(), "Lotes", "lotes", body))
}

fn error_table(lines: &[FieldError]) -> Markup {
    html! {
        @if !lines.is_empty() {
            table class="errors" {
                caption { "Errores por línea" }
                thead { tr { th scope="col" { "Dónde" } th scope="col" { "Error" } } }
                tbody { @for e in lines { tr { td { code { (e.path) } } td { (e.message) } } } }
            }
        }
    }
}

pub async fn list(c: Console, batches: web::Data<Arc<Batches>>) -> Result<HttpResponse, PageError> {
    render(&c, &batches, None).await
}

fn format_of(filename: &str, encoding: &str) -> Result<Format, String> {
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".json") {
        Ok(Format::Json)
    } else if lower.ends_with(".zip") {
        Ok(Format::Zip)
    } else if lower.ends_with(".csv") || lower.ends_with(".txt") {
        match encoding {
            "iso-8859-1" => Ok(Format::Csv(Encoding::Latin1)),
            _ => Ok(Format::Csv(Encoding::Utf8)),
        }
    } else {
        Err(format!("\"{filename}\": suba un archivo .csv, .zip o .json"))
    }
}

pub async fn upload(
    req: HttpRequest,
    c: Console,
    m: Multipart,
    batches: web::Data<Arc<Batches>>,
    limit: web::Data<BatchLimit>,
) -> Result<HttpResponse, PageError> {
    // Who may upload is decided before a byte of the file is read.
    if !c.p.has("issue") {
        return Err(PageError::Api(ApiError::Forbidden("issue")));
    }
    let bounds = form::Bounds {
        total: limit.0,
        // The upload form has four fields.
        parts: 8,
        field: 4096,
        // An upload gets ten times the body's time.
        timeout_times: 10,
        keep: &["_csrf", "encoding", "all_or_nothing"],
        spool: Some("file"),
    };
    let form = form::read(&req, m, bounds).await;
    // The token is checked before anything is read into a batch.
    let mut form = match form {
        Ok(f) => {
            c.check(&f.text("_csrf"))?;
            f
        }
        Err(e) => {
            let n = Notice::of("upload", &PageError::Api(e));
            return render(&c, &batches, Some(Refused { notice: n, lines: vec![] })).await;
        }
    };
    let refuse = |detail: &str| Refused { notice: Notice::bad("upload", detail), lines: vec![] };
    let Some((file, filename)) = form.file.take() else {
        return render(&c, &batches, Some(refuse("Elija un archivo."))).await;
    };
    let encoding = Some(form.text("encoding")).filter(|e| !e.is_empty()).unwrap_or_else(|| "utf-8".into());
    let all_or_nothing = matches!(form.text("all_or_nothing").as_str(), "true" | "on");
    let format = match format_of(&filename, &encoding) {
        Ok(f) => f,
        Err(m) => return render(&c, &batches, Some(refuse(&m))).await,
    };
    match batches.submit(file, format, all_or_nothing, &caller(&c.p)).await {
        Ok((status, _)) => Ok(see_other(&format!("/console/lotes/{}", status.id))),
        Err(e) => {
            let lines = match &e {
                BatchError::Malformed(_, errs) | BatchError::Rejected(errs) => errs.clone(),
                BatchError::Service(_) => vec![],
            };
            let notice = Notice::of("upload", &PageError::Api(e.into()));
            render(&c, &batches, Some(Refused { notice, lines })).await
        }
    }
}

pub async fn show(
    c: Console,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, PageError> {
    let who = reader(&c.p)?;
    let s = batches.status(&id, &who).await?;
    let problems = batches.items(&id, &who, -1, 1000, true).await?;
    let done: i64 = s.items.iter().filter(|(k, _)| k.as_str() != "pending").map(|(_, n)| *n).sum();
    let failed: i64 = ["failed", "dead"].iter().filter_map(|k| s.items.get(*k)).sum();
    let pct = if s.total > 0 { done * 100 / s.total } else { 100 };
    let body = html! {
        p { a href="/console/lotes" { "← Lotes" } }
        h1 { "Lote " code { (s.id) } }
        p class="sub" { (s.total) " documentos · " (s.format) @if s.all_or_nothing { " · todo o nada" } " · creado " (when(s.created_at)) }
        div class="progress" id="batch" data-events={ "/console/lotes/" (s.id) "/eventos" } data-total=(s.total) data-problems=(failed) {
            label for="bar" { "Avance" }
            progress id="bar" max=(s.total.max(1)) value=(done) { (pct) "%" }
            p id="bar-text" aria-live="polite" { (pct) "% · " (done) " de " (s.total) " procesados" }
        }
        dl class="counts" id="counts" {
            @for (k, n) in &s.items { dt { (state_name(k)) } dd data-state=(k) { (n) } }
            @for (k, n) in &s.documents { dt { "SII: " (state_name(k)) } dd data-doc=(k) { (n) } }
        }
        p { a id="results" class="button" href={ "/console/lotes/" (s.id) "/results.zip" } { "Descargar resultados (results.zip)" } }
        section aria-labelledby="h-problems" {
            h2 id="h-problems" { "Documentos con error" }
            @if problems.is_empty() { p id="no-problems" { "Ninguno." } }
            @else {
                table class="errors" {
                    thead { tr { th scope="col" { "Ítem" } th scope="col" { "Origen" } th scope="col" { "Referencia" } th scope="col" { "Estado" } th scope="col" { "Error" } } }
                    tbody {
                        @for i in &problems {
                            tr { td class="num" { (i.index) } td { (i.source) } td { (i.reference.as_deref().unwrap_or("")) }
                                td { (state_name(&format!("{:?}", i.state).to_lowercase())) } td { (i.error.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    };
    let company = c.p.key.company.clone();
    Ok(page(StatusCode::OK, Some(&c), company.as_deref(), "Lote", "lotes", body))
}

pub async fn events(
    req: HttpRequest,
    c: Console,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
    auth: web::Data<Arc<Auth>>,
    svc: web::Data<Arc<Service>>,
    limits: web::Data<StreamLimits>,
) -> Result<HttpResponse, PageError> {
    let who = reader(&c.p)?;
    batches.get(&id, &who).await?;
    let session = StreamSession { svc: svc.get_ref().clone(), token: c.token.clone(), limits: super::limits(&req) };
    Ok(event_stream(batches.get_ref().clone(), auth.get_ref().clone(), c.p, id.into_inner(), &limits, Some(session)))
}

pub async fn results(
    c: Console,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, PageError> {
    let file = batches.results(&id, &reader(&c.p)?, false).await?;
    Ok(zip_download(file, &id))
}

pub async fn replay(
    c: Console,
    id: web::Path<String>,
    f: web::Form<Csrf>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    c.p.global_admin()?;
    batches.replay(Some(&id)).await?;
    Ok(see_other("/console/lotes"))
}

pub async fn replay_all(
    c: Console,
    f: web::Form<Csrf>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    c.p.global_admin()?;
    batches.replay(None).await?;
    Ok(see_other("/console/lotes"))
}
