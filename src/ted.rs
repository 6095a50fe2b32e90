//! TED (timbre electrónico): the DD block and its FRMT, RSA-SHA1 with the CAF key over the
//! flattened DD in ISO-8859-1 (NOTES §7).

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;

use crate::caf::{Caf, CafError};
use crate::domain::text::truncate;
use crate::domain::Rut;
use crate::xml::writer::XmlOut;

pub const TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

#[derive(Debug, Clone)]
pub struct TedData {
    pub re: Rut,
    pub td: u16,
    pub f: u64,
    pub fe: NaiveDate,
    pub rr: Rut,
    /// Razón social of the receptor; truncated to 40 as the schema demands.
    pub rsr: String,
    pub mnt: Decimal,
    /// First item name; truncated to 40.
    pub it1: String,
    pub tsted: NaiveDateTime,
}

/// The flattened `<DD>` exactly as it is written into the document and signed.
pub fn dd(d: &TedData, caf_xml: &str) -> String {
    let mut o = XmlOut::with_capacity(1024);
    o.start("DD");
    o.leaf_display("RE", d.re);
    o.leaf_display("TD", d.td);
    o.leaf_display("F", d.f);
    o.leaf_display("FE", d.fe.format("%Y-%m-%d"));
    o.leaf_display("RR", d.rr);
    o.leaf("RSR", &truncate(&d.rsr, 40));
    o.leaf_display("MNT", d.mnt.normalize());
    o.leaf("IT1", &truncate(&d.it1, 40));
    o.raw(caf_xml);
    o.leaf_display("TSTED", d.tsted.format(TS_FORMAT));
    o.end("DD");
    o.into_string()
}

/// `<TED version="1.0">…</TED>`, stamped with the CAF's key.
pub fn stamp(d: &TedData, caf: &Caf) -> Result<String, CafError> {
    let dd = dd(d, caf.caf_xml());
    let frmt = caf.sign_dd(&dd)?;
    let mut s = String::with_capacity(dd.len() + 200);
    s.push_str("<TED version=\"1.0\">");
    s.push_str(&dd);
    s.push_str("<FRMT algoritmo=\"SHA1withRSA\">");
    s.push_str(&frmt);
    s.push_str("</FRMT></TED>");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caf::CafTrust;

    fn data(name: &str) -> String {
        crate::xml::latin1::decode(&std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap())
    }

    fn kat(key: &str) -> String {
        data("ted-kat-sii-manual-p25.txt").lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap().to_string()
    }

    #[test]
    fn sii_manual_p25_known_answer() {
        let caf =
            Caf::load(data("caf-test-97975000-5-T33-1-200.CONSTRUCTED.xml").as_bytes(), &CafTrust::sii_only()).unwrap();
        let d = TedData {
            re: "97975000-5".parse().unwrap(),
            td: 33,
            f: 27,
            fe: NaiveDate::from_ymd_opt(2003, 9, 8).unwrap(),
            rr: "8414240-9".parse().unwrap(),
            rsr: "JORGE GONZALEZ LTDA".into(),
            mnt: Decimal::from(502946),
            it1: "Cajon AFECTO".into(),
            tsted: NaiveDateTime::parse_from_str("2003-09-08T12:28:31", TS_FORMAT).unwrap(),
        };
        let flat = dd(&d, caf.caf_xml());
        assert_eq!(flat, kat("MESSAGE"));
        assert_eq!(caf.sign_dd(&flat).unwrap(), kat("FRMT"));
    }

    #[test]
    fn official_sample_ted_known_answer() {
        let xml =
            std::fs::read(format!("{}/tests/data/F60T33-ejemplo-oficial-SII.xml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let doc = crate::xml::input::parse(&xml).unwrap().0;
        let mut dds = Vec::new();
        crate::xml::libxml::descendants(&doc.get_root_element().unwrap(), "DD", &mut dds);
        let flat = crate::xml::libxml::flatten(&dds[0], false);
        let caf =
            Caf::load(data("caf-test-97975000-5-T33-1-200.CONSTRUCTED.xml").as_bytes(), &CafTrust::sii_only()).unwrap();
        assert_eq!(caf.sign_dd(&flat).unwrap(), kat("FRMT_F60T33"));
    }
}
