//! Where a fleet of throttles keeps what it shares: the service-wide limit and each key's
//! window budget.
//!
//! Without a store a throttle keeps everything in its own memory, as it always has. With one
//! (see [`AdaptiveThrottle::builder`](crate::AdaptiveThrottle::builder)), instances that share
//! the store and a name share one limit:
//!
//! - [`RedisStore`] (feature `redis`): one Redis or a Redis Cluster. Every script touches keys
//!   of one hash slot, so it runs on Cluster as on a single node.
//! - [`MemoryStore`]: the same contract in process memory, for tests and for several throttles
//!   of one process that must share a budget.
//!
//! The [`Store`] trait is the contract between them and the throttle. Its operations are few
//! and atomic (each one Lua script on Redis): take from a key's window budget, and the shared
//! limit's clamp-and-set, compare-and-set and cold-start load. The throttle wraps every call
//! in a timeout and decides what an error means ([`StoreFallback`]); a store only reports.
//!
//! Fleet windows are aligned to the epoch on the store's clock: window index = unix time in
//! ms ÷ window in ms, so "admitted per window" means the same on every instance.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_scripts;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;

/// The default bound on every store call of a throttle in fleet mode.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);
/// How often a throttle checks a degraded store (Baldur's health-check interval).
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The default lease: a tenth of a key's limit per window.
pub const DEFAULT_LEASE_FRACTION: f64 = 0.1;

/// The default answer of an optional store operation: a store that does not implement it.
fn unsupported<T: Send + 'static>(what: &str) -> StoreFuture<'static, T> {
    let error = StoreError::Protocol(format!("this store does not {what}"));
    Box::pin(std::future::ready(Err(error)))
}

/// A boxed, sendable future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// How a fleet shares each key's budget per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Fleet {
    /// One atomic store operation per check: exact, one round trip per request.
    Strict,
    /// Each instance leases a slice of a key's window budget and spends it locally; the slice
    /// dies with its window, so the fleet never admits more than the limit per window, at any
    /// fleet size. A lease hit costs no round trip; misses on one key share one lease request,
    /// and refills are fetched before the slice runs out.
    #[default]
    Leased,
}

/// What a throttle does while its store is unreachable (three failed calls in a row, until a
/// health check succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum StoreFallback {
    /// Hold the last known-good limit and admit locally: each instance takes its share of each
    /// key's limit (the limit ÷ the last known fleet size). Never "no limit", never "block all".
    #[default]
    SafeOpen,
    /// Admit everything on the rate axis (the concurrency axis still protects the instance).
    FailOpen,
    /// Reject everything with [`RejectReason::StoreUnavailable`](crate::RejectReason), for
    /// limits that guard something worth more than availability.
    FailClosed,
}

/// Whether a throttle's store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum StoreHealth {
    /// Calls succeed.
    Connected,
    /// Calls failed repeatedly: the throttle runs on its [`StoreFallback`] until a health check
    /// succeeds.
    Degraded,
}

impl StoreHealth {
    /// The snake_case name used in stats, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Degraded => "degraded",
        }
    }
}

/// A store call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached, or the connection broke.
    Unavailable(String),
    /// The call did not answer within the throttle's store timeout.
    Timeout(Duration),
    /// The store answered something the protocol does not expect.
    Protocol(String),
    /// The store's address or options are invalid.
    Config(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "store unavailable: {e}"),
            Self::Timeout(d) => write!(f, "store call timed out after {} ms", d.as_millis()),
            Self::Protocol(e) => write!(f, "unexpected store reply: {e}"),
            Self::Config(e) => write!(f, "invalid store configuration: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A request to take from one key's budget in the current fleet window.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Take<'a> {
    /// The throttle's fleet-wide name.
    pub name: &'a str,
    /// The key's fleet digest (see [`Store::seed`]).
    pub key: u64,
    /// The window length, in ms (at least 1).
    pub window_ms: u64,
    /// The key's limit per window.
    pub limit: u64,
    /// How many units to take; the grant may be smaller (down to 0, a denial).
    pub want: u64,
}

