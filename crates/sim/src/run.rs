//! The event loop: one policy through one scenario, in virtual time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use tower_adaptive_throttle::{
    AdaptiveThrottle, Axis, ConcurrencyPermit, Decision, ManualClock, Tier,
};

use crate::model::Scenario;
use crate::policy::{Keying, Path, Policy, PolicyKind};
use crate::rng::Rng;

/// Width of a timeline bin.
pub const BIN: Duration = Duration::from_millis(500);
/// How long in-flight work may drain after the last arrival.
const DRAIN: Duration = Duration::from_secs(5);
/// Requests admitted from this long after a phase starts count as settled (`settled_p99`,
/// [`RunReport::keys`]).
pub const SETTLE: Duration = Duration::from_secs(5);

/// Measures of one phase of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhaseStats {
    /// Phase name.
    pub name: &'static str,
    /// Arrivals.
    pub offered: u64,
    /// Admitted.
    pub admitted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Completed within `sla_warning` (goodput).
    pub good: u64,
    /// Critical arrivals.
    pub critical_offered: u64,
    /// Critical completions within `sla_warning`.
    pub critical_good: u64,
    /// Non-essential arrivals.
    pub non_essential_offered: u64,
    /// Non-essential rejections.
    pub non_essential_rejected: u64,
    /// Median latency of admitted requests that completed.
    pub p50: Duration,
    /// 99th percentile latency of admitted requests that completed.
    pub p99: Duration,
    /// 99th percentile latency of requests admitted from 5 s after the phase start.
    pub settled_p99: Duration,
    /// Largest latency.
    pub max: Duration,
}

impl PhaseStats {
    /// Rejected / offered.
    pub fn rejection_rate(&self) -> f64 {
        ratio(self.rejected, self.offered)
    }

    /// Critical requests completed within `sla_warning` / critical offered.
    pub fn critical_success(&self) -> f64 {
        ratio(self.critical_good, self.critical_offered)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// One timeline bin ([`BIN`] wide).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bin {
    /// Start of the bin, seconds.
    pub t: f64,
    /// Rate-axis limit at the end of the bin (admissions per window per key), if any.
    pub rate_limit: Option<u32>,
    /// Concurrency limit at the end of the bin, if any.
    pub concurrency_limit: Option<u32>,
    /// Arrivals.
    pub offered: u32,
    /// Rejections.
    pub rejected: u32,
    /// Completions within `sla_warning`.
    pub good: u32,
    /// 90th percentile latency of completions in the bin.
    pub p90: Option<Duration>,
    /// 99th percentile latency of completions in the bin.
    pub p99: Option<Duration>,
    /// 99th percentile latency of completions in this bin and the three before (a trailing
    /// 2 s window: enough samples that the service's own heavy tail does not dominate).
    pub p99_2s: Option<Duration>,
    /// Requests in flight (queued or in service or waiting on the dependency) at the end.
    pub inflight: u32,
    /// Mean `limit` of the rate-axis decisions returned to clients in the bin (admissions per
    /// window of the key asked about: the quota a `RateLimit-Policy` header announces), if any.
    pub seen_limit: Option<f64>,
}

/// What one client offered and got in the settled part of a phase (arrivals from [`SETTLE`]
/// after its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyStats {
    /// Arrivals.
    pub offered: u32,
    /// Admitted.
    pub admitted: u32,
    /// Completed within `sla_warning`.
    pub good: u32,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Policy name.
    pub policy: String,
    /// Whether the policy adapts.
    pub adaptive: bool,
    /// Keys of the rate axis (1 for a shared key, the clients for one key per client; 0 without
    /// a throttle).
    pub rate_keys: u32,
    /// The rate axis's window (zero without a throttle).
    pub window: Duration,
    /// Per phase.
    pub phases: Vec<PhaseStats>,
    /// Per bin.
    pub bins: Vec<Bin>,
    /// Smallest ratio, from 5 s on, of each limit to what the offered load needs at unloaded
    /// latency (per key per window for the rate axis; `rate × mean latency` in flight for the
    /// concurrency axis); `None` without an adaptive limit.
    pub min_limit_to_need: Option<f64>,
    /// Per phase, per client: what each client offered and got once the phase settled.
    pub keys: Vec<Vec<KeyStats>>,
}

impl RunReport {
    /// Completions within `sla_warning` over all phases.
    pub fn total_good(&self) -> u64 {
        self.phases.iter().map(|p| p.good).sum()
    }
}

