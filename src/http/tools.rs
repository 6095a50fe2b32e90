//! Stateless tools: tax quotes and verification of any DTE / EnvioDTE / EnvioBOLETA.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body};
use crate::caf::CafTrust;
use crate::domain::tax::Totals;
use crate::domain::DocumentInput;
use crate::service::{parse_rut, Service};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    /// The issuing company, to check `Encabezado.Emisor` against.
    pub company: Option<String>,
}

/// Quotes a document's totals.
///
/// The document JSON priced by the same tax engine as issuance (net, exempt, IVA, additional taxes,
/// retentions, total) without taking a folio.
#[utoipa::path(post, path = "/v1/tax/quote", tag = "tools", request_body = DocumentInput, params(QuoteQuery),
    responses((status = 200, body = Totals), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn quote(
    p: Principal,
    q: web::Query<QuoteQuery>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let company = q.into_inner().company.or_else(|| p.key.company.clone());
    let emisor = company.as_deref().map(parse_rut).transpose()?;
    let b = read_body(&req, body).await?;
    let totals = svc.quote_cached(&b, emisor).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(totals))
}

/// Verifies a DTE file.
///
/// A verification report of a DTE, EnvioDTE or EnvioBOLETA (XML body): schema, every signature
/// (each DTE as a document of its own, the SII's rule), every TED and its CAF, one line per check.
/// DTDs and external entities are refused.
#[utoipa::path(post, path = "/v1/verify", tag = "tools", request_body(content = String, content_type = "application/xml"),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn verify(
    _p: Principal,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let b = read_body(&req, body).await?;
    // libxml2 work is CPU-bound; keep it off the async workers.
    let trust: CafTrust = svc.trust().clone();
    let report = web::block(move || crate::verify::verify(&b, &trust).map_err(|e| e.to_string()))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("unreadable XML: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"kind": report.kind, "passed": report.passed(), "checks": report.checks}),
    ))
}
