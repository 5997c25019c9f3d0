//! The concurrency axis: an adaptive limit on requests in flight.
//!
//! This is the capacity guard: a limit on work in flight is self-clocking — when
//! the service slows down, fewer slots free up, so admissions slow down at once, before any
//! latency statistic has moved. The rate axis then serves per-client fairness. Both may run in
//! one throttle: [`AdaptiveThrottle::acquire`](crate::AdaptiveThrottle::acquire) checks the
//! concurrency axis, then the rate axis, and returns a [`ConcurrencyPermit`].
//!
//! - Keyless: one limit for the whole throttle.
//! - The limit moves with [`Gradient2`] (Netflix's formula) or [`Aimd`], fed one sample per
//!   completed request or one per window ([`SampleAggregation`](crate::config::SampleAggregation)); optionally, an Envoy-style
//!   [`MinRttProbe`](crate::config::MinRttProbe) re-measures the no-load RTT with a seeded jitter.
//! - A [`ConcurrencyPermit`] is taken on admission and releases its slot when dropped (RAII).
//!   Its [`Outcome`] decides what the algorithm learns: a success is a sample, an overload (an
//!   error, a 5xx, a timeout) is a drop, and a permit dropped without an outcome — a cancelled
//!   request — releases its slot and teaches nothing.
//! - [`TierShares`](crate::config::TierShares): critical work may use the whole limit, standard and non-essential work only
//!   a share of it, so saturation sheds non-essential work first.

mod algorithm;
mod deferred;

use algorithm::{Aimd, Gradient2, LimitSample};
use deferred::{Deferral, DeferredReleases, Released};

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::{ConcurrencyAlgorithm, ConcurrencyConfig, SampleAggregation};
use crate::decision::{Axis, Decision, Outcome, RejectReason, Tier};
use crate::util::splitmix64;
use crate::util::stripes::Stripes;

/// A snapshot of the concurrency axis.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ConcurrencyStats {
    /// The in-flight limit now (critical tier).
    pub limit: u32,
    /// The limit's real-valued estimate.
    pub estimate: f64,
    /// Requests in flight now.
    pub inflight: u32,
    /// Limits of critical, standard and non-essential requests.
    pub tier_limits: [u32; 3],
    /// Admissions per tier (critical, standard, non-essential).
    pub admitted: [u64; 3],
    /// Rejections per tier (critical, standard, non-essential).
    pub rejected: [u64; 3],
    /// Samples fed to the algorithm (successes and drops).
    pub samples: u64,
    /// Drops among them.
    pub drops: u64,
    /// Permits released without a sample (cancelled or ignored).
    pub ignored: u64,
    /// Updates of the limit (one per sample, or one per complete window).
    pub updates: u64,
    /// The algorithm's baseline RTT (Gradient2's long RTT, AIMD's no-load RTT).
    pub baseline_rtt: Option<Duration>,
    /// The latest sample's RTT.
    pub last_rtt: Option<Duration>,
    /// Gradient2's latest gradient (1.0 for AIMD).
    pub gradient: f64,
    /// Whether a minRTT probe is running.
    pub probing: bool,
    /// Probes completed.
    pub probes: u64,
}

#[derive(Debug, Clone)]
enum Algo {
    Gradient2(Gradient2),
    Aimd(Aimd),
}

impl Algo {
    fn estimate(&self) -> f64 {
        match self {
            Self::Gradient2(g) => g.estimate(),
            Self::Aimd(a) => a.estimate(),
        }
    }

