//! The one entry point for XML that comes from outside: API bodies (verify, CAF uploads), SII
//! answers, and received documents. Everything untrusted is parsed here and nowhere else.
//!
//! libxml2 is never left to guess: the bytes are decoded here (BOM, then the XML declaration;
//! UTF-8, ISO-8859-1, windows-1252, US-ASCII and UTF-16 are accepted) and libxml2 is handed UTF-8
//! text with the encoding fixed. A byte search for `<!DOCTYPE` before decoding is what a UTF-16
//! document walks past; on decoded text it cannot. A DTD or entity declaration is refused before
//! libxml2 sees it (so no entity is ever expanded, nothing is fetched) and, should one still reach
//! the tree, again after parsing. Size and nesting depth are capped.

use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{Document, Node, NodeType};

use super::latin1;

/// Larger than any EnvioDTE the SII takes in one upload.
pub const MAX_BYTES: usize = 32 << 20;
/// A DTE inside an EnvioDTE with its signature nests about a dozen levels deep.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlInputError {
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Encoding(String),
    #[error("DTDs and entity declarations are not accepted")]
    Dtd,
    #[error("elements nested deeper than {0} levels are not accepted")]
    TooDeep(usize),
    #[error("the input is not well-formed XML")]
    Malformed,
}

/// A document's text without BOM or XML declaration, and the encoding it was read in (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub encoding: String,
}

#[derive(Clone, Copy)]
enum Detected {
    Utf16Le,
    Utf16Be,
    /// One byte per ASCII character: the declaration says which encoding.
    AsciiCompatible,
}

fn detect(bytes: &[u8]) -> Result<(Detected, usize), XmlInputError> {
    match bytes {
        [0, 0, 0xFE, 0xFF, ..] | [0xFF, 0xFE, 0, 0, ..] | [0, 0, 0, 0x3C, ..] | [0x3C, 0, 0, 0, ..] => {
            Err(XmlInputError::Encoding("UTF-32 documents are not accepted".into()))
        }
        [0xEF, 0xBB, 0xBF, ..] => Ok((Detected::AsciiCompatible, 3)),
        [0xFF, 0xFE, ..] => Ok((Detected::Utf16Le, 2)),
        [0xFE, 0xFF, ..] => Ok((Detected::Utf16Be, 2)),
        [0x3C, 0, 0x3F, 0, ..] => Ok((Detected::Utf16Le, 0)),
        [0, 0x3C, 0, 0x3F, ..] => Ok((Detected::Utf16Be, 0)),
        _ => Ok((Detected::AsciiCompatible, 0)),
    }
}

fn utf16(bytes: &[u8], le: bool) -> Result<String, XmlInputError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(XmlInputError::Encoding("odd number of bytes in a UTF-16 document".into()));
    }
    let units =
        bytes
            .chunks_exact(2)
            .map(|p| if le { u16::from_le_bytes([p[0], p[1]]) } else { u16::from_be_bytes([p[0], p[1]]) });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| XmlInputError::Encoding("the document is not valid UTF-16".into()))
}

