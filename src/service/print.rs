//! Printed copies of stored documents and the companies' logos.

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Result, Service, ServiceError};
use crate::print::{self, canvas::Raster, Format, Options, PrintDoc};
use crate::store::NewAudit;

/// A company's logo as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogoInfo {
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

impl Service {
    /// Checks and stores a company's logo (PNG or JPEG).
    pub async fn put_logo(&self, rut: &str, bytes: Vec<u8>, by: &str) -> Result<LogoInfo> {
        self.company(rut).await?;
        let raster = print::logo::decode(&bytes)?;
        let media_type = if matches!(raster, Raster::Jpeg { .. }) { "image/jpeg" } else { "image/png" };
        let (width, height) = print::logo::dimensions(&bytes)?;
        let info = LogoInfo { media_type: media_type.into(), width, height, bytes: bytes.len() };
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "company.logo",
            subject: rut.to_string(),
            data: serde_json::json!({"media_type": media_type, "bytes": bytes.len(), "by": by}).to_string(),
        };
        self.store.put_logo(rut, media_type, bytes, audit, Utc::now()).await?;
        Ok(info)
    }

    /// The company's logo as stored, if any.
    pub async fn logo_info(&self, rut: &str) -> Result<Option<LogoInfo>> {
        let Some((media_type, data)) = self.store.get_logo(rut).await? else { return Ok(None) };
        let bytes = data.len();
        let (width, height) = tokio::task::spawn_blocking(move || print::logo::dimensions(&data))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(Some(LogoInfo { media_type, width, height, bytes }))
    }

    /// What a company's printed copies carry besides the XML: its SII office, resolution and logo.
    pub async fn print_options(&self, rut: &str, format: Format, cedible: bool) -> Result<Options> {
        let company = self.company(rut).await?;
        let logo = match self.store.get_logo(rut).await? {
            Some((_, data)) => Some(
                tokio::task::spawn_blocking(move || print::logo::decode(&data))
                    .await
                    .map_err(|e| ServiceError::Internal(e.to_string()))??,
            ),
            None => None,
        };
        Ok(Options { format: Some(format), cedible, logo, ..Options::default() }.for_company(&company.company))
    }

    /// The PDF of a stored document, rendered from its signed XML off the async executor.
    pub async fn document_pdf(
        &self,
        rut: &str,
        tipo: i32,
        folio: i64,
        format: Format,
        cedible: bool,
    ) -> Result<Vec<u8>> {
        let opts = self.print_options(rut, format, cedible).await?;
        let xml = self.document_xml(rut, tipo, folio).await?;
        tokio::task::spawn_blocking(move || {
            let doc = PrintDoc::from_xml(&xml, None)?;
            print::render(&doc, &opts)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::from)
    }
}
