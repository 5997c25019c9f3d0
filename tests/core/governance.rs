//! Governance inputs with Baldur's numbers, driven by a manual clock.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_adaptive_throttle::{
    AdaptiveThrottle, BreakerConfig, BreakerState, ErrorBudget, GovernanceSnapshot, ManualClock,
    Regime, RejectReason, ThrottleConfig, ThrottleEvent, Tier,
};

use crate::support::manual;

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn throttle_at(base: u32) -> (AdaptiveThrottle, ManualClock) {
    manual(
        ThrottleConfig::baldur_builder()
            .initial_limit(base)
            .build()
            .unwrap(),
    )
}

#[test]
fn emergency_level_2_halves_then_level_0_ramps_back_80_90_100() {
    let (t, clock) = throttle_at(150);
    t.governance().set_emergency_level(2);
    assert_eq!(t.current_limit(), 75);
    t.governance().set_emergency_level(0);
    assert_eq!(t.current_limit(), 120);
    assert_eq!(t.regime(), Regime::Recovering);
    clock.advance(secs(30));
    assert_eq!(t.current_limit(), 135);
    clock.advance(secs(30));
    assert_eq!(t.current_limit(), 150);
    clock.advance(secs(30));
    assert_eq!(t.regime(), Regime::Normal);
}

#[test]
fn emergency_tier_multipliers() {
    let (t, _clock) = throttle_at(200);
    t.governance().set_emergency_level(1);
    // L1: cap 160; critical keeps the base, standard ×1, non-essential blocked
    assert_eq!(t.effective_limit(Tier::Critical), 200);
    assert_eq!(t.effective_limit(Tier::Standard), 160);
    assert_eq!(t.effective_limit(Tier::NonEssential), 0);
    let d = t.check("k", Tier::NonEssential);
    assert!(!d.allowed);
    assert_eq!(d.reason, Some(RejectReason::EmergencyTierBlocked));
    t.governance().set_emergency_level(2);
    // L2: cap 100; standard ×0.1 → 10
    assert_eq!(t.effective_limit(Tier::Standard), 10);
    assert_eq!(t.effective_limit(Tier::Critical), 200);
    t.governance().set_emergency_level(3);
    // L3: floor and frozen; critical ×0.5 of the base, standard blocked
    assert_eq!(t.current_limit(), 10);
    assert_eq!(t.effective_limit(Tier::Critical), 100);
    assert_eq!(t.effective_limit(Tier::Standard), 0);
    assert_eq!(t.regime(), Regime::Frozen);
    t.record_response(Duration::from_millis(10));
    assert_eq!(t.current_limit(), 10, "frozen at level 3");
}

#[test]
fn three_consecutive_upstream_429s_cut_to_80_60_50_percent_with_critical_at_base() {
    // Each ratio applies to the limit in force when the 429 arrives (BAL-021): they compound.
    let (t, clock) = throttle_at(150);
    t.governance().on_upstream_429(1);
    assert_eq!(t.current_limit(), 120);
    t.governance().on_upstream_429(2);
    assert_eq!(t.current_limit(), 72);
    t.governance().on_upstream_429(3);
    assert_eq!(t.current_limit(), 36);
    t.governance().on_upstream_429(4);
    assert_eq!(
        t.current_limit(),
        18,
        "0.5 of the current from the third on"
    );
    assert_eq!(t.effective_limit(Tier::Critical), 150);
    assert_eq!(t.check("k", Tier::Critical).limit, 150);
    assert_eq!(t.check("k", Tier::Standard).limit, 18);
    t.governance().on_upstream_cooldown_end();
    assert_eq!(t.current_limit(), 120);
    clock.advance(secs(60));
    assert_eq!(t.current_limit(), 150);
}

