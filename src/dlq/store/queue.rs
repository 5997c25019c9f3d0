//! [`DeadLetterQueue`]: the bounded queue itself, its counters, its events and its audit trail.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::builder::{DeadLetterQueueBuilder, Settings};
use super::types::{
    CapturedRequest, DeadLetter, DlqConfigError, DlqEvent, DlqStats, EntryId, EntryState,
};
use crate::audit::AuditTrail;
use crate::clock::Clock;
use crate::decision::{RejectReason, Tier};

/// A bounded queue of rejected requests waiting to be replayed.
///
/// Cheap to clone; clones share the queue. Filled by
/// [`DeadLetterLayer`](crate::dlq::DeadLetterLayer), drained by
/// [`Replayer`](crate::dlq::Replayer). Delivery is at-least-once: an entry leaves the queue
/// only after a successful replay, or after `max_attempts` failed ones (it then moves to a
/// bounded permanently-failed list). A replay that is cancelled mid-way puts its entries back.
///
/// ```
/// use tower_adaptive_throttle::dlq::DeadLetterQueue;
///
/// let dlq = DeadLetterQueue::builder().capacity(500).max_attempts(5).build()?;
/// assert_eq!(dlq.stats().capacity, 500);
/// assert!(dlq.is_empty());
/// # Ok::<(), tower_adaptive_throttle::dlq::DlqConfigError>(())
/// ```
#[derive(Clone)]
pub struct DeadLetterQueue {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    capacity: usize,
    pub(super) failed_capacity: usize,
    pub(super) max_attempts: u32,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<DlqEvent>,
    audit: AuditTrail<DlqEvent>,
    pub(super) state: Mutex<State>,
    skipped_tiers: Vec<Tier>,
    pub(super) durable: Option<super::DurableQueue>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) next_id: u64,
    pub(super) pending: VecDeque<DeadLetter>,
    pub(super) in_flight: HashMap<EntryId, DeadLetter>,
    pub(super) failed: VecDeque<DeadLetter>,
    pub(super) stats: DlqStats,
}

impl fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for DeadLetterQueue {
    fn default() -> Self {
        Self::builder()
            .build()
            .expect("the default settings are valid")
    }
}

/// Why a rejected request could not be captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotCapturable {
    BodyTooLarge,
    UnknownLength,
    /// The 429 did not hand the body back, or it failed while read.
    BodyUnreadable,
    TierSkipped,
}

impl DeadLetterQueue {
    /// A builder with the defaults.
    pub fn builder() -> DeadLetterQueueBuilder {
        DeadLetterQueueBuilder::new()
    }

    /// The queue of checked `settings`.
    pub(super) fn new(settings: Settings) -> Self {
        let (events, _) = broadcast::channel(settings.event_capacity);
        Self {
            inner: Arc::new(Inner {
                capacity: settings.capacity,
                failed_capacity: settings.failed_capacity,
                max_attempts: settings.max_attempts,
                clock: settings.clock,
                events,
                audit: AuditTrail::default(),
                state: Mutex::new(State::default()),
                skipped_tiers: settings.skipped_tiers,
                durable: settings.durable,
            }),
        }
    }

    /// A queue of `capacity` entries, other settings at their defaults.
    ///
    /// # Errors
    ///
    /// [`DlqConfigError::Zero`] when `capacity` is 0.
    pub fn with_capacity(capacity: usize) -> Result<Self, DlqConfigError> {
        Self::builder().capacity(capacity).build()
    }

