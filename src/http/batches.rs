//! `/v1/batches`: uploads of many documents, their progress (JSON and Server-Sent Events) and
//! results; `/v1/dead-letters`: items that failed past the retry limit, and their replay.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::json;
use super::problem::{ApiError, Problem};
use crate::batch::csv::Encoding;
use crate::batch::intake::Format;
use crate::batch::BatchItem;
use crate::batch::{BatchStatus, BatchSummary, Batches, Caller, DeadLetterView};

/// The largest batch upload.
#[derive(Clone, Copy)]
pub struct BatchLimit(pub u64);

/// One item of a JSON batch (or of a JSON file in a ZIP batch).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BatchItemInput {
    /// The issuer's RUT.
    company: String,
    /// The client's own reference, returned in the status and the report.
    reference: Option<String>,
    /// The document, as for `POST /v1/companies/{rut}/documents`.
    #[schema(value_type = Object)]
    document: serde_json::Value,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Refuse the whole batch (422, nothing queued) if any item is invalid.
    pub all_or_nothing: Option<bool>,
    /// CSV only: `utf-8` (default) or `iso-8859-1`; the Content-Type's charset also counts.
    pub encoding: Option<String>,
}

pub(super) fn caller(p: &Principal) -> Caller {
    Caller { key_id: Some(p.id().to_string()), company: p.key.company.clone(), request_id: None, idempotency: None }
}

fn format_of(req: &HttpRequest, q: &SubmitQuery) -> Result<Format, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim().to_string();
    let charset = ct.split(';').skip(1).filter_map(|p| p.trim().strip_prefix("charset=")).next().map(String::from);
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        "application/zip" | "application/x-zip-compressed" => Ok(Format::Zip),
        "text/csv" => {
            let enc = q.encoding.clone().or(charset).unwrap_or_else(|| "utf-8".into()).to_ascii_lowercase();
            match enc.trim_matches('"') {
                "utf-8" | "utf8" => Ok(Format::Csv(Encoding::Utf8)),
                "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" => Ok(Format::Csv(Encoding::Latin1)),
                other => Err(ApiError::BadRequest(format!("encoding {other:?}: use utf-8 or iso-8859-1"))),
            }
        }
        _ => Err(ApiError::UnsupportedMedia(format!(
            "Content-Type {mime:?}: send application/json, text/csv or application/zip"
        ))),
    }
}

/// Copies the body to an unlinked temporary file, refusing it past `limit` bytes; returns it and
/// its SHA-256.
async fn spool(req: &HttpRequest, mut body: web::Payload, limit: u64) -> Result<(std::fs::File, String), ApiError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit as usize));
    }
    let io = |e: std::io::Error| ApiError::Service(crate::service::ServiceError::Internal(e.to_string()));
    let mut file = tempfile::tempfile().map_err(io)?;
    let mut sha = openssl::sha::Sha256::new();
    let mut size = 0u64;
    let within = super::body_timeout(req, 10);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return Err(ApiError::BodyTimeout(within.as_secs())),
            Ok(None) => break,
            Ok(Some(c)) => c,
        };
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::TooLarge(limit as usize));
        }
        file.write_all(&chunk).map_err(io)?;
        sha.update(&chunk);
    }
    Ok((file, crate::crypto::hex(&sha.finish())))
}

