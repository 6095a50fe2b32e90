//! Configuración: the company's API keys (created — shown once —, revoked, rotated), webhooks and
//! their deliveries, mailbox, certificate and CAFs, with the API's checks and messages.

use std::collections::HashMap;
use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::form;
use super::sign::Csrf;
use super::{notice_for, page, see_other, when, Console, Notice, PageError};
use crate::http::auth::Auth;
use crate::http::problem::ApiError;
use crate::http::BodyLimit;
use crate::service::{MailboxBody, MailboxInfo, Service, SCOPES};

/// A secret shown once after it was made (a new key, a webhook's secret).
struct Shown {
    what: String,
    secret: String,
}

async fn render(
    c: &Console,
    svc: &Service,
    rut: &str,
    notice: Option<Notice>,
    shown: Option<Shown>,
) -> Result<HttpResponse, PageError> {
    let admin = c.p.company(rut, "admin").is_ok();
    let keys = if admin { svc.company_keys(rut).await? } else { vec![] };
    let hooks = svc.webhooks(rut).await?;
    let deliveries = svc.deliveries(rut, 20).await?;
    let mailbox = svc.mailbox(rut).await.ok();
    let cert = svc.certificate_info(rut).await.ok();
    let cafs = svc.list_cafs(rut).await?;
    let n = notice.as_ref();
    let base = format!("/console/c/{rut}/configuracion");
    let body = html! {
        h1 { "Configuración" }
        @if !admin { p class="warn" { "Esta clave no tiene el alcance admin: puede ver, no cambiar." } }
        @if let Some(s) = &shown {
            div class="secret" role="status" {
                p { strong { (s.what) } " — cópiela ahora, no se volverá a mostrar:" }
                input id="secret" readonly value=(s.secret) aria-label="Secreto";
            }
        }
        section class="card" aria-labelledby="h-keys" {
            h2 id="h-keys" { "Claves de la API" }
            @if admin {
                table {
                    thead { tr { th scope="col" { "Clave" } th scope="col" { "Alcances" } th scope="col" { "Creada" } th scope="col" { "Estado" } th scope="col" { "" } } }
                    tbody {
                        @for k in &keys {
                            @let live = k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > chrono::Utc::now());
                            tr {
                                td { code { (k.id) } @if k.id == c.id() { " (esta sesión)" } }
                                td { (k.scopes.join(", ")) }
                                td { (when(k.created_at)) }
                                td { @if let Some(r) = k.revoked_at { "revocada " (when(r)) } @else if let Some(e) = k.expires_at { "vence " (when(e)) } @else { "activa" } }
                                td class="actions" {
                                    @if live {
                                        form method="post" action={ (base) "/claves/" (k.id) "/rotar" } { (c.csrf()) button type="submit" { "Rotar" } }
                                        form method="post" action={ (base) "/claves/" (k.id) "/revocar" } { (c.csrf()) button type="submit" class="danger" { "Revocar" } }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action={ (base) "/claves" } {
                    (c.csrf())
                    fieldset {
                        legend { "Nueva clave: alcances" }
                        @for s in SCOPES {
                            span class="check" { input id={ "scope-" (s) } type="checkbox" name="scope" value=(s); label for={ "scope-" (s) } { (s) } }
                        }
                    }
                    (notice_for(n, "keys"))
                    button type="submit" { "Crear clave" }
                }
            } @else { p { "Solo una clave admin ve y administra las claves." } }
        }
        section class="card" aria-labelledby="h-hooks" {
            h2 id="h-hooks" { "Webhooks" }
            ul class="plain" {
                @for h in &hooks {
                    li { code { (h.url) } " desde " (when(h.created_at))
                        @if admin { form class="inline" method="post" action={ (base) "/webhooks/" (h.id) "/borrar" } { (c.csrf()) button type="submit" class="danger" { "Borrar" } } } }
                }
            }
            @if admin {
                form method="post" action={ (base) "/webhooks" } {
                    (c.csrf())
                    label for="hook-url" { "URL (https)" }
                    input id="hook-url" name="url" type="url" required placeholder="https://erp.example.cl/dte";
                    (notice_for(n, "webhooks"))
                    button type="submit" { "Agregar webhook" }
                }
            }
            @if !deliveries.is_empty() {
                h3 { "Últimas entregas" }
                table {
                    thead { tr { th scope="col" { "Evento" } th scope="col" { "Estado" } th scope="col" { "Intentos" } th scope="col" { "Respuesta" } } }
                    tbody { @for d in &deliveries { tr { td { (d.event) } td { (d.state) } td class="num" { (d.attempts) } td { (d.last_status.as_deref().unwrap_or("")) } } } }
                }
            }
        }
        section class="card" aria-labelledby="h-mail" {
            h2 id="h-mail" { "Casilla de intercambio" }
            @if let Some(m) = &mailbox {
                p { "IMAP " code { (m.imap_url) } " (" (m.username) ", " (m.folder) ", cada " (m.poll_seconds) " s)"
                    @if let Some(s) = &m.smtp_url { "; SMTP " code { (s) } } "; remitente " (m.from_address) "." }
                @if let Some(t) = m.last_poll_at { p { "Última lectura " (when(t)) @if let Some(e) = &m.last_error { span class="bad" { " — " (e) } } } }
            } @else { p { "Sin casilla configurada." } }
            @if admin { (mailbox_form(c, &base, mailbox.as_ref(), n)) }
        }
        section class="card" aria-labelledby="h-cert" {
            h2 id="h-cert" { "Certificado digital" }
            @match &cert {
                Some(ci) => p { (ci.subject) " · RUT " (ci.holder_rut) " · vence " (when(ci.not_after)) }
                None => p class="warn" { "Sin certificado." }
            }
            @if admin {
                form method="post" action={ (base) "/certificado" } enctype="multipart/form-data" {
                    (c.csrf())
                    label for="p12" { "Archivo PKCS#12 (.p12 / .pfx)" }
                    input id="p12" name="file" type="file" accept=".p12,.pfx" required;
                    label for="p12-pass" { "Contraseña" }
                    input id="p12-pass" name="password" type="password" autocomplete="off";
                    (notice_for(n, "certificate"))
                    button type="submit" { "Cargar certificado" }
                }
            }
        }
        section class="card" aria-labelledby="h-cafs" {
            h2 id="h-cafs" { "CAF (folios autorizados)" }
            table {
                thead { tr { th scope="col" { "Tipo" } th scope="col" { "Rango" } th scope="col" { "Quedan" } th scope="col" { "Autorizado" } th scope="col" { "Estado" } } }
                tbody {
                    @for k in &cafs {
                        tr { td { (k.tipo) } td { (k.desde) "–" (k.hasta) } td class="num" { (k.folios_left) } td { (k.fecha_autorizacion.format("%d-%m-%Y")) }
                            td { @if k.retired { "retirado" } @else if k.expired { "vencido" } @else if let Some(e) = k.expires_on { "vence " (e.format("%d-%m-%Y")) } @else { "vigente" } } }
                    }
                }
            }
            @if admin {
                form method="post" action={ (base) "/cafs" } enctype="multipart/form-data" {
                    (c.csrf())
                    label for="caf" { "Archivo CAF del SII (.xml)" }
                    input id="caf" name="file" type="file" accept=".xml,text/xml,application/xml" required;
                    (notice_for(n, "caf"))
                    button type="submit" { "Cargar CAF" }
                }
            }
        }
    };
    let status = notice.as_ref().map(Notice::status).unwrap_or(StatusCode::OK);
    let mut r = page(status, Some(c), Some(rut), "Configuración", "configuracion", body);
    if shown.is_some() {
        r.headers_mut().insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    }
    Ok(r)
}

fn mailbox_form(c: &Console, base: &str, m: Option<&MailboxInfo>, n: Option<&Notice>) -> Markup {
    let v = |f: fn(&MailboxInfo) -> Option<String>| m.and_then(f).unwrap_or_default();
    html! {
        form method="post" action={ (base) "/buzon" } {
            (c.csrf())
            div class="grid" {
                div { label for="mb-imap" { "Servidor IMAP" } input id="mb-imap" name="imap_url" required placeholder="imaps://mail.example.cl" value=(v(|m| Some(m.imap_url.clone()))); }
                div { label for="mb-user" { "Usuario" } input id="mb-user" name="username" required autocomplete="off" value=(v(|m| Some(m.username.clone()))); }
                div { label for="mb-pass" { "Contraseña" } input id="mb-pass" name="password" type="password" required autocomplete="off"; }
                div { label for="mb-folder" { "Carpeta" } input id="mb-folder" name="folder" value=(m.map(|m| m.folder.clone()).unwrap_or_else(|| "INBOX".into())); }
                div { label for="mb-poll" { "Leer cada (s)" } input id="mb-poll" name="poll_seconds" type="number" min="15" max="3600" value=(m.map(|m| m.poll_seconds).unwrap_or(60)); }
                div { label for="mb-smtp" { "Servidor SMTP (opcional)" } input id="mb-smtp" name="smtp_url" placeholder="smtps://mail.example.cl" value=(v(|m| m.smtp_url.clone())); }
                div { label for="mb-suser" { "Usuario SMTP" } input id="mb-suser" name="smtp_username" autocomplete="off" value=(v(|m| m.smtp_username.clone())); }
                div { label for="mb-spass" { "Contraseña SMTP" } input id="mb-spass" name="smtp_password" type="password" autocomplete="off"; }
                div { label for="mb-from" { "Remitente" } input id="mb-from" name="from_address" type="email" required value=(v(|m| Some(m.from_address.clone()))); }
            }
            (notice_for(n, "mailbox"))
            button type="submit" { "Guardar casilla" }
        }
    }
}

type RutPath = web::Path<String>;

pub async fn show(c: Console, rut: RutPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    c.company(&rut, "read")?;
    render(&c, &svc, &rut, None, None).await
}

/// Runs a change: back to the page on success, or the page with the error in the form.
async fn outcome<T>(
    c: &Console,
    svc: &Service,
    rut: &str,
    form: &'static str,
    r: Result<T, PageError>,
    shown: impl FnOnce(T) -> Option<Shown>,
) -> Result<HttpResponse, PageError> {
    match r {
        Ok(v) => match shown(v) {
            Some(s) => render(c, svc, rut, None, Some(s)).await,
            None => Ok(see_other(&format!("/console/c/{rut}/configuracion"))),
        },
        Err(e @ (PageError::Csrf | PageError::SignIn)) => Err(e),
        Err(e) => render(c, svc, rut, Some(Notice::of(form, &e)), None).await,
    }
}

pub async fn create_key(
    c: Console,
    rut: RutPath,
    form: web::Form<Vec<(String, String)>>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    // Repeated `scope` fields: a form a map cannot hold.
    let pairs = form.into_inner();
    let token = pairs.iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    c.check(token)?;
    c.company(&rut, "admin")?;
    let scopes: Vec<String> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let r = svc.create_key(Some(&rut), &scopes, None, c.id()).await.map_err(PageError::from);
    outcome(&c, &svc, &rut, "keys", r, |k| Some(Shown { what: format!("Clave {} creada", k.id), secret: k.key })).await
}

/// A key of this company (another's is not found, as in the API).
async fn own_key(svc: &Service, rut: &str, id: &str) -> Result<(), PageError> {
    match svc.api_key(id).await? {
        Some(k) if k.company.as_deref() == Some(rut) => Ok(()),
        _ => Err(PageError::Api(ApiError::NotFound(format!("key {id}")))),
    }
}

pub async fn revoke_key(
    c: Console,
    path: web::Path<(String, String)>,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
    auth: web::Data<Arc<Auth>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, id) = path.into_inner();
    c.company(&rut, "admin")?;
    own_key(&svc, &rut, &id).await?;
    let r = svc.revoke_key(&id, c.id()).await.map_err(PageError::from);
    auth.forget_key(&id);
    if r.is_ok() && id == c.id() {
        // Its own key: the session ended with it.
        return Ok(see_other("/console/entrar"));
    }
    outcome(&c, &svc, &rut, "keys", r, |_| None).await
}

pub async fn rotate_key(
    c: Console,
    path: web::Path<(String, String)>,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, id) = path.into_inner();
    c.company(&rut, "admin")?;
    own_key(&svc, &rut, &id).await?;
    let r = svc.rotate_key(&id, None, c.id()).await.map_err(PageError::from);
    outcome(&c, &svc, &rut, "keys", r, |k| {
        Some(Shown { what: format!("Clave {} (reemplaza a {id}, que sigue válida un tiempo)", k.id), secret: k.key })
    })
    .await
}

#[derive(Deserialize)]
pub struct HookForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    url: String,
}

pub async fn add_webhook(
    c: Console,
    rut: RutPath,
    f: web::Form<HookForm>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let rut = rut.into_inner();
    c.company(&rut, "admin")?;
    let r = svc.add_webhook(&rut, f.url.trim(), c.id()).await.map_err(PageError::from);
    outcome(&c, &svc, &rut, "webhooks", r, |v| {
        v["secret"]
            .as_str()
            .map(|s| Shown { what: "Secreto del webhook (firma de cada entrega)".into(), secret: s.into() })
    })
    .await
}

pub async fn delete_webhook(
    c: Console,
    path: web::Path<(String, i64)>,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    let (rut, id) = path.into_inner();
    c.company(&rut, "admin")?;
    let r = svc.delete_webhook(&rut, id, c.id()).await.map_err(PageError::from);
    outcome(&c, &svc, &rut, "webhooks", r, |_| None).await
}

pub async fn put_mailbox(
    c: Console,
    rut: RutPath,
    f: web::Form<HashMap<String, String>>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(f.get("_csrf").map(String::as_str).unwrap_or(""))?;
    let rut = rut.into_inner();
    c.company(&rut, "admin")?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let opt = |k: &str| Some(get(k)).filter(|v| !v.is_empty());
    let r = match get("poll_seconds").parse::<i64>() {
        Err(_) => Err(PageError::Api(ApiError::BadRequest("poll_seconds: un número de segundos".into()))),
        Ok(poll_seconds) => {
            let b = MailboxBody {
                imap_url: get("imap_url"),
                username: get("username"),
                password: f.get("password").cloned().unwrap_or_default(),
                folder: opt("folder").unwrap_or_else(|| "INBOX".into()),
                poll_seconds,
                smtp_url: opt("smtp_url"),
                smtp_username: opt("smtp_username"),
                smtp_password: f.get("smtp_password").cloned().filter(|p| !p.is_empty()),
                from_address: get("from_address"),
            };
            svc.put_mailbox(&rut, b).await.map_err(PageError::from)
        }
    };
    outcome(&c, &svc, &rut, "mailbox", r, |_| None).await
}

/// A company admin's upload form: the scope is checked before a byte is read, the CSRF token
/// once the form is in (a form that cannot be read is the page's error, not a refusal).
async fn admin_upload(
    req: &HttpRequest,
    c: &Console,
    rut: &str,
    m: Multipart,
    limit: usize,
    fields: &[&str],
) -> Result<Result<HashMap<String, Vec<u8>>, PageError>, PageError> {
    c.company(rut, "admin")?;
    // Certificates and CAFs are a few kilobytes: read whole, within the body limit and time.
    let bounds = form::Bounds {
        total: limit as u64,
        parts: fields.len() + 2,
        field: limit,
        timeout_times: 1,
        keep: fields,
        spool: None,
    };
    let form = form::read(req, m, bounds).await.map(|f| f.fields).map_err(PageError::Api);
    if let Ok(f) = &form {
        c.check(&f.get("_csrf").map(|v| String::from_utf8_lossy(v).to_string()).unwrap_or_default())?;
    }
    Ok(form)
}

pub async fn put_certificate(
    req: HttpRequest,
    c: Console,
    rut: RutPath,
    m: Multipart,
    svc: web::Data<Arc<Service>>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    let form = admin_upload(&req, &c, &rut, m, limit.0, &["_csrf", "file", "password"]).await?;
    let r = match form {
        Err(e) => Err(e),
        Ok(f) => {
            let der = f.get("file").cloned().unwrap_or_default();
            let pass = f.get("password").map(|v| String::from_utf8_lossy(v).to_string()).unwrap_or_default();
            svc.put_certificate(&rut, &der, &pass).await.map_err(PageError::from)
        }
    };
    outcome(&c, &svc, &rut, "certificate", r, |_| None).await
}

pub async fn add_caf(
    req: HttpRequest,
    c: Console,
    rut: RutPath,
    m: Multipart,
    svc: web::Data<Arc<Service>>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, PageError> {
    let rut = rut.into_inner();
    let form = admin_upload(&req, &c, &rut, m, limit.0, &["_csrf", "file"]).await?;
    let r = match form {
        Err(e) => Err(e),
        Ok(f) => svc.add_caf(&rut, f.get("file").map(Vec::as_slice).unwrap_or_default()).await.map_err(PageError::from),
    };
    outcome(&c, &svc, &rut, "caf", r, |_| None).await
}
