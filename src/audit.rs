//! Audit trail: a bounded record of every transition of a throttle — each limit change with its
//! old and new value, reason, triggering latency and gradient, each governance input and
//! operator action with its actor — for the question "why did the limit move?".
//!
//! The trail keeps the latest entries in a ring (default 1 000) and can also hand every entry to
//! an [`AuditSink`] that ships it elsewhere. The sink runs on its own thread behind a bounded
//! queue: a slow sink never blocks a request and never grows memory; entries it could not take
//! are counted in [`AuditTrail::dropped`].
//!
//! A trail records one type of event, any [`AuditEvent`]: [`ThrottleEvent`] unless named
//! otherwise (`AuditTrail` is `AuditTrail<ThrottleEvent>`). Components with events of their own
//! keep trails of them the same way.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::events::ThrottleEvent;

/// Entries kept in the ring by default.
pub const DEFAULT_AUDIT_CAPACITY: usize = 1_000;
/// Entries queued for a sink before new ones are dropped (and counted).
pub const DEFAULT_SINK_QUEUE: usize = 10_000;

/// Who caused an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", tag = "kind", content = "actor")
)]
pub enum AuditSource {
    /// The adaptive loop itself (latency ladder, ramp, built-in breaker).
    Adaptive,
    /// A governance input set from code or polled from a source.
    Governance,
    /// An operator, named (for example through the admin router).
    Operator(String),
}

/// An event an [`AuditTrail`] can record.
pub trait AuditEvent: Clone + Send + 'static {
    /// The snake_case kind of the event.
    fn kind(&self) -> &'static str;

    /// When it happened, on the clock of whatever produced it.
    fn at(&self) -> Duration;

    /// True when the adaptive loop itself caused it: recorded as [`AuditSource::Adaptive`]
    /// when no operator is named, otherwise as [`AuditSource::Governance`]. False by default.
    fn is_adaptive(&self) -> bool {
        false
    }
}

/// One audited transition.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AuditEntry<E = ThrottleEvent> {
    /// Sequence number, increasing from 1 for the trail's lifetime.
    pub seq: u64,
    /// Time on the clock of the throttle (or other producer) the event came from.
    pub at: Duration,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Who caused it.
    pub source: AuditSource,
    /// What happened (limit changes carry previous, new, reason, rtt and gradient).
    pub event: E,
}

/// Receives every audit entry, on the trail's own thread.
pub trait AuditSink<E = ThrottleEvent>: Send + Sync + 'static {
    /// Ships one entry. May take its time: requests never wait for it.
    fn record(&self, entry: &AuditEntry<E>);
}

impl<E, F> AuditSink<E> for F
where
    F: Fn(&AuditEntry<E>) + Send + Sync + 'static,
{
    fn record(&self, entry: &AuditEntry<E>) {
        self(entry)
    }
}

/// The bounded trail of one throttle (or of another producer's events, see [`AuditEvent`]).
/// See the [module docs](self).
pub struct AuditTrail<E = ThrottleEvent> {
    ring: Mutex<Ring<E>>,
    sink: Mutex<Option<SyncSender<AuditEntry<E>>>>,
    dropped: Arc<AtomicU64>,
    seq: AtomicU64,
}

struct Ring<E> {
    entries: VecDeque<AuditEntry<E>>,
    capacity: usize,
}

impl<E> fmt::Debug for AuditTrail<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTrail")
            .field("len", &self.ring.lock().entries.len())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<E: AuditEvent> Default for AuditTrail<E> {
    fn default() -> Self {
        Self::new(DEFAULT_AUDIT_CAPACITY)
    }
}

