//! The in-process cache: TTL per entry, bounded (oldest-expiring entries go first when full).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct MemoryCache {
    map: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    capacity: usize,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> MemoryCache {
        MemoryCache { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut m = self.map.lock().ok()?;
        match m.get(key) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let Ok(mut m) = self.map.lock() else { return };
        if m.len() >= self.capacity && !m.contains_key(key) {
            let now = Instant::now();
            m.retain(|_, (_, exp)| *exp > now);
            if m.len() >= self.capacity {
                // Still full of live entries: drop the tenth that expires soonest.
                let mut by_exp: Vec<(String, Instant)> = m.iter().map(|(k, (_, e))| (k.clone(), *e)).collect();
                by_exp.sort_by_key(|(_, e)| *e);
                for (k, _) in by_exp.into_iter().take(self.capacity / 10 + 1) {
                    m.remove(&k);
                }
            }
        }
        m.insert(key.to_string(), (value.to_vec(), Instant::now() + ttl));
    }

    /// Sets only when absent (or expired); true when set.
    pub fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        let Ok(mut m) = self.map.lock() else { return false };
        if m.get(key).is_some_and(|(_, exp)| *exp > Instant::now()) {
            return false;
        }
        m.insert(key.to_string(), (value.to_vec(), Instant::now() + ttl));
        true
    }

    pub fn del(&self, key: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
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
        assert!(c.len() <= 10);
        assert!(c.set_nx("lock", b"1", Duration::from_secs(1)));
        assert!(!c.set_nx("lock", b"2", Duration::from_secs(1)));
    }
}
