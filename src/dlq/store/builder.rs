//! [`DeadLetterQueueBuilder`]: the queue's settings, checked in one place.

use std::sync::Arc;

use super::durable::DurableQueue;
use super::queue::DeadLetterQueue;
use super::types::DlqConfigError;
use crate::clock::{Clock, MonotonicClock};
use crate::decision::Tier;

/// Most entries waiting for replay (pending and in flight together).
pub const DEFAULT_CAPACITY: usize = 1000;
/// Most permanently failed entries kept for inspection; the oldest is evicted (and counted)
/// beyond it.
pub const DEFAULT_FAILED_CAPACITY: usize = 100;
/// Delivery attempts before an entry is permanently failed (Baldur's `max_retries`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Capacity of the [`DlqEvent`](crate::dlq::DlqEvent) broadcast channel; slow subscribers lag
/// rather than block.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;

/// Builder of a [`DeadLetterQueue`]; consuming setters, everything checked in
/// [`build`](Self::build).
///
/// # Default
///
/// `capacity` [`DEFAULT_CAPACITY`], `failed_capacity` [`DEFAULT_FAILED_CAPACITY`],
/// `max_attempts` [`DEFAULT_MAX_ATTEMPTS`], `event_capacity` [`DEFAULT_EVENT_CAPACITY`], clock
/// [`MonotonicClock`] (tokio's, so paused time is honoured).
#[derive(Debug)]
#[must_use]
pub struct DeadLetterQueueBuilder {
    capacity: usize,
    failed_capacity: usize,
    max_attempts: u32,
    event_capacity: usize,
    clock: Option<Arc<dyn Clock>>,
    skipped_tiers: Vec<Tier>,
    durable: Option<DurableQueue>,
}

/// The settings of a queue, checked by [`DeadLetterQueueBuilder::build`].
pub(super) struct Settings {
    pub(super) capacity: usize,
    pub(super) failed_capacity: usize,
    pub(super) max_attempts: u32,
    pub(super) event_capacity: usize,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) skipped_tiers: Vec<Tier>,
    pub(super) durable: Option<DurableQueue>,
}

impl DeadLetterQueueBuilder {
    /// The defaults ([`DeadLetterQueue::builder`]).
    pub(super) fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            failed_capacity: DEFAULT_FAILED_CAPACITY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            clock: None,
            skipped_tiers: Vec::new(),
            durable: None,
        }
    }

    /// Never parks rejected requests of `tier`; they are counted in
    /// [`DlqStats::tier_skipped`](crate::dlq::DlqStats::tier_skipped). Baldur's policy is `.skip_tier(Tier::NonEssential)`: work
    /// that may be dropped is not worth replaying.
    pub fn skip_tier(mut self, tier: Tier) -> Self {
        if !self.skipped_tiers.contains(&tier) {
            self.skipped_tiers.push(tier);
        }
        self
    }

    /// Most entries waiting for replay (pending and in flight together).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Most permanently failed entries kept.
    pub fn failed_capacity(mut self, capacity: usize) -> Self {
        self.failed_capacity = capacity;
        self
    }

    /// Delivery attempts before an entry is permanently failed.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Capacity of the event channel.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// The clock `captured_at` and event times are read from.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Keeps the entries in `durable` (a queue in a shared store, Redis Streams on
    /// [`RedisStore`](crate::store::RedisStore)) instead of in memory: they outlive the process
    /// and any instance sharing the queue may replay them. `capacity` then bounds only this
    /// instance's bookkeeping; the durable queue has its own bound
    /// ([`DurableQueue::max_len`]). Capture needs a tokio runtime (the append runs in the
    /// background).
    pub fn durable(mut self, durable: DurableQueue) -> Self {
        self.durable = Some(durable);
        self
    }

    /// The queue.
    ///
    /// # Errors
    ///
    /// [`DlqConfigError::Zero`] when `capacity`, `failed_capacity`, `max_attempts` or
    /// `event_capacity` is 0.
    pub fn build(self) -> Result<DeadLetterQueue, DlqConfigError> {
        for (setting, value) in [
            ("capacity", self.capacity),
            ("failed_capacity", self.failed_capacity),
            ("max_attempts", self.max_attempts as usize),
            ("event_capacity", self.event_capacity),
        ] {
            if value == 0 {
                return Err(DlqConfigError::Zero { setting });
            }
        }
        Ok(DeadLetterQueue::new(Settings {
            capacity: self.capacity,
            failed_capacity: self.failed_capacity,
            max_attempts: self.max_attempts,
            event_capacity: self.event_capacity,
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(MonotonicClock::new())),
            skipped_tiers: self.skipped_tiers,
            durable: self.durable,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_settings_are_refused_by_name() {
        let err = DeadLetterQueue::builder().capacity(0).build().unwrap_err();
        assert_eq!(
            err,
            DlqConfigError::Zero {
                setting: "capacity"
            }
        );
        assert!(err.to_string().contains("capacity"));
        assert!(DeadLetterQueue::builder().max_attempts(0).build().is_err());
        assert!(DeadLetterQueue::builder()
            .failed_capacity(0)
            .build()
            .is_err());
        assert!(DeadLetterQueue::builder()
            .event_capacity(0)
            .build()
            .is_err());
    }
}
