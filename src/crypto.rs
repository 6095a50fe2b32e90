//! Small encoding and hashing helpers shared by every layer (CAF, certificates, XML signatures,
//! the SII link, the store, API keys): one home, so no module borrows them from a sibling.

use base64::Engine;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;

/// Lower-case hexadecimal.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// SHA-256 of `b` in lower-case hexadecimal.
pub fn sha256_hex(b: &[u8]) -> String {
    hash(MessageDigest::sha256(), b).map(|d| hex(&d)).unwrap_or_default()
}

/// HMAC-SHA256 under `key` of `chunks` fed in order (empty only if OpenSSL fails, which it does
/// not for HMAC).
pub fn hmac_sha256(key: &[u8], chunks: &[&[u8]]) -> Vec<u8> {
    (|| {
        let k = PKey::hmac(key)?;
        let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), &k)?;
        for c in chunks {
            s.update(c)?;
        }
        s.sign_to_vec()
    })()
    .unwrap_or_default()
}

/// Base64 as the SII writes it: line breaks and spaces anywhere are ignored.
pub fn b64(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).map_err(|e| e.to_string())
}

/// An RSA signature with SHA-1 (the TED's and XMLDSig's algorithm at the SII); false on any error.
pub fn rsa_sha1_verify(key: &PKey<Public>, data: &[u8], sig: &[u8]) -> bool {
    let Ok(mut v) = Verifier::new(MessageDigest::sha1(), key) else { return false };
    v.verify_oneshot(sig, data).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_and_sha256() {
        assert_eq!(super::hex(&[0, 15, 255]), "000fff");
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(super::b64("YW\nJj").unwrap(), b"abc");
    }
}
