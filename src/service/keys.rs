//! API keys and the master key: creation, revocation, rotation.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};

use super::{NewKey, Result, Service, ServiceError, SCOPES};
use crate::store::{self, ApiKeyRecord, NewAudit};
use crate::vault::Vault;

impl Service {
    /// Re-seals every certificate, CAF key and webhook secret and re-keys the audit chains under
    /// `new` (instances must restart with it).
    pub async fn rotate_master_key(&self, new: &Vault) -> Result<(usize, usize)> {
        let to = (store::AuditKey(new.audit_key()), new.check_value());
        let (old, new) = (self.vault.clone(), new.clone());
        let f: store::ResealFn = Box::new(move |aad, sealed| {
            let plain = old.open(sealed, aad.as_bytes()).map_err(|e| e.to_string())?;
            new.seal(&plain, aad.as_bytes()).map_err(|e| e.to_string())
        });
        let audit =
            NewAudit { scope: "*".into(), action: "master-key.rotate", subject: "*".into(), data: String::new() };
        Ok(self.store.reseal(f, (&to.0, &to.1), audit).await?)
    }

    pub async fn create_key(
        &self,
        company: Option<&str>,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        by: &str,
    ) -> Result<NewKey> {
        if let Some(rut) = company {
            self.company(rut).await?;
        }
        let mut scopes: Vec<String> =
            scopes.iter().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
            return Err(ServiceError::BadRequest("scopes are admin, issue and read".into()));
        }
        let mut raw = [0u8; 32];
        openssl::rand::rand_bytes(&mut raw).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let key = format!("dgw_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        let mut idb = [0u8; 8];
        openssl::rand::rand_bytes(&mut idb).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let id = format!("key_{}", crate::crypto::hex(&idb));
        let rec = ApiKeyRecord {
            id: id.clone(),
            hash: crate::crypto::sha256_hex(key.as_bytes()),
            company: company.map(String::from),
            scopes: scopes.clone(),
            created_at: Utc::now(),
            expires_at,
            revoked_at: None,
        };
        let audit = NewAudit {
            scope: company.unwrap_or("*").into(),
            action: "key.create",
            subject: id.clone(),
            data: format!("scopes {}; by {by}", scopes.join(",")),
        };
        self.store.create_api_key(rec, audit).await?;
        Ok(NewKey { id, key, company: company.map(String::from), scopes, expires_at })
    }

    pub async fn revoke_key(&self, id: &str, by: &str) -> Result<()> {
        let k = self.store.get_api_key(id).await?.ok_or_else(|| ServiceError::NotFound(format!("key {id}")))?;
        let now = Utc::now();
        // The list must outlive every cached copy of the key; a day is far beyond any cache.
        let until = now + Duration::days(1);
        let audit = NewAudit {
            scope: k.company.clone().unwrap_or_else(|| "*".into()),
            action: "key.revoke",
            subject: id.into(),
            data: format!("by {by}"),
        };
        if !self.store.revoke_api_key(id, now, until, audit).await? {
            return Err(ServiceError::Conflict(format!("key {id} is already revoked")));
        }
        // Every instance reads the shared list within a poll; the database list backs it up.
        if let Some(c) = &self.cache {
            c.revoke(&k.hash, until.timestamp_millis() as f64).await;
        }
        Ok(())
    }

    /// A new key with the same company and scopes; the old one keeps working for the grace period.
    pub async fn rotate_key(&self, id: &str, grace: Option<Duration>, by: &str) -> Result<NewKey> {
        let k = self.store.get_api_key(id).await?.ok_or_else(|| ServiceError::NotFound(format!("key {id}")))?;
        if k.revoked_at.is_some() {
            return Err(ServiceError::Conflict(format!("key {id} is revoked")));
        }
        let new = self.create_key(k.company.as_deref(), &k.scopes, None, &format!("rotation of {id} by {by}")).await?;
        self.store.expire_api_key(id, Utc::now() + grace.unwrap_or(self.key_grace)).await?;
        Ok(new)
    }
}
