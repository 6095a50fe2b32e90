//! Redis behind deadpool-redis, standalone or Cluster. Every command goes through `run`, which
//! retries with exponential backoff and jitter before giving up.

use std::time::Duration;

use redis::{Cmd, FromRedisValue};

use super::CacheError;

enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

pub struct RedisL2 {
    pool: Pool,
}

const ATTEMPTS: u32 = 3;
const OP_TIMEOUT: Duration = Duration::from_millis(300);

fn jitter(base: Duration) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    base + Duration::from_micros((nanos % 1000) as u64 * base.as_micros().max(1) as u64 / 1000)
}

impl RedisL2 {
    pub fn new(urls: &[String], cluster: bool) -> Result<RedisL2, CacheError> {
        if urls.is_empty() {
            return Err(CacheError("redis mode needs redis_urls".into()));
        }
        let pool = if cluster || urls.len() > 1 {
            let cfg = deadpool_redis::cluster::Config::from_urls(urls.to_vec());
            Pool::Cluster(
                cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1)).map_err(|e| CacheError(e.to_string()))?,
            )
        } else {
            let cfg = deadpool_redis::Config::from_url(urls[0].clone());
            Pool::Single(cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1)).map_err(|e| CacheError(e.to_string()))?)
        };
        Ok(RedisL2 { pool })
    }

    async fn once<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, CacheError> {
        let fut = async {
            match &self.pool {
                Pool::Single(p) => {
                    let mut c = p.get().await.map_err(|e| CacheError(e.to_string()))?;
                    cmd.query_async::<T>(&mut c).await.map_err(|e| CacheError(e.to_string()))
                }
                Pool::Cluster(p) => {
                    let mut c = p.get().await.map_err(|e| CacheError(e.to_string()))?;
                    cmd.query_async::<T>(&mut c).await.map_err(|e| CacheError(e.to_string()))
                }
            }
        };
        tokio::time::timeout(OP_TIMEOUT, fut).await.map_err(|_| CacheError("Redis timed out".into()))?
    }

    /// The one place that retries: 3 tries, 10 ms then 40 ms (plus jitter) apart.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, CacheError> {
        let mut wait = Duration::from_millis(10);
        let mut last = CacheError("no attempt".into());
        for attempt in 0..ATTEMPTS {
            match self.once(cmd).await {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
            if attempt + 1 < ATTEMPTS {
                tokio::time::sleep(jitter(wait)).await;
                wait *= 4;
            }
        }
        Err(last)
    }

    /// Connections in use and callers waiting for one.
    pub fn pool_status(&self) -> (usize, usize) {
        let s = match &self.pool {
            Pool::Single(p) => p.status(),
            Pool::Cluster(p) => p.status(),
        };
        (s.size.saturating_sub(s.available), s.waiting)
    }

    pub async fn ping(&self) -> bool {
        self.once::<String>(&redis::cmd("PING")).await.is_ok()
    }

    /// The value and its remaining lifetime.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Duration)>, CacheError> {
        let v: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        match v {
            None => Ok(None),
            Some(v) => {
                let ms: i64 = self.run(redis::cmd("PTTL").arg(key)).await.unwrap_or(-1);
                Ok(Some((v, Duration::from_millis(ms.max(0) as u64))))
            }
        }
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.run::<()>(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ttl.as_millis().max(1) as u64)).await
    }

    pub async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let r: Option<String> = self
            .run(redis::cmd("SET").arg(key).arg(value).arg("NX").arg("PX").arg(ttl.as_millis().max(1) as u64))
            .await?;
        Ok(r.is_some())
    }

    pub async fn del(&self, key: &str) -> Result<(), CacheError> {
        self.run::<i64>(redis::cmd("DEL").arg(key)).await.map(|_| ())
    }

    /// GCRA (a token bucket in one key): allowed, or how many ms until it would be.
    pub async fn gcra(
        &self,
        key: &str,
        now_ms: f64,
        interval_ms: f64,
        tolerance_ms: f64,
    ) -> Result<(bool, f64), CacheError> {
        const SCRIPT: &str = "local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1]) \
            local now = tonumber(ARGV[1]) local interval = tonumber(ARGV[2]) local tol = tonumber(ARGV[3]) \
            if tat < now then tat = now end \
            if now < tat - tol then return {0, tostring(tat - tol - now)} end \
            redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(tol + interval) + 1000) \
            return {1, '0'}";
        let (ok, wait): (i64, String) = self
            .run(redis::cmd("EVAL").arg(SCRIPT).arg(1).arg(key).arg(now_ms).arg(interval_ms).arg(tolerance_ms))
            .await?;
        Ok((ok == 1, wait.parse().unwrap_or(0.0)))
    }

    /// Adds `member` to a sorted set scored by its expiry (ms since the epoch).
    pub async fn zadd(&self, key: &str, member: &str, score: f64) -> Result<(), CacheError> {
        self.run::<i64>(redis::cmd("ZADD").arg(key).arg(score).arg(member)).await.map(|_| ())
    }

    /// Members not yet expired at `now`, after dropping the expired ones.
    pub async fn zlive(&self, key: &str, now: f64) -> Result<Vec<String>, CacheError> {
        self.run::<i64>(redis::cmd("ZREMRANGEBYSCORE").arg(key).arg("-inf").arg(now)).await?;
        self.run(redis::cmd("ZRANGEBYSCORE").arg(key).arg(now).arg("+inf")).await
    }

    pub async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        match &self.pool {
            Pool::Single(_) => self.run(redis::cmd("MGET").arg(keys)).await,
            // Keys of a Cluster live on many nodes; one GET per key through the routing client.
            Pool::Cluster(_) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(self.run(redis::cmd("GET").arg(k)).await?);
                }
                Ok(out)
            }
        }
    }
}