    fn set_estimate(&mut self, v: f64) {
        match self {
            Self::Gradient2(g) => g.set_estimate(v),
            Self::Aimd(a) => a.set_estimate(v),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Window {
    start: Option<Duration>,
    count: u32,
    sum_ms: f64,
    min_ms: f64,
    max_inflight: u32,
    dropped: bool,
}

#[derive(Debug, Clone)]
enum Probe {
    Off,
    Waiting {
        next_at: Duration,
    },
    Active {
        started_at: Duration,
        saved: f64,
        rtts: Vec<f64>,
    },
}

#[derive(Debug)]
struct State {
    algo: Algo,
    window: Window,
    probe: Probe,
    rng: u64,
    last_rtt: Option<Duration>,
    samples: u64,
    drops: u64,
    ignored: u64,
    updates: u64,
    probes: u64,
}

struct Shared {
    cfg: ConcurrencyConfig,
    clock: Arc<dyn Clock>,
    inflight: AtomicU32,
    limit: AtomicU32,
    /// When the next probe is due, in nanoseconds (`u64::MAX`: none), so `try_acquire` only
    /// takes the lock when one is.
    probe_due: AtomicU64,
    /// Per tier, striped per thread (every admission bumps one).
    admitted: Stripes<[AtomicU64; 3]>,
    rejected: [AtomicU64; 3],
    state: Mutex<State>,
    /// Releases waiting to be folded into `state` (see `deferred`).
    deferred: DeferredReleases,
}

impl Shared {
    /// The state, with every waiting release folded in: how everything reads or moves it.
    fn lock_state(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut st = self.state.lock();
        self.deferred.fold_into(&mut st);
        st
    }
}

impl State {
    /// Counts one completed request's sample.
    fn count_sample(&mut self, rtt: Duration, dropped: bool) {
        self.samples += 1;
        self.drops += u64::from(dropped);
        self.last_rtt = Some(rtt);
    }
}

impl Window {
    /// Adds one sample, starting the window if it is the first.
    fn add(&mut self, now: Duration, rtt: Duration, inflight: u32, dropped: bool) {
        self.start.get_or_insert(now);
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        self.min_ms = if self.count == 0 {
            rtt_ms
        } else {
            self.min_ms.min(rtt_ms)
        };
        self.count += 1;
        self.sum_ms += rtt_ms;
        self.max_inflight = self.max_inflight.max(inflight);
        self.dropped |= dropped;
    }
}

/// The adaptive in-flight limit. Cheap to clone; clones share every piece of state.
///
/// Usually reached through [`AdaptiveThrottle::acquire`], which also checks the rate axis;
/// usable on its own for non-HTTP work.
#[derive(Clone)]
pub(crate) struct ConcurrencyLimiter {
    shared: Arc<Shared>,
}

impl fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimiter")
            .field("limit", &self.limit())
            .field("inflight", &self.inflight())
            .finish_non_exhaustive()
    }
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Critical => 0,
        Tier::Standard => 1,
        Tier::NonEssential => 2,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl ConcurrencyLimiter {
    /// A limiter on the given clock, for example a [`ManualClock`](crate::ManualClock).
    #[cfg(test)]
    pub(crate) fn with_clock(cfg: ConcurrencyConfig, clock: impl Clock) -> Self {
        Self::with_shared_clock(cfg, Arc::new(clock))
    }

    pub(crate) fn with_shared_clock(cfg: ConcurrencyConfig, clock: Arc<dyn Clock>) -> Self {
        let mut rng = cfg.jitter_seed.unwrap_or_else(crate::util::random_seed);
        let algo = match cfg.algorithm {
            ConcurrencyAlgorithm::Gradient2(p) => {
                Algo::Gradient2(Gradient2::new(p, cfg.initial_limit))
            }
            ConcurrencyAlgorithm::Aimd(p) => Algo::Aimd(Aimd::new(p, cfg.initial_limit)),
        };
        let now = clock.now();
        let probe = match cfg.min_rtt_probe {
            None => Probe::Off,
            // The first probe runs at once: the baseline is measured before the limit moves.
            Some(_) => Probe::Waiting { next_at: now },
        };
        let probe_due = match probe {
            Probe::Waiting { next_at } => nanos(next_at),
            _ => u64::MAX,
        };
        let _ = splitmix64(&mut rng);
        Self {
            shared: Arc::new(Shared {
                inflight: AtomicU32::new(0),
                limit: AtomicU32::new(cfg.initial_limit),
                probe_due: AtomicU64::new(probe_due),
                admitted: Default::default(),
                rejected: Default::default(),
                state: Mutex::new(State {
                    algo,
                    window: Window::default(),
                    probe,
                    rng,
                    last_rtt: None,
                    samples: 0,
                    drops: 0,
                    ignored: 0,
                    updates: 0,
                    probes: 0,
                }),
                deferred: DeferredReleases::new(),
                clock,
                cfg,
            }),
        }
    }

    /// The in-flight limit now (what critical requests are checked against).
    pub(crate) fn limit(&self) -> u32 {
        self.shared.limit.load(Ordering::Acquire)
    }

    /// Requests in flight now.
    pub(crate) fn inflight(&self) -> u32 {
        self.shared.inflight.load(Ordering::Acquire)
    }

    /// Permits ever handed out (every tier).
    pub(crate) fn admitted_total(&self) -> u64 {
        self.admitted_by_tier().iter().sum()
    }

    /// Permits ever handed out, per tier (summed over the stripes).
    fn admitted_by_tier(&self) -> [u64; 3] {
        let mut total = [0; 3];
        for stripe in self.shared.admitted.iter() {
            for (t, a) in total.iter_mut().zip(stripe) {
                *t += a.load(Ordering::Relaxed);
            }
        }
        total
    }

    /// Requests ever shed (every tier).
    pub(crate) fn rejected_total(&self) -> u64 {
        self.shared
            .rejected
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// The in-flight count below which a request of `tier` is admitted:
    /// `max(1, floor(limit × share))`.
    pub(crate) fn tier_limit(&self, tier: Tier) -> u32 {
        tier_cap(self.limit(), self.shared.cfg.tier_shares.of(tier))
    }

    /// Takes a slot for a request of `tier`, or explains the refusal: a [`Decision`] with
    /// `axis = Concurrency`, `reason = ConcurrencyLimitExceeded` and `retry_after` = the latest
    /// RTT (at least 1 ms).
    ///
    /// # Errors
    ///
    /// The denial, when the work in flight has reached the tier's limit.
    #[cfg(test)]
    pub(crate) fn try_acquire(&self, tier: Tier) -> Result<ConcurrencyPermit, Decision> {
        self.try_acquire_at(tier, self.shared.clock.now())
    }

    /// [`try_acquire`](Self::try_acquire) at `now`, just read from the limiter's clock (the
    /// throttle's, which reads it once per request).
    pub(crate) fn try_acquire_at(
        &self,
        tier: Tier,
        now: Duration,
    ) -> Result<ConcurrencyPermit, Decision> {
        let s = &*self.shared;
        if nanos(now) >= s.probe_due.load(Ordering::Acquire) {
            self.with_state(|st| self.advance_probe(st, now));
        }
        let cap = self.tier_limit(tier);
        let mut current = s.inflight.load(Ordering::Acquire);
        loop {
            if current >= cap {
                s.rejected[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
                return Err(self.denial(tier, cap));
            }
            match s.inflight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        s.admitted.local()[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
        let decision = Decision {
            allowed: true,
            limit: cap,
            remaining: cap.saturating_sub(current + 1),
            retry_after: Duration::ZERO,
            reset_after: Duration::ZERO,
            reason: None,
            tier,
            rtt: None,
            gradient: 0.0,
            axis: Some(Axis::Concurrency),
        };
        Ok(ConcurrencyPermit {
            slot: Some(Slot {
                limiter: self.shared.clone(),
                started_at: now,
                inflight_at_start: current + 1,
                outcome: None,
            }),
            decision,
        })
    }

    fn denial(&self, tier: Tier, cap: u32) -> Decision {
        let last = self.shared.lock_state().last_rtt;
        Decision {
            allowed: false,
            limit: cap,
            remaining: 0,
            retry_after: last.unwrap_or_default().max(Duration::from_millis(1)),
            reset_after: Duration::ZERO,
            reason: Some(RejectReason::ConcurrencyLimitExceeded),
            tier,
            rtt: last,
            gradient: 0.0,
            axis: Some(Axis::Concurrency),
        }
    }

    /// A snapshot of the limit, the counters and the algorithm's state.
    pub(crate) fn stats(&self) -> ConcurrencyStats {
        let s = &*self.shared;
        let limit = self.limit();
        let shares = s.cfg.tier_shares;
        let st = s.lock_state();
        let (baseline, gradient) = match &st.algo {
            Algo::Gradient2(g) => (
                (g.long_rtt_ms() > 0.0).then(|| Duration::from_secs_f64(g.long_rtt_ms() / 1000.0)),
                g.last_gradient(),
            ),
            Algo::Aimd(a) => (
                a.noload_rtt_ms()
                    .map(|v| Duration::from_secs_f64(v / 1000.0)),
                1.0,
            ),
        };
        let load = |a: &[AtomicU64; 3]| a.each_ref().map(|c| c.load(Ordering::Relaxed));
        ConcurrencyStats {
            limit,
            estimate: st.algo.estimate(),
            inflight: self.inflight(),
            tier_limits: Tier::ALL.map(|t| tier_cap(limit, shares.of(t))),
            admitted: self.admitted_by_tier(),
            rejected: load(&s.rejected),
            samples: st.samples,
            drops: st.drops,
            ignored: st.ignored,
            updates: st.updates,
            baseline_rtt: baseline,
            last_rtt: st.last_rtt,
            gradient,
            probing: matches!(st.probe, Probe::Active { .. }),
            probes: st.probes,
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.shared.lock_state();
        let result = f(&mut st);
        self.shared
            .deferred
            .mirror(&st, self.shared.cfg.aggregation);
        result
    }

    /// Starts a due probe.
    fn advance_probe(&self, st: &mut State, now: Duration) {
        let s = &*self.shared;
        let (Some(p), Probe::Waiting { next_at }) = (s.cfg.min_rtt_probe, &st.probe) else {
            return;
        };
        if now < *next_at {
            return;
        }
        let saved = st.algo.estimate();
        st.probe = Probe::Active {
            started_at: now,
            saved,
            // Grown as samples arrive, not reserved: the count may be large.
            rtts: Vec::with_capacity((p.request_count as usize).min(1024)),
        };
        st.window = Window::default();
        s.probe_due.store(u64::MAX, Ordering::Release);
        let pinned = p.probe_limit.min(saved.floor() as u32).max(1);
        s.limit.store(pinned, Ordering::Release);
    }

    /// Releases one slot; `sample` is `Some((rtt, dropped))` unless the request is ignored.
    fn release(
        shared: &Shared,
        started_at: Duration,
        inflight: u32,
        outcome: Option<Outcome>,
        now: Option<Duration>,
    ) {
        shared.inflight.fetch_sub(1, Ordering::AcqRel);
        let dropped = match outcome {
            Some(Outcome::Success) => false,
            Some(Outcome::Overload) => true,
            Some(Outcome::Ignore) | None => {
                shared.deferred.ignored();
                return;
            }
        };
        let now = now.unwrap_or_else(|| shared.clock.now());
        let released = Released {
            started_at,
            now,
            inflight,
            dropped,
        };
        match shared.deferred.offer(released) {
            Deferral::Waiting => return,
            // Folded in by `lock_state`; nothing else to do.
            Deferral::Full => {
                let st = shared.lock_state();
                shared.deferred.mirror(&st, shared.cfg.aggregation);
                return;
            }
            Deferral::Now => {}
        }
        let mut st = shared.lock_state();
        Self::record(shared, &mut st, released);
        shared.deferred.mirror(&st, shared.cfg.aggregation);
    }

    /// Records one completed request's sample under the lock: the probe's, the window's, or
    /// the algorithm's.
    fn record(shared: &Shared, st: &mut State, released: Released) {
        let Released {
            started_at,
            now,
            inflight,
            dropped,
        } = released;
        let rtt = now.saturating_sub(started_at);
        st.count_sample(rtt, dropped);
        let cfg = &shared.cfg;
        if let Probe::Active {
            started_at: probe_start,
            saved,
            rtts,
        } = &mut st.probe
        {
            if started_at >= *probe_start && !dropped {
                rtts.push(rtt.as_secs_f64() * 1000.0);
            }
            let Some(p) = cfg.min_rtt_probe else { return };
            if rtts.len() < p.request_count as usize {
                return;
            }
            let saved = *saved;
            rtts.sort_by(f64::total_cmp);
            let rank =
                ((p.percentile * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len()) - 1;
            let baseline = Duration::from_secs_f64(rtts[rank] / 1000.0);
            match &mut st.algo {
                Algo::Gradient2(g) => g.rebaseline(baseline),
                Algo::Aimd(a) => a.rebaseline(baseline),
            }
            st.algo.set_estimate(saved);
            st.probes += 1;
            let jitter_ns = (p.interval.as_secs_f64() * p.jitter * 1e9) as u64;
            let extra = if jitter_ns == 0 {
                0
            } else {
                // Saturating: a jitter of `u64::MAX` ns must not wrap the divisor to 0.
                splitmix64(&mut st.rng) % jitter_ns.saturating_add(1)
            };
            let next_at = now
                .saturating_add(p.interval)
                .saturating_add(Duration::from_nanos(extra));
            st.probe = Probe::Waiting { next_at };
            shared.probe_due.store(nanos(next_at), Ordering::Release);
            shared.limit.store(saved.floor() as u32, Ordering::Release);
            return;
        }
        let sample = LimitSample {
            rtt,
            inflight,
            dropped,
        };
        let sample = match cfg.aggregation {
            SampleAggregation::PerSample => Some(sample),
            SampleAggregation::Windowed {
                min_window,
                max_window,
                min_samples,
            } => {
                let w = &mut st.window;
                w.add(now, rtt, inflight, dropped);
                let start = w.start.unwrap_or(now);
                let span =
                    Duration::from_secs_f64(2.0 * w.min_ms / 1000.0).clamp(min_window, max_window);
                if now.saturating_sub(start) < span {
                    None
                } else {
                    let done = std::mem::take(w);
                    w.start = Some(now);
                    (done.count >= min_samples).then(|| LimitSample {
                        rtt: Duration::from_secs_f64(done.sum_ms / f64::from(done.count) / 1000.0),
                        inflight: done.max_inflight,
                        dropped: done.dropped,
                    })
                }
            }
        };
        let Some(sample) = sample else { return };
        st.updates += 1;
        let (min, max) = (cfg.min_limit, cfg.max_limit);
        let estimate = match &mut st.algo {
            Algo::Gradient2(g) => g.update(sample, min, max),
            Algo::Aimd(a) => a.update(sample, min, max),
        };
        shared
            .limit
            .store(estimate.floor() as u32, Ordering::Release);
    }
}

fn tier_cap(limit: u32, share: f64) -> u32 {
    u32::try_from(crate::util::floor_u64(f64::from(limit) * share))
        .unwrap_or(u32::MAX)
        .max(1)
}

struct Slot {
    limiter: Arc<Shared>,
    started_at: Duration,
    inflight_at_start: u32,
    outcome: Option<Outcome>,
}

/// One admitted request's slot on the concurrency axis, released when dropped.
///
/// Set the [`Outcome`] before dropping it ([`set_outcome`](Self::set_outcome), or the
/// consuming shorthands [`success`](Self::success), [`overload`](Self::overload),
/// [`ignore`](Self::ignore)); a permit dropped without one counts as cancelled: its slot is
/// released and the algorithm learns nothing. The RTT is the time from admission to release on
/// the limiter's clock.
///
/// A permit from a throttle without a concurrency section, or a disabled throttle, holds no
/// slot and does nothing when dropped.
#[must_use = "dropping the permit at once releases the slot: hold it until the work completes"]
pub struct ConcurrencyPermit {
    slot: Option<Slot>,
    pub(crate) decision: Decision,
}

impl fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyPermit")
            .field("holds_slot", &self.slot.is_some())
            .field("outcome", &self.slot.as_ref().and_then(|s| s.outcome))
            .field("decision", &self.decision)
            .finish()
    }
}

impl ConcurrencyPermit {
    pub(crate) fn unlimited(decision: Decision) -> Self {
        Self {
            slot: None,
            decision,
        }
    }

    /// The admission decision (for `RateLimit` headers): the rate axis's per-window quota, since
    /// an in-flight limit is not a quota per window.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Whether this permit holds a concurrency slot.
    pub fn holds_slot(&self) -> bool {
        self.slot.is_some()
    }

    /// Records how the request ended; the slot is released when the permit is dropped.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        if let Some(slot) = self.slot.as_mut() {
            slot.outcome = Some(outcome);
        }
    }

    /// Releases now, recording a success.
    pub fn success(mut self) {
        self.set_outcome(Outcome::Success);
    }

    /// Releases now, recording an overload (a drop).
    pub fn overload(mut self) {
        self.set_outcome(Outcome::Overload);
    }

    /// Releases now without a sample.
    pub fn ignore(mut self) {
        self.set_outcome(Outcome::Ignore);
    }

    /// Releases with `outcome` at `now`, just read from the throttle's clock (which the
    /// limiter shares): one clock read per response instead of two.
    pub(crate) fn complete_at(mut self, outcome: Outcome, now: Duration) {
        if let Some(slot) = self.slot.take() {
            ConcurrencyLimiter::release(
                &slot.limiter,
                slot.started_at,
                slot.inflight_at_start,
                Some(outcome),
                Some(now),
            );
        }
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            ConcurrencyLimiter::release(
                &slot.limiter,
                slot.started_at,
                slot.inflight_at_start,
                slot.outcome,
                None,
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