thread_local! {
    static ACTOR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `actor` named as the source of every audit entry it causes on this thread.
pub(crate) fn with_actor<R>(actor: &str, f: impl FnOnce() -> R) -> R {
    let previous = ACTOR.with(|a| a.replace(Some(actor.to_owned())));
    let result = f();
    ACTOR.with(|a| *a.borrow_mut() = previous);
    result
}

/// The actor named on this thread, if any.
pub(crate) fn current_actor() -> Option<String> {
    ACTOR.with(|a| a.borrow().clone())
}

impl<E: AuditEvent> AuditTrail<E> {
    /// A trail keeping the latest `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.clamp(1, 1024)),
                capacity: capacity.max(1),
            }),
            sink: Mutex::new(None),
            dropped: Arc::new(AtomicU64::new(0)),
            seq: AtomicU64::new(0),
        }
    }

    /// Changes how many entries the ring keeps (the oldest go first).
    pub fn set_capacity(&self, capacity: usize) {
        let mut ring = self.ring.lock();
        ring.capacity = capacity.max(1);
        while ring.entries.len() > ring.capacity {
            ring.entries.pop_front();
        }
    }

    /// Sends every future entry to `sink` on a dedicated thread, through a queue of
    /// `queue` entries; when the queue is full new entries skip the sink and are counted in
    /// [`dropped`](Self::dropped). Replaces any previous sink.
    ///
    /// # Errors
    ///
    /// The operating system's error if the sink thread cannot be started.
    pub fn set_sink(&self, sink: impl AuditSink<E>, queue: usize) -> std::io::Result<()> {
        let (tx, rx) = sync_channel::<AuditEntry<E>>(queue.max(1));
        std::thread::Builder::new()
            .name("throttle-audit-sink".into())
            .spawn(move || {
                // Ends when the sender is dropped (sink replaced or throttle dropped).
                for entry in rx {
                    sink.record(&entry);
                }
            })?;
        *self.sink.lock() = Some(tx);
        Ok(())
    }

    /// Entries a full sink queue could not take.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The latest `n` entries, oldest first.
    pub fn recent(&self, n: usize) -> Vec<AuditEntry<E>> {
        let ring = self.ring.lock();
        let skip = ring.entries.len().saturating_sub(n);
        ring.entries.iter().skip(skip).cloned().collect()
    }

    /// Entries in the ring.
    pub fn len(&self) -> usize {
        self.ring.lock().entries.len()
    }

    /// True when the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the audit entry of an event (the actor of the current thread, if any, is the
    /// source; otherwise it is derived from the event).
    pub(crate) fn record_event(&self, event: &E) {
        let source = match current_actor() {
            Some(actor) => AuditSource::Operator(actor),
            None if event.is_adaptive() => AuditSource::Adaptive,
            None => AuditSource::Governance,
        };
        let at = event.at();
        let entry = AuditEntry {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at,
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            source,
            event: event.clone(),
        };
        if let Some(tx) = self.sink.lock().as_ref() {
            match tx.try_send(entry.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut ring = self.ring.lock();
        if ring.entries.len() == ring.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
    }
}

impl AuditEvent for ThrottleEvent {
    fn kind(&self) -> &'static str {
        ThrottleEvent::kind(self)
    }

    fn at(&self) -> Duration {
        match self {
            Self::LimitChanged(c) => c.at,
            Self::SlaWarning { at, .. }
            | Self::SlaCritical { at, .. }
            | Self::LimitRecovered { at, .. }
            | Self::Frozen { at, .. }
            | Self::Unfrozen { at, .. }
            | Self::RampStarted { at, .. }
            | Self::RampStage { at, .. }
            | Self::RampCompleted { at, .. }
            | Self::BreakerStateChanged { at, .. }
            | Self::EmergencyLevelChanged { at, .. }
            | Self::ErrorBudgetChanged { at, .. }
            | Self::LoadSheddingChanged { at, .. }
            | Self::Upstream429 { at, .. }
            | Self::CooldownEnded { at }
            | Self::FullStop { at }
            | Self::BreakGlass { at, .. }
            | Self::ConfigSwapped { at }
            | Self::Reset { at }
            | Self::EnabledChanged { at, .. }
            | Self::StoreHealthChanged { at, .. }
            | Self::FleetOpsWritten { at, .. }
            | Self::FleetOpsApplied { at, .. }
            | Self::FleetOpsConflict { at, .. } => *at,
        }
    }

    fn is_adaptive(&self) -> bool {
        match self {
            Self::LimitChanged(c) => c.reason.is_adaptive(),
            Self::SlaWarning { .. }
            | Self::SlaCritical { .. }
            | Self::LimitRecovered { .. }
            | Self::RampStage { .. }
            | Self::RampCompleted { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ChangeReason, LimitChange};

    fn change(n: u32) -> ThrottleEvent {
        ThrottleEvent::LimitChanged(LimitChange {
            at: Duration::from_millis(u64::from(n)),
            previous: n,
            new: n + 1,
            reason: ChangeReason::Headroom,
            delivered_per_sec: None,
            baseline_rtt: None,
            rtt: Some(Duration::from_millis(10)),
            gradient: -0.1,
        })
    }

    #[test]
    fn ring_keeps_the_latest_entries() {
        let trail = AuditTrail::new(3);
        for n in 0..10 {
            trail.record_event(&change(n));
        }
        let recent = trail.recent(10);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].seq, 8);
        assert_eq!(recent[2].seq, 10);
        assert_eq!(recent[2].source, AuditSource::Adaptive);
    }

    #[test]
    fn actor_is_recorded_for_operator_actions() {
        let trail = AuditTrail::new(10);
        with_actor("alice", || {
            trail.record_event(&ThrottleEvent::FullStop { at: Duration::ZERO })
        });
        trail.record_event(&ThrottleEvent::FullStop { at: Duration::ZERO });
        let r = trail.recent(2);
        assert_eq!(r[0].source, AuditSource::Operator("alice".into()));
        assert_eq!(r[1].source, AuditSource::Governance);
    }

    #[test]
    fn slow_sink_drops_and_counts_but_never_blocks() {
        let trail = AuditTrail::new(100);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let seen = Arc::new(AtomicU64::new(0));
        let seen_in_sink = seen.clone();
        trail
            .set_sink(
                move |_: &AuditEntry| {
                    // Blocks until the test releases it: the slowest possible sink.
                    let _ = release_rx.lock().recv();
                    seen_in_sink.fetch_add(1, Ordering::Relaxed);
                },
                2,
            )
            .unwrap();
        for n in 0..50 {
            trail.record_event(&change(n)); // returns at once whatever the sink does
        }
        assert_eq!(trail.len(), 50);
        // at most 2 queued + 1 being processed reached the sink; the rest were counted
        assert!(trail.dropped() >= 47, "dropped {}", trail.dropped());
        drop(release_tx);
    }
}
