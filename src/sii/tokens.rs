//! SII tokens: one per (environment, certificate), shared by every instance through the cache.
//! Fetching is single-flight across instances (a short lock in the cache; waiters read the result),
//! a token past 80 % of its lifetime is refreshed in the background, and a token the SII refuses is
//! invalidated and fetched again once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::api::SiiApi;
use super::client::SiiError;
use crate::cache::{Cache, Key};
use crate::cert::Certificate;

pub struct Tokens {
    cache: Arc<Cache>,
    /// No SII figure is published (NOTES §2.5): configurable.
    pub ttl: Duration,
    lock_ttl: Duration,
    local: tokio::sync::Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Seed/token exchanges this instance made.
    pub exchanges: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The certificate's identity in keys: SHA-256 of its DER, shortened.
pub fn cert_id(cert: &Certificate) -> String {
    let der = cert.x509().to_der().unwrap_or_default();
    crate::crypto::sha256_hex(&der)[..24].to_string()
}

impl Tokens {
    pub fn new(cache: Arc<Cache>, ttl: Duration) -> Arc<Tokens> {
        Arc::new(Tokens {
            cache,
            ttl,
            lock_ttl: Duration::from_secs(15),
            local: tokio::sync::Mutex::new(HashMap::new()),
            exchanges: AtomicU64::new(0),
        })
    }

    fn keys(env: &str, cert: &Certificate) -> (Key, Key) {
        let id = cert_id(cert);
        (Key::SiiToken { env: env.into(), cert: id.clone() }, Key::SiiTokenLock { env: env.into(), cert: id })
    }

    /// Value layout: `{fetched_at_ms}:{token}`.
    async fn cached(&self, key: &Key) -> Option<(String, u64)> {
        let v = self.cache.get(key).await?;
        let s = String::from_utf8(v).ok()?;
        let (at, token) = s.split_once(':')?;
        Some((token.to_string(), at.parse().ok()?))
    }

    pub async fn get(self: &Arc<Self>, env: &str, cert: &Certificate, client: &SiiApi) -> Result<String, SiiError> {
        let (key, lock) = Self::keys(env, cert);
        if let Some((token, at)) = self.cached(&key).await {
            if now_ms().saturating_sub(at) > self.ttl.as_millis() as u64 * 8 / 10 {
                let (me, cert, client, env) = (self.clone(), cert.clone(), client.clone(), env.to_string());
                tokio::spawn(async move {
                    let (key, lock) = Self::keys(&env, &cert);
                    let _ = me.fetch(&key, &lock, &cert, &client, true).await;
                });
            }
            return Ok(token);
        }
        self.fetch(&key, &lock, cert, client, false).await
    }

    /// Single flight: one task per instance, one instance across instances.
    async fn fetch(
        &self,
        key: &Key,
        lock: &Key,
        cert: &Certificate,
        client: &SiiApi,
        refresh: bool,
    ) -> Result<String, SiiError> {
        let gate = { self.local.lock().await.entry(key.clone()).or_default().clone() };
        let _g = gate.lock().await;
        if !refresh {
            if let Some((t, _)) = self.cached(key).await {
                return Ok(t);
            }
        }
        let deadline = tokio::time::Instant::now() + self.lock_ttl;
        loop {
            if self.cache.set_nx(lock, b"1", self.lock_ttl).await {
                // Another instance may have stored a token between our last look and the lock.
                if let Some((t, at)) = self.cached(key).await {
                    if !refresh || now_ms().saturating_sub(at) < self.ttl.as_millis() as u64 / 2 {
                        self.cache.del(lock).await;
                        return Ok(t);
                    }
                }
                let r = client.authenticate(cert).await;
                metrics::counter!(crate::telemetry::SII_TOKENS, "result" => if r.is_ok() { "ok" } else { "error" })
                    .increment(1);
                if let Ok(t) = &r {
                    self.exchanges.fetch_add(1, Ordering::Relaxed);
                    self.cache.set(key, format!("{}:{t}", now_ms()).as_bytes(), self.ttl).await;
                }
                self.cache.del(lock).await;
                return r;
            }
            // Another instance is fetching: its result will appear in the cache.
            tokio::time::sleep(Duration::from_millis(25)).await;
            if let Some((t, at)) = self.cached(key).await {
                if !refresh || now_ms().saturating_sub(at) < self.ttl.as_millis() as u64 / 2 {
                    return Ok(t);
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SiiError::Transport("timed out waiting for another instance's token".into()));
            }
        }
    }

    /// After the SII refused `refused` (upload STATUS 5, QueryEstUp 001–003): dropped only if it
    /// is still the shared token, so instances that saw the same refusal do not throw away the
    /// new token another one already fetched.
    pub async fn invalidate(&self, env: &str, cert: &Certificate, refused: &str) {
        let (key, _) = Self::keys(env, cert);
        if self.cached(&key).await.is_some_and(|(t, _)| t == refused) {
            self.cache.del(&key).await;
        }
    }
}
