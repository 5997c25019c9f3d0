//! The store: [`DeadLetterQueue`], a bounded in-memory queue of captured requests with
//! at-least-once hand-out to the replayer. Pure bookkeeping: no I/O, no runtime, one short lock.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::clock::{Clock, MonotonicClock};
use crate::decision::{RejectReason, Tier};

/// Most entries waiting for replay (pending and in flight together).
pub const DEFAULT_CAPACITY: usize = 1000;
/// Most permanently failed entries kept for inspection; the oldest is evicted (and counted)
/// beyond it.
pub const DEFAULT_FAILED_CAPACITY: usize = 100;
/// Delivery attempts before an entry is permanently failed (Baldur's `max_retries`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Capacity of the [`DlqEvent`] broadcast channel; slow subscribers lag rather than block.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;

/// Identifier of one captured request, unique within its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(u64);

impl EntryId {
    /// The number behind the id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dlq-{}", self.0)
    }
}

/// What was kept of a rejected request: enough to send it again.
///
/// Headers are already filtered: `Authorization`, `Cookie`, `Proxy-Authorization` and the
/// configured sensitive names are gone unless explicitly allowed (see
/// [`CaptureOptions`](crate::dlq::CaptureOptions)).
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl CapturedRequest {
    pub(crate) fn new(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            method,
            uri,
            headers,
            body,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI, as the service received it.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The kept headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body (empty when the request had none).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// A new request with the same method, URI, headers and body. Extensions of the original
    /// request (for example axum's `ConnectInfo`) are not kept.
    pub fn to_request<B: From<Bytes>>(&self) -> http::Request<B> {
        let mut request = http::Request::new(B::from(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryState {
    /// Waiting for a replay.
    Pending,
    /// Being replayed right now.
    InFlight,
    /// Its attempts are exhausted; kept in the bounded failed list for inspection.
    PermanentlyFailed,
}

impl EntryState {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::PermanentlyFailed => "permanently_failed",
        }
    }
}

/// One captured request and its bookkeeping (a snapshot: later changes are not reflected).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id.
    pub id: EntryId,
    /// The request.
    pub request: CapturedRequest,
    /// The tier the throttle checked it as.
    pub tier: Tier,
    /// Why the throttle rejected it.
    pub reason: RejectReason,
    /// When it was captured, on the queue's clock.
    pub captured_at: Duration,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Where it is.
    pub state: EntryState,
}

/// Counters and sizes of a queue, read under one lock so they are consistent with each other:
/// `captured == pending + in_flight + replayed + exhausted + purged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DlqStats {
    /// Most entries waiting for replay.
    pub capacity: usize,
    /// Entries waiting for replay.
    pub pending: usize,
    /// Entries being replayed right now.
    pub in_flight: usize,
    /// Entries in the permanently-failed list now.
    pub permanently_failed: usize,
    /// Requests stored since the queue was made.
    pub captured: u64,
    /// Entries replayed successfully (and removed).
    pub replayed: u64,
    /// Delivery attempts that failed (each entry can fail up to `max_attempts` times).
    pub failed_attempts: u64,
    /// Entries whose attempts ran out (moved to the permanently-failed list).
    pub exhausted: u64,
    /// Pending entries removed by [`DeadLetterQueue::purge`].
    pub purged: u64,
    /// Rejected requests dropped because the queue was full (the new entry is dropped).
    pub overflow: u64,
    /// Permanently failed entries evicted from their full list (oldest first) or purged.
    pub failed_dropped: u64,
    /// Rejected requests not captured because their body was larger than the limit.
    pub body_too_large: u64,
    /// Rejected requests not captured because their body length was not declared.
    pub body_unknown_length: u64,
    /// Rejected requests not captured because their tier is excluded
    /// ([`DeadLetterQueueBuilder::skip_tier`]).
    pub tier_skipped: u64,
}

/// Something that happened to a dead-letter queue, published on
/// [`DeadLetterQueue::subscribe`]. Times are on the queue's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlqEvent {
    /// A rejected request was stored.
    RejectionStored {
        /// Clock time.
        at: Duration,
        /// The new entry.
        id: EntryId,
        /// Its tier.
        tier: Tier,
        /// Why it was rejected.
        reason: RejectReason,
    },
    /// The queue was full: a rejected request was dropped.
    Overflow {
        /// Clock time.
        at: Duration,
        /// The dropped request's tier.
        tier: Tier,
        /// Why it was rejected.
        reason: RejectReason,
        /// Requests dropped this way since the queue was made.
        dropped_total: u64,
    },
    /// A replay run started.
    ReplayStarted {
        /// Clock time.
        at: Duration,
        /// Entries pending when it started.
        pending: usize,
        /// The throttle's current limit as a percentage of its initial limit.
        recovery_percent: u32,
    },
    /// A replay run ended (queue empty, health dropped, or nothing to do).
    ReplayCompleted {
        /// Clock time.
        at: Duration,
        /// Entries replayed successfully in this run.
        replayed: u64,
        /// Failed delivery attempts in this run.
        failed: u64,
        /// Entries still waiting (pending or in flight) at the end.
        remaining: usize,
    },
}

