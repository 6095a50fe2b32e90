//! dte-gateway: Chile's electronic tax documents (DTE) — build, stamp, sign, validate, verify.
//!
//! `domain` and `xml` are pure (no I/O); `engine` wires them into the issuance pipeline that the CLI
//! and the HTTP service share.

pub mod batch;
pub mod cache;
pub mod caf;
pub mod cert;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod folio;
pub mod http;
pub mod netguard;
pub mod otel;
pub mod print;
pub mod queue;
pub mod server;
pub mod service;
pub mod sii;
pub mod store;
pub mod ted;
pub mod telemetry;
pub mod vault;
pub mod verify;
pub mod worker;
pub mod xml;

pub use error::{DteError, FieldError};
