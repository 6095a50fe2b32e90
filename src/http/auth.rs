//! API keys: `Authorization: Bearer dgw_…` (or `X-API-Key`). Keys are looked up by SHA-256 and
//! cached briefly; every request is checked against the revocation list, which each instance reloads
//! every `revocation_poll_ms` (so a revocation reaches all instances within a second); each key has a
//! token bucket.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;

use super::problem::ApiError;
use crate::crypto::sha256_hex;
use crate::service::{ApiKey, Service};

const KEY_CACHE: Duration = Duration::from_secs(5);

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Auth {
    svc: Arc<Service>,
    /// Shares rate limits and the revocation list between instances when it has Redis.
    cache: Option<Arc<crate::cache::Cache>>,
    polls: std::sync::atomic::AtomicU64,
    keys: Mutex<HashMap<String, (ApiKey, Instant)>>,
    revoked: RwLock<HashSet<String>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate: f64,
    burst: f64,
    /// Failed authentications per client address in the current minute: guessing keys costs a
    /// database lookup each, so a client that keeps failing is turned away before that.
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
    failures_per_minute: u32,
    /// Keys seen valid in the last hour (by hash): they pass an address's failure limit, so the
    /// clients behind a proxy or NAT that someone else abuses keep working.
    known_good: Mutex<HashMap<String, Instant>>,
}

const KNOWN_GOOD: Duration = Duration::from_secs(3600);

const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The caller, once its key checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: ApiKey,
    /// SHA-256 of the key as presented (for re-checks against the revocation list).
    pub hash: String,
}

impl Principal {
    pub fn has(&self, scope: &str) -> bool {
        self.key.scopes.iter().any(|s| s == scope || s == "admin")
    }

    /// A key bound to another company sees nothing of this one: 404, not 403.
    pub fn company(&self, rut: &str, scope: &'static str) -> Result<(), ApiError> {
        if let Some(c) = &self.key.company {
            if c != rut {
                return Err(ApiError::NotFound(format!("company {rut}")));
            }
        }
        if !self.has(scope) {
            return Err(ApiError::Forbidden(scope));
        }
        Ok(())
    }

    /// Gateway-wide operations need an admin key bound to no company.
    pub fn global_admin(&self) -> Result<(), ApiError> {
        if self.key.company.is_some() || !self.has("admin") {
            return Err(ApiError::Forbidden("admin"));
        }
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.key.id
    }
}

