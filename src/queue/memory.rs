//! The in-process queue: the same semantics as the Redis one, for the embedded default.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DeadLetter, Message};

struct State {
    ready: VecDeque<(String, Vec<u8>, u64)>,
    /// id → (payload, deliveries, visible again at)
    in_flight: HashMap<String, (Vec<u8>, u64, Instant)>,
    dead: Vec<DeadLetter>,
    next: u64,
}

pub struct MemoryQueue {
    state: Mutex<State>,
    notify: tokio::sync::Notify,
    visibility: Duration,
    max_deliveries: u64,
}

impl MemoryQueue {
    pub fn new(visibility: Duration, max_deliveries: u64) -> MemoryQueue {
        MemoryQueue {
            state: Mutex::new(State { ready: VecDeque::new(), in_flight: HashMap::new(), dead: Vec::new(), next: 1 }),
            notify: tokio::sync::Notify::new(),
            visibility,
            max_deliveries: max_deliveries.max(1),
        }
    }

    pub fn push(&self, payload: &[u8]) -> String {
        let id = match self.state.lock() {
            Ok(mut s) => {
                let id = format!("m{}", s.next);
                s.next += 1;
                s.ready.push_back((id.clone(), payload.to_vec(), 0));
                id
            }
            Err(_) => String::new(),
        };
        self.notify.notify_waiters();
        id
    }

    fn take_now(&self, max: usize) -> Vec<Message> {
        let Ok(mut s) = self.state.lock() else { return vec![] };
        let now = Instant::now();
        let mut out = Vec::new();
        // Silent consumers first: their messages are visible again.
        let stale: Vec<String> =
            s.in_flight.iter().filter(|(_, (_, _, at))| *at <= now).map(|(id, _)| id.clone()).take(max).collect();
        for id in stale {
            if let Some((p, d, _)) = s.in_flight.remove(&id) {
                s.in_flight.insert(id.clone(), (p.clone(), d + 1, now + self.visibility));
                out.push(Message { id, payload: p, deliveries: d + 1 });
            }
        }
        while out.len() < max {
            let Some((id, p, d)) = s.ready.pop_front() else { break };
            s.in_flight.insert(id.clone(), (p.clone(), d + 1, now + self.visibility));
            out.push(Message { id, payload: p, deliveries: d + 1 });
        }
        out
    }

    pub async fn take(&self, max: usize, wait: Duration) -> Vec<Message> {
        let got = self.take_now(max);
        if !got.is_empty() || wait.is_zero() {
            return got;
        }
        let _ = tokio::time::timeout(wait, self.notify.notified()).await;
        self.take_now(max)
    }

    pub fn ack(&self, id: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.in_flight.remove(id);
        }
    }

    pub fn fail(&self, msg: &Message, reason: &str) -> bool {
        let Ok(mut s) = self.state.lock() else { return false };
        if msg.deliveries >= self.max_deliveries {
            s.in_flight.remove(&msg.id);
            s.dead.push(DeadLetter {
                id: msg.id.clone(),
                payload: msg.payload.clone(),
                reason: reason.into(),
                deliveries: msg.deliveries,
            });
            true
        } else {
            // Visible again after the visibility timeout, like an unacknowledged Redis message.
            false
        }
    }

    /// Restores a dead letter the store remembers (this queue does not survive a restart).
    pub fn bury(&self, payload: &[u8], reason: &str, deliveries: u64) {
        if let Ok(mut s) = self.state.lock() {
            let id = format!("m{}", s.next);
            s.next += 1;
            s.dead.push(DeadLetter { id, payload: payload.to_vec(), reason: reason.into(), deliveries });
        }
    }

    pub fn dead_count(&self) -> u64 {
        self.state.lock().map(|s| s.dead.len() as u64).unwrap_or(0)
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state.lock().map(|s| s.dead.clone()).unwrap_or_default()
    }

    pub fn replay(&self, id: &str) -> bool {
        let Ok(mut s) = self.state.lock() else { return false };
        let Some(pos) = s.dead.iter().position(|d| d.id == id) else { return false };
        let d = s.dead.remove(pos);
        s.ready.push_back((d.id, d.payload, 0));
        drop(s);
        self.notify.notify_waiters();
        true
    }

    pub fn depth(&self) -> u64 {
        self.state.lock().map(|s| (s.ready.len() + s.in_flight.len()) as u64).unwrap_or(0)
    }
}