#[test]
fn upstream_429_ladder_compounds_on_the_current_limit_table() {
    // (initial, min_limit, consecutive counts reported in turn, limit after each): BAL-021,
    // `max(floor(current × r), min)` with r = 0.8 / 0.6 / 0.5 for n = 1 / 2 / ≥ 3.
    let rows: [(u32, u32, &[u32], &[u32]); 9] = [
        (100, 10, &[1, 2, 3, 4], &[80, 48, 24, 12]),
        (100, 10, &[1, 2, 3, 4, 5, 6], &[80, 48, 24, 12, 10, 10]), // floored at min_limit
        (150, 10, &[1, 2, 3, 4], &[120, 72, 36, 18]),
        (500, 10, &[1, 2, 3, 4, 5, 6], &[400, 240, 120, 60, 30, 15]),
        (37, 1, &[1, 2, 3, 4], &[29, 17, 8, 4]), // floor, not round
        (100, 50, &[1, 2, 3], &[80, 50, 50]),
        (100, 10, &[1, 1, 2, 2], &[80, 80, 48, 48]), // the same count again: no second cut
        (100, 10, &[1, 3], &[80, 40]), // a skipped count: one cut, by the count's ratio
        (100, 10, &[3, 1], &[50, 40]), // a new streak while cooling down: a new 429
    ];
    for (initial, min, counts, limits) in rows {
        let (t, _clock) = manual(
            ThrottleConfig::baldur_builder()
                .initial_limit(initial)
                .min_limit(min)
                .build()
                .unwrap(),
        );
        for (&n, &limit) in counts.iter().zip(limits) {
            t.governance().on_upstream_429(n);
            let row = format!("{initial} (min {min}) after {n}");
            assert_eq!(t.current_limit(), limit, "{row}");
            assert_eq!(t.effective_limit(Tier::Standard), limit, "{row}");
            assert_eq!(t.effective_limit(Tier::Critical), initial, "{row}");
            let g = t.governance().state();
            assert_eq!(g.upstream_429_limit, Some(limit), "{row}");
            assert_eq!(g.reduction_base, Some(initial), "{row}");
        }
    }
}

#[test]
fn upstream_429s_from_100_cut_80_48_24_12_keep_critical_at_100_then_ramp_80_90_100() {
    let (t, clock) = throttle_at(100);
    for (n, limit) in [(1, 80), (2, 48), (3, 24), (4, 12)] {
        t.governance().on_upstream_429(n);
        assert_eq!(t.current_limit(), limit, "after {n}");
        assert_eq!(t.effective_limit(Tier::Critical), 100, "after {n}");
        assert_eq!(t.check("c", Tier::Critical).limit, 100, "after {n}");
        assert_eq!(t.check("s", Tier::Standard).limit, limit, "after {n}");
    }
    // The cap holds while the cooldown lasts.
    clock.advance(secs(300));
    assert_eq!(t.current_limit(), 12);
    assert_eq!(t.effective_limit(Tier::Critical), 100);
    t.governance().on_upstream_cooldown_end();
    let g = t.governance().state();
    assert_eq!(
        (g.upstream_429s, g.upstream_429_limit, g.reduction_base),
        (0, None, None)
    );
    assert_eq!(t.regime(), Regime::Recovering);
    assert_eq!(t.current_limit(), 80);
    clock.advance(secs(30));
    assert_eq!(t.current_limit(), 90);
    clock.advance(secs(30));
    assert_eq!(t.current_limit(), 100);
    clock.advance(secs(30));
    assert_eq!(t.regime(), Regime::Normal);
    assert_eq!(t.current_limit(), 100);
}

#[test]
fn upstream_429_cuts_the_limit_in_force_whatever_else_holds_it() {
    // During an error-budget warning (cap 80 of 100) a 429 cuts the 80; the 429 cap stays
    // when the budget recovers, until the cooldown ends.
    let (t, clock) = throttle_at(100);
    t.governance().set_error_budget(ErrorBudget::Warning);
    assert_eq!(t.current_limit(), 80);
    t.governance().on_upstream_429(1);
    assert_eq!(t.current_limit(), 64);
    t.governance().set_error_budget(ErrorBudget::Healthy);
    assert_eq!(t.current_limit(), 64, "the 429 cap still holds");
    assert_eq!(t.effective_limit(Tier::Critical), 100);
    t.governance().on_upstream_cooldown_end();
    assert_eq!(t.current_limit(), 80, "ramp from the pre-incident 100");
    clock.advance(secs(60));
    assert_eq!(t.current_limit(), 100);

    // A ladder cut between two 429s is part of the current limit the next one cuts.
    let (t, _clock) = throttle_at(100);
    t.governance().on_upstream_429(1);
    t.record_response(Duration::from_millis(600)); // SLA critical: 80 × 0.7
    assert_eq!(t.current_limit(), 56);
    t.governance().on_upstream_429(2);
    assert_eq!(t.current_limit(), 33);
    t.governance().on_upstream_cooldown_end();
    assert_eq!(t.current_limit(), 80);
}

