//! The work queue of batches: memory (embedded default) or Redis Streams (a consumer group;
//! messages a consumer took but did not acknowledge within the visibility timeout are claimed by
//! another with XAUTOCLAIM; after `max_deliveries` a message goes to a dead-letter stream with the
//! reason). Both backends pass the same tests.

mod memory;
mod redis_streams;

use std::time::Duration;

pub use memory::MemoryQueue;
pub use redis_streams::RedisQueue;

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub payload: Vec<u8>,
    /// How many times it has been handed out, this time included.
    pub deliveries: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub id: String,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub reason: String,
    pub deliveries: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("queue: {0}")]
pub struct QueueError(pub String);

pub enum Queue {
    Memory(MemoryQueue),
    Redis(RedisQueue),
}

impl Queue {
    pub fn memory(visibility: Duration, max_deliveries: u64) -> Queue {
        Queue::Memory(MemoryQueue::new(visibility, max_deliveries))
    }

    pub async fn redis(
        urls: &[String],
        cluster: bool,
        stream: &str,
        visibility: Duration,
        max_deliveries: u64,
    ) -> Result<Queue, QueueError> {
        Ok(Queue::Redis(RedisQueue::new(urls, cluster, stream, visibility, max_deliveries).await?))
    }

    pub async fn push(&self, payload: &[u8]) -> Result<String, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.push(payload)),
            Queue::Redis(q) => q.push(payload).await,
        }
    }

    pub async fn push_many(&self, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => {
                for p in payloads {
                    q.push(p);
                }
                Ok(())
            }
            Queue::Redis(q) => q.push_many(payloads).await,
        }
    }

    /// Up to `max` messages for `consumer`: first those whose consumer went silent past the
    /// visibility timeout, then new ones (waiting up to `wait` when there are none).
    pub async fn take(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.take(max, wait).await),
            Queue::Redis(q) => q.take(consumer, max, wait).await,
        }
    }

    pub async fn ack(&self, id: &str) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => {
                q.ack(id);
                Ok(())
            }
            Queue::Redis(q) => q.ack(id).await,
        }
    }

    /// Acknowledges several messages at once (one round trip on Redis).
    pub async fn ack_many(&self, ids: &[String]) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => {
                ids.iter().for_each(|id| q.ack(id));
                Ok(())
            }
            Queue::Redis(q) => q.ack_many(ids).await,
        }
    }

    /// A failed attempt: the message comes back after the visibility timeout, or, past
    /// `max_deliveries`, goes to the dead letters with `reason`. True when it went there.
    pub async fn fail(&self, msg: &Message, reason: &str) -> Result<bool, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.fail(msg, reason)),
            Queue::Redis(q) => q.fail(msg, reason).await,
        }
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.dead_letters()),
            Queue::Redis(q) => q.dead_letters().await,
        }
    }

    /// Restores a dead letter the store remembers (the memory queue after a restart, a Redis that
    /// lost its data).
    pub async fn bury(&self, payload: &[u8], reason: &str, deliveries: u64) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => {
                q.bury(payload, reason, deliveries);
                Ok(())
            }
            Queue::Redis(q) => q.bury(payload, reason, deliveries).await,
        }
    }

    /// How many dead letters there are, without reading them.
    pub async fn dead_count(&self) -> Result<u64, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.dead_count()),
            Queue::Redis(q) => q.dead_count().await,
        }
    }

    /// Puts a dead letter back on the queue (after its cause was fixed).
    pub async fn replay(&self, id: &str) -> Result<bool, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.replay(id)),
            Queue::Redis(q) => q.replay(id).await,
        }
    }

    /// Messages waiting plus those handed out and not acknowledged.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.depth()),
            Queue::Redis(q) => q.depth().await,
        }
    }
}
