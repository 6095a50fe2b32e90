//! The receiving side: the exchange mailbox, suppliers' files taken in, the inbox, its answers and
//! the RCV decision.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{idempotency_key, json, mark_replayed, read_body};
use crate::service::{
    DecisionBody, IntakeReport, MailboxBody, MailboxInfo, ReceivedInfo, ReceivedPage, ReceivedQuery, ResponseInfo,
    Service, ServiceError,
};
use crate::worker::exchange::Exchange;

/// Sets the exchange mailbox.
///
/// Where suppliers send their DTEs (IMAP, polled by the workers) and the SMTP server answers and
/// deliveries leave by. Passwords are sealed like certificates and never shown again.
#[utoipa::path(put, path = "/v1/companies/{rut}/mailbox", tag = "received", params(("rut" = String, Path)),
    request_body = MailboxBody,
    responses((status = 200, body = MailboxInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_mailbox(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    let m: MailboxBody = serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("mailbox: {e}")))?;
    Ok(json(StatusCode::OK, &svc.put_mailbox(&rut, m).await?))
}

/// Shows the exchange mailbox.
///
/// Its settings (never the passwords) and its last poll: when, and the last error.
#[utoipa::path(get, path = "/v1/companies/{rut}/mailbox", tag = "received", params(("rut" = String, Path)),
    responses((status = 200, body = MailboxInfo), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_mailbox(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.mailbox(&rut).await?))
}

