//! Webhooks: registration under the target policy, deletion and secret rotation, all audited.
//! Secrets are sealed with the vault and bound to their receiver's URL.

use chrono::Utc;

use super::{Result, Service, ServiceError};
use crate::store::NewAudit;
use crate::vault::webhook_aad;

fn new_secret() -> Result<String> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(crate::crypto::hex(&raw))
}

impl Service {
    /// Registers a receiver; the signing secret is returned here only.
    pub async fn add_webhook(&self, rut: &str, url: &str, by: &str) -> Result<serde_json::Value> {
        self.company(rut).await?;
        let url = self.webhook_policy.check_url(url.trim()).map_err(ServiceError::BadRequest)?.to_string();
        let secret = new_secret()?;
        let sealed = self.vault.seal_text(&secret, &webhook_aad(&url))?;
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "webhook.add",
            subject: String::new(),
            data: serde_json::json!({"url": url, "by": by}).to_string(),
        };
        let id = self.store.add_webhook(rut, &url, &sealed, audit, Utc::now()).await?;
        Ok(serde_json::json!({"id": id, "url": url, "secret": secret}))
    }

    pub async fn delete_webhook(&self, rut: &str, id: i64, by: &str) -> Result<()> {
        self.company(rut).await?;
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "webhook.delete",
            subject: id.to_string(),
            data: serde_json::json!({"by": by}).to_string(),
        };
        if !self.store.delete_webhook(rut, id, audit, Utc::now()).await? {
            return Err(ServiceError::NotFound(format!("webhook {id}")));
        }
        Ok(())
    }

    /// A new signing secret; the old one stops signing at once.
    pub async fn rotate_webhook_secret(&self, rut: &str, id: i64, by: &str) -> Result<serde_json::Value> {
        let hook = self
            .store
            .list_webhooks(rut)
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("webhook {id}")))?;
        let secret = new_secret()?;
        let sealed = self.vault.seal_text(&secret, &webhook_aad(&hook.url))?;
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "webhook.rotate-secret",
            subject: id.to_string(),
            data: serde_json::json!({"by": by}).to_string(),
        };
        if !self.store.set_webhook_secret(rut, id, &sealed, audit, Utc::now()).await? {
            return Err(ServiceError::NotFound(format!("webhook {id}")));
        }
        Ok(serde_json::json!({"id": id, "url": hook.url, "secret": secret}))
    }

    /// Seals secrets left in plain text by an older release (at start).
    pub async fn seal_plain_webhook_secrets(&self) -> Result<usize> {
        let vault = self.vault.clone();
        let seal = move |url: &str, secret: &str| vault.seal_text(secret, &webhook_aad(url)).map_err(|e| e.to_string());
        Ok(self.store.seal_plain_webhook_secrets(&seal).await?)
    }

    /// The plain secret of a leased delivery's webhook.
    pub(super) fn open_webhook_secret(&self, url: &str, sealed: &str) -> Result<String> {
        Ok(self.vault.open_text(sealed, &webhook_aad(url))?)
    }
}
