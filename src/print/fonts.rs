//! Helvetica and Helvetica-Bold, two of the PDF's standard fonts: every viewer has them, so nothing
//! is embedded, and with WinAnsiEncoding they cover Spanish (á é í ó ú ñ Ñ ü ° º). Widths come from
//! Adobe's Core 14 AFM files (the `pdf-core-14-font-afms` crate), read once.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
}

impl Font {
    /// The resource name the pages use.
    pub fn resource(self) -> &'static [u8] {
        match self {
            Font::Regular => b"F1",
            Font::Bold => b"F2",
        }
    }

    pub fn base_name(self) -> &'static [u8] {
        match self {
            Font::Regular => b"Helvetica",
            Font::Bold => b"Helvetica-Bold",
        }
    }
}

/// Glyph names of ISO-8859-1's upper half (U+00A0–U+00FF), which WinAnsiEncoding shares.
const LATIN1_UPPER: [&str; 96] = [
    "space",
    "exclamdown",
    "cent",
    "sterling",
    "currency",
    "yen",
    "brokenbar",
    "section",
    "dieresis",
    "copyright",
    "ordfeminine",
    "guillemotleft",
    "logicalnot",
    "hyphen",
    "registered",
    "macron",
    "degree",
    "plusminus",
    "twosuperior",
    "threesuperior",
    "acute",
    "mu",
    "paragraph",
    "periodcentered",
    "cedilla",
    "onesuperior",
    "ordmasculine",
    "guillemotright",
    "onequarter",
    "onehalf",
    "threequarters",
    "questiondown",
    "Agrave",
    "Aacute",
    "Acircumflex",
    "Atilde",
    "Adieresis",
    "Aring",
    "AE",
    "Ccedilla",
    "Egrave",
    "Eacute",
    "Ecircumflex",
    "Edieresis",
    "Igrave",
    "Iacute",
    "Icircumflex",
    "Idieresis",
    "Eth",
    "Ntilde",
    "Ograve",
    "Oacute",
    "Ocircumflex",
    "Otilde",
    "Odieresis",
    "multiply",
    "Oslash",
    "Ugrave",
    "Uacute",
    "Ucircumflex",
    "Udieresis",
    "Yacute",
    "Thorn",
    "germandbls",
    "agrave",
    "aacute",
    "acircumflex",
    "atilde",
    "adieresis",
    "aring",
    "ae",
    "ccedilla",
    "egrave",
    "eacute",
    "ecircumflex",
    "edieresis",
    "igrave",
    "iacute",
    "icircumflex",
    "idieresis",
    "eth",
    "ntilde",
    "ograve",
    "oacute",
    "ocircumflex",
    "otilde",
    "odieresis",
    "divide",
    "oslash",
    "ugrave",
    "uacute",
    "ucircumflex",
    "udieresis",
    "yacute",
    "thorn",
    "ydieresis",
];

/// WinAnsiEncoding's typographic characters in 0x80–0x9F: (code, character, glyph name).
const WIN_ANSI_EXTRA: [(u8, &str); 9] = [
    (0x80, "Euro"),
    (0x85, "ellipsis"),
    (0x91, "quoteleft"),
    (0x92, "quoteright"),
    (0x93, "quotedblleft"),
    (0x94, "quotedblright"),
    (0x95, "bullet"),
    (0x96, "endash"),
    (0x97, "emdash"),
];

/// Advance widths (1/1000 em) by WinAnsi code.
struct Widths([u16; 256]);

