//! Control quality, pinned: deterministic virtual-time simulations (`throttle_sim`) of the
//! recommended configuration against an oracle. A change that degrades control fails here.
//!
//! Quick scale (16 workers, 15 s phases) so the file runs in seconds in debug builds; the full
//! scale is `cargo run --release -p throttle-sim --example simulate` (BENCHMARKS.md).

use std::sync::OnceLock;
use std::time::Duration;

use throttle_sim::goals::{self, Goal, GoalReport};
use throttle_sim::{Evaluation, Keying, Path, Policy, Scenario, SimScale};

const SEED: u64 = 42;

fn halving() -> &'static Evaluation {
    static E: OnceLock<Evaluation> = OnceLock::new();
    E.get_or_init(|| {
        let s = Scenario::capacity_halving(SimScale::quick());
        let policies = vec![
            Policy::static_rate("static healthy", &s, 0.95),
            Policy::static_rate("static degraded", &s, 0.475),
            Policy::baldur(&s),
            Policy::recommended(&s),
            Policy::oracle(),
        ];
        Evaluation::run(&s, &policies, SEED)
    })
}

fn noisy() -> &'static Evaluation {
    static E: OnceLock<Evaluation> = OnceLock::new();
    E.get_or_init(|| {
        let s = Scenario::noisy_no_overload(SimScale::quick());
        Evaluation::run(&s, &[Policy::recommended(&s), Policy::oracle()], SEED)
    })
}

#[test]
fn recommended_keeps_over_95_percent_of_oracle_goodput_in_every_phase_when_capacity_halves() {
    let e = halving();
    for (i, phase) in e.scenario.phases.iter().enumerate() {
        let g = e.goodput_vs_oracle("recommended", i);
        // goal 90 %; measured ≥ 100 % at this scale
        assert!(
            g >= 0.95,
            "{}: {:.3} of the oracle's goodput",
            phase.name,
            g
        );
    }
}

#[test]
fn recommended_settled_p99_stays_within_twice_the_unloaded_p99() {
    let e = halving();
    let bound = e.unloaded_p99 * 2;
    for p in &e.get("recommended").phases {
        // goal 2×; pinned at 1.8× (measured ≤ 1.6×)
        assert!(
            p.settled_p99.as_secs_f64() <= bound.as_secs_f64() * 0.9,
            "{}: settled p99 {:?} vs 2 × unloaded {:?}",
            p.name,
            p.settled_p99,
            e.unloaded_p99
        );
    }
}

#[test]
fn recommended_converges_within_five_seconds_of_each_capacity_change() {
    let conv = halving().convergence("recommended");
    assert_eq!(conv.len(), 2);
    for (i, c) in conv.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("change {i}: never converged"));
        assert!(
            c <= Duration::from_secs(4),
            "change {i}: converged after {c:?}"
        );
    }
}

#[test]
fn recommended_latency_stays_below_sla_critical_when_capacity_returns() {
    let e = halving();
    let returned = *e.scenario.capacity_changes().last().unwrap();
    let worst = e.max_bin_p99_from("recommended", returned);
    // goal: below sla_critical (500 ms); pinned at half of it
    assert!(
        worst <= e.scenario.sla_critical / 2,
        "worst p99 after the return: {worst:?}"
    );
    let recovered = e.get("recommended").phases.last().unwrap();
    assert!(
        recovered.max < e.scenario.sla_critical,
        "max {:?}",
        recovered.max
    );
}

#[test]
fn recommended_beats_both_static_limits_on_total_goodput() {
    let e = halving();
    let mine = e.total_goodput_vs_oracle("recommended");
    for s in ["static healthy", "static degraded"] {
        let other = e.total_goodput_vs_oracle(s);
        assert!(
            mine > other + 0.2,
            "recommended {mine:.3} vs {s} {other:.3}"
        );
    }
}

#[test]
fn baldur_preset_loses_most_goodput_when_capacity_halves() {
    // Why `baldur()` is a preset, not the default (`ThrottleConfig::default`'s docs).
    let e = halving();
    assert!(e.total_goodput_vs_oracle("baldur") < 0.5);
    assert!(e.total_goodput_vs_oracle("recommended") > 2.0 * e.total_goodput_vs_oracle("baldur"));
}

