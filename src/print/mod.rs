//! The printed document: the signed DTE rendered as a PDF (letter or 80 mm thermal, and the
//! cedible copy) with its PDF417 timbre. Pure: bytes in, bytes out, no I/O and no clock, so the
//! same XML and options always give the same PDF.

pub mod model;
pub mod names;
pub mod timbre;

pub use layout::{render, Format, Options};
pub use model::{PrintDoc, PrintError};
pub mod canvas;
pub mod fonts;
pub mod layout;
pub mod logo;

use crate::caf::CafTrust;
use crate::domain::Company;

impl Options {
    /// The company's SII office and resolution (for the caption under the timbre).
    pub fn for_company(mut self, c: &Company) -> Options {
        self.office = c.oficina_sii.clone();
        self.resolution = Some((c.nro_resol, chrono::Datelike::year(&c.fch_resol)));
        self
    }
}

/// A PDF of any signed DTE file (or of the DTE with `folio` in an envelope). The file is verified
/// first (schema, signatures, TED against its CAF); one that does not verify is refused, or with
/// `force` printed with "NO VÁLIDO" across every page.
pub fn pdf_of_file(
    xml: &[u8],
    folio: Option<u64>,
    mut opts: Options,
    force: bool,
    trust: &CafTrust,
) -> Result<Vec<u8>, PrintError> {
    let doc = PrintDoc::from_xml(xml, folio)?;
    let report = crate::verify::verify(xml, trust).map_err(|e| PrintError::NotDte(e.to_string()))?;
    if !report.passed() {
        if !force {
            return Err(PrintError::NotVerified(report.failures().join("; ")));
        }
        opts.not_valid = true;
    }
    render(&doc, &opts)
}
