//! Property tests shared by every rate strategy.

use proptest::prelude::*;

use super::Strategy as RateStrategy;
use super::{
    AnyState, AnyStrategy, FixedWindow, Gcra, GcraState, SlidingWindow, SlidingWindowLog,
    TokenBucket, TokenBucketState, MAX_BUCKETS, MAX_SLIDING_WINDOW_LIMIT,
};
use super::{LeaseSpend, LeaseSpender, TokenBudget, TokenBudgetState};

/// One step: advance (or, with the flag, rewind) the clock by `dt` ms, then check `cost` units.
type Op = (u64, u64, bool);

const START_MS: u64 = 1_000_000;

fn ops(max_dt: u64, max_cost: u64, rewind: f64) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        (0..max_dt, 0..max_cost, prop::bool::weighted(rewind)),
        1..160,
    )
}

fn monotone_ops(max_dt: u64, max_cost: u64) -> impl Strategy<Value = Vec<Op>> {
    ops(max_dt, max_cost, 0.0)
}

fn step(now: u64, (dt, _, rewind): Op) -> u64 {
    if rewind {
        now.saturating_sub(dt)
    } else {
        now + dt
    }
}

/// The invariants every strategy keeps on every step, including when the clock goes backwards:
/// denials never change the state, `retry_after_ms == 0` exactly when allowed, `remaining` never
/// exceeds `limit`, and `peek` agrees with a cost-1 `check` (equal to it when denied).
fn check_invariants<S>(strategy: &S, ops: &[Op]) -> Result<(), TestCaseError>
where
    S: RateStrategy,
    S::State: PartialEq,
{
    let mut state = S::State::default();
    let mut now = START_MS;
    for &op in ops {
        now = step(now, op);
        let peeked = strategy.peek(&state, now);
        prop_assert_eq!(
            peeked.retry_after_ms == 0,
            peeked.allowed,
            "peek {:?}",
            peeked
        );
        let mut probe = state.clone();
        let one = strategy.check(&mut probe, now, 1);
        prop_assert_eq!(
            peeked.allowed,
            one.allowed,
            "peek {:?} vs check {:?}",
            peeked,
            one
        );
        if !peeked.allowed {
            prop_assert_eq!(peeked, one);
        }

        let before = state.clone();
        let decision = strategy.check(&mut state, now, op.1);
        prop_assert_eq!(
            decision.retry_after_ms == 0,
            decision.allowed,
            "{:?}",
            decision
        );
        prop_assert!(decision.remaining <= decision.limit, "{:?}", decision);
        if !decision.allowed {
            prop_assert_eq!(&state, &before, "a denial changed the state");
        }
    }
    Ok(())
}

/// Replays monotone `ops`, changing the limit to `limits[i % len]` before each step, and returns
/// the admitted `(now, units)`.
fn admitted_with_limits(strategy: AnyStrategy, limits: &[u64], ops: &[Op]) -> Vec<(u64, u64)> {
    let mut state = AnyState::default();
    let mut now = START_MS;
    let mut admitted = Vec::new();
    for (i, &op) in ops.iter().enumerate() {
        now = step(now, op);
        let s = strategy.with_limit(limits[i % limits.len()]);
        if s.check(&mut state, now, op.1).allowed {
            admitted.push((now, op.1.max(1)));
        }
    }
    admitted
}

