//! The web console's sessions and the figures its pages show. A session lives where every
//! instance sees it: in Redis (its own key space) when the cache has Redis, else in the store; the
//! cookie carries a random token and only its SHA-256 is kept.

use std::time::Duration as StdDuration;

use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{ApiKey, Result, Service, ServiceError};
use crate::cache::{Cache, Key};
use crate::crypto::sha256_hex;
pub use crate::store::{ConsoleSession, LastUpload};

/// How long a session lives: `idle` since its last use, `absolute` since sign-in.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

/// A session's last use is written at most this often (its idle expiry is that coarse).
const TOUCH_EVERY: i64 = 30;

fn unavailable(e: crate::cache::CacheError) -> ServiceError {
    ServiceError::Unavailable(format!("console sessions: {e}"))
}

fn random_token() -> Result<String> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

impl Service {
    fn session_cache(&self) -> Option<&Cache> {
        self.cache.as_deref().filter(|c| c.mode() != "memory")
    }

    /// Sessions are read and written in Redis only: a copy in one instance's memory while Redis
    /// is away would outlive a sign-out made elsewhere, so without Redis there is no session.
    async fn keep_session(&self, s: &ConsoleSession, now: DateTime<Utc>, limits: SessionLimits) -> Result<()> {
        if let Some(c) = self.session_cache() {
            let left = (s.expires_at - now).min(limits.idle).to_std().unwrap_or(StdDuration::from_secs(1));
            let v = serde_json::to_vec(s).map_err(|e| ServiceError::Internal(e.to_string()))?;
            c.shared_set(&Key::ConsoleSession(s.id_hash.clone()), &v, left).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Opens a session for a key that just authenticated; returns the cookie's token.
    pub async fn open_console_session(
        &self,
        key: &ApiKey,
        key_hash: &str,
        limits: SessionLimits,
    ) -> Result<(String, ConsoleSession)> {
        let token = random_token()?;
        let now = Utc::now();
        let mut expires_at = now + limits.absolute;
        if let Some(e) = key.expires_at {
            expires_at = expires_at.min(e);
        }
        let s = ConsoleSession {
            id_hash: sha256_hex(token.as_bytes()),
            key_id: key.id.clone(),
            key_hash: key_hash.to_string(),
            csrf: random_token()?,
            created_at: now,
            last_seen: now,
            expires_at,
        };
        match self.session_cache() {
            Some(_) => self.keep_session(&s, now, limits).await?,
            None => self.store.insert_console_session(&s).await?,
        }
        Ok((token, s))
    }

    /// The live session behind a cookie token (`None` when unknown, idle too long or past its
    /// end); with `touch`, its last use is moved to now.
    pub async fn console_session(
        &self,
        token: &str,
        limits: SessionLimits,
        touch: bool,
    ) -> Result<Option<ConsoleSession>> {
        let id_hash = sha256_hex(token.as_bytes());
        let found = match self.session_cache() {
            Some(c) => c
                .shared_get(&Key::ConsoleSession(id_hash.clone()))
                .await
                .map_err(unavailable)?
                .and_then(|v| serde_json::from_slice::<ConsoleSession>(&v).ok()),
            None => self.store.console_session(&id_hash).await?,
        };
        let Some(mut s) = found else { return Ok(None) };
        let now = Utc::now();
        if s.expires_at <= now || s.last_seen + limits.idle <= now {
            self.close_console_session(token).await?;
            return Ok(None);
        }
        if touch && (now - s.last_seen).num_seconds() >= TOUCH_EVERY {
            s.last_seen = now;
            match self.session_cache() {
                Some(_) => self.keep_session(&s, now, limits).await?,
                None => self.store.touch_console_session(&id_hash, now).await?,
            }
        }
        Ok(Some(s))
    }

    pub async fn close_console_session(&self, token: &str) -> Result<()> {
        let id_hash = sha256_hex(token.as_bytes());
        match self.session_cache() {
            Some(c) => c.shared_del(&Key::ConsoleSession(id_hash)).await.map_err(unavailable)?,
            None => self.store.delete_console_session(&id_hash).await?,
        }
        Ok(())
    }

    /// The API keys bound to a company, newest first.
    pub async fn company_keys(&self, rut: &str) -> Result<Vec<ApiKey>> {
        Ok(self.store.company_api_keys(rut).await?.into_iter().map(ApiKey::from).collect())
    }

    /// Every company with its name and environment, for a gateway-wide key.
    pub async fn company_list(&self) -> Result<Vec<(String, String, crate::store::Environment)>> {
        Ok(self.store.company_list().await?)
    }

    /// A company's documents issued from `since`, by state.
    pub async fn document_counts(&self, rut: &str, since: NaiveDate) -> Result<Vec<(String, i64)>> {
        Ok(self.store.document_counts(rut, since).await?)
    }

    pub async fn last_upload(&self, rut: &str) -> Result<Option<LastUpload>> {
        Ok(self.store.last_upload(rut).await?)
    }

    pub async fn document_upload(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<LastUpload>> {
        Ok(self.store.document_upload(rut, tipo, folio).await?)
    }
}