impl<'a> Take<'a> {
    /// A request for `want` units of `key`'s budget of `limit` per `window_ms`.
    pub fn new(name: &'a str, key: u64, window_ms: u64, limit: u64, want: u64) -> Self {
        Self {
            name,
            key,
            window_ms: window_ms.max(1),
            limit,
            want,
        }
    }
}

/// What a [`Take`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Units granted: `min(want, limit − used before)`; 0 is a denial.
    pub granted: u64,
    /// Units taken from the window so far, this grant included.
    pub used: u64,
    /// Time left in the window when the store decided, in ms (at least 1).
    pub reset_in_ms: u64,
    /// The window's index (unix ms ÷ window ms on the store's clock).
    pub window: u64,
}

/// Where a cold start found the shared limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum LimitSource {
    /// The fleet's current limit.
    Current,
    /// No current limit: the last safe limit, copied into current.
    Safe,
    /// Neither: the instance's default, written as current.
    Default,
}

/// The bounds a shared limit is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitBounds {
    /// The lowest limit.
    pub min: u32,
    /// The highest limit.
    pub max: u32,
}

impl LimitBounds {
    /// `value` clamped into the bounds.
    pub fn clamp(self, value: u32) -> u32 {
        value.clamp(self.min, self.max.max(self.min))
    }
}

/// The outcome of [`Store::compare_and_set_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareAndSet {
    /// The limit was as expected (or absent) and is now the new value (clamped).
    Set(u32),
    /// Another instance moved it first: the limit in force.
    Mismatch(u32),
}

/// One running cooldown shared through a store (see [`Store::cooldowns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedCooldown {
    /// The coordination key (a host, by default).
    pub key: String,
    /// Time left, on the store's clock when it answered.
    pub remaining: Duration,
    /// Consecutive 429s behind it.
    pub consecutive: u32,
}

impl SharedCooldown {
    /// A cooldown of `key` with `remaining` left after `consecutive` 429s.
    pub fn new(key: impl Into<String>, remaining: Duration, consecutive: u32) -> Self {
        Self {
            key: key.into(),
            remaining,
            consecutive,
        }
    }
}

/// What one heartbeat learns about the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetView {
    /// Instances that heartbeated within the time to live, this one included (at least 1).
    pub instances: u32,
    /// The shared limit, when one is set.
    pub limit: Option<u32>,
    /// The version of the fleet's operator state (0 when none was ever written): a heartbeat
    /// that sees a newer one than the instance applied makes it read the state again, so a
    /// lost notification is caught up within one sync period.
    pub ops_version: u64,
}

/// A throttle's fleet-wide operator state as the store keeps it: a version that every write
/// raises by one, and the document, which the store does not read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpsRecord {
    /// 1 for the first write; 0 means none was written.
    pub version: u64,
    /// The encoded document.
    pub document: String,
}

/// The outcome of [`Store::write_ops`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsWrite {
    /// Stored as this version (and announced to the watchers).
    Written(u64),
    /// Another write came first: the record in force.
    Conflict(OpsRecord),
}

/// One live instance of a fleet, as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberReport {
    /// The instance's name.
    pub instance: String,
    /// Milliseconds since its last heartbeat, on the store's clock.
    pub last_seen_ms_ago: u64,
    /// What it reported about itself (opaque to the store).
    pub report: String,
}

/// One dead letter as a store keeps it: the store's id for it and the serialised entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLetter {
    /// The store's id (a Redis stream entry id).
    pub id: String,
    /// The serialised entry.
    pub payload: String,
}

/// What [`Store::dlq_append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqAppended {
    /// The new entry's id.
    pub id: String,
    /// Oldest entries the length bound trimmed away to make room (counted as overflow).
    pub trimmed: u64,
}

