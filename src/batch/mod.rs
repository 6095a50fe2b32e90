//! Batches for accountants: uploads of many documents (JSON, CSV, ZIP) read as streams, written to
//! the store item by item, issued through the queue exactly once each, with progress and results.

pub mod csv;
pub mod intake;
mod results;
mod runner;
mod service;

pub use service::{BatchConfig, BatchError, BatchItem, BatchStatus, BatchSummary, Batches, Caller, DeadLetterView};