/// Decodes a document's bytes. With `latin1_fallback`, bytes without a declaration that are not
/// UTF-8 are read as ISO-8859-1 (how the SII's own CAF files arrive).
pub fn decode_with(bytes: &[u8], latin1_fallback: bool) -> Result<Decoded, XmlInputError> {
    if bytes.len() > MAX_BYTES {
        return Err(XmlInputError::TooLarge(MAX_BYTES));
    }
    let (detected, bom) = detect(bytes)?;
    let body = &bytes[bom..];
    let (text, encoding) = match detected {
        Detected::Utf16Le | Detected::Utf16Be => {
            let text = utf16(body, matches!(detected, Detected::Utf16Le))?;
            match declared_in_text(&text) {
                None => {}
                Some(e) if e.starts_with("utf-16") => {}
                Some(e) => return Err(XmlInputError::Encoding(format!("the document is UTF-16 but declares {e}"))),
            }
            (text, "utf-16".to_string())
        }
        Detected::AsciiCompatible => {
            let declared = latin1::declared_encoding(body);
            let enc = declared.clone().unwrap_or_else(|| "utf-8".into());
            if bom == 3 && !matches!(enc.as_str(), "utf-8" | "utf8") {
                return Err(XmlInputError::Encoding(format!(
                    "a UTF-8 byte order mark, but the document declares {enc}"
                )));
            }
            let text = match enc.as_str() {
                "utf-8" | "utf8" => match String::from_utf8(body.to_vec()) {
                    Ok(t) => t,
                    Err(_) if latin1_fallback && declared.is_none() => {
                        return finish(latin1::decode(body), "iso-8859-1".into())
                    }
                    Err(_) => return Err(XmlInputError::Encoding("the document is not valid UTF-8".into())),
                },
                "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" => latin1::decode(body),
                "windows-1252" | "cp1252" => latin1::decode_cp1252(body),
                "us-ascii" | "ascii" => {
                    if !body.is_ascii() {
                        return Err(XmlInputError::Encoding("the document declares US-ASCII but is not".into()));
                    }
                    latin1::decode(body)
                }
                other => return Err(XmlInputError::Encoding(format!("unsupported encoding {other}"))),
            };
            (text, enc)
        }
    };
    finish(text, encoding)
}

/// Reads the declaration of already decoded text (for UTF-16, whose bytes the Latin-1 reader
/// cannot see through).
fn declared_in_text(text: &str) -> Option<String> {
    let head: String = text.chars().take(200).collect();
    latin1::declared_encoding(&latin1::encode(&head).unwrap_or_default())
}

fn finish(text: String, encoding: String) -> Result<Decoded, XmlInputError> {
    // Blank lines before the declaration (seen in CAF files) are dropped with it.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text).trim_start_matches(['\r', '\n', ' ', '\t']);
    let body = match (text.starts_with("<?xml"), text.find("?>")) {
        (true, Some(i)) => text[i + 2..].trim_start_matches(['\r', '\n', ' ', '\t']),
        _ => text,
    };
    // XML 1.0 has no NUL; a NUL left here means bytes in another encoding than the one read.
    if body.contains('\0') {
        return Err(XmlInputError::Encoding("the document holds NUL characters".into()));
    }
    Ok(Decoded { text: body.to_string(), encoding })
}

/// [`decode_with`] without the Latin-1 fallback: no declaration means UTF-8, as XML says.
pub fn decode(bytes: &[u8]) -> Result<Decoded, XmlInputError> {
    decode_with(bytes, false)
}

/// Decodes and parses untrusted bytes; returns the tree and the encoding they were read in.
pub fn parse(bytes: &[u8]) -> Result<(Document, String), XmlInputError> {
    let d = decode(bytes)?;
    Ok((parse_text(&d.text)?, d.encoding))
}

/// Parses decoded text (see [`decode`]) with the same refusals.
pub fn parse_text(text: &str) -> Result<Document, XmlInputError> {
    super::libxml::init();
    if text.len() > MAX_BYTES {
        return Err(XmlInputError::TooLarge(MAX_BYTES));
    }
    if text.contains('\0') {
        return Err(XmlInputError::Encoding("the document holds NUL characters".into()));
    }
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(XmlInputError::Dtd);
    }
    // No recovery, no network, no DTD loading or entity substitution (both off by default), the
    // parser's own limits kept (no `huge`), and the encoding fixed rather than sniffed.
    let opts = ParserOptions {
        recover: false,
        no_net: true,
        no_error: true,
        no_warning: true,
        huge: false,
        ignore_enc: true,
        encoding: Some("UTF-8"),
        ..Default::default()
    };
    let doc =
        Parser::default().parse_string_with_options(text.as_bytes(), opts).map_err(|_| XmlInputError::Malformed)?;
    check_tree(&doc)?;
    Ok(doc)
}

