//! The company's signing certificate: PKCS#12 (modern AES or legacy RC2/3DES with SHA-1 MAC, as
//! older Chilean CA files are), the holder's RUT from subjectAltName otherName 1.3.6.1.4.1.8321.1,
//! validity, and the precomputed KeyInfo every signature carries.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::provider::Provider;
use openssl::sign::Signer as RsaSigner;
use openssl::x509::X509;

use crate::domain::Rut;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the certificate file is not a PKCS#12 archive")]
    NotPkcs12,
    #[error("wrong certificate password")]
    WrongPassword,
    #[error("the PKCS#12 archive holds no {0}")]
    Missing(&'static str),
    #[error("the certificate key is not RSA")]
    NotRsa,
    #[error("the certificate expired on {0}")]
    Expired(String),
    #[error("the certificate is not valid before {0}")]
    NotYetValid(String),
    #[error("the certificate does not match its private key")]
    KeyMismatch,
    #[error("certificate: {0}")]
    Other(String),
}

impl From<CertError> for crate::error::DteError {
    fn from(e: CertError) -> Self {
        crate::error::DteError::Cert { kind: e.kind(), message: e.to_string() }
    }
}

impl CertError {
    pub fn kind(&self) -> &'static str {
        match self {
            CertError::NotPkcs12 => "certificate-malformed",
            CertError::WrongPassword => "certificate-password",
            CertError::Missing(_) => "certificate-incomplete",
            CertError::NotRsa => "certificate-not-rsa",
            CertError::Expired(_) => "certificate-expired",
            CertError::NotYetValid(_) => "certificate-not-yet-valid",
            CertError::KeyMismatch => "certificate-key-mismatch",
            CertError::Other(_) => "certificate-error",
        }
    }
}

/// OpenSSL 3 refuses RC2-40 and friends unless the legacy provider is loaded; load it once (with
/// the default provider kept available) and keep it for the life of the process.
fn legacy_provider() {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY.get_or_init(|| Provider::try_load(None, "legacy", true).ok());
}

/// Of every key of a PKCS#12 and the certificate it belongs to, the pair that signs: a
/// certificate whose key usage allows signatures (digitalSignature or nonRepudiation, or no
/// restriction), that names its holder's RUT, that is valid now (a renewal not yet in force
/// beside the current one does not win), and, among several, the one valid longest. `None`
/// when the file holds fewer than two such pairs or cannot be read this way (OpenSSL's own
/// choice then stands).
fn signing_pair(der: &[u8], password: &str) -> Option<(PKey<Private>, X509)> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password).ok()?;
    let certs: Vec<X509> = archive.certs.iter().filter_map(|c| X509::from_der(c.cert.as_der()).ok()).collect();
    let mut pairs: Vec<(PKey<Private>, X509)> = Vec::new();
    for bag in &archive.keys {
        let Ok(key) = PKey::private_key_from_pkcs8(bag.key.as_der()) else { continue };
        let matching = certs.iter().find(|c| c.public_key().is_ok_and(|p| key.public_eq(&p)));
        if let Some(cert) = matching {
            pairs.push((key, cert.clone()));
        }
    }
    if pairs.len() < 2 {
        return None;
    }
    let now = Utc::now();
    pairs.into_iter().max_by_key(|(_, c)| {
        let der = c.to_der().unwrap_or_default();
        let (from, to) = (asn1_to_datetime(c.not_before()), asn1_to_datetime(c.not_after()));
        let valid_now = from.is_some_and(|f| f <= now) && to.is_some_and(|t| now <= t);
        (signs(&der), certificate_rut(c).is_some(), valid_now, to)
    })
}

/// Whether a certificate's key usage allows signing documents.
fn signs(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return false };
    match cert.key_usage() {
        Ok(Some(ku)) => ku.value.digital_signature() || ku.value.non_repudiation(),
        Ok(None) => true,
        Err(_) => false,
    }
}

pub fn wrap64(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + s.len() / 64 + 1);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            o.push('\n');
        }
        o.push(c);
    }
    o
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The holder's RUT from the SII otherName (OID 1.3.6.1.4.1.8321.1, an IA5String), read from the
/// certificate's DER: the openssl crate exposes no otherName accessor.
pub fn holder_rut(cert_der: &[u8]) -> Option<Rut> {
    const OID: [u8; 10] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x04, 0x01, 0xC1, 0x01, 0x01];
    let mut i = 0;
    while i + OID.len() + 4 <= cert_der.len() {
        if cert_der[i..i + OID.len()] == OID {
            let rest = &cert_der[i + OID.len()..];
            // [0] EXPLICIT { IA5String | UTF8String | PrintableString }
            if rest.len() >= 4 && rest[0] == 0xA0 && matches!(rest[2], 0x16 | 0x0C | 0x13) {
                let len = rest[3] as usize;
                if let Some(bytes) = rest.get(4..4 + len) {
                    if let Ok(rut) = std::str::from_utf8(bytes).ok()?.parse() {
                        return Some(rut);
                    }
                }
            }
        }
        i += 1;
    }
    None
}

