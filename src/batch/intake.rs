//! Reading an uploaded batch: a JSON array of items, the batch CSV, or a ZIP of JSON files, each
//! read as a stream from the spooled upload so memory holds one item at a time. Structural errors
//! (the file cannot be read as its format) name their line or file and refuse the whole upload;
//! an item that reads but is not a valid document is reported on its own.

use std::io::{BufReader, Read, Seek};

use serde::de::{SeqAccess, Visitor};
use serde_json::Value;

use super::csv::{CsvDocuments, Encoding};
use crate::domain::tax::TaxTable;
use crate::domain::{DocumentInput, Rut};
use crate::error::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv(Encoding),
    Zip,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv(_) => "csv",
            Format::Zip => "zip",
        }
    }
}

/// One item as read, before it is checked.
#[derive(Debug, Clone)]
pub struct RawItem {
    pub company: String,
    pub reference: Option<String>,
    /// `line 12`, `item 3`, `enero/f1.json`.
    pub source: String,
    /// The document JSON, or why the item does not have one.
    pub document: Result<Value, String>,
}

/// One item of a JSON batch may not be larger than this (a 1 000-line boleta with the longest
/// texts the schema allows fits well inside); memory holds one item at a time, so this bounds it.
pub const MAX_ITEM_BYTES: u64 = 4 << 20;

/// Structural errors stop being collected after this many: the file is refused anyway.
pub const MAX_ERRORS: usize = 50;
/// A JSON file inside a ZIP may not expand past this (a ZIP bomb stops here).
const MAX_ZIP_ENTRY: u64 = 2 << 20;
const MAX_ZIP_ENTRIES: usize = 200_000;
/// Nor may the whole ZIP expand past this.
const MAX_ZIP_TOTAL: u64 = 1 << 30;

fn structural(source: impl Into<String>, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError::new(source, code, message)
}

/// `{"company": …, "reference": …, "document": {…}}` → item.
fn item_of(v: Value, source: String) -> RawItem {
    let Value::Object(mut m) = v else {
        return RawItem {
            company: String::new(),
            reference: None,
            source,
            document: Err("an item must be an object with company and document".into()),
        };
    };
    let company = m.get("company").and_then(Value::as_str).unwrap_or_default().to_string();
    let reference = m.get("reference").and_then(|r| match r {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let document = match m.remove("document") {
        _ if company.is_empty() => Err("company (the issuer's RUT) is missing".into()),
        Some(d @ Value::Object(_)) => Ok(d),
        _ => Err("document is missing or not an object".into()),
    };
    RawItem { company, reference, source, document }
}

struct EachItem<'a> {
    each: &'a mut dyn FnMut(RawItem),
    prefix: &'a str,
    /// Bytes read since the last item ended (shared with the [`Capped`] reader).
    since: std::rc::Rc<std::cell::Cell<u64>>,
}

/// Counts what the JSON parser reads and fails the read once one item runs past
/// [`MAX_ITEM_BYTES`], before the parser builds it in memory.
struct Capped<R> {
    inner: R,
    since: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since.get() > MAX_ITEM_BYTES {
            return Err(std::io::Error::other(format!("an item is larger than {MAX_ITEM_BYTES} bytes")));
        }
        let n = self.inner.read(buf)?;
        self.since.set(self.since.get() + n as u64);
        Ok(n)
    }
}

impl<'de> Visitor<'de> for EachItem<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while let Some(v) = seq.next_element::<Value>()? {
            (self.each)(item_of(v, format!("{}item {i}", self.prefix)));
            self.since.set(0);
            i += 1;
        }
        Ok(())
    }
}

