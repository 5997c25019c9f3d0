//! The acceptance goals of the rate axis as a service-wide adaptive limit shared among the
//! active keys, measured on both [`Path`]s with the recommended configuration
//! ([`Policy::recommended_on`], bounds in [`crate::recommended`]).
//!
//! Each [`Goal`], in the scenarios of its [`Group`]:
//!
//! - every capacity scenario ([`Scenario::all`]): [`Goal::Goodput`] ≥ 0.9 of the oracle's in
//!   every phase; [`Goal::SettledP99`] (requests admitted from 5 s after the phase start)
//!   ≤ 2 × the unloaded p99 (the service time's p99, plus the dependency's latency while it is
//!   slow) in every phase; [`Goal::Convergence`] ≤ 5 s after each capacity change;
//!   [`Goal::CriticalTier`] success ≥ 99 % over the run, of what an unloaded service achieves
//!   (critical requests completed within `sla_warning` ÷ critical offered, divided by the
//!   share of an unloaded service's responses within `sla_warning`: 98.6 % in the noisy
//!   scenario, 99.6 % during the latency spike, ≈ 100 % elsewhere); and
//!   [`Goal::LatencySpike`]: total goodput ≥ 0.95 of the oracle's in the latency spike;
//! - [`Scenario::many_clients`]: [`Goal::ManyClientsGoodput`] ≥ 0.9 of the oracle's in every
//!   phase; [`Goal::Fairness`]: every active client's admitted ÷ fair share within 0.8–1.2
//!   ([`Evaluation::admitted_vs_fair`]: its max-min share of what the oracle admitted;
//!   settled parts of every phase);
//! - [`Scenario::greedy_client`]: [`Goal::GreedyShare`]: the greedy client's admitted ÷ fair
//!   share ≤ 1.2 while the others are active; [`Goal::GreedyAlone`]: alone, it gets ≥ 90 % of
//!   what it offers (its demand is below the capacity);
//! - [`Scenario::paced_halving`]: [`Goal::PacedRejections`]: clients pacing themselves by
//!   their decisions see < 1 % rejections over the run; [`Goal::QuotaFall`]: the quota they
//!   see ([`Evaluation::quota_fall`]) reaches 1.2 × the new fair share ≤ 5 s after capacity
//!   halves. Their goodput against the oracle is shown for information.
//!
//! Fairness, the greedy client's share while others are active, and header honesty are
//! required with one key per client only (a shared key cannot tell clients apart, and its
//! quota is the whole service's); with a shared key they are measured for information.
//!
//! [`check_two_step_goals`] and [`check_acquire_goals`] measure every goal at the quick scale
//! (seed [`SEED`]) and return the goals missed; [`check`] measures one goal on one path with
//! one keying. `cargo run --release -p throttle-sim --example simulate -- --goals` prints the
//! table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::model::{Scenario, SimScale, GREEDY_CLIENT};
use crate::policy::{Keying, Path, Policy};
use crate::report::Evaluation;
use crate::run::SETTLE;

/// The seed of the goal checks.
pub const SEED: u64 = 42;

/// Goodput ÷ oracle in every phase.
pub const GOODPUT: f64 = 0.9;
/// Total goodput ÷ oracle in the latency spike.
pub const GOODPUT_LATENCY_SPIKE: f64 = 0.95;
/// Settled p99 ÷ unloaded p99.
pub const SETTLED_P99: f64 = 2.0;
/// Convergence after each capacity change.
pub const CONVERGENCE: Duration = Duration::from_secs(5);
/// Critical-tier success, of what an unloaded service achieves.
pub const CRITICAL: f64 = 0.99;
/// Admitted ÷ fair share of every active client, both ways.
pub const FAIRNESS: f64 = 0.2;
/// Admitted ÷ offered of the greedy client alone.
pub const GREEDY_ALONE: f64 = 0.9;
/// Rejections of pacing clients.
pub const PACED_REJECTIONS: f64 = 0.01;
/// Time for the quota a client sees to fall after capacity halves.
pub const QUOTA_FALL: Duration = Duration::from_secs(5);

