//! Sign-in (an API key for a session) and sign-out. Before there is a session, the sign-in form
//! is protected by a double-submit token: a cookie and the same value in the form.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use maud::html;
use serde::Deserialize;

use super::{limits, page, see_other, Console, Notice, PageError, SESSION_COOKIE};
use crate::http::auth::Auth;
use crate::service::Service;

const PRE_COOKIE: &str = "dgw_signin";

fn cookie<'a>(req: &HttpRequest, name: &'a str, value: String, max_age: i64) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        // Behind HTTPS (the gateway's own TLS or a proxy that says so) the cookie never travels
        // in clear.
        .secure(req.connection_info().scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

fn form_page(req: &HttpRequest, status: StatusCode, notice: Option<Notice>) -> HttpResponse {
    let mut raw = [0u8; 24];
    let _ = openssl::rand::rand_bytes(&mut raw);
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
    let _ = r.add_cookie(&cookie(req, PRE_COOKIE, token, 600));
    r
}

pub async fn form(req: HttpRequest, c: Option<Console>) -> HttpResponse {
    if c.is_some() {
        return see_other("/console");
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
    let expected = req.cookie(PRE_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
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
            return Ok(form_page(&req, StatusCode::UNAUTHORIZED, Some(n)));
        }
    };
    let limits = limits(&req);
    let (token, s) = svc.open_console_session(&p.key, &p.hash, limits).await?;
    tracing::info!(key = %p.key.id, company = p.key.company.as_deref().unwrap_or("*"), "console sign-in");
    let mut r = see_other("/console");
    let _ = r.add_cookie(&cookie(&req, SESSION_COOKIE, token, (s.expires_at - s.created_at).num_seconds()));
    let _ = r.add_cookie(&cookie(&req, PRE_COOKIE, String::new(), 0));
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
    if let Some(t) = req.cookie(SESSION_COOKIE) {
        svc.close_console_session(t.value()).await?;
    }
    let mut r = see_other("/console/entrar");
    let _ = r.add_cookie(&cookie(&req, SESSION_COOKIE, String::new(), 0));
    Ok(r)
}
