//! CAF (Código de Autorización de Folios): the SII's grant of a folio range with the key that
//! stamps the TED. Parsed from the SII's file (ISO-8859-1, with or without declaration), its FRMA
//! checked against the SII key named by IDK (or an explicitly trusted test authority), its key pair
//! self-tested, and each issuance checked for range, RUT, type, dates and expiry.

use base64::Engine;
use chrono::{Months, NaiveDate};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::X509;

use crate::crypto::{b64, rsa_sha1_verify};
use crate::domain::{Rut, TipoDte};
use crate::error::DteError;
use crate::xml::libxml::{child, child_text, flatten, path};
use crate::xml::{input, latin1};

const IDK100: &[u8] = include_bytes!("caf_keys/idk100.cer");
const IDK300: &[u8] = include_bytes!("caf_keys/idk300.cer");

#[derive(Debug, thiserror::Error)]
pub enum CafError {
    #[error("the CAF file is malformed: {0}")]
    Malformed(String),
    #[error("the CAF signature (FRMA) does not verify with {0}")]
    BadSignature(String),
    #[error("the CAF names IDK {0}, which is not an SII key (100 certificación, 300 producción) and no test authority is trusted")]
    UnknownAuthority(i64),
    #[error("the CAF private key does not match its public key")]
    KeyMismatch,
    #[error("folio {folio} is outside the CAF range {desde}-{hasta}")]
    FolioOutOfRange { folio: u64, desde: u64, hasta: u64 },
    #[error("the CAF belongs to {caf}, not to {company}")]
    WrongRut { caf: String, company: String },
    #[error("the CAF is for type {caf}, not {doc}")]
    WrongType { caf: u16, doc: u16 },
    #[error("the CAF authorised on {fa} expired on {expired}")]
    Expired { fa: NaiveDate, expired: NaiveDate },
    #[error("FchEmis {fch_emis} is before the CAF's authorisation date {fa}")]
    BeforeAuthorisation { fch_emis: NaiveDate, fa: NaiveDate },
    #[error("TED signing failed: {0}")]
    Stamp(String),
}

impl CafError {
    pub fn kind(&self) -> &'static str {
        match self {
            CafError::Malformed(_) => "caf-malformed",
            CafError::BadSignature(_) => "caf-signature",
            CafError::UnknownAuthority(_) => "caf-untrusted",
            CafError::KeyMismatch => "caf-key-mismatch",
            CafError::FolioOutOfRange { .. } => "folio-out-of-range",
            CafError::WrongRut { .. } => "caf-wrong-company",
            CafError::WrongType { .. } => "caf-wrong-type",
            CafError::Expired { .. } => "caf-expired",
            CafError::BeforeAuthorisation { .. } => "caf-not-yet-valid",
            CafError::Stamp(_) => "ted-stamp",
        }
    }
}

impl From<CafError> for DteError {
    fn from(e: CafError) -> Self {
        DteError::Caf { kind: e.kind(), message: e.to_string() }
    }
}

/// Who signed a CAF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Authority {
    /// SII certification key (IDK 100).
    SiiCertificacion,
    /// SII production key (IDK 300).
    SiiProduccion,
    /// A test authority trusted by explicit configuration; never valid with the SII.
    Test,
}

/// Which CAF signers to trust. The SII's keys always; a test authority only when given.
#[derive(Clone, Default)]
pub struct CafTrust {
    test: Option<PKey<Public>>,
}

fn cert_key(pem_or_der: &[u8]) -> Result<PKey<Public>, CafError> {
    let cert = X509::from_pem(pem_or_der)
        .or_else(|_| X509::from_der(pem_or_der))
        .map_err(|e| CafError::Malformed(format!("authority certificate: {e}")))?;
    cert.public_key().map_err(|e| CafError::Malformed(e.to_string()))
}

impl std::fmt::Debug for CafTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CafTrust {{ test_authority: {} }}", self.test.is_some())
    }
}

impl CafTrust {
    pub fn sii_only() -> Self {
        CafTrust { test: None }
    }

