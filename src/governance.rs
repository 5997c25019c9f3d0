//! Governance inputs: the external signals that reduce or freeze the limit during an incident,
//! combined by min-winner with the adaptive limit.
//!
//! | input | effect while active |
//! |---|---|
//! | upstream 429s (consecutive n) | each new 429 caps at `max(floor(current × 0.8 / 0.6 / 0.5), min_limit)` (n = 1 / 2 / ≥ 3), compounding |
//! | error budget warning / critical | cap `base × 0.8 / 0.5`; critical blocks non-essential |
//! | load shedding at p % | cap `min(max, floor(max × p / 100) × 1.5)` |
//! | emergency level 1 / 2 / 3 | cap `base × 0.8 / 0.5` / floor and freeze; per-tier multipliers |
//! | breaker open / half-open | cap floor / `initial × 0.5` |
//! | kill switch | freeze (the limit is kept, not moved) |
//! | full stop | limit 0: everything rejected until [`break_glass`](crate::Governance::break_glass) |
//!
//! `base` is the limit in force just before the first reduction started. Every cap is at least
//! `min_limit` (full stop excepted). Critical traffic keeps being checked against `base` while a
//! reduction is active. When the last reduction ends, a recovery ramp climbs back to `base`.
//!
//! The upstream-429 cap is the one that is not a fraction of `base` (Baldur BAL-021): each new
//! 429 cuts `current`, the limit in force when it arrives, so consecutive 429s compound — from
//! 100: 80, then 48, then 24, then 12, down to `min_limit`. `current` is the limit as every
//! input has already bounded it (an error-budget cap, a ladder cut, a ramp stage), so a 429
//! during another reduction cuts below it, and the 429 cap stays where it was put when that
//! other reduction ends. A count reported again (the same `n`) is the same 429 and cuts nothing;
//! any other count is one new 429 and cuts once, by the ratio of that count (1 then 3, when
//! reports in between were debounced, cuts by 0.8 then by 0.5). The cap lasts until the cooldown
//! ends (or a count of 0), and the limit then recovers through the ramp.

use std::time::Duration;

use crate::decision::Tier;

/// State of an error budget (SLO) as reported by the system that tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ErrorBudget {
    /// Plenty of budget left.
    #[default]
    Healthy,
    /// Budget running low (Baldur: 10–20 % left): cap at 80 % of base.
    Warning,
    /// Budget nearly or fully spent: cap at 50 % of base and reject non-essential work.
    Critical,
}

/// State of a circuit breaker guarding the service's dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BreakerState {
    /// Calls flow.
    #[default]
    Closed,
    /// Calls are failing fast: the limit goes to its floor.
    Open,
    /// Trial calls: the limit goes to half of the initial limit.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Governance facts an external system holds, polled by the throttle at most once per TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GovernanceSnapshot {
    /// Emergency level, 0 (none) to 3.
    pub emergency_level: u8,
    /// Whether the kill switch is engaged.
    pub kill_switch: bool,
    /// Error budget state.
    pub error_budget: ErrorBudget,
}

/// An external source of governance facts (an incident tool, a feature-flag service, a config
/// file). The throttle polls it lazily from `check`, at most once per `ttl`, and applies any
/// difference from what it last saw (so a lost event is corrected at the next poll).
///
/// `poll` runs on the request path of the one request that finds the TTL elapsed: it must be
/// cheap and must not block (read a cached value; refresh it elsewhere).
pub trait GovernanceSource: Send + Sync + 'static {
    /// The facts now.
    fn poll(&self) -> GovernanceSnapshot;

    /// How long a poll stays fresh (default 30 s).
    fn ttl(&self) -> Duration {
        Duration::from_secs(30)
    }
}

impl<F> GovernanceSource for F
where
    F: Fn() -> GovernanceSnapshot + Send + Sync + 'static,
{
    fn poll(&self) -> GovernanceSnapshot {
        self()
    }
}

/// Governance inputs currently applied, as reported in stats.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GovernanceState {
    /// Emergency level (0–3).
    pub emergency_level: u8,
    /// Kill switch engaged.
    pub kill_switch: bool,
    /// Error budget.
    pub error_budget: ErrorBudget,
    /// Load shedding traffic percent, if active.
    pub load_shedding: Option<u8>,
    /// Breaker state (driven by the built-in breaker or by `on_breaker_state`).
    pub breaker: BreakerState,
    /// Consecutive upstream 429s being reacted to (0 when none).
    pub upstream_429s: u32,
    /// The cap the upstream 429s have put on the limit while their cooldown lasts: each new 429
    /// cut the limit in force by its ratio (see the [module docs](self)).
    pub upstream_429_limit: Option<u32>,
    /// Full stop: everything rejected until break glass.
    pub full_stop: bool,
    /// Break glass was used since the last full stop.
    pub break_glass: bool,
    /// The pre-incident base while a reduction is active.
    pub reduction_base: Option<u32>,
    /// The min-winner of the active reductions, if any.
    pub reduction_cap: Option<u32>,
}

/// Per-tier multipliers of an emergency level: (critical, standard, non-essential).
pub(crate) fn emergency_tier_multiplier(level: u8, tier: Tier) -> f64 {
    let (c, s, n) = match level {
        0 => (1.0, 1.0, 1.0),
        1 => (1.0, 1.0, 0.0),
        2 => (1.0, 0.1, 0.0),
        _ => (0.5, 0.0, 0.0),
    };
    match tier {
        Tier::Critical => c,
        Tier::Standard => s,
        Tier::NonEssential => n,
    }
}

/// Multiplier of the base for an emergency level (level 3 is handled as the floor).
pub(crate) fn emergency_multiplier(level: u8) -> f64 {
    match level {
        0 => 1.0,
        1 => 0.8,
        _ => 0.5,
    }
}

/// Ratio of the current limit that the `n`-th consecutive upstream 429 leaves (Baldur: 0.8,
/// 0.6, then 0.5 from the third on).
pub(crate) fn upstream_429_ratio(consecutive: u32) -> f64 {
    match consecutive {
        0 => 1.0,
        1 => 0.8,
        2 => 0.6,
        _ => 0.5,
    }
}

/// The limit a new upstream 429, the `consecutive`-th in a row, suggests:
/// `max(floor(current × ratio), min_limit)`, applied to the limit in force when it arrives.
pub(crate) fn upstream_429_limit(current: u32, consecutive: u32, min_limit: u32) -> u32 {
    ((f64::from(current) * upstream_429_ratio(consecutive)).floor() as u32).max(min_limit)
}

/// Baldur's compensation for double-blocking with a shedding middleware.
pub(crate) const SHEDDING_COMPENSATION: f64 = 1.5;