/// Polls the mailbox now.
///
/// The next poll is due at once instead of at its interval (a supplier's mail is expected).
#[utoipa::path(post, path = "/v1/companies/{rut}/mailbox/poll", tag = "received", params(("rut" = String, Path)),
    responses((status = 202, description = "a poll is due"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn poll_mailbox(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "issue")?;
    svc.poll_mailbox_now(&rut).await?;
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// The file's name, as the answer's `NmbEnvio` repeats it.
    pub filename: Option<String>,
}

/// Takes in a supplier's file.
///
/// An EnvioDTE (or a bare DTE) for ERPs that fetch their mail themselves: verified as the SII
/// verifies it, taken once, and answered with a RecepcionEnvio; each envelope's and DTE's reception
/// code is in the answer.
#[utoipa::path(post, path = "/v1/companies/{rut}/received", tag = "received", params(("rut" = String, Path), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/xml"),
    responses((status = 201, body = IntakeReport), (status = 200, body = IntakeReport, description = "the same file was taken before"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn take_file(
    p: Principal,
    rut: web::Path<String>,
    q: web::Query<FileQuery>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "issue")?;
    let b = read_body(&req, body).await?;
    let name = q.filename.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "EnvioDTE.xml".into());
    let r = svc.take_file(&rut, &name, b.to_vec()).await?;
    Ok(json(if r.taken { StatusCode::CREATED } else { StatusCode::OK }, &r))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// received, accepted, goods_received, claimed, rejected or accepted_by_law.
    pub state: Option<String>,
    /// The issuer's RUT.
    pub emisor: Option<String>,
    /// Documents whose 8-day window closes on or before this day (YYYY-MM-DD).
    pub deadline_before: Option<chrono::NaiveDate>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// Lists the received documents.
///
/// The inbox: each document with its verification, SII reception, RCV events and days left to
/// decide; filtered by state, issuer and deadline.
#[utoipa::path(get, path = "/v1/companies/{rut}/received", tag = "received", params(("rut" = String, Path), InboxQuery),
    responses((status = 200, body = ReceivedPage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    p: Principal,
    rut: web::Path<String>,
    q: web::Query<InboxQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    let q = q.into_inner();
    let query = ReceivedQuery {
        state: q.state.filter(|v| !v.is_empty()),
        emisor: q.emisor.filter(|v| !v.is_empty()),
        deadline_before: q.deadline_before,
        before: q.before,
        limit: q.limit,
    };
    Ok(json(StatusCode::OK, &svc.list_received(&rut, query).await?))
}

type DocPath = web::Path<(String, String, i32, i64)>;

/// Shows a received document.
///
/// Its verification, reception code, SII reception date, deadline, decision and RCV events.
#[utoipa::path(get, path = "/v1/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}", tag = "received",
    params(("rut" = String, Path), ("rut_emisor" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = ReceivedInfo), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(p: Principal, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.get_received(&rut, &emisor, tipo, folio).await?))
}

/// Downloads a received document's XML.
///
/// The supplier's signed DTE as received, stand-alone, in ISO-8859-1.
#[utoipa::path(get, path = "/v1/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/xml", tag = "received",
    params(("rut" = String, Path), ("rut_emisor" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, content_type = "application/xml", body = Vec<u8>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn xml(p: Principal, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    let b = svc.received_xml(&rut, &emisor, tipo, folio).await?;
    Ok(HttpResponse::Ok().content_type("application/xml; charset=ISO-8859-1").body(b))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PdfQuery {
    /// `letter` (default) or `80mm`.
    pub format: Option<String>,
}

/// Downloads a received document's printed copy.
///
/// A PDF of the supplier's signed DTE with its PDF417 timbre, letter or 80 mm.
#[utoipa::path(get, path = "/v1/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/pdf", tag = "received",
    params(("rut" = String, Path), ("rut_emisor" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path), PdfQuery),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn pdf(
    p: Principal,
    path: DocPath,
    q: web::Query<PdfQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    let format: crate::print::Format = q.format.as_deref().unwrap_or("letter").parse().map_err(ApiError::BadRequest)?;
    let b = svc.received_pdf(&rut, &emisor, tipo, folio, format).await?;
    Ok(HttpResponse::Ok().content_type("application/pdf").body(b))
}

/// Lists the answers about a received document.
///
/// Its envelope's RecepcionEnvio and the ResultadoDTE or EnvioRecibos of its decision, each with
/// its mailing state.
#[utoipa::path(get, path = "/v1/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/responses", tag = "received",
    params(("rut" = String, Path), ("rut_emisor" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = Vec<ResponseInfo>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn responses(p: Principal, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.received_responses(&rut, &emisor, tipo, folio).await?))
}

/// Downloads an answer's signed XML.
///
/// A RecepcionEnvio, ResultadoDTE or EnvioRecibos as signed and sent (or kept) for the supplier.
#[utoipa::path(get, path = "/v1/companies/{rut}/responses/{id}/xml", tag = "received",
    params(("rut" = String, Path), ("id" = i64, Path)),
    responses((status = 200, content_type = "application/xml", body = Vec<u8>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn response_xml(
    p: Principal,
    path: web::Path<(String, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, id) = path.into_inner();
    p.company(&rut, "read")?;
    let (kind, b) = svc.response_xml(&rut, id).await?;
    let name = format!("attachment; filename=\"{kind}-{id}.xml\"");
    Ok(HttpResponse::Ok()
        .content_type("application/xml; charset=ISO-8859-1")
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, name))
        .body(b))
}

/// Decides on a received document.
///
/// Accept (ACD), give the receipt of goods (ERM) or claim (RCD, RFP, RFT, with a reason):
/// registered in the SII's RCV for 33, 34 and 43 within the 8 days, and answered to the supplier
/// (ResultadoDTE, or EnvioRecibos for ERM). The same decision twice is one decision; an
/// `Idempotency-Key` replays the first answer; past the 8 days the answer is 409.
#[utoipa::path(post, path = "/v1/companies/{rut}/received/{rut_emisor}/{tipo}/{folio}/decision", tag = "received",
    params(("rut" = String, Path), ("rut_emisor" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = ReceivedInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "refused by the RCV's rules, or past the 8 days"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "the SII did not answer")),
    security(("api_key" = [])))]
pub async fn decide(
    p: Principal,
    path: DocPath,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
    exchange: Option<web::Data<Arc<Exchange>>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, emisor, tipo, folio) = path.into_inner();
    p.company(&rut, "issue")?;
    let idem = idempotency_key(&req)?;
    let b = read_body(&req, body).await?;
    let d: DecisionBody = serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("decision: {e}")))?;
    let scope = format!("decision:{rut}:{emisor}:{tipo}:{folio}");
    if let Some(k) = &idem {
        if let Some(prior) = svc.idempotent_answer(p.id(), &scope, k, &b).await? {
            let mut r = HttpResponse::Ok().content_type("application/json").body(prior);
            mark_replayed(&mut r);
            return Ok(r);
        }
    }
    let x = exchange.ok_or_else(|| ApiError::Unavailable("the receiving side is off in this instance".into()))?;
    let info = x.decide(&rut, &emisor, tipo, folio, d, p.id()).await?;
    let text = serde_json::to_string(&info).map_err(|e| ServiceError::Internal(e.to_string()))?;
    if let Some(k) = &idem {
        svc.remember_answer(p.id(), &scope, k, &b, &text).await?;
    }
    Ok(HttpResponse::Ok().content_type("application/json").body(text))
}
