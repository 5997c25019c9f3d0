//! GCRA, the generic cell rate algorithm (ThrottleKit TK-004).

use super::{ceil_u64, effective_cost, floor_u64, RateDecision, Strategy, StrategyError};

/// GCRA: `limit` requests per `period_ms`, admitting bursts of up to `burst`.
///
/// The emission interval is `T = period_ms / limit` and the burst tolerance `τ = T · burst`; a
/// request of `cost` units moves the theoretical arrival time (TAT) on by `T · cost`.
///
/// ```text
/// tat      = max(state, now)          // a cold key starts at now
/// new_tat  = tat + T·cost
/// allow_at = new_tat − τ
/// deny  iff now < allow_at            // allowed on equality
///   deny:  remaining = floor((τ − (tat − now)) / T),     reset_at = ceil(tat),
///          retry_after = ceil(allow_at − now)
///   allow: state = new_tat, remaining = floor((τ − (new_tat − now)) / T),
///          reset_at = ceil(new_tat)
/// ```
///
/// The reported `limit` is the burst. A cost above the burst can never be admitted. The state is
/// one `f64` (ThrottleKit stores the TAT as a double with 17 significant digits, which round-trips
/// exactly), and all arithmetic is done in `f64` in ThrottleKit's order, so fractional emission
/// intervals round exactly as ThrottleKit's do. Like ThrottleKit's, the arithmetic is exact for
/// timestamps up to 2^53 ms (about 285 000 years of epoch milliseconds); beyond that a TAT step
/// may round away, which can admit more than the rate (never a cost above the burst).
///
/// O(1) time, one `f64` of state per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcra {
    limit: u64,
    period_ms: u64,
    burst: u64,
    /// Emission interval `T = period_ms / limit`, in ms.
    interval: f64,
    /// Burst tolerance `τ = T · burst`, in ms.
    tolerance: f64,
}

/// Per-key GCRA state: the theoretical arrival time (TAT).
///
/// The default (a TAT of 0) is a cold key: `max(0, now) = now` for every `now`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GcraState {
    tat: f64,
}

impl GcraState {
    /// The theoretical arrival time, in ms on the caller's clock (0 for a cold key).
    pub fn theoretical_arrival_ms(&self) -> f64 {
        self.tat
    }
}

