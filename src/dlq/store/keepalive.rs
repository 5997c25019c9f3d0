//! Keeping a replayer's durable claims alive while it works through them: a background task per
//! claimed batch resets the idle time of every entry not yet settled, three times per
//! `claim_idle`, so a replay slower than `claim_idle` (or a long batch) is not taken over by
//! another replayer and replayed twice. When the replayer dies, the touches stop with it and
//! its entries are claimed by another after `claim_idle`, as before.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::store::Store;

/// The ids of one claimed batch not settled yet, and the task that keeps them claimed.
#[derive(Debug)]
pub(super) struct Keepalive {
    held: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::AbortHandle>,
}

/// How often the claims are renewed: a third of `claim_idle`, so two renewals can be lost
/// (or late) before another replayer may claim the entries.
fn period(claim_idle: Duration) -> Duration {
    (claim_idle / 3).max(Duration::from_millis(1))
}

impl Keepalive {
    /// Keeps `ids`, claimed by `consumer`, claimed until each is [released](Self::release) or
    /// the keep-alive is dropped. Runs on the current tokio runtime; without one, nothing is
    /// renewed (the claims then last `claim_idle`, as without a keep-alive).
    pub(super) fn start(
        store: Arc<dyn Store>,
        queue: Arc<str>,
        consumer: Arc<str>,
        ids: Vec<String>,
        claim_idle: Duration,
    ) -> Arc<Self> {
        let held = Arc::new(Mutex::new(ids));
        let every = period(claim_idle);
        let task = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let held = held.clone();
            let task = runtime.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let ids = held.lock().clone();
                    if ids.is_empty() {
                        continue;
                    }
                    // An error is retried next period; the replay's own check before each
                    // entry ([`super::Claim::still_held`]) decides whether it is still ours.
                    if let Ok(still) = store.dlq_touch(&queue, &consumer, &ids).await {
                        // Taken over by another replayer: no use renewing it.
                        held.lock().retain(|id| still.contains(id));
                    }
                }
            });
            task.abort_handle()
        });
        Arc::new(Self { held, task })
    }

    /// Stops renewing `id` (its entry was settled, or abandoned).
    fn release(&self, id: &str) {
        self.held.lock().retain(|held| held != id);
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One entry's place in its batch's keep-alive. Dropped — the entry settled or abandoned — the
/// entry is no longer renewed; the last one dropped stops the batch's task.
#[derive(Debug)]
pub(super) struct Held {
    keepalive: Arc<Keepalive>,
    id: String,
}

impl Held {
    pub(super) fn new(keepalive: Arc<Keepalive>, id: String) -> Self {
        Self { keepalive, id }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keepalive.release(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_renewed_three_times_per_claim_idle() {
        assert_eq!(period(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(period(Duration::ZERO), Duration::from_millis(1));
    }
}