/// A group of goals: the scenarios they are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Every capacity scenario.
    Scenarios,
    /// 200 clients, 3× capacity.
    ManyClients,
    /// One greedy client, then alone.
    GreedyClient,
    /// Clients pacing themselves by their decisions, through a capacity halving.
    HeaderHonesty,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 4] = [
        Group::Scenarios,
        Group::ManyClients,
        Group::GreedyClient,
        Group::HeaderHonesty,
    ];

    /// The scenarios of the group.
    pub fn scenarios(self, scale: SimScale) -> Vec<Scenario> {
        match self {
            Group::Scenarios => Scenario::all(scale),
            Group::ManyClients => vec![Scenario::many_clients(scale)],
            Group::GreedyClient => vec![Scenario::greedy_client(scale)],
            Group::HeaderHonesty => vec![Scenario::paced_halving(scale)],
        }
    }
}

/// One acceptance goal (see the module's documentation for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Goal {
    /// Goodput ≥ 0.9 × the oracle's in every phase of every capacity scenario.
    Goodput,
    /// Total goodput ≥ 0.95 × the oracle's in the latency spike.
    LatencySpike,
    /// Settled p99 ≤ 2 × the unloaded p99 in every phase of every capacity scenario.
    SettledP99,
    /// Converged ≤ 5 s after each capacity change.
    Convergence,
    /// Critical-tier success ≥ 99 % of an unloaded service's over each capacity scenario.
    CriticalTier,
    /// Many clients: goodput ≥ 0.9 × the oracle's in every phase.
    ManyClientsGoodput,
    /// Many clients: every active client within ±20 % of its fair share.
    Fairness,
    /// The greedy client ≤ 1.2 × its fair share while others are active.
    GreedyShare,
    /// The greedy client alone gets ≥ 90 % of what it offers.
    GreedyAlone,
    /// Pacing clients see < 1 % rejections through a capacity halving.
    PacedRejections,
    /// The quota pacing clients see falls to 1.2 × the new fair share ≤ 5 s after capacity
    /// halves.
    QuotaFall,
    /// Pacing clients' goodput against the oracle in every phase: information only.
    PacedGoodput,
}

impl Goal {
    /// Every goal, in the order of the table.
    pub const ALL: [Goal; 12] = [
        Goal::Goodput,
        Goal::LatencySpike,
        Goal::SettledP99,
        Goal::Convergence,
        Goal::CriticalTier,
        Goal::ManyClientsGoodput,
        Goal::Fairness,
        Goal::GreedyShare,
        Goal::GreedyAlone,
        Goal::PacedRejections,
        Goal::QuotaFall,
        Goal::PacedGoodput,
    ];

    /// The scenarios it is measured in.
    pub const fn group(self) -> Group {
        match self {
            Goal::Goodput
            | Goal::LatencySpike
            | Goal::SettledP99
            | Goal::Convergence
            | Goal::CriticalTier => Group::Scenarios,
            Goal::ManyClientsGoodput | Goal::Fairness => Group::ManyClients,
            Goal::GreedyShare | Goal::GreedyAlone => Group::GreedyClient,
            Goal::PacedRejections | Goal::QuotaFall | Goal::PacedGoodput => Group::HeaderHonesty,
        }
    }

    /// Whether the goal is required with `keying` (otherwise it is measured for information).
    pub const fn required(self, keying: Keying) -> bool {
        match self {
            Goal::PacedGoodput => false,
            Goal::Fairness | Goal::GreedyShare | Goal::PacedRejections | Goal::QuotaFall => {
                matches!(keying, Keying::PerClient)
            }
            _ => true,
        }
    }

