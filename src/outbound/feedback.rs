//! What the coordinator tells the rest of the service: [`CoordinatorEvent`]s on a broadcast
//! channel, [`CoordinatorStats`] counters, and the [`Pressure`] a retry layer scales its delays
//! by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Events queued per subscriber before a slow one starts to lag (and loses the oldest).
pub(crate) const EVENT_CAPACITY: usize = 256;

/// A change in a key's cooldown, published to every
/// [`subscribe`](super::RateLimitCoordinator::subscribe)r.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoordinatorEvent {
    /// The upstream answered a call on `key` with a 429 (or a 503 with `Retry-After`, when
    /// configured), or with gRPC's `RESOURCE_EXHAUSTED` in the headers. Published for every such
    /// response, before the cooldown it arms.
    RateLimited {
        /// The coordination key.
        key: String,
        /// The response's HTTP status code: 200 for a gRPC answer (gRPC's status is in
        /// `grpc-status`).
        status: u16,
        /// The key's consecutive count after this response.
        consecutive: u32,
        /// The response's `Retry-After` (gRPC: `grpc-retry-pushback-ms`), if valid.
        retry_after: Option<Duration>,
    },
    /// The key's cooldown was armed, or moved later by a longer one (the stored cooldown only
    /// ever extends).
    CooldownStarted {
        /// The coordination key.
        key: String,
        /// The key's consecutive count.
        consecutive: u32,
        /// The cooldown this response earned, from now.
        delay: Duration,
        /// When the cooldown in force ends (tokio's clock).
        until: Instant,
        /// The key was already cooling down: this moved its end later.
        extended: bool,
        /// The delay exceeds the ladder's cap: the upstream's `Retry-After` decided it.
        retry_after_honored: bool,
        /// The upstream's `Retry-After` exceeded the ceiling and was cut to it.
        retry_after_clamped: bool,
    },
    /// The canary sent after the key's cooldown was answered without a 429 (or the key was
    /// [`clear`](super::RateLimitCoordinator::clear)ed): the key's count is back to zero and the
    /// calls held behind it go ahead.
    CooldownEnded {
        /// The coordination key.
        key: String,
    },
}

/// Counters since the coordinator was made. Read with
/// [`stats`](super::RateLimitCoordinator::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CoordinatorStats {
    /// Responses that armed or extended a cooldown (429s, and 503s when configured).
    pub rate_limited: u64,
    /// Cooldowns armed on a key that was not cooling down.
    pub cooldowns_started: u64,
    /// Cooldowns moved later while in force.
    pub cooldowns_extended: u64,
    /// Cooldowns ended by a successful canary.
    pub cooldowns_ended: u64,
    /// Cooldowns started or extended by another instance, read through the store.
    pub cooldowns_adopted: u64,
    /// Calls sent first after a cooldown.
    pub canaries: u64,
    /// Calls that waited (for a cooldown or a canary) and then went ahead.
    pub waited: u64,
    /// Calls refused with [`Deferred`](super::Deferred).
    pub deferred: u64,
    /// Keys cooling down or waiting for their canary's answer right now.
    pub cooling_keys: u64,
}

/// The atomic counters behind [`CoordinatorStats`]; `cooling_keys` is read from the table.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rate_limited: AtomicU64,
    pub(crate) cooldowns_started: AtomicU64,
    pub(crate) cooldowns_extended: AtomicU64,
    pub(crate) cooldowns_ended: AtomicU64,
    pub(crate) cooldowns_adopted: AtomicU64,
    pub(crate) canaries: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) deferred: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, cooling_keys: u64) -> CoordinatorStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CoordinatorStats {
            rate_limited: read(&self.rate_limited),
            cooldowns_started: read(&self.cooldowns_started),
            cooldowns_extended: read(&self.cooldowns_extended),
            cooldowns_ended: read(&self.cooldowns_ended),
            cooldowns_adopted: read(&self.cooldowns_adopted),
            canaries: read(&self.canaries),
            waited: read(&self.waited),
            deferred: read(&self.deferred),
            cooling_keys,
        }
    }
}

/// How hard a dependency is pushing back, from its key's consecutive 429 count, for a retry
/// layer to scale its delays by (BAL-026's multipliers).
///
/// Baldur derives these levels from its own SLA and emergency state; a coordinator only knows
/// the upstream's answers, so the levels follow the consecutive count, one level per further
/// 429, the last two levels sharing Baldur's emergency multipliers:
///
/// | consecutive 429s | level | multiplier |
/// |---|---|---|
/// | 0 | `Normal` | 1.0 |
/// | 1 | `Warning` | 1.5 |
/// | 2 | `Critical` | 2.0 |
/// | 3–4 | `Emergency` | 2.5 |
/// | ≥ 5 | `Severe` | 4.0 |
///
/// ```
/// use tower_adaptive_throttle::outbound::Pressure;
///
/// assert_eq!(Pressure::from_consecutive(0).multiplier(), 1.0);
/// assert_eq!(Pressure::from_consecutive(7), Pressure::Severe);
/// assert_eq!(Pressure::Severe.multiplier(), 4.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pressure {
    /// No 429 outstanding: ×1.0.
    Normal,
    /// One 429 (Baldur's SLA warning): ×1.5.
    Warning,
    /// Two in a row (SLA critical): ×2.0.
    Critical,
    /// Three or four (emergency levels 1–2): ×2.5.
    Emergency,
    /// Five or more (emergency level 3): ×4.0.
    Severe,
}

impl Pressure {
    /// The level for a key's consecutive 429 count.
    pub fn from_consecutive(consecutive: u32) -> Self {
        match consecutive {
            0 => Self::Normal,
            1 => Self::Warning,
            2 => Self::Critical,
            3 | 4 => Self::Emergency,
            _ => Self::Severe,
        }
    }

    /// The factor a retry layer multiplies its delay by.
    pub fn multiplier(self) -> f64 {
        match self {
            Self::Normal => 1.0,
            Self::Warning => 1.5,
            Self::Critical => 2.0,
            Self::Emergency => 2.5,
            Self::Severe => 4.0,
        }
    }
}