    /// Delivery attempts before an entry is permanently failed.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Time on the queue's clock.
    pub fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// A receiver of every [`DlqEvent`] from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DlqEvent> {
        self.inner.events.subscribe()
    }

    /// The queue's audit trail: every [`DlqEvent`], with its source — the operator named by
    /// the admin router for the runs it starts (`POST /dlq/replay`), governance otherwise —
    /// in a bounded ring (default 1 000 entries; [`AuditTrail::set_capacity`],
    /// [`AuditTrail::set_sink`]).
    pub fn audit(&self) -> &AuditTrail<DlqEvent> {
        &self.inner.audit
    }

    /// Counters and sizes.
    pub fn stats(&self) -> DlqStats {
        let state = self.inner.state.lock();
        DlqStats {
            capacity: self.inner.capacity,
            pending: state.pending.len(),
            in_flight: state.in_flight.len(),
            permanently_failed: state.failed.len(),
            ..state.stats
        }
    }

    /// Entries waiting for replay (pending and in flight), oldest first.
    pub fn list(&self) -> Vec<DeadLetter> {
        let state = self.inner.state.lock();
        let mut entries: Vec<DeadLetter> = state
            .pending
            .iter()
            .chain(state.in_flight.values())
            .cloned()
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
    }

    /// The permanently-failed list, oldest first.
    pub fn failed(&self) -> Vec<DeadLetter> {
        self.inner.state.lock().failed.iter().cloned().collect()
    }

    /// Entries waiting for replay (pending and in flight).
    pub fn len(&self) -> usize {
        let state = self.inner.state.lock();
        state.pending.len() + state.in_flight.len()
    }

    /// True when nothing waits for replay.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries pending (waiting, not in flight).
    pub fn pending_len(&self) -> usize {
        self.inner.state.lock().pending.len()
    }

    /// Removes every pending entry (entries being replayed right now are left to finish) and
    /// returns how many were removed.
    pub fn purge(&self) -> usize {
        let mut state = self.inner.state.lock();
        let n = state.pending.len();
        state.pending.clear();
        state.stats.purged += n as u64;
        n
    }

    /// Empties the permanently-failed list and returns how many entries it held.
    pub fn purge_failed(&self) -> usize {
        let mut state = self.inner.state.lock();
        let n = state.failed.len();
        state.failed.clear();
        state.stats.failed_dropped += n as u64;
        n
    }

    /// Stores a rejected request, or drops it (counted, with an [`DlqEvent::Overflow`]) when
    /// the queue is full.
    pub(crate) fn push(
        &self,
        request: CapturedRequest,
        tier: Tier,
        reason: RejectReason,
    ) -> Option<EntryId> {
        if self.inner.skipped_tiers.contains(&tier) {
            self.note_not_capturable(NotCapturable::TierSkipped);
            return None;
        }
        if let Some(durable) = &self.inner.durable {
            return Some(self.push_durable(durable, request, tier, reason));
        }
        let at = self.now();
        let event;
        let stored = {
            let mut state = self.inner.state.lock();
            if state.pending.len() + state.in_flight.len() >= self.inner.capacity {
                state.stats.overflow += 1;
                event = DlqEvent::Overflow {
                    at,
                    tier,
                    reason,
                    dropped_total: state.stats.overflow,
                };
                None
            } else {
                state.next_id += 1;
                let id = EntryId::new(state.next_id);
                state.stats.captured += 1;
                state.pending.push_back(DeadLetter {
                    id,
                    request,
                    tier,
                    reason,
                    captured_at: at,
                    attempts: 0,
                    state: EntryState::Pending,
                });
                event = DlqEvent::RejectionStored {
                    at,
                    id,
                    tier,
                    reason,
                };
                Some(id)
            }
        };
        // Published after the lock is released.
        self.emit(event);
        stored
    }

    pub(crate) fn note_not_capturable(&self, why: NotCapturable) {
        let mut state = self.inner.state.lock();
        match why {
            NotCapturable::BodyTooLarge => state.stats.body_too_large += 1,
            NotCapturable::UnknownLength => state.stats.body_unknown_length += 1,
            NotCapturable::BodyUnreadable => state.stats.body_unreadable += 1,
            NotCapturable::TierSkipped => state.stats.tier_skipped += 1,
        }
    }

    /// Records `event` in the audit trail (the actor of the current thread, if any, is its
    /// source) and sends it to subscribers (none is not an error).
    pub(crate) fn emit(&self, event: DlqEvent) {
        self.inner.audit.record_event(&event);
        let _ = self.inner.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::super::lease::Delivery;
    use super::super::testing::{accounted, queue, request};
    use super::*;
    use crate::audit::AuditSource;
    use crate::clock::ManualClock;

    #[test]
    fn skipped_tiers_are_counted_not_parked() {
        let q = DeadLetterQueue::builder()
            .skip_tier(Tier::NonEssential)
            .clock(ManualClock::new())
            .build()
            .unwrap();
        assert!(q
            .push(
                request("/a"),
                Tier::NonEssential,
                RejectReason::RateLimitExceeded
            )
            .is_none());
        assert!(q
            .push(
                request("/b"),
                Tier::Standard,
                RejectReason::RateLimitExceeded
            )
            .is_some());
        let s = q.stats();
        assert_eq!((s.pending, s.tier_skipped, s.captured), (1, 1, 1));
    }

    #[test]
    fn full_queue_drops_the_new_entry_and_counts_it() {
        let q = queue(2, 3);
        let mut events = q.subscribe();
        let a = q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        let b = q.push(request("/b"), Tier::Critical, RejectReason::FullStop);
        let c = q.push(
            request("/c"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        assert!(a.is_some() && b.is_some());
        assert_eq!(c, None);
        let kept: Vec<_> = q
            .list()
            .iter()
            .map(|e| e.request.uri().path().to_owned())
            .collect();
        assert_eq!(
            kept,
            ["/a", "/b"],
            "the oldest are kept, the new one dropped"
        );
        assert_eq!(q.stats().overflow, 1);
        let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.kind())
            .collect();
        assert_eq!(kinds, ["rejection_stored", "rejection_stored", "overflow"]);
    }

    #[test]
    fn in_flight_entries_count_against_capacity() {
        let q = queue(1, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        let batch = q.take_batch(10);
        assert_eq!(batch.len(), 1);
        assert!(q
            .push(
                request("/b"),
                Tier::Standard,
                RejectReason::RateLimitExceeded
            )
            .is_none());
        assert_eq!(q.stats().in_flight, 1);
    }

    #[test]
    fn purge_removes_pending_entries_and_leaves_in_flight_ones() {
        let q = queue(10, 3);
        for p in ["/a", "/b", "/c"] {
            q.push(request(p), Tier::Standard, RejectReason::RateLimitExceeded);
        }
        let lease = q.take_batch(1).pop().unwrap();
        assert_eq!(q.purge(), 2);
        lease.complete(Delivery::Succeeded);
        let s = q.stats();
        assert_eq!((s.pending, s.purged, s.replayed), (0, 2, 1));
        assert_eq!(accounted(&s), s.captured);
    }

    #[test]
    fn captured_at_reads_the_injected_clock() {
        let clock = ManualClock::new();
        let q = DeadLetterQueue::builder()
            .clock(clock.clone())
            .build()
            .unwrap();
        clock.advance(Duration::from_secs(7));
        q.push(request("/a"), Tier::Critical, RejectReason::FullStop);
        let e = &q.list()[0];
        assert_eq!(e.captured_at, Duration::from_secs(7));
        assert_eq!((e.tier, e.reason), (Tier::Critical, RejectReason::FullStop));
    }

    #[test]
    fn events_reach_the_queues_own_audit_trail_with_their_actor() {
        let q = queue(1, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        crate::audit::with_actor("alice", || {
            q.push(
                request("/b"),
                Tier::Standard,
                RejectReason::RateLimitExceeded,
            )
        });
        let entries = q.audit().recent(10);
        let kinds: Vec<_> = entries.iter().map(|e| e.event.kind()).collect();
        assert_eq!(kinds, ["rejection_stored", "overflow"]);
        assert_eq!(entries[0].source, AuditSource::Governance);
        assert_eq!(entries[1].source, AuditSource::Operator("alice".into()));
        assert_eq!(entries[1].seq, 2);
    }
}