    /// The goal, in words.
    pub fn text(self) -> String {
        match self {
            Goal::Goodput => format!("goodput ≥ {GOODPUT} × oracle, every phase"),
            Goal::LatencySpike => {
                format!("total goodput ≥ {GOODPUT_LATENCY_SPIKE} × oracle (latency spike)")
            }
            Goal::SettledP99 => format!("settled p99 ≤ {SETTLED_P99} × unloaded p99, every phase"),
            Goal::Convergence => format!(
                "converged ≤ {} s after each capacity change",
                CONVERGENCE.as_secs()
            ),
            Goal::CriticalTier => format!(
                "critical success ≥ {} % of unloaded, over the run (worst phase)",
                CRITICAL * 100.0
            ),
            Goal::ManyClientsGoodput => format!("goodput ≥ {GOODPUT} × oracle, every phase"),
            Goal::Fairness => format!(
                "admitted ÷ fair share within ±{:.0} %, every active client (min / median / max)",
                FAIRNESS * 100.0
            ),
            Goal::GreedyShare => format!(
                "greedy client ≤ {} × its fair share while others are active",
                1.0 + FAIRNESS
            ),
            Goal::GreedyAlone => format!(
                "greedy client alone gets ≥ {:.0} % of what it offers (below capacity)",
                GREEDY_ALONE * 100.0
            ),
            Goal::PacedRejections => format!(
                "pacing clients see < {:.0} % rejections",
                PACED_REJECTIONS * 100.0
            ),
            Goal::QuotaFall => format!(
                "quota seen ≤ 1.2 × new fair share ≤ {} s after capacity halves",
                QUOTA_FALL.as_secs()
            ),
            Goal::PacedGoodput => format!("goodput ≥ {GOODPUT} × oracle, every phase"),
        }
    }
}

/// One goal, measured in one scenario for one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalCheck {
    /// The goal.
    pub goal: Goal,
    /// Scenario.
    pub scenario: &'static str,
    /// Path of the policy.
    pub path: Path,
    /// Keying of the policy.
    pub keying: Keying,
    /// What was measured, in words.
    pub measured: String,
    /// Whether the goal is met.
    pub met: bool,
    /// Whether the goal applies to this keying (otherwise it is shown for information).
    pub required: bool,
}

