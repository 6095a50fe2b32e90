//! Encryption at rest for certificates and CAF private keys: AES-256-GCM under a master key that
//! comes from configuration and is never stored in the database. Sealed form: nonce ‖ ciphertext ‖ tag.

use base64::Engine;
use openssl::rand::rand_bytes;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the master key must be 32 bytes (base64)")]
    BadKey,
    #[error("sealed data is corrupt or was sealed under another master key")]
    Open,
    #[error("encryption failed: {0}")]
    Seal(String),
}

#[derive(Clone)]
pub struct Vault {
    key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

const NONCE: usize = 12;
const TAG: usize = 16;

impl Vault {
    pub fn from_base64(s: &str) -> Result<Vault, VaultError> {
        let b = base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| VaultError::BadKey)?;
        let key: [u8; 32] = b.try_into().map_err(|_| VaultError::BadKey)?;
        Ok(Vault { key })
    }

    pub fn generate_base64() -> Result<String, VaultError> {
        let mut k = [0u8; 32];
        rand_bytes(&mut k).map_err(|e| VaultError::Seal(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(k))
    }

    /// `aad` binds the ciphertext to its owner (e.g. the company RUT), so rows cannot be swapped.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE];
        rand_bytes(&mut nonce).map_err(|e| VaultError::Seal(e.to_string()))?;
        let mut tag = [0u8; TAG];
        let ct = encrypt_aead(Cipher::aes_256_gcm(), &self.key, Some(&nonce), aad, plain, &mut tag)
            .map_err(|e| VaultError::Seal(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE + ct.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE + TAG {
            return Err(VaultError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (ct, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(Cipher::aes_256_gcm(), &self.key, Some(nonce), aad, ct, tag).map_err(|_| VaultError::Open)
    }
}

impl Vault {
    /// A key for another purpose, derived from the master key (HMAC-SHA256 of a fixed label):
    /// nothing derived is ever stored, and no derived key tells the master key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mac = crate::crypto::hmac_sha256(&self.key, &[label.as_bytes()]);
        let n = mac.len().min(32);
        out[..n].copy_from_slice(&mac[..n]);
        out
    }

    /// The key check value kept in the database: tells instances whether they hold the key the
    /// database was sealed with.
    pub fn check_value(&self) -> String {
        crate::crypto::hex(&self.derive("dte-gateway key check v1")[..16])
    }

    /// The audit chains' MAC key.
    pub fn audit_key(&self) -> [u8; 32] {
        self.derive("dte-gateway audit chain v1")
    }

    /// Seals text into a text column (`v1:` + base64).
    pub fn seal_text(&self, plain: &str, aad: &str) -> Result<String, VaultError> {
        Ok(wrap_text(&self.seal(plain.as_bytes(), aad.as_bytes())?))
    }

    pub fn open_text(&self, sealed: &str, aad: &str) -> Result<String, VaultError> {
        let raw = unwrap_text(sealed).ok_or(VaultError::Open)?;
        String::from_utf8(self.open(&raw, aad.as_bytes())?).map_err(|_| VaultError::Open)
    }
}

const TEXT_PREFIX: &str = "v1:";

pub fn wrap_text(sealed: &[u8]) -> String {
    format!("{TEXT_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(sealed))
}

/// The sealed bytes of a `v1:` text; `None` for anything else (a value from before sealing).
pub fn unwrap_text(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.strip_prefix(TEXT_PREFIX)?).ok()
}

/// A webhook secret is bound to its receiver's URL.
pub fn webhook_aad(url: &str) -> String {
    format!("webhook:{url}")
}

/// What a mailbox password is sealed to: its company and which server it opens.
pub fn mailbox_aad(company: &str, slot: &str) -> String {
    format!("mailbox:{slot}:{company}")
}

/// A folder only its owner can enter (0700), created when missing.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Narrows an existing file to its owner (0600).
pub fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let v = Vault::from_base64(&Vault::generate_base64().unwrap()).unwrap();
        let s = v.seal(b"secret key", b"76192083-9").unwrap();
        assert_eq!(v.open(&s, b"76192083-9").unwrap(), b"secret key");
        assert!(v.open(&s, b"76555835-2").is_err(), "another owner's aad must not open it");
        let mut t = s.clone();
        t[15] ^= 1;
        assert!(v.open(&t, b"76192083-9").is_err());
        let other = Vault::from_base64(&Vault::generate_base64().unwrap()).unwrap();
        assert!(other.open(&s, b"76192083-9").is_err());
        assert!(Vault::from_base64("c2hvcnQ=").is_err());
    }
}