fn parse(afm: &str) -> Widths {
    let mut by_code: HashMap<i32, u16> = HashMap::new();
    let mut by_name: HashMap<&str, u16> = HashMap::new();
    for line in afm.lines().filter(|l| l.starts_with("C ")) {
        let mut code = None;
        let mut wx = None;
        let mut name = None;
        for part in line.split(';').map(str::trim) {
            let mut it = part.split_whitespace();
            match (it.next(), it.next()) {
                (Some("C"), Some(v)) => code = v.parse::<i32>().ok(),
                (Some("WX"), Some(v)) => wx = v.parse::<u16>().ok(),
                (Some("N"), Some(v)) => name = Some(v),
                _ => {}
            }
        }
        if let (Some(w), Some(n)) = (wx, name) {
            by_name.insert(n, w);
            if let Some(c) = code.filter(|c| *c >= 0) {
                by_code.insert(c, w);
            }
        }
    }
    let fallback = by_name.get("a").copied().unwrap_or(556);
    let mut w = [fallback; 256];
    for (c, slot) in w.iter_mut().enumerate().take(0x7F).skip(0x20) {
        // StandardEncoding differs from WinAnsi at 0x27 and 0x60 only.
        let named = match c {
            0x27 => by_name.get("quotesingle"),
            0x60 => by_name.get("grave"),
            _ => by_code.get(&(c as i32)),
        };
        *slot = named.copied().unwrap_or(fallback);
    }
    for (i, name) in LATIN1_UPPER.iter().enumerate() {
        w[0xA0 + i] = by_name.get(name).copied().unwrap_or(fallback);
    }
    for (code, name) in WIN_ANSI_EXTRA {
        w[code as usize] = by_name.get(name).copied().unwrap_or(fallback);
    }
    Widths(w)
}

fn widths(font: Font) -> &'static Widths {
    static REGULAR: OnceLock<Widths> = OnceLock::new();
    static BOLD: OnceLock<Widths> = OnceLock::new();
    match font {
        Font::Regular => REGULAR.get_or_init(|| parse(pdf_core_14_font_afms::HELVETICA)),
        Font::Bold => BOLD.get_or_init(|| parse(pdf_core_14_font_afms::HELVETICA_BOLD)),
    }
}

/// A character's WinAnsi byte; characters the encoding lacks print as `?` (a DTE is ISO-8859-1,
/// so only C1 controls and the odd typographic character get there).
pub fn win_ansi(c: char) -> u8 {
    match c as u32 {
        0x20..=0x7E | 0xA0..=0xFF => c as u32 as u8,
        0x20AC => 0x80,
        0x2026 => 0x85,
        0x2018 => 0x91,
        0x2019 => 0x92,
        0x201C => 0x93,
        0x201D => 0x94,
        0x2022 => 0x95,
        0x2013 => 0x96,
        0x2014 => 0x97,
        _ => b'?',
    }
}

pub fn encode(s: &str) -> Vec<u8> {
    s.chars().filter(|c| !c.is_control()).map(win_ansi).collect()
}

/// The width of `s` in points at `size`.
pub fn width(font: Font, size: f32, s: &str) -> f32 {
    let w = widths(font);
    encode(s).iter().map(|&b| w.0[b as usize] as f32).sum::<f32>() * size / 1000.0
}

/// Breaks `s` into lines no wider than `max` points, at spaces; a word wider than a line is cut.
pub fn wrap(font: Font, size: f32, s: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        let candidate = if cur.is_empty() { word.to_string() } else { format!("{cur} {word}") };
        if width(font, size, &candidate) <= max {
            cur = candidate;
            continue;
        }
        if !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        let mut piece = String::new();
        for ch in word.chars() {
            piece.push(ch);
            if width(font, size, &piece) > max && piece.chars().count() > 1 {
                piece.pop();
                lines.push(std::mem::take(&mut piece));
                piece.push(ch);
            }
        }
        cur = piece;
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_from_the_afm_files() {
        // Helvetica: a 556, W 944, space 278; accented letters as their base letters.
        assert_eq!(width(Font::Regular, 1000.0, "a"), 556.0);
        assert_eq!(width(Font::Regular, 1000.0, "W"), 944.0);
        assert_eq!(width(Font::Regular, 1000.0, "ñ"), width(Font::Regular, 1000.0, "n"));
        assert_eq!(width(Font::Regular, 1000.0, "Ñ"), width(Font::Regular, 1000.0, "N"));
        assert_eq!(width(Font::Regular, 1000.0, "°"), 400.0);
        assert!(width(Font::Bold, 10.0, "Factura") > width(Font::Regular, 10.0, "Factura"));
        assert_eq!(encode("Ñuñoa °€"), vec![0xD1, b'u', 0xF1, b'o', b'a', b' ', 0xB0, 0x80]);
        let lines = wrap(Font::Regular, 10.0, "Servicios informáticos y venta de artículos de oficina", 100.0);
        assert!(lines.len() > 1 && lines.iter().all(|l| width(Font::Regular, 10.0, l) <= 100.0), "{lines:?}");
        assert_eq!(wrap(Font::Regular, 10.0, &"x".repeat(100), 50.0).concat(), "x".repeat(100));
    }
}