/// Sizes and counters of a durable dead-letter queue, as its store reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlqCounts {
    /// Entries in the queue (waiting or being replayed).
    pub len: u64,
    /// Entries claimed by a replayer and not yet acknowledged.
    pub in_flight: u64,
    /// Entries trimmed away by the length bound, ever.
    pub overflow: u64,
    /// Entries in the bounded permanently-failed list.
    pub failed: u64,
}

fn no_dead_letters<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Err(StoreError::Protocol(
        "this store does not keep dead letters".into(),
    ))))
}

/// The operations a fleet needs from its store. Each is atomic on the store.
///
/// Implemented by [`RedisStore`] and [`MemoryStore`]; the throttle adds timeouts, health and
/// fallbacks around it.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Takes up to `take.want` units of a key's budget in the current window (window-aligned on
    /// the store's clock). Never grants past the limit.
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant>;

    /// Cold start: the fleet's current limit if one is set; else the last safe limit (copied
    /// into current); else `default` (written as current). Clamped to `bounds`.
    fn load_limit<'a>(
        &'a self,
        name: &'a str,
        default: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, (u32, LimitSource)>;

    /// Clamp-and-set: sets the shared limit to `limit` clamped to `bounds`, and when
    /// `save_safe`, records it as the last safe limit (kept 24 h). Returns (previous, new);
    /// previous is `None` when none was set.
    fn set_limit<'a>(
        &'a self,
        name: &'a str,
        limit: u32,
        bounds: LimitBounds,
        save_safe: bool,
    ) -> StoreFuture<'a, (Option<u32>, u32)>;

    /// Sets the shared limit to `limit` (clamped) only if it is `expected` (or absent).
    fn compare_and_set_limit<'a>(
        &'a self,
        name: &'a str,
        expected: u32,
        limit: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, CompareAndSet>;

    /// Records that `instance` is alive for `ttl` with its `report` (see
    /// [`members`](Self::members)), drops the instances silent for longer, and returns the
    /// fleet's size, limit and operator-state version.
    fn heartbeat<'a>(
        &'a self,
        name: &'a str,
        instance: &'a str,
        ttl: Duration,
        report: &'a str,
    ) -> StoreFuture<'a, FleetView>;

    /// The instances that heartbeated within `ttl`, with their reports.
    fn members<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Vec<MemberReport>>;

    /// The throttle's fleet-wide operator state (version 0 and an empty document when none
    /// was written).
    fn load_ops<'a>(&'a self, name: &'a str) -> StoreFuture<'a, OpsRecord>;

    /// Compare-and-swap of the operator state: stores `document` as version `expected + 1`
    /// only if the version in force is `expected`, then announces the new version to every
    /// watcher ([`watch_ops`](Self::watch_ops)); otherwise answers with the record in force.
    fn write_ops<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        document: &'a str,
    ) -> StoreFuture<'a, OpsWrite>;

    /// A receiver that changes whenever a new operator state of `name` is announced (and,
    /// on Redis, after a lost subscription is restored, since announcements may have been
    /// missed meanwhile). Its value only counts announcements: read the state with
    /// [`load_ops`](Self::load_ops). `None` when the store cannot announce (the throttle then
    /// relies on the version its heartbeats return). Called on a tokio runtime.
    fn watch_ops(&self, name: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        let _ = name;
        None
    }

    /// A cheap round trip, for health checks.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// A cost debit (ThrottleKit's distributed token budget, TK-025): admits `take.want` units
    /// of the key's budget `take.limit` in the current window when fewer than the budget were
    /// used before it — the crossing debit counts in full, later ones are refused — so the
    /// fleet overshoots by at most the largest debit − 1. `granted` is `want` or 0.
    fn debit<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        let _ = take;
        unsupported("keep cost budgets")
    }

    /// Moves a debited key's use in window `window` by `delta` units (a refund when negative,
    /// never below 0); nothing once that window has ended.
    fn adjust<'a>(
        &'a self,
        name: &'a str,
        key: u64,
        window: u64,
        delta: i64,
    ) -> StoreFuture<'a, ()> {
        let _ = (name, key, window, delta);
        unsupported("keep cost budgets")
    }

    /// The outbound coordinator's shared cooldowns: extends `key`'s cooldown in the group
    /// `name` to end `delay` from now (on the store's clock) unless it already ends later, and
    /// raises its consecutive count to at least `consecutive`.
    fn extend_cooldown<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
        delay: Duration,
        consecutive: u32,
    ) -> StoreFuture<'a, ()> {
        let _ = (name, key, delay, consecutive);
        unsupported("share cooldowns")
    }

    /// Every cooldown of the group `name` still running, with the time left.
    fn cooldowns<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<SharedCooldown>> {
        let _ = name;
        unsupported("share cooldowns")
    }

    /// Ends `key`'s shared cooldown (its dependency answered a canary).
    fn clear_cooldown<'a>(&'a self, name: &'a str, key: &'a str) -> StoreFuture<'a, ()> {
        let _ = (name, key);
        unsupported("share cooldowns")
    }

    /// Durable dead-letter queue: appends `payload` to `queue`, then trims the queue to its
    /// newest `max_len` entries (the trimmed ones are counted as overflow).
    fn dlq_append<'a>(
        &'a self,
        queue: &'a str,
        payload: &'a str,
        max_len: u64,
    ) -> StoreFuture<'a, DlqAppended> {
        let _ = (queue, payload, max_len);
        no_dead_letters()
    }

    /// Claims up to `count` entries of `queue` for `consumer`: first entries claimed by
    /// another consumer and left unacknowledged for at least `min_idle` (its replayer died),
    /// then entries never delivered. A claimed entry stays claimed until
    /// [`dlq_ack`](Self::dlq_ack) or [`dlq_retry`](Self::dlq_retry).
    fn dlq_claim<'a>(
        &'a self,
        queue: &'a str,
        consumer: &'a str,
        count: usize,
        min_idle: Duration,
    ) -> StoreFuture<'a, Vec<StoredLetter>> {
        let _ = (queue, consumer, count, min_idle);
        no_dead_letters()
    }

    /// Keeps `consumer`'s claims alive: of the entries `ids` of `queue`, those `consumer` still
    /// holds (claimed and not acknowledged) have their idle time reset, so no other replayer
    /// claims them while a slow replay is in flight. Returns the ids still held; an entry
    /// another consumer has taken over is left with it and not returned.
    fn dlq_touch<'a>(
        &'a self,
        queue: &'a str,
        consumer: &'a str,
        ids: &'a [String],
    ) -> StoreFuture<'a, Vec<String>> {
        let _ = (queue, consumer, ids);
        unsupported("keep dead-letter claims alive")
    }

    /// Acknowledges entry `id` of `queue` and removes it.
    fn dlq_ack<'a>(&'a self, queue: &'a str, id: &'a str) -> StoreFuture<'a, ()> {
        let _ = (queue, id);
        no_dead_letters()
    }

    /// Whether entry `id` of `queue` was marked replayed ([`dlq_mark_done`](Self::dlq_mark_done)).
    fn dlq_is_done<'a>(&'a self, queue: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let _ = (queue, id);
        no_dead_letters()
    }

    /// Marks entry `id` of `queue` replayed, for `ttl` (the idempotency key).
    fn dlq_mark_done<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        let _ = (queue, id, ttl);
        no_dead_letters()
    }

    /// A failed attempt: acknowledges and removes entry `id`, and appends `payload` (the entry
    /// with its attempt counted) to the back of `queue`, or when `exhausted` to its
    /// permanently-failed list (bounded to `max_len` as well). Returns the new id.
    fn dlq_retry<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        payload: &'a str,
        exhausted: bool,
        max_len: u64,
    ) -> StoreFuture<'a, String> {
        let _ = (queue, id, payload, exhausted, max_len);
        no_dead_letters()
    }

    /// Sizes and counters of `queue`.
    fn dlq_counts<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, DlqCounts> {
        let _ = queue;
        no_dead_letters()
    }

    /// Up to `count` entries of `queue` (or of its permanently-failed list), oldest first,
    /// without claiming them.
    fn dlq_entries<'a>(
        &'a self,
        queue: &'a str,
        failed: bool,
        count: usize,
    ) -> StoreFuture<'a, Vec<StoredLetter>> {
        let _ = (queue, failed, count);
        no_dead_letters()
    }

    /// The fleet-wide secret that seeds key digests: every instance sharing the store hashes a
    /// key to the same digest, and a client cannot choose keys that collide with another's.
    fn seed(&self) -> u64;
}

