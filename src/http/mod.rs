//! The HTTP API (actix-web): one file per resource. Handlers parse, call the service and map errors.

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

pub mod auth;
mod batches;
mod cafs;
mod companies;
pub mod console;
mod delivery;
mod documents;
mod keys;
pub mod openapi;
mod print;
pub mod problem;
mod received;
mod sii;
mod tools;

use auth::Auth;
use problem::ApiError;

use crate::service::Service;

/// The request's id, for work that outlives the request (batch items).
#[derive(Clone)]
pub struct RequestId(pub String);

/// The largest body a route accepts.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

pub async fn read_body(req: &actix_web::HttpRequest, payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let limit = req.app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(2 << 20);
    let declared =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    // A body trickled in a byte at a time would hold a worker's connection for ever.
    let within = body_timeout(req, 1);
    match tokio::time::timeout(within, payload.to_bytes_limited(limit)).await {
        Err(_) => Err(ApiError::BodyTimeout(within.as_secs())),
        Ok(Ok(Ok(b))) => Ok(b),
        Ok(Ok(Err(e))) => Err(ApiError::BadRequest(format!("could not read the body: {e}"))),
        Ok(Err(_)) => Err(ApiError::TooLarge(limit)),
    }
}

/// How long an event stream lives, and how often it re-checks its key.
#[derive(Clone, Copy)]
pub struct StreamLimits {
    pub max_lifetime: std::time::Duration,
    pub recheck: std::time::Duration,
}

/// How long a request body may take to arrive; `times` the configured time (uploads get more).
#[derive(Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

pub fn body_timeout(req: &actix_web::HttpRequest, times: u32) -> std::time::Duration {
    req.app_data::<web::Data<BodyTimeout>>().map(|t| t.0).unwrap_or(std::time::Duration::from_secs(30)) * times
}

/// The request's `Idempotency-Key`, when it has a sane one.
pub fn idempotency_key(req: &actix_web::HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get("idempotency-key").map(|v| v.to_str().map(str::trim).map(String::from)) {
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Ok(Some(k)),
        Some(_) => Err(ApiError::BadRequest("Idempotency-Key must be 1-255 visible characters".into())),
        None => Ok(None),
    }
}

/// Marks a response as the replay of an earlier request with the same `Idempotency-Key`.
pub fn mark_replayed(r: &mut HttpResponse) {
    r.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
        actix_web::http::header::HeaderValue::from_static("true"),
    );
}

pub fn json(status: actix_web::http::StatusCode, v: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(serde_json::to_string(v).unwrap_or_default())
}

/// A response that carries a secret shown once (an API key, a webhook secret): never stored by
/// a browser or an intermediary.
pub fn secret_json(status: actix_web::http::StatusCode, v: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::PRAGMA, "no-cache"))
        .body(serde_json::to_string(v).unwrap_or_default())
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route".into()))
}

async fn live() -> HttpResponse {
    json(actix_web::http::StatusCode::OK, &serde_json::json!({"status": "live"}))
}

