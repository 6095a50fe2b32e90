//! The CAF lifecycle: forecast, folios to annul, retirement.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::Principal;
use super::json;
use super::problem::{ApiError, Problem};
use crate::service::{CafForecast, CafInfo, Service, UnusedRange};

/// Forecasts when folios run out.
///
/// Per document type: folios left in usable CAFs, documents issued over the last 7 days, and the
/// day the folios run out at that pace (none when nothing was issued).
#[utoipa::path(get, path = "/v1/companies/{rut}/cafs/forecast", tag = "companies", params(("rut" = String, Path)),
    responses((status = 200, body = Vec<CafForecast>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn forecast(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.caf_forecast(&rut).await?))
}

/// Lists the folios to annul.
///
/// The folios of expired or retired CAFs that were never used, as the SII's annulment asks for
/// them: company, type, first and last folio of each range.
#[utoipa::path(get, path = "/v1/companies/{rut}/cafs/unused", tag = "companies", params(("rut" = String, Path)),
    responses((status = 200, body = Vec<UnusedRange>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn unused(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.unused_folios(&rut).await?))
}

/// Retires a CAF.
///
/// For a range lost or replaced: no folio is taken from it any more, and its remaining folios join
/// the ones to annul. Audited.
#[utoipa::path(post, path = "/v1/companies/{rut}/cafs/{id}/retire", tag = "companies", params(("rut" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = CafInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn retire(
    p: Principal,
    path: web::Path<(String, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, id) = path.into_inner();
    p.company(&rut, "admin")?;
    Ok(json(StatusCode::OK, &svc.retire_caf(&rut, id, p.id()).await?))
}