#[cfg(any(feature = "redis", test))]
/// The store's name for a key's window budget: one hash slot per key, so keys spread over a
/// cluster.
pub(crate) fn budget_key(prefix: &str, name: &str, key: u64) -> String {
    format!("{prefix}k:{{{name}:{key:016x}}}")
}

#[cfg(feature = "redis")]
/// The store's name for a group's shared cooldowns (one hash).
pub(crate) fn cooldown_key(prefix: &str, name: &str) -> String {
    format!("{prefix}o:{{{name}}}:cooldowns")
}

#[cfg(any(feature = "redis", test))]
/// The store's names for a throttle's shared limit, last safe limit and live instances: one
/// hash slot (`{name}`), so one script may touch all three.
pub(crate) fn limit_keys(prefix: &str, name: &str) -> [String; 3] {
    [
        format!("{prefix}l:{{{name}}}:limit"),
        format!("{prefix}l:{{{name}}}:safe"),
        format!("{prefix}l:{{{name}}}:instances"),
    ]
}

#[cfg(any(feature = "redis", test))]
/// The store's names for a throttle's operator state and its instances' reports, in the same
/// hash slot as its limit keys, and the channel that announces new operator states.
pub(crate) fn ops_keys(prefix: &str, name: &str) -> [String; 3] {
    [
        format!("{prefix}l:{{{name}}}:ops"),
        format!("{prefix}l:{{{name}}}:reports"),
        format!("{prefix}ops:{{{name}}}"),
    ]
}

