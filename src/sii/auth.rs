//! Authentication (NOTES §2): the seed is signed as `<getToken><item><Semilla>…</Semilla></item></getToken>`
//! with an enveloped XMLDSig over the whole document (`URI=""`), then exchanged for a token.

use crate::cert::{CertError, Certificate};
use crate::xml::dsig::{self, SignedInfoScope, ENVELOPED};
use crate::xml::writer::escape_text;

/// The signed getToken request for `seed`.
pub fn signed_seed(seed: &str, cert: &Certificate) -> Result<String, CertError> {
    let body = format!("<item><Semilla>{}</Semilla></item>", escape_text(seed.trim()));
    // Rendered canonical; the enveloped transform removes the Signature before digesting.
    let canonical = format!("<getToken>{body}</getToken>");
    let sig = dsig::sign_with(cert, "", ENVELOPED, canonical.as_bytes(), SignedInfoScope::Dte)?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><getToken>{body}{sig}</getToken>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_seed_verifies() {
        let p12 = std::fs::read(format!("{}/certs/test-company.p12", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let cert = Certificate::from_pkcs12(&p12, "test1234").unwrap();
        let xml = signed_seed("000012345678", &cert).unwrap();
        let doc = crate::xml::input::parse_text(&xml).unwrap();
        let sig = crate::xml::libxml::child(&doc.get_root_element().unwrap(), "Signature").unwrap();
        let r = dsig::verify(&doc, &sig);
        assert!(r.ok(), "{r:?}");
        let tampered = xml.replace("000012345678", "000012345679");
        let doc = crate::xml::input::parse_text(&tampered).unwrap();
        let sig = crate::xml::libxml::child(&doc.get_root_element().unwrap(), "Signature").unwrap();
        assert!(!dsig::verify(&doc, &sig).ok());
    }
}
