//! The capacity estimate inside the controller: what it is handed with each sample, and how its
//! estimate (with the SLA rules) becomes the next limit.

use std::time::Duration;

use super::Controller;
use crate::config::{Adaptation, ThrottleConfig};
use crate::control::capacity::{CapacityEstimator, Estimate};
use crate::events::ChangeReason;

/// Adjustment intervals without a recorded response before admission checks whether the
/// service has stopped answering.
pub(crate) const STARVED_AFTER_INTERVALS: u32 = 4;

/// What the throttle's admission path has seen, handed to the controller with each sample (the
/// controller itself never sees admissions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Demand {
    /// Requests admitted, ever.
    pub(crate) admitted: u64,
    /// Requests the service-wide limit rejected, ever.
    pub(crate) rejected: u64,
    /// When the concurrency axis is on: its limit, the permits it ever handed out and the
    /// requests it ever shed.
    pub(crate) inflight: Option<(u32, u64, u64)>,
}

pub(super) fn estimator_for(cfg: &ThrottleConfig) -> Option<CapacityEstimator> {
    match cfg.adaptation {
        Adaptation::CapacityEstimate(p) => Some(CapacityEstimator::new(p)),
        _ => None,
    }
}

impl Controller {
    /// Admission found a record overdue (no response recorded for `overdue`, at least
    /// `STARVED_AFTER_INTERVALS` sample intervals): with the capacity estimate and work
    /// outstanding, nothing is completing, so the limit is halved (once per sample interval while
    /// it lasts).
    pub(crate) fn starved(
        &mut self,
        now: Duration,
        overdue: Duration,
        events: &mut Vec<crate::events::ThrottleEvent>,
    ) {
        let due = self
            .cfg
            .sample_interval
            .saturating_mul(STARVED_AFTER_INTERVALS);
        if overdue < due || self.freeze != 0 {
            return;
        }
        let window = self.cfg.window.as_secs_f64().max(1e-9);
        let rate = f64::from(self.limit) / window;
        let admitted = self.demand.admitted;
        let Some(rate) = self
            .capacity
            .as_mut()
            .and_then(|c| c.starved(now, admitted, rate))
        else {
            return;
        };
        self.last_adjust_at = Some(now);
        let target = self.cfg.clamp((rate * window).floor() as u64);
        if target < self.limit {
            self.stats.adjustments_down += 1;
            self.last_was_cut = true;
            self.set_limit(target, ChangeReason::LatencyRising, None, 0.0, now, events);
        }
    }

    /// Whether the controller needs [`Demand`] with the sample recorded at `now`: the capacity
    /// estimate does, and only for an adjustment.
    pub(crate) fn wants_demand(&self, now: Duration) -> bool {
        self.capacity.is_some() && self.adjustment_due(now)
    }

    /// Whether a sample recorded at `now` may run an adjustment (at most one per
    /// `sample_interval`; the gate starts open).
    pub(crate) fn adjustment_due(&self, now: Duration) -> bool {
        self.last_adjust_at
            .is_none_or(|last| now.saturating_sub(last) >= self.cfg.sample_interval || now < last)
    }

    /// What the admission path has seen so far (read before a sample is recorded).
    pub(crate) fn set_demand(&mut self, demand: Demand) {
        self.demand = demand;
    }

    /// The capacity estimate's latest figures and its no-load latency.
    pub(crate) fn capacity(&self) -> Option<(Estimate, Option<Duration>)> {
        let c = self.capacity.as_ref()?;
        Some((c.latest()?, c.baseline()))
    }

    /// The limit per window the capacity estimate asks for, after the SLA rules (which still
    /// cut below what is delivered while work is queued, never compounding on a cut already
    /// made); `None` inside the dead band (2 %), so the limit does not twitch with every
    /// adjustment.
    pub(super) fn capacity_target(
        &self,
        e: Estimate,
        sla_rtt: Duration,
    ) -> Option<(u32, ChangeReason)> {
        let cfg = &self.cfg;
        let window = cfg.window.as_secs_f64();
        let current = f64::from(self.limit) / window.max(1e-9);
        let sla = if sla_rtt >= cfg.sla_critical {
            Some((cfg.critical_decrease_ratio, ChangeReason::SlaCritical))
        } else if sla_rtt >= cfg.sla_warning {
            Some((cfg.decrease_ratio, ChangeReason::SlaWarning))
        } else {
            None
        };
        let (rate, reason) = match sla {
            Some((ratio, reason)) if e.queued => {
                ((e.delivered * ratio).min(e.rate).min(current), reason)
            }
            _ => (e.rate, e.reason),
        };
        let target = cfg.clamp((rate * window).round().max(0.0) as u64);
        let band = (f64::from(self.limit) * 0.02).max(1.0);
        ((f64::from(target) - f64::from(self.limit)).abs() >= band).then_some((target, reason))
    }
}
