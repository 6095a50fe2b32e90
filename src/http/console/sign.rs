//! Sign-in (an API key for a session) and sign-out. Before there is a session, the sign-in form
//! is protected by a double-submit token: a cookie and the same value in the form.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use maud::html;
use serde::Deserialize;

use super::{limits, page, secure, see_other, session_cookie, Console, Notice, PageError};
use crate::http::auth::Auth;
use crate::service::Service;

fn pre_cookie(req: &HttpRequest) -> &'static str {
    if secure(req) {
        "__Host-dgw_signin"
    } else {
        "dgw_signin"
    }
}

fn cookie<'a>(req: &HttpRequest, name: &'a str, value: String, max_age: i64) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        // Behind HTTPS (the gateway's own TLS, a proxy that says so, or the setting) the cookie
        // never travels in clear.
        .secure(secure(req))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

fn form_page(req: &HttpRequest, status: StatusCode, notice: Option<Notice>) -> Result<HttpResponse, PageError> {
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw)
        .map_err(|e| PageError::from(crate::service::ServiceError::Internal(e.to_string())))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let body = html! {
        section class="signin" {
            h1 { "Entrar a la consola" }
            p { "Use una clave de la API (" code { "dgw_…" } "). La clave no se guarda en el navegador: se cambia por una sesión que vence sola." }
            form method="post" action="/console/entrar" {
                input type="hidden" name="_csrf" value=(token);
                label for="key" { "Clave de la API" }
                input id="key" name="key" type="password" autocomplete="off" required autofocus;
                (super::notice_for(notice.as_ref(), "signin"))
                button type="submit" { "Entrar" }
            }
        }
    };
    let mut r = page(status, None, None, "Entrar", "", body);
    let _ = r.add_cookie(&cookie(req, pre_cookie(req), token, 600));
    Ok(r)
}

pub async fn form(req: HttpRequest, c: Option<Console>) -> Result<HttpResponse, PageError> {
    if c.is_some() {
        return Ok(see_other("/console"));
    }
    form_page(&req, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    key: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

pub async fn sign_in(
    req: HttpRequest,
    f: web::Form<SignIn>,
    svc: web::Data<Arc<Service>>,
    auth: web::Data<Arc<Auth>>,
) -> Result<HttpResponse, PageError> {
    let expected = req.cookie(pre_cookie(&req)).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !super::same(&expected, &f.csrf) {
        return Err(PageError::Csrf);
    }
    let key = f.key.trim();
    let ip = req.peer_addr().map(|a| a.ip());
    let p = match auth.authenticate_from(Some(key).filter(|k| !k.is_empty()), ip).await {
        Ok(p) => p,
        Err(e) => {
            let n = match e {
                crate::http::problem::ApiError::Unauthorized => {
                    Notice::bad("signin", "La clave no es válida, venció o fue revocada.")
                }
                other => Notice::of("signin", &PageError::Api(other)),
            };
            return form_page(&req, StatusCode::UNAUTHORIZED, Some(n));
        }
    };
    let limits = limits(&req);
    let (token, s) = svc.open_console_session(&p.key, &p.hash, limits).await?;
    tracing::info!(key = %p.key.id, company = p.key.company.as_deref().unwrap_or("*"), "console sign-in");
    let mut r = see_other("/console");
    let _ = r.add_cookie(&cookie(&req, session_cookie(&req), token, (s.expires_at - s.created_at).num_seconds()));
    let _ = r.add_cookie(&cookie(&req, pre_cookie(&req), String::new(), 0));
    Ok(r)
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default, rename = "_csrf")]
    pub csrf: String,
}

pub async fn sign_out(
    req: HttpRequest,
    c: Console,
    f: web::Form<Csrf>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, PageError> {
    c.check(&f.csrf)?;
    svc.close_console_session(&c.token).await?;
    let mut r = see_other("/console/entrar");
    let _ = r.add_cookie(&cookie(&req, session_cookie(&req), String::new(), 0));
    Ok(r)
}
