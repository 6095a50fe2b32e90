//! The console's multipart forms (uploads), read within bounds: the declared length, the bytes
//! and the number of fields, each text field's size, and the time the body may take. Only the
//! fields a form names are kept; its file field can be spooled to an unlinked temporary file.

use std::collections::HashMap;
use std::io::Write;

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::http::problem::ApiError;

/// What a form may be.
pub struct Bounds<'a> {
    /// All the body's bytes.
    pub total: u64,
    /// How many fields (parts) it may have.
    pub parts: usize,
    /// The largest field kept in memory.
    pub field: usize,
    /// Times the configured body timeout it may take.
    pub timeout_times: u32,
    /// The fields kept; others are read and dropped.
    pub keep: &'a [&'a str],
    /// The field written to a temporary file instead of memory (one such part at most).
    pub spool: Option<&'a str>,
}

/// A form as read: the kept fields, and the spooled file with its name.
#[derive(Default)]
pub struct Form {
    pub fields: HashMap<String, Vec<u8>>,
    pub file: Option<(std::fs::File, String)>,
}

impl Form {
    pub fn text(&self, name: &str) -> String {
        self.fields.get(name).map(|v| String::from_utf8_lossy(v).to_string()).unwrap_or_default()
    }
}

pub async fn read(req: &HttpRequest, mut m: Multipart, b: Bounds<'_>) -> Result<Form, ApiError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > b.total) {
        return Err(ApiError::TooLarge(b.total as usize));
    }
    let within = crate::http::body_timeout(req, b.timeout_times);
    let io = |e: std::io::Error| ApiError::Service(crate::service::ServiceError::Internal(e.to_string()));
    let read = async {
        let mut form = Form::default();
        let (mut parts, mut size) = (0usize, 0u64);
        while let Some(field) = m.next().await {
            parts += 1;
            if parts > b.parts {
                return Err(ApiError::BadRequest("el formulario tiene demasiados campos".into()));
            }
            let mut field = field.map_err(|e| ApiError::BadRequest(format!("formulario: {e}")))?;
            let name = field.name().unwrap_or_default().to_string();
            let spooled = b.spool == Some(name.as_str());
            if spooled && form.file.is_some() {
                return Err(ApiError::BadRequest("suba un solo archivo por lote".into()));
            }
            let keep = spooled || b.keep.contains(&name.as_str());
            let mut file = if spooled { Some(tempfile::tempfile().map_err(io)?) } else { None };
            let filename = field.content_disposition().and_then(|d| d.get_filename()).unwrap_or_default().to_string();
            let (mut value, mut len) = (Vec::new(), 0usize);
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("formulario: {e}")))?;
                size += chunk.len() as u64;
                if size > b.total {
                    return Err(ApiError::TooLarge(b.total as usize));
                }
                len += chunk.len();
                match &mut file {
                    Some(f) => f.write_all(&chunk).map_err(io)?,
                    // Every text field is bounded, kept or not.
                    None if len > b.field => {
                        return Err(ApiError::BadRequest(format!("el campo {name} es demasiado largo")))
                    }
                    None if keep => value.extend_from_slice(&chunk),
                    None => {}
                }
            }
            match file {
                // An empty file field is no file.
                Some(f) if len > 0 => form.file = Some((f, filename)),
                Some(_) => {}
                None if keep => {
                    form.fields.insert(name, value);
                }
                None => {}
            }
        }
        Ok(form)
    };
    match tokio::time::timeout(within, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::BodyTimeout(within.as_secs())),
    }
}