/// Goals measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalReport {
    /// Every check, in the order measured.
    pub checks: Vec<GoalCheck>,
    /// Path and keying columns, in the order measured.
    pub columns: Vec<(Path, Keying)>,
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// The phase where `f` is worst (smallest, or largest if `largest`): `(value, phase name)`.
fn worst(e: &Evaluation, f: impl Fn(usize) -> f64, largest: bool) -> (f64, &'static str) {
    let mut best: Option<(f64, &'static str)> = None;
    for (i, p) in e.scenario.phases.iter().enumerate() {
        let v = f(i);
        let better = best.is_none_or(|(b, _)| if largest { v > b } else { v < b });
        if better {
            best = Some((v, p.name));
        }
    }
    best.unwrap_or((f64::NAN, "-"))
}

/// Measures `goal` for the policy `name` in `e`: `(measured, met)`, or `None` where the goal
/// does not apply to the scenario.
fn measure(goal: Goal, e: &Evaluation, name: &str) -> Option<(String, bool)> {
    let s = &e.scenario;
    let r = e.get(name);
    let every_phase = |min: f64| {
        let (v, phase) = worst(e, |i| e.goodput_vs_oracle(name, i), false);
        (format!("{} ({phase})", pct(v)), v >= min)
    };
    let extra = |i: usize| s.extra_at(s.phases[i].start + SETTLE);
    Some(match goal {
        Goal::Goodput | Goal::ManyClientsGoodput => every_phase(GOODPUT),
        Goal::PacedGoodput => every_phase(GOODPUT),
        Goal::LatencySpike => {
            if s.name != "latency_spike" {
                return None;
            }
            let v = e.total_goodput_vs_oracle(name);
            (pct(v), v >= GOODPUT_LATENCY_SPIKE)
        }
        Goal::SettledP99 => {
            let unloaded = |i: usize| (e.unloaded_p99 + extra(i)).as_secs_f64();
            let (v, phase) = worst(
                e,
                |i| r.phases[i].settled_p99.as_secs_f64() / unloaded(i),
                true,
            );
            (format!("{v:.2}× ({phase})"), v <= SETTLED_P99)
        }
        Goal::Convergence => {
            let conv = e.convergence(name);
            if conv.is_empty() {
                return None;
            }
            let text = conv.iter().map(|c| secs(*c)).collect::<Vec<_>>().join(", ");
            let met = conv.iter().all(|c| c.is_some_and(|c| c <= CONVERGENCE));
            (text, met)
        }
        Goal::CriticalTier => {
            let ceiling = |i: usize| s.service.unloaded_within(s.sla_warning, extra(i));
            let (good, possible) =
                r.phases
                    .iter()
                    .enumerate()
                    .fold((0.0, 0.0), |(g, n), (i, p)| {
                        (
                            g + p.critical_good as f64,
                            n + p.critical_offered as f64 * ceiling(i),
                        )
                    });
            let v = if possible > 0.0 { good / possible } else { 1.0 };
            let (w, phase) = worst(e, |i| r.phases[i].critical_success() / ceiling(i), false);
            (format!("{} ({phase} {})", pct(v), pct(w)), v >= CRITICAL)
        }
        Goal::Fairness => {
            let all: Vec<usize> = (0..s.phases.len()).collect();
            match e.fairness(name, &all) {
                None => ("no arrivals".to_string(), false),
                Some(f) => (
                    format!("{:.2} / {:.2} / {:.2}", f.min, f.median, f.max),
                    f.min >= 1.0 - FAIRNESS && f.max <= 1.0 + FAIRNESS,
                ),
            }
        }
        Goal::GreedyShare => {
            let v = e.client_vs_fair(name, GREEDY_CLIENT, 0);
            (
                v.map_or("-".to_string(), |v| format!("{v:.2}×")),
                v.is_some_and(|v| v <= 1.0 + FAIRNESS),
            )
        }
        Goal::GreedyAlone => {
            let v = e.client_admitted_ratio(name, GREEDY_CLIENT, 1);
            (
                v.map_or("-".to_string(), pct),
                v.is_some_and(|v| v >= GREEDY_ALONE),
            )
        }
        Goal::PacedRejections => {
            let v = e.rejection_rate(name);
            (format!("{:.2} %", 100.0 * v), v < PACED_REJECTIONS)
        }
        Goal::QuotaFall => match e.quota_fall(name) {
            None => ("no quota seen".to_string(), false),
            Some(q) => {
                let ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
                (
                    format!(
                        "{} (seen ÷ fair share: {} before, {} after)",
                        secs(q.time),
                        ratio(q.before),
                        ratio(q.after)
                    ),
                    q.time.is_some_and(|t| t <= QUOTA_FALL),
                )
            }
        },
    })
}

impl GoalReport {
    /// Measures `goals` at `scale` with `seed`, for the recommended configuration
    /// ([`Policy::recommended_on`]) on every path of `paths` with every keying of `keyings`.
    /// Each scenario runs once for all of them.
    pub fn measure(
        scale: SimScale,
        seed: u64,
        goals: &[Goal],
        paths: &[Path],
        keyings: &[Keying],
    ) -> Self {
        Self::measure_in(scale, seed, goals, paths, keyings, |_| true)
    }

    /// [`measure`](Self::measure) in the scenarios for which `only` is true.
    pub fn measure_in(
        scale: SimScale,
        seed: u64,
        goals: &[Goal],
        paths: &[Path],
        keyings: &[Keying],
        only: impl Fn(&Scenario) -> bool,
    ) -> Self {
        let columns: Vec<(Path, Keying)> = paths
            .iter()
            .flat_map(|&p| keyings.iter().map(move |&k| (p, k)))
            .collect();
        let mut checks = Vec::new();
        for group in Group::ALL {
            let goals: Vec<Goal> = goals
                .iter()
                .copied()
                .filter(|g| g.group() == group)
                .collect();
            if goals.is_empty() {
                continue;
            }
            for s in group.scenarios(scale).into_iter().filter(&only) {
                let mut policies: Vec<Policy> = columns
                    .iter()
                    .map(|&(p, k)| Policy::recommended_on(&s, p, k))
                    .collect();
                policies.push(Policy::oracle());
                let e = Evaluation::run(&s, &policies, seed);
                for &goal in &goals {
                    for &(path, keying) in &columns {
                        let name = Policy::recommended_name(path, keying);
                        if let Some((measured, met)) = measure(goal, &e, &name) {
                            checks.push(GoalCheck {
                                goal,
                                scenario: s.name,
                                path,
                                keying,
                                measured,
                                met,
                                required: goal.required(keying),
                            });
                        }
                    }
                }
            }
        }
        Self { checks, columns }
    }

    /// The required goals missed.
    pub fn missed(&self) -> Vec<&GoalCheck> {
        self.checks
            .iter()
            .filter(|c| c.required && !c.met)
            .collect()
    }

    /// `Ok` if every required goal is met, otherwise one line per goal missed.
    ///
    /// # Errors
    ///
    /// The goals missed, with what was measured.
    pub fn result(&self) -> Result<(), String> {
        let missed = self.missed();
        if missed.is_empty() {
            return Ok(());
        }
        let mut out = format!("{} goal(s) missed:\n", missed.len());
        for c in missed {
            let _ = writeln!(
                out,
                "- {}: {} ({}, {}): measured {}",
                c.scenario,
                c.goal.text(),
                c.path.label(),
                c.keying.label(),
                c.measured
            );
        }
        Err(out)
    }

    /// `Ok` if `goal` is met on `path` with `keying` in every scenario measured (or is not
    /// required with that keying).
    ///
    /// # Errors
    ///
    /// The scenarios where it is missed, with what was measured; or that it was not measured.
    pub fn require(&self, goal: Goal, path: Path, keying: Keying) -> Result<(), String> {
        let mine: Vec<&GoalCheck> = self
            .checks
            .iter()
            .filter(|c| c.goal == goal && c.path == path && c.keying == keying)
            .collect();
        if mine.is_empty() {
            return Err(format!(
                "{} ({}, {}) was not measured",
                goal.text(),
                path.label(),
                keying.label()
            ));
        }
        let missed: Vec<String> = mine
            .iter()
            .filter(|c| c.required && !c.met)
            .map(|c| format!("{}: measured {}", c.scenario, c.measured))
            .collect();
        if missed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} ({}, {}) missed in {}",
                goal.text(),
                path.label(),
                keying.label(),
                missed.join("; ")
            ))
        }
    }

    /// A markdown table: one row per scenario and goal, one column per path and keying. Each
    /// cell is the measure, then ✓ (met) or ✗ (missed), or "(info)" where the goal is not
    /// required with that keying.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "| scenario | goal |");
        for (p, k) in &self.columns {
            let _ = write!(out, " {}, {} |", p.label(), k.label());
        }
        let _ = writeln!(out);
        let _ = write!(out, "|---|---|");
        for _ in &self.columns {
            let _ = write!(out, "---|");
        }
        let _ = writeln!(out);
        let mut rows: Vec<(&'static str, Goal)> = Vec::new();
        for c in &self.checks {
            if !rows.contains(&(c.scenario, c.goal)) {
                rows.push((c.scenario, c.goal));
            }
        }
        for (scenario, goal) in rows {
            let _ = write!(out, "| {scenario} | {} |", goal.text());
            for &(p, k) in &self.columns {
                let cell = self
                    .checks
                    .iter()
                    .find(|c| {
                        c.scenario == scenario && c.goal == goal && c.path == p && c.keying == k
                    })
                    .map_or("-".to_string(), |c| {
                        let mark = match (c.required, c.met) {
                            (false, _) => "(info)",
                            (true, true) => "✓",
                            (true, false) => "✗",
                        };
                        format!("{} {mark}", c.measured)
                    });
                let _ = write!(out, " {cell} |");
            }
            let _ = writeln!(out);
        }
        out
    }
}

