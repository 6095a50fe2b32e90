//! The batch CSV: one row per Detalle line; rows with the same `Documento` key, one after another,
//! make one document. Headers are the SII's element names. UTF-8 (default) or ISO-8859-1. Read as a
//! stream: memory holds one document at a time, and every error names its line.
//!
//! Document columns (taken from the document's first row): `Documento` (key), `RUTEmisor`,
//! `TipoDTE`, and optionally `FchEmis`, `RUTRecep`, `RznSocRecep`, `GiroRecep`, `DirRecep`,
//! `CmnaRecep`, `CiudadRecep`, `CorreoRecep`, `Contacto`, `IndTraslado`, `TipoDespacho`,
//! `FmaPago`, `FchVenc`, `IndServicio`, `TpoDocRef`, `FolioRef`, `FchRef`, `CodRef`, `RazonRef`,
//! `Referencia` (a client reference kept with the item). Exports add `FmaPagExp`; `NumId`,
//! `Nacionalidad` and `IdAdicRecep` (the foreign receptor); `TpoMoneda` (the operation
//! currency); `OtraMoneda` and `TpoCambio` (the other currency and its rate); and the
//! `Transporte/Aduana` columns under their SII names (`CodModVenta` … `CodPaisDestin`, one
//! package kind: `CodTpoBultos`, `CantBultos`, `Marcas`, `IdContainer`, `Sello`, `EmisorSello`);
//! codes may be given by name. Line columns: `NmbItem`, `PrcItem`, and optionally `DscItem`,
//! `QtyItem`, `UnmdItem`, `DescuentoPct`, `RecargoPct`,
//! `IndExe`, `CodImpAdic`.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Latin1,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub line: u64,
    pub message: String,
}

/// One document of the batch, in the engine's JSON format.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchDocument {
    pub key: String,
    pub company: String,
    /// The client's own reference, when given.
    pub reference: Option<String>,
    /// The line of its first row.
    pub line: u64,
    pub document: Value,
    /// Bytes of its rows so far (for the per-document cap).
    pub bytes: usize,
}

/// Detalle lines a document may have (`Detalle maxOccurs` in the SII's schemas).
const MAX_LINES_DTE: usize = 60;
const MAX_LINES_BOLETA: usize = 1000;
/// Bytes of rows one document may take (memory holds one document at a time).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

const REQUIRED: [&str; 5] = ["Documento", "RUTEmisor", "TipoDTE", "NmbItem", "PrcItem"];
const ID_DOC: [&str; 8] =
    ["FchEmis", "IndTraslado", "TipoDespacho", "FmaPago", "FmaPagExp", "FchVenc", "IndServicio", "TipoDTE"];
const RECEPTOR: [&str; 8] =
    ["RUTRecep", "RznSocRecep", "GiroRecep", "DirRecep", "CmnaRecep", "CiudadRecep", "CorreoRecep", "Contacto"];
const LINE: [&str; 9] =
    ["NmbItem", "DscItem", "QtyItem", "UnmdItem", "PrcItem", "DescuentoPct", "RecargoPct", "IndExe", "CodImpAdic"];
const REFERENCIA: [&str; 5] = ["TpoDocRef", "FolioRef", "FchRef", "CodRef", "RazonRef"];
const EXTRANJERO: [&str; 3] = ["NumId", "Nacionalidad", "IdAdicRecep"];
/// An export's currencies: `TpoMoneda` goes to Totales, `OtraMoneda` and `TpoCambio` to OtraMoneda.
const MONEDA: [&str; 3] = ["TpoMoneda", "OtraMoneda", "TpoCambio"];
const ADUANA: [&str; 26] = [
    "CodModVenta",
    "CodClauVenta",
    "TotClauVenta",
    "CodViaTransp",
    "NombreTransp",
    "RUTCiaTransp",
    "NomCiaTransp",
    "IdAdicTransp",
    "Booking",
    "Operador",
    "CodPtoEmbarque",
    "IdAdicPtoEmb",
    "CodPtoDesemb",
    "IdAdicPtoDesemb",
    "Tara",
    "CodUnidMedTara",
    "PesoBruto",
    "CodUnidPesoBruto",
    "PesoNeto",
    "CodUnidPesoNeto",
    "TotItems",
    "TotBultos",
    "MntFlete",
    "MntSeguro",
    "CodPaisRecep",
    "CodPaisDestin",
];
const TIPO_BULTOS: [&str; 6] = ["CodTpoBultos", "CantBultos", "Marcas", "IdContainer", "Sello", "EmisorSello"];
/// Columns whose values are numbers in the JSON.
const NUMERIC: [&str; 23] = [
    "TotClauVenta",
    "Tara",
    "PesoBruto",
    "PesoNeto",
    "TotItems",
    "TotBultos",
    "MntFlete",
    "MntSeguro",
    "CantBultos",
    "TpoCambio",
    "TipoDTE",
    "IndTraslado",
    "TipoDespacho",
    "FmaPago",
    "IndServicio",
    "QtyItem",
    "PrcItem",
    "DescuentoPct",
    "RecargoPct",
    "IndExe",
    "CodImpAdic",
    "CodRef",
    "TpoDocRef",
];

