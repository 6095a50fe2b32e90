//! The cache: memory (in-process), Redis (standalone or Cluster) or tiered (memory L1 in front of
//! Redis L2), chosen by configuration. Keys are typed and namespaced per purpose, with a TTL per
//! kind. Redis calls retry with exponential backoff and jitter in one place; when Redis stays
//! unreachable the cache serves from memory, says so (`degraded()`), and a probe moves it back to
//! Redis by itself when Redis answers again.

mod memory;
mod redis_l2;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryCache;
pub use redis_l2::RedisL2;

/// What a cache entry is, which decides its key prefix and lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The SII token of one certificate in one environment.
    SiiToken { env: String, cert: String },
    /// The single-flight lock for fetching that token.
    SiiTokenLock { env: String, cert: String },
    /// A tax quote, by the hash of its normalised input.
    TaxQuote(String),
    /// A web console session, by the SHA-256 of its cookie token.
    ConsoleSession(String),
}

impl Key {
    pub fn kind(&self) -> &'static str {
        match self {
            Key::SiiToken { .. } => "sii-token",
            Key::SiiTokenLock { .. } => "sii-token-lock",
            Key::TaxQuote(_) => "tax-quote",
            Key::ConsoleSession(_) => "console-session",
        }
    }

    /// Tokens and locks are read from the shared layer only: a copy in one instance's memory
    /// would outlive an invalidation made by another.
    pub fn l1_allowed(&self) -> bool {
        matches!(self, Key::TaxQuote(_))
    }

    /// Kept in this instance's memory only. A tax quote computes in ~11 µs and a Redis round trip
    /// on loopback costs ~130 µs (`cargo bench --bench cache`): sharing quotes would cost more than
    /// computing them again.
    pub fn local_only(&self) -> bool {
        matches!(self, Key::TaxQuote(_))
    }

    /// `dtegw:{kind}:{…}`; the token pair shares a hash tag so a Cluster keeps it on one node.
    pub fn render(&self, ns: &str) -> String {
        match self {
            Key::SiiToken { env, cert } => format!("{ns}:sii-token:{{{env}:{cert}}}"),
            Key::SiiTokenLock { env, cert } => format!("{ns}:sii-token-lock:{{{env}:{cert}}}"),
            Key::TaxQuote(h) => format!("{ns}:tax-quote:{h}"),
            Key::ConsoleSession(h) => format!("{ns}:console-session:{h}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `memory`, `redis` or `tiered`.
    pub mode: String,
    /// `redis://host:port` (standalone) or several comma-separated (Cluster).
    pub redis_urls: Vec<String>,
    pub cluster: bool,
    pub namespace: String,
    /// TTL of the memory layer in tiered mode (short: it is a copy).
    pub l1_ttl: Duration,
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: "memory".into(),
            redis_urls: vec![],
            cluster: false,
            namespace: "dtegw".into(),
            l1_ttl: Duration::from_secs(5),
            capacity: 100_000,
        }
    }
}

/// Hits and misses per layer, and Redis failures, for metrics and tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub l1_hits: AtomicU64,
    pub l1_misses: AtomicU64,
    pub l2_hits: AtomicU64,
    pub l2_misses: AtomicU64,
    pub l2_errors: AtomicU64,
    pub fallback_ops: AtomicU64,
}

pub struct Cache {
    ns: String,
    l1: Option<MemoryCache>,
    l2: Option<RedisL2>,
    /// Serves when Redis is down.
    fallback: MemoryCache,
    degraded: AtomicBool,
    l1_ttl: Duration,
    pub stats: CacheStats,
}