impl Auth {
    pub fn new(
        svc: Arc<Service>,
        cache: Option<Arc<crate::cache::Cache>>,
        rate: f64,
        burst: f64,
        failures_per_minute: u32,
    ) -> Auth {
        Auth {
            svc,
            cache,
            polls: std::sync::atomic::AtomicU64::new(0),
            keys: Mutex::new(HashMap::new()),
            revoked: RwLock::new(HashSet::new()),
            buckets: Mutex::new(HashMap::new()),
            rate,
            burst,
            failures: Mutex::new(HashMap::new()),
            failures_per_minute,
            known_good: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` (seconds to wait) while `ip` is over its failed-authentication allowance.
    fn failures_allow(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        let Ok(f) = self.failures.lock() else { return Ok(()) };
        match f.get(&ip) {
            Some((n, since)) if *n >= self.failures_per_minute && since.elapsed() < FAILURE_WINDOW => {
                Err((FAILURE_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, ip: std::net::IpAddr) {
        metrics::counter!(crate::telemetry::AUTH_FAILURES).increment(1);
        let Ok(mut f) = self.failures.lock() else { return };
        if f.len() > 100_000 {
            f.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    fn known(&self, hash: &str) -> bool {
        self.known_good.lock().ok().is_some_and(|k| k.get(hash).is_some_and(|at| at.elapsed() < KNOWN_GOOD))
    }

    fn cached(&self, hash: &str) -> Option<ApiKey> {
        self.keys
            .lock()
            .ok()
            .and_then(|c| c.get(hash).filter(|(_, at)| at.elapsed() < KEY_CACHE).map(|(k, _)| k.clone()))
    }

    /// A key revoked here is refused here at once (other instances follow within their
    /// revocation poll): forget it so the next request reads it from the database.
    pub fn forget_key(&self, id: &str) {
        if let Ok(mut c) = self.keys.lock() {
            c.retain(|_, (k, _)| k.id != id);
        }
    }

    /// Whether a key let in earlier is still good (for long-lived responses such as event streams).
    pub async fn still_valid(&self, p: &Principal) -> bool {
        if self.revoked.read().map(|r| r.contains(&p.hash)).unwrap_or(true) {
            return false;
        }
        match self.svc.api_key(&p.key.id).await {
            Ok(Some(k)) => k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > Utc::now()),
            Ok(None) => false,
            // A database hiccup does not cut the stream; the next check decides.
            Err(_) => true,
        }
    }

    /// Reloads the revocation list: from Redis on every poll when it is shared there, and from the
    /// database (the source of truth) every eighth poll — or every poll without Redis.
    pub async fn refresh_revocations(&self) -> Result<(), crate::service::ServiceError> {
        let n = self.polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = match &self.cache {
            Some(c) => c.revoked().await,
            None => None,
        };
        let from_redis = shared.is_some();
        let mut list: HashSet<String> = shared.unwrap_or_default().into_iter().collect();
        if !from_redis || n.is_multiple_of(8) {
            list.extend(self.svc.revocation_list().await?);
        } else if let Ok(r) = self.revoked.read() {
            // Keep what the database said last time; Redis only adds.
            list.extend(r.iter().cloned());
        }
        if let Ok(mut r) = self.revoked.write() {
            *r = list;
        }
        Ok(())
    }

    /// [`Auth::authenticate`] for a client at `ip`, counting its failures.
    /// Over its allowance, an address is answered `429` without a database lookup, except for
    /// keys this instance has recently seen good (clients sharing the address keep working).
    pub async fn authenticate_from(
        &self,
        presented: Option<&str>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, ApiError> {
        if let Err(wait) = ip.map_or(Ok(()), |ip| self.failures_allow(ip)) {
            if presented.is_none_or(|k| !self.known(&sha256_hex(k.as_bytes()))) {
                return Err(ApiError::RateLimited(wait));
            }
        }
        let r = match presented {
            Some(k) => self.authenticate(k).await,
            None => Err(ApiError::Unauthorized),
        };
        if let (Err(ApiError::Unauthorized), Some(ip)) = (&r, ip) {
            self.failed(ip);
        }
        r
    }

    pub async fn authenticate(&self, presented: &str) -> Result<Principal, ApiError> {
        self.authenticate_hash(sha256_hex(presented.as_bytes())).await
    }

    /// The key whose SHA-256 is `hash` (a console session holds the hash, never the key), with
    /// every check and the rate limit of a request that presents the key itself.
    pub async fn authenticate_hash(&self, hash: String) -> Result<Principal, ApiError> {
        if self.revoked.read().map(|r| r.contains(&hash)).unwrap_or(true) {
            return Err(ApiError::Unauthorized);
        }
        let (key, looked_up) = match self.cached(&hash) {
            Some(k) => (k, false),
            None => {
                let k = self.svc.key_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
                if let Ok(mut c) = self.keys.lock() {
                    if c.len() > 100_000 {
                        c.clear();
                    }
                    c.insert(hash.clone(), (k.clone(), Instant::now()));
                }
                (k, true)
            }
        };
        let now = Utc::now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::Unauthorized);
        }
        if let Some(shared) = match &self.cache {
            Some(c) => c.rate_limit(&key.id, self.rate, self.burst).await,
            None => None,
        } {
            shared.map_err(|wait| ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))?;
        } else {
            self.take_token(&key.id)?;
        }
        // Recorded when the key is read from the database (at least every `KEY_CACHE` while it is
        // in use), not on every request: the hot path takes no extra lock.
        if looked_up {
            if let Ok(mut k) = self.known_good.lock() {
                if k.len() > 100_000 {
                    k.retain(|_, at| at.elapsed() < KNOWN_GOOD);
                }
                k.insert(hash.clone(), Instant::now());
            }
        }
        Ok(Principal { key, hash })
    }

    fn take_token(&self, id: &str) -> Result<(), ApiError> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        let b = buckets.entry(id.to_string()).or_insert(Bucket { tokens: self.burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64;
            Err(ApiError::RateLimited(wait))
        }
    }
}

fn presented(req: &HttpRequest) -> Option<String> {
    let h = req.headers();
    if let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(|s| s.trim().to_string());
    }
    h.get("x-api-key").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<Arc<Auth>>>().cloned();
        let key = presented(req);
        // The connection's address: a forwarded-for header is the client's to write, so it is
        // not trusted here.
        let ip = req.peer_addr().map(|a| a.ip());
        Box::pin(async move {
            let auth = auth.ok_or(ApiError::Unavailable("authentication is not configured".into()))?;
            auth.authenticate_from(key.as_deref().filter(|k| !k.is_empty()), ip).await
        })
    }
}