#[cfg(feature = "redis")]
/// The store's names for a durable dead-letter queue: its stream, overflow counter and
/// permanently-failed stream, one hash slot (`{queue}`); idempotency keys are
/// `{stream}:done:{id}` in the same slot.
pub(crate) fn dlq_keys(prefix: &str, queue: &str) -> [String; 3] {
    [
        format!("{prefix}dlq:{{{queue}}}"),
        format!("{prefix}dlq:{{{queue}}}:overflow"),
        format!("{prefix}dlq:{{{queue}}}:failed"),
    ]
}

#[cfg(feature = "redis")]
/// How long the last safe limit is kept (Baldur: the default TTL × 24).
#[cfg(feature = "redis")]
pub(crate) const SAFE_LIMIT_TTL: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_put_each_budget_in_its_own_slot_and_a_limit_in_one() {
        assert_eq!(budget_key("t:", "api", 255), "t:k:{api:00000000000000ff}");
        let [limit, safe, instances] = limit_keys("t:", "api");
        let [ops, reports, _channel] = ops_keys("t:", "api");
        for k in [&limit, &safe, &instances, &ops, &reports] {
            assert!(k.contains("{api}"), "{k}");
        }
    }

    #[test]
    fn store_bounds_clamp_even_when_inverted() {
        let b = LimitBounds { min: 10, max: 5 };
        assert_eq!(b.clamp(1), 10);
        assert_eq!(LimitBounds { min: 1, max: 9 }.clamp(50), 9);
    }
}
