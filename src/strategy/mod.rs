//! Rate strategies that reproduce [ThrottleKit]'s decisions integer for integer.
//!
//! Each strategy is a small, validated, `Copy` value; the per-key state lives outside it, in the
//! strategy's [`Strategy::State`] (whose `Default` is a cold key). Every call takes the current time
//! explicitly, as milliseconds on any monotone-ish clock, so the strategies are pure functions of
//! `(parameters, state, now, cost)`: no clock, no lock, no allocation beyond the state itself.
//! Each decision carries ThrottleKit's five integers ([`RateDecision`]).
//!
//! | strategy | decision rule | per-key memory |
//! |---|---|---|
//! | [`Gcra`] | `T = period/limit`, `τ = T·burst`; admit iff `now ≥ max(tat, now) + T·cost − τ` | one `f64` |
//! | [`TokenBucket`] | refill `elapsed · rate/1000` up to `capacity`; admit iff `tokens ≥ cost` | `f64` + `u64` + tag |
//! | [`FixedWindow`] | epoch-aligned windows; admit iff `count + cost ≤ limit` | two `u64` |
//! | [`SlidingWindow`] | `S + 1` sub-buckets; admit iff `Σ newest S + oldest·weight + cost ≤ limit` | `4·(S + 1)` bytes on the heap + 32 inline |
//! | [`SlidingWindowLog`] | exact log of admitted units; admit iff `in-window + cost ≤ limit` | 16 bytes per distinct admission instant in the window |
//! | [`TokenBudget`] | epoch-aligned meter; admit while `served < budget`, the crossing debit counts in full | two `u64` |
//! | [`LeaseSpender`] | spends credits leased from a coordinator; never synthesises a denial | the spender itself |
//!
//! The throttle's cost axis ([`CostConfig`](crate::config::CostConfig)) meters each key with a
//! [`TokenBudget`]; fleet mode's leased admission spends its leases with [`LeaseSpender`].
//!
//! The formulas, their rounding and the order of floating-point operations are ThrottleKit's
//! (contract version 1), so the crate's conformance test replays ThrottleKit's published golden
//! vectors through these types and compares every integer.
//!
//! # Shared rules
//!
//! - **Denials never consume.** A denied [`Strategy::check`] leaves the state untouched.
//! - **`retry_after_ms` is `0` exactly when the decision is allowed**, and at least `1` otherwise.
//! - **A cost of `0` is treated as `1`** (ThrottleKit's wire convention). A cost above what a rate
//!   strategy can ever hold (the burst, capacity or limit) is simply denied; its `retry_after_ms`
//!   is the strategy's usual formula and only a hint, since waiting will not help. (The
//!   `TokenBudget` meter is the exception by design: it admits the debit that crosses the budget.)
//! - **Jump-safe clocks.** Time moving backwards never panics and never admits more: GCRA uses
//!   `max(tat, now)`, the token bucket `max(0, now − last)` and never moves `last` backwards, and the
//!   windowed strategies keep evaluating against the newest window they have seen. Decisions for a
//!   backwards `now` may therefore be stricter than ThrottleKit's (which can re-open a window), never
//!   looser.
//! - **No panics, no overflow.** Integer arithmetic saturates; float results are clamped before
//!   they are turned into integers.
//! - **Changing limits.** Each rate strategy has an O(1), allocation-free `with_limit` that the
//!   throttle calls whenever its adaptive limit moves. State created under one limit stays valid
//!   under another.
//!
//! [ThrottleKit]: https://github.com/AmeyaBorkar/throttlekit

use std::fmt;

mod any;
mod fixed_window;
mod gcra;
mod lease;
mod sliding_window;
mod sliding_window_log;
mod token_bucket;
mod token_budget;

#[cfg(test)]
mod proptests;

pub use any::{AnyState, AnyStrategy};
pub use fixed_window::{FixedWindow, FixedWindowState};
pub use gcra::{Gcra, GcraState};
pub use lease::{LeaseSpend, LeaseSpender};
pub use sliding_window::{
    SlidingWindow, SlidingWindowState, DEFAULT_BUCKETS, MAX_BUCKETS, MAX_SLIDING_WINDOW_LIMIT,
};
pub use sliding_window_log::{SlidingWindowLog, SlidingWindowLogState};
pub use token_bucket::{TokenBucket, TokenBucketState};
pub use token_budget::{TokenBudget, TokenBudgetState};

