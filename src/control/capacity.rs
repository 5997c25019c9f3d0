//! The capacity estimate: what the service can take now, as a rate, learned from what the
//! throttle already sees — completions, their latency, and (with the concurrency axis) the
//! in-flight limit. See [`CapacityEstimate`](crate::config::CapacityEstimate) for the rules.
//!
//! Pure: every input arrives in an [`Observation`], at most once per sample interval.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::CapacityEstimate;
#[cfg(test)]
use crate::config::DEFAULT_CAPACITY_RATE_HEADROOM;
use crate::events::ChangeReason;

/// Largest rise of the no-load baseline per adjustment (1 %): a lasting shift is accepted
/// within about a minute, the queueing the limit itself causes is not.
const BASELINE_RISE: f64 = 0.01;
/// Share of requests the in-flight limit must shed in an interval for the rate to follow what
/// it lets through.
const SHEDDING_SHARE: f64 = 0.01;
/// Share of requests the service-wide limit must reject in an interval for it to "bind".
const BINDING_SHARE: f64 = 0.01;
/// While the limit binds at healthy latency without probing, a probe every this many
/// adjustments looks for capacity that has come back.
const PROBE_EVERY: u32 = 4;
/// The shallowest cut on queueing (a cut of at least 10 %, so a queue drains).
const MAX_DRAIN: f64 = 0.9;
/// Admissions this far above completions over an adjustment, with latency off its floor, read
/// as a queue building.
const QUEUE_GROWTH: f64 = 0.1;
/// Cuts that took the limit to this share of where an episode of queueing started…
const SLOW_AFTER_CUT: f64 = 0.8;
/// …with the mean latency still at least this share of what the first cut saw: not a queue.
const STEADY: f64 = 0.9;
/// A mean latency within this share of the previous adjustment's has not moved.
const FLAT: f64 = 0.1;
/// The limit counts as binding when what it admitted reached this share of it (callers that
/// pace themselves by their quota are never rejected, yet use all of it).
const UTILISED: f64 = 0.9;
/// A probe that paid may be followed by a larger one, up to this gain.
const MAX_PROBE_GAIN: f64 = 0.15;
/// The largest climb per adjustment back towards the capacity after a cut.
const CLIMB: f64 = 0.25;
/// How long a cut gives the queue to drain: the excess latency over the tolerance, as a share
/// of this, is taken off what is delivered.
const DRAIN_TIME_MS: f64 = 2000.0;
/// The first adjustment that sees queueing cuts at most this deep: the interval before it was
/// not saturated throughout, so what it delivered says little about the capacity.
const FIRST_CUT_FLOOR: f64 = 0.7;
/// Nothing completes while work is outstanding: the limit halves per overdue adjustment.
const STARVED_CUT: f64 = 0.5;
/// Between probes the limit admits this share of what the service delivered when saturated, so
/// random arrivals do not keep a queue at the edge of saturation.
const CRUISE: f64 = 0.95;

/// What the throttle saw since the last adjustment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation {
    pub(crate) now: Duration,
    /// Mean latency of the fresh samples, in milliseconds.
    pub(crate) mean_ms: Option<f64>,
    /// Requests admitted and requests the service-wide limit rejected, ever (totals).
    pub(crate) admitted: u64,
    pub(crate) rejected: u64,
    /// When the concurrency axis is on: its limit, the permits it ever handed out and the
    /// requests it ever shed.
    pub(crate) inflight: Option<(u32, u64, u64)>,
    /// The current limit as a rate per second.
    pub(crate) rate: f64,
}

/// A new rate and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    /// Requests per second.
    pub(crate) rate: f64,
    pub(crate) reason: ChangeReason,
    /// Completions per second since the last adjustment.
    pub(crate) delivered: f64,
    /// The no-load latency, in milliseconds.
    pub(crate) baseline_ms: f64,
    /// The mean latency the estimate saw, in milliseconds.
    pub(crate) mean_ms: f64,
    /// Whether the limit rejected work since the last adjustment, or latency read as queueing:
    /// the throttle is shedding.
    pub(crate) shedding: bool,
    /// Whether work is queued in the service now (so a latency above the SLA is current, not
    /// the tail of a queue that has already drained).
    pub(crate) queued: bool,
}

