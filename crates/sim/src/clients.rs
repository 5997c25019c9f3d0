//! Measures of the clients: fairness, a greedy client's share, pacing clients' rejections and
//! the quota they see.

use std::fmt::Write as _;
use std::time::Duration;

use crate::model::{Focus, GREEDY_CLIENT};
use crate::report::Evaluation;
use crate::run::{KeyStats, BIN, SETTLE};

/// How admissions were spread over the active clients: each client's admitted ÷ its fair share
/// of the capacity (see [`Evaluation::admitted_vs_fair`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fairness {
    /// Clients that offered anything.
    pub active: usize,
    /// Smallest admitted ÷ fair share.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// Share of the active clients within ±20 % of their fair share.
    pub within_20: f64,
}

/// How the quota clients see (`Decision::limit` on the rate axis) followed the first drop of
/// capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaFall {
    /// Each client's fair share of the capacity per window before the drop (capacity × window ÷
    /// keys of the rate axis).
    pub fair_before: f64,
    /// The same after the drop.
    pub fair_after: f64,
    /// Mean quota seen over the 5 s before the drop, ÷ `fair_before`.
    pub before: Option<f64>,
    /// Time from the drop to the end of the first 500 ms bin whose mean seen quota is at most
    /// 1.2 × `fair_after`; `None` if that never happens before capacity changes again.
    pub time: Option<Duration>,
    /// Mean quota seen from 5 s after the drop to the next change, ÷ `fair_after`.
    pub after: Option<f64>,
}

/// Max-min fair shares (water-filling) of `total` admissions among clients that offered
/// `offered`: each gets `min(offered, level)`, with `level` such that the shares sum to `total`
/// (or every client gets what it offered, if that is less).
pub fn fair_shares(offered: &[u32], total: u64) -> Vec<f64> {
    let mut demand: Vec<f64> = offered.iter().map(|&o| f64::from(o)).collect();
    demand.sort_by(f64::total_cmp);
    let mut left = total as f64;
    let mut level = f64::INFINITY;
    for (i, d) in demand.iter().enumerate() {
        let n = (demand.len() - i) as f64;
        if d * n >= left {
            level = left / n;
            break;
        }
        left -= d;
    }
    offered.iter().map(|&o| f64::from(o).min(level)).collect()
}

