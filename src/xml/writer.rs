//! A quick-xml writer that emits XML already in Canonical XML 1.0 form: no self-closing tags, no
//! insignificant whitespace, C14N escaping, attributes in the order the caller gives (callers give
//! the canonical order). Because the output is its own canonical form, a document's digest can be
//! taken from the rendered bytes without parsing them again.

use std::borrow::Cow;
use std::io::Write;

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// Text content escaped as C14N writes it (`&`, `<`, `>`, CR).
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '\r']) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// Attribute values escaped as C14N writes them.
pub fn escape_attr(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '"', '\t', '\n', '\r']) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#x9;"),
            '\n' => o.push_str("&#xA;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

pub struct XmlOut {
    w: Writer<Vec<u8>>,
}

impl Default for XmlOut {
    fn default() -> Self {
        XmlOut::with_capacity(4096)
    }
}

impl XmlOut {
    pub fn with_capacity(n: usize) -> Self {
        XmlOut { w: Writer::new(Vec::with_capacity(n)) }
    }

    fn emit(&mut self, e: Event<'_>) {
        // Writing into a Vec cannot fail.
        let _ = self.w.write_event(e);
    }

    pub fn start(&mut self, name: &str) {
        self.emit(Event::Start(BytesStart::new(name)));
    }

    /// `<name a="v" …>`; `attrs` must already be in canonical order.
    pub fn start_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut content = String::with_capacity(name.len() + 32);
        content.push_str(name);
        for (k, v) in attrs {
            content.push(' ');
            content.push_str(k);
            content.push_str("=\"");
            content.push_str(&escape_attr(v));
            content.push('"');
        }
        self.emit(Event::Start(BytesStart::from_content(content, name.len())));
    }

    pub fn end(&mut self, name: &str) {
        self.emit(Event::End(BytesEnd::new(name)));
    }

    pub fn text(&mut self, s: &str) {
        self.emit(Event::Text(BytesText::from_escaped(escape_text(s))));
    }

    pub fn leaf(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end(name);
    }

    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    pub fn leaf_display(&mut self, name: &str, v: impl std::fmt::Display) {
        self.leaf(name, &v.to_string());
    }

    pub fn leaf_display_opt<T: std::fmt::Display>(&mut self, name: &str, v: Option<T>) {
        if let Some(v) = v {
            self.leaf_display(name, v);
        }
    }

    /// Inserts markup that is already canonical (a stamped TED, a signature).
    pub fn raw(&mut self, s: &str) {
        let _ = self.w.get_mut().write_all(s.as_bytes());
    }

    pub fn into_string(self) -> String {
        // Only &str content was ever written, so the bytes are UTF-8.
        String::from_utf8(self.w.into_inner()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_shapes() {
        let mut o = XmlOut::default();
        o.start_attrs("A", &[("ID", "x\"1")]);
        o.leaf("B", "a & b < c > d 'e' \"f\"");
        o.leaf("C", "");
        o.end("A");
        assert_eq!(o.into_string(), r#"<A ID="x&quot;1"><B>a &amp; b &lt; c &gt; d 'e' "f"</B><C></C></A>"#);
    }
}