impl DlqEvent {
    /// The snake_case kind of the event.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::RejectionStored { .. } => "rejection_stored",
            Self::Overflow { .. } => "overflow",
            Self::ReplayStarted { .. } => "replay_started",
            Self::ReplayCompleted { .. } => "replay_completed",
        }
    }
}

/// A bad dead-letter setting, reported by [`DeadLetterQueueBuilder::build`] and
/// [`ReplayConfigBuilder::build`](crate::dlq::ReplayConfigBuilder::build).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DlqConfigError {
    /// A setting that must be at least 1 (or non-zero) was 0.
    Zero {
        /// The setting's name.
        setting: &'static str,
    },
    /// `min_recovery` must be in `(0, 1]`.
    MinRecoveryOutOfRange {
        /// The value given.
        value: f64,
    },
}

impl fmt::Display for DlqConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero { setting } => write!(f, "dead-letter `{setting}` must not be zero"),
            Self::MinRecoveryOutOfRange { value } => {
                write!(f, "replay `min_recovery` must be in (0, 1], got {value}")
            }
        }
    }
}

impl std::error::Error for DlqConfigError {}

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
}

impl DeadLetterQueueBuilder {
    /// Never parks rejected requests of `tier`; they are counted in
    /// [`DlqStats::tier_skipped`]. Baldur's policy is `.skip_tier(Tier::NonEssential)`: work
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
        let (events, _) = broadcast::channel(self.event_capacity);
        Ok(DeadLetterQueue {
            inner: Arc::new(Inner {
                capacity: self.capacity,
                failed_capacity: self.failed_capacity,
                max_attempts: self.max_attempts,
                clock: self
                    .clock
                    .unwrap_or_else(|| Arc::new(MonotonicClock::new())),
                events,
                state: Mutex::new(State::default()),
                skipped_tiers: self.skipped_tiers,
            }),
        })
    }
}

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
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    failed_capacity: usize,
    max_attempts: u32,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<DlqEvent>,
    state: Mutex<State>,
    skipped_tiers: Vec<Tier>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    pending: VecDeque<DeadLetter>,
    in_flight: HashMap<EntryId, DeadLetter>,
    failed: VecDeque<DeadLetter>,
    stats: DlqStats,
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
    TierSkipped,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Succeeded,
    Failed,
}

/// Where a completed lease left its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Replayed and removed.
    Replayed,
    /// Failed, back in the queue for another attempt.
    Requeued,
    /// Failed for the last time: moved to the permanently-failed list.
    Exhausted,
    /// Cancelled (or already settled): back at the front, attempts unchanged.
    Released,
}