proptest! {
    #[test]
    fn gcra_keeps_the_invariants(
        limit in 1u64..50, period in 1u64..5000, burst in 1u64..20, ops in ops(400, 25, 0.1),
    ) {
        check_invariants(&Gcra::new(limit, period, burst).unwrap(), &ops)?;
    }

    #[test]
    fn token_bucket_keeps_the_invariants(
        capacity in 1u64..30, rate in 0.01f64..200.0, ops in ops(400, 35, 0.1),
    ) {
        check_invariants(&TokenBucket::new(capacity, rate).unwrap(), &ops)?;
    }

    #[test]
    fn fixed_window_keeps_the_invariants(
        limit in 1u64..30, window in 1u64..3000, ops in ops(400, 35, 0.1),
    ) {
        check_invariants(&FixedWindow::new(limit, window).unwrap(), &ops)?;
    }

    #[test]
    fn sliding_window_keeps_the_invariants(
        limit in 1u64..30, window in 1u64..3000, buckets in 1u32..25, ops in ops(400, 35, 0.1),
    ) {
        check_invariants(&SlidingWindow::new(limit, window, buckets).unwrap(), &ops)?;
    }

    #[test]
    fn sliding_log_keeps_the_invariants(
        limit in 1u64..30, window in 1u64..3000, ops in ops(400, 35, 0.1),
    ) {
        check_invariants(&SlidingWindowLog::new(limit, window).unwrap(), &ops)?;
    }

    #[test]
    fn token_budget_keeps_the_invariants(
        budget in 1u64..30, window in 1u64..3000, ops in ops(400, 35, 0.1),
    ) {
        check_invariants(&TokenBudget::new(budget, window).unwrap(), &ops)?;
    }

    #[test]
    fn any_strategy_keeps_the_invariants_while_the_limit_moves(
        kind in 0usize..5, limits in prop::collection::vec(1u64..30, 1..8), ops in ops(400, 35, 0.1),
    ) {
        let base: AnyStrategy = match kind {
            0 => Gcra::new(10, 1000, 5).unwrap().into(),
            1 => TokenBucket::new(10, 10.0).unwrap().into(),
            2 => FixedWindow::new(10, 1000).unwrap().into(),
            3 => SlidingWindow::new(10, 1000, 10).unwrap().into(),
            _ => SlidingWindowLog::new(10, 1000).unwrap().into(),
        };
        let mut state = AnyState::default();
        let mut now = START_MS;
        for (i, &op) in ops.iter().enumerate() {
            now = step(now, op);
            let strategy = base.with_limit(limits[i % limits.len()]);
            let before = state.clone();
            let decision = strategy.check(&mut state, now, op.1);
            prop_assert_eq!(decision.retry_after_ms == 0, decision.allowed);
            if !decision.allowed {
                prop_assert_eq!(&state, &before);
            }
        }
    }

    #[test]
    fn fixed_window_never_admits_more_than_the_limit_per_window(
        limits in prop::collection::vec(1u64..30, 1..6), window in 1u64..3000,
        ops in monotone_ops(300, 35),
    ) {
        let max = *limits.iter().max().unwrap();
        let admitted = admitted_with_limits(
            FixedWindow::new(1, window).unwrap().into(), &limits, &ops);
        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for (now, units) in admitted {
            *per_window.entry(now / window).or_default() += units;
        }
        for (w, units) in per_window {
            prop_assert!(units <= max, "window {} admitted {} > {}", w, units, max);
        }
    }

    #[test]
    fn sliding_log_never_admits_more_than_the_limit_in_any_window(
        limits in prop::collection::vec(1u64..30, 1..6), window in 1u64..3000,
        ops in monotone_ops(300, 35),
    ) {
        let max = *limits.iter().max().unwrap();
        let admitted = admitted_with_limits(
            SlidingWindowLog::new(1, window).unwrap().into(), &limits, &ops);
        // The busiest window ends at an admission: count (t − window, t] for each t.
        for &(t, _) in &admitted {
            let units: u64 = admitted
                .iter()
                .filter(|&&(u, _)| u + window > t && u <= t)
                .map(|&(_, n)| n)
                .sum();
            prop_assert!(units <= max, "window ending {} admitted {} > {}", t, units, max);
        }
    }

    #[test]
    fn sliding_window_never_admits_more_than_the_limit_in_any_s_buckets(
        limits in prop::collection::vec(1u64..30, 1..6), window in 1u64..3000,
        buckets in 1u32..25, ops in monotone_ops(300, 35),
    ) {
        let max = *limits.iter().max().unwrap();
        let strategy = SlidingWindow::new(1, window, buckets).unwrap();
        let admitted = admitted_with_limits(strategy.into(), &limits, &ops);
        let width = window as f64 / f64::from(buckets);
        let tick = |now: u64| (now as f64 / width).floor() as u64;
        let s = u64::from(buckets);
        for &(t, _) in &admitted {
            let last = tick(t);
            let units: u64 = admitted
                .iter()
                .filter(|&&(u, _)| tick(u) <= last && tick(u) + s > last)
                .map(|&(_, n)| n)
                .sum();
            prop_assert!(units <= max, "ticks ..={} admitted {} > {}", last, units, max);
        }
    }

    #[test]
    fn gcra_never_admits_more_than_burst_plus_rate(
        limit in 1u64..50, period in 1u64..5000, burst in 1u64..20, ops in monotone_ops(300, 25),
    ) {
        let gcra = Gcra::new(limit, period, burst).unwrap();
        let mut state = GcraState::default();
        let mut now = START_MS;
        let mut admitted = Vec::new();
        for &op in &ops {
            now = step(now, op);
            if gcra.check(&mut state, now, op.1).allowed {
                admitted.push((now, op.1.max(1)));
            }
        }
        let interval = gcra.emission_interval_ms();
        for (i, &(a, _)) in admitted.iter().enumerate() {
            let mut units = 0u64;
            for &(b, n) in &admitted[i..] {
                units += n;
                let bound = burst as f64 + (b - a) as f64 / interval;
                prop_assert!(units as f64 <= bound + 1e-6, "[{}, {}]: {} > {}", a, b, units, bound);
            }
        }
    }

    #[test]
    fn token_bucket_never_admits_more_than_capacity_plus_refill(
        capacity in 1u64..30, rate in 0.01f64..200.0, ops in monotone_ops(300, 35),
    ) {
        let bucket = TokenBucket::new(capacity, rate).unwrap();
        let mut state = TokenBucketState::default();
        let mut now = START_MS;
        let mut admitted = Vec::new();
        for &op in &ops {
            now = step(now, op);
            if bucket.check(&mut state, now, op.1).allowed {
                admitted.push((now, op.1.max(1)));
            }
        }
        for (i, &(a, _)) in admitted.iter().enumerate() {
            let mut units = 0u64;
            for &(b, n) in &admitted[i..] {
                units += n;
                let bound = capacity as f64 + (b - a) as f64 * rate / 1000.0;
                prop_assert!(units as f64 <= bound + 1e-6, "[{}, {}]: {} > {}", a, b, units, bound);
            }
        }
    }

    #[test]
    fn strategies_never_panic_on_extreme_inputs(
        limit in prop_oneof![Just(1u64), Just(u64::MAX), any::<u64>()],
        window in prop_oneof![Just(1u64), Just(u64::MAX), any::<u64>()],
        buckets in prop_oneof![Just(1u32), Just(MAX_BUCKETS), 1u32..=MAX_BUCKETS],
        rate in prop_oneof![Just(f64::MAX), Just(1e-3), 1e-3f64..1e9],
        steps in prop::collection::vec((any::<u64>(), any::<u64>()), 1..12),
    ) {
        let limit = limit.max(1);
        let window = window.max(1);
        let strategies: [AnyStrategy; 5] = [
            Gcra::new(limit, window, limit).unwrap().into(),
            TokenBucket::new(limit, rate)
                .unwrap_or_else(|_| TokenBucket::new(1, 1.0).unwrap())
                .into(),
            FixedWindow::new(limit, window).unwrap().into(),
            SlidingWindow::new(limit.min(MAX_SLIDING_WINDOW_LIMIT), window, buckets)
                .unwrap().into(),
            SlidingWindowLog::new(limit, window).unwrap().into(),
        ];
        for strategy in strategies {
            let mut state = AnyState::default();
            for &(now, cost) in &steps {
                let d = strategy.check(&mut state, now, cost);
                prop_assert_eq!(d.retry_after_ms == 0, d.allowed);
                let _ = strategy.peek(&state, now);
                let _ = strategy.is_idle(&state, now);
                let _ = strategy.with_limit(cost).check(&mut state, now, 1);
            }
        }
        {
            let budget = TokenBudget::new(limit, window).unwrap();
            let mut state = TokenBudgetState::default();
            for &(now, cost) in &steps {
                let d = budget.debit(&mut state, now, cost);
                prop_assert_eq!(d.retry_after_ms == 0, d.allowed);
            }
        }
    }

    #[test]
    fn lease_never_spends_more_than_granted_within_a_window(
        grants in prop::collection::vec((0u64..20, 1u64..5), 1..20),
        spends in prop::collection::vec((0u64..400, 0u64..6), 1..60),
    ) {
        // Windows of 1000 ms; grants arrive for the window of the current time.
        let mut spender = LeaseSpender::new(100, true).unwrap();
        let mut now = 0u64;
        let mut granted_in = std::collections::BTreeMap::<u64, u64>::new();
        let mut spent_in = std::collections::BTreeMap::<u64, u64>::new();
        for (i, &(dt, cost)) in spends.iter().enumerate() {
            now += dt;
            let window = now / 1000;
            match spender.spend(now, cost) {
                LeaseSpend::Allowed(d) => {
                    prop_assert!(d.allowed && d.retry_after_ms == 0);
                    *spent_in.entry(window).or_default() += cost.max(1);
                }
                LeaseSpend::NeedsRefresh => {
                    let (capacity, _) = grants[i % grants.len()];
                    spender.grant(capacity, (window + 1) * 1000);
                    *granted_in.entry(window).or_default() += capacity;
                }
            }
        }
        for (window, spent) in spent_in {
            let granted = granted_in.get(&window).copied().unwrap_or(0);
            prop_assert!(spent <= granted, "window {}: spent {} > granted {}", window, spent, granted);
        }
    }
}
