//! The simulated service, its load, and the scenarios.

use std::time::Duration;

use crate::rng::Rng;

/// A service with `workers` parallel workers behind a FIFO queue. Each request holds a worker
/// for a service time drawn from a log-normal distribution around `base` (`jitter` is the
/// log-normal σ), with probability `tail_probability` multiplied by `tail_factor` (a heavy
/// tail: GC pauses, cache misses). A slow dependency adds latency without holding a worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceModel {
    /// Parallel workers (the capacity in requests in service).
    pub workers: u32,
    /// Median service time.
    pub base: Duration,
    /// Log-normal σ of the service time (0 = constant).
    pub jitter: f64,
    /// Probability of a heavy-tail request.
    pub tail_probability: f64,
    /// Service-time multiplier of a heavy-tail request.
    pub tail_factor: f64,
}

impl ServiceModel {
    /// Mean service time in seconds (analytic).
    pub fn mean_service_secs(&self) -> f64 {
        let lognormal = self.base.as_secs_f64() * (self.jitter * self.jitter / 2.0).exp();
        lognormal * (1.0 + self.tail_probability * (self.tail_factor - 1.0))
    }

    /// Throughput at full utilisation with `workers` workers, in requests per second.
    pub fn capacity_rps(&self, workers: u32) -> f64 {
        f64::from(workers) / self.mean_service_secs()
    }

    /// Draws one service time.
    pub fn draw(&self, rng: &mut Rng) -> Duration {
        let mut secs = self.base.as_secs_f64() * (self.jitter * rng.normal()).exp();
        if rng.uniform() < self.tail_probability {
            secs *= self.tail_factor;
        }
        Duration::from_secs_f64(secs)
    }

    /// The 99th percentile of the service time alone: the latency of an unloaded service.
    pub fn unloaded_p99(&self) -> Duration {
        self.unloaded_quantile(0.99)
    }

    /// The fraction of requests an unloaded service answers within `threshold` when a
    /// dependency adds `extra` (estimated from the same 20 000 seeded draws): the most any
    /// policy can complete within an SLA.
    pub fn unloaded_within(&self, threshold: Duration, extra: Duration) -> f64 {
        let mut rng = Rng::new(0x5EED);
        let n = 20_000;
        let ok = (0..n)
            .filter(|_| self.draw(&mut rng) + extra <= threshold)
            .count();
        ok as f64 / f64::from(n)
    }

    /// A quantile of the service time alone (estimated from 20 000 seeded draws).
    pub fn unloaded_quantile(&self, q: f64) -> Duration {
        let mut rng = Rng::new(0x5EED);
        let mut v: Vec<Duration> = (0..20_000).map(|_| self.draw(&mut rng)).collect();
        v.sort_unstable();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }
}

/// A piece of the offered load: linear from `start_rps` at `from` to `end_rps` at `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSegment {
    /// Start of the segment.
    pub from: Duration,
    /// End of the segment (exclusive).
    pub to: Duration,
    /// Offered requests per second at `from`.
    pub start_rps: f64,
    /// Offered requests per second at `to`.
    pub end_rps: f64,
}

/// A named stretch of a scenario over which measures are reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Name in the table.
    pub name: &'static str,
    /// Start.
    pub start: Duration,
    /// End (exclusive).
    pub end: Duration,
}

/// Size and length of the scenarios: [`SimScale::full`] for the published numbers,
/// [`SimScale::quick`] for tests in debug builds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimScale {
    /// Workers of the healthy service.
    pub workers: u32,
    /// Length of one phase.
    pub phase: Duration,
}

impl SimScale {
    /// 40 workers (≈ 930 requests per second), 30 s phases.
    pub const fn full() -> Self {
        Self {
            workers: 40,
            phase: Duration::from_secs(30),
        }
    }

    /// 16 workers (≈ 370 requests per second), 15 s phases: the same dynamics, faster to run.
    pub const fn quick() -> Self {
        Self {
            workers: 16,
            phase: Duration::from_secs(15),
        }
    }
}

/// Which measures of the clients a scenario is about (the extra table of
/// [`Evaluation::clients_table`](crate::Evaluation::clients_table)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    /// Capacity only (goodput, latency, convergence): the standard table.
    #[default]
    Capacity,
    /// Fairness among many clients: admitted ÷ fair share over active clients.
    Fairness,
    /// One greedy client ([`GREEDY_CLIENT`]): its admitted share with others active and alone.
    Greedy,
    /// Clients pacing themselves by the decisions they get: their rejections, and how fast the
    /// quota they see falls when capacity drops.
    Pacing,
}

