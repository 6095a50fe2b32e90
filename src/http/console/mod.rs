//! The web console at `/console`: server-rendered pages (maud, checked at compile time) for
//! accountants and operators, in Spanish. A sign-in exchanges an API key for a server-side
//! session; every page applies the key's scopes and company binding exactly as the API does and
//! calls the same services. The only script is the console's own small file, served from here
//! under a Content-Security-Policy that allows nothing else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

use super::auth::{Auth, Principal};
use super::problem::{ApiError, Problem};
use crate::service::{ConsoleSession, Service, SessionLimits};

mod batches;
mod documents;
mod form;
mod received;
mod settings;
mod sign;
mod summary;

/// The console's settings: session lifetimes, and cookies `Secure` whatever the scheme says.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSettings {
    pub limits: SessionLimits,
    pub secure_cookies: bool,
}

/// Under HTTPS the cookies are `Secure` and carry the `__Host-` prefix (only this host, path `/`,
/// never set by a sibling domain); over plain HTTP (a workstation) they cannot.
pub fn secure(req: &HttpRequest) -> bool {
    console_settings(req).secure_cookies || req.connection_info().scheme() == "https"
}

pub fn session_cookie(req: &HttpRequest) -> &'static str {
    if secure(req) {
        "__Host-dgw_session"
    } else {
        "dgw_session"
    }
}

const CSS: &[u8] = include_bytes!("../../../assets/console/console.css");
const JS: &[u8] = include_bytes!("../../../assets/console/console.js");

/// Scripts, styles and requests to the gateway only; no inline script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/console", web::get().to(summary::home))
        .route("/console/static/{name}", web::get().to(asset))
        .route("/console/entrar", web::get().to(sign::form))
        .route("/console/entrar", web::post().to(sign::sign_in))
        .route("/console/salir", web::post().to(sign::sign_out))
        .route("/console/c/{rut}", web::get().to(summary::summary))
        .route("/console/c/{rut}/documentos", web::get().to(documents::list))
        .route("/console/c/{rut}/documentos/{tipo}/{folio}", web::get().to(documents::show))
        .route("/console/c/{rut}/documentos/{tipo}/{folio}/xml", web::get().to(documents::xml))
        .route("/console/c/{rut}/documentos/{tipo}/{folio}/pdf", web::get().to(documents::pdf))
        .route("/console/c/{rut}/documentos/{tipo}/{folio}/consultar", web::post().to(documents::ask_sii))
        .route("/console/c/{rut}/documentos/{tipo}/{folio}/reenviar", web::post().to(documents::resend))
        .route("/console/lotes", web::get().to(batches::list))
        .route("/console/lotes", web::post().to(batches::upload))
        .route("/console/lotes/muertos/reintentar", web::post().to(batches::replay_all))
        .route("/console/lotes/muertos/{id}/reintentar", web::post().to(batches::replay))
        .route("/console/lotes/{id}", web::get().to(batches::show))
        .route("/console/lotes/{id}/eventos", web::get().to(batches::events))
        .route("/console/lotes/{id}/results.zip", web::get().to(batches::results))
        .route("/console/c/{rut}/recibidos", web::get().to(received::list))
        .route("/console/c/{rut}/recibidos/{emisor}/{tipo}/{folio}/decidir", web::get().to(received::confirm))
        .route("/console/c/{rut}/recibidos/{emisor}/{tipo}/{folio}/decidir", web::post().to(received::decide))
        .route("/console/c/{rut}/configuracion", web::get().to(settings::show))
        .route("/console/c/{rut}/configuracion/claves", web::post().to(settings::create_key))
        .route("/console/c/{rut}/configuracion/claves/{id}/revocar", web::post().to(settings::revoke_key))
        .route("/console/c/{rut}/configuracion/claves/{id}/rotar", web::post().to(settings::rotate_key))
        .route("/console/c/{rut}/configuracion/webhooks", web::post().to(settings::add_webhook))
        .route("/console/c/{rut}/configuracion/webhooks/{id}/borrar", web::post().to(settings::delete_webhook))
        .route("/console/c/{rut}/configuracion/buzon", web::post().to(settings::put_mailbox))
        .route("/console/c/{rut}/configuracion/certificado", web::post().to(settings::put_certificate))
        .route("/console/c/{rut}/configuracion/cafs", web::post().to(settings::add_caf));
}

async fn root() -> HttpResponse {
    see_other("/console")
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, ctype) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type(ctype).insert_header((header::CACHE_CONTROL, "public, max-age=3600")).body(body)
}

pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// A signed-in visitor: the key behind the session, checked again on every request.
pub struct Console {
    pub p: Principal,
    pub session: ConsoleSession,
    /// The cookie's token (to check the session again from a long-lived response).
    pub token: String,
}

impl Console {
    /// A form's CSRF token must be the session's.
    pub fn check(&self, token: &str) -> Result<(), PageError> {
        if same(token, &self.session.csrf) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    /// The hidden field every form carries.
    pub fn csrf(&self) -> Markup {
        html! { input type="hidden" name="_csrf" value=(self.session.csrf); }
    }

    /// The company's pages: another company's are not found for a bound key, and the scope
    /// decides the rest, as in the API.
    pub fn company(&self, rut: &str, scope: &'static str) -> Result<(), PageError> {
        self.p.company(rut, scope).map_err(PageError::Api)
    }

    pub fn id(&self) -> &str {
        self.p.id()
    }
}

/// Equal strings, compared in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

pub fn console_settings(req: &HttpRequest) -> ConsoleSettings {
    req.app_data::<web::Data<ConsoleSettings>>().map(|l| *l.get_ref()).unwrap_or(ConsoleSettings {
        limits: SessionLimits { idle: chrono::Duration::minutes(30), absolute: chrono::Duration::hours(12) },
        secure_cookies: false,
    })
}

pub fn limits(req: &HttpRequest) -> SessionLimits {
    console_settings(req).limits
}

impl FromRequest for Console {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Console, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let svc = req.app_data::<web::Data<Arc<Service>>>().cloned();
        let auth = req.app_data::<web::Data<Arc<Auth>>>().cloned();
        let token = req.cookie(session_cookie(req)).map(|c| c.value().to_string());
        let limits = limits(req);
        // A page's event stream reconnects by itself: that is not the person using the console.
        let touch = !req.path().ends_with("/eventos");
        Box::pin(async move {
            let (Some(svc), Some(auth), Some(token)) = (svc, auth, token) else { return Err(PageError::SignIn) };
            let session = svc
                .console_session(&token, limits, touch)
                .await
                .map_err(|e| PageError::Api(e.into()))?
                .ok_or(PageError::SignIn)?;
            // The key is checked as if it were presented: revoked, expired or rate-limited keys
            // stop here, so a revocation ends its sessions within the revocation poll.
            let p = match auth.authenticate_hash(session.key_hash.clone()).await {
                Ok(p) if p.key.id == session.key_id => p,
                Ok(_) | Err(ApiError::Unauthorized) => {
                    let _ = svc.close_console_session(&token).await;
                    return Err(PageError::SignIn);
                }
                Err(e) => return Err(PageError::Api(e)),
            };
            Ok(Console { p, session, token })
        })
    }
}

/// How a console request fails: back to the sign-in, a refused form, or the API's error as a
/// page with the API's status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("sign in")]
    SignIn,
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<crate::batch::BatchError> for PageError {
    fn from(e: crate::batch::BatchError) -> Self {
        PageError::Api(e.into())
    }
}

impl From<crate::service::ServiceError> for PageError {
    fn from(e: crate::service::ServiceError) -> Self {
        PageError::Api(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn => StatusCode::SEE_OTHER,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, p) = match self {
            PageError::SignIn => return see_other("/console/entrar"),
            PageError::Csrf => (
                "Formulario rechazado",
                Problem {
                    kind: "/problems/csrf".into(),
                    title: "Forbidden".into(),
                    status: 403,
                    detail: "El formulario no trae su código de seguridad (CSRF) o ya no es válido. Vuelva a la página y envíelo otra vez.".into(),
                    errors: vec![],
                },
            ),
            PageError::Api(e) => {
                if e.status_code().is_server_error() {
                    tracing::error!(error = %e, "console request failed");
                }
                (title_of(e.status_code()), e.problem())
            }
        };
        let body = html! {
            h1 { (title) }
            (problem_box(&p))
            p { a href="/console" { "Volver al inicio" } }
        };
        page(self.status_code(), None, None, title, "", body)
    }
}

fn title_of(s: StatusCode) -> &'static str {
    match s.as_u16() {
        404 => "No encontrado",
        403 => "Sin permiso",
        401 => "Inicie sesión",
        409 => "No se pudo hacer",
        422 | 400 => "Datos no válidos",
        429 => "Demasiadas solicitudes",
        503 => "Servicio no disponible",
        _ => "Error",
    }
}

