//! The issuance pipeline shared by the CLI and the service: rules → taxes → TED → render →
//! sign → schema. Pure apart from libxml2's validation at the end.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;

use crate::caf::Caf;
use crate::cert::Certificate;
use crate::domain::rules::{check_ley_21713, prepare, Prepared};
use crate::domain::tax::{check_declared, check_ranges, compute, Computed, TaxTable, Totals};
use crate::domain::{Company, DocumentInput, Rut, TipoDte};
use crate::error::DteError;
use crate::ted::{self, TedData, TS_FORMAT};
use crate::xml::dsig::{self, SignedInfoScope};
use crate::xml::render::{documento_body, documento_id};
use crate::xml::schema::{self, Schema};
use crate::xml::{input, latin1, NS_SII};

pub const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n";

/// What issuing needs besides the document: who issues, with what keys, under which rules.
pub struct Issuer<'a> {
    pub company: &'a Company,
    pub cert: &'a Certificate,
    pub taxes: &'a TaxTable,
    /// Validate each built DTE against the SII schema before returning it (on by default; the
    /// benchmark measures the cost of turning it off).
    pub validate_schema: bool,
    /// The software provider's RUT, written in boletas (`RUTProvSW`).
    pub rut_prov_sw: Option<&'a str>,
    /// The UF's value in pesos, for the boletas above 135 UF (Ley 21.713); `None`: not applied.
    pub uf_pesos: Option<Decimal>,
}

#[derive(Debug, Clone)]
pub struct Issued {
    pub tipo: TipoDte,
    pub folio: u64,
    pub id: String,
    /// The signed DTE, ISO-8859-1 with its XML declaration.
    pub xml: Vec<u8>,
    pub totals: Totals,
    /// The `<TED>` element (for the PDF417 barcode).
    pub ted: String,
    pub timestamp: NaiveDateTime,
    /// Where the time went, for the issuance metrics.
    pub timings: Timings,
}

/// Seconds spent in each stage of one issuance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Rules and taxes.
    pub tax: f64,
    /// TED stamp, rendering and XMLDSig.
    pub sign: f64,
    /// Schema validation.
    pub validate: f64,
}

/// Rules and taxes only: what a document would total, without a folio.
pub fn quote(
    input: &DocumentInput,
    emisor: Rut,
    taxes: &TaxTable,
    today: NaiveDate,
) -> Result<(Prepared, Computed), DteError> {
    quote_at_uf(input, emisor, taxes, today, None)
}

/// [`quote`], with the boletas' rules above 135 UF applied at `uf` pesos per UF.
pub fn quote_at_uf(
    input: &DocumentInput,
    emisor: Rut,
    taxes: &TaxTable,
    today: NaiveDate,
    uf: Option<Decimal>,
) -> Result<(Prepared, Computed), DteError> {
    let prepared = prepare(input.clone(), emisor, taxes, today)?;
    let cur = crate::domain::exportacion::operation_currency(&prepared.doc, prepared.tipo);
    let computed = compute(&prepared.doc, prepared.tipo, taxes, cur).map_err(DteError::Invalid)?;
    let mut errors = check_ranges(&computed, prepared.tipo);
    errors.extend(check_declared(&prepared.doc, &computed));
    if let Some(uf) = uf {
        errors.extend(check_ley_21713(&prepared, computed.totals.mnt_total, uf));
    }
    if !errors.is_empty() {
        return Err(DteError::Invalid(errors));
    }
    Ok((prepared, computed))
}

