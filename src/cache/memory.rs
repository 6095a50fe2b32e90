//! The in-process cache: a bounded concurrent cache (moka: sharded, lock-free reads, TinyLFU
//! admission and LRU eviction amortised in the background) with a time to live per entry. A full
//! cache evicts without scanning or sorting, so an insert costs the same at 10 or 100 000 entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

/// A value and the time to live it was set with.
#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

/// Each entry lives for the TTL it was written with; reads do not extend it.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, e: &Entry, _at: Instant) -> Option<Duration> {
        Some(e.ttl)
    }

    fn expire_after_update(&self, _key: &String, e: &Entry, _at: Instant, _left: Option<Duration>) -> Option<Duration> {
        Some(e.ttl)
    }
}

pub struct MemoryCache {
    map: Cache<String, Entry>,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> MemoryCache {
        MemoryCache { map: Cache::builder().max_capacity(capacity.max(1) as u64).expire_after(PerEntryTtl).build() }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).map(|e| e.value.to_vec())
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.map.insert(key.to_string(), Entry { value: Arc::from(value), ttl });
    }

    /// Sets only when absent (or expired); true when set. Atomic per key.
    pub fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        self.map.entry(key.to_string()).or_insert_with(|| Entry { value: Arc::from(value), ttl }).is_fresh()
    }

    pub fn del(&self, key: &str) {
        self.map.invalidate(key);
    }

    /// Live entries (after pending evictions are applied).
    pub fn len(&self) -> usize {
        self.map.run_pending_tasks();
        self.map.entry_count() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bound_and_nx() {
        let c = MemoryCache::new(10);
        c.set("a", b"1", Duration::from_millis(30));
        assert_eq!(c.get("a").as_deref(), Some(&b"1"[..]));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get("a"), None);
        for i in 0..25 {
            c.set(&format!("k{i}"), b"x", Duration::from_secs(60));
        }
        assert!(c.len() <= 10, "{}", c.len());
        assert!(c.set_nx("lock", b"1", Duration::from_secs(1)));
        assert!(!c.set_nx("lock", b"2", Duration::from_secs(1)));
        assert_eq!(c.get("lock").as_deref(), Some(&b"1"[..]));
        c.del("lock");
        assert!(c.set_nx("lock", b"3", Duration::from_millis(20)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.set_nx("lock", b"4", Duration::from_secs(1)), "an expired entry is absent");
    }
}