/// Database reachable (else 503); cache `degraded` while Redis is down and memory stands in; the
/// batch queue (`degraded` when its Redis does not answer: batches cannot be taken); the state of
/// each SII circuit; the master key still the database's (the cheap checks of `doctor`).
async fn ready(
    svc: web::Data<Arc<Service>>,
    link: Option<web::Data<Arc<crate::worker::SiiLink>>>,
    batches: Option<web::Data<Arc<crate::batch::Batches>>>,
) -> HttpResponse {
    let db = svc.ping().await;
    let key_ok = db.is_ok() && svc.master_key_current().await.unwrap_or(false);
    let queue = match &batches {
        Some(b) => {
            let depth = tokio::time::timeout(std::time::Duration::from_millis(500), b.queue_depth()).await;
            let (ok, depth) = match depth {
                Ok(Ok(d)) => (true, Some(d)),
                _ => (false, None),
            };
            Some(serde_json::json!({"mode": b.queue_mode(), "ok": ok, "depth": depth}))
        }
        None => None,
    };
    if let Some(c) = &svc.cache {
        c.check().await;
    }
    let cache = svc.cache.as_ref().map(|c| serde_json::json!({"mode": c.mode(), "degraded": c.degraded()}));
    let circuits: serde_json::Map<String, serde_json::Value> = link
        .map(|l| {
            l.breakers
                .iter()
                .map(|((env, boleta), b)| {
                    let opened = b.opened.load(std::sync::atomic::Ordering::Relaxed);
                    let name = if *boleta { format!("{}-boleta", env.as_str()) } else { env.as_str().to_string() };
                    (name, serde_json::json!({"host": b.host, "state": b.state(), "opened": opened}))
                })
                .collect()
        })
        .unwrap_or_default();
    let degraded = cache.as_ref().is_some_and(|c| c["degraded"] == true)
        || queue.as_ref().is_some_and(|q| q["ok"] == false)
        || (db.is_ok() && !key_ok);
    let status = match (&db, degraded) {
        (Err(_), _) => "unavailable",
        (Ok(()), true) => "degraded",
        (Ok(()), false) => "ready",
    };
    let body = serde_json::json!({
        "status": status,
        "database": {"backend": svc.backend(), "ok": db.is_ok(), "error": db.err().map(|e| e.to_string())},
        "cache": cache,
        "queue": queue,
        "sii": circuits,
        "master_key": {"ok": key_ok},
    });
    let code = if status == "unavailable" {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        actix_web::http::StatusCode::OK
    };
    json(code, &body)
}

