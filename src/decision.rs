//! The value every admission check returns: [`Decision`], with [`Tier`], [`RejectReason`] and
//! the [`Axis`] that bound it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How important a request is. Under pressure, non-essential work is shed first and critical work
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tier {
    /// Must get through: payments, health checks of dependants.
    Critical,
    /// Ordinary traffic.
    #[default]
    Standard,
    /// Can wait or be dropped: prefetches, analytics, batch jobs.
    NonEssential,
}

impl Tier {
    /// All tiers, most important first.
    pub const ALL: [Tier; 3] = [Tier::Critical, Tier::Standard, Tier::NonEssential];

    /// The snake_case name (`critical`, `standard`, `non_essential`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Standard => "standard",
            Self::NonEssential => "non_essential",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a tier name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTierError {
    input: String,
}

impl fmt::Display for ParseTierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown tier {:?}: expected critical, standard or non_essential",
            self.input
        )
    }
}

impl std::error::Error for ParseTierError {}

impl FromStr for Tier {
    type Err = ParseTierError;

    /// Accepts `critical`, `standard`, `non_essential` and `non-essential`, ASCII
    /// case-insensitive, ignoring surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("critical") {
            Ok(Self::Critical)
        } else if t.eq_ignore_ascii_case("standard") {
            Ok(Self::Standard)
        } else if t.eq_ignore_ascii_case("non_essential") || t.eq_ignore_ascii_case("non-essential")
        {
            Ok(Self::NonEssential)
        } else {
            Err(ParseTierError {
                input: s.chars().take(64).collect(),
            })
        }
    }
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RejectReason {
    /// The key used its share of the limit in the current window.
    RateLimitExceeded,
    /// The adaptive in-flight limit is reached.
    ConcurrencyLimitExceeded,
    /// The error budget is critical and the request is non-essential.
    ErrorBudgetCriticalNonEssentialBlocked,
    /// The emergency level gives this tier no capacity.
    EmergencyTierBlocked,
    /// Full stop: nothing is admitted until break glass.
    FullStop,
    /// The fleet's store is unreachable and the throttle fails closed
    /// ([`StoreFallback::FailClosed`](crate::store::StoreFallback::FailClosed)).
    StoreUnavailable,
    /// The key spent its cost budget (for example tokens per minute) in the current window
    /// (the cost axis, [`Axis::Cost`]).
    BudgetExhausted,
}

impl RejectReason {
    /// Every reason.
    pub const ALL: [RejectReason; 7] = [
        Self::RateLimitExceeded,
        Self::ConcurrencyLimitExceeded,
        Self::ErrorBudgetCriticalNonEssentialBlocked,
        Self::EmergencyTierBlocked,
        Self::FullStop,
        Self::StoreUnavailable,
        Self::BudgetExhausted,
    ];

    /// The snake_case name used in bodies, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::ConcurrencyLimitExceeded => "concurrency_limit_exceeded",
            Self::ErrorBudgetCriticalNonEssentialBlocked => {
                "error_budget_critical_non_essential_blocked"
            }
            Self::EmergencyTierBlocked => "emergency_tier_blocked",
            Self::FullStop => "full_stop",
            Self::StoreUnavailable => "store_unavailable",
            Self::BudgetExhausted => "budget_exhausted",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which admission axis decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Axis {
    /// Admissions per key per window.
    Rate,
    /// Work in flight.
    Concurrency,
    /// A governance input (kill switch, emergency, error budget, full stop).
    Policy,
    /// A cost budget per key per window (tokens, credits: what the request spends, known
    /// after the response). See [`CostConfig`](crate::config::CostConfig).
    Cost,
}

impl Axis {
    /// The snake_case name (`rate`, `concurrency`, `policy`, `cost`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Concurrency => "concurrency",
            Self::Policy => "policy",
            Self::Cost => "cost",
        }
    }
}

/// How an admitted request ended, and so what the adaptive limits learn from it: the outcome a
/// [`ConcurrencyPermit`](crate::ConcurrencyPermit) is released with, and what a
/// [`Classify`](crate::http::Classify) makes of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Outcome {
    /// Completed: its latency is an ordinary sample (it goes to
    /// [`record_response`](crate::AdaptiveThrottle::record_response)).
    Success,
    /// Failed in a way that signals overload (an inner error, a 5xx, a timeout): a drop for the
    /// concurrency axis, and a sample at least as slow as `sla_warning` for the rate axis
    /// ([`record_overload`](crate::AdaptiveThrottle::record_overload)).
    Overload,
    /// Not a signal about the service (cancelled, failed before the work started, or a
    /// response produced by another middleware): the slot is released and nothing is learnt.
    /// A permit dropped without an outcome is ignored too.
    Ignore,
}