    /// Also trust CAFs signed by this test authority certificate (PEM or DER).
    pub fn with_test_authority(cert: &[u8]) -> Result<Self, CafError> {
        Ok(CafTrust { test: Some(cert_key(cert)?) })
    }

    pub fn trusts_test(&self) -> bool {
        self.test.is_some()
    }

    /// Checks `signature` over `data` (RSA-SHA1) against the SII key of `idk` or the test authority.
    pub fn verify(&self, idk: i64, data: &[u8], signature: &[u8]) -> Result<Authority, CafError> {
        let sii = match idk {
            100 => Some((cert_key(IDK100)?, Authority::SiiCertificacion)),
            300 => Some((cert_key(IDK300)?, Authority::SiiProduccion)),
            _ => None,
        };
        if let Some((key, who)) = &sii {
            if rsa_sha1_verify(key, data, signature) {
                return Ok(*who);
            }
        }
        if let Some(t) = &self.test {
            if rsa_sha1_verify(t, data, signature) {
                return Ok(Authority::Test);
            }
        }
        match sii {
            Some(_) => Err(CafError::BadSignature(format!("the SII key IDK {idk}"))),
            None if self.test.is_some() => Err(CafError::BadSignature("the trusted test authority".into())),
            None => Err(CafError::UnknownAuthority(idk)),
        }
    }
}

/// A CAF whose signature and keys were checked.
#[derive(Clone)]
pub struct Caf {
    pub rut_emisor: Rut,
    pub razon_social: String,
    pub tipo: u16,
    pub desde: u64,
    pub hasta: u64,
    pub fecha_autorizacion: NaiveDate,
    pub idk: i64,
    pub authority: Authority,
    /// The `<CAF version="1.0">…</CAF>` element, flattened, as it goes into every TED.
    caf_xml: String,
    key: PKey<Private>,
}

impl std::fmt::Debug for Caf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log line.
        f.debug_struct("Caf")
            .field("rut_emisor", &self.rut_emisor)
            .field("tipo", &self.tipo)
            .field("desde", &self.desde)
            .field("hasta", &self.hasta)
            .field("fecha_autorizacion", &self.fecha_autorizacion)
            .field("idk", &self.idk)
            .finish_non_exhaustive()
    }
}

