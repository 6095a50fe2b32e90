//! TEST-ONLY material made at run time: CAFs signed by the test authority of `certs/`, dated
//! today, for `serve --demo` and for tests that must not depend on the date they run.
//! Never valid with the SII: the SII's own keys are the only ones it trusts.

use base64::Engine;
use chrono::NaiveDate;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::sign::Signer;

use crate::domain::Rut;

/// TEST-ONLY material for `--demo` and the simulated supplier, never valid with the SII.
pub const DEMO_P12: &[u8] = include_bytes!("../certs/test-company.p12");
pub const DEMO_AUTHORITY_KEY: &[u8] = include_bytes!("../certs/test-authority.key");
pub const DEMO_AUTHORITY_CERT: &[u8] = include_bytes!("../certs/test-authority.pem");
pub const DEMO_COMPANY: &[u8] = include_bytes!("../examples/company.json");

/// A CAF shaped like the SII's (512-bit key, e=3, IDK 100), its FRMA made with `authority_key_pem`.
pub fn make_caf(
    authority_key_pem: &[u8],
    rut: Rut,
    rs: &str,
    tipo: u16,
    desde: u64,
    hasta: u64,
    fa: NaiveDate,
) -> Result<String, openssl::error::ErrorStack> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let rsa = Rsa::generate_with_e(512, BigNum::from_u32(3)?.as_ref())?;
    let m = b64(&rsa.n().to_vec());
    let da = format!("<DA><RE>{rut}</RE><RS>{rs}</RS><TD>{tipo}</TD><RNG><D>{desde}</D><H>{hasta}</H></RNG><FA>{fa}</FA><RSAPK><M>{m}</M><E>Aw==</E></RSAPK><IDK>100</IDK></DA>");
    let authority = PKey::private_key_from_pem(authority_key_pem)?;
    let mut s = Signer::new(MessageDigest::sha1(), &authority)?;
    let frma = b64(&s.sign_oneshot_to_vec(da.as_bytes())?);
    let sk = String::from_utf8_lossy(&rsa.private_key_to_pem()?).trim().to_string();
    let pk = String::from_utf8_lossy(&PKey::from_rsa(rsa)?.public_key_to_pem()?).trim().to_string();
    Ok(format!(
        "<?xml version=\"1.0\"?>\n<AUTORIZACION>\n<CAF version=\"1.0\">\n{}\n<FRMA algoritmo=\"SHA1withRSA\">{frma}</FRMA>\n</CAF>\n<RSASK>{sk}\n</RSASK>\n<RSAPUBK>{pk}\n</RSAPUBK>\n</AUTORIZACION>\n",
        da.replace("><", ">\n<").replace("<RNG>\n<D>", "<RNG><D>").replace("</D>\n<H>", "</D><H>").replace("</H>\n</RNG>", "</H></RNG>")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caf::{Authority, Caf, CafTrust};

    #[test]
    fn a_made_caf_loads_under_the_test_authority_only() {
        let root = env!("CARGO_MANIFEST_DIR");
        let key = std::fs::read(format!("{root}/certs/test-authority.key")).unwrap();
        let cert = std::fs::read(format!("{root}/certs/test-authority.pem")).unwrap();
        let fa = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let xml = make_caf(&key, "76192083-9".parse().unwrap(), "EMPRESA DE PRUEBA SPA", 39, 1, 50, fa).unwrap();
        let caf = Caf::load(xml.as_bytes(), &CafTrust::with_test_authority(&cert).unwrap()).unwrap();
        assert_eq!((caf.tipo, caf.desde, caf.hasta, caf.authority), (39, 1, 50, Authority::Test));
        assert!(Caf::load(xml.as_bytes(), &CafTrust::sii_only()).is_err());
    }
}