/// The verdict of an admission check. A denial is a value, not an error.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit the request was checked against (per key per window on the rate axis).
    pub limit: u32,
    /// Admissions left in the window after this one (0 when denied). When keys share one
    /// limit, this is the room left for any request of the key, whatever its tier: the reserve
    /// kept for its higher tiers is not counted, so a client that paces itself by it is not
    /// refused.
    pub remaining: u32,
    /// How long to wait before retrying; zero exactly when allowed.
    pub retry_after: Duration,
    /// How long until the key's window is fully replenished.
    pub reset_after: Duration,
    /// Why it was denied; `None` when allowed.
    pub reason: Option<RejectReason>,
    /// The tier it was checked as.
    pub tier: Tier,
    /// Smoothed service latency when the decision was made.
    pub rtt: Option<Duration>,
    /// Latency trend when the decision was made.
    pub gradient: f64,
    /// The axis that denied, or that bound `remaining` when allowed.
    pub axis: Option<Axis>,
}

impl Decision {
    /// An admission that the throttle did not limit (for example a disabled throttle).
    pub fn unlimited(tier: Tier) -> Self {
        Self {
            allowed: true,
            limit: u32::MAX,
            remaining: u32::MAX,
            retry_after: Duration::ZERO,
            reset_after: Duration::ZERO,
            reason: None,
            tier,
            rtt: None,
            gradient: 0.0,
            axis: None,
        }
    }

    /// Combines two decisions by ThrottleKit's algebra: allowed = and, limit and remaining =
    /// min, reset and retry = max. The first denying side names the reason and axis.
    pub fn combine(self, other: Decision) -> Decision {
        let (reason, axis) = match (self.allowed, other.allowed) {
            (false, _) => (self.reason, self.axis),
            (true, false) => (other.reason, other.axis),
            (true, true) if other.remaining < self.remaining => (None, other.axis),
            (true, true) => (None, self.axis),
        };
        Decision {
            allowed: self.allowed && other.allowed,
            limit: self.limit.min(other.limit),
            remaining: self.remaining.min(other.remaining),
            retry_after: self.retry_after.max(other.retry_after),
            reset_after: self.reset_after.max(other.reset_after),
            reason,
            tier: self.tier,
            rtt: self.rtt.or(other.rtt),
            gradient: self.gradient,
            axis,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_parses_case_insensitively_with_both_spellings() {
        assert_eq!("CRITICAL".parse::<Tier>(), Ok(Tier::Critical));
        assert_eq!(" Standard ".parse::<Tier>(), Ok(Tier::Standard));
        assert_eq!("non_essential".parse::<Tier>(), Ok(Tier::NonEssential));
        assert_eq!("Non-Essential".parse::<Tier>(), Ok(Tier::NonEssential));
        let err = "vip".parse::<Tier>().unwrap_err();
        assert!(err.to_string().contains("vip"));
        assert!("".parse::<Tier>().is_err());
    }

    #[test]
    fn combine_follows_the_algebra() {
        let mut a = Decision::unlimited(Tier::Standard);
        a.limit = 10;
        a.remaining = 4;
        a.axis = Some(Axis::Rate);
        let mut b = Decision::unlimited(Tier::Standard);
        b.allowed = false;
        b.limit = 20;
        b.remaining = 0;
        b.retry_after = Duration::from_millis(300);
        b.reason = Some(RejectReason::ConcurrencyLimitExceeded);
        b.axis = Some(Axis::Concurrency);
        let c = a.combine(b);
        assert!(!c.allowed);
        assert_eq!((c.limit, c.remaining), (10, 0));
        assert_eq!(c.retry_after, Duration::from_millis(300));
        assert_eq!(c.axis, Some(Axis::Concurrency));
        assert_eq!(c.reason, Some(RejectReason::ConcurrencyLimitExceeded));
        assert_eq!(a.combine(a), a, "idempotent");
    }

    #[test]
    fn reasons_have_stable_names() {
        assert_eq!(
            RejectReason::ErrorBudgetCriticalNonEssentialBlocked.as_str(),
            "error_budget_critical_non_essential_blocked"
        );
        assert_eq!(
            RejectReason::RateLimitExceeded.to_string(),
            "rate_limit_exceeded"
        );
    }
}