/// A cut made because latency rose, waiting to learn whether the latency was queueing.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    /// The rate before the first cut of this episode.
    rate_before: f64,
    /// The mean latency the first cut saw.
    mean_first: f64,
    /// The mean latency the latest adjustment saw.
    mean_last: f64,
    /// Consecutive adjustments whose mean latency did not move.
    flat: u32,
    /// Completions beyond admissions since the first cut.
    drained: f64,
    /// Completions since the first cut.
    completed: f64,
    /// Adjustments of this episode.
    ticks: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct CapacityEstimator {
    params: CapacityEstimate,
    last_at: Option<Duration>,
    completions: u64,
    last_admitted: u64,
    last_rejected: u64,
    last_permits: u64,
    last_shed: u64,
    completed_total: u64,
    written_off: u64,
    /// `(when, delivered per second)` of recent adjustments, for the windowed maximum.
    delivered: VecDeque<(Duration, f64)>,
    baseline_ms: Option<f64>,
    queueing_seen: bool,
    /// The latest adjustment read queueing.
    queueing_now: bool,
    /// Work is queued beyond what the service holds (or, with permits, assumed so).
    queued: bool,
    suspect: Option<Suspect>,
    /// What the service delivers when saturated: set from the delivered rate when latency reads
    /// as queueing, raised by any higher delivered rate at healthy latency.
    capacity: Option<f64>,
    /// The delivered rate when the latest probe started, and the gain it used.
    probe: Option<(f64, f64)>,
    /// Adjustments spent at the capacity since the last probe.
    cruising: u32,
    /// The latest figures, for stats.
    latest: Option<Estimate>,
}

impl CapacityEstimator {
    pub(crate) fn new(params: CapacityEstimate) -> Self {
        Self {
            params,
            last_at: None,
            completions: 0,
            last_admitted: 0,
            last_rejected: 0,
            last_permits: 0,
            last_shed: 0,
            completed_total: 0,
            written_off: 0,
            delivered: VecDeque::new(),
            baseline_ms: None,
            queueing_seen: false,
            queueing_now: false,
            queued: true,
            suspect: None,
            capacity: None,
            probe: None,
            cruising: 0,
            latest: None,
        }
    }

    /// Counts one completed request (every recorded response, fresh or stale).
    pub(crate) fn completed(&mut self) {
        self.completions += 1;
        self.completed_total += 1;
    }

    /// Requests admitted and not yet recorded: the work in the service, queue included. Work
    /// admitted but never recorded (a caller that skips `record_response` on some path) is
    /// written off whenever latency is healthy, so it cannot pile up into a phantom queue.
    fn outstanding(&self, admitted_total: u64) -> f64 {
        admitted_total
            .saturating_sub(self.completed_total)
            .saturating_sub(self.written_off) as f64
    }

    /// The latest estimate's figures.
    pub(crate) fn latest(&self) -> Option<Estimate> {
        self.latest
    }

    /// The no-load latency baseline.
    pub(crate) fn baseline(&self) -> Option<Duration> {
        self.baseline_ms
            .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }

    /// One adjustment: the new rate, or `None` when there is nothing to learn yet.
    pub(crate) fn observe(&mut self, obs: Observation) -> Option<Estimate> {
        let Some(last_at) = self.last_at.replace(obs.now) else {
            self.completions = 0;
            self.last_admitted = obs.admitted;
            self.last_rejected = obs.rejected;
            if let Some((_, permits, shed)) = obs.inflight {
                self.last_permits = permits;
                self.last_shed = shed;
            }
            return None;
        };
        let dt = obs.now.saturating_sub(last_at).as_secs_f64();
        let completions = std::mem::take(&mut self.completions);
        let admitted = obs.admitted.saturating_sub(self.last_admitted);
        let rejected = obs.rejected.saturating_sub(self.last_rejected);
        self.last_admitted = obs.admitted;
        self.last_rejected = obs.rejected;
        // The in-flight limit speaks for the service only while permits are in use (a caller on
        // the two-step API never takes one, even with the concurrency axis configured).
        let inflight = obs.inflight.and_then(|(limit, permits, shed)| {
            let taken = permits.saturating_sub(self.last_permits);
            let shed_now = shed.saturating_sub(self.last_shed);
            self.last_permits = permits;
            self.last_shed = shed;
            (taken > 0).then_some((limit, taken, shed_now))
        });
        let (Some(mean), true) = (obs.mean_ms, dt > 0.0) else {
            return None;
        };
        let delivered = completions as f64 / dt;
        self.delivered.push_back((obs.now, delivered));
        while self
            .delivered
            .front()
            .is_some_and(|(at, _)| obs.now.saturating_sub(*at) > self.params.delivery_window)
        {
            self.delivered.pop_front();
        }
        let best = self
            .delivered
            .iter()
            .map(|(_, d)| *d)
            .fold(delivered, f64::max);
        let baseline = match self.baseline_ms {
            None => mean,
            Some(b) => mean.min(b * (1.0 + BASELINE_RISE)),
        };
        self.baseline_ms = Some(baseline);
        let binding = rejected as f64 > BINDING_SHARE * (admitted + rejected) as f64
            || admitted as f64 >= UTILISED * obs.rate * dt;
        let p = self.params;
        let (rate, reason) = if let Some((limit, taken, shed)) = inflight {
            // Permits in use: the in-flight limit is the capacity guard, and its algorithm the
            // estimate (it measures work in flight directly). While it sheds, the rate is what
            // it lets through; otherwise the rate keeps `headroom` above what is delivered and
            // at most that much above what the in-flight limit allows (Little's law).
            self.suspect = None;
            if shed as f64 > SHEDDING_SHARE * (taken + shed) as f64 {
                (p.rate_headroom * best, ChangeReason::CapacityEstimate)
            } else {
                let allowed = f64::from(limit) / (mean / 1000.0).max(1e-6);
                let held = obs.rate.min(p.headroom * allowed);
                let rate = (p.headroom * best).max(held);
                let reason = if rate >= obs.rate {
                    ChangeReason::Headroom
                } else {
                    ChangeReason::CapacityEstimate
                };
                (rate, reason)
            }
        } else {
            let outstanding = self.outstanding(obs.admitted);
            self.two_step(
                delivered,
                admitted as f64 / dt,
                outstanding,
                obs.admitted,
                mean,
                baseline,
                binding,
                best,
                obs.rate,
                dt,
            )
        };
        let estimate = Estimate {
            rate,
            reason,
            delivered,
            baseline_ms: self.baseline_ms.unwrap_or(baseline),
            mean_ms: mean,
            shedding: binding || reason == ChangeReason::LatencyRising,
            queued: self.queued,
        };
        self.latest = Some(estimate);
        Some(estimate)
    }

