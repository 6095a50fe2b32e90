//! One door to either SII API — SOAP + DTEUpload for DTE, REST for boletas — with every call
//! counted and timed under its operation name.

use super::boleta::BoletaClient;
use super::client::{DteState, SiiClient, SiiError, Upload, UploadState};
use crate::cert::Certificate;
use crate::domain::Rut;

/// Either SII API: SOAP + DTEUpload for DTE, REST for boletas.
#[derive(Clone)]
pub enum SiiApi {
    Soap(SiiClient),
    Boleta(BoletaClient),
}

/// Counts and times one SII call under `operation`.
async fn observed<T>(
    operation: &'static str,
    f: impl std::future::Future<Output = Result<T, SiiError>>,
) -> Result<T, SiiError> {
    let started = std::time::Instant::now();
    let r = f.await;
    let outcome = match &r {
        Ok(_) => "ok",
        Err(SiiError::Refused { .. }) => "refused",
        Err(e) if e.retryable() => "failed",
        Err(_) => "error",
    };
    metrics::counter!(crate::telemetry::SII_REQUESTS, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(crate::telemetry::SII_REQUEST_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    r
}

impl SiiApi {
    pub fn host(&self) -> &str {
        match self {
            SiiApi::Soap(c) => &c.endpoints.base,
            SiiApi::Boleta(c) => &c.endpoints.envio,
        }
    }

    pub async fn authenticate(&self, cert: &Certificate) -> Result<String, SiiError> {
        match self {
            SiiApi::Soap(c) => observed("token", c.authenticate(cert)).await,
            SiiApi::Boleta(c) => observed("boleta_token", c.authenticate(cert)).await,
        }
    }

    pub async fn upload(
        &self,
        token: &str,
        sender: Rut,
        company: Rut,
        filename: &str,
        envelope: Vec<u8>,
    ) -> Result<Upload, SiiError> {
        match self {
            SiiApi::Soap(c) => observed("upload", c.upload(token, sender, company, filename, envelope)).await,
            SiiApi::Boleta(c) => observed("boleta_upload", c.upload(token, sender, company, filename, envelope)).await,
        }
    }

    pub async fn query_upload(&self, token: &str, company: Rut, track_id: &str) -> Result<UploadState, SiiError> {
        match self {
            SiiApi::Soap(c) => observed("upload_status", c.query_upload(token, company, track_id)).await,
            SiiApi::Boleta(c) => observed("boleta_upload_status", c.query_upload(token, company, track_id)).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn query_document(
        &self,
        token: &str,
        consultante: Rut,
        company: Rut,
        receptor: Rut,
        tipo: u16,
        folio: u64,
        fecha: chrono::NaiveDate,
        monto: i64,
    ) -> Result<DteState, SiiError> {
        match self {
            SiiApi::Soap(c) => {
                observed(
                    "document_status",
                    c.query_document(token, consultante, company, receptor, tipo, folio, fecha, monto),
                )
                .await
            }
            SiiApi::Boleta(c) => {
                observed("boleta_status", c.query_boleta(token, company, receptor, tipo, folio, fecha, monto)).await
            }
        }
    }
}