impl<'a> Issuer<'a> {
    /// An issuer that validates every DTE, writes no RUTProvSW and applies no UF rule.
    pub fn new(company: &'a Company, cert: &'a Certificate, taxes: &'a TaxTable) -> Issuer<'a> {
        Issuer { company, cert, taxes, validate_schema: true, rut_prov_sw: None, uf_pesos: None }
    }

    /// Builds, stamps, signs and validates folio `folio` of `caf`, timestamped `now`.
    pub fn issue(&self, input: &DocumentInput, caf: &Caf, folio: u64, now: NaiveDateTime) -> Result<Issued, DteError> {
        let started = std::time::Instant::now();
        let (p, computed) = quote_at_uf(input, self.company.rut()?, self.taxes, now.date(), self.uf_pesos)?;
        let tax = started.elapsed().as_secs_f64();
        let mut issued = self.issue_prepared(&p, &computed, caf, folio, now)?;
        issued.timings.tax = tax;
        Ok(issued)
    }

    /// [`Issuer::issue`] for a document whose rules and taxes already ran ([`quote`]): the
    /// service prices a document once and may stamp it more than once (a group re-numbered).
    pub fn issue_prepared(
        &self,
        p: &Prepared,
        computed: &Computed,
        caf: &Caf,
        folio: u64,
        now: NaiveDateTime,
    ) -> Result<Issued, DteError> {
        let emisor = self.company.rut()?;
        self.cert.check_valid_at(now)?;
        let mut timings = Timings::default();
        let started = std::time::Instant::now();
        let fch_emis = p.fch_emis();
        if let Some(f) = p.doc.encabezado.id_doc.folio {
            if f != folio {
                return Err(DteError::single(
                    "Encabezado.IdDoc.Folio",
                    "mismatch",
                    format!("declared folio {f} but the folio is {folio}"),
                ));
            }
        }
        caf.check_issue(emisor, p.tipo, folio, fch_emis, now.date())?;

        let receptor_name =
            p.doc.encabezado.receptor.as_ref().and_then(|r| r.rzn_soc_recep.clone()).filter(|s| !s.trim().is_empty());
        let data = TedData {
            re: emisor,
            td: p.tipo.code(),
            f: folio,
            fe: fch_emis,
            rr: p.rut_recep,
            rsr: receptor_name.unwrap_or_else(|| p.rut_recep.to_string()),
            mnt: computed.totals.mnt_total,
            it1: p.doc.detalle.first().map(|d| d.nmb_item.clone()).unwrap_or_default(),
            tsted: now,
        };
        let ted = ted::stamp(&data, caf)?;
        let tmst = now.format(TS_FORMAT).to_string();
        let body = documento_body(p, self.company, computed, folio, &ted, &tmst, self.rut_prov_sw);
        let id = documento_id(p.tipo.code(), folio);

        // The Documento in the canonical form of a stand-alone `<DTE xmlns=SiiDte>`: the rendered
        // body is already canonical, so only the inherited default namespace is added.
        let root = p.tipo.root_element();
        let canonical = format!("<{root} xmlns=\"{NS_SII}\" ID=\"{id}\">{body}</{root}>");
        let signature = dsig::sign(self.cert, &format!("#{id}"), canonical.as_bytes(), SignedInfoScope::Dte)?;
        let xml =
            format!("<DTE xmlns=\"{NS_SII}\" version=\"1.0\"><{root} ID=\"{id}\">{body}</{root}>{signature}</DTE>");
        let mut bytes = Vec::with_capacity(XML_DECL.len() + xml.len());
        bytes.extend_from_slice(XML_DECL.as_bytes());
        bytes.extend(latin1::encode(&xml).map_err(|c| DteError::Xml(format!("character {c:?} outside ISO-8859-1")))?);

        timings.sign = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        if self.validate_schema {
            let kind = if p.tipo.is_boleta() { Schema::BoletaDte } else { Schema::Dte };
            let doc = input::parse(&bytes).map_err(|e| DteError::Xml(e.to_string()))?.0;
            schema::validate(kind, &doc).map_err(|errors| DteError::Schema { schema: kind.file(), errors })?;
        }
        timings.validate = started.elapsed().as_secs_f64();
        Ok(Issued {
            tipo: p.tipo,
            folio,
            id,
            xml: bytes,
            totals: computed.totals.clone(),
            ted,
            timestamp: now,
            timings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caf::CafTrust;
    use crate::xml::libxml::{c14n, child};

    fn repo(p: &str) -> Vec<u8> {
        std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// The hot path digests its own rendering; libxml2's C14N of the parsed output must agree.
    #[test]
    fn rendered_canonical_form_equals_libxml_c14n() {
        let company = Company::from_json(&repo("examples/company.json")).unwrap();
        let cert = Certificate::from_pkcs12(&repo("certs/test-company.p12"), "test1234").unwrap();
        let trust = CafTrust::with_test_authority(&repo("certs/test-authority.pem")).unwrap();
        let taxes = TaxTable::default();
        let issuer = Issuer::new(&company, &cert, &taxes);
        let now = NaiveDateTime::parse_from_str("2026-11-20T10:00:00", TS_FORMAT).unwrap();
        for (tipo, name) in [(33, "33-factura"), (39, "39-boleta"), (52, "52-guia-despacho")] {
            let caf = Caf::load(&repo(&format!("certs/cafs/caf-76192083-9-T{tipo}.xml")), &trust).unwrap();
            let input = DocumentInput::from_json(&repo(&format!("examples/{name}.json"))).unwrap();
            let issued = issuer.issue(&input, &caf, 5, now).unwrap();
            let doc = crate::xml::input::parse(&issued.xml).unwrap().0;
            let root = doc.get_root_element().unwrap();
            let documento = child(&root, "Documento").unwrap();
            let text = latin1::decode(&issued.xml);
            let start = text.find("<Documento").unwrap();
            let end = text.find("</Documento>").unwrap() + "</Documento>".len();
            let ours = text[start..end].replacen("<Documento ", &format!("<Documento xmlns=\"{NS_SII}\" "), 1);
            assert_eq!(String::from_utf8(c14n(&doc, &documento).unwrap()).unwrap(), ours, "{tipo}");
            let report = dsig::verify(&doc, &child(&root, "Signature").unwrap());
            assert!(report.ok() && report.warnings.is_empty(), "{tipo}: {report:?}");
            // Deterministic: the same input, folio and time give the same bytes.
            assert_eq!(issuer.issue(&input, &caf, 5, now).unwrap().xml, issued.xml);
        }
    }
}
