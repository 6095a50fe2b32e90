//! The batch workers: take an item pointer from the queue, issue the item with `batch id + index`
//! as its idempotency key, record the outcome, acknowledge. A crash anywhere in between makes the
//! message come back, and the idempotency key turns the second issuance into a replay of the first.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::Instrument;

use super::intake::describe;
use super::service::{message, Batches, ItemRef};
use crate::queue::{Message, Queue};
use crate::service::{Issue, ServiceError};
use crate::store::batches::{Backlog, DEAD, FAILED, ISSUED, PENDING};
use crate::telemetry;

/// Errors that another try cannot mend: the item fails for good. Anything else (no folios left, no
/// certificate yet, the database away) is retried and, past the limit, goes to the dead letters.
fn permanent(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Dte(_)
            | ServiceError::BadRequest(_)
            | ServiceError::NotFound(_)
            | ServiceError::Forbidden(_)
            | ServiceError::IdempotencyMismatch
    )
}

/// Messages a worker takes and issues at once.
const BLOCK: usize = 64;

/// How long an intake may take before its batch counts as abandoned.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::hours(1);

impl Batches {
    /// Puts back on the queue what the store says is waiting and the queue may have lost: on the
    /// memory queue everything (it does not survive a restart); on Redis the items of batches whose
    /// instance died before queueing them and, when the stream is empty while items still wait,
    /// those (Redis lost its data). A message queued twice is harmless: the second finds its item
    /// issued, or replays the first issuance.
    pub async fn recover(&self) -> Result<usize, super::BatchError> {
        let memory = matches!(*self.queue, Queue::Memory(_));
        let dropped = self.svc.store.drop_unfinished_batches(Utc::now() - ABANDONED_AFTER).await?;
        if dropped > 0 {
            tracing::warn!(batches = dropped, "dropped batches whose intake never finished");
        }
        let before =
            Utc::now() - chrono::Duration::from_std(self.cfg.requeue_after).unwrap_or(chrono::Duration::minutes(2));
        let mut backlog = Vec::new();
        if memory {
            backlog = self.svc.store.batch_backlog(Backlog::All).await?;
        } else {
            backlog.extend(self.svc.store.batch_backlog(Backlog::Unqueued(before)).await?);
            if self.queue.depth().await? == 0 {
                backlog.extend(self.svc.store.batch_backlog(Backlog::Stale(before)).await?);
            }
        }
        if !memory {
            // Dead items the stream does not hold (Redis lost its data) go back to the dead letters.
            let held: std::collections::HashSet<(String, i64)> =
                self.dead_letters().await?.into_iter().map(|d| (d.batch, d.index)).collect();
            let dead = self.svc.store.batch_backlog(Backlog::Dead).await?;
            backlog.extend(dead.into_iter().filter(|d| !held.contains(&(d.batch.clone(), d.idx))));
        }
        let mut batches = std::collections::BTreeSet::new();
        let mut pending = Vec::new();
        for item in &backlog {
            let msg = message(&item.batch, item.idx, None, None);
            if item.state == DEAD {
                self.queue.bury(&msg, item.error.as_deref().unwrap_or(""), item.attempts as u64).await?;
            } else {
                pending.push(msg);
                batches.insert(item.batch.clone());
            }
        }
        self.queue.push_many(&pending).await?;
        if !memory {
            for b in &batches {
                if let Some(rec) = self.svc.store.get_batch(b).await? {
                    self.svc.store.batch_progress(b, rec.total, Some(Utc::now())).await?;
                }
            }
        }
        if !backlog.is_empty() {
            tracing::warn!(items = backlog.len(), batches = batches.len(), "batch items put back on the queue");
        }
        Ok(backlog.len())
    }

    /// Puts back what the queue may have lost, then starts the workers and the housekeeping loop.
    /// The recovery runs before the instance serves, so what it shows is complete.
    pub async fn start(self: &Arc<Self>) {
        if let Err(e) = self.recover().await {
            tracing::warn!(error = %e, "batch recovery failed");
        }
        self.spawn();
    }

