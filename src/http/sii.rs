//! The SII side of a company: webhooks for state changes, and asking the SII about one document.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body, secret_json};
use crate::service::Service;
use crate::worker::SiiLink;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to POST each state change (JSON), signed with the returned secret.
    pub url: String,
}

/// Registers a webhook.
///
/// An `https://` receiver for the company's events; the signing secret is in this response only
/// (`X-DTE-Signature: v1=hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`).
#[utoipa::path(post, path = "/v1/companies/{rut}/webhooks", tag = "webhooks", params(("rut" = String, Path)), request_body = WebhookRequest,
    responses((status = 201, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn add_webhook(
    p: Principal,
    rut: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    let r: WebhookRequest = serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(secret_json(StatusCode::CREATED, &svc.add_webhook(&rut, &r.url, &p.key.id).await?))
}

/// Deletes a webhook.
///
/// Nothing more is sent to it and its pending deliveries are cancelled; its past deliveries stay
/// listed.
#[utoipa::path(delete, path = "/v1/companies/{rut}/webhooks/{id}", tag = "webhooks", params(("rut" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    p: Principal,
    path: web::Path<(String, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, id) = path.into_inner();
    p.company(&rut, "admin")?;
    svc.delete_webhook(&rut, id, &p.key.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotates a webhook's secret.
///
/// A new signing secret (in this response only); the old one stops at once.
#[utoipa::path(post, path = "/v1/companies/{rut}/webhooks/{id}/secret", tag = "webhooks", params(("rut" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rotate_webhook_secret(
    p: Principal,
    path: web::Path<(String, i64)>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, id) = path.into_inner();
    p.company(&rut, "admin")?;
    Ok(secret_json(StatusCode::OK, &svc.rotate_webhook_secret(&rut, id, &p.key.id).await?))
}

/// Lists the company's webhooks.
///
/// Each receiver's URL and registration time; never the secret.
#[utoipa::path(get, path = "/v1/companies/{rut}/webhooks", tag = "webhooks", params(("rut" = String, Path)),
    responses((status = 200, body = Vec<crate::service::Webhook>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_webhooks(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    let hooks = svc.webhooks(&rut).await?;
    Ok(json(StatusCode::OK, &hooks))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1-1000, default 200 (newest first).
    pub limit: Option<i64>,
}

/// Lists recent webhook deliveries.
///
/// Each event sent with its outcome: state, attempts and the receiver's last HTTP status.
#[utoipa::path(get, path = "/v1/companies/{rut}/webhooks/deliveries", tag = "webhooks", params(("rut" = String, Path), DeliveriesQuery),
    responses((status = 200, body = Vec<crate::service::Delivery>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn deliveries(
    p: Principal,
    rut: web::Path<String>,
    q: web::Query<DeliveriesQuery>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let rows = svc.deliveries(&rut, limit).await?;
    Ok(json(StatusCode::OK, &rows))
}

/// Asks the SII about a document now.
///
/// QueryEstDte for one document; the answer is recorded (and sent to the webhooks when it changed
/// the state).
#[utoipa::path(post, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/sii-status", tag = "documents",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn sii_status(
    p: Principal,
    path: web::Path<(String, i32, i64)>,
    svc: web::Data<Arc<Service>>,
    link: Option<web::Data<Arc<SiiLink>>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "issue")?;
    svc.document(&rut, tipo, folio).await?;
    let link = link.ok_or_else(|| ApiError::Unavailable("the SII link is not running in this instance".into()))?;
    let s = link.document_status(&rut, tipo, folio).await.map_err(ApiError::Unavailable)?;
    let doc = svc.document(&rut, tipo, folio).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"estado": s.estado, "glosa": s.glosa, "state": doc.state})))
}