/// Submits a batch of documents.
///
/// A JSON array of `{company, reference, document}`, the batch CSV (one row per Detalle line,
/// grouped by `Documento`; see the README) or a ZIP of such JSON files. Answers 202 with `Location`
/// once every item is stored and the valid ones are queued; a file that cannot be read is refused
/// whole with the line or file of each error, and nothing is queued. `?all_or_nothing=true` refuses
/// the whole batch when any item is invalid; `Idempotency-Key` replays the first answer.
#[utoipa::path(post, path = "/v1/batches", tag = "batches", params(SubmitQuery, ("Idempotency-Key" = Option<String>, Header, description = "Same key and upload: the first batch back, nothing new queued")),
    request_body(description = "A JSON array of items, the batch CSV, or a ZIP of JSON files",
        content((Vec<BatchItemInput> = "application/json"), (String = "text/csv"), (Vec<u8> = "application/zip"))),
    responses((status = 202, body = BatchStatus), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn submit(
    p: Principal,
    req: HttpRequest,
    q: web::Query<SubmitQuery>,
    body: web::Payload,
    batches: web::Data<Arc<Batches>>,
    limit: web::Data<BatchLimit>,
) -> Result<HttpResponse, ApiError> {
    if !p.has("issue") {
        return Err(ApiError::Forbidden("issue"));
    }
    let format = format_of(&req, &q)?;
    let idem = super::idempotency_key(&req)?;
    let (file, hash) = spool(&req, body, limit.0).await?;
    let mut who = caller(&p);
    who.request_id = actix_web::HttpMessage::extensions(&req).get::<super::RequestId>().map(|r| r.0.clone());
    // The options are part of what the key stands for.
    who.idempotency = idem.map(|k| (k, format!("{hash}/{}/{:?}", format.name(), q.all_or_nothing)));
    let (status, replayed) = batches.submit(file, format, q.all_or_nothing.unwrap_or(false), &who).await?;
    let mut r = json(StatusCode::ACCEPTED, &status);
    if let Ok(v) = header::HeaderValue::from_str(&format!("/v1/batches/{}", status.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        super::mark_replayed(&mut r);
    }
    Ok(r)
}

pub(super) fn reader(p: &Principal) -> Result<Caller, ApiError> {
    if !p.has("read") && !p.has("issue") {
        return Err(ApiError::Forbidden("read"));
    }
    Ok(caller(p))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-500, default 50.
    pub limit: Option<i64>,
}

/// Lists the newest batches.
///
/// Every batch for a gateway admin key, else those this key submitted, newest first, with their
/// counts.
#[utoipa::path(get, path = "/v1/batches", tag = "batches", params(ListQuery),
    responses((status = 200, body = Vec<BatchSummary>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    p: Principal,
    q: web::Query<ListQuery>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, ApiError> {
    let who = reader(&p)?;
    let all = p.global_admin().is_ok();
    Ok(json(StatusCode::OK, &batches.list(&who, all, q.limit.unwrap_or(50)).await?))
}

/// Shows a batch's progress.
///
/// Counts of items by state (pending, issued, failed, dead) and whether the batch is complete; the
/// same status the event stream sends.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches", params(("id" = String, Path)),
    responses((status = 200, body = BatchStatus), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn status(
    p: Principal,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(StatusCode::OK, &batches.status(&id, &reader(&p)?).await?))
}

/// One Server-Sent Event of `GET /v1/batches/{id}/events`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BatchEvent {
    /// `progress`, `complete` or `error`.
    event: String,
    /// The batch status (as `GET /v1/batches/{id}`), JSON.
    data: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Items after this index (the last index of the previous page).
    pub after: Option<i64>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
    /// Only failed and dead items.
    pub problems: Option<bool>,
}

/// Lists a batch's items.
///
/// Each item with its reference, company, type, folio once issued, state and error, in pages
/// (`after`, `limit`); `state=` filters.
#[utoipa::path(get, path = "/v1/batches/{id}/items", tag = "batches", params(("id" = String, Path), ItemsQuery),
    responses((status = 200, body = Vec<BatchItem>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn items(
    p: Principal,
    id: web::Path<String>,
    q: web::Query<ItemsQuery>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, ApiError> {
    let rows = batches
        .items(&id, &reader(&p)?, q.after.unwrap_or(-1), q.limit.unwrap_or(100), q.problems.unwrap_or(false))
        .await?;
    Ok(json(StatusCode::OK, &rows))
}

/// Streams a batch's progress.
///
/// Server-Sent Events: a `progress` event (the batch status) whenever it changes, `complete` at the
/// end, and a comment every 15 s to keep proxies from closing the stream. Events carry `id:`; the
/// stream ends with `event: reconnect` after its lifetime and the client reconnects with `Last-
/// Event-ID`.
#[utoipa::path(get, path = "/v1/batches/{id}/events", tag = "batches", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = BatchEvent), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn events(
    p: Principal,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
    auth: web::Data<Arc<super::auth::Auth>>,
    limits: web::Data<super::StreamLimits>,
) -> Result<HttpResponse, ApiError> {
    let who = reader(&p)?;
    batches.get(&id, &who).await?;
    Ok(event_stream(batches.get_ref().clone(), auth.get_ref().clone(), p, id.into_inner(), &limits, None))
}

/// A console session a stream lives within: it ends with the session (sign-out, expiry).
pub(super) struct StreamSession {
    pub svc: Arc<crate::service::Service>,
    pub token: String,
    pub limits: crate::service::SessionLimits,
}

/// The Server-Sent Events of a batch the caller may read (the API's and the console's).
pub(super) fn event_stream(
    batches: Arc<Batches>,
    auth: Arc<super::auth::Auth>,
    principal: Principal,
    id: String,
    limits: &super::StreamLimits,
    session: Option<StreamSession>,
) -> HttpResponse {
    let now = tokio::time::Instant::now();
    let s = Stream {
        batches,
        auth,
        principal,
        session,
        id,
        last: String::new(),
        idle: 0,
        done: false,
        ends: now + limits.max_lifetime,
        recheck: limits.recheck,
        checked: now,
    };
    let stream = futures_util::stream::unfold(s, |mut s| async move {
        if s.done {
            return None;
        }
        let ev = s.next_event().await;
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(ev)), s))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// One client's event stream. Its key was checked when it opened; it is checked again every
/// `recheck` (a revoked key's stream ends), and the stream ends after its lifetime whatever
/// happens (the client reconnects with `Last-Event-ID`; progress events carry the state itself,
/// so the first event after a reconnect is all a client needs).
struct Stream {
    batches: Arc<Batches>,
    auth: Arc<super::auth::Auth>,
    principal: Principal,
    session: Option<StreamSession>,
    id: String,
    last: String,
    idle: u32,
    done: bool,
    ends: tokio::time::Instant,
    recheck: Duration,
    checked: tokio::time::Instant,
}

impl Stream {
    async fn next_event(&mut self) -> String {
        loop {
            let now = tokio::time::Instant::now();
            if now >= self.ends {
                self.done = true;
                return "event: reconnect\ndata: {\"detail\": \"the stream reached its maximum lifetime\"}\n\n".into();
            }
            if now.duration_since(self.checked) >= self.recheck {
                self.checked = now;
                if !self.auth.still_valid(&self.principal).await {
                    self.done = true;
                    return "event: error\ndata: {\"detail\": \"the API key is no longer valid\"}\n\n".into();
                }
                if let Some(s) = &self.session {
                    // Read without moving its last use: a stream is not a person at the console.
                    if matches!(s.svc.console_session(&s.token, s.limits, false).await, Ok(None)) {
                        self.done = true;
                        return "event: error\ndata: {\"detail\": \"the session ended\"}\n\n".into();
                    }
                }
            }
            let status = match self.batches.poll(&self.id).await {
                Ok(s) => s,
                Err(e) => {
                    self.done = true;
                    return format!("event: error\ndata: {}\n\n", serde_json::json!({"detail": e.to_string()}));
                }
            };
            let text = serde_json::to_string(&status).unwrap_or_default();
            let seq: i64 = status.items.iter().filter(|(k, _)| k.as_str() != "pending").map(|(_, n)| n).sum();
            if status.complete {
                self.done = true;
                return format!("id: {seq}\nevent: complete\ndata: {text}\n\n");
            }
            if text != self.last {
                self.idle = 0;
                let ev = format!("id: {seq}\nevent: progress\ndata: {text}\n\n");
                self.last = text;
                return ev;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.idle += 1;
            if self.idle >= 30 {
                self.idle = 0;
                return ": keep-alive\n\n".into();
            }
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// Also each document's printed copy (letter), `{RUTEmisor}/T{TipoDTE}F{Folio}.pdf`.
    pub pdf: Option<bool>,
}

/// Downloads a batch's results.
///
/// Every signed XML (`{RUTEmisor}/T{TipoDTE}F{Folio}.xml`), with `?pdf=true` its PDF beside it, and
/// `report.csv` (reference, type, folio, totals, state, SII state, error of every item), streamed
/// as a ZIP.
#[utoipa::path(get, path = "/v1/batches/{id}/results.zip", tag = "batches", params(("id" = String, Path), ResultsQuery),
    responses((status = 200, content_type = "application/zip", body = Vec<u8>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn results(
    p: Principal,
    id: web::Path<String>,
    q: web::Query<ResultsQuery>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, ApiError> {
    let file = batches.results(&id, &reader(&p)?, q.pdf.unwrap_or(false)).await?;
    Ok(zip_download(file, &id))
}

/// A batch's results file, streamed as a download.
pub(super) fn zip_download(file: std::fs::File, id: &str) -> HttpResponse {
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut f = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, f))
        })
        .await;
        match read {
            Ok(Ok((buf, _))) if buf.is_empty() => None,
            Ok(Ok((buf, f))) => Some((Ok::<_, actix_web::Error>(web::Bytes::from(buf)), Some(f))),
            Ok(Err(e)) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    });
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}-results.zip\"")))
        .streaming(stream)
}

/// Lists the dead letters.
///
/// Batch items that failed past the retry limit (gateway admin), with their batch, reference and
/// last error.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "batches",
    responses((status = 200, body = Vec<DeadLetterView>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn dead_letters(p: Principal, batches: web::Data<Arc<Batches>>) -> Result<HttpResponse, ApiError> {
    p.global_admin()?;
    Ok(json(StatusCode::OK, &batches.dead_letters().await?))
}

/// Replays one dead letter.
///
/// Puts the item back on the queue, once its cause is mended (a new CAF, a certificate); it is
/// issued like any other item.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/replay", tag = "batches", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn replay(
    p: Principal,
    id: web::Path<String>,
    batches: web::Data<Arc<Batches>>,
) -> Result<HttpResponse, ApiError> {
    p.global_admin()?;
    let n = batches.replay(Some(&id)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "replayed": n })))
}

/// Replays every dead letter.
///
/// Puts every dead letter back on the queue at once (gateway admin); answers how many.
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "batches",
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn replay_all(p: Principal, batches: web::Data<Arc<Batches>>) -> Result<HttpResponse, ApiError> {
    p.global_admin()?;
    let n = batches.replay(None).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "replayed": n })))
}
