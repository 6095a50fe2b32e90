//! XMLDSig as the SII uses it (NOTES §5): enveloped signatures, inclusive C14N 1.0, SHA-1 digest,
//! RSA-SHA1, KeyInfo with both KeyValue and X509Data of the signing key.
//!
//! Signing is pure string work over canonical forms the gateway rendered itself; verification
//! canonicalises whatever it is given with libxml2 and checks every step.

use base64::Engine;
use openssl::bn::BigNum;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use openssl::x509::X509;

use super::libxml::{self as lx, child, child_text, path};
use super::{NS_DSIG, NS_XSI};
use crate::cert::{wrap64, CertError, Certificate};
use crate::crypto::{b64, rsa_sha1_verify};

pub const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Namespaces in scope where a Signature sits, as its SignedInfo's canonical form declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedInfoScope {
    /// Inside a stand-alone DTE: only the dsig default namespace.
    Dte,
    /// Inside an EnvioDTE/EnvioBOLETA root that also declares `xmlns:xsi`.
    Envelope,
}

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn sha1_b64(data: &[u8]) -> Result<String, openssl::error::ErrorStack> {
    Ok(b64e(&hash(MessageDigest::sha1(), data)?))
}

fn signed_info_body(uri: &str, transform: &str, digest: &str) -> String {
    format!(
        "<CanonicalizationMethod Algorithm=\"{C14N}\"></CanonicalizationMethod><SignatureMethod Algorithm=\"{RSA_SHA1}\"></SignatureMethod><Reference URI=\"{uri}\"><Transforms><Transform Algorithm=\"{transform}\"></Transform></Transforms><DigestMethod Algorithm=\"{SHA1}\"></DigestMethod><DigestValue>{digest}</DigestValue></Reference>"
    )
}

/// Builds the `<Signature>` element for a same-document reference (`#ID`) whose canonical bytes
/// are `referenced_c14n`.
pub fn sign(
    cert: &Certificate,
    uri: &str,
    referenced_c14n: &[u8],
    scope: SignedInfoScope,
) -> Result<String, CertError> {
    sign_with(cert, uri, C14N, referenced_c14n, scope)
}

/// [`sign`] with an explicit Transform: `URI=""` (the whole document, the Signature inside it)
/// needs the enveloped-signature transform.
pub fn sign_with(
    cert: &Certificate,
    uri: &str,
    transform: &str,
    referenced_c14n: &[u8],
    scope: SignedInfoScope,
) -> Result<String, CertError> {
    let digest = sha1_b64(referenced_c14n).map_err(|e| CertError::Other(e.to_string()))?;
    let body = signed_info_body(uri, transform, &digest);
    let ns = match scope {
        SignedInfoScope::Dte => format!("xmlns=\"{NS_DSIG}\""),
        SignedInfoScope::Envelope => format!("xmlns=\"{NS_DSIG}\" xmlns:xsi=\"{NS_XSI}\""),
    };
    let canonical = format!("<SignedInfo {ns}>{body}</SignedInfo>");
    let value = cert.sign_sha1(canonical.as_bytes())?;
    let key_info = cert.key_info();
    let sig = wrap64(&b64e(&value));
    let mut s = String::with_capacity(body.len() + sig.len() + key_info.len() + 128);
    s.push_str("<Signature xmlns=\"");
    s.push_str(NS_DSIG);
    s.push_str("\"><SignedInfo>");
    s.push_str(&body);
    s.push_str("</SignedInfo><SignatureValue>");
    s.push_str(&sig);
    s.push_str("</SignatureValue>");
    s.push_str(key_info);
    s.push_str("</Signature>");
    Ok(s)
}

/// The outcome of checking one Signature element.
#[derive(Debug, Clone, Default)]
pub struct SigReport {
    pub reference: String,
    pub digest_ok: bool,
    pub signature_ok: bool,
    /// Problems that make the signature invalid.
    pub errors: Vec<String>,
    /// Quirks that do not (e.g. an X509Certificate of another key than KeyValue).
    pub warnings: Vec<String>,
    pub signer: Option<String>,
}

impl SigReport {
    pub fn ok(&self) -> bool {
        self.digest_ok && self.signature_ok && self.errors.is_empty()
    }
}

fn rsa_key_from_value(m: &str, e: &str) -> Result<PKey<Public>, String> {
    let n = BigNum::from_slice(&b64(m)?).map_err(|e| e.to_string())?;
    let e = BigNum::from_slice(&b64(e)?).map_err(|e| e.to_string())?;
    let rsa = Rsa::from_public_components(n, e).map_err(|e| e.to_string())?;
    PKey::from_rsa(rsa).map_err(|e| e.to_string())
}

fn find_by_id(n: &libxml::tree::Node, id: &str) -> Option<libxml::tree::Node> {
    if n.get_attribute("ID").as_deref() == Some(id) {
        return Some(n.clone());
    }
    n.get_child_elements().iter().find_map(|c| find_by_id(c, id))
}

