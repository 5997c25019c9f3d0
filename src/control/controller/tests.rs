use super::*;
use crate::config::IncreaseSizing;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn limits_of(events: &[ThrottleEvent]) -> Vec<(u32, u32, ChangeReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            ThrottleEvent::LimitChanged(c) => Some((c.previous, c.new, c.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn baldur_sequence_critical_then_warning_then_gated() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    c.record(ms(600), ms(0), &mut ev);
    assert_eq!(c.limit(), 70);
    c.record(ms(250), ms(500), &mut ev);
    assert_eq!(c.limit(), 63);
    c.record(ms(900), ms(999), &mut ev); // inside the interval: nothing
    assert_eq!(c.limit(), 63);
    assert_eq!(
        limits_of(&ev),
        vec![
            (100, 70, ChangeReason::SlaCritical),
            (70, 63, ChangeReason::SlaWarning)
        ]
    );
    assert_eq!(c.stats().sla_criticals, 1);
    assert_eq!(c.stats().sla_warnings, 1);
    assert_eq!(c.stats().adjustments_down, 2);
    assert_eq!(c.regime(), Regime::Throttling);
}

#[test]
fn falling_trend_adds_the_step() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    // Within one interval: seed the EMA high, then fall (no tick runs after the first).
    c.record(ms(150), ms(0), &mut ev); // tick: 1 sample, gradient 0 → hold
    c.record(ms(150), ms(100), &mut ev);
    c.record(ms(150), ms(200), &mut ev);
    c.record(ms(50), ms(500), &mut ev); // ema 150 → 100: gradient −1/3
    assert_eq!(c.limit(), 101);
    assert_eq!(c.stats().adjustments_up, 1);
}

#[test]
fn rising_trend_cuts() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    c.record(ms(50), ms(0), &mut ev);
    c.record(ms(50), ms(100), &mut ev);
    c.record(ms(50), ms(200), &mut ev);
    c.record(ms(100), ms(500), &mut ev); // 50 → 75: +0.5
    assert_eq!(c.limit(), 90);
    assert_eq!(limits_of(&ev)[0].2, ChangeReason::LatencyRising);
}

#[test]
fn limit_never_leaves_bounds() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    for i in 0..100 {
        c.record(ms(900), ms(500 * i), &mut ev);
    }
    assert_eq!(c.limit(), 10);
    let mut t = 50_000;
    for i in 0..2000u64 {
        // strictly falling latency keeps the gradient negative
        c.record(ms(400 - (i % 3) * 100), ms(t), &mut ev);
        t += 500;
    }
    assert!(c.limit() <= 500 && c.limit() >= 10);
}

#[test]
fn frozen_keeps_sampling_but_changes_nothing() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    c.freeze(FreezeReason::KillSwitch, ms(0), &mut ev);
    c.freeze(FreezeReason::Operator, ms(0), &mut ev);
    c.record(ms(900), ms(0), &mut ev);
    assert_eq!(c.limit(), 100);
    assert_eq!(c.regime(), Regime::Frozen);
    assert_eq!(c.sample_stats(ms(0)).sample_count, 1);
    c.unfreeze(FreezeReason::KillSwitch, ms(1), &mut ev);
    assert!(c.is_frozen(), "one reason is still set");
    c.record(ms(900), ms(600), &mut ev);
    assert_eq!(c.limit(), 100);
    c.unfreeze(FreezeReason::Operator, ms(700), &mut ev);
    c.record(ms(900), ms(1200), &mut ev);
    assert_eq!(c.limit(), 70);
    assert!(ev.iter().any(|e| matches!(
        e,
        ThrottleEvent::Unfrozen {
            all_clear: true,
            ..
        }
    )));
}

#[test]
fn ramp_climbs_in_stages_and_defers_increases() {
    let cfg = ThrottleConfig::baldur_builder()
        .initial_limit(150)
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.override_limit(75, ChangeReason::Rollback, ms(0), &mut ev);
    c.start_recovery(150, ms(0), &mut ev);
    assert_eq!(c.limit(), 120);
    assert_eq!(c.regime(), Regime::Recovering);
    c.advance(ms(29_999), &mut ev);
    assert_eq!(c.limit(), 120);
    c.advance(ms(30_000), &mut ev);
    assert_eq!(c.limit(), 135);
    c.advance(ms(60_000), &mut ev);
    assert_eq!(c.limit(), 150);
    assert!(
        c.ramp_active(),
        "the ramp ends one interval after its last stage"
    );
    c.advance(ms(90_000), &mut ev);
    assert!(!c.ramp_active());
    assert_eq!(c.regime(), Regime::Normal);
}

#[test]
fn ramp_caps_increases_and_applies_decreases_at_once() {
    let cfg = ThrottleConfig::baldur_builder()
        .initial_limit(100)
        .increase_sizing(IncreaseSizing::Proportional(0.5))
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.start_recovery(100, ms(0), &mut ev);
    assert_eq!(c.limit(), 80);
    // seed a falling trend: increase of 40 wanted, capped at the stage (80)
    c.record(ms(150), ms(0), &mut ev);
    c.record(ms(150), ms(100), &mut ev);
    c.record(ms(150), ms(200), &mut ev);
    c.record(ms(50), ms(500), &mut ev);
    assert_eq!(c.limit(), 80);
    assert_eq!(c.ramp_progress(ms(500)).unwrap().pending, Some(120));
    // a critical cut applies at once and drops the pending increase
    c.record(ms(700), ms(1000), &mut ev);
    assert_eq!(c.limit(), 56);
    assert_eq!(c.ramp_progress(ms(1000)).unwrap().pending, None);
    // the next stage re-asserts its own target
    c.advance(ms(30_000), &mut ev);
    assert_eq!(c.limit(), 90);
}

