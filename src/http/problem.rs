//! Errors as `application/problem+json` (RFC 9457) with a stable `type` per kind and, for invalid
//! input, every offending field path.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{DteError, FieldError};
use crate::service::ServiceError;

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/caf-exhausted`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("an API key is required (Authorization: Bearer …)")]
    Unauthorized,
    #[error("this API key lacks the {0} scope")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("rate limit exceeded; retry in {0} s")]
    RateLimited(u64),
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    /// A batch refused whole: every error with its line, item or file.
    #[error("{detail}")]
    Batch { status: StatusCode, kind: &'static str, detail: String, errors: Vec<FieldError> },
}

impl From<crate::batch::BatchError> for ApiError {
    fn from(e: crate::batch::BatchError) -> Self {
        use crate::batch::BatchError as B;
        let detail = e.to_string();
        match e {
            B::Malformed(_, errors) => {
                ApiError::Batch { status: StatusCode::BAD_REQUEST, kind: "invalid-batch", detail, errors }
            }
            B::Rejected(errors) => {
                ApiError::Batch { status: StatusCode::UNPROCESSABLE_ENTITY, kind: "batch-rejected", detail, errors }
            }
            B::Service(s) => ApiError::Service(s),
        }
    }
}

impl From<DteError> for ApiError {
    fn from(e: DteError) -> Self {
        ApiError::Service(ServiceError::Dte(e))
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, Vec<FieldError>) {
        use ServiceError as S;
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", vec![]),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", vec![]),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", vec![]),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", vec![]),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", vec![]),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", vec![]),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body-timeout", vec![]),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", vec![]),
            ApiError::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", vec![]),
            ApiError::Batch { status, kind, errors, .. } => (*status, *kind, errors.clone()),
            ApiError::Service(s) => match s {
                S::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", vec![]),
                S::Conflict(_) => (StatusCode::CONFLICT, "conflict", vec![]),
                S::CafExhausted(_) => (StatusCode::CONFLICT, "caf-exhausted", vec![]),
                S::IdempotencyMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", vec![]),
                S::NoCertificate => (StatusCode::CONFLICT, "certificate-missing", vec![]),
                S::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", vec![]),
                S::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", vec![]),
                S::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", vec![]),
                S::Rcv { .. } => (StatusCode::CONFLICT, "rcv-refused", vec![]),
                S::PastDeadline(_) => (StatusCode::CONFLICT, "deadline-passed", vec![]),
                S::SiiUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "sii-unavailable", vec![]),
                S::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", vec![]),
                S::Print(p) => {
                    use crate::print::PrintError as P;
                    match p {
                        P::NotCedible(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not-cedible", vec![]),
                        P::BadLogo(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad-logo", vec![]),
                        _ => (StatusCode::INTERNAL_SERVER_ERROR, "print-failed", vec![]),
                    }
                }
                S::Dte(d) => match d {
                    DteError::Invalid(errs) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-document", errs.clone()),
                    DteError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed-input", vec![]),
                    DteError::Xml(_) | DteError::Signature(_) | DteError::Schema { .. } => {
                        (StatusCode::INTERNAL_SERVER_ERROR, d.kind(), vec![])
                    }
                    other => (StatusCode::UNPROCESSABLE_ENTITY, other.kind(), vec![]),
                },
            },
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, kind, errors) = self.parts();
        let detail = match self {
            // Internal details stay in the log.
            ApiError::Service(ServiceError::Internal(_)) => "internal error".to_string(),
            other => other.to_string(),
        };
        Problem {
            kind: format!("/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let p = self.problem();
        if p.status >= 500 {
            tracing::error!(error = %self, "request failed");
        }
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::RateLimited(s) = self {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if let ApiError::Unauthorized = self {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        r.body(serde_json::to_string(&p).unwrap_or_default())
    }
}
