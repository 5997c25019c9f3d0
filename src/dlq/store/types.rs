//! The store's value types: entries, their ids and states, the queue's counters, its events and
//! its configuration errors.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

use crate::audit::AuditEvent;
use crate::decision::{RejectReason, Tier};

/// Identifier of one captured request, unique within its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct EntryId(u64);

impl EntryId {
    pub(super) const fn new(n: u64) -> Self {
        Self(n)
    }

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

    /// The same request with `body`: the capture layer takes the snapshot of the head when the
    /// request passes and reads the body only if the throttle hands it back.
    pub(crate) fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
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
    /// Pending entries removed by [`DeadLetterQueue::purge`](crate::dlq::DeadLetterQueue::purge).
    pub purged: u64,
    /// Rejected requests dropped because the queue was full (the new entry is dropped).
    pub overflow: u64,
    /// Permanently failed entries evicted from their full list (oldest first) or purged.
    pub failed_dropped: u64,
    /// Rejected requests not captured because their body was larger than the limit.
    pub body_too_large: u64,
    /// Rejected requests not captured because their body length was not declared.
    pub body_unknown_length: u64,
    /// Rejected requests with a declared, non-empty body within the limit that were not
    /// captured because the body could not be read back: the layer that rejected them did not
    /// hand it back in a [`RejectedBody`](crate::dlq::RejectedBody) of the request's body type,
    /// or it failed while read (a broken connection).
    pub body_unreadable: u64,
    /// Rejected requests not captured because their tier is excluded
    /// ([`DeadLetterQueueBuilder::skip_tier`](crate::dlq::DeadLetterQueueBuilder::skip_tier)).
    pub tier_skipped: u64,
}

/// Something that happened to a dead-letter queue, published on
/// [`DeadLetterQueue::subscribe`](crate::dlq::DeadLetterQueue::subscribe) and recorded in the
/// queue's audit trail ([`DeadLetterQueue::audit`](crate::dlq::DeadLetterQueue::audit)). Times
/// are on the queue's clock.
///
/// With the `serde` feature it serialises like [`ThrottleEvent`](crate::ThrottleEvent): a
/// `type` field holding its [`kind`](Self::kind), then its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
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

/// The queue records its events in an audit trail of its own
/// ([`DeadLetterQueue::audit`](crate::dlq::DeadLetterQueue::audit)).
impl AuditEvent for DlqEvent {
    fn kind(&self) -> &'static str {
        DlqEvent::kind(self)
    }

    fn at(&self) -> Duration {
        match self {
            Self::RejectionStored { at, .. }
            | Self::Overflow { at, .. }
            | Self::ReplayStarted { at, .. }
            | Self::ReplayCompleted { at, .. } => *at,
        }
    }
}

/// A bad dead-letter setting, reported by
/// [`DeadLetterQueueBuilder::build`](crate::dlq::DeadLetterQueueBuilder::build) and
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