    /// The estimate from completions and latency alone (no permits): cut to below what is
    /// delivered when the service queues, cruise at what it delivered when saturated, probe
    /// above that while probing pays.
    #[allow(clippy::too_many_arguments)]
    fn two_step(
        &mut self,
        delivered: f64,
        admitted: f64,
        outstanding: f64,
        admitted_total: u64,
        mean: f64,
        baseline: f64,
        binding: bool,
        best: f64,
        rate: f64,
        dt: f64,
    ) -> (f64, ChangeReason) {
        let p = self.params;
        let ratio = mean / baseline.max(1e-9);
        // Work in the service beyond what it holds at the tolerated latency (Little's law:
        // throughput × latency) is a queue. Latency reports the queue late — the mean of an
        // interval describes requests admitted before it — so a queue that has already drained
        // must not be cut for again.
        let holds = delivered.max(best) * baseline / 1000.0 * p.tolerance;
        let queue = outstanding > holds + 1.0;
        self.queued = queue;
        if ratio <= 1.1 {
            // Healthy latency: whatever is outstanding beyond what the service holds now was
            // never recorded; write it off.
            let expected = delivered * mean / 1000.0;
            if outstanding > 2.0 * expected + 16.0 {
                self.written_off = admitted_total
                    .saturating_sub(self.completed_total)
                    .saturating_sub(expected as u64);
            }
        }
        // A queue builds when more is admitted than completes while latency leaves its floor;
        // this shows before the mean latency has crossed the tolerance.
        let growing = delivered > 0.0 && admitted > delivered * (1.0 + QUEUE_GROWTH) && ratio > 1.1;
        if (ratio > p.tolerance || growing) && queue {
            let first = !self.queueing_now;
            self.queueing_now = true;
            self.queueing_seen = true;
            self.probe = None;
            self.cruising = 0;
            // Cutting admissions below what a saturated service delivers drains its queue, and
            // its latency falls with it. If the cuts of this episode took a fifth off the
            // limit and latency did not fall, the latency was not a queue: the service got
            // slower (a dependency). Accept its latency as the new floor and undo the cuts.
            //
            // What tells the two apart is what completes: a saturated service keeps delivering
            // its capacity while admissions fall, so its outstanding work drains by a queue's
            // worth; a slower one delivers what it is given, so its outstanding work shrinks only
            // by what the lower rate holds at its latency (Little's law).
            if let Some(s) = self.suspect.as_mut() {
                if s.ticks > 0 {
                    s.drained += (delivered - admitted) * dt;
                    s.completed += delivered * dt;
                }
                s.ticks += 1;
                // A queue's latency moves (it grows, or falls as it drains); a slower service's
                // stays where it went.
                s.flat = if (mean - s.mean_last).abs() <= FLAT * s.mean_last {
                    s.flat + 1
                } else {
                    0
                };
                s.mean_last = mean;
                let cut_enough = rate <= SLOW_AFTER_CUT * s.rate_before;
                let latency_held = mean >= STEADY * s.mean_first;
                let little = (s.rate_before - rate).max(0.0) * s.mean_first / 1000.0;
                let no_queue = s.drained <= 2.0 * little + 2.0 * s.completed.sqrt();
                if s.flat >= 2 && cut_enough && latency_held && no_queue {
                    let restore = s.rate_before.max(rate);
                    self.suspect = None;
                    self.baseline_ms = Some(mean);
                    return (restore, ChangeReason::CapacityEstimate);
                }
            }
            // Saturated: what it delivers now is what it can take. Cut below that by what
            // drains the queue (the excess latency) within the drain time; never a rise while
            // latency reads as queueing (a backlog can complete faster than the limit admits).
            let excess_ms = (mean - p.tolerance * baseline).max(0.0);
            let drain = (1.0 - excess_ms / DRAIN_TIME_MS).clamp(p.min_drain, MAX_DRAIN);
            let mut target = delivered * drain;
            if first {
                target = target.max(rate * FIRST_CUT_FLOOR);
            } else {
                self.capacity = Some(delivered);
            }
            self.suspect.get_or_insert(Suspect {
                rate_before: rate,
                mean_first: mean,
                mean_last: mean,
                flat: 0,
                drained: 0.0,
                completed: 0.0,
                ticks: 1,
            });
            return (target.min(rate), ChangeReason::LatencyRising);
        }
        self.queueing_now = false;
        self.suspect = None;
        let capacity = self.capacity.map_or(delivered, |c| c.max(delivered));
        self.capacity = Some(capacity);
        if !binding {
            // Not binding: keep the limit at least `headroom` above what is delivered; an
            // unused limit above that holds (it is what the service has shown it can take).
            self.probe = None;
            self.cruising = 0;
            return ((p.headroom * best).max(rate), ChangeReason::Headroom);
        }
        // Below the capacity (after a cut): climb back, a bounded step at a time.
        let cruise = capacity * CRUISE;
        if rate < cruise * 0.98 {
            self.probe = None;
            return (cruise.min(rate * (1.0 + CLIMB)), ChangeReason::Headroom);
        }
        // At the capacity: probe while probing pays (the last probe raised what is delivered),
        // before the first sign of queueing (startup), and every few adjustments otherwise.
        let paid = self
            .probe
            .is_some_and(|(before, gain)| delivered >= before * (1.0 + gain / 2.0));
        // Startup ends at the first probe that does not pay, or at the first queueing.
        if self.probe.is_some() && !paid {
            self.queueing_seen = true;
        }
        let gain = match self.probe {
            _ if !self.queueing_seen => Some(p.startup_gain),
            Some((_, gain)) if paid => Some((gain * 1.5).min(MAX_PROBE_GAIN.max(p.probe_gain))),
            _ if self.cruising + 1 >= PROBE_EVERY => Some(p.probe_gain),
            _ => None,
        };
        match gain {
            Some(gain) => {
                self.probe = Some((delivered, gain));
                self.cruising = 0;
                (rate * (1.0 + gain), ChangeReason::Headroom)
            }
            None => {
                self.probe = None;
                self.cruising += 1;
                (cruise, ChangeReason::CapacityEstimate)
            }
        }
    }