#[test]
fn concurrency_axis_keeps_critical_tier_whole_and_sheds_non_essential_first() {
    let e = halving();
    assert!(
        e.critical_success("recommended") >= 0.99,
        "critical success {:.4}",
        e.critical_success("recommended")
    );
    // Non-essential is 30 % of the traffic but takes well over half of the rejections.
    let share = e.non_essential_share_of_rejections("recommended");
    assert!(
        share >= 0.55,
        "non-essential share of rejections {share:.3}"
    );
}

#[test]
fn recommended_limit_does_not_drift_under_noise_without_overload() {
    let e = noisy();
    let r = e.get("recommended");
    let ratio = r.min_limit_to_need.expect("an adaptive limit");
    // goal: never below 90 % of what the offered load needs
    assert!(ratio >= 1.5, "limit fell to {ratio:.2} × the need");
    let (rejected, offered) = r
        .phases
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.rejected, b + p.offered));
    let rate = rejected as f64 / offered as f64;
    assert!(rate < 0.01, "rejected {:.3} % (goal < 1 %)", rate * 100.0);
    // After warm-up, almost nothing is rejected: each client's quota is a share of a limit held
    // 1.5 × above the load, and only a client's own burst beyond its share is turned away.
    let (late_rejected, late_offered) = r.phases[1..]
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.rejected, b + p.offered));
    assert!(
        (late_rejected as f64) < 0.005 * late_offered as f64,
        "{late_rejected} of {late_offered} rejected after warm-up"
    );
}

#[test]
fn simulation_is_deterministic_for_a_seed() {
    let s = Scenario::flash_crowd(SimScale {
        workers: 6,
        phase: Duration::from_secs(4),
    });
    let p = [Policy::recommended(&s), Policy::oracle()];
    let a = Evaluation::run(&s, &p, 9);
    let b = Evaluation::run(&s, &p, 9);
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!(x.phases, y.phases);
        assert_eq!(x.bins, y.bins);
    }
    let c = Evaluation::run(&s, &p, 10);
    assert_ne!(
        a.runs[1].phases, c.runs[1].phases,
        "another seed, other arrivals"
    );
}

// The acceptance goals of `throttle_sim::goals`, for the recommended configuration on both
// paths (`acquire` as the HTTP layer drives it, and the two-step `check` + `record_response`),
// with a shared key and with one key per client. Only the goals today's library meets are
// pinned here; the others are ready to call (`goals::check_two_step_goals`,
// `goals::check_acquire_goals`, `goals::check(goal, path, keying)`), and
// `cargo run --release -p throttle-sim --example simulate -- --goals --quick` prints them all.

fn goal_report() -> &'static GoalReport {
    static R: OnceLock<GoalReport> = OnceLock::new();
    R.get_or_init(|| {
        GoalReport::measure(
            SimScale::quick(),
            goals::SEED,
            &Goal::ALL,
            &Path::BOTH,
            &Keying::BOTH,
        )
    })
}

fn assert_goal(goal: Goal, path: Path, keying: Keying) {
    if let Err(e) = goal_report().require(goal, path, keying) {
        panic!("{e}");
    }
}

#[test]
fn goal_settled_p99_within_twice_unloaded_on_the_acquire_path() {
    for keying in Keying::BOTH {
        assert_goal(Goal::SettledP99, Path::Acquire, keying);
    }
}

#[test]
fn goal_convergence_within_five_seconds_on_the_acquire_path() {
    for keying in Keying::BOTH {
        assert_goal(Goal::Convergence, Path::Acquire, keying);
    }
}

#[test]
fn goal_critical_tier_success_on_the_acquire_path_per_client() {
    assert_goal(Goal::CriticalTier, Path::Acquire, Keying::PerClient);
}