/// ThrottleKit's five integers: the outcome of one rate decision.
///
/// A denial is an ordinary value, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is admitted (and, for [`Strategy::check`], its cost consumed).
    pub allowed: bool,
    /// The quota the decision is measured against: the burst for [`Gcra`], the capacity for
    /// [`TokenBucket`], the window limit for the windowed strategies, the budget for the token
    /// budget.
    pub limit: u64,
    /// Whole units still available after this decision (never negative).
    pub remaining: u64,
    /// When the quota is fully replenished (or the current window ends), in milliseconds on the
    /// same clock as `now`.
    pub reset_at: u64,
    /// How long to wait before retrying, in milliseconds: `0` when allowed, at least `1` when denied.
    pub retry_after_ms: u64,
}

impl RateDecision {
    /// An admitting decision.
    pub(crate) fn allow(limit: u64, remaining: u64, reset_at: u64) -> Self {
        Self {
            allowed: true,
            limit,
            remaining,
            reset_at,
            retry_after_ms: 0,
        }
    }

    /// A denying decision; `retry_after_ms` is raised to at least 1.
    pub(crate) fn deny(limit: u64, remaining: u64, reset_at: u64, retry_after_ms: u64) -> Self {
        Self {
            allowed: false,
            limit,
            remaining,
            reset_at,
            retry_after_ms: retry_after_ms.max(1),
        }
    }
}

/// An invalid strategy parameter. Each variant names the parameter and carries the offending value
/// where there is one to carry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StrategyError {
    /// A rate or window limit was 0 (it must be at least 1).
    ZeroLimit,
    /// The GCRA period was 0 ms (it must be at least 1).
    ZeroPeriod,
    /// The GCRA burst was 0 (it must be at least 1).
    ZeroBurst,
    /// The token-bucket capacity was 0 (it must be at least 1).
    ZeroCapacity,
    /// The token-bucket refill rate was not a finite, positive number of tokens per second, or was
    /// so small or so large that the derived per-millisecond rate or full-refill time is not
    /// finite and positive.
    InvalidRefillRate {
        /// The rejected rate, in tokens per second.
        rate: f64,
    },
    /// A window length was 0 ms (it must be at least 1).
    ZeroWindow,
    /// The sliding window had 0 sub-buckets (it needs at least 1).
    ZeroBuckets,
    /// The sliding window had more than [`MAX_BUCKETS`] sub-buckets.
    TooManyBuckets {
        /// The rejected bucket count.
        buckets: u64,
    },
    /// The sliding-window limit exceeds [`MAX_SLIDING_WINDOW_LIMIT`] (its sub-bucket counters are
    /// 32-bit).
    LimitTooLarge {
        /// The rejected limit.
        limit: u64,
        /// The largest accepted limit.
        max: u64,
    },
    /// The token budget was 0 (it must be at least 1).
    ZeroBudget,
}

impl fmt::Display for StrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLimit => f.write_str("limit must be at least 1, got 0"),
            Self::ZeroPeriod => f.write_str("GCRA period must be at least 1 ms, got 0 ms"),
            Self::ZeroBurst => f.write_str("GCRA burst must be at least 1, got 0"),
            Self::ZeroCapacity => f.write_str("token bucket capacity must be at least 1, got 0"),
            Self::InvalidRefillRate { rate } => write!(
                f,
                "token bucket refill rate must be a finite number of tokens per second above 0 \
                 (with a finite, non-zero per-millisecond rate and full-refill time), got {rate}"
            ),
            Self::ZeroWindow => f.write_str("window must be at least 1 ms, got 0 ms"),
            Self::ZeroBuckets => f.write_str("sliding window needs at least 1 bucket, got 0"),
            Self::TooManyBuckets { buckets } => write!(
                f,
                "sliding window buckets must be at most {MAX_BUCKETS}, got {buckets}"
            ),
            Self::LimitTooLarge { limit, max } => {
                write!(f, "sliding window limit must be at most {max}, got {limit}")
            }
            Self::ZeroBudget => f.write_str("token budget must be at least 1, got 0"),
        }
    }
}