pub struct CsvDocuments<R: Read> {
    reader: csv::Reader<R>,
    encoding: Encoding,
    columns: Vec<String>,
    current: Option<(BatchDocument, Vec<Value>)>,
    seen: HashSet<String>,
    record: csv::ByteRecord,
    done: bool,
}

fn decode(b: &[u8], enc: Encoding, line: u64, column: &str) -> Result<String, CsvError> {
    match enc {
        Encoding::Latin1 => Ok(b.iter().map(|&c| c as char).collect()),
        Encoding::Utf8 => String::from_utf8(b.to_vec()).map_err(|_| CsvError {
            line,
            message: format!(
                "column {column} is not valid UTF-8 (send the file as ISO-8859-1 if that is its encoding)"
            ),
        }),
    }
}

fn value(column: &str, raw: &str, line: u64) -> Result<Value, CsvError> {
    if !NUMERIC.contains(&column) {
        return Ok(Value::String(raw.to_string()));
    }
    // Exact decimals: parsed as JSON numbers with arbitrary precision, never through f64.
    let normalised = raw.trim().replace(',', ".");
    serde_json::from_str::<serde_json::Number>(&normalised)
        .map(Value::Number)
        .map_err(|_| CsvError { line, message: format!("{column} {raw:?} is not a number") })
}

/// The non-empty columns `cols` of a row, under their names, numbers as numbers.
fn columns(row: &HashMap<String, String>, cols: &[&str], line: u64) -> Result<Map<String, Value>, CsvError> {
    let mut m = Map::new();
    for c in cols {
        if let Some(v) = row.get(*c) {
            m.insert((*c).to_string(), value(c, v, line)?);
        }
    }
    Ok(m)
}

