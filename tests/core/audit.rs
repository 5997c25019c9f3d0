//! Every transition lands in the audit trail, with its trigger and its actor.

use std::time::Duration;

use tower_adaptive_throttle::audit::AuditSource;
use tower_adaptive_throttle::{ChangeReason, ThrottleConfig, ThrottleEvent};

use crate::support::baldur;

#[test]
fn limit_changes_are_audited_with_old_new_reason_latency_and_gradient() {
    let (t, clock) = baldur();
    t.record_response(Duration::from_millis(600));
    clock.advance(Duration::from_millis(500));
    t.record_response(Duration::from_millis(250));
    let changes: Vec<_> = t
        .audit()
        .recent(100)
        .into_iter()
        .filter_map(|e| match e.event {
            ThrottleEvent::LimitChanged(c) => Some((e.source, c)),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 2);
    let (source, first) = &changes[0];
    assert_eq!(*source, AuditSource::Adaptive);
    assert_eq!((first.previous, first.new), (100, 70));
    assert_eq!(first.reason, ChangeReason::SlaCritical);
    assert_eq!(first.rtt, Some(Duration::from_millis(600)));
    assert_eq!(changes[1].1.at, Duration::from_millis(500));
}

#[test]
fn operator_actions_name_their_actor_and_governance_inputs_are_audited() {
    let (t, _clock) = baldur();
    t.as_actor("alice", |t| t.governance().set_kill_switch(true));
    t.governance().set_emergency_level(2);
    t.as_actor("bob", |t| {
        t.swap_config(ThrottleConfig::baldur());
        t.disable();
    });
    let entries = t.audit().recent(100);
    let by = |kind: &str| {
        entries
            .iter()
            .find(|e| e.event.kind() == kind)
            .map(|e| e.source.clone())
    };
    assert_eq!(by("frozen"), Some(AuditSource::Operator("alice".into())));
    assert_eq!(by("emergency_level_changed"), Some(AuditSource::Governance));
    assert_eq!(
        by("config_swapped"),
        Some(AuditSource::Operator("bob".into()))
    );
    assert_eq!(
        by("enabled_changed"),
        Some(AuditSource::Operator("bob".into()))
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ordered: {seqs:?}");
}

#[test]
fn the_ring_is_bounded() {
    let (t, clock) = baldur();
    t.audit().set_capacity(5);
    for level in [1, 2, 0, 1, 2, 0, 1, 2, 0] {
        t.governance().set_emergency_level(level);
        clock.advance(Duration::from_secs(100));
    }
    assert_eq!(t.audit().len(), 5);
}