impl std::error::Error for StrategyError {}

/// A rate strategy: decides admissions for one key from that key's state and an explicit `now`.
///
/// Implementations are pure: the same parameters, state, `now` and `cost` always give the same
/// decision and the same new state.
pub trait Strategy {
    /// Per-key state; `Default` is a cold key (one that has never been seen).
    type State: Default + Clone + fmt::Debug + Send + Sync + 'static;

    /// Decides whether `cost` units may be admitted at `now_ms`, consuming them only when allowed
    /// (denials never change the state). A `cost` of 0 is treated as 1.
    fn check(&self, state: &mut Self::State, now_ms: u64, cost: u64) -> RateDecision;

    /// The same view as [`check`](Strategy::check) with cost 1, consuming nothing: `allowed` and
    /// `retry_after_ms` are what `check` with cost 1 would answer (a denied peek equals that
    /// denial exactly), while `remaining` and `reset_at` describe the state as it is, before
    /// anything is consumed (ThrottleKit's `peek`).
    fn peek(&self, state: &Self::State, now_ms: u64) -> RateDecision;

    /// True when `state` is indistinguishable from a cold key at `now_ms`, so it may be evicted.
    fn is_idle(&self, state: &Self::State, now_ms: u64) -> bool;
}

/// ThrottleKit's wire convention: a cost of 0 means 1.
#[inline]
pub(crate) fn effective_cost(cost: u64) -> u64 {
    cost.max(1)
}

/// `ceil(x)` as an integer, saturating: negative and NaN give 0, huge values `u64::MAX`.
#[inline]
pub(crate) fn ceil_u64(x: f64) -> u64 {
    // `as` from float to integer saturates and maps NaN to 0.
    x.ceil() as u64
}

/// `floor(x)` as an integer, saturating: negative and NaN give 0, huge values `u64::MAX`.
#[inline]
pub(crate) fn floor_u64(x: f64) -> u64 {
    x.floor() as u64
}

/// The start of the epoch-aligned window of length `window_ms` containing `now_ms`.
#[inline]
pub(crate) fn window_start(now_ms: u64, window_ms: u64) -> u64 {
    // `window_ms` is validated to be at least 1.
    now_ms - now_ms % window_ms.max(1)
}

/// A `RateDecision` from its five integers, for the strategies' table tests.
#[cfg(test)]
pub(crate) fn test_decision(
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_at: u64,
    retry: u64,
) -> RateDecision {
    RateDecision {
        allowed,
        limit,
        remaining,
        reset_at,
        retry_after_ms: retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_never_reports_a_zero_retry() {
        let d = RateDecision::deny(5, 0, 10, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1);
    }

    #[test]
    fn float_to_integer_helpers_saturate() {
        assert_eq!(ceil_u64(-3.5), 0);
        assert_eq!(ceil_u64(f64::NAN), 0);
        assert_eq!(ceil_u64(f64::INFINITY), u64::MAX);
        assert_eq!(ceil_u64(2.000_1), 3);
        assert_eq!(floor_u64(2.999), 2);
        assert_eq!(floor_u64(-0.5), 0);
    }

    #[test]
    fn window_start_is_epoch_aligned() {
        assert_eq!(window_start(0, 1000), 0);
        assert_eq!(window_start(999, 1000), 0);
        assert_eq!(window_start(1000, 1000), 1000);
        assert_eq!(window_start(u64::MAX, 1000), u64::MAX - u64::MAX % 1000);
    }

    #[test]
    fn error_messages_name_the_values() {
        assert!(StrategyError::TooManyBuckets { buckets: 200_000 }
            .to_string()
            .contains("200000"));
        assert!(StrategyError::InvalidRefillRate { rate: -1.5 }
            .to_string()
            .contains("-1.5"));
        assert!(StrategyError::LimitTooLarge {
            limit: 1 << 40,
            max: 7
        }
        .to_string()
        .contains(&(1u64 << 40).to_string()));
        assert!(StrategyError::ZeroWindow.to_string().contains('0'));
    }
}