/// The client that asks for more than its share in [`Scenario::greedy_client`].
pub const GREEDY_CLIENT: u32 = 0;

/// A scenario: the service, how its capacity and latency change, and the offered load.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (file names, table).
    pub name: &'static str,
    /// One line describing it.
    pub description: &'static str,
    /// Length of the arrivals (in-flight work then drains for a few seconds).
    pub duration: Duration,
    /// The service at t = 0.
    pub service: ServiceModel,
    /// Changes of the worker count: `(at, workers)`.
    pub workers_changes: Vec<(Duration, u32)>,
    /// Changes of the dependency latency added to every response: `(at, extra)`.
    pub extra_latency: Vec<(Duration, Duration)>,
    /// Offered load.
    pub load: Vec<LoadSegment>,
    /// Phases reported.
    pub phases: Vec<Phase>,
    /// Distinct client keys; arrivals pick one uniformly unless `client_weights` says otherwise.
    pub clients: u32,
    /// Changes of each client's share of the offered load: `(at, weights)`, one weight per
    /// client (relative; they need not sum to 1). Empty: every client offers the same.
    pub client_weights: Vec<(Duration, Vec<f64>)>,
    /// Whether clients pace themselves by the last [`Decision`](tower_adaptive_throttle::Decision)
    /// they received (what the `RateLimit` and `Retry-After` headers tell them): each client is
    /// its own Poisson source, and after a rejection it waits `retry_after` (`reset_after` if
    /// that is zero), after an admission with `remaining == 0` it waits `reset_after`, before
    /// its next request. Policies that give no decision (no limit, the oracle) are not followed.
    pub pacing: bool,
    /// Which measures of the clients the report adds to the capacity table.
    pub focus: Focus,
    /// Fractions of critical, standard and non-essential arrivals.
    pub tier_mix: [f64; 3],
    /// Completions within this latency count as goodput.
    pub sla_warning: Duration,
    /// Latency that must not be exceeded when capacity returns.
    pub sla_critical: Duration,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl Scenario {
    fn base(name: &'static str, description: &'static str, scale: SimScale, phases: u32) -> Self {
        let service = ServiceModel {
            workers: scale.workers,
            base: Duration::from_millis(40),
            jitter: 0.25,
            tail_probability: 0.005,
            tail_factor: 3.0,
        };
        let p = scale.phase.as_secs_f64();
        Self {
            name,
            description,
            duration: secs(p * f64::from(phases)),
            service,
            workers_changes: Vec::new(),
            extra_latency: Vec::new(),
            load: Vec::new(),
            phases: Vec::new(),
            clients: 20,
            client_weights: Vec::new(),
            pacing: false,
            focus: Focus::Capacity,
            tier_mix: [0.1, 0.6, 0.3],
            sla_warning: Duration::from_millis(200),
            sla_critical: Duration::from_millis(500),
        }
    }

    fn constant(mut self, rps: f64) -> Self {
        self.load = vec![LoadSegment {
            from: Duration::ZERO,
            to: self.duration,
            start_rps: rps,
            end_rps: rps,
        }];
        self
    }

    fn phases(mut self, names: &[&'static str], scale: SimScale) -> Self {
        let p = scale.phase.as_secs_f64();
        self.phases = names
            .iter()
            .enumerate()
            .map(|(i, name)| Phase {
                name,
                start: secs(p * i as f64),
                end: secs(p * (i + 1) as f64),
            })
            .collect();
        self
    }

    /// Healthy capacity in requests per second.
    pub fn healthy_capacity(&self) -> f64 {
        self.service.capacity_rps(self.service.workers)
    }

    /// Offered load at `t`, in requests per second.
    pub fn offered_rps(&self, t: Duration) -> f64 {
        self.load
            .iter()
            .find(|s| s.from <= t && t < s.to)
            .map_or(0.0, |s| {
                let span = (s.to - s.from).as_secs_f64();
                let x = if span > 0.0 {
                    (t - s.from).as_secs_f64() / span
                } else {
                    0.0
                };
                s.start_rps + (s.end_rps - s.start_rps) * x
            })
    }

    /// Workers at `t`.
    pub fn workers_at(&self, t: Duration) -> u32 {
        self.workers_changes
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(self.service.workers, |(_, w)| *w)
    }

    /// Dependency latency at `t`.
    pub fn extra_at(&self, t: Duration) -> Duration {
        self.extra_latency
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(Duration::ZERO, |(_, e)| *e)
    }

    /// Each client's relative share of the offered load at `t` (`None`: all equal).
    pub fn weights_at(&self, t: Duration) -> Option<&[f64]> {
        self.client_weights
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, w)| w.as_slice())
    }

    /// Requests per second that `client` offers at `t`.
    pub fn client_rps(&self, client: u32, t: Duration) -> f64 {
        let total = self.offered_rps(t);
        match self.weights_at(t) {
            None => total / f64::from(self.clients.max(1)),
            Some(w) => {
                let sum: f64 = w.iter().sum();
                if sum > 0.0 {
                    total * w.get(client as usize).copied().unwrap_or(0.0) / sum
                } else {
                    0.0
                }
            }
        }
    }

    /// Times at which the capacity changes.
    pub fn capacity_changes(&self) -> Vec<Duration> {
        self.workers_changes.iter().map(|(at, _)| *at).collect()
    }

    /// Offered 2× the capacity throughout.
    pub fn steady_overload(scale: SimScale) -> Self {
        let s = Self::base(
            "steady_overload",
            "offered 2x capacity throughout",
            scale,
            2,
        )
        .phases(&["overload", "overload+"], scale);
        let rps = 2.0 * s.healthy_capacity();
        s.constant(rps)
    }

    /// Offered 1.5× the healthy capacity; half the workers leave after one phase and return
    /// after two.
    pub fn capacity_halving(scale: SimScale) -> Self {
        let mut s = Self::base(
            "capacity_halving",
            "offered 1.5x healthy capacity; capacity halves for the middle phase",
            scale,
            3,
        )
        .phases(&["healthy", "degraded", "recovered"], scale);
        let p = scale.phase;
        s.workers_changes = vec![(p, scale.workers / 2), (p * 2, scale.workers)];
        let rps = 1.5 * s.healthy_capacity();
        s.constant(rps)
    }

    /// Offered 0.7× capacity; a slow dependency adds 100 ms to every response in the middle
    /// phase, with no change of capacity.
    pub fn latency_spike(scale: SimScale) -> Self {
        let mut s = Self::base(
            "latency_spike",
            "offered 0.7x capacity; +100 ms from a slow dependency in the middle phase",
            scale,
            3,
        )
        .phases(&["before", "spike", "after"], scale);
        let p = scale.phase;
        s.extra_latency = vec![(p, Duration::from_millis(100)), (p * 2, Duration::ZERO)];
        let rps = 0.7 * s.healthy_capacity();
        s.constant(rps)
    }

    /// Offered load rising linearly from 0.2× to 2× capacity.
    pub fn slow_ramp(scale: SimScale) -> Self {
        let mut s = Self::base(
            "slow_ramp",
            "offered load ramps from 0.2x to 2x capacity",
            scale,
            3,
        )
        .phases(&["0.2-0.8x", "0.8-1.4x", "1.4-2x"], scale);
        let c = s.healthy_capacity();
        s.load = vec![LoadSegment {
            from: Duration::ZERO,
            to: s.duration,
            start_rps: 0.2 * c,
            end_rps: 2.0 * c,
        }];
        s
    }

    /// Offered 0.5× capacity, with 5× capacity for the first third of the middle phase.
    pub fn flash_crowd(scale: SimScale) -> Self {
        let s = Self::base(
            "flash_crowd",
            "offered 0.5x capacity; a 5x flash crowd for a third of the middle phase",
            scale,
            3,
        )
        .phases(&["before", "crowd", "after"], scale);
        let c = s.healthy_capacity();
        let p = scale.phase;
        let mut s = s.constant(0.5 * c);
        let crowd_end = p + p / 3;
        s.load = vec![
            LoadSegment {
                from: Duration::ZERO,
                to: p,
                start_rps: 0.5 * c,
                end_rps: 0.5 * c,
            },
            LoadSegment {
                from: p,
                to: crowd_end,
                start_rps: 5.0 * c,
                end_rps: 5.0 * c,
            },
            LoadSegment {
                from: crowd_end,
                to: s.duration,
                start_rps: 0.5 * c,
                end_rps: 0.5 * c,
            },
        ];
        s
    }

    /// Offered 0.6× capacity with realistic latency noise (σ 0.5, 2 % of requests 6× slower):
    /// nothing to protect, so a good throttle admits everything and its limit does not drift.
    pub fn noisy_no_overload(scale: SimScale) -> Self {
        let mut s = Self::base(
            "noisy_no_overload",
            "offered 0.6x capacity; heavy latency noise, no overload",
            scale,
            3,
        )
        .phases(&["first", "second", "third"], scale);
        s.service.jitter = 0.5;
        s.service.tail_probability = 0.02;
        s.service.tail_factor = 6.0;
        let rps = 0.6 * s.healthy_capacity();
        s.constant(rps)
    }

    /// 200 clients with equal demand offering 3× the capacity in total: does every active
    /// client get its fair share?
    pub fn many_clients(scale: SimScale) -> Self {
        let mut s = Self::base(
            "many_clients",
            "200 clients with equal demand offer 3x capacity in total",
            scale,
            2,
        )
        .phases(&["overload", "overload+"], scale);
        s.clients = 200;
        s.focus = Focus::Fairness;
        let rps = 3.0 * s.healthy_capacity();
        s.constant(rps)
    }

    /// 21 clients: [`GREEDY_CLIENT`] offers 10× its fair share (a 21st of the capacity) and the
    /// 20 others 1.5× theirs (1.9× capacity in total) for one phase; then the greedy client is
    /// alone, still at 10× its share (0.48× capacity). It should get no more than its share
    /// while the others are active, and everything it asks while the capacity is idle.
    pub fn greedy_client(scale: SimScale) -> Self {
        let mut s = Self::base(
            "greedy_client",
            "one client at 10x its fair share among 20 at 1.5x theirs; then alone",
            scale,
            2,
        )
        .phases(&["with others", "alone"], scale);
        let others = 20u32;
        s.clients = others + 1;
        s.focus = Focus::Greedy;
        let share = s.healthy_capacity() / f64::from(s.clients);
        let mut with_others = vec![1.5; s.clients as usize];
        with_others[GREEDY_CLIENT as usize] = 10.0;
        let mut alone = vec![0.0; s.clients as usize];
        alone[GREEDY_CLIENT as usize] = 1.0;
        let p = scale.phase;
        s.client_weights = vec![(Duration::ZERO, with_others), (p, alone)];
        let together = share * (10.0 + 1.5 * f64::from(others));
        s.load = vec![
            LoadSegment {
                from: Duration::ZERO,
                to: p,
                start_rps: together,
                end_rps: together,
            },
            LoadSegment {
                from: p,
                to: s.duration,
                start_rps: 10.0 * share,
                end_rps: 10.0 * share,
            },
        ];
        s
    }

    /// [`capacity_halving`](Self::capacity_halving) with clients that pace themselves by the
    /// decisions they receive ([`pacing`](Self::pacing)): they intend 1.5× the healthy
    /// capacity, and should see almost no rejections if the headers tell the truth.
    pub fn paced_halving(scale: SimScale) -> Self {
        let mut s = Self::capacity_halving(scale);
        s.name = "paced_halving";
        s.description = "20 clients pace themselves by the decisions they get (remaining, \
            reset_after, retry_after); they intend 1.5x healthy capacity; capacity halves for \
            the middle phase";
        s.pacing = true;
        s.focus = Focus::Pacing;
        s
    }

    /// The scenarios about clients: many clients, a greedy client, pacing clients.
    pub fn client_scenarios(scale: SimScale) -> Vec<Self> {
        vec![
            Self::many_clients(scale),
            Self::greedy_client(scale),
            Self::paced_halving(scale),
        ]
    }

    /// The scenario named `name`, of [`all`](Self::all) or
    /// [`client_scenarios`](Self::client_scenarios).
    pub fn by_name(name: &str, scale: SimScale) -> Option<Self> {
        Self::all(scale)
            .into_iter()
            .chain(Self::client_scenarios(scale))
            .find(|s| s.name == name)
    }

    /// Every capacity scenario, in the order of the report.
    pub fn all(scale: SimScale) -> Vec<Self> {
        vec![
            Self::steady_overload(scale),
            Self::capacity_halving(scale),
            Self::latency_spike(scale),
            Self::slow_ramp(scale),
            Self::flash_crowd(scale),
            Self::noisy_no_overload(scale),
        ]
    }
}
