//! The signing pool: one long-lived thread per core that stamps, signs and validates documents off
//! the async executor. Long-lived on purpose: each thread compiles the SII schemas once and keeps
//! them (libxml2 schema contexts are per thread), which a growing and shrinking blocking pool would
//! pay again and again under load.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Task = Box<dyn FnOnce() + Send>;

pub(crate) struct SigningPool {
    tasks: Mutex<Sender<Task>>,
    pub threads: usize,
}

impl SigningPool {
    pub fn new(threads: usize) -> SigningPool {
        let (tx, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("dte-sign-{n}")).spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a signing thread");
            }
        }
        SigningPool { tasks: Mutex::new(tx), threads }
    }

    /// Runs `f` on a pool thread; `None` if it panicked or the pool is gone.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r.ok());
        });
        self.tasks.lock().ok()?.send(task).ok()?;
        rx.await.ok().flatten()
    }
}

fn work(rx: &Mutex<Receiver<Task>>) {
    loop {
        // The lock is held only to take the next task, never while running it.
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        match next {
            Ok(task) => task(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_its_threads_and_survives_a_panic() {
        let pool = SigningPool::new(2);
        let name = pool.run(|| std::thread::current().name().map(String::from)).await.flatten();
        assert!(name.is_some_and(|n| n.starts_with("dte-sign-")));
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
