//! A circuit breaker per SII host: open after N consecutive failures, stay open for a cool-down,
//! then let one probe through (half-open); a success closes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

pub struct Breaker {
    pub host: String,
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
    /// How many times it opened (for health and tests).
    pub opened: AtomicU64,
}

impl Breaker {
    pub fn new(host: &str, threshold: u32, cooldown: Duration) -> Breaker {
        metrics::gauge!(crate::telemetry::SII_CIRCUIT_STATE, "host" => host.to_string()).set(0.0);
        metrics::counter!(crate::telemetry::SII_CIRCUIT_OPENED, "host" => host.to_string()).increment(0);
        Breaker {
            host: host.into(),
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner { failures: 0, open_until: None, probing: false }),
            opened: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> BreakerState {
        let Ok(i) = self.inner.lock() else { return BreakerState::Open };
        match i.open_until {
            None => BreakerState::Closed,
            Some(t) if Instant::now() < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// May a call go out now? In half-open, only one probe at a time.
    pub fn allow(&self) -> bool {
        let Ok(mut i) = self.inner.lock() else { return false };
        match i.open_until {
            None => true,
            Some(t) if Instant::now() < t => false,
            Some(_) if i.probing => false,
            Some(_) => {
                i.probing = true;
                true
            }
        }
    }

    pub fn success(&self) {
        if let Ok(mut i) = self.inner.lock() {
            if i.open_until.is_some() {
                tracing::info!(host = %self.host, "SII circuit closed");
                metrics::gauge!(crate::telemetry::SII_CIRCUIT_STATE, "host" => self.host.clone()).set(0.0);
            }
            *i = Inner { failures: 0, open_until: None, probing: false };
        }
    }

    pub fn failure(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.failures += 1;
            let reopen = i.probing || (i.open_until.is_none() && i.failures >= self.threshold);
            if reopen {
                i.open_until = Some(Instant::now() + self.cooldown);
                i.probing = false;
                self.opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(host = %self.host, failures = i.failures, "SII circuit open");
                metrics::gauge!(crate::telemetry::SII_CIRCUIT_STATE, "host" => self.host.clone()).set(1.0);
                metrics::counter!(crate::telemetry::SII_CIRCUIT_OPENED, "host" => self.host.clone()).increment(1);
            }
        }
    }

    /// How long until a call may go out.
    pub fn retry_in(&self) -> Duration {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.open_until)
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let b = Breaker::new("sii", 3, Duration::from_millis(50));
        for _ in 0..2 {
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
    }
}