#[test]
fn pending_increase_applies_when_ramp_ends() {
    let cfg = ThrottleConfig::baldur_builder()
        .increase_sizing(IncreaseSizing::Proportional(0.5))
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.start_recovery(100, ms(0), &mut ev);
    c.advance(ms(60_000), &mut ev); // 100 %
    assert_eq!(c.limit(), 100);
    c.record(ms(150), ms(60_000), &mut ev);
    c.record(ms(150), ms(60_100), &mut ev);
    c.record(ms(150), ms(60_200), &mut ev);
    c.record(ms(50), ms(60_500), &mut ev); // wants 150, capped at 100
    assert_eq!(c.limit(), 100);
    c.advance(ms(90_000), &mut ev);
    assert_eq!(c.limit(), 150);
    assert_eq!(
        limits_of(&ev).last().unwrap().2,
        ChangeReason::RampCompleted
    );
}

#[test]
fn ramp_start_jitter_is_seeded_and_bounded() {
    let make = || {
        let cfg = ThrottleConfig::baldur_builder()
            .recovery_jitter(Duration::from_secs(10))
            .jitter_seed(42)
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        c.override_limit(50, ChangeReason::Rollback, ms(0), &mut Vec::new());
        c.start_recovery(100, ms(0), &mut Vec::new());
        c.ramp_progress(ms(0)).unwrap().next_in
    };
    let delay = make();
    assert_eq!(delay, make(), "same seed, same delay");
    assert!(delay <= Duration::from_secs(10));
    let cfg = ThrottleConfig::baldur_builder()
        .recovery_jitter(Duration::from_secs(10))
        .jitter_seed(42)
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.override_limit(50, ChangeReason::Rollback, ms(0), &mut ev);
    c.start_recovery(100, ms(0), &mut ev);
    if !delay.is_zero() {
        assert_eq!(c.limit(), 50, "first stage waits for the jitter");
    }
    c.advance(delay, &mut ev);
    assert_eq!(c.limit(), 80);
}

#[test]
fn percentile_trigger_ignores_a_lone_outlier() {
    let cfg = ThrottleConfig::builder().build().unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.record(ms(50), ms(0), &mut ev); // first tick
    for i in 1..20 {
        c.record(ms(50), ms(i * 20), &mut ev);
    }
    c.record(ms(900), ms(500), &mut ev); // the outlier opens the tick; p90 is 50 ms
    assert!(
        c.limit() >= 100,
        "not cut (flat latency may grow it): {}",
        c.limit()
    );
    assert_eq!(c.stats().sla_criticals, 0);
    let mut b = Controller::new(ThrottleConfig::baldur());
    b.record(ms(50), ms(0), &mut ev);
    b.record(ms(900), ms(500), &mut ev);
    assert_eq!(
        b.limit(),
        70,
        "Baldur's preset cuts on the triggering sample"
    );
}

#[test]
fn swap_config_keeps_state_and_clamps() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    c.record(ms(600), ms(0), &mut ev);
    assert_eq!(c.limit(), 70);
    let new = ThrottleConfig::baldur_builder()
        .min_limit(80)
        .initial_limit(100)
        .build()
        .unwrap();
    let old = c.swap_config(Arc::new(new), ms(1), &mut ev);
    assert_eq!(old.min_limit(), 10);
    assert_eq!(c.limit(), 80);
    assert_eq!(c.sample_stats(ms(1)).sample_count, 1, "samples kept");
}

#[test]
fn rollback_and_reset() {
    let mut c = Controller::new(ThrottleConfig::baldur());
    let mut ev = Vec::new();
    c.record(ms(600), ms(0), &mut ev);
    c.freeze(FreezeReason::Operator, ms(0), &mut ev);
    assert_eq!(c.rollback_to_base_limit(ms(1), &mut ev), 100);
    assert!(!c.is_frozen());
    assert_eq!(c.limit(), 100);
    c.record(ms(600), ms(600), &mut ev);
    c.reset(ms(700), &mut ev);
    assert_eq!(c.limit(), 100);
    assert_eq!(c.stats().adjustments_down, 0);
    // gate open again after reset
    c.record(ms(600), ms(701), &mut ev);
    assert_eq!(c.limit(), 70);
}

#[test]
fn limit_recovered_event_when_leaving_floor() {
    let cfg = ThrottleConfig::baldur_builder()
        .initial_limit(10)
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    c.record(ms(150), ms(0), &mut ev);
    c.record(ms(150), ms(100), &mut ev);
    c.record(ms(150), ms(200), &mut ev);
    c.record(ms(50), ms(500), &mut ev);
    assert_eq!(c.limit(), 11);
    assert!(ev.iter().any(|e| matches!(
        e,
        ThrottleEvent::LimitRecovered {
            previous: 10,
            new: 11,
            ..
        }
    )));
}

#[test]
fn time_bucketed_signal_drives_the_trend() {
    let cfg = ThrottleConfig::baldur_builder()
        .signal(SignalKind::TimeBucketed {
            window: Duration::from_secs(10),
        })
        .build()
        .unwrap();
    let mut c = Controller::new(cfg);
    let mut ev = Vec::new();
    for i in 0..10u64 {
        let rtt = if i < 5 { 100 } else { 150 };
        c.record(ms(rtt), Duration::from_secs(i), &mut ev);
    }
    // the last tick saw recent half 150 vs previous half 100: +0.5
    assert!(limits_of(&ev)
        .iter()
        .any(|(_, _, r)| *r == ChangeReason::LatencyRising));
}
