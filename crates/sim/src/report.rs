//! Comparing runs: goodput against the oracle, convergence, the table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::model::Scenario;
use crate::policy::Policy;
use crate::run::{run, RunReport, BIN};

/// Every policy run through one scenario with one seed.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The scenario.
    pub scenario: Scenario,
    /// One report per policy, in the order given.
    pub runs: Vec<RunReport>,
    /// The service's unloaded p99 latency (its service time's p99).
    pub unloaded_p99: Duration,
}

impl Evaluation {
    /// Runs every policy through `scenario` with `seed`. Include [`Policy::oracle`] for the
    /// ratios.
    pub fn run(scenario: &Scenario, policies: &[Policy], seed: u64) -> Self {
        Self {
            runs: policies.iter().map(|p| run(scenario, p, seed)).collect(),
            unloaded_p99: scenario.service.unloaded_p99(),
            scenario: scenario.clone(),
        }
    }

    /// The report of the policy named `name`.
    ///
    /// # Panics
    ///
    /// If no policy of that name ran.
    pub fn get(&self, name: &str) -> &RunReport {
        self.find(name)
            .unwrap_or_else(|| panic!("no policy named {name:?} in this evaluation"))
    }

    /// The report of the policy named `name`, if it ran.
    pub fn find(&self, name: &str) -> Option<&RunReport> {
        self.runs.iter().find(|r| r.policy == name)
    }

    /// Goodput of `name` in phase `phase` as a fraction of the oracle's.
    pub fn goodput_vs_oracle(&self, name: &str, phase: usize) -> f64 {
        let o = self.get("oracle").phases[phase].good.max(1);
        self.get(name).phases[phase].good as f64 / o as f64
    }

    /// Goodput of `name` over all phases as a fraction of the oracle's.
    pub fn total_goodput_vs_oracle(&self, name: &str) -> f64 {
        self.get(name).total_good() as f64 / self.get("oracle").total_good().max(1) as f64
    }

    /// For each capacity change: how long until, for the rest of that capacity's stretch,
    /// every 1 s window has goodput ≥ 90 % of the oracle's and the p99 latency of the trailing
    /// 2 s is ≤ 2 × the unloaded p99. `None` if that never happens.
    pub fn convergence(&self, name: &str) -> Vec<Option<Duration>> {
        let changes = self.scenario.capacity_changes();
        let mine = &self.get(name).bins;
        let oracle = &self.get("oracle").bins;
        let bound = self.unloaded_p99 * 2;
        let per_bin = |t: Duration| (t.as_nanos() / BIN.as_nanos()) as usize;
        changes
            .iter()
            .enumerate()
            .map(|(i, &tc)| {
                let te = changes
                    .get(i + 1)
                    .copied()
                    .unwrap_or(self.scenario.duration);
                let (first, last) = (per_bin(tc), per_bin(te).min(mine.len()).min(oracle.len()));
                let window_ok = |b: usize| {
                    let good: u32 = mine[b..b + 2].iter().map(|x| x.good).sum();
                    let oracle_good: u32 = oracle[b..b + 2].iter().map(|x| x.good).sum();
                    let p99_ok = mine[b + 1].p99_2s.is_none_or(|p| p <= bound);
                    f64::from(good) >= 0.9 * f64::from(oracle_good) && p99_ok
                };
                let mut converged_at = None;
                for b in (first..last.saturating_sub(1)).rev() {
                    if window_ok(b) {
                        converged_at = Some(b);
                    } else {
                        break;
                    }
                }
                converged_at.map(|b| (BIN * b as u32).saturating_sub(tc))
            })
            .collect()
    }

    /// The largest per-bin p99 latency of `name` from `from` to the end of the arrivals.
    pub fn max_bin_p99_from(&self, name: &str, from: Duration) -> Duration {
        self.get(name)
            .bins
            .iter()
            .filter(|b| b.t >= from.as_secs_f64() && b.t < self.scenario.duration.as_secs_f64())
            .filter_map(|b| b.p99)
            .max()
            .unwrap_or_default()
    }

    /// Share of all rejections of `name` that hit non-essential requests.
    pub fn non_essential_share_of_rejections(&self, name: &str) -> f64 {
        let r = self.get(name);
        let ne: u64 = r.phases.iter().map(|p| p.non_essential_rejected).sum();
        let all: u64 = r.phases.iter().map(|p| p.rejected).sum();
        if all == 0 {
            0.0
        } else {
            ne as f64 / all as f64
        }
    }

    /// Critical success over every phase.
    pub fn critical_success(&self, name: &str) -> f64 {
        let r = self.get(name);
        let good: u64 = r.phases.iter().map(|p| p.critical_good).sum();
        let all: u64 = r.phases.iter().map(|p| p.critical_offered).sum();
        if all == 0 {
            1.0
        } else {
            good as f64 / all as f64
        }
    }

    /// The table printed by `examples/simulate.rs`.
    pub fn table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## {} — {} (capacity {:.0} req/s healthy, unloaded p99 {} ms)\n",
            s.name,
            s.description,
            s.healthy_capacity(),
            self.unloaded_p99.as_millis()
        );
        let _ = writeln!(
            out,
            "| policy | phase | goodput vs oracle | p50 ms | p99 ms | settled p99 ms | rejected | critical ok |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for r in &self.runs {
            for (i, p) in r.phases.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} % | {} | {} | {} | {:.1} % | {:.1} % |",
                    r.policy,
                    p.name,
                    100.0 * self.goodput_vs_oracle(&r.policy, i),
                    p.p50.as_millis(),
                    p.p99.as_millis(),
                    p.settled_p99.as_millis(),
                    100.0 * p.rejection_rate(),
                    100.0 * p.critical_success(),
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| policy | total goodput vs oracle | converge after each change | max p99 after last change | min limit / need | non-essential share of rejections |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
        let last_change = s.capacity_changes().last().copied();
        for r in &self.runs {
            let conv = self
                .convergence(&r.policy)
                .iter()
                .map(|c| c.map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64())))
                .collect::<Vec<_>>()
                .join(", ");
            let after = last_change.map_or("-".to_string(), |t| {
                format!("{} ms", self.max_bin_p99_from(&r.policy, t).as_millis())
            });
            let _ = writeln!(
                out,
                "| {} | {:.1} % | {} | {} | {} | {:.0} % |",
                r.policy,
                100.0 * self.total_goodput_vs_oracle(&r.policy),
                if conv.is_empty() {
                    "-".to_string()
                } else {
                    conv
                },
                after,
                r.min_limit_to_need
                    .map_or("-".to_string(), |v| format!("{:.2}", v)),
                100.0 * self.non_essential_share_of_rejections(&r.policy),
            );
        }
        out
    }
}

/// Runs [`Policy::standard_set`] through every scenario of `scenarios`.
pub fn evaluate_all(scenarios: &[Scenario], seed: u64) -> Vec<Evaluation> {
    scenarios
        .iter()
        .map(|s| Evaluation::run(s, &Policy::standard_set(s), seed))
        .collect()
}