fn count(layer: &'static str, hit: bool) {
    metrics::counter!(crate::telemetry::CACHE_REQUESTS, "layer" => layer, "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

#[derive(Debug, thiserror::Error)]
#[error("cache: {0}")]
pub struct CacheError(pub String);

impl Cache {
    pub async fn new(cfg: &CacheConfig) -> Result<Arc<Cache>, CacheError> {
        let (l1, l2) = match cfg.mode.as_str() {
            "memory" => (Some(MemoryCache::new(cfg.capacity)), None),
            "redis" => (None, Some(RedisL2::new(&cfg.redis_urls, cfg.cluster)?)),
            "tiered" => (Some(MemoryCache::new(cfg.capacity)), Some(RedisL2::new(&cfg.redis_urls, cfg.cluster)?)),
            other => return Err(CacheError(format!("cache mode {other:?} is not memory, redis or tiered"))),
        };
        let cache = Arc::new(Cache {
            ns: cfg.namespace.clone(),
            l1,
            l2,
            fallback: MemoryCache::new(cfg.capacity),
            degraded: AtomicBool::new(false),
            l1_ttl: cfg.l1_ttl,
            stats: CacheStats::default(),
        });
        metrics::gauge!(crate::telemetry::CACHE_DEGRADED).set(0.0);
        if cache.l2.is_some() {
            let weak = Arc::downgrade(&cache);
            tokio::spawn(async move {
                // The probe: while degraded, PING every 500 ms and go back to Redis when it answers.
                while let Some(c) = weak.upgrade() {
                    if c.degraded.load(Ordering::Relaxed) {
                        if let Some(l2) = &c.l2 {
                            if l2.ping().await {
                                c.degraded.store(false, Ordering::Relaxed);
                                metrics::gauge!(crate::telemetry::CACHE_DEGRADED).set(0.0);
                                tracing::info!("Redis is back; the cache uses it again");
                            }
                        }
                    }
                    drop(c);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        Ok(cache)
    }

    pub fn mode(&self) -> &'static str {
        match (&self.l1, &self.l2) {
            (Some(_), Some(_)) => "tiered",
            (None, Some(_)) => "redis",
            _ => "memory",
        }
    }

    /// True while Redis is configured but unreachable and memory stands in.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// A rate-limit decision shared by every instance (GCRA in Redis). `None` when there is no
    /// Redis to share it through, or it is down: the caller decides locally.
    pub async fn rate_limit(&self, id: &str, per_second: f64, burst: f64) -> Option<Result<(), Duration>> {
        let l2 = self.use_l2()?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
        let interval = 1000.0 / per_second.max(0.001);
        let key = format!("{}:rate:{{{id}}}", self.ns);
        match l2.gcra(&key, now, interval, (burst - 1.0).max(0.0) * interval).await {
            Ok((true, _)) => Some(Ok(())),
            Ok((false, wait)) => Some(Err(Duration::from_millis(wait.max(1.0) as u64))),
            Err(e) => {
                self.trip(&e);
                None
            }
        }
    }

    /// Records a revoked API key hash until `until_ms` in the shared revocation list.
    pub async fn revoke(&self, hash: &str, until_ms: f64) -> bool {
        let Some(l2) = self.use_l2() else { return false };
        match l2.zadd(&format!("{}:revoked", self.ns), hash, until_ms).await {
            Ok(()) => true,
            Err(e) => {
                self.trip(&e);
                false
            }
        }
    }

    /// The shared revocation list; `None` without a reachable Redis.
    pub async fn revoked(&self) -> Option<Vec<String>> {
        let l2 = self.use_l2()?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as f64;
        match l2.zlive(&format!("{}:revoked", self.ns), now).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.trip(&e);
                None
            }
        }
    }

    /// The Redis pool: connections in use, callers waiting (`None` without Redis).
    pub fn pool_status(&self) -> Option<(usize, usize)> {
        self.l2.as_ref().map(|l2| l2.pool_status())
    }

    /// Asks Redis now (for health checks): marks the cache degraded when it does not answer.
    pub async fn check(&self) -> bool {
        match &self.l2 {
            None => true,
            Some(l2) => {
                let ok = l2.ping().await;
                if !ok {
                    self.trip(&CacheError("Redis does not answer PING".into()));
                }
                ok
            }
        }
    }

    fn use_l2(&self) -> Option<&RedisL2> {
        self.l2.as_ref().filter(|_| !self.degraded())
    }

    fn trip(&self, e: &CacheError) {
        self.stats.l2_errors.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(crate::telemetry::CACHE_DEGRADED).set(1.0);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Redis unreachable; serving from memory until it returns");
        }
    }

    /// The memory that stands for the shared layer: L1 in memory mode, the fallback otherwise.
    fn memory_only(&self) -> &MemoryCache {
        self.l1.as_ref().filter(|_| self.l2.is_none()).unwrap_or(&self.fallback)
    }

    /// The memory that holds local-only keys.
    fn local(&self) -> &MemoryCache {
        self.l1.as_ref().unwrap_or(&self.fallback)
    }

    pub async fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let k = key.render(&self.ns);
        if key.local_only() {
            let v = self.local().get(&k);
            let (hits, misses) = (&self.stats.l1_hits, &self.stats.l1_misses);
            if v.is_some() { hits } else { misses }.fetch_add(1, Ordering::Relaxed);
            count("l1", v.is_some());
            return v;
        }
        if let Some(l1) = self.l1.as_ref().filter(|_| key.l1_allowed() || self.l2.is_none()) {
            if let Some(v) = l1.get(&k) {
                self.stats.l1_hits.fetch_add(1, Ordering::Relaxed);
                count("l1", true);
                return Some(v);
            }
            self.stats.l1_misses.fetch_add(1, Ordering::Relaxed);
            count("l1", false);
        }
        let Some(l2) = self.use_l2() else {
            if self.l2.is_some() {
                self.stats.fallback_ops.fetch_add(1, Ordering::Relaxed);
                return self.fallback.get(&k);
            }
            return None;
        };
        match l2.get(&k).await {
            Ok(Some((v, ttl))) => {
                self.stats.l2_hits.fetch_add(1, Ordering::Relaxed);
                count("l2", true);
                if let Some(l1) = self.l1.as_ref().filter(|_| key.l1_allowed()) {
                    l1.set(&k, &v, ttl.min(self.l1_ttl));
                }
                Some(v)
            }
            Ok(None) => {
                self.stats.l2_misses.fetch_add(1, Ordering::Relaxed);
                count("l2", false);
                None
            }
            Err(e) => {
                self.trip(&e);
                self.fallback.get(&k)
            }
        }
    }

    pub async fn set(&self, key: &Key, value: &[u8], ttl: Duration) {
        let k = key.render(&self.ns);
        if key.local_only() {
            self.local().set(&k, value, ttl);
            return;
        }
        if let Some(l1) = self.l1.as_ref().filter(|_| key.l1_allowed() || self.l2.is_none()) {
            l1.set(&k, value, ttl.min(if self.l2.is_some() { self.l1_ttl } else { ttl }));
        }
        match self.use_l2() {
            Some(l2) => {
                if let Err(e) = l2.set(&k, value, ttl).await {
                    self.trip(&e);
                    self.fallback.set(&k, value, ttl);
                }
            }
            None if self.l2.is_some() => self.fallback.set(&k, value, ttl),
            None => {}
        }
    }

    /// Many keys in one round trip (MGET on Redis; per-slot on a Cluster).
    pub async fn get_many(&self, keys: &[Key]) -> Vec<Option<Vec<u8>>> {
        let rendered: Vec<String> = keys.iter().map(|k| k.render(&self.ns)).collect();
        if let Some(l2) = self.use_l2() {
            match l2.mget(&rendered).await {
                Ok(v) => return v,
                Err(e) => self.trip(&e),
            }
        }
        let mem = self.memory_only();
        rendered.iter().map(|k| mem.get(k)).collect()
    }

    /// Set only if absent: the cross-instance lock of single-flight work.
    pub async fn set_nx(&self, key: &Key, value: &[u8], ttl: Duration) -> bool {
        let k = key.render(&self.ns);
        match self.use_l2() {
            Some(l2) => match l2.set_nx(&k, value, ttl).await {
                Ok(b) => b,
                Err(e) => {
                    self.trip(&e);
                    self.fallback.set_nx(&k, value, ttl)
                }
            },
            None => self.memory_only().set_nx(&k, value, ttl),
        }
    }

    /// Reads from Redis only, never from a memory stand-in: for values that must be the same on
    /// every instance or not be at all (console sessions). `Err` when there is no Redis or it fails.
    pub async fn shared_get(&self, key: &Key) -> Result<Option<Vec<u8>>, CacheError> {
        let l2 = self.l2.as_ref().ok_or_else(|| CacheError("no Redis configured".into()))?;
        l2.get(&key.render(&self.ns)).await.map(|v| v.map(|(v, _)| v)).inspect_err(|e| self.trip(e))
    }

    /// Writes to Redis only (see [`Cache::shared_get`]).
    pub async fn shared_set(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let l2 = self.l2.as_ref().ok_or_else(|| CacheError("no Redis configured".into()))?;
        l2.set(&key.render(&self.ns), value, ttl).await.inspect_err(|e| self.trip(e))
    }

    /// Deletes from Redis only (see [`Cache::shared_get`]).
    pub async fn shared_del(&self, key: &Key) -> Result<(), CacheError> {
        let l2 = self.l2.as_ref().ok_or_else(|| CacheError("no Redis configured".into()))?;
        l2.del(&key.render(&self.ns)).await.inspect_err(|e| self.trip(e))
    }

    pub async fn del(&self, key: &Key) {
        let k = key.render(&self.ns);
        if let Some(l1) = &self.l1 {
            l1.del(&k);
        }
        self.fallback.del(&k);
        if let Some(l2) = self.use_l2() {
            if let Err(e) = l2.del(&k).await {
                self.trip(&e);
            }
        }
    }
}