#[test]
fn error_budget_critical_rejects_non_essential_with_its_reason() {
    let (t, clock) = throttle_at(100);
    t.governance().set_error_budget(ErrorBudget::Warning);
    assert_eq!(t.current_limit(), 80);
    t.governance().set_error_budget(ErrorBudget::Critical);
    assert_eq!(t.current_limit(), 50);
    let d = t.check("k", Tier::NonEssential);
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        Some(RejectReason::ErrorBudgetCriticalNonEssentialBlocked)
    );
    assert_eq!(
        d.reason.unwrap().as_str(),
        "error_budget_critical_non_essential_blocked"
    );
    assert!(d.retry_after >= secs(1));
    assert!(t.check("k", Tier::Standard).allowed);
    t.governance().set_error_budget(ErrorBudget::Healthy);
    assert_eq!(t.current_limit(), 80, "ramp from the pre-incident base");
    clock.advance(secs(60));
    assert_eq!(t.current_limit(), 100);
}

#[test]
fn load_shedding_caps_at_max_times_percent_times_1_5() {
    let (t, _clock) = throttle_at(400);
    t.governance().set_load_shedding(Some(40)); // 500 × 0.4 × 1.5 = 300
    assert_eq!(t.current_limit(), 300);
    t.governance().set_load_shedding(Some(10)); // 75
    assert_eq!(t.current_limit(), 75);
    t.governance().set_load_shedding(Some(90)); // 675 → capped at max 500: limit lifted back to the pre-incident value? no: min-winner with the base
    assert_eq!(t.conservative_limit(), 500.min(t.current_limit()));
    t.governance().set_load_shedding(None);
    assert_eq!(t.current_limit(), 320, "80 % of the 400 base");
}

#[test]
fn min_winner_across_inputs() {
    let (t, _clock) = throttle_at(200);
    t.governance().set_error_budget(ErrorBudget::Warning); // 160
    t.governance().on_upstream_429(3); // 0.5 of the 160 in force
    assert_eq!(t.conservative_limit(), 80);
    t.governance().on_upstream_cooldown_end(); // back to the budget's 160 (the limit was pinned at 80)
    assert_eq!(t.conservative_limit(), 160);
    t.governance().set_error_budget(ErrorBudget::Healthy);
    assert_eq!(t.current_limit(), 160, "ramp stage 80 % of 200");
}

#[test]
fn full_stop_rejects_everything_until_break_glass() {
    let (t, clock) = throttle_at(100);
    let mut rx = t.subscribe();
    t.governance().set_error_budget(ErrorBudget::Critical);
    t.governance().on_breaker_state(BreakerState::Open);
    t.governance().set_emergency_level(3);
    assert_eq!(t.current_limit(), 0);
    for tier in Tier::ALL {
        let d = t.check("k", tier);
        assert!(!d.allowed);
        assert_eq!(d.reason, Some(RejectReason::FullStop));
    }
    clock.advance(secs(600));
    assert!(
        !t.check("k", Tier::Critical).allowed,
        "full stop does not time out"
    );
    t.governance().break_glass();
    assert!(t.current_limit() > 0);
    assert!(t.check("k", Tier::Critical).allowed);
    let mut saw_full_stop = false;
    let mut saw_break_glass = false;
    while let Ok(e) = rx.try_recv() {
        saw_full_stop |= matches!(e, ThrottleEvent::FullStop { .. });
        saw_break_glass |= matches!(
            e,
            ThrottleEvent::BreakGlass {
                full_stop_released: true,
                ..
            }
        );
    }
    assert!(saw_full_stop && saw_break_glass);
}

#[test]
fn kill_switch_freezes_and_release_ramps() {
    let (t, clock) = throttle_at(100);
    t.governance().set_kill_switch(true);
    assert_eq!(t.regime(), Regime::Frozen);
    t.record_response(Duration::from_millis(900));
    assert_eq!(t.current_limit(), 100, "frozen: the limit is kept");
    t.governance().set_kill_switch(false);
    assert_eq!(t.current_limit(), 80);
    clock.advance(secs(60));
    assert_eq!(t.current_limit(), 100);
}

