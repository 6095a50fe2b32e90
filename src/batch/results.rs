//! `results.zip`: every issued document's signed XML (`{RUTEmisor}/T{TipoDTE}F{Folio}.xml`) and
//! `report.csv` with one row per item. Written into an unlinked temporary file page by page, so a
//! batch of any size costs disk, not memory.

use std::io::{Seek, Write};

use zip::write::SimpleFileOptions;

use super::service::{BatchError, Batches, Caller};
use crate::store::batches::BatchItemRow;

const PAGE: i64 = 200;
const REPORT_HEADER: [&str; 14] = [
    "index",
    "reference",
    "company",
    "source",
    "TipoDTE",
    "Folio",
    "MntNeto",
    "MntExe",
    "IVA",
    "MntTotal",
    "state",
    "sii_state",
    "sii_estado",
    "error",
];

type Page = Vec<(BatchItemRow, Option<Vec<u8>>)>;

/// A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage
/// return before one) is prefixed with `'`, which shows the text as written (OWASP, "CSV
/// Injection"). References and error texts come from the batch's uploader.
fn spreadsheet_safe(s: String) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s,
    }
}

fn report_row(r: &BatchItemRow) -> [String; 14] {
    let totals: serde_json::Value = r.totals.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let amount = |k: &str| totals.get(k).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default();
    let opt = |v: Option<String>| spreadsheet_safe(v.unwrap_or_default());
    [
        r.index.to_string(),
        opt(r.reference.clone()),
        spreadsheet_safe(r.company.clone()),
        spreadsheet_safe(r.source.clone()),
        opt(r.tipo.map(|t| t.to_string())),
        opt(r.folio.map(|f| f.to_string())),
        amount("MntNeto"),
        amount("MntExe"),
        amount("IVA"),
        amount("MntTotal"),
        r.state.to_string(),
        opt(r.sii_state.clone()),
        opt(r.sii_estado.clone()),
        opt(r.error.clone()),
    ]
}

/// Each company's print options, when the archive carries PDFs.
type PrintOpts = std::collections::HashMap<String, std::sync::Arc<crate::print::Options>>;

fn write_zip(
    mut pages: tokio::sync::mpsc::Receiver<(Page, Option<std::sync::Arc<PrintOpts>>)>,
) -> Result<std::fs::File, Box<dyn std::error::Error + Send + Sync>> {
    let mut zip = zip::ZipWriter::new(tempfile::tempfile()?);
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut report = csv::Writer::from_writer(tempfile::tempfile()?);
    report.write_record(REPORT_HEADER)?;
    while let Some((page, print)) = pages.blocking_recv() {
        for (row, xml) in page {
            if let (Some(xml), Some(tipo), Some(folio)) = (xml, row.tipo, row.folio) {
                zip.start_file(format!("{}/T{tipo}F{folio}.xml", row.company), opts)?;
                zip.write_all(&xml)?;
                if let Some(o) = print.as_ref().and_then(|p| p.get(&row.company)) {
                    match crate::print::PrintDoc::from_xml(&xml, None).and_then(|d| crate::print::render(&d, o)) {
                        Ok(pdf) => {
                            // PDFs compress little; storing them saves the time.
                            let stored =
                                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
                            zip.start_file(format!("{}/T{tipo}F{folio}.pdf", row.company), stored)?;
                            zip.write_all(&pdf)?;
                        }
                        // One document that cannot be printed does not cost the archive.
                        Err(e) => {
                            tracing::warn!(company = %row.company, tipo, folio, error = %e, "no PDF in results.zip")
                        }
                    }
                }
            }
            report.write_record(report_row(&row))?;
        }
    }
    let mut report = report.into_inner().map_err(|e| e.to_string())?;
    report.rewind()?;
    zip.start_file("report.csv", opts)?;
    std::io::copy(&mut report, &mut zip)?;
    let mut file = zip.finish()?;
    file.rewind()?;
    Ok(file)
}

impl Batches {
    /// The results archive; with `pdf`, each document's letter PDF beside its XML.
    pub async fn results(&self, id: &str, caller: &Caller, pdf: bool) -> Result<std::fs::File, BatchError> {
        self.get(id, caller).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<(Page, Option<std::sync::Arc<PrintOpts>>)>(2);
        let writer = tokio::task::spawn_blocking(move || write_zip(rx));
        let mut after = -1;
        let mut print = PrintOpts::new();
        loop {
            let page = self.svc.store.batch_items(id, after, PAGE, false, true).await?;
            let Some(last) = page.last() else { break };
            after = last.0.index;
            if pdf {
                for (row, _) in &page {
                    if row.folio.is_some() && !print.contains_key(&row.company) {
                        let o = self.svc.print_options(&row.company, crate::print::Format::Letter, false).await?;
                        print.insert(row.company.clone(), std::sync::Arc::new(o));
                    }
                }
            }
            let opts = pdf.then(|| std::sync::Arc::new(print.clone()));
            if tx.send((page, opts)).await.is_err() {
                break;
            }
        }
        drop(tx);
        let internal = |e: String| BatchError::Service(crate::service::ServiceError::Internal(e));
        writer.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_neutralised() {
        for (i, o) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("F-101", "F-101"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(i.to_string()), o);
        }
    }
}
