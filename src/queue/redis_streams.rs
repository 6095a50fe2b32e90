//! Redis Streams: one stream, one consumer group. XREADGROUP hands out new messages, XAUTOCLAIM
//! takes over those idle past the visibility timeout (a crashed or stuck consumer's), XPENDING
//! gives their delivery count, and past `max_deliveries` a message moves to `{stream}:dlq` with the
//! reason. Acknowledged messages are deleted, so XLEN is the depth.

use std::time::Duration;

use redis::Value;

use super::{DeadLetter, Message, QueueError};

const GROUP: &str = "gateway";
const MAX_BLOCK: Duration = Duration::from_millis(250);

enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

pub struct RedisQueue {
    pool: Pool,
    stream: String,
    dlq: String,
    visibility: Duration,
    max_deliveries: u64,
}

fn err(e: impl std::fmt::Display) -> QueueError {
    QueueError(e.to_string())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).to_string()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// A stream entry's fields, in order.
type Fields = Vec<(String, Vec<u8>)>;

/// `[id, [field, value, …]]` → (id, fields).
fn entry(v: &Value) -> Option<(String, Fields)> {
    let e = items(v);
    let id = text(e.first()?)?;
    let fields = items(e.get(1)?).chunks(2).filter_map(|kv| Some((text(kv.first()?)?, bytes(kv.get(1)?)?))).collect();
    Some((id, fields))
}

fn field(fields: &Fields, name: &str) -> Option<Vec<u8>> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

impl RedisQueue {
    /// On a Cluster (`urls` of several nodes or `cluster`), `stream` should carry a hash tag
    /// (`{dte}:batches`) so the stream and its dead letters share a slot.
    pub async fn new(
        urls: &[String],
        cluster: bool,
        stream: &str,
        visibility: Duration,
        max_deliveries: u64,
    ) -> Result<RedisQueue, QueueError> {
        let rt = Some(deadpool_redis::Runtime::Tokio1);
        let pool = match urls {
            [] => return Err(QueueError("the Redis queue needs a Redis URL".into())),
            [one] if !cluster => {
                Pool::Single(deadpool_redis::Config::from_url(one.clone()).create_pool(rt).map_err(err)?)
            }
            many => {
                Pool::Cluster(deadpool_redis::cluster::Config::from_urls(many.to_vec()).create_pool(rt).map_err(err)?)
            }
        };
        let q = RedisQueue {
            pool,
            stream: stream.into(),
            dlq: format!("{stream}:dlq"),
            visibility,
            max_deliveries: max_deliveries.max(1),
        };
        q.create_group().await?;
        Ok(q)
    }

    async fn create_group(&self) -> Result<(), QueueError> {
        match self
            .cmd::<Value>(redis::cmd("XGROUP").arg("CREATE").arg(&self.stream).arg(GROUP).arg("0").arg("MKSTREAM"))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.0.contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, c: &mut redis::Cmd) -> Result<T, QueueError> {
        match &self.pool {
            Pool::Single(p) => c.query_async(&mut p.get().await.map_err(err)?).await.map_err(err),
            Pool::Cluster(p) => c.query_async(&mut p.get().await.map_err(err)?).await.map_err(err),
        }
    }

    async fn pipe(&self, p: &redis::Pipeline) -> Result<(), QueueError> {
        match &self.pool {
            Pool::Single(pool) => p.query_async::<()>(&mut pool.get().await.map_err(err)?).await.map_err(err),
            Pool::Cluster(pool) => p.query_async::<()>(&mut pool.get().await.map_err(err)?).await.map_err(err),
        }
    }

    pub async fn push(&self, payload: &[u8]) -> Result<String, QueueError> {
        self.cmd(redis::cmd("XADD").arg(&self.stream).arg("*").arg("p").arg(payload)).await
    }

    /// Many messages in pipelined round trips.
    pub async fn push_many(&self, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        for chunk in payloads.chunks(500) {
            let mut p = redis::pipe();
            for payload in chunk {
                p.cmd("XADD").arg(&self.stream).arg("*").arg("p").arg(payload).ignore();
            }
            self.pipe(&p).await?;
        }
        Ok(())
    }

    async fn deliveries(&self, id: &str) -> u64 {
        let v: Result<Value, _> =
            self.cmd(redis::cmd("XPENDING").arg(&self.stream).arg(GROUP).arg(id).arg(id).arg(1)).await;
        v.ok()
            .and_then(|v| items(&v).first().and_then(|e| items(e).get(3).and_then(text)).and_then(|n| n.parse().ok()))
            .unwrap_or(1)
    }

