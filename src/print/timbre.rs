//! The timbre: the TED as a PDF417 symbol, as the SII's Instructivo Técnico (Anexo 2) asks:
//! byte compaction (the TED is ISO-8859-1 and carries `Ñ`, `&`, …), error-correction level 5,
//! rows three modules tall. The symbol is returned as modules; the page draws it as a 1-bit raster
//! at a whole number of device dots per module.

use rxing::common::CharacterSet;
use rxing::pdf417::encoder::{Compaction, PDF417};

use super::model::PrintError;
use crate::xml::latin1;

/// Rows are three modules tall (row height : module width = 3 : 1).
pub const ROW_HEIGHT: usize = 3;
/// The SII's error-correction level.
pub const EC_LEVEL: u32 = 5;

/// A symbol's size for `cols` columns when `codewords` codewords (data and correction) must fit.
pub fn modules_for(codewords: usize, cols: usize) -> (usize, usize) {
    let rows = codewords.div_ceil(cols).max(3);
    (17 * cols + 69, rows * ROW_HEIGHT)
}

/// A PDF417 symbol: `width` × `height` modules, row-major, true for a dark module. No quiet zone:
/// the page leaves the white space around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub width: usize,
    pub height: usize,
    pub dark: Vec<bool>,
}

impl Symbol {
    /// Codewords the symbol holds (rows × data columns): what another column count must hold.
    pub fn codewords(&self) -> usize {
        (self.height / ROW_HEIGHT) * ((self.width - 69) / 17)
    }

    /// Rows packed 1 bit a module, most significant bit first, dark = 0 (a PDF `DeviceGray`
    /// image with 1 bit per component: 0 is black).
    pub fn packed_rows(&self) -> Vec<u8> {
        let stride = self.width.div_ceil(8);
        let mut out = vec![0xFFu8; stride * self.height];
        for y in 0..self.height {
            for x in 0..self.width {
                if self.dark[y * self.width + x] {
                    out[y * stride + x / 8] &= !(0x80 >> (x % 8));
                }
            }
        }
        out
    }
}

/// Encodes `ted` (ISO-8859-1 bytes) in `cols` data columns (as many rows as it takes, at most
/// 90): fewer columns make a narrower, taller symbol.
///
/// A symbol holds at most 928 codewords, of which level 5 takes 64 for correction: about 1 030
/// bytes of TED. The SII's TEDs (a 1024-bit FRMA, names cut at 40 characters) stay far below;
/// a larger one (a test CAF signed by a 2048-bit authority) is encoded at the highest level that
/// holds it rather than not at all.
pub fn encode(ted: &[u8], cols: u32) -> Result<Symbol, PrintError> {
    let mut last = None;
    for level in (2..=EC_LEVEL).rev() {
        match encode_at(ted, cols, level) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| PrintError::Barcode("no level holds the TED".into())))
}

fn encode_at(ted: &[u8], cols: u32, level: u32) -> Result<Symbol, PrintError> {
    let text = latin1::decode(ted);
    let mut p = PDF417::new();
    p.setCompaction(Compaction::BYTE);
    p.setEncoding(Some(CharacterSet::ISO8859_1));
    p.setDimensions(cols, cols, 90, 3);
    p.generateBarcodeLogic(&text, level).map_err(|e| PrintError::Barcode(e.to_string()))?;
    let m = p.getBarcodeMatrix().as_ref().ok_or_else(|| PrintError::Barcode("no symbol".into()))?;
    // The encoder keeps its rows last first (the ZXing layout): put them top to bottom.
    let mut rows = m.getScaledMatrix(1, ROW_HEIGHT);
    rows.reverse();
    let height = rows.len();
    let width = rows.first().map_or(0, Vec::len);
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        return Err(PrintError::Barcode("an empty or ragged symbol".into()));
    }
    Ok(Symbol { width, height, dark: rows.into_iter().flatten().map(|v| v != 0).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ted_sized_message_fits_the_sii_box_at_three_dots_a_module() {
        let ted = latin1::encode(&format!(
            "<TED version=\"1.0\"><DD><RSR>Ñandú &amp; Cía</RSR>{}</DD></TED>",
            "x".repeat(680)
        ))
        .unwrap();
        let s = encode(&ted, 15).unwrap();
        assert_eq!(s.height % ROW_HEIGHT, 0);
        // 17 modules per column plus start/stop patterns.
        assert_eq!((s.width - 69) % 17, 0, "{}", s.width);
        // At 3 dots of 300 dpi a module: within 9 × 4 cm.
        let mm = |modules: usize| modules as f64 * 3.0 / 300.0 * 25.4;
        assert!(mm(s.width) <= 90.0 && mm(s.height) <= 40.0, "{} × {} mm", mm(s.width), mm(s.height));
        assert_eq!(s.packed_rows().len(), s.width.div_ceil(8) * s.height);
        // Deterministic.
        assert_eq!(encode(&ted, 15).unwrap(), s);
    }
}