fn sum_keys(r: &[Vec<KeyStats>], phases: &[usize]) -> Vec<KeyStats> {
    let n = r.first().map_or(0, Vec::len);
    let mut out = vec![KeyStats::default(); n];
    for &p in phases {
        for (o, k) in out.iter_mut().zip(&r[p]) {
            o.offered += k.offered;
            o.admitted += k.admitted;
            o.good += k.good;
        }
    }
    out
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

impl Evaluation {
    /// Admitted ÷ fair share of every active client of `name`, over the settled parts of
    /// `phases` (arrivals from 5 s after each phase's start): `(client, ratio)`. A client's fair
    /// share is its part of the max-min split of the capacity — what the oracle admitted over
    /// the same stretch — among what each client offered. A policy that admits more than the
    /// capacity is above 1 for every client; one that keeps a greedy client to its share keeps
    /// it near 1.
    ///
    /// # Panics
    ///
    /// Without an `oracle` run.
    pub fn admitted_vs_fair(&self, name: &str, phases: &[usize]) -> Vec<(u32, f64)> {
        let keys = sum_keys(&self.get(name).keys, phases);
        let offered: Vec<u32> = keys.iter().map(|k| k.offered).collect();
        let capacity: u64 = sum_keys(&self.get("oracle").keys, phases)
            .iter()
            .map(|k| u64::from(k.admitted))
            .sum();
        let fair = fair_shares(&offered, capacity);
        keys.iter()
            .zip(fair)
            .enumerate()
            .filter(|(_, (k, _))| k.offered > 0)
            .map(|(i, (k, f))| {
                let ratio = if f > 0.0 {
                    f64::from(k.admitted) / f
                } else {
                    1.0
                };
                (i as u32, ratio)
            })
            .collect()
    }

    /// The distribution of [`admitted_vs_fair`](Self::admitted_vs_fair).
    pub fn fairness(&self, name: &str, phases: &[usize]) -> Option<Fairness> {
        let mut r: Vec<f64> = self
            .admitted_vs_fair(name, phases)
            .into_iter()
            .map(|(_, x)| x)
            .collect();
        if r.is_empty() {
            return None;
        }
        r.sort_by(f64::total_cmp);
        let within = r.iter().filter(|x| (0.8..=1.2).contains(*x)).count();
        Some(Fairness {
            active: r.len(),
            min: r[0],
            median: r[r.len() / 2],
            max: r[r.len() - 1],
            within_20: within as f64 / r.len() as f64,
        })
    }

    /// Admitted ÷ fair share of `client` in the settled part of `phase` (see
    /// [`admitted_vs_fair`](Self::admitted_vs_fair)); `None` if it offered nothing.
    pub fn client_vs_fair(&self, name: &str, client: u32, phase: usize) -> Option<f64> {
        self.admitted_vs_fair(name, &[phase])
            .into_iter()
            .find(|(c, _)| *c == client)
            .map(|(_, x)| x)
    }

    /// Admitted ÷ offered of `client` in the settled part of `phase`.
    pub fn client_admitted_ratio(&self, name: &str, client: u32, phase: usize) -> Option<f64> {
        let k = self.get(name).keys[phase].get(client as usize)?;
        (k.offered > 0).then(|| f64::from(k.admitted) / f64::from(k.offered))
    }

    /// Rejected ÷ offered over every phase.
    pub fn rejection_rate(&self, name: &str) -> f64 {
        let r = self.get(name);
        let (rej, off) = r
            .phases
            .iter()
            .fold((0, 0), |(a, b), p| (a + p.rejected, b + p.offered));
        if off == 0 {
            0.0
        } else {
            rej as f64 / off as f64
        }
    }

    /// How the quota seen by `name`'s clients followed the first drop of capacity; `None`
    /// without a drop or without a rate axis.
    pub fn quota_fall(&self, name: &str) -> Option<QuotaFall> {
        let s = &self.scenario;
        let r = self.get(name);
        if r.rate_keys == 0 {
            return None;
        }
        let mut before_workers = s.service.workers;
        let mut drop = None;
        for (i, &(at, w)) in s.workers_changes.iter().enumerate() {
            if w < before_workers {
                let until = s
                    .workers_changes
                    .get(i + 1)
                    .map_or(s.duration, |(next, _)| *next);
                drop = Some((at, before_workers, w, until));
                break;
            }
            before_workers = w;
        }
        let (at, w0, w1, until) = drop?;
        let per_key =
            |w: u32| s.service.capacity_rps(w) * r.window.as_secs_f64() / f64::from(r.rate_keys);
        let (fair_before, fair_after) = (per_key(w0), per_key(w1));
        let secs = |d: Duration| d.as_secs_f64();
        let seen_in = |from: Duration, to: Duration| {
            mean(
                r.bins
                    .iter()
                    .filter(|b| b.t >= secs(from) && b.t + secs(BIN) <= secs(to))
                    .filter_map(|b| b.seen_limit),
            )
        };
        let time = r
            .bins
            .iter()
            .filter(|b| b.t >= secs(at) && b.t < secs(until))
            .find(|b| b.seen_limit.is_some_and(|q| q <= 1.2 * fair_after))
            .map(|b| Duration::from_secs_f64(b.t + secs(BIN) - secs(at)));
        Some(QuotaFall {
            fair_before,
            fair_after,
            before: seen_in(at.saturating_sub(SETTLE), at).map(|q| q / fair_before),
            time,
            after: seen_in(at + SETTLE, until).map(|q| q / fair_after),
        })
    }

    /// The measures of the clients for the scenario's [`Focus`] (empty for
    /// [`Focus::Capacity`]), as a markdown table.
    pub fn clients_table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0} %", 100.0 * v));
        let ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        let runs = self.runs.iter().filter(|r| r.policy != "no limit");
        match s.focus {
            Focus::Capacity => {}
            Focus::Fairness => {
                let all: Vec<usize> = (0..s.phases.len()).collect();
                let _ = writeln!(
                    out,
                    "| policy | active clients | admitted ÷ fair share: min | median | max | clients within ±20 % | goodput vs oracle (all phases) |"
                );
                let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
                for r in runs {
                    let f = self.fairness(&r.policy, &all);
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {:.1} % |",
                        r.policy,
                        f.map_or(0, |f| f.active),
                        ratio(f.map(|f| f.min)),
                        ratio(f.map(|f| f.median)),
                        ratio(f.map(|f| f.max)),
                        pct(f.map(|f| f.within_20)),
                        100.0 * self.total_goodput_vs_oracle(&r.policy),
                    );
                }
            }
            Focus::Greedy => {
                let _ = writeln!(
                    out,
                    "| policy | greedy ÷ fair share, others active | others ÷ fair share: min / median / max | greedy admitted ÷ offered, alone | goodput vs oracle, alone |"
                );
                let _ = writeln!(out, "|---|---:|---:|---:|---:|");
                for r in runs {
                    let others: Vec<f64> = self
                        .admitted_vs_fair(&r.policy, &[0])
                        .into_iter()
                        .filter(|(c, _)| *c != GREEDY_CLIENT)
                        .map(|(_, x)| x)
                        .collect();
                    let mut sorted = others.clone();
                    sorted.sort_by(f64::total_cmp);
                    let spread = if sorted.is_empty() {
                        "-".to_string()
                    } else {
                        format!(
                            "{:.2} / {:.2} / {:.2}",
                            sorted[0],
                            sorted[sorted.len() / 2],
                            sorted[sorted.len() - 1]
                        )
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {:.1} % |",
                        r.policy,
                        ratio(self.client_vs_fair(&r.policy, GREEDY_CLIENT, 0)),
                        spread,
                        pct(self.client_admitted_ratio(&r.policy, GREEDY_CLIENT, 1)),
                        100.0 * self.goodput_vs_oracle(&r.policy, 1),
                    );
                }
            }
            Focus::Pacing => {
                let _ = writeln!(
                    out,
                    "| policy | rejected (all phases) | rejected per phase | seen quota ÷ fair share before the drop | quota seen ≤ 1.2 × new fair share after | seen quota ÷ fair share, settled after the drop |"
                );
                let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
                for r in runs {
                    let per_phase = r
                        .phases
                        .iter()
                        .map(|p| format!("{:.1} %", 100.0 * p.rejection_rate()))
                        .collect::<Vec<_>>()
                        .join(" / ");
                    let q = self.quota_fall(&r.policy);
                    let _ = writeln!(
                        out,
                        "| {} | {:.2} % | {} | {} | {} | {} |",
                        r.policy,
                        100.0 * self.rejection_rate(&r.policy),
                        per_phase,
                        ratio(q.and_then(|q| q.before)),
                        q.map_or("-".to_string(), |q| q.time.map_or(
                            "never".to_string(),
                            |t| format!("{:.1} s", t.as_secs_f64())
                        )),
                        ratio(q.and_then(|q| q.after)),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fair_shares;

    #[test]
    fn water_filling_gives_small_demands_in_full_and_splits_the_rest_evenly() {
        assert_eq!(fair_shares(&[10, 10, 10], 15), vec![5.0, 5.0, 5.0]);
        assert_eq!(fair_shares(&[2, 10, 10], 12), vec![2.0, 5.0, 5.0]);
        assert_eq!(fair_shares(&[2, 3], 100), vec![2.0, 3.0]);
        assert_eq!(fair_shares(&[0, 4], 2), vec![0.0, 2.0]);
    }
}