struct Req {
    arrival: Duration,
    client: u32,
    tier: Tier,
    phase: Option<usize>,
    permit: Option<ConcurrencyPermit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    ClientArrival(u32),
    ServiceDone(usize),
    ResponseDone(usize),
    Workers(u32),
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How long a pacing client waits after `d` before its next request: `retry_after` (or
/// `reset_after` if that is zero) after a rejection, `reset_after` after an admission that left
/// nothing, otherwise nothing.
pub fn pause_after(d: &Decision) -> Duration {
    if !d.allowed {
        if d.retry_after > Duration::ZERO {
            d.retry_after
        } else {
            d.reset_after
        }
    } else if d.remaining == 0 {
        d.reset_after
    } else {
        Duration::ZERO
    }
}

/// A weighted pick in `[0, weights.len())` from one uniform draw `u`.
fn pick(weights: &[f64], u: f64) -> u32 {
    let total: f64 = weights.iter().sum();
    let mut x = u * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i as u32;
        }
        x -= w;
    }
    // Rounding: the last client with a positive weight.
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0) as u32
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(rank).1
}

/// Runs `policy` through `scenario` with `seed`. Deterministic: the same inputs give the same
/// report.
pub fn run(scenario: &Scenario, policy: &Policy, seed: u64) -> RunReport {
    let clock = ManualClock::new();
    let (throttle, keying, path) = match &policy.kind {
        PolicyKind::Throttle {
            config,
            keying,
            path,
        } => (
            Some(AdaptiveThrottle::with_clock(config.clone(), clock.clone())),
            *keying,
            *path,
        ),
        _ => (None, Keying::Shared, Path::Acquire),
    };
    let mut arrivals = Rng::new(seed);
    let mut service = Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut heap: BinaryHeap<Reverse<(u64, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<_>, at: Duration, ev: Ev| {
        seq += 1;
        heap.push(Reverse((ns(at), seq, ev)));
    };
    for (at, w) in &scenario.workers_changes {
        push(&mut heap, *at, Ev::Workers(*w));
    }
    if scenario.pacing {
        // One Poisson source per client.
        for c in 0..scenario.clients {
            let rate = scenario.client_rps(c, Duration::ZERO);
            let first = if rate > 0.0 {
                Duration::from_secs_f64(arrivals.exponential(rate))
            } else {
                Duration::from_millis(10)
            };
            push(&mut heap, first, Ev::ClientArrival(c));
        }
    } else {
        push(&mut heap, Duration::ZERO, Ev::Arrival);
    }

    let n_bins = ((scenario.duration + DRAIN).as_nanos() / BIN.as_nanos()) as usize + 1;
    let mut bins: Vec<Bin> = (0..n_bins)
        .map(|i| Bin {
            t: (BIN * i as u32).as_secs_f64(),
            ..Bin::default()
        })
        .collect();
    let mut bin_lat: Vec<Vec<Duration>> = vec![Vec::new(); n_bins];
    let mut phases: Vec<PhaseStats> = scenario
        .phases
        .iter()
        .map(|p| PhaseStats {
            name: p.name,
            ..PhaseStats::default()
        })
        .collect();
    let mut phase_lat: Vec<Vec<Duration>> = vec![Vec::new(); phases.len()];
    let mut settled_lat: Vec<Vec<Duration>> = vec![Vec::new(); phases.len()];
    let mut keys: Vec<Vec<KeyStats>> =
        vec![vec![KeyStats::default(); scenario.clients.max(1) as usize]; phases.len()];
    let mut seen: Vec<(f64, u32)> = vec![(0.0, 0); n_bins];
    let settled = |p: usize, t: Duration| t >= scenario.phases[p].start + SETTLE;

    let mut reqs: Vec<Option<Req>> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut busy = 0u32;
    let mut workers = scenario.service.workers;
    let mut inflight = 0u32;
    let mut next_bin = 0usize;
    let mut min_ratio: Option<f64> = None;
    let end = scenario.duration + DRAIN;
    let mean_latency =
        |t: Duration| scenario.service.mean_service_secs() + scenario.extra_at(t).as_secs_f64();

    while let Some(Reverse((at_ns, _, ev))) = heap.pop() {
        let now = Duration::from_nanos(at_ns);
        if now > end {
            break;
        }
        // Close the bins that ended before this event.
        while next_bin < n_bins && BIN * (next_bin as u32 + 1) <= now {
            let b = &mut bins[next_bin];
            b.inflight = inflight;
            if let Some(t) = &throttle {
                let t_end = BIN * (next_bin as u32 + 1);
                b.rate_limit = Some(t.current_limit());
                // The two-step path never consults the concurrency axis.
                b.concurrency_limit = match path {
                    Path::Acquire => t.concurrency_stats().map(|c| c.limit),
                    Path::TwoStep => None,
                };
                if t_end >= Duration::from_secs(5) && t_end <= scenario.duration && policy.adaptive
                {
                    let offered = scenario.offered_rps(t_end - BIN);
                    let window = t.config().window().as_secs_f64();
                    let mut need_ratio = f64::INFINITY;
                    if t.config().max_limit() < 1_000_000 {
                        let keys = match keying {
                            Keying::Shared => 1.0,
                            Keying::PerClient => f64::from(scenario.clients),
                        };
                        let need = offered / keys * window;
                        if need > 0.0 {
                            need_ratio = need_ratio.min(f64::from(t.current_limit()) / need);
                        }
                    }
                    if let Some(c) = b.concurrency_limit {
                        let need = offered * mean_latency(t_end);
                        if need > 0.0 {
                            need_ratio = need_ratio.min(f64::from(c) / need);
                        }
                    }
                    if need_ratio.is_finite() {
                        min_ratio = Some(min_ratio.map_or(need_ratio, |m: f64| m.min(need_ratio)));
                    }
                }
            }
            next_bin += 1;
        }
        clock.set(now);
        match ev {
            Ev::Arrival | Ev::ClientArrival(_) => {
                if now >= scenario.duration {
                    continue;
                }
                let client = if let Ev::ClientArrival(c) = ev {
                    if scenario.client_rps(c, now) <= 0.0 {
                        push(&mut heap, now + Duration::from_millis(10), ev);
                        continue;
                    }
                    c
                } else {
                    let rate = scenario.offered_rps(now);
                    let next = if rate > 0.0 {
                        now + Duration::from_secs_f64(arrivals.exponential(rate))
                    } else {
                        now + Duration::from_millis(10)
                    };
                    push(&mut heap, next, Ev::Arrival);
                    if rate <= 0.0 {
                        continue;
                    }
                    match scenario.weights_at(now) {
                        None => arrivals.below(scenario.clients),
                        Some(w) => pick(w, arrivals.uniform()),
                    }
                };
                let u = arrivals.uniform();
                let tier = if u < scenario.tier_mix[0] {
                    Tier::Critical
                } else if u < scenario.tier_mix[0] + scenario.tier_mix[1] {
                    Tier::Standard
                } else {
                    Tier::NonEssential
                };
                let phase = scenario
                    .phases
                    .iter()
                    .position(|p| p.start <= now && now < p.end);
                let bin = (now.as_nanos() / BIN.as_nanos()) as usize;
                bins[bin].offered += 1;
                if let Some(p) = phase {
                    phases[p].offered += 1;
                    if settled(p, now) {
                        keys[p][client as usize].offered += 1;
                    }
                    match tier {
                        Tier::Critical => phases[p].critical_offered += 1,
                        Tier::NonEssential => phases[p].non_essential_offered += 1,
                        Tier::Standard => {}
                    }
                }
                // The admission, and the decision the client is told (none from no limit and
                // the oracle).
                let (admission, decision): (Result<Option<ConcurrencyPermit>, ()>, _) =
                    match &policy.kind {
                        PolicyKind::Unlimited => (Ok(None), None),
                        PolicyKind::Oracle => {
                            if busy + (queue.len() as u32) < workers {
                                (Ok(None), None)
                            } else {
                                (Err(()), None)
                            }
                        }
                        PolicyKind::Throttle { .. } => {
                            let t = throttle.as_ref().expect("throttle policy");
                            let key = match keying {
                                Keying::Shared => 0,
                                Keying::PerClient => client,
                            };
                            match path {
                                Path::Acquire => match t.acquire(&key, tier) {
                                    Ok(permit) => {
                                        let d = *permit.decision();
                                        (Ok(Some(permit)), Some(d))
                                    }
                                    Err(d) => (Err(()), Some(d)),
                                },
                                Path::TwoStep => {
                                    let d = t.check(&key, tier);
                                    (if d.allowed { Ok(None) } else { Err(()) }, Some(d))
                                }
                            }
                        }
                    };
                if let Some(d) = decision.filter(|d| d.axis == Some(Axis::Rate)) {
                    seen[bin].0 += f64::from(d.limit);
                    seen[bin].1 += 1;
                }
                if let Ev::ClientArrival(c) = ev {
                    let rate = scenario.client_rps(c, now);
                    let gap = Duration::from_secs_f64(arrivals.exponential(rate));
                    let wait = decision.as_ref().map_or(Duration::ZERO, pause_after);
                    push(&mut heap, now + gap.max(wait), ev);
                }
                match admission {
                    Err(()) => {
                        bins[bin].rejected += 1;
                        if let Some(p) = phase {
                            phases[p].rejected += 1;
                            if tier == Tier::NonEssential {
                                phases[p].non_essential_rejected += 1;
                            }
                        }
                    }
                    Ok(permit) => {
                        if let Some(p) = phase {
                            phases[p].admitted += 1;
                            if settled(p, now) {
                                keys[p][client as usize].admitted += 1;
                            }
                        }
                        inflight += 1;
                        let id = reqs.len();
                        reqs.push(Some(Req {
                            arrival: now,
                            client,
                            tier,
                            phase,
                            permit,
                        }));
                        if busy < workers {
                            busy += 1;
                            let d = scenario.service.draw(&mut service);
                            push(&mut heap, now + d, Ev::ServiceDone(id));
                        } else {
                            queue.push_back(id);
                        }
                    }
                }
            }
            Ev::ServiceDone(id) => {
                busy -= 1;
                push(
                    &mut heap,
                    now + scenario.extra_at(now),
                    Ev::ResponseDone(id),
                );
                while busy < workers {
                    let Some(next) = queue.pop_front() else { break };
                    busy += 1;
                    let d = scenario.service.draw(&mut service);
                    push(&mut heap, now + d, Ev::ServiceDone(next));
                }
            }
            Ev::ResponseDone(id) => {
                let Some(mut req) = reqs[id].take() else {
                    continue;
                };
                inflight -= 1;
                let latency = now - req.arrival;
                if let Some(t) = &throttle {
                    t.record_response(latency);
                }
                if let Some(permit) = req.permit.take() {
                    permit.success();
                }
                let good = latency <= scenario.sla_warning;
                let bin = (now.as_nanos() / BIN.as_nanos()) as usize;
                if bin < n_bins {
                    bins[bin].good += u32::from(good);
                    bin_lat[bin].push(latency);
                }
                if let Some(p) = req.phase {
                    let ph = &mut phases[p];
                    ph.good += u64::from(good);
                    if req.tier == Tier::Critical {
                        ph.critical_good += u64::from(good);
                    }
                    ph.max = ph.max.max(latency);
                    phase_lat[p].push(latency);
                    if settled(p, req.arrival) {
                        settled_lat[p].push(latency);
                        keys[p][req.client as usize].good += u32::from(good);
                    }
                }
            }
            Ev::Workers(w) => {
                workers = w;
                while busy < workers {
                    let Some(next) = queue.pop_front() else { break };
                    busy += 1;
                    let d = scenario.service.draw(&mut service);
                    push(&mut heap, now + d, Ev::ServiceDone(next));
                }
            }
        }
    }
    // Work still queued at the end is abandoned: its permits are cancelled (no samples).
    drop(reqs);
    for i in 0..n_bins {
        let mut pooled: Vec<Duration> = bin_lat[i.saturating_sub(3)..=i].concat();
        if !pooled.is_empty() {
            bins[i].p99_2s = Some(quantile(&mut pooled, 0.99));
        }
    }
    for (b, (sum, n)) in bins.iter_mut().zip(&seen) {
        if *n > 0 {
            b.seen_limit = Some(sum / f64::from(*n));
        }
    }
    for (b, lat) in bins.iter_mut().zip(bin_lat.iter_mut()) {
        if !lat.is_empty() {
            b.p90 = Some(quantile(lat, 0.9));
            b.p99 = Some(quantile(lat, 0.99));
        }
    }
    for ((ph, lat), settled) in phases
        .iter_mut()
        .zip(phase_lat.iter_mut())
        .zip(settled_lat.iter_mut())
    {
        ph.p50 = quantile(lat, 0.5);
        ph.p99 = quantile(lat, 0.99);
        ph.settled_p99 = quantile(settled, 0.99);
    }
    bins.truncate(next_bin.max(1));
    RunReport {
        policy: policy.name.clone(),
        adaptive: policy.adaptive,
        rate_keys: if throttle.is_some() {
            keying.keys(scenario)
        } else {
            0
        },
        window: throttle
            .as_ref()
            .map_or(Duration::ZERO, |t| t.config().window()),
        phases,
        bins,
        min_limit_to_need: min_ratio,
        keys,
    }
}