/// `goal` for the recommended configuration on `path` with `keying`, in every scenario of its
/// group, at the quick scale with [`SEED`]. A goal not required with `keying` is measured but
/// not asserted.
///
/// # Errors
///
/// The scenarios where it is missed, with what was measured.
pub fn check(goal: Goal, path: Path, keying: Keying) -> Result<(), String> {
    GoalReport::measure(SimScale::quick(), SEED, &[goal], &[path], &[keying]).result()
}

/// Every goal on `path`, with a shared key and with one key per client, at the quick scale.
///
/// # Errors
///
/// The goals missed, with what was measured.
pub fn check_path_goals(path: Path) -> Result<(), String> {
    GoalReport::measure(SimScale::quick(), SEED, &Goal::ALL, &[path], &Keying::BOTH).result()
}

/// Every goal on the two-step path (`check` + `record_response`), with a shared key and with
/// one key per client, at the quick scale.
///
/// # Errors
///
/// The goals missed, with what was measured.
pub fn check_two_step_goals() -> Result<(), String> {
    check_path_goals(Path::TwoStep)
}

/// Every goal on the acquire path (`acquire` + the permit's outcome + `record_response`), with
/// a shared key and with one key per client, at the quick scale.
///
/// # Errors
///
/// The goals missed, with what was measured.
pub fn check_acquire_goals() -> Result<(), String> {
    check_path_goals(Path::Acquire)
}