/// Streams a JSON array; a syntax error names its line and column.
fn json_array(input: impl Read, prefix: &str, each: &mut dyn FnMut(RawItem)) -> Result<(), FieldError> {
    use serde::Deserializer as _;
    let since = std::rc::Rc::new(std::cell::Cell::new(0));
    // Unbuffered under the cap: the count is of what the parser has asked for.
    let capped = Capped { inner: BufReader::new(input), since: since.clone() };
    let mut de = serde_json::Deserializer::from_reader(capped);
    let at = |e: &serde_json::Error| format!("{prefix}line {}, column {}", e.line(), e.column());
    de.deserialize_seq(EachItem { each, prefix, since }).map_err(|e| {
        let code = if e.is_io() { "too-large" } else { "json" };
        structural(at(&e), code, e.to_string())
    })?;
    de.end().map_err(|e| structural(at(&e), "json", e.to_string()))
}

fn zip(input: impl Read + Seek, each: &mut dyn FnMut(RawItem), errors: &mut Vec<FieldError>) {
    let mut archive = match zip::ZipArchive::new(input) {
        Ok(a) => a,
        Err(e) => return errors.push(structural("upload", "zip", format!("not a readable ZIP file: {e}"))),
    };
    if archive.len() > MAX_ZIP_ENTRIES {
        return errors.push(structural("upload", "zip", format!("more than {MAX_ZIP_ENTRIES} files")));
    }
    let mut expanded = 0u64;
    for i in 0..archive.len() {
        if errors.len() >= MAX_ERRORS {
            return;
        }
        if expanded > MAX_ZIP_TOTAL {
            return errors.push(structural("upload", "too-large", format!("expands past {MAX_ZIP_TOTAL} bytes")));
        }
        let mut file = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                errors.push(structural(format!("entry {i}"), "zip", e.to_string()));
                continue;
            }
        };
        let name = file.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("entry {i}"));
        if file.is_dir() || name.starts_with("__MACOSX/") {
            continue;
        }
        if !name.to_ascii_lowercase().ends_with(".json") {
            errors.push(structural(name, "zip", "only .json files may be in the ZIP"));
            continue;
        }
        let mut text = Vec::new();
        if let Err(e) = (&mut file).take(MAX_ZIP_ENTRY + 1).read_to_end(&mut text) {
            errors.push(structural(name, "zip", e.to_string()));
            continue;
        }
        expanded += text.len() as u64;
        if text.len() as u64 > MAX_ZIP_ENTRY {
            errors.push(structural(name, "too-large", format!("expands past {MAX_ZIP_ENTRY} bytes")));
            continue;
        }
        // A file holds one item or an array of them.
        let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first == Some(b'[') {
            if let Err(e) = json_array(text.as_slice(), &format!("{name} "), each) {
                errors.push(e);
            }
        } else {
            match serde_json::from_slice::<Value>(&text) {
                Ok(v) => each(item_of(v, name)),
                Err(e) => errors.push(structural(
                    format!("{name} line {}, column {}", e.line(), e.column()),
                    "json",
                    e.to_string(),
                )),
            }
        }
    }
}

/// Reads every item of the upload, calling `each` in order. Returns the structural errors (at most
/// [`MAX_ERRORS`]); when there are any, the items already passed to `each` must be discarded.
pub fn scan(input: impl Read + Seek, format: Format, mut each: impl FnMut(RawItem)) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match format {
        Format::Json => {
            if let Err(e) = json_array(input, "", &mut each) {
                errors.push(e);
            }
        }
        Format::Zip => zip(input, &mut each, &mut errors),
        Format::Csv(enc) => match CsvDocuments::new(BufReader::new(input), enc) {
            Err(e) => errors.push(structural(format!("line {}", e.line), "csv", e.message)),
            Ok(docs) => {
                for d in docs {
                    match d {
                        Ok(d) => each(RawItem {
                            company: d.company,
                            reference: d.reference,
                            source: format!("line {}", d.line),
                            document: Ok(d.document),
                        }),
                        Err(e) => {
                            errors.push(structural(format!("line {}", e.line), "csv", e.message));
                            if errors.len() >= MAX_ERRORS {
                                break;
                            }
                        }
                    }
                }
            }
        },
    }
    errors
}

