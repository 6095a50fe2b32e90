//! Printed copies (`…/pdf`) and company logos.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body};
use crate::print::Format;
use crate::service::{LogoInfo, Service};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PdfQuery {
    /// `letter` (default) or `80mm` (thermal roll).
    pub format: Option<String>,
    /// The cedible copy with its acuse de recibo (33, 34, 43, 46 and 52 only).
    pub cedible: Option<bool>,
}

/// Downloads a document's printed copy.
///
/// A PDF rendered from the stored signed XML with the PDF417 timbre: letter or 80 mm (`format`),
/// and for 33, 34, 43, 46 and 52 the cedible copy with its acuse de recibo (`cedible=true`).
#[utoipa::path(get, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/pdf", tag = "documents",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path), PdfQuery),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn pdf(
    p: Principal,
    path: web::Path<(String, i32, i64)>,
    q: web::Query<PdfQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    let format: Format = q.format.as_deref().unwrap_or("letter").parse().map_err(ApiError::BadRequest)?;
    let bytes = svc.document_pdf(&rut, tipo, folio, format, q.cedible.unwrap_or(false)).await?;
    let name = format!("inline; filename=\"{rut}-T{tipo}F{folio}.pdf\"");
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, name))
        .body(bytes))
}

/// Uploads the company's logo.
///
/// A PNG or JPEG (the body itself) of at most 512 KB and 2000 × 2000 pixels, printed on the
/// company's documents.
#[utoipa::path(put, path = "/v1/companies/{rut}/logo", tag = "companies", params(("rut" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = LogoInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_logo(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    Ok(json(StatusCode::OK, &svc.put_logo(&rut, b.to_vec(), p.id()).await?))
}