/// A problem+json shown to a person: its message and each field with its own.
pub fn problem_box(p: &Problem) -> Markup {
    html! {
        div class="problem" role="alert" data-type=(p.kind) {
            p { (p.detail) }
            @if !p.errors.is_empty() {
                ul {
                    @for e in &p.errors {
                        li { @if !e.path.is_empty() { code { (e.path) } ": " } (e.message) }
                    }
                }
            }
        }
    }
}

/// A form's error, shown inside that form.
pub struct Notice {
    pub form: &'static str,
    pub problem: Problem,
}

impl Notice {
    pub fn of(form: &'static str, e: &PageError) -> Notice {
        let problem = match e {
            PageError::Api(a) => a.problem(),
            other => Problem {
                kind: "/problems/console".into(),
                title: "Error".into(),
                status: other.status_code().as_u16(),
                detail: other.to_string(),
                errors: vec![],
            },
        };
        Notice { form, problem }
    }

    pub fn bad(form: &'static str, detail: &str) -> Notice {
        Notice::of(form, &PageError::Api(ApiError::BadRequest(detail.to_string())))
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
}

/// The notice of `form`, if the page carries one for it.
pub fn notice_for(n: Option<&Notice>, form: &str) -> Markup {
    html! {
        @if let Some(n) = n.filter(|n| n.form == form) { (problem_box(&n.problem)) }
    }
}

/// The page around every screen: navigation for the company (when there is one), the body,
/// and the sign-out form.
pub fn page(
    status: StatusCode,
    c: Option<&Console>,
    company: Option<&str>,
    title: &str,
    active: &str,
    body: Markup,
) -> HttpResponse {
    let nav: Vec<(&str, String, &str)> = match company {
        Some(rut) => vec![
            ("resumen", format!("/console/c/{rut}"), "Resumen"),
            ("documentos", format!("/console/c/{rut}/documentos"), "Documentos"),
            ("lotes", "/console/lotes".to_string(), "Lotes"),
            ("recibidos", format!("/console/c/{rut}/recibidos"), "Recibidos"),
            ("configuracion", format!("/console/c/{rut}/configuracion"), "Configuración"),
        ],
        None if c.is_some() => vec![("lotes", "/console/lotes".to_string(), "Lotes")],
        None => vec![],
    };
    let markup = html! {
        (DOCTYPE)
        html lang="es" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dte-gateway" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Saltar al contenido" }
                header class="top" {
                    a class="brand" href="/console" { "dte-gateway" }
                    @if let Some(rut) = company { span class="company" { (rut) } }
                    @if !nav.is_empty() {
                        nav aria-label="Secciones" {
                            ul {
                                @for (id, href, label) in &nav {
                                    li {
                                        @if *id == active { a href=(href) aria-current="page" { (label) } }
                                        @else { a href=(href) { (label) } }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(c) = c {
                        form class="signout" method="post" action="/console/salir" {
                            (c.csrf())
                            button type="submit" { "Cerrar sesión" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

pub fn ok_page(c: &Console, company: Option<&str>, title: &str, active: &str, body: Markup) -> HttpResponse {
    page(StatusCode::OK, Some(c), company, title, active, body)
}

/// Whole pesos as the printed document writes them (`$1.559.588`).
pub fn pesos(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}${}", crate::print::names::amount(&n.unsigned_abs().to_string()))
}

/// The SII's name of a document type, as the printed document names it in a reference.
pub fn tipo_name(tipo: i32) -> String {
    crate::print::names::reference_name(&tipo.to_string())
}

/// A document state as the console says it.
pub fn state_name(s: &str) -> &str {
    match s {
        "issued" => "Emitido",
        "sent" => "Enviado al SII",
        "accepted" => "Aceptado",
        "accepted_with_objections" => "Aceptado con reparos",
        "rejected" => "Rechazado",
        "received" => "Recibido",
        "goods_received" => "Mercaderías recibidas",
        "claimed" => "Reclamado",
        "accepted_by_law" => "Aceptado por ley",
        "pending" => "Pendiente",
        "final" => "con respuesta del SII",
        "failed" => "Con error",
        "dead" => "Detenido (carta muerta)",
        "delivered" => "Entregado",
        "delivery_failed" => "Entrega fallida",
        "due" | "queued" => "Por entregar",
        "buyer_received" => "Recibido por el comprador",
        "buyer_accepted" => "Aceptado por el comprador",
        "buyer_rejected" => "Rechazado por el comprador",
        other => other,
    }
}

pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    crate::service::utc_to_local(t).format("%d-%m-%Y %H:%M").to_string()
}
