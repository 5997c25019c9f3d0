//! Per-request counters of a throttle: atomics on the hot path, read as a snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::decision::{RejectReason, Tier};
use crate::events::{ChangeReason, ThrottleEvent};
use crate::util::stripes::Stripes;

/// Upper bounds of the latency histogram buckets, in seconds (Baldur's 10 ms … 5 s).
pub const RTT_BUCKETS_SECONDS: [f64; 9] = [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// A cumulative latency histogram.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RttHistogram {
    /// `(upper bound in seconds, cumulative count)`, the last bound being +∞.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all samples, in seconds.
    pub sum_seconds: f64,
    /// Number of samples.
    pub count: u64,
}

/// Direction of a limit change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Direction {
    /// The limit rose.
    Up,
    /// The limit fell.
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A snapshot of a throttle's per-request counters.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// `(tier, allowed, rejected)` for each tier.
    pub requests_by_tier: Vec<(Tier, u64, u64)>,
    /// Rejections by reason (reasons never seen are omitted).
    pub rejections_by_reason: Vec<(RejectReason, u64)>,
    /// Latency of recorded responses.
    pub rtt: RttHistogram,
    /// Limit changes by direction and trigger.
    pub limit_changes: Vec<(Direction, ChangeReason, u64)>,
}

/// Latencies by bucket. Plain integers: it is updated under the controller's lock, which every
/// recorded response takes anyway, so the hot path pays no extra atomic operations for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RttTally {
    buckets: [u64; RTT_BUCKETS_SECONDS.len() + 1],
    sum_nanos: u64,
}

impl RttTally {
    pub(crate) fn add(&mut self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        let bucket = RTT_BUCKETS_SECONDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(RTT_BUCKETS_SECONDS.len());
        self.buckets[bucket] += 1;
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn histogram(&self) -> RttHistogram {
        let mut cumulative = 0;
        let mut buckets: Vec<(f64, u64)> = RTT_BUCKETS_SECONDS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                cumulative += n;
                (*bound, cumulative)
            })
            .collect();
        cumulative += self.buckets[RTT_BUCKETS_SECONDS.len()];
        buckets.push((f64::INFINITY, cumulative));
        RttHistogram {
            buckets,
            sum_seconds: self.sum_nanos as f64 / 1e9,
            count: cumulative,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Admitted and rejected per tier, striped per thread: every request bumps one of them,
    /// and one shared line written by every core would be the hot path's bottleneck.
    by_tier: Stripes<[[AtomicU64; 2]; 3]>,
    by_reason: [AtomicU64; RejectReason::ALL.len()],
    changes: Mutex<BTreeMap<(Direction, ChangeReasonKey), u64>>,
}

/// `ChangeReason` ordered by name so the map is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ChangeReasonKey(&'static str);

pub(crate) fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Critical => 0,
        Tier::Standard => 1,
        Tier::NonEssential => 2,
    }
}

impl Counters {
    pub(crate) fn decision(&self, tier: Tier, allowed: bool, reason: Option<RejectReason>) {
        self.by_tier.local()[tier_index(tier)][usize::from(!allowed)]
            .fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = reason {
            if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
                self.by_reason[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Admissions (`rejected == false`) or rejections of the tiers `tiers`, summed over the
    /// stripes.
    fn sum(&self, tiers: &[usize], rejected: bool) -> u64 {
        self.by_tier
            .iter()
            .flat_map(|stripe| {
                tiers
                    .iter()
                    .map(move |t| &stripe[*t][usize::from(rejected)])
            })
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// Admissions counted, all tiers.
    pub(crate) fn allowed_total(&self) -> u64 {
        self.sum(&[0, 1, 2], false)
    }

    /// Rejections counted, all tiers and axes.
    pub(crate) fn rejected_total(&self) -> u64 {
        self.sum(&[0, 1, 2], true)
    }

    /// Counts limit changes among `events` (called with the few events of a transition).
    pub(crate) fn events(&self, events: &[ThrottleEvent]) {
        let mut changes = None;
        for e in events {
            if let ThrottleEvent::LimitChanged(c) = e {
                let dir = if c.new > c.previous {
                    Direction::Up
                } else {
                    Direction::Down
                };
                let map = changes.get_or_insert_with(|| self.changes.lock());
                *map.entry((dir, ChangeReasonKey(c.reason.as_str())))
                    .or_insert(0) += 1;
            }
        }
    }

    /// The counters, with the latency histogram kept under the controller's lock.
    pub(crate) fn snapshot(&self, rtt: RttHistogram) -> CounterSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            requests_by_tier: Tier::ALL
                .iter()
                .map(|t| {
                    let tier = [tier_index(*t)];
                    (*t, self.sum(&tier, false), self.sum(&tier, true))
                })
                .collect(),
            rejections_by_reason: RejectReason::ALL
                .iter()
                .zip(&self.by_reason)
                .filter(|(_, n)| load(n) > 0)
                .map(|(r, n)| (*r, load(n)))
                .collect(),
            rtt,
            limit_changes: self
                .changes
                .lock()
                .iter()
                .filter_map(|((dir, key), n)| {
                    ChangeReason::ALL
                        .iter()
                        .find(|r| r.as_str() == key.0)
                        .map(|r| (*dir, *r, *n))
                })
                .collect(),
        }
    }

    pub(crate) fn reset(&self) {
        for stripe in self.by_tier.iter() {
            stripe
                .iter()
                .flatten()
                .for_each(|a| a.store(0, Ordering::Relaxed));
        }
        self.by_reason
            .iter()
            .for_each(|a| a.store(0, Ordering::Relaxed));
        self.changes.lock().clear();
    }
}