/// A checked item: its type and the document JSON to queue, or why it cannot be issued. The
/// rules and taxes run here, so an item that would fail them fails at intake, not in the queue.
/// `uf`: the UF's value in pesos, for the boletas above 135 UF (as issuance applies it).
pub fn check(
    item: &RawItem,
    taxes: &TaxTable,
    uf: Option<rust_decimal::Decimal>,
    today: chrono::NaiveDate,
) -> Result<(i32, String), String> {
    let doc = item.document.as_ref().map_err(Clone::clone)?;
    let emisor: Rut = item.company.parse().map_err(|e| format!("company {:?}: {e}", item.company))?;
    let text = doc.to_string();
    let input = DocumentInput::from_json(text.as_bytes()).map_err(|e| describe(&e))?;
    let (prepared, _) = crate::engine::quote_at_uf(&input, emisor, taxes, today, uf).map_err(|e| describe(&e))?;
    Ok((prepared.tipo.code() as i32, text))
}

/// An error as one line: its message and each field path.
pub fn describe(e: &crate::DteError) -> String {
    match e {
        crate::DteError::Invalid(errs) => {
            errs.iter().map(|f| format!("{}: {}", f.path, f.message)).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn items(bytes: &[u8], format: Format) -> (Vec<RawItem>, Vec<FieldError>) {
        let mut out = Vec::new();
        let errors = scan(Cursor::new(bytes.to_vec()), format, |i| out.push(i));
        (out, errors)
    }

    #[test]
    fn json_arrays_stream_items_and_name_syntax_errors() {
        let (got, errors) = items(
            br#"[{"company":"76192083-9","reference":"A-1","document":{"x":1}},
                 {"company":"76192083-9"}, 5]"#,
            Format::Json,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].reference.as_deref(), Some("A-1"));
        assert!(got[0].document.is_ok());
        assert_eq!(got[1].source, "item 1");
        assert!(got[1].document.is_err() && got[2].document.is_err());

        let (_, errors) = items(b"[{\"company\":\"1-9\",\n\"document\": {]", Format::Json);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].path.starts_with("line 2"), "{errors:?}");
        let (_, errors) = items(b"{\"not\": \"an array\"}", Format::Json);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn zips_of_json_files() {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("enero/f1.json", o).unwrap();
            z.write_all(br#"{"company":"76192083-9","document":{"a":1}}"#).unwrap();
            z.add_directory("vacia/", o).unwrap();
            z.start_file("enero/lote.json", o).unwrap();
            z.write_all(br#"[{"company":"76192083-9","document":{}},{"company":"76192083-9","document":{}}]"#).unwrap();
            z.start_file("notas.txt", o).unwrap();
            z.write_all(b"hola").unwrap();
            z.start_file("rota.json", o).unwrap();
            z.write_all(b"{\n\"company\": ").unwrap();
            // 3 MB of spaces deflate to a few KB: refused by what it expands to.
            z.start_file("bomba.json", o.compression_method(zip::CompressionMethod::Deflated)).unwrap();
            z.write_all(&vec![b' '; 3 << 20]).unwrap();
            z.finish().unwrap();
        }
        let (got, errors) = items(buf.get_ref(), Format::Zip);
        let sources: Vec<&str> = got.iter().map(|i| i.source.as_str()).collect();
        assert_eq!(sources, ["enero/f1.json", "enero/lote.json item 0", "enero/lote.json item 1"]);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths.len(), 3, "{errors:?}");
        assert_eq!(paths[0], "notas.txt");
        assert!(paths[1].starts_with("rota.json line 2"), "{paths:?}");
        assert_eq!((paths[2], errors[2].code), ("bomba.json", "too-large"));

        let (_, errors) = items(b"PK not a zip", Format::Zip);
        assert_eq!(errors[0].path, "upload");
    }
}