    /// No completion for several adjustment intervals (the caller knows) while admitted work is
    /// outstanding: the service has stopped answering (a hung dependency, a deadlock), so
    /// nothing reaches the estimate through `record_response`. Halves the limit each time it is
    /// called in that state (the throttle calls it from admission while a record is overdue);
    /// `None` when nothing is outstanding.
    pub(crate) fn starved(&mut self, now: Duration, admitted_total: u64, rate: f64) -> Option<f64> {
        if self.outstanding(admitted_total) < 1.0 {
            return None;
        }
        self.last_at = Some(now);
        self.completions = 0;
        self.last_admitted = admitted_total;
        self.queueing_seen = true;
        self.probe = None;
        Some(rate * STARVED_CUT)
    }

    /// Forgets everything learnt (a reset).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t_ms: u64, mean_ms: f64, admitted: u64, rejected: u64, rate: f64) -> Observation {
        Observation {
            now: Duration::from_millis(t_ms),
            mean_ms: Some(mean_ms),
            admitted,
            rejected,
            inflight: None,
            rate,
        }
    }

    fn feed(e: &mut CapacityEstimator, completions: u64) {
        for _ in 0..completions {
            e.completed();
        }
    }

    #[test]
    fn a_queue_is_cut_gently_at_first_then_below_what_is_delivered_until_it_drains() {
        let mut e = CapacityEstimator::new(CapacityEstimate::default());
        assert!(e.observe(obs(0, 40.0, 0, 0, 1000.0)).is_none());
        feed(&mut e, 400);
        let healthy = e.observe(obs(500, 40.0, 400, 0, 1000.0)).unwrap();
        assert_eq!(healthy.delivered, 800.0);
        assert_eq!(healthy.rate, 1200.0, "not binding: 1.5 × what is delivered");
        // The service slows to 500/s while 900 have been admitted and 650 completed: a queue of
        // 250 behind a tripled latency. The first cut is at most 30 % (the interval before it
        // was not saturated throughout).
        feed(&mut e, 250);
        let first = e.observe(obs(1000, 120.0, 900, 0, 1200.0)).unwrap();
        assert_eq!(first.reason, ChangeReason::LatencyRising);
        assert!((first.rate - 0.7 * 1200.0).abs() < 1e-9, "{first:?}");
        assert!(first.queued);
        // Saturated through the next interval: what it delivers is its capacity, and the cut
        // goes below it by the share that drains the excess latency within two seconds.
        feed(&mut e, 250);
        let second = e.observe(obs(1500, 300.0, 1320, 0, first.rate)).unwrap();
        assert_eq!(second.reason, ChangeReason::LatencyRising);
        assert!(
            second.rate > 0.85 * 500.0 && second.rate < 0.9 * 500.0,
            "{second:?}"
        );
    }

    #[test]
    fn high_latency_with_nothing_queued_is_not_cut() {
        let mut e = CapacityEstimator::new(CapacityEstimate::default());
        e.observe(obs(0, 40.0, 0, 0, 1000.0));
        feed(&mut e, 400);
        e.observe(obs(500, 40.0, 400, 0, 1000.0));
        // The latency of requests that completed late, after their queue has drained: every
        // admitted request has completed.
        feed(&mut e, 300);
        let late = e.observe(obs(1000, 400.0, 700, 0, 1200.0)).unwrap();
        assert!(!late.queued);
        assert_ne!(late.reason, ChangeReason::LatencyRising);
        assert!(late.rate >= 1200.0, "{late:?}");
    }

    #[test]
    fn a_binding_limit_grows_at_startup_while_growth_pays_then_cruises_under_it() {
        let mut e = CapacityEstimator::new(CapacityEstimate {
            startup_gain: 0.5,
            ..CapacityEstimate::default()
        });
        e.observe(obs(0, 40.0, 0, 0, 100.0));
        feed(&mut e, 50);
        // Startup: +50 % per adjustment (the gain set here) while it binds at healthy latency.
        let up = e.observe(obs(500, 40.0, 50, 50, 100.0)).unwrap();
        assert_eq!((up.reason, up.rate), (ChangeReason::Headroom, 150.0));
        feed(&mut e, 75);
        let again = e.observe(obs(1000, 40.0, 125, 100, 150.0)).unwrap();
        assert_eq!(
            again.rate, 225.0,
            "the last step raised what is delivered: {again:?}"
        );
        // This step delivered no more: startup ends, the limit cruises just under the most the
        // service delivered.
        feed(&mut e, 76);
        let cruise = e.observe(obs(1500, 40.0, 201, 200, 225.0)).unwrap();
        assert_eq!(cruise.reason, ChangeReason::CapacityEstimate);
        assert!((cruise.rate - 0.95 * 152.0).abs() < 1e-9, "{cruise:?}");
    }

    #[test]
    fn a_slower_service_is_told_from_a_queue_and_its_latency_becomes_the_floor() {
        let mut e = CapacityEstimator::new(CapacityEstimate::default());
        e.observe(obs(0, 40.0, 0, 0, 1000.0));
        feed(&mut e, 150);
        e.observe(obs(500, 40.0, 150, 0, 1000.0));
        // A dependency adds 100 ms: 300/s still complete, 42 are in flight (300/s × 140 ms).
        feed(&mut e, 150);
        let cut = e.observe(obs(1000, 140.0, 342, 0, 1000.0)).unwrap();
        assert_eq!(cut.reason, ChangeReason::LatencyRising);
        feed(&mut e, 150);
        let cut = e.observe(obs(1500, 140.0, 492, 0, cut.rate)).unwrap();
        assert_eq!(cut.reason, ChangeReason::LatencyRising);
        // The cuts took a fifth off the limit; latency did not move and no queue drained: not
        // a queue. The limit is restored and 140 ms is the new floor.
        feed(&mut e, 135);
        let back = e.observe(obs(2000, 140.0, 623, 0, cut.rate)).unwrap();
        assert_eq!(back.reason, ChangeReason::CapacityEstimate);
        assert_eq!(back.rate, 1000.0);
        assert_eq!(e.baseline(), Some(Duration::from_millis(140)));
    }

    #[test]
    fn while_the_inflight_limit_sheds_the_rate_is_what_it_lets_through() {
        let mut e = CapacityEstimator::new(CapacityEstimate::default());
        e.observe(obs(0, 50.0, 0, 0, 2000.0));
        feed(&mut e, 200);
        let mut o = obs(500, 50.0, 200, 0, 2000.0);
        // 200 permits taken, 100 requests shed: the in-flight limit binds at 400/s delivered.
        o.inflight = Some((20, 200, 100));
        let r = e.observe(o).unwrap();
        assert_eq!(r.reason, ChangeReason::CapacityEstimate);
        assert!(
            (r.rate - 400.0 * DEFAULT_CAPACITY_RATE_HEADROOM).abs() < 1e-6,
            "{r:?}"
        );
    }

    #[test]
    fn an_unused_limit_above_what_the_inflight_limit_allows_comes_down_to_it() {
        let mut e = CapacityEstimator::new(CapacityEstimate::default());
        e.observe(obs(0, 50.0, 0, 0, 5000.0));
        feed(&mut e, 100);
        let mut o = obs(500, 50.0, 100, 0, 5000.0);
        // 20 in flight at 50 ms allow 400/s; nothing shed: 1.5 × 400 at most.
        o.inflight = Some((20, 100, 0));
        let r = e.observe(o).unwrap();
        assert!((r.rate - 600.0).abs() < 1e-6, "{r:?}");
    }
}