    pub async fn take(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        match self.take_once(consumer, max, wait).await {
            // A Redis that lost its data (restarted without persistence) lost the group too.
            Err(e) if e.0.contains("NOGROUP") => {
                self.create_group().await?;
                Ok(vec![])
            }
            other => other,
        }
    }

    async fn take_once(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let mut out = Vec::new();
        let claimed: Value = self
            .cmd(
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(self.visibility.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(max),
            )
            .await?;
        for e in items(items(&claimed).get(1).unwrap_or(&Value::Nil)) {
            if let Some((id, fields)) = entry(e) {
                let deliveries = self.deliveries(&id).await;
                out.push(Message { id, payload: field(&fields, "p").unwrap_or_default(), deliveries });
            }
        }
        if out.len() < max {
            let mut c = redis::cmd("XREADGROUP");
            c.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(max - out.len());
            if out.is_empty() && !wait.is_zero() {
                // Kept under the client's response timeout, which would otherwise cut the wait short
                // with an error.
                c.arg("BLOCK").arg(wait.min(MAX_BLOCK).as_millis().max(1) as u64);
            }
            let read: Value = self.cmd(c.arg("STREAMS").arg(&self.stream).arg(">")).await?;
            for s in items(&read) {
                for e in items(items(s).get(1).unwrap_or(&Value::Nil)) {
                    if let Some((id, fields)) = entry(e) {
                        out.push(Message { id, payload: field(&fields, "p").unwrap_or_default(), deliveries: 1 });
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn ack_many(&self, ids: &[String]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        p.atomic()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(ids)
            .ignore();
        self.pipe(&p).await
    }

    pub async fn ack(&self, id: &str) -> Result<(), QueueError> {
        // One round trip: acknowledged and deleted together (XLEN stays the depth).
        let mut p = redis::pipe();
        p.atomic()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(id)
            .ignore();
        self.pipe(&p).await
    }

    pub async fn fail(&self, msg: &Message, reason: &str) -> Result<bool, QueueError> {
        if msg.deliveries < self.max_deliveries {
            // Left pending: XAUTOCLAIM hands it out again after the visibility timeout.
            return Ok(false);
        }
        self.cmd::<String>(
            redis::cmd("XADD")
                .arg(&self.dlq)
                .arg("*")
                .arg("p")
                .arg(&msg.payload)
                .arg("reason")
                .arg(reason)
                .arg("deliveries")
                .arg(msg.deliveries)
                .arg("source")
                .arg(&msg.id),
        )
        .await?;
        self.ack(&msg.id).await?;
        Ok(true)
    }

    /// Restores a dead letter the store remembers and the stream lost.
    pub async fn bury(&self, payload: &[u8], reason: &str, deliveries: u64) -> Result<(), QueueError> {
        self.cmd::<String>(
            redis::cmd("XADD")
                .arg(&self.dlq)
                .arg("*")
                .arg("p")
                .arg(payload)
                .arg("reason")
                .arg(reason)
                .arg("deliveries")
                .arg(deliveries),
        )
        .await?;
        Ok(())
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let v: Value = self.cmd(redis::cmd("XRANGE").arg(&self.dlq).arg("-").arg("+")).await?;
        Ok(items(&v)
            .iter()
            .filter_map(entry)
            .map(|(id, f)| DeadLetter {
                id,
                payload: field(&f, "p").unwrap_or_default(),
                reason: field(&f, "reason").map(|r| String::from_utf8_lossy(&r).to_string()).unwrap_or_default(),
                deliveries: field(&f, "deliveries").and_then(|d| String::from_utf8_lossy(&d).parse().ok()).unwrap_or(0),
            })
            .collect())
    }

    pub async fn replay(&self, id: &str) -> Result<bool, QueueError> {
        let v: Value = self.cmd(redis::cmd("XRANGE").arg(&self.dlq).arg(id).arg(id)).await?;
        let Some((_, f)) = items(&v).first().and_then(entry) else { return Ok(false) };
        self.push(&field(&f, "p").unwrap_or_default()).await?;
        self.cmd::<i64>(redis::cmd("XDEL").arg(&self.dlq).arg(id)).await?;
        Ok(true)
    }

    pub async fn dead_count(&self) -> Result<u64, QueueError> {
        self.cmd(redis::cmd("XLEN").arg(&self.dlq)).await
    }

    pub async fn depth(&self) -> Result<u64, QueueError> {
        self.cmd(redis::cmd("XLEN").arg(&self.stream)).await
    }
}