fn text(n: &libxml::tree::Node, name: &str, ctx: &str) -> Result<String, CafError> {
    child_text(n, name)
        .map(|s| s.trim().to_string())
        .ok_or_else(|| CafError::Malformed(format!("{ctx}/{name} is missing")))
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, CafError> {
    s.parse().map_err(|_| CafError::Malformed(format!("{what} is not a number: {s:?}")))
}

impl Caf {
    /// Parses and checks a CAF file: structure, FRMA against `trust`, key pair consistency.
    pub fn load(bytes: &[u8], trust: &CafTrust) -> Result<Caf, CafError> {
        // CAF files often come without an XML declaration and in ISO-8859-1.
        let body = input::decode_with(bytes, true).map_err(|e| CafError::Malformed(e.to_string()))?.text;
        let doc = input::parse_text(&body).map_err(|e| CafError::Malformed(e.to_string()))?;
        let root = doc.get_root_element().ok_or_else(|| CafError::Malformed("empty document".into()))?;
        if root.get_name() != "AUTORIZACION" {
            return Err(CafError::Malformed(format!("root element is {}, expected AUTORIZACION", root.get_name())));
        }
        let caf = child(&root, "CAF").ok_or_else(|| CafError::Malformed("AUTORIZACION/CAF is missing".into()))?;
        let da = child(&caf, "DA").ok_or_else(|| CafError::Malformed("CAF/DA is missing".into()))?;
        let rut_s = text(&da, "RE", "DA")?;
        let rut_emisor: Rut = rut_s.parse().map_err(|e| CafError::Malformed(format!("DA/RE {rut_s:?}: {e}")))?;
        let tipo: u16 = num(&text(&da, "TD", "DA")?, "DA/TD")?;
        let rng = child(&da, "RNG").ok_or_else(|| CafError::Malformed("DA/RNG is missing".into()))?;
        let desde: u64 = num(&text(&rng, "D", "RNG")?, "RNG/D")?;
        let hasta: u64 = num(&text(&rng, "H", "RNG")?, "RNG/H")?;
        if desde == 0 || hasta < desde {
            return Err(CafError::Malformed(format!("folio range {desde}-{hasta} is empty")));
        }
        let fa_s = text(&da, "FA", "DA")?;
        let fecha_autorizacion = NaiveDate::parse_from_str(&fa_s, "%Y-%m-%d")
            .map_err(|_| CafError::Malformed(format!("DA/FA {fa_s:?} is not a date")))?;
        let idk: i64 = num(&text(&da, "IDK", "DA")?, "DA/IDK")?;
        let m = path(&da, &["RSAPK", "M"])
            .map(|n| n.get_content())
            .ok_or_else(|| CafError::Malformed("DA/RSAPK/M is missing".into()))?;
        let e = path(&da, &["RSAPK", "E"])
            .map(|n| n.get_content())
            .ok_or_else(|| CafError::Malformed("DA/RSAPK/E is missing".into()))?;
        let (m, e) = (b64(&m).map_err(CafError::Malformed)?, b64(&e).map_err(CafError::Malformed)?);
        let frma = b64(&text(&caf, "FRMA", "CAF")?).map_err(|e| CafError::Malformed(format!("FRMA: {e}")))?;

        // FRMA covers the flattened DA; some files escape quotes in text, so both forms are tried.
        let mut authority = Err(CafError::Malformed("unreachable".into()));
        for aq in [false, true] {
            let da_bytes = latin1::encode(&flatten(&da, aq))
                .map_err(|c| CafError::Malformed(format!("character {c:?} outside ISO-8859-1")))?;
            authority = trust.verify(idk, &da_bytes, &frma);
            if authority.is_ok() {
                break;
            }
        }
        let authority = authority?;

        let sk = text(&root, "RSASK", "AUTORIZACION")?;
        let rsa = Rsa::private_key_from_pem(sk.as_bytes())
            .or_else(|_| PKey::private_key_from_pem(sk.as_bytes()).and_then(|k| k.rsa()))
            .map_err(|_| CafError::Malformed("RSASK is not an RSA private key".into()))?;
        let same =
            |a: &openssl::bn::BigNumRef, b: &[u8]| BigNum::from_slice(b).map(|x| x.as_ref() == a).unwrap_or(false);
        if !same(rsa.n(), &m) || !same(rsa.e(), &e) || !rsa.check_key().unwrap_or(false) {
            return Err(CafError::KeyMismatch);
        }
        if let Some(pubk) = child_text(&root, "RSAPUBK") {
            let p = Rsa::public_key_from_pem(pubk.trim().as_bytes())
                .map_err(|_| CafError::Malformed("RSAPUBK is not an RSA public key".into()))?;
            if p.n() != rsa.n() || p.e() != rsa.e() {
                return Err(CafError::KeyMismatch);
            }
        }
        let key = PKey::from_rsa(rsa).map_err(|e| CafError::Malformed(e.to_string()))?;
        Ok(Caf {
            rut_emisor,
            razon_social: text(&da, "RS", "DA")?,
            tipo,
            desde,
            hasta,
            fecha_autorizacion,
            idk,
            authority,
            caf_xml: flatten(&caf, false),
            key,
        })
    }

    /// The day after which this CAF may no longer be used, for the types where that applies.
    pub fn expires_on(&self) -> Option<NaiveDate> {
        let t = TipoDte::from_code(self.tipo)?;
        if t.caf_expires() {
            self.fecha_autorizacion.checked_add_months(Months::new(6))
        } else {
            None
        }
    }

    /// May `folio` of type `tipo` be issued by `emisor` with this CAF on `signing_date`?
    pub fn check_issue(
        &self,
        emisor: Rut,
        tipo: TipoDte,
        folio: u64,
        fch_emis: NaiveDate,
        signing_date: NaiveDate,
    ) -> Result<(), CafError> {
        if self.rut_emisor != emisor {
            return Err(CafError::WrongRut { caf: self.rut_emisor.to_string(), company: emisor.to_string() });
        }
        if self.tipo != tipo.code() {
            return Err(CafError::WrongType { caf: self.tipo, doc: tipo.code() });
        }
        if folio < self.desde || folio > self.hasta {
            return Err(CafError::FolioOutOfRange { folio, desde: self.desde, hasta: self.hasta });
        }
        if fch_emis < self.fecha_autorizacion {
            return Err(CafError::BeforeAuthorisation { fch_emis, fa: self.fecha_autorizacion });
        }
        if let Some(exp) = self.expires_on() {
            if signing_date > exp {
                return Err(CafError::Expired { fa: self.fecha_autorizacion, expired: exp });
            }
        }
        Ok(())
    }

    pub fn caf_xml(&self) -> &str {
        &self.caf_xml
    }

    /// FRMT: base64 RSA-SHA1 with the CAF key over the ISO-8859-1 bytes of the flattened DD.
    pub fn sign_dd(&self, dd: &str) -> Result<String, CafError> {
        let bytes = latin1::encode(dd).map_err(|c| CafError::Stamp(format!("character {c:?} outside ISO-8859-1")))?;
        let sig = (|| {
            let mut s = Signer::new(MessageDigest::sha1(), &self.key)?;
            s.sign_oneshot_to_vec(&bytes)
        })()
        .map_err(|e| CafError::Stamp(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn official_caf_verifies_with_idk100() {
        let caf = Caf::load(&sample("caf-test-97975000-5-T33-1-200.CONSTRUCTED.xml"), &CafTrust::sii_only()).unwrap();
        assert_eq!(caf.authority, Authority::SiiCertificacion);
        assert_eq!((caf.tipo, caf.desde, caf.hasta, caf.idk), (33, 1, 200, 100));
        assert_eq!(caf.rut_emisor.to_string(), "97975000-5");
        assert_eq!(caf.expires_on(), NaiveDate::from_ymd_opt(2004, 3, 4));
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let rut: Rut = "97975000-5".parse().unwrap();
        assert!(caf.check_issue(rut, TipoDte::Factura, 60, d("2003-10-13"), d("2003-10-13")).is_ok());
        assert!(matches!(
            caf.check_issue(rut, TipoDte::Factura, 201, d("2003-10-13"), d("2003-10-13")),
            Err(CafError::FolioOutOfRange { .. })
        ));
        assert!(matches!(
            caf.check_issue(rut, TipoDte::Factura, 60, d("2026-11-20"), d("2026-11-20")),
            Err(CafError::Expired { .. })
        ));
        assert!(matches!(
            caf.check_issue(rut, TipoDte::NotaCredito, 60, d("2003-10-13"), d("2003-10-13")),
            Err(CafError::WrongType { .. })
        ));
        assert!(matches!(
            caf.check_issue("76192083-9".parse().unwrap(), TipoDte::Factura, 60, d("2003-10-13"), d("2003-10-13")),
            Err(CafError::WrongRut { .. })
        ));
        assert!(matches!(
            caf.check_issue(rut, TipoDte::Factura, 60, d("2003-09-01"), d("2003-10-13")),
            Err(CafError::BeforeAuthorisation { .. })
        ));
    }

    #[test]
    fn tampered_caf_is_refused() {
        let good = String::from_utf8(sample("caf-test-97975000-5-T33-1-200.CONSTRUCTED.xml")).unwrap();
        let bad = good.replace("<H>200</H>", "<H>900</H>");
        assert!(matches!(Caf::load(bad.as_bytes(), &CafTrust::sii_only()), Err(CafError::BadSignature(_))));
        let no_decl = good.replace("<?xml version=\"1.0\"?>", "");
        assert!(Caf::load(no_decl.as_bytes(), &CafTrust::sii_only()).is_ok());
    }
}
