//! ISO-8859-1, the SII's encoding. Every code point below U+0100 is the byte of the same value
//! (unlike `windows-1252`, which encoding_rs substitutes for the ISO-8859-1 label).

/// UTF-8 text to ISO-8859-1 bytes; `Err` carries the first character that has no Latin-1 byte.
pub fn encode(s: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let v = c as u32;
        if v > 0xFF {
            return Err(c);
        }
        out.push(v as u8);
    }
    Ok(out)
}

/// ISO-8859-1 bytes to text: never fails.
pub fn decode(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Windows-1252 bytes to text (what some issuers declare): 0x80–0x9F map to typographic characters.
pub fn decode_cp1252(b: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    b.iter().map(|&c| if (0x80..0xA0).contains(&c) { HIGH[(c - 0x80) as usize] } else { c as char }).collect()
}

/// The encoding named in an XML declaration, lowercased (`None` when there is no declaration or
/// it names none).
pub fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(200)];
    let head = decode(head);
    // Some CAF files carry blank lines before the declaration.
    let decl = head.strip_prefix('\u{FEFF}').unwrap_or(&head).trim_start();
    if !decl.starts_with("<?xml") {
        return None;
    }
    let end = decl.find("?>")?;
    let decl = &decl[..end];
    let i = decl.find("encoding")?;
    let rest = decl[i + 8..].trim_start().strip_prefix('=')?.trim_start();
    let q = rest.chars().next().filter(|q| matches!(q, '"' | '\''))?;
    let rest = &rest[q.len_utf8()..];
    let j = rest.find(q)?;
    Some(rest[..j].to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusal() {
        let s = "Compañía Ñandú ÿ";
        assert_eq!(decode(&encode(s).unwrap()), s);
        assert_eq!(encode("a€"), Err('€'));
        assert_eq!(encode("🙂"), Err('🙂'));
    }

    #[test]
    fn declarations() {
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>").as_deref(),
            Some("iso-8859-1")
        );
        assert_eq!(
            declared_encoding(b"<?xml version='1.0' encoding='windows-1252'?>").as_deref(),
            Some("windows-1252")
        );
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a/>"), None);
        assert_eq!(declared_encoding(b"<a/>"), None);
        // Not quoted, or quoted with a character of two bytes: no declared encoding, no panic.
        assert_eq!(declared_encoding("<?xml version=\"1.0\" encoding=Ã…?><a/>".as_bytes()), None);
        assert_eq!(declared_encoding(b"<?xml version='1.0' encoding=\xc3\x83x\xc3\x83?><a/>"), None);
        assert_eq!(
            declared_encoding(b"\r\n <?xml version='1.0' encoding='ISO-8859-1'?><a/>").as_deref(),
            Some("iso-8859-1")
        );
    }
}
