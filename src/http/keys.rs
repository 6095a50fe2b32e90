//! `/v1/keys`: create, revoke and rotate API keys (admin).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{read_body, secret_json};
use crate::service::{NewKey, Service};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// Bind the key to one company (absent: gateway-wide).
    pub company: Option<String>,
    /// Any of admin, issue, read.
    pub scopes: Vec<String>,
}

/// Creates an API key.
///
/// Scopes admin, issue and read, optionally bound to one company and with an expiry; the key is in
/// this response only (its SHA-256 is stored).
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyRequest,
    responses((status = 201, body = NewKey), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create(
    p: Principal,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let b = read_body(&req, body).await?;
    let r: KeyRequest = serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match &r.company {
        Some(c) => p.company(c, "admin")?,
        None => p.global_admin()?,
    }
    Ok(secret_json(StatusCode::CREATED, &svc.create_key(r.company.as_deref(), &r.scopes, None, p.id()).await?))
}

async fn owned_key(p: &Principal, id: &str, svc: &Service) -> Result<(), ApiError> {
    let k = svc.api_key(id).await?.ok_or_else(|| ApiError::NotFound(format!("key {id}")))?;
    match (&p.key.company, &k.company) {
        (None, _) => p.global_admin(),
        (Some(mine), Some(theirs)) if mine == theirs => p.company(mine, "admin"),
        _ => Err(ApiError::NotFound(format!("key {id}"))),
    }
}

/// Revokes an API key.
///
/// Refused on every instance within a second (the revocation list); audited.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn revoke(
    p: Principal,
    id: web::Path<String>,
    svc: web::Data<Arc<Service>>,
    auth: web::Data<Arc<super::auth::Auth>>,
) -> Result<HttpResponse, ApiError> {
    owned_key(&p, &id, &svc).await?;
    svc.revoke_key(&id, p.id()).await?;
    auth.forget_key(&id);
    Ok(HttpResponse::NoContent().finish())
}

/// Rotates an API key.
///
/// Issues a replacement with the same scopes and company; the old one keeps working for the
/// configured grace period.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", params(("id" = String, Path)),
    responses((status = 201, body = NewKey), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rotate(
    p: Principal,
    id: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    owned_key(&p, &id, &svc).await?;
    Ok(secret_json(StatusCode::CREATED, &svc.rotate_key(&id, None, p.id()).await?))
}
