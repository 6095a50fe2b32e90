//! Delivering issued documents to buyers: the buyer directory, a company's own buyer addresses, a
//! document's delivery and answers, resends and cedibility.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::auth::Principal;
use super::problem::{ApiError, Problem};
use super::{json, read_body};
use crate::service::{BuyerAddress, BuyerAddressBody, DirectoryImport, DocumentExchangeInfo, Service, ServiceError};
use crate::worker::exchange::Exchange;

/// The largest directory file taken (the SII's list is about 150 MB).
const DIRECTORY_LIMIT: u64 = 1 << 30;

/// Imports the SII's list of authorised taxpayers.
///
/// The CSV the SII publishes (`RUT;RAZON SOCIAL;NUMERO RESOLUCION;FECHA RESOLUCION;MAIL
/// INTERCAMBIO;URL`, ISO-8859-1): each RUT's exchange address is added or replaced. The body is
/// spooled to disk and read as a stream. Gateway admin only.
#[utoipa::path(put, path = "/v1/directory", tag = "delivery",
    request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = DirectoryImport), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn import_directory(
    p: Principal,
    req: HttpRequest,
    mut body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.global_admin()?;
    let within = super::body_timeout(&req, 10);
    // Spooled to a temporary file by a blocking thread, read back as a stream.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<web::Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        use std::io::{Seek, Write};
        let mut f = tempfile::tempfile()?;
        while let Some(chunk) = rx.blocking_recv() {
            f.write_all(&chunk)?;
        }
        f.flush()?;
        f.rewind()?;
        Ok(f)
    });
    let mut size = 0u64;
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
            size += chunk.len() as u64;
            if size > DIRECTORY_LIMIT {
                return Err(ApiError::TooLarge(DIRECTORY_LIMIT as usize));
            }
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<(), ApiError>(())
    };
    let read = tokio::time::timeout(within, read).await;
    drop(tx);
    let file = writer
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    read.map_err(|_| ApiError::BodyTimeout(within.as_secs()))??;
    Ok(json(StatusCode::OK, &svc.import_directory(std::io::BufReader::new(file)).await?))
}

/// Sets a buyer's exchange address.
///
/// The company's own address for a buyer, used before the SII's list when documents are delivered.
#[utoipa::path(put, path = "/v1/companies/{rut}/buyers/{buyer}", tag = "delivery",
    params(("rut" = String, Path), ("buyer" = String, Path)), request_body = BuyerAddressBody,
    responses((status = 200, body = BuyerAddress), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_buyer(
    p: Principal,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, buyer) = path.into_inner();
    p.company(&rut, "admin")?;
    let b = read_body(&req, body).await?;
    let b: BuyerAddressBody = serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("buyer: {e}")))?;
    Ok(json(StatusCode::OK, &svc.put_buyer_address(&rut, &buyer, b).await?))
}

/// Lists the company's buyer addresses.
///
/// The addresses set with `PUT …/buyers/{buyer}`, by buyer RUT.
#[utoipa::path(get, path = "/v1/companies/{rut}/buyers", tag = "delivery", params(("rut" = String, Path)),
    responses((status = 200, body = Vec<BuyerAddress>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_buyers(
    p: Principal,
    rut: web::Path<String>,
    svc: web::Data<Arc<Service>>,
) -> Result<HttpResponse, ApiError> {
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.buyer_addresses(&rut).await?))
}

type DocPath = web::Path<(String, i32, i64)>;

/// Shows a document's life with its buyer.
///
/// Its delivery (state, address, Message-ID or SMTP reason), the buyer's answers (RecepcionEnvio,
/// ResultadoDTE, EnvioRecibos) and the RCV's events (ACD, ERM, claims).
#[utoipa::path(get, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/exchange", tag = "delivery",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = DocumentExchangeInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn exchange(p: Principal, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    Ok(json(StatusCode::OK, &svc.document_exchange(&rut, tipo, folio).await?))
}

/// Sends a document to its buyer again.
///
/// A new delivery, due now, for a document the SII accepted of a type that goes to buyers; 409
/// otherwise.
#[utoipa::path(post, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/deliver", tag = "delivery",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 202, body = DocumentExchangeInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "not accepted by the SII, or a type that does not go to buyers"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn deliver(p: Principal, path: DocPath, svc: web::Data<Arc<Service>>) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "issue")?;
    Ok(json(StatusCode::ACCEPTED, &svc.resend_to_buyer(&rut, tipo, folio).await?))
}

/// Asks whether a document can be factored.
///
/// The SII's RCV answer (`consultarDocDteCedible`, codes 20-25): cedible when no claim was made
/// (22, 23) or the 8 days passed (25).
#[utoipa::path(get, path = "/v1/companies/{rut}/documents/{tipo}/{folio}/cedible", tag = "delivery",
    params(("rut" = String, Path), ("tipo" = i32, Path), ("folio" = i64, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn cedible(
    p: Principal,
    path: DocPath,
    exchange: Option<web::Data<Arc<Exchange>>>,
) -> Result<HttpResponse, ApiError> {
    let (rut, tipo, folio) = path.into_inner();
    p.company(&rut, "read")?;
    let x = exchange.ok_or_else(|| ApiError::Unavailable("the SII link is off in this instance".into()))?;
    Ok(json(StatusCode::OK, &x.cedible(&rut, tipo, folio).await?))
}
