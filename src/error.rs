//! Typed errors. Every input problem names the field path (as in the input JSON, using the SII's
//! element names) and a stable machine-readable `code`.

use std::fmt;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path in the input, e.g. `Detalle[0].NmbItem`.
    pub path: String,
    /// Stable code, e.g. `too-long`, `not-latin1`, `mismatch`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), code, message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// Collects field errors so that a client learns of every problem at once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(FieldError::new(path, code, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), DteError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DteError::Invalid(self.0))
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum DteError {
    #[error("invalid document: {}", join(.0))]
    Invalid(Vec<FieldError>),
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A CAF refused (its `kind` is the CAF error's stable code).
    #[error("{message}")]
    Caf { kind: &'static str, message: String },
    /// A certificate refused (its `kind` is the certificate error's stable code).
    #[error("{message}")]
    Cert { kind: &'static str, message: String },
    #[error("schema validation failed ({schema}): {}", .errors.join("; "))]
    Schema { schema: &'static str, errors: Vec<String> },
    #[error("XML error: {0}")]
    Xml(String),
    #[error("signature error: {0}")]
    Signature(String),
    #[error("envelope: {0}")]
    Envelope(String),
}

impl DteError {
    /// Stable problem type for clients (`application/problem+json` `type` suffix, CLI messages).
    pub fn kind(&self) -> &'static str {
        match self {
            DteError::Invalid(_) => "invalid-document",
            DteError::Malformed(_) => "malformed-input",
            DteError::Caf { kind, .. } | DteError::Cert { kind, .. } => kind,
            DteError::Schema { .. } => "schema-invalid",
            DteError::Xml(_) => "xml-error",
            DteError::Signature(_) => "signature-error",
            DteError::Envelope(_) => "envelope-invalid",
        }
    }

    pub fn single(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        DteError::Invalid(vec![FieldError::new(path, code, message)])
    }
}

impl From<openssl::error::ErrorStack> for DteError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        DteError::Signature(e.to_string())
    }
}