#[test]
fn goal_many_clients_keep_ninety_percent_of_oracle_goodput_on_the_acquire_path() {
    for keying in Keying::BOTH {
        assert_goal(Goal::ManyClientsGoodput, Path::Acquire, keying);
    }
}

#[test]
fn goal_greedy_client_alone_gets_what_it_offers() {
    for path in Path::BOTH {
        assert_goal(Goal::GreedyAlone, path, Keying::Shared);
    }
    assert_goal(Goal::GreedyAlone, Path::Acquire, Keying::PerClient);
}

#[test]
fn goal_latency_spike_total_goodput_on_both_paths() {
    // A slower dependency is not a loss of capacity: the two-step estimate tells it from a queue
    // (flat latency after its cuts, no queue's worth drained), the concurrency axis re-measures
    // its baseline after a few updates at its floor.
    for path in Path::BOTH {
        for keying in Keying::BOTH {
            assert_goal(Goal::LatencySpike, path, keying);
        }
    }
}

#[test]
fn goal_goodput_in_every_phase_on_the_acquire_path() {
    for keying in Keying::BOTH {
        assert_goal(Goal::Goodput, Path::Acquire, keying);
    }
}

#[test]
fn goal_greedy_client_held_to_its_share_with_a_key_per_client() {
    for path in Path::BOTH {
        assert_goal(Goal::GreedyShare, path, Keying::PerClient);
    }
}

#[test]
fn goal_quota_seen_falls_within_five_seconds_of_a_halving() {
    for path in Path::BOTH {
        assert_goal(Goal::QuotaFall, path, Keying::PerClient);
    }
}

#[test]
fn goal_many_clients_goodput_on_the_two_step_path_with_a_shared_limit() {
    assert_goal(Goal::ManyClientsGoodput, Path::TwoStep, Keying::Shared);
}

#[test]
fn two_step_path_never_consults_the_concurrency_axis() {
    let s = Scenario::capacity_halving(SimScale::quick());
    let p = [
        Policy::recommended(&s).on_path(Path::TwoStep),
        Policy::recommended_ladder(&s).on_path(Path::TwoStep),
        Policy::recommended_ladder(&s),
        Policy::oracle(),
    ];
    assert_eq!(p[0].name, "recommended (check+record)");
    let e = Evaluation::run(&s, &p, SEED);
    assert!(e.runs[0].bins.iter().all(|b| b.concurrency_limit.is_none()));
    // Without a concurrency section, `acquire` is `check` with a permit that holds no slot.
    assert_eq!(e.runs[1].phases, e.runs[2].phases);
    assert_eq!(e.runs[1].bins, e.runs[2].bins);
}

#[test]
fn client_scenarios_are_deterministic_for_a_seed() {
    let scale = SimScale {
        workers: 6,
        phase: Duration::from_secs(6),
    };
    for s in Scenario::client_scenarios(scale) {
        let p = [
            Policy::recommended_on(&s, Path::TwoStep, Keying::PerClient),
            Policy::oracle(),
        ];
        let a = Evaluation::run(&s, &p, 9);
        let b = Evaluation::run(&s, &p, 9);
        for (x, y) in a.runs.iter().zip(&b.runs) {
            assert_eq!(x.phases, y.phases, "{}", s.name);
            assert_eq!(x.bins, y.bins, "{}", s.name);
            assert_eq!(x.keys, y.keys, "{}", s.name);
        }
    }
}

#[test]
fn greedy_client_offers_ten_times_its_share_then_alone() {
    let s = Scenario::greedy_client(SimScale::quick());
    let e = Evaluation::run(&s, &[Policy::unlimited(), Policy::oracle()], SEED);
    let keys = &e.get("no limit").keys;
    let others = keys[0][1..]
        .iter()
        .map(|k| f64::from(k.offered))
        .sum::<f64>()
        / 20.0;
    let greedy = f64::from(keys[0][0].offered);
    assert!(
        (greedy / others - 10.0 / 1.5).abs() < 0.7,
        "greedy offered {greedy}, others {others} each"
    );
    assert!(keys[1][1..].iter().all(|k| k.offered == 0));
    assert!(keys[1][0].offered > 0);
}
