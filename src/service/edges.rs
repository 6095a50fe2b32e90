//! What the gateway's edges need besides documents: key lookups for authentication, webhook
//! listings, health and the housekeeping the server runs. The edges call these, never the store,
//! and get the service's own types (no hashes, no secrets).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Result, Service};
use crate::store::ApiKeyRecord;

/// An API key as the edges see it: never its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub company: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(k: ApiKeyRecord) -> ApiKey {
        ApiKey {
            id: k.id,
            company: k.company,
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A registered webhook (its signing secret is shown once, when it is created).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub company: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
}

/// One event's delivery to a webhook and how it went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub event: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<String>,
}

impl Service {
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The key whose SHA-256 is `hash`, for authentication.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        Ok(self.store.find_api_key(hash).await?.map(ApiKey::from))
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        Ok(self.store.get_api_key(id).await?.map(ApiKey::from))
    }

    /// Hashes of revoked keys still within their listing period.
    pub async fn revocation_list(&self) -> Result<Vec<String>> {
        Ok(self.store.revocation_list().await?)
    }

    pub async fn webhooks(&self, rut: &str) -> Result<Vec<Webhook>> {
        self.company(rut).await?;
        Ok(self
            .store
            .list_webhooks(rut)
            .await?
            .into_iter()
            .map(|w| Webhook { id: w.id, company: w.company, url: w.url, created_at: w.created_at })
            .collect())
    }

    /// The newest `limit` deliveries of the company's webhooks.
    pub async fn deliveries(&self, rut: &str, limit: i64) -> Result<Vec<Delivery>> {
        self.company(rut).await?;
        Ok(self
            .store
            .list_deliveries(rut, limit)
            .await?
            .into_iter()
            .map(|d| Delivery {
                id: d.id,
                webhook_id: d.webhook_id,
                url: d.url,
                event: d.event,
                state: d.state,
                attempts: d.attempts,
                last_status: d.last_status,
            })
            .collect())
    }

    /// Every company's RUT.
    pub async fn companies(&self) -> Result<Vec<String>> {
        Ok(self.store.companies().await?)
    }

    /// Documents per state, all companies.
    pub async fn document_states(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.store.document_states().await?)
    }

    /// When the oldest document not yet received by the SII was issued.
    pub async fn oldest_unsent(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.store.oldest_unsent().await?)
    }

    /// Drops expired revocation entries and idempotency records older than `idem_before`.
    pub async fn cleanup(&self, now: DateTime<Utc>, idem_before: DateTime<Utc>) -> Result<()> {
        Ok(self.store.cleanup(now, idem_before).await?)
    }
}
