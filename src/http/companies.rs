//! `/v1/companies`: companies, their signing certificate and their CAFs.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body};
use crate::service::{CafInfo, CertificateInfo, CompanyBody, Service};

#[derive(Serialize, ToSchema)]
pub struct CompanyView {
    #[serde(flatten)]
    pub company: CompanyBody,
    pub created_at: DateTime<Utc>,
    /// The logo printed on the company's documents (`PUT …/logo`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<crate::service::LogoInfo>,
}

fn view(rec: crate::service::CompanyInfo) -> CompanyView {
    CompanyView {
        company: CompanyBody { company: rec.company, environment: rec.environment },
        created_at: rec.created_at,
        logo: None,
    }
}

fn parse<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(b);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::from(crate::DteError::Malformed(inner.to_string()))
        } else {
            ApiError::from(crate::DteError::single(path, "wrong-type", inner.to_string()))
        }
    })
}

/// Registers a company.
///
/// The Emisor's fields in the SII's names (RUTEmisor, RznSoc, GiroEmis, Acteco, addresses,
/// FchResol, NroResol, OficinaSII) and its `environment` (certificacion or produccion). Gateway
/// admin only; 409 when the RUT exists.
#[utoipa::path(post, path = "/v1/companies", request_body = CompanyBody, tag = "companies",
    responses((status = 201, body = CompanyView), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create(
    p: Principal,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.global_admin()?;
    let b = read_body(&req, body).await?;
    let input: CompanyBody = parse(&b)?;
    let rec = svc.create_company(input).await?;
    Ok(json(StatusCode::CREATED, &view(rec)))
}

/// Shows a company.
///
/// Its Emisor fields, environment and registration time. A key bound to another company gets 404.
#[utoipa::path(get, path = "/v1/companies/{rut}", tag = "companies", params(("rut" = String, Path)),
    responses((status = 200, body = CompanyView), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(p: Principal, rut: web::Path<String>, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    let mut v = view(svc.company(&rut).await?);
    v.logo = svc.logo_info(&rut).await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// The PKCS#12 (.p12 / .pfx) file, base64.
    pub pkcs12: String,
    pub password: String,
}

/// Uploads the signing certificate.
///
/// `{"pkcs12": base64, "password": …}`: the holder's RUT and validity are checked, the PKCS#12 is
/// stored encrypted (AES-256-GCM) and only its metadata is ever returned.
#[utoipa::path(put, path = "/v1/companies/{rut}/certificate", tag = "companies", params(("rut" = String, Path)), request_body = CertificateUpload,
    responses((status = 200, body = CertificateInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_certificate(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    let up: CertificateUpload = parse(&b)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(up.pkcs12.trim())
        .map_err(|_| ApiError::from(crate::DteError::single("pkcs12", "wrong-type", "pkcs12 must be base64")))?;
    Ok(json(StatusCode::OK, &svc.put_certificate(&rut, &der, &up.password).await?))
}

/// Shows the certificate's metadata.
///
/// Subject, holder RUT, expiry and when it was uploaded; never the key.
#[utoipa::path(get, path = "/v1/companies/{rut}/certificate", tag = "companies", params(("rut" = String, Path)),
    responses((status = 200, body = CertificateInfo), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_certificate(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.certificate_info(&rut).await?))
}

/// Uploads a CAF.
///
/// The CAF XML exactly as the SII delivers it: its FRMA against the SII's key (IDK 100 or 300), the
/// key pair, the company and the environment are checked; it is stored encrypted.
#[utoipa::path(post, path = "/v1/companies/{rut}/cafs", tag = "companies", params(("rut" = String, Path)),
    request_body(content = String, content_type = "application/xml"),
    responses((status = 201, body = CafInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn add_caf(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    Ok(json(StatusCode::CREATED, &svc.add_caf(&rut, &b).await?))
}

/// Lists the company's CAFs.
///
/// Each CAF's type, range, next folio, folios left, authorisation date, expiry and whether it is
/// retired.
#[utoipa::path(get, path = "/v1/companies/{rut}/cafs", tag = "companies", params(("rut" = String, Path)),
    responses((status = 200, body = Vec<CafInfo>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_cafs(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.list_cafs(&rut).await?))
}

/// The company after an environment switch, with the CAFs retired by it.
#[derive(Serialize, ToSchema)]
pub struct EnvironmentView {
    #[serde(flatten)]
    pub company: CompanyView,
    /// CAFs of the other environment, retired by the switch.
    pub cafs_retired: u64,
}

/// Switches the company's SII environment.
///
/// `{"environment": "produccion", "FchResol": "2024-05-02", "NroResol": 80}`: the company issues
/// in that environment from now on, and its envelopes carry that environment's resolution (the
/// SII rejects the other's, CRT-3-19). The resolution may be left out when the company already
/// holds it (`Resoluciones`). CAFs of the other environment are retired. Refused (409) while a
/// document waits to be sent or for the SII's verdict.
#[utoipa::path(put, path = "/v1/companies/{rut}/environment", tag = "companies", params(("rut" = String, Path)), request_body = crate::service::EnvironmentChange,
    responses((status = 200, body = EnvironmentView), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_environment(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    let change: crate::service::EnvironmentChange = parse(&b)?;
    let (info, cafs_retired) = svc.set_environment(&rut, change, p.id()).await?;
    Ok(json(StatusCode::OK, &EnvironmentView { company: view(info), cafs_retired }))
}