impl DeadLetterQueue {
    /// A builder with the defaults.
    pub fn builder() -> DeadLetterQueueBuilder {
        DeadLetterQueueBuilder {
            capacity: DEFAULT_CAPACITY,
            failed_capacity: DEFAULT_FAILED_CAPACITY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            clock: None,
            skipped_tiers: Vec::new(),
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
                let id = EntryId(state.next_id);
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
        // Sent after the lock is released; no subscriber is not an error.
        let _ = self.inner.events.send(event);
        stored
    }

    pub(crate) fn note_not_capturable(&self, why: NotCapturable) {
        let mut state = self.inner.state.lock();
        match why {
            NotCapturable::BodyTooLarge => state.stats.body_too_large += 1,
            NotCapturable::UnknownLength => state.stats.body_unknown_length += 1,
            NotCapturable::TierSkipped => state.stats.tier_skipped += 1,
        }
    }

    pub(crate) fn emit(&self, event: DlqEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Moves up to `n` pending entries, oldest first, in flight and hands them out. Each lease
    /// must end in [`Lease::complete`]; a lease dropped without it puts its entry back at the
    /// front of the queue with its attempts unchanged (the replay was cancelled, not failed).
    pub(crate) fn take_batch(&self, n: usize) -> Vec<Lease> {
        let mut state = self.inner.state.lock();
        let n = n.min(state.pending.len());
        let mut leases = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(mut entry) = state.pending.pop_front() else {
                break;
            };
            entry.state = EntryState::InFlight;
            leases.push(Lease {
                queue: self.clone(),
                id: entry.id,
                request: entry.request.clone(),
                done: false,
            });
            state.in_flight.insert(entry.id, entry);
        }
        leases
    }

    fn settle(&self, id: EntryId, delivery: Option<Delivery>) -> Settled {
        let mut state = self.inner.state.lock();
        let Some(mut entry) = state.in_flight.remove(&id) else {
            return Settled::Released;
        };
        match delivery {
            Some(Delivery::Succeeded) => {
                state.stats.replayed += 1;
                Settled::Replayed
            }
            Some(Delivery::Failed) => {
                state.stats.failed_attempts += 1;
                entry.attempts += 1;
                if entry.attempts >= self.inner.max_attempts {
                    state.stats.exhausted += 1;
                    entry.state = EntryState::PermanentlyFailed;
                    if state.failed.len() >= self.inner.failed_capacity {
                        state.failed.pop_front();
                        state.stats.failed_dropped += 1;
                    }
                    state.failed.push_back(entry);
                    Settled::Exhausted
                } else {
                    // To the back: one stubborn entry does not hold up the rest.
                    entry.state = EntryState::Pending;
                    state.pending.push_back(entry);
                    Settled::Requeued
                }
            }
            None => {
                entry.state = EntryState::Pending;
                state.pending.push_front(entry);
                Settled::Released
            }
        }
    }
}

/// One entry handed out for replay. See [`DeadLetterQueue::take_batch`].
#[derive(Debug)]
pub(crate) struct Lease {
    queue: DeadLetterQueue,
    id: EntryId,
    request: CapturedRequest,
    done: bool,
}

impl Lease {
    pub(crate) fn request(&self) -> &CapturedRequest {
        &self.request
    }

    /// Records how the attempt ended: success removes the entry; failure counts an attempt and
    /// requeues it, or moves it to the permanently-failed list when its attempts ran out.
    pub(crate) fn complete(mut self, delivery: Delivery) -> Settled {
        self.done = true;
        self.queue.settle(self.id, Some(delivery))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            self.queue.settle(self.id, None);
        }
    }
}