impl<R: Read> CsvDocuments<R> {
    /// Reads the header; a missing required column is an error on line 1.
    pub fn new(input: R, encoding: Encoding) -> Result<Self, CsvError> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(input);
        let header = reader.byte_headers().map_err(|e| CsvError { line: 1, message: e.to_string() })?.clone();
        let columns: Vec<String> = header
            .iter()
            .map(|h| decode(h, encoding, 1, "header").map(|s| s.trim_start_matches('\u{feff}').to_string()))
            .collect::<Result<_, _>>()?;
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|r| !columns.iter().any(|c| c == r)).collect();
        if !missing.is_empty() {
            return Err(CsvError { line: 1, message: format!("missing columns: {}", missing.join(", ")) });
        }
        let known: HashSet<&str> = ID_DOC
            .iter()
            .chain(&RECEPTOR)
            .chain(&LINE)
            .chain(&REFERENCIA)
            .chain(&EXTRANJERO)
            .chain(&MONEDA)
            .chain(&ADUANA)
            .chain(&TIPO_BULTOS)
            .chain(&["Documento", "RUTEmisor", "Referencia"])
            .copied()
            .collect();
        if let Some(unknown) = columns.iter().find(|c| !known.contains(c.as_str())) {
            return Err(CsvError { line: 1, message: format!("unknown column {unknown:?}") });
        }
        Ok(CsvDocuments {
            reader,
            encoding,
            columns,
            current: None,
            seen: HashSet::new(),
            record: csv::ByteRecord::new(),
            done: false,
        })
    }

    fn row(&self, line: u64) -> Result<HashMap<String, String>, CsvError> {
        let mut m = HashMap::new();
        for (c, v) in self.columns.iter().zip(self.record.iter()) {
            let v = decode(v, self.encoding, line, c)?;
            if !v.is_empty() {
                m.insert(c.clone(), v);
            }
        }
        Ok(m)
    }

    fn start(row: &HashMap<String, String>, line: u64) -> Result<BatchDocument, CsvError> {
        let get = |k: &str| row.get(k).cloned();
        let key = get("Documento").ok_or(CsvError { line, message: "Documento is empty".into() })?;
        let company = get("RUTEmisor").ok_or(CsvError { line, message: "RUTEmisor is empty".into() })?;
        let id_doc = columns(row, &ID_DOC, line)?;
        if !id_doc.contains_key("TipoDTE") {
            return Err(CsvError { line, message: "TipoDTE is empty".into() });
        }
        let mut encabezado = Map::new();
        encabezado.insert("IdDoc".into(), Value::Object(id_doc));
        let mut receptor = columns(row, &RECEPTOR, line)?;
        let extranjero = columns(row, &EXTRANJERO, line)?;
        if !extranjero.is_empty() {
            receptor.insert("Extranjero".into(), Value::Object(extranjero));
        }
        if !receptor.is_empty() {
            encabezado.insert("Receptor".into(), Value::Object(receptor));
        }
        let mut aduana = columns(row, &ADUANA, line)?;
        let bultos = columns(row, &TIPO_BULTOS, line)?;
        if !bultos.is_empty() {
            aduana.insert("TipoBultos".into(), Value::Array(vec![Value::Object(bultos)]));
        }
        if !aduana.is_empty() {
            encabezado.insert("Transporte".into(), json!({ "Aduana": aduana }));
        }
        if let Some(m) = row.get("TpoMoneda") {
            encabezado.insert("Totales".into(), json!({ "TpoMoneda": m }));
        }
        if let Some(m) = row.get("OtraMoneda") {
            let mut o = Map::new();
            o.insert("TpoMoneda".into(), Value::String(m.clone()));
            if let Some(r) = row.get("TpoCambio") {
                o.insert("TpoCambio".into(), value("TpoCambio", r, line)?);
            }
            encabezado.insert("OtraMoneda".into(), Value::Object(o));
        }
        let mut document = json!({ "Encabezado": encabezado, "Detalle": [] });
        if row.contains_key("TpoDocRef") || row.contains_key("FolioRef") {
            document["Referencia"] = Value::Array(vec![Value::Object(columns(row, &REFERENCIA, line)?)]);
        }
        Ok(BatchDocument { key, company, reference: get("Referencia"), line, document, bytes: 0 })
    }

    fn line_of(row: &HashMap<String, String>, line: u64) -> Result<Value, CsvError> {
        let d = columns(row, &LINE, line)?;
        if !d.contains_key("NmbItem") {
            return Err(CsvError { line, message: "NmbItem is empty".into() });
        }
        Ok(Value::Object(d))
    }

    fn finish(&mut self) -> Option<BatchDocument> {
        self.current.take().map(|(mut doc, lines)| {
            doc.document["Detalle"] = Value::Array(lines);
            doc
        })
    }
}

fn max_lines(document: &Value) -> usize {
    match document["Encabezado"]["IdDoc"]["TipoDTE"].as_u64() {
        Some(39 | 41) => MAX_LINES_BOLETA,
        _ => MAX_LINES_DTE,
    }
}