impl Gcra {
    /// A GCRA admitting `limit` requests per `period_ms` milliseconds with bursts of up to `burst`.
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroLimit`], [`StrategyError::ZeroPeriod`] or [`StrategyError::ZeroBurst`]
    /// when the corresponding parameter is 0.
    pub fn new(limit: u64, period_ms: u64, burst: u64) -> Result<Self, StrategyError> {
        if limit == 0 {
            return Err(StrategyError::ZeroLimit);
        }
        if period_ms == 0 {
            return Err(StrategyError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(StrategyError::ZeroBurst);
        }
        Ok(Self::build(limit, period_ms, burst))
    }

    fn build(limit: u64, period_ms: u64, burst: u64) -> Self {
        // ThrottleKit: T = period / limit; tau = T * burst. Both finite and positive for
        // integer inputs of at least 1.
        let interval = period_ms as f64 / limit as f64;
        let tolerance = interval * burst as f64;
        Self {
            limit,
            period_ms,
            burst,
            interval,
            tolerance,
        }
    }

    /// The sustained rate: requests per [`period_ms`](Self::period_ms).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period over which [`limit`](Self::limit) applies, in ms.
    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// The largest burst admitted from a cold key; also the reported `limit` of each decision.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The emission interval `T = period_ms / limit`, in ms.
    pub fn emission_interval_ms(&self) -> f64 {
        self.interval
    }

    /// The same GCRA with a new sustained rate `limit` per period, keeping the period and the
    /// burst as given. A `limit` of 0 is clamped to 1. O(1), allocation-free; existing states stay
    /// valid (the TAT is a time, independent of the rate).
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        let limit = limit.max(1);
        if limit == self.limit {
            return self;
        }
        Self::build(limit, self.period_ms, self.burst)
    }
}

impl Strategy for Gcra {
    type State = GcraState;

    fn check(&self, state: &mut GcraState, now_ms: u64, cost: u64) -> RateDecision {
        let now = now_ms as f64;
        let cost = effective_cost(cost);
        let inc = self.interval * cost as f64;
        // max(tat, now): jump-safe, and a cold key (TAT 0) starts at now.
        let tat = if state.tat > now { state.tat } else { now };
        let new_tat = tat + inc;
        let allow_at = new_tat - self.tolerance;
        // `cost > burst` can never succeed; explicit so that it stays denied even at timestamps
        // beyond 2^53 ms, where adding `inc` to `tat` may round away.
        if now < allow_at || cost > self.burst {
            let remaining = floor_u64((self.tolerance - (tat - now)) / self.interval);
            return RateDecision::deny(
                self.burst,
                remaining,
                ceil_u64(tat),
                ceil_u64(allow_at - now),
            );
        }
        state.tat = new_tat;
        let remaining = floor_u64((self.tolerance - (new_tat - now)) / self.interval);
        RateDecision::allow(self.burst, remaining, ceil_u64(new_tat))
    }

    fn peek(&self, state: &GcraState, now_ms: u64) -> RateDecision {
        let now = now_ms as f64;
        let tat = if state.tat > now { state.tat } else { now };
        let remaining = floor_u64((self.tolerance - (tat - now)) / self.interval);
        // The admission test of `check` with cost 1, so peek and check always agree.
        let allow_at = (tat + self.interval) - self.tolerance;
        if now < allow_at {
            RateDecision::deny(
                self.burst,
                remaining,
                ceil_u64(tat),
                ceil_u64(allow_at - now),
            )
        } else {
            RateDecision::allow(self.burst, remaining, ceil_u64(tat))
        }
    }

    fn is_idle(&self, state: &GcraState, now_ms: u64) -> bool {
        // Once now has caught up with the TAT, max(tat, now) = now: the same as a cold key.
        state.tat <= now_ms as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn gcra_rejects_zero_parameters() {
        assert_eq!(Gcra::new(0, 1000, 5), Err(StrategyError::ZeroLimit));
        assert_eq!(Gcra::new(10, 0, 5), Err(StrategyError::ZeroPeriod));
        assert_eq!(Gcra::new(10, 1000, 0), Err(StrategyError::ZeroBurst));
        assert!(Gcra::new(u64::MAX, u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn gcra_cold_key_admits_exactly_the_burst_then_paces() {
        // TK-004's golden example: 10 per 1000 ms, burst 5.
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        for (i, reset) in [100, 200, 300, 400, 500].into_iter().enumerate() {
            assert_eq!(
                g.check(&mut s, 0, 1),
                decision(true, 5, 4 - i as u64, reset, 0)
            );
        }
        assert_eq!(g.check(&mut s, 0, 1), decision(false, 5, 0, 500, 100));
        assert_eq!(g.check(&mut s, 100, 1), decision(true, 5, 0, 600, 0));
        assert_eq!(g.check(&mut s, 1000, 1), decision(true, 5, 4, 1100, 0));
    }

    #[test]
    fn gcra_fractional_interval_rounds_like_throttlekit() {
        // ThrottleKit 1.5.2's `gcra/fractional-T` vector: T = 1000/3.
        let g = Gcra::new(3, 1000, 3).unwrap();
        let mut s = GcraState::default();
        assert_eq!(g.check(&mut s, 1000, 1), decision(true, 3, 2, 1334, 0));
        assert_eq!(g.check(&mut s, 1000, 1), decision(true, 3, 1, 1667, 0));
        assert_eq!(g.check(&mut s, 1000, 1), decision(true, 3, 0, 2000, 0));
        assert_eq!(g.check(&mut s, 1000, 1), decision(false, 3, 0, 2000, 334));
        assert_eq!(g.check(&mut s, 1334, 1), decision(true, 3, 0, 2334, 0));
        assert_eq!(g.check(&mut s, 1667, 1), decision(true, 3, 0, 2667, 0));
        assert_eq!(g.check(&mut s, 2000, 1), decision(true, 3, 0, 3000, 0));
    }

    #[test]
    fn gcra_large_epoch_timestamps_stay_exact() {
        // ThrottleKit 1.5.2's `gcra/large-epoch` vector.
        let g = Gcra::new(60, 60_000, 10).unwrap();
        let mut s = GcraState::default();
        let t0 = 1_700_000_000_000;
        assert_eq!(g.check(&mut s, t0, 1), decision(true, 10, 9, t0 + 1000, 0));
        assert_eq!(g.check(&mut s, t0, 1), decision(true, 10, 8, t0 + 2000, 0));
        assert_eq!(
            g.check(&mut s, t0 + 500, 1),
            decision(true, 10, 7, t0 + 3000, 0)
        );
        assert_eq!(
            g.check(&mut s, t0 + 60_000, 1),
            decision(true, 10, 9, t0 + 61_000, 0)
        );
    }

    #[test]
    fn gcra_denied_request_does_not_consume() {
        let g = Gcra::new(100, 1000, 50).unwrap();
        let mut s = GcraState::default();
        g.check(&mut s, 0, 35);
        let before = s;
        let d = g.check(&mut s, 0, 20);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 50);
        assert_eq!(s, before);
        // The smaller request that fits is still admitted.
        assert!(g.check(&mut s, 0, 15).allowed);
    }

    #[test]
    fn gcra_cost_above_burst_is_always_denied() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        for now in [0, 1_000_000, u64::MAX] {
            assert!(!g.check(&mut s, now, 6).allowed);
        }
        assert_eq!(s, GcraState::default());
        assert!(!g.check(&mut s, 0, u64::MAX).allowed);
    }

    #[test]
    fn gcra_zero_cost_counts_as_one() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        assert_eq!(g.check(&mut s, 0, 0).remaining, 4);
    }

    #[test]
    fn gcra_clock_moving_backwards_never_admits_more() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        for _ in 0..5 {
            assert!(g.check(&mut s, 10_000, 1).allowed);
        }
        // Jump back: the TAT is in the future, so the key stays exhausted and the wait grows.
        let d = g.check(&mut s, 5_000, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_ms, 5_100);
    }

    #[test]
    fn gcra_peek_reports_without_consuming() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        assert_eq!(g.peek(&s, 0), decision(true, 5, 5, 0, 0));
        for _ in 0..5 {
            g.check(&mut s, 0, 1);
        }
        let peeked = g.peek(&s, 0);
        let mut probe = s;
        assert_eq!(peeked, g.check(&mut probe, 0, 1));
        assert_eq!(peeked, decision(false, 5, 0, 500, 100));
    }

    #[test]
    fn gcra_is_idle_once_now_reaches_the_tat() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        assert!(g.is_idle(&s, 0));
        g.check(&mut s, 0, 2);
        assert!(!g.is_idle(&s, 199));
        assert!(g.is_idle(&s, 200));
    }

    #[test]
    fn gcra_with_limit_keeps_burst_and_state() {
        let g = Gcra::new(10, 1000, 5).unwrap();
        let mut s = GcraState::default();
        g.check(&mut s, 0, 5);
        let faster = g.with_limit(20);
        assert_eq!(faster.burst(), 5);
        assert_eq!(faster.period_ms(), 1000);
        assert_eq!(faster.limit(), 20);
        // The same TAT (500) is now judged with T = 50: the key has room again after 300 ms.
        assert!(!faster.check(&mut s, 250, 1).allowed);
        assert!(faster.check(&mut s, 300, 1).allowed);
        assert_eq!(g.with_limit(0).limit(), 1);
        assert_eq!(g.with_limit(10), g);
    }
}
