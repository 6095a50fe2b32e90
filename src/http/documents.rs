//! `/v1/companies/{rut}/documents`: issuance (idempotent) and retrieval.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body};
use crate::domain::DocumentInput;
use crate::service::{DocumentInfo, DocumentPage, DocumentQuery, Issue, Service};

/// Issues a document.
///
/// The document JSON in the SII's names (see the README's input format and `examples/`): taxes
/// computed, the company's next folio of the type taken from its CAF, stamped (TED), signed and
/// schema-checked; answered 201 only once the signed document is stored. With `Idempotency-Key`, a
/// retry returns the first answer and takes no folio.
#[utoipa::path(post, path = "/v1/companies/{rut}/documents", tag = "documents", request_body = DocumentInput,
    params(("rut" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the same response, no new folio")),
    responses((status = 201, body = DocumentInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn issue(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "issue")?;
    let b = read_body(&req, body).await?;
    let idem = super::idempotency_key(&req)?;
    match svc.issue(&rut, Some(p.id()), idem.as_deref(), &b).await? {
        Issue::Created(v) => Ok(json(StatusCode::CREATED, &v)),
        Issue::Replayed(v) => {
            let mut r = json(StatusCode::CREATED, &v);
            super::mark_replayed(&mut r);
            Ok(r)
        }
    }
}

/// Shows an issued document.
///
/// Type, folio, receptor, totals, state (issued, sent, accepted, accepted_with_objections,
/// rejected) and the URL of its signed XML.
#[utoipa::path(get, path = "/v1/companies/{rut}/documents/{tipo}/{folio}", tag = "documents",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = DocumentInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    p: Principal,
    path: web::Path<(String, i32, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.document(&rut, tipo, folio).await?))
}

/// Downloads a document's signed XML.
///
/// The signed DTE exactly as stored and sent to the SII, in ISO-8859-1.
#[utoipa::path(get, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/xml", tag = "documents",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, content_type = "application/xml", body = String), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn xml(
    p: Principal,
    path: web::Path<(String, i32, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    let bytes = svc.document_xml(&rut, tipo, folio).await?;
    Ok(HttpResponse::Ok().content_type("application/xml; charset=ISO-8859-1").body(bytes))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Document type (33, 39, …).
    pub tipo: Option<i32>,
    /// FchEmis from (inclusive).
    pub from: Option<NaiveDate>,
    /// FchEmis to (inclusive).
    pub to: Option<NaiveDate>,
    /// One of the document states; anything else is a `400`.
    pub state: Option<crate::domain::DocState>,
    /// The receptor's RUT (as written in the document, with its check digit).
    pub rut_recep: Option<String>,
    /// One folio.
    pub folio: Option<i64>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// 1-500, default 50.
    pub limit: Option<i64>,
}

/// Lists issued documents.
///
/// Newest first, filtered by type, FchEmis range and state, in keyset pages (`before` = the `next`
/// of the previous page, `limit` 1-500).
#[utoipa::path(get, path = "/v1/companies/{rut}/documents", tag = "documents", params(("rut" = String, Path), ListQuery),
    responses((status = 200, body = DocumentPage), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    p: Principal,
    rut: web::Path<String>,
    q: web::Query<ListQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    let q = q.into_inner();
    let f = DocumentQuery {
        tipo: q.tipo,
        from: q.from,
        to: q.to,
        state: q.state,
        before: q.before,
        limit: q.limit,
        rut_recep: q.rut_recep,
        folio: q.folio,
    };
    Ok(json(StatusCode::OK, &svc.documents(&rut, f).await?))
}