    fn spawn(self: &Arc<Self>) {
        let consumer =
            format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into()), std::process::id());
        for n in 0..self.cfg.workers {
            let (me, name) = (self.clone(), format!("{consumer}-{n}"));
            tokio::spawn(async move { me.work(&name).await });
        }
        let me = self.clone();
        tokio::spawn(async move {
            // Recovery on Redis runs at half the requeue delay, at most every minute.
            let every = (me.cfg.requeue_after / 2).clamp(Duration::from_secs(5), Duration::from_secs(60));
            let mut last = std::time::Instant::now();
            loop {
                me.refresh_gauges().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                if last.elapsed() >= every && !matches!(*me.queue, Queue::Memory(_)) {
                    last = std::time::Instant::now();
                    if let Err(e) = me.recover().await {
                        tracing::warn!(error = %e, "batch recovery failed");
                    }
                }
            }
        });
    }

    pub async fn refresh_gauges(&self) {
        if let Ok(d) = self.queue.depth().await {
            metrics::gauge!(telemetry::BATCH_QUEUE_DEPTH).set(d as f64);
        }
        if let Ok(n) = self.queue.dead_count().await {
            metrics::gauge!(telemetry::BATCH_DLQ_SIZE).set(n as f64);
        }
        if let Ok(oldest) = self.svc.store.oldest_pending_item().await {
            let age = oldest.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
            metrics::gauge!(telemetry::BATCH_OLDEST_PENDING_SECONDS).set(age);
        }
    }

    async fn work(&self, consumer: &str) {
        loop {
            match self.queue.take(consumer, BLOCK, Duration::from_secs(1)).await {
                // The block's items are issued together, so those of one company join one
                // issuance group (one transaction, folios in a row) instead of one each.
                Ok(msgs) => self.handle_block(msgs).await,
                Err(e) => {
                    tracing::warn!(error = %e, "batch queue unavailable");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Tells the batch's companies when its last item was processed (once, whichever worker).
    pub(super) async fn finish(&self, batch: &str) {
        match self.svc.store.finish_batch(batch, Utc::now()).await {
            Ok(true) => tracing::info!(batch, "batch issued"),
            Ok(false) => {}
            Err(e) => tracing::warn!(batch, error = %e, "could not mark the batch done"),
        }
    }

    fn outcome(outcome: &'static str) {
        metrics::counter!(telemetry::BATCH_ITEMS, "outcome" => outcome).increment(1);
    }

    /// A block of messages: per batch, its items read in one query, issued together, their
    /// outcomes written in one statement and acknowledged in one round trip. A failure to record
    /// leaves the messages unacknowledged: they come back and the idempotency key replays the
    /// issuance.
    async fn handle_block(&self, msgs: Vec<Message>) {
        let mut by_batch: std::collections::BTreeMap<String, Vec<(Message, ItemRef)>> = Default::default();
        let mut unreadable = Vec::new();
        for m in msgs {
            match serde_json::from_slice::<ItemRef>(&m.payload) {
                Ok(r) => by_batch.entry(r.b.clone()).or_default().push((m, r)),
                Err(_) => {
                    tracing::error!(message = %m.id, "unreadable batch message dropped");
                    unreadable.push(m.id);
                }
            }
        }
        let _ = self.queue.ack_many(&unreadable).await;
        for (batch, entries) in by_batch {
            self.handle_batch_block(&batch, entries).await;
        }
    }

    async fn handle_batch_block(&self, batch: &str, entries: Vec<(Message, ItemRef)>) {
        let store = &self.svc.store;
        let idxs = entries.iter().map(|(_, r)| r.i).collect();
        let mut items: std::collections::HashMap<i64, _> = match store.batch_items_at(batch, idxs).await {
            Ok(v) => v.into_iter().map(|(row, payload)| (row.index, (row, payload))).collect(),
            // Left unacknowledged: they come back after the visibility timeout.
            Err(e) => return tracing::warn!(batch, error = %e, "batch items unreadable for now"),
        };
        let mut done_ids = Vec::new();
        let mut work = Vec::new();
        for (m, r) in entries {
            match items.remove(&r.i) {
                Some((row, payload)) if row.state == PENDING => work.push((m, r, row.company, payload)),
                // Gone, or already settled by an earlier delivery.
                _ => done_ids.push(m.id),
            }
        }
        let key = format!("batch:{batch}");
        let results = futures_util::future::join_all(work.iter().map(|(m, r, company, payload)| {
            let span = tracing::info_span!("batch_item", request_id = r.r.as_deref().unwrap_or(""), batch = %r.b, index = r.i, delivery = m.deliveries, trace_id = tracing::field::Empty);
            crate::otel::adopt(&span, r.t.as_deref());
            let body = payload.as_deref().unwrap_or_default();
            let (key, idx) = (&key, r.i.to_string());
            async move {
                let r = self.svc.issue(company, Some(key), Some(&idx), body.as_bytes()).await;
                // Logged inside the item's span, so the line carries the submitting request's id.
                match &r {
                    Ok(Issue::Created(v)) | Ok(Issue::Replayed(v)) => {
                        tracing::info!(company = %company, folio = v.get("folio").and_then(|f| f.as_i64()), "batch item issued")
                    }
                    Err(e) => tracing::info!(company = %company, error = %e, "batch item not issued"),
                }
                r
            }
            .instrument(span)
        }))
        .await;
        let now = Utc::now();
        let mut settled = Vec::new();
        let mut settled_ids = Vec::new();
        let mut finished = false;
        for ((m, r, _, _), result) in work.into_iter().zip(results) {
            match result {
                Ok(Issue::Created(v)) | Ok(Issue::Replayed(v)) => {
                    let folio = v.get("folio").and_then(|f| f.as_i64());
                    Self::outcome("issued");
                    settled.push((r.i, ISSUED, folio, None));
                    settled_ids.push(m.id);
                }
                Err(e) if permanent(&e) => {
                    let reason = match &e {
                        ServiceError::Dte(d) => describe(d),
                        other => other.to_string(),
                    };
                    tracing::info!(batch, index = r.i, error = %reason, "batch item failed");
                    Self::outcome("failed");
                    settled.push((r.i, FAILED, None, Some(reason)));
                    settled_ids.push(m.id);
                }
                Err(e) => finished |= self.retry_later(&m, &r, e.to_string(), now).await,
            }
        }
        if !settled.is_empty() {
            match store.settle_batch_items(batch, settled, now).await {
                Ok(()) => {
                    done_ids.append(&mut settled_ids);
                    finished = true;
                }
                Err(e) => tracing::warn!(batch, error = %e, "batch item outcomes not recorded; they will be retried"),
            }
        }
        if let Err(e) = self.queue.ack_many(&done_ids).await {
            tracing::warn!(batch, error = %e, "batch queue unavailable");
        }
        if finished {
            self.finish(batch).await;
        }
    }

    /// A retryable failure: back on the queue, or past the limit into the dead letters (true).
    async fn retry_later(&self, m: &Message, r: &ItemRef, reason: String, now: chrono::DateTime<Utc>) -> bool {
        let store = &self.svc.store;
        match self.queue.fail(m, &reason).await {
            Ok(true) => {
                tracing::warn!(batch = %r.b, index = r.i, error = %reason, "batch item dead-lettered");
                Self::outcome("dead");
                let _ = store.set_batch_item(&r.b, r.i, DEAD, None, Some(reason), now).await;
                true
            }
            Ok(false) => {
                Self::outcome("retried");
                let _ = store.set_batch_item(&r.b, r.i, PENDING, None, Some(reason), now).await;
                false
            }
            Err(q) => {
                tracing::warn!(error = %q, "batch queue unavailable");
                false
            }
        }
    }
}