impl<R: Read> Iterator for CsvDocuments<R> {
    type Item = Result<BatchDocument, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return self.finish().map(Ok);
            }
            match self.reader.read_byte_record(&mut self.record) {
                Err(e) => {
                    self.done = true;
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    return Some(Err(CsvError { line, message: e.to_string() }));
                }
                Ok(false) => {
                    self.done = true;
                    continue;
                }
                Ok(true) => {}
            }
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
            let row = match self.row(line) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            let key = row.get("Documento").cloned().unwrap_or_default();
            let same = self.current.as_ref().is_some_and(|(d, _)| d.key == key);
            if same {
                let bytes = self.record.as_slice().len();
                let Some((doc, lines)) = self.current.as_mut() else { continue };
                doc.bytes += bytes;
                let max = max_lines(&doc.document);
                if lines.len() >= max {
                    self.done = true;
                    self.current = None;
                    return Some(Err(CsvError {
                        line,
                        message: format!(
                            "document {key:?} has more than {max} Detalle lines, the most its type allows"
                        ),
                    }));
                }
                if doc.bytes > MAX_DOCUMENT_BYTES {
                    self.done = true;
                    self.current = None;
                    return Some(Err(CsvError {
                        line,
                        message: format!("document {key:?} takes more than {MAX_DOCUMENT_BYTES} bytes of rows"),
                    }));
                }
                match Self::line_of(&row, line) {
                    Ok(l) => lines.push(l),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if !self.seen.insert(key.clone()) {
                return Some(Err(CsvError {
                    line,
                    message: format!("document {key:?} appears again after other documents: keep its rows together"),
                }));
            }
            let bytes = self.record.as_slice().len();
            if bytes > MAX_DOCUMENT_BYTES {
                self.done = true;
                return Some(Err(CsvError {
                    line,
                    message: format!("a row takes more than {MAX_DOCUMENT_BYTES} bytes"),
                }));
            }
            let started = Self::start(&row, line)
                .and_then(|d| Self::line_of(&row, line).map(|l| (BatchDocument { bytes, ..d }, vec![l])));
            let previous = self.finish();
            match started {
                Ok(s) => self.current = Some(s),
                Err(e) => return Some(Err(e)),
            }
            if let Some(p) = previous {
                return Some(Ok(p));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &[u8], enc: Encoding) -> Vec<Result<BatchDocument, CsvError>> {
        CsvDocuments::new(text, enc).unwrap().collect()
    }

    #[test]
    fn groups_rows_into_documents() {
        let csv = "Documento,RUTEmisor,TipoDTE,RUTRecep,RznSocRecep,NmbItem,QtyItem,PrcItem,Referencia\n\
                   A-1,76192083-9,33,76555835-2,\"Ñandú, Cía.\",Servicio,1,1000,OC-77\n\
                   A-1,76192083-9,33,76555835-2,\"Ñandú, Cía.\",Papel,\"12,5\",3990.5,OC-77\n\
                   B-1,76555835-2,39,,,Café,2,1990,\n";
        let out: Vec<BatchDocument> = docs(csv.as_bytes(), Encoding::Utf8).into_iter().map(Result::unwrap).collect();
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].key.as_str(), out[0].company.as_str(), out[0].line, out[0].reference.as_deref()),
            ("A-1", "76192083-9", 2, Some("OC-77"))
        );
        assert_eq!(out[0].document["Encabezado"]["Receptor"]["RznSocRecep"], "Ñandú, Cía.");
        assert_eq!(out[0].document["Detalle"].as_array().unwrap().len(), 2);
        assert_eq!(out[0].document["Detalle"][1]["QtyItem"].to_string(), "12.5");
        assert_eq!(out[0].document["Detalle"][1]["PrcItem"].to_string(), "3990.5");
        assert_eq!((out[1].line, out[1].document["Encabezado"]["IdDoc"]["TipoDTE"].as_u64()), (4, Some(39)));
        // What comes out is the engine's input format.
        for d in &out {
            dte_gateway_input(&d.document);
        }
    }

    fn dte_gateway_input(v: &Value) {
        crate::domain::DocumentInput::from_json(v.to_string().as_bytes()).unwrap();
    }

    /// An export in the CSV: the Aduana columns by name, its currencies, and what the engine
    /// makes of it (set de exportación 1, case 1: 377 × 128 EUR; 49 294 952 pesos at 1 021,53).
    #[test]
    fn an_export_row_carries_its_currency_and_customs_columns() {
        let csv = "Documento,RUTEmisor,TipoDTE,FchEmis,FmaPagExp,RUTRecep,RznSocRecep,Nacionalidad,TpoMoneda,OtraMoneda,TpoCambio,\
CodModVenta,CodClauVenta,CodViaTransp,CodPtoEmbarque,CodPtoDesemb,TotBultos,CodTpoBultos,CantBultos,MntFlete,CodPaisDestin,NmbItem,QtyItem,UnmdItem,PrcItem\n\
                   E-1,76192083-9,110,2026-11-20,COBRANZA,55555555-5,Scrap Metals,AUSTRALIA,EURO,PESO CL,\"1021,53\",\
BAJO CONDICION,CIF,CARRETERO/TERRESTRE,CALDERA,SIDNEY,38,PALLETS,38,460.59,406,CHATARRA DE ALUMINIO,377,KN,128\n";
        let out: Vec<BatchDocument> = docs(csv.as_bytes(), Encoding::Utf8).into_iter().map(Result::unwrap).collect();
        let d = &out[0].document;
        assert_eq!(d["Encabezado"]["Transporte"]["Aduana"]["TipoBultos"][0]["CantBultos"], 38);
        assert_eq!(d["Encabezado"]["OtraMoneda"]["TpoCambio"].to_string(), "1021.53");
        let input = crate::domain::DocumentInput::from_json(d.to_string().as_bytes()).unwrap();
        let rut = "76192083-9".parse().unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (p, c) = crate::engine::quote(&input, rut, &crate::domain::tax::TaxTable::default(), today).unwrap();
        let aduana = p.doc.encabezado.transporte.and_then(|t| t.aduana).unwrap();
        assert_eq!((aduana.cod_clau_venta.as_deref(), aduana.cod_pto_desemb.as_deref()), (Some("1"), Some("811")));
        assert_eq!(c.totals.mnt_total, rust_decimal::Decimal::from(48256));
        assert_eq!(c.totals.otra_moneda.map(|o| o.mnt_total), Some(rust_decimal::Decimal::from(49294952)));
    }

    #[test]
    fn latin1_files_and_bad_input_with_line_numbers() {
        let latin1 = b"Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\nX,76192083-9,33,Cami\xf3n,100\n";
        let out = docs(latin1, Encoding::Latin1);
        assert_eq!(out[0].as_ref().unwrap().document["Detalle"][0]["NmbItem"], "Camión");
        let err = docs(latin1, Encoding::Utf8);
        assert_eq!(err[0].as_ref().unwrap_err().line, 2);
        assert!(err[0].as_ref().unwrap_err().message.contains("UTF-8"));

        let missing = CsvDocuments::new(&b"Documento,RUTEmisor,NmbItem\n"[..], Encoding::Utf8).err().unwrap();
        assert_eq!((missing.line, missing.message.as_str()), (1, "missing columns: TipoDTE, PrcItem"));
        let bad_number = docs(
            b"Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\nA,76192083-9,33,x,10\nA,76192083-9,33,y,diez\n",
            Encoding::Utf8,
        );
        let e = bad_number.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("PrcItem \"diez\" is not a number"));
        let scattered =
            docs(b"Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\nA,r,33,x,1\nB,r,33,y,1\nA,r,33,z,1\n", Encoding::Utf8);
        assert!(scattered
            .iter()
            .any(|r| r.as_ref().err().is_some_and(|e| e.line == 4 && e.message.contains("appears again"))));
        let ragged = docs(b"Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\nA,r,33,x\n", Encoding::Utf8);
        assert!(ragged[0].as_ref().is_err_and(|e| e.line == 2));
    }

    #[test]
    fn streams_in_bounded_memory() {
        // A reader that produces 100 000 rows without ever holding them.
        struct Rows {
            n: u64,
            buf: Vec<u8>,
            pos: usize,
        }
        impl Read for Rows {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.pos == self.buf.len() {
                    if self.n == 100_000 {
                        return Ok(0);
                    }
                    self.n += 1;
                    self.buf = format!("D{},76192083-9,33,Item {},1,{}\n", self.n / 2, self.n, self.n).into_bytes();
                    self.pos = 0;
                }
                let k = out.len().min(self.buf.len() - self.pos);
                out[..k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
                self.pos += k;
                Ok(k)
            }
        }
        let header = b"Documento,RUTEmisor,TipoDTE,NmbItem,QtyItem,PrcItem\n".to_vec();
        let input = std::io::Cursor::new(header).chain(Rows { n: 0, buf: vec![], pos: 0 });
        let mut count = 0;
        for d in CsvDocuments::new(input, Encoding::Utf8).unwrap() {
            d.unwrap();
            count += 1;
        }
        assert_eq!(count, 50_001);
    }

    #[test]
    fn a_document_is_capped_at_its_types_lines_with_the_line_of_the_first_excess() {
        let rows = |tipo: u16, n: usize| {
            let mut t = String::from("Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\n");
            for i in 0..n {
                t.push_str(&format!("D1,76192083-9,{tipo},Item {i},100\n"));
            }
            t
        };
        assert_eq!(docs(rows(33, 60).as_bytes(), Encoding::Utf8).len(), 1);
        let out = docs(rows(33, 61).as_bytes(), Encoding::Utf8);
        let e = out.iter().find_map(|d| d.as_ref().err()).expect("an error");
        // The header is line 1: the 61st row is line 62.
        assert_eq!(e.line, 62, "{e}");
        assert!(e.message.contains("more than 60 Detalle lines"), "{e}");
        assert!(docs(rows(39, 1000).as_bytes(), Encoding::Utf8).iter().all(|d| d.is_ok()));
        assert!(docs(rows(39, 1001).as_bytes(), Encoding::Utf8).iter().any(|d| d.is_err()));
        let long = format!(
            "Documento,RUTEmisor,TipoDTE,NmbItem,PrcItem\nD1,76192083-9,33,{},100\n",
            "x".repeat(MAX_DOCUMENT_BYTES + 1)
        );
        let out = docs(long.as_bytes(), Encoding::Utf8);
        assert!(out.iter().any(|d| d.as_ref().is_err_and(|e| e.line == 2 && e.message.contains("bytes"))), "{out:?}");
    }
}