/// A RUT written anywhere in a text ("RUT 12.345.678-5", "12345678-5").
fn rut_in(s: &str) -> Option<Rut> {
    let kept: String = s.chars().filter(|c| c.is_ascii_digit() || matches!(c, '-' | 'k' | 'K')).collect();
    kept.trim_matches('-').parse().ok()
}

/// The holder's RUT of a certificate: the SII otherName of its subjectAltName, else its subject's
/// serialNumber (some test and older certificates carry it only there).
pub fn certificate_rut(cert: &openssl::x509::X509Ref) -> Option<Rut> {
    let der = cert.to_der().ok()?;
    holder_rut(&der).or_else(|| {
        cert.subject_name()
            .entries_by_nid(openssl::nid::Nid::SERIALNUMBER)
            .find_map(|e| e.data().to_string().ok().and_then(|s| rut_in(&s)))
    })
}

/// [`certificate_rut`] of a DER certificate (as XMLDSig's X509Certificate carries it).
pub fn certificate_rut_der(der: &[u8]) -> Option<Rut> {
    X509::from_der(der).ok().and_then(|c| certificate_rut(&c))
}

fn asn1_to_datetime(t: &openssl::asn1::Asn1TimeRef) -> Option<DateTime<Utc>> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    DateTime::from_timestamp(d.days as i64 * 86_400 + d.secs as i64, 0)
}

/// A loaded signing certificate. `PKey` is thread-safe; one `Certificate` serves every thread.
#[derive(Clone)]
pub struct Certificate {
    key: PKey<Private>,
    cert: X509,
    pub holder: Option<Rut>,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// `<KeyInfo>…</KeyInfo>` in canonical form, the same for every signature.
    key_info: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("holder", &self.holder)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Opens a PKCS#12 archive. Validity is not checked here: see [`Certificate::check_valid_at`].
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Certificate, CertError> {
        legacy_provider();
        let p12 = Pkcs12::from_der(der).map_err(|_| CertError::NotPkcs12)?;
        let parsed = p12.parse2(password).map_err(|e| {
            let s = e.to_string();
            if s.contains("mac verify failure") || s.contains("mac") {
                CertError::WrongPassword
            } else {
                CertError::Other(s)
            }
        })?;
        // OpenSSL returns the file's first key only. A file with other certificates may hold other
        // keys too (an encryption key beside the signing one, a renewed certificate beside the
        // old): then the key of the signing certificate is taken, whichever comes first.
        if parsed.ca.as_ref().is_some_and(|ca| !ca.is_empty()) {
            if let Some((key, cert)) = signing_pair(der, password) {
                return Certificate::from_parts(key, cert);
            }
        }
        let key = parsed.pkey.ok_or(CertError::Missing("private key"))?;
        let cert = parsed.cert.ok_or(CertError::Missing("certificate"))?;
        Certificate::from_parts(key, cert)
    }

