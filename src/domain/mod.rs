//! The pure domain: RUT, the document model per type, the tax engine and the business rules.
//! Nothing here does I/O.

pub mod aduana;
pub mod company;
mod de;
pub mod document;
pub mod elements;
pub mod exportacion;
pub mod informative;
pub mod limits;
pub mod liquidacion;
pub mod otra_moneda;
pub mod rules;
pub mod rut;
pub mod state;
pub mod tax;
pub mod text;

pub use company::{Company, Environment};
pub use document::{DocumentInput, TipoDte};
pub use rut::Rut;
pub use state::{BatchState, DocState, ItemState, UploadStatus};