async fn metrics() -> HttpResponse {
    match crate::telemetry::metrics() {
        Some(h) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(h.render()),
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The bearer token `/metrics` needs on the API port.
#[derive(Clone)]
struct MetricsToken(String);

/// `/metrics` on the API port: the series name every tenant's RUT and volumes, so only a scraper
/// holding the token sees them.
async fn metrics_with_token(req: actix_web::HttpRequest, token: web::Data<MetricsToken>) -> HttpResponse {
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok = given.len() == token.0.len() && openssl::memcmp::eq(given.as_bytes(), token.0.as_bytes());
    if !ok {
        return actix_web::ResponseError::error_response(&ApiError::Unauthorized);
    }
    metrics().await
}

/// Headers on every response: no MIME sniffing, no referrer leaking keys in URLs, no framing;
/// HTML pages get a Content-Security-Policy that allows nothing but their own styles.
fn security_headers(res: &mut actix_web::dev::ServiceResponse) {
    use actix_web::http::header::{self, HeaderValue};
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    // A page with its own policy (the API docs) keeps it.
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
    }
}

/// The Prometheus endpoint on a listener of its own (one worker; scrapes are rare).
fn metrics_server(bind: &str) -> std::io::Result<(actix_web::dev::Server, Vec<std::net::SocketAddr>)> {
    let server =
        HttpServer::new(|| App::new().route("/metrics", web::get().to(metrics)).default_service(web::to(not_found)))
            .workers(1)
            .bind(bind)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    let _ = openssl::rand::rand_bytes(&mut b);
    crate::crypto::hex(&b)
}

/// The caller's `X-Request-ID` when it is sane, else a new one.
fn request_id(req: &actix_web::dev::ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(new_request_id)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/openapi.json", web::get().to(openapi::spec))
        .route("/docs", web::get().to(openapi::docs))
        .route("/docs/{name}", web::get().to(openapi::docs_asset))
        .configure(console::routes)
        .service(
            web::scope("/v1")
                .route("/companies", web::post().to(companies::create))
                .route("/companies/{rut}", web::get().to(companies::get))
                .route("/companies/{rut}/environment", web::put().to(companies::put_environment))
                .route("/companies/{rut}/certificate", web::put().to(companies::put_certificate))
                .route("/companies/{rut}/certificate", web::get().to(companies::get_certificate))
                .route("/companies/{rut}/cafs", web::post().to(companies::add_caf))
                .route("/companies/{rut}/cafs", web::get().to(companies::list_cafs))
                .route("/companies/{rut}/cafs/forecast", web::get().to(cafs::forecast))
                .route("/companies/{rut}/cafs/unused", web::get().to(cafs::unused))
                .route("/companies/{rut}/cafs/{id}/retire", web::post().to(cafs::retire))
                .route("/companies/{rut}/documents", web::post().to(documents::issue))
                .route("/companies/{rut}/documents", web::get().to(documents::list))
                .route("/companies/{rut}/documents/{tipo}/{folio}", web::get().to(documents::get))
                .route("/companies/{rut}/documents/{tipo}/{folio}/xml", web::get().to(documents::xml))
                .route("/companies/{rut}/documents/{tipo}/{folio}/pdf", web::get().to(print::pdf))
                .route("/companies/{rut}/logo", web::put().to(print::put_logo))
                .route("/companies/{rut}/documents/{tipo}/{folio}/sii-status", web::post().to(sii::sii_status))
                .route("/companies/{rut}/webhooks", web::post().to(sii::add_webhook))
                .route("/companies/{rut}/webhooks", web::get().to(sii::list_webhooks))
                .route("/companies/{rut}/webhooks/deliveries", web::get().to(sii::deliveries))
                .route("/companies/{rut}/webhooks/{id}", web::delete().to(sii::delete_webhook))
                .route("/companies/{rut}/webhooks/{id}/secret", web::post().to(sii::rotate_webhook_secret))
                .route("/companies/{rut}/mailbox", web::put().to(received::put_mailbox))
                .route("/companies/{rut}/mailbox", web::get().to(received::get_mailbox))
                .route("/companies/{rut}/mailbox/poll", web::post().to(received::poll_mailbox))
                .route("/companies/{rut}/received", web::post().to(received::take_file))
                .route("/companies/{rut}/received", web::get().to(received::list))
                .route("/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}", web::get().to(received::get))
                .route("/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/xml", web::get().to(received::xml))
                .route("/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/pdf", web::get().to(received::pdf))
                .route(
                    "/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/responses",
                    web::get().to(received::responses),
                )
                .route(
                    "/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/decision",
                    web::post().to(received::decide),
                )
                .route("/companies/{rut}/responses/{id}/xml", web::get().to(received::response_xml))
                .route("/directory", web::put().to(delivery::import_directory))
                .route("/companies/{rut}/buyers", web::get().to(delivery::list_buyers))
                .route("/companies/{rut}/buyers/{buyer}", web::put().to(delivery::put_buyer))
                .route("/companies/{rut}/documents/{tipo}/{folio}/exchange", web::get().to(delivery::exchange))
                .route("/companies/{rut}/documents/{tipo}/{folio}/deliver", web::post().to(delivery::deliver))
                .route("/companies/{rut}/documents/{tipo}/{folio}/cedible", web::get().to(delivery::cedible))
                .route("/batches", web::post().to(batches::submit))
                .route("/batches", web::get().to(batches::list))
                .route("/batches/{id}", web::get().to(batches::status))
                .route("/batches/{id}/items", web::get().to(batches::items))
                .route("/batches/{id}/events", web::get().to(batches::events))
                .route("/batches/{id}/results.zip", web::get().to(batches::results))
                .route("/dead-letters", web::get().to(batches::dead_letters))
                .route("/dead-letters/replay", web::post().to(batches::replay_all))
                .route("/dead-letters/{id}/replay", web::post().to(batches::replay))
                .route("/keys", web::post().to(keys::create))
                .route("/keys/{id}", web::delete().to(keys::revoke))
                .route("/keys/{id}/rotate", web::post().to(keys::rotate))
                .route("/tax/quote", web::post().to(tools::quote))
                .route("/verify", web::post().to(tools::verify)),
        )
        .default_service(web::to(not_found));
}

/// Where and how to listen.
pub struct Listen {
    pub bind: String,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    pub body_limit: usize,
    /// The largest batch upload.
    pub batch_limit: u64,
    /// Certificate chain and key (PEM) for HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A request body must be in within this (batch uploads: ten times as long).
    pub body_timeout: std::time::Duration,
    pub streams: StreamLimits,
    /// `/metrics` on its own listener ("" for none).
    pub metrics_bind: String,
    /// `/metrics` on the API port too, for a scraper with this bearer token.
    pub metrics_token: Option<String>,
    /// The web console's session lifetimes and cookies.
    pub console: console::ConsoleSettings,
}

/// Starts the server; returns when it stops. `on_bound` gets the address actually bound.
pub async fn serve(
    svc: Arc<Service>,
    auth: Arc<Auth>,
    link: Option<Arc<crate::worker::SiiLink>>,
    exchange: Option<Arc<crate::worker::exchange::Exchange>>,
    batches: Arc<crate::batch::Batches>,
    listen: Listen,
    on_bound: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>),
) -> std::io::Result<()> {
    let Listen {
        bind,
        workers,
        body_limit,
        batch_limit,
        tls,
        body_timeout,
        streams,
        metrics_bind,
        metrics_token,
        console,
    } = listen;
    let console = web::Data::new(console);
    let streams = web::Data::new(streams);
    let body_timeout = web::Data::new(BodyTimeout(body_timeout));
    let metrics_listener = if metrics_bind.is_empty() { None } else { Some(metrics_server(&metrics_bind)?) };
    let token = metrics_token.map(|t| web::Data::new(MetricsToken(t)));
    let batch_data = web::Data::new(batches);
    let batch_limit = web::Data::new(batches::BatchLimit(batch_limit));
    let bind = bind.as_str();
    let link_data = link.map(web::Data::new);
    let exchange_data = exchange.map(web::Data::new);
    let svc_data = web::Data::new(svc);
    let auth_data = web::Data::new(auth);
    let limit = web::Data::new(BodyLimit(body_limit));
    let mut server = HttpServer::new(move || {
        let mut app = App::new();
        if let Some(l) = &link_data {
            app = app.app_data(l.clone());
        }
        if let Some(x) = &exchange_data {
            app = app.app_data(x.clone());
        }
        if let Some(t) = &token {
            app = app.app_data(t.clone()).route("/metrics", web::get().to(metrics_with_token));
        }
        app.wrap_fn(|req, srv| {
            use actix_web::dev::Service as _;
            use tracing::Instrument as _;
            let id = request_id(&req);
            actix_web::HttpMessage::extensions_mut(&req).insert(RequestId(id.clone()));
            let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
            let method = req.method().to_string();
            let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, trace_id = tracing::field::Empty);
            // A caller's W3C trace context makes this request part of its trace.
            let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(String::from);
            crate::otel::adopt(&span, parent.as_deref());
            let started = std::time::Instant::now();
            let fut = span.in_scope(|| srv.call(req));
            async move {
                let mut res = fut.await?;
                let status = res.status().as_u16();
                let secs = started.elapsed().as_secs_f64();
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&id) {
                    res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), v);
                }
                security_headers(&mut res);
                metrics::counter!(crate::telemetry::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string()).increment(1);
                metrics::histogram!(crate::telemetry::HTTP_SECONDS, "route" => route).record(secs);
                tracing::info!(status, duration_ms = secs * 1e3, "request");
                Ok(res)
            }
            .instrument(span)
        })
        .app_data(svc_data.clone())
            .app_data(auth_data.clone())
            .app_data(limit.clone())
            .app_data(body_timeout.clone())
            .app_data(streams.clone())
            .app_data(batch_data.clone())
            .app_data(batch_limit.clone())
            .app_data(console.clone())
            // Extractor errors (bad paths, bad query strings) answer problem+json too.
            .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .configure(routes)
    });
    server = match tls {
        None => server.bind(bind)?,
        Some((cert, key)) => {
            use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
            let io = |e: openssl::error::ErrorStack| std::io::Error::other(e.to_string());
            let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(io)?;
            b.set_private_key_file(&key, SslFiletype::PEM).map_err(io)?;
            b.set_certificate_chain_file(&cert).map_err(io)?;
            b.check_private_key().map_err(io)?;
            server.bind_openssl(bind, b)?
        }
    };
    if workers > 0 {
        server = server.workers(workers);
    }
    let metrics_addr = metrics_listener.as_ref().and_then(|(_, a)| a.first().copied());
    if let Some(addr) = server.addrs().first() {
        on_bound(*addr, metrics_addr);
    }
    match metrics_listener {
        Some((m, _)) => {
            let api = server.run();
            let handle = m.handle();
            actix_web::rt::spawn(m);
            let r = api.await;
            handle.stop(true).await;
            r
        }
        None => server.run().await,
    }
}