/// What is refused after parsing, whatever got the document this far.
fn check_tree(doc: &Document) -> Result<(), XmlInputError> {
    let ptr = doc.doc_ptr();
    // SAFETY: `ptr` is the live document `doc` owns; only its two subset pointers are read.
    let (int, ext) = unsafe { ((*ptr).intSubset, (*ptr).extSubset) };
    if !int.is_null() || !ext.is_null() {
        return Err(XmlInputError::Dtd);
    }
    let root = doc.get_root_element().ok_or(XmlInputError::Malformed)?;
    let mut stack: Vec<(Node, usize)> = vec![(root, 1)];
    while let Some((n, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(XmlInputError::TooDeep(MAX_DEPTH));
        }
        let mut c = n.get_first_child();
        while let Some(node) = c {
            match node.get_type() {
                Some(NodeType::ElementNode) => stack.push((node.clone(), depth + 1)),
                Some(
                    NodeType::EntityRefNode
                    | NodeType::EntityNode
                    | NodeType::EntityDecl
                    | NodeType::DTDNode
                    | NodeType::DocumentTypeNode
                    | NodeType::XIncludeStart
                    | NodeType::XIncludeEnd,
                ) => return Err(XmlInputError::Dtd),
                _ => {}
            }
            c = node.get_next_sibling();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut v = if bom { vec![0xFF, 0xFE] } else { vec![] };
        v.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        v
    }

    #[test]
    fn utf16_documents_are_decoded_and_their_dtds_refused() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>Ñandú</a>";
        for bom in [true, false] {
            let (doc, enc) = parse(&utf16le(ok, bom)).unwrap();
            assert_eq!((doc.get_root_element().unwrap().get_content(), enc.as_str()), ("Ñandú".into(), "utf-16"));
        }
        let bomb = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE a [<!ENTITY x \"xxxxxxxx\">]><a>&x;&x;</a>";
        for bom in [true, false] {
            assert_eq!(parse(&utf16le(bomb, bom)).err(), Some(XmlInputError::Dtd));
        }
        let mut be: Vec<u8> = vec![0xFE, 0xFF];
        be.extend(bomb.encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(parse(&be).err(), Some(XmlInputError::Dtd));
    }

    #[test]
    fn encodings_are_read_as_declared_and_lies_refused() {
        let (doc, enc) = parse(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xd1</a>").unwrap();
        assert_eq!((doc.get_root_element().unwrap().get_content(), enc.as_str()), ("Ñ".into(), "iso-8859-1"));
        let (doc, _) = parse(b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>\x80</a>").unwrap();
        assert_eq!(doc.get_root_element().unwrap().get_content(), "€");
        assert!(matches!(parse(b"<a>\xd1</a>"), Err(XmlInputError::Encoding(_))));
        assert!(matches!(
            parse(b"<?xml version=\"1.0\" encoding=\"EBCDIC-US\"?><a/>"),
            Err(XmlInputError::Encoding(_))
        ));
        assert!(matches!(parse(&[0x3C, 0, 0, 0, 0x61, 0, 0, 0]), Err(XmlInputError::Encoding(_))));
        let lie = utf16le("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>", true);
        assert!(matches!(parse(&lie), Err(XmlInputError::Encoding(_))));
        assert_eq!(decode_with(b"<a>\xd1</a>", true).unwrap().text, "<a>Ñ</a>");
    }

    #[test]
    fn dtds_depth_and_size_are_capped() {
        assert_eq!(parse(b"<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>").err(), Some(XmlInputError::Dtd));
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()).err(), Some(XmlInputError::TooDeep(MAX_DEPTH)));
        let fine = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(fine.as_bytes()).is_ok());
        assert_eq!(parse(&vec![b' '; MAX_BYTES + 1]).err(), Some(XmlInputError::TooLarge(MAX_BYTES)));
        assert_eq!(parse(b"<a><b></a>").err(), Some(XmlInputError::Malformed));
    }
}