    pub fn from_parts(key: PKey<Private>, cert: X509) -> Result<Certificate, CertError> {
        let rsa = key.rsa().map_err(|_| CertError::NotRsa)?;
        let cert_pub = cert.public_key().map_err(|e| CertError::Other(e.to_string()))?;
        if !key.public_eq(&cert_pub) {
            return Err(CertError::KeyMismatch);
        }
        let der = cert.to_der().map_err(|e| CertError::Other(e.to_string()))?;
        let holder = certificate_rut(&cert);
        let subject = cert
            .subject_name()
            .entries()
            .map(|e| {
                let k = e.object().nid().short_name().unwrap_or("?");
                let v = e.data().to_string().unwrap_or_default();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let not_before =
            asn1_to_datetime(cert.not_before()).ok_or_else(|| CertError::Other("unreadable notBefore".into()))?;
        let not_after =
            asn1_to_datetime(cert.not_after()).ok_or_else(|| CertError::Other("unreadable notAfter".into()))?;
        let key_info = format!(
            "<KeyInfo><KeyValue><RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent></RSAKeyValue></KeyValue><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo>",
            wrap64(&b64(&rsa.n().to_vec())),
            wrap64(&b64(&rsa.e().to_vec())),
            wrap64(&b64(&der)),
        );
        Ok(Certificate { key, cert, holder, subject, not_before, not_after, key_info })
    }

    pub fn check_valid_at(&self, now: NaiveDateTime) -> Result<(), CertError> {
        let now = now.and_utc();
        if now > self.not_after {
            return Err(CertError::Expired(self.not_after.format("%Y-%m-%d").to_string()));
        }
        if now < self.not_before {
            return Err(CertError::NotYetValid(self.not_before.format("%Y-%m-%d").to_string()));
        }
        Ok(())
    }

    pub fn key_info(&self) -> &str {
        &self.key_info
    }

    pub fn x509(&self) -> &X509 {
        &self.cert
    }

    /// RSA-SHA1 (PKCS#1 v1.5), the only algorithm the SII schema admits besides DSA.
    pub fn sign_sha1(&self, data: &[u8]) -> Result<Vec<u8>, CertError> {
        let mut s = RsaSigner::new(MessageDigest::sha1(), &self.key).map_err(|e| CertError::Other(e.to_string()))?;
        s.sign_oneshot_to_vec(data).map_err(|e| CertError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::{X509Builder, X509NameBuilder};

    /// A self-signed certificate whose subject is `entries` and that has no subjectAltName.
    fn made(entries: &[(&str, &str)]) -> (PKey<Private>, X509) {
        made_for(entries, None)
    }

    fn made_for(entries: &[(&str, &str)], usage: Option<openssl::x509::extension::KeyUsage>) -> (PKey<Private>, X509) {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        for (k, v) in entries {
            name.append_entry_by_text(k, v).unwrap();
        }
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
        if let Some(mut u) = usage {
            b.append_extension(u.critical().build().unwrap()).unwrap();
        }
        b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        (key, b.build())
    }

    #[test]
    fn the_holder_rut_comes_from_the_subject_serial_number_when_the_sii_other_name_is_absent() {
        let rut = Rut::from_number(12345678);
        let (key, cert) = made(&[("CN", "Juan Pérez"), ("serialNumber", &format!("RUT {}", rut))]);
        assert_eq!(Certificate::from_parts(key, cert).unwrap().holder, Some(rut));
        let (key, cert) = made(&[("CN", "Sin RUT")]);
        assert_eq!(Certificate::from_parts(key, cert).unwrap().holder, None);
        // The test material carries the otherName, which wins.
        let p12 = std::fs::read(format!("{}/certs/test-company.p12", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(Certificate::from_pkcs12(&p12, "test1234").unwrap().holder.is_some());
    }

    /// A PKCS#12 with an encryption key first and the signing key second: OpenSSL alone takes
    /// the first; the signing one is used.
    #[test]
    fn a_pkcs12_with_several_keys_uses_the_signing_certificates() {
        use openssl::x509::extension::KeyUsage;
        use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let signer = Rut::from_number(11111111);
        let other = Rut::from_number(22222222);
        let mut enc = KeyUsage::new();
        enc.key_encipherment();
        let mut sig = KeyUsage::new();
        sig.digital_signature().non_repudiation();
        let pairs = [
            ("a-cifrado", made_for(&[("CN", "Cifrado"), ("serialNumber", &other.to_string())], Some(enc))),
            ("b-firma", made_for(&[("CN", "Firma"), ("serialNumber", &signer.to_string())], Some(sig))),
        ];
        let mut ks = KeyStore::new();
        for (i, (alias, (key, cert))) in pairs.iter().enumerate() {
            let key = PrivateKey::from_der(&key.private_key_to_pkcs8().unwrap()).unwrap();
            let cert = p12_keystore::Certificate::from_der(&cert.to_der().unwrap()).unwrap();
            let chain = PrivateKeyChain::new(vec![i as u8 + 1], key, [cert]);
            ks.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
        }
        let p12 = ks.writer("clave").write().unwrap();
        let first = Pkcs12::from_der(&p12).unwrap().parse2("clave").unwrap();
        assert!(first.cert.unwrap().subject_name().entries().any(|e| e.data().as_slice() == b"Cifrado"));
        let c = Certificate::from_pkcs12(&p12, "clave").unwrap();
        assert_eq!(c.holder, Some(signer));
        assert!(c.subject.contains("CN=Firma"), "{}", c.subject);
        // A file of one key is read as before.
        let one = std::fs::read(format!("{}/certs/test-company.p12", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(Certificate::from_pkcs12(&one, "test1234").unwrap().subject.contains("FIRMANTE DE PRUEBA"));
    }
}