#[test]
fn breaker_open_floor_half_open_half_initial_closed_ramps() {
    let (t, clock) = throttle_at(200);
    t.governance().on_breaker_state(BreakerState::Open);
    assert_eq!(t.current_limit(), 10);
    t.governance().on_breaker_state(BreakerState::HalfOpen);
    assert_eq!(t.current_limit(), 100);
    t.governance().on_breaker_state(BreakerState::Closed);
    assert_eq!(t.current_limit(), 160);
    clock.advance(secs(60));
    assert_eq!(t.current_limit(), 200);
}

#[test]
fn built_in_breaker_follows_overload_outcomes_and_drives_the_limit() {
    let (t, clock) = throttle_at(200);
    t.governance().set_breaker(Some(BreakerConfig {
        failure_threshold: 3,
        open_duration: secs(10),
        half_open_trials: 2,
        consecutive_critical: 3,
    }));
    for _ in 0..3 {
        t.record_overload(Duration::from_millis(5));
    }
    assert_eq!(t.governance().state().breaker, BreakerState::Open);
    assert_eq!(t.current_limit(), 10);
    clock.advance(secs(10));
    assert_eq!(t.current_limit(), 100, "half-open after the open duration");
    t.record_response(Duration::from_millis(5));
    t.record_response(Duration::from_millis(5));
    assert_eq!(t.governance().state().breaker, BreakerState::Closed);
    // the first overload sample also cut 200 → 180 (SLA warning) before the breaker opened, so
    // 180 is the pre-incident base the ramp starts from
    assert_eq!(t.current_limit(), 144);
    assert_eq!(t.governance().breaker_stats().unwrap().opened, 1);
}

#[test]
fn governance_source_is_polled_lazily_and_corrects_drift() {
    let (t, clock) = throttle_at(150);
    let level = Arc::new(AtomicU8::new(2));
    let source_level = level.clone();
    t.governance().set_source(move || GovernanceSnapshot {
        emergency_level: source_level.load(Ordering::Relaxed),
        ..GovernanceSnapshot::default()
    });
    t.check("k", Tier::Standard);
    assert_eq!(t.current_limit(), 75);
    // an operator changes it by hand; the source still says 2: drift is corrected at the
    // next poll, not before
    t.governance().set_emergency_level(0);
    clock.advance(secs(29));
    t.check("k", Tier::Standard);
    assert_eq!(t.governance().state().emergency_level, 0);
    clock.advance(secs(1));
    t.check("k", Tier::Standard);
    assert_eq!(t.governance().state().emergency_level, 2);
    level.store(0, Ordering::Relaxed);
    clock.advance(secs(30));
    t.check("k", Tier::Standard);
    assert_eq!(t.governance().state().emergency_level, 0);
    assert_eq!(t.regime(), Regime::Recovering);
}

#[test]
fn ladder_cannot_raise_the_limit_above_an_active_reduction() {
    let (t, clock) = throttle_at(100);
    t.governance().set_error_budget(ErrorBudget::Warning); // cap 80
    for _ in 0..3 {
        t.record_response(Duration::from_millis(150));
        clock.advance(Duration::from_millis(100));
    }
    for rtt in [100, 60, 30, 10, 5] {
        clock.advance(Duration::from_millis(500));
        t.record_response(Duration::from_millis(rtt));
    }
    assert_eq!(t.current_limit(), 80);
    // but it can cut below it
    clock.advance(Duration::from_millis(500));
    t.record_response(Duration::from_millis(900));
    assert_eq!(t.current_limit(), 56);
}

#[test]
fn rollback_clears_every_reduction() {
    let (t, _clock) = throttle_at(150);
    t.governance().set_emergency_level(2);
    t.governance().on_upstream_429(2);
    t.governance().set_kill_switch(true);
    assert_eq!(t.rollback_to_base_limit(), 150);
    let g = t.governance().state();
    assert_eq!(
        (g.emergency_level, g.upstream_429s, g.kill_switch),
        (0, 0, false)
    );
    assert_eq!(t.regime(), Regime::Normal);
    assert_eq!(t.current_limit(), 150);
}