/// Verifies one `<Signature>` in `doc` (same-document reference by `ID`, or `""` for the whole
/// document with the enveloped-signature transform).
pub fn verify(doc: &libxml::tree::Document, sig: &libxml::tree::Node) -> SigReport {
    let mut r = SigReport::default();
    let Some(si) = child(sig, "SignedInfo") else {
        r.errors.push("Signature has no SignedInfo".into());
        return r;
    };
    let alg = |n: Option<libxml::tree::Node>| n.and_then(|n| n.get_attribute("Algorithm")).unwrap_or_default();
    let cm = alg(child(&si, "CanonicalizationMethod"));
    if cm != C14N && cm != C14N_COMMENTS {
        r.errors.push(format!("unsupported CanonicalizationMethod {cm}"));
    }
    let sm = alg(child(&si, "SignatureMethod"));
    if sm != RSA_SHA1 {
        r.errors.push(format!("unsupported SignatureMethod {sm}"));
    }
    let Some(reference) = child(&si, "Reference") else {
        r.errors.push("SignedInfo has no Reference".into());
        return r;
    };
    let uri = reference.get_attribute("URI").unwrap_or_default();
    r.reference = if uri.is_empty() { "(document)".into() } else { uri.clone() };
    if alg(child(&reference, "DigestMethod")) != SHA1 {
        r.errors.push("DigestMethod is not SHA-1".into());
    }
    let transforms: Vec<String> = child(&reference, "Transforms")
        .map(|t| t.get_child_elements().iter().filter_map(|x| x.get_attribute("Algorithm")).collect())
        .unwrap_or_default();
    if let Some(t) = transforms.iter().find(|t| ![C14N, ENVELOPED, C14N_COMMENTS].contains(&t.as_str())) {
        r.errors.push(format!("unsupported Transform {t}"));
    }
    if !r.errors.is_empty() {
        return r;
    }

    // Digest of the referenced element, canonicalised in context.
    let target = if uri.is_empty() {
        doc.get_root_element()
    } else {
        uri.strip_prefix('#').and_then(|id| doc.get_root_element().and_then(|root| find_by_id(&root, id)))
    };
    let Some(target) = target else {
        r.errors.push(format!("no element has ID {uri}"));
        return r;
    };
    let exclude = transforms.iter().any(|t| t == ENVELOPED).then_some(sig);
    let declared = child_text(&reference, "DigestValue").unwrap_or_default();
    match lx::c14n_excluding(doc, &target, exclude) {
        Ok(bytes) => match sha1_b64(&bytes) {
            Ok(d) => r.digest_ok = d == declared.trim(),
            Err(e) => r.errors.push(e.to_string()),
        },
        Err(e) => r.errors.push(e),
    }
    if !r.digest_ok {
        r.errors.push(format!("the digest of {} does not match DigestValue", r.reference));
    }

    // Keys: KeyValue and X509Certificate should be the same key; the SII's own example is not.
    let kv = path(sig, &["KeyInfo", "KeyValue", "RSAKeyValue"]);
    let kv_key = kv.and_then(|kv| {
        let m = child_text(&kv, "Modulus")?;
        let e = child_text(&kv, "Exponent")?;
        rsa_key_from_value(&m, &e).ok()
    });
    let cert = path(sig, &["KeyInfo", "X509Data", "X509Certificate"])
        .and_then(|c| b64(&c.get_content()).ok())
        .and_then(|der| X509::from_der(&der).ok());
    if let Some(c) = &cert {
        r.signer = Some(format!(
            "{}{}",
            c.subject_name().entries().filter_map(|e| e.data().to_string().ok()).collect::<Vec<_>>().join(", "),
            crate::cert::holder_rut(&c.to_der().unwrap_or_default()).map(|r| format!(" (RUT {r})")).unwrap_or_default()
        ));
    }
    let cert_key = cert.as_ref().and_then(|c| c.public_key().ok());
    let key = match (&kv_key, &cert_key) {
        (Some(k), Some(c)) => {
            if !k.public_eq(c) {
                r.warnings.push("X509Certificate does not match KeyValue; verified with KeyValue".into());
            }
            Some(k.clone())
        }
        (Some(k), None) => {
            r.warnings.push("no X509Certificate; verified with KeyValue".into());
            Some(k.clone())
        }
        (None, Some(c)) => {
            r.warnings.push("no KeyValue; verified with X509Certificate".into());
            Some(c.clone())
        }
        (None, None) => None,
    };
    let Some(key) = key else {
        r.errors.push("KeyInfo holds no usable RSA key".into());
        return r;
    };
    let value = child_text(sig, "SignatureValue").map(|v| b64(&v)).transpose();
    match (value, lx::c14n(doc, &si)) {
        (Ok(Some(v)), Ok(si_bytes)) => r.signature_ok = rsa_sha1_verify(&key, &si_bytes, &v),
        (Ok(None), _) => r.errors.push("no SignatureValue".into()),
        (Err(e), _) => r.errors.push(format!("SignatureValue: {e}")),
        (_, Err(e)) => r.errors.push(e),
    }
    if !r.signature_ok {
        r.errors.push("SignatureValue does not verify over SignedInfo".into());
    }
    r
}