/// Bridging the queue's events into a throttle's event stream and audit trail.
impl DeadLetterQueue {
    /// Forwards this queue's events to `throttle`'s subscribers (the admin event stream, the
    /// console) and audit trail, as [`ThrottleEvent::RejectionStored`](crate::ThrottleEvent::RejectionStored),
    /// [`ThrottleEvent::RejectionOverflow`](crate::ThrottleEvent::RejectionOverflow), [`ThrottleEvent::ReplayStarted`](crate::ThrottleEvent::ReplayStarted) and
    /// [`ThrottleEvent::ReplayCompleted`](crate::ThrottleEvent::ReplayCompleted). Must be called within a tokio runtime; the task ends
    /// when the queue is dropped, or when the handle is aborted.
    pub fn forward_events_to(
        &self,
        throttle: &crate::AdaptiveThrottle,
    ) -> tokio::task::JoinHandle<()> {
        use crate::events::ThrottleEvent as E;
        let mut events = self.subscribe();
        let throttle = throttle.clone();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                throttle.publish(match event {
                    DlqEvent::RejectionStored {
                        at, tier, reason, ..
                    } => E::RejectionStored { at, tier, reason },
                    DlqEvent::Overflow {
                        at, dropped_total, ..
                    } => E::RejectionOverflow { at, dropped_total },
                    DlqEvent::ReplayStarted {
                        at,
                        pending,
                        recovery_percent,
                    } => E::ReplayStarted {
                        at,
                        pending,
                        recovery_percent,
                    },
                    DlqEvent::ReplayCompleted {
                        at,
                        replayed,
                        failed,
                        remaining,
                    } => E::ReplayCompleted {
                        at,
                        replayed,
                        failed,
                        remaining,
                    },
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn request(path: &str) -> CapturedRequest {
        CapturedRequest::new(
            Method::GET,
            path.parse().unwrap(),
            HeaderMap::new(),
            Bytes::new(),
        )
    }

    fn queue(capacity: usize, max_attempts: u32) -> DeadLetterQueue {
        DeadLetterQueue::builder()
            .capacity(capacity)
            .failed_capacity(2)
            .max_attempts(max_attempts)
            .clock(ManualClock::new())
            .build()
            .unwrap()
    }

    fn accounted(s: &DlqStats) -> u64 {
        (s.pending + s.in_flight) as u64 + s.replayed + s.exhausted + s.purged
    }

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
    fn success_removes_the_entry_for_good() {
        let q = queue(10, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        let lease = q.take_batch(10).pop().unwrap();
        assert!(
            q.take_batch(10).is_empty(),
            "an in-flight entry is not handed out twice"
        );
        lease.complete(Delivery::Succeeded);
        let s = q.stats();
        assert_eq!((s.pending, s.in_flight, s.replayed), (0, 0, 1));
        assert!(q.take_batch(10).is_empty());
        assert_eq!(accounted(&s), s.captured);
    }

    #[test]
    fn failures_requeue_until_attempts_run_out_then_the_entry_is_permanently_failed() {
        let q = queue(10, 2);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        q.take_batch(1).pop().unwrap().complete(Delivery::Failed);
        assert_eq!(q.list()[0].attempts, 1);
        assert_eq!(q.list()[0].state, EntryState::Pending);
        q.take_batch(1).pop().unwrap().complete(Delivery::Failed);
        let s = q.stats();
        assert_eq!((s.pending, s.permanently_failed, s.exhausted), (0, 1, 1));
        assert_eq!(s.failed_attempts, 2);
        let failed = q.failed();
        assert_eq!(failed[0].state, EntryState::PermanentlyFailed);
        assert_eq!(failed[0].attempts, 2);
        assert_eq!(accounted(&s), s.captured);
    }

    #[test]
    fn a_dropped_lease_puts_the_entry_back_first_without_counting_an_attempt() {
        let q = queue(10, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        q.push(
            request("/b"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        drop(q.take_batch(1));
        let list = q.list();
        assert_eq!(list[0].request.uri().path(), "/a");
        assert_eq!(list[0].attempts, 0);
        assert_eq!(q.take_batch(1)[0].request().uri().path(), "/a");
    }

    #[test]
    fn the_failed_list_is_bounded_and_evictions_are_counted() {
        let q = queue(10, 1);
        for p in ["/a", "/b", "/c"] {
            q.push(request(p), Tier::Standard, RejectReason::RateLimitExceeded);
        }
        for lease in q.take_batch(3) {
            lease.complete(Delivery::Failed);
        }
        let failed: Vec<_> = q
            .failed()
            .iter()
            .map(|e| e.request.uri().path().to_owned())
            .collect();
        assert_eq!(failed, ["/b", "/c"]);
        assert_eq!(q.stats().failed_dropped, 1);
        assert_eq!(q.purge_failed(), 2);
        assert_eq!(q.stats().failed_dropped, 3);
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
}
