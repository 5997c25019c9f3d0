//! The recovery ramp: after an external reduction ends, the limit climbs back in stages
//! (80 % → 90 % → 100 % of the pre-incident base by default), advanced lazily on use.

use std::time::Duration;

use super::{Controller, RampProgress};
use crate::config::ThrottleConfig;
use crate::events::{ChangeReason, ThrottleEvent};
use crate::util::splitmix64;

#[derive(Debug, Clone)]
pub(super) struct Ramp {
    pub(super) base: u32,
    pub(super) started_at: Duration,
    pub(super) stages_applied: usize,
    pub(super) next_at: Duration,
    pub(super) pending: Option<u32>,
}

impl Controller {
    /// True while a recovery ramp is active.
    #[cfg(test)]
    pub(crate) fn ramp_active(&self) -> bool {
        self.ramp.is_some()
    }

    /// Progress of the recovery ramp, if one is active.
    pub(crate) fn ramp_progress(&self, now: Duration) -> Option<RampProgress> {
        let ramp = self.ramp.as_ref()?;
        let stages = self.cfg.recovery_stages.len();
        Some(RampProgress {
            base: ramp.base,
            stages_applied: ramp.stages_applied,
            stages,
            fraction: ramp
                .stages_applied
                .checked_sub(1)
                .map_or(0.0, |i| self.cfg.recovery_stages[i.min(stages - 1)]),
            pending: ramp.pending,
            elapsed: now.saturating_sub(ramp.started_at),
            next_in: ramp.next_at.saturating_sub(now),
        })
    }

    /// Moves a recovery ramp forward if its next stage is due. Cheap when no ramp is active.
    pub(crate) fn advance(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if let Some(breaker) = self.breaker.as_mut() {
            let state = breaker.state(now);
            self.breaker_moved(state, now, events);
        }
        while let Some(ramp) = self.ramp.as_ref() {
            if now < ramp.next_at {
                return;
            }
            let stages = &self.cfg.recovery_stages;
            let (base, applied, next_at) = (ramp.base, ramp.stages_applied, ramp.next_at);
            if applied < stages.len() {
                let fraction = stages[applied];
                let mut target = self.cfg.clamp((f64::from(base) * fraction).floor() as u64);
                if let Some(cap) = self.gov.reduction_cap {
                    target = target.min(cap);
                }
                if let Some(r) = self.ramp.as_mut() {
                    r.stages_applied += 1;
                    r.next_at = next_at + self.cfg.recovery_stage_interval;
                    if r.pending.is_some_and(|p| p <= target) {
                        r.pending = None;
                    }
                }
                events.push(ThrottleEvent::RampStage {
                    at: now,
                    stage: applied,
                    fraction,
                    limit: target,
                });
                // Each stage re-asserts its own target: the schedule, not the gradient, sets
                // the pace of the recovery.
                self.last_was_cut = target < self.limit;
                self.set_limit(target, ChangeReason::RampStage, None, 0.0, now, events);
            } else {
                let pending = self.ramp.take().and_then(|r| r.pending);
                if let Some(p) = pending.filter(|p| *p > self.limit) {
                    let p = self.cfg.clamp(u64::from(p));
                    self.set_limit(p, ChangeReason::RampCompleted, None, 0.0, now, events);
                }
                self.last_was_cut = false;
                events.push(ThrottleEvent::RampCompleted {
                    at: now,
                    limit: self.limit,
                });
            }
        }
    }

    /// Starts a recovery ramp towards `base` (clamped to the bounds): the first stage lands now,
    /// or after a random delay up to `recovery_jitter`; later stages follow every
    /// `recovery_stage_interval`. A running ramp is replaced.
    pub(crate) fn start_recovery(
        &mut self,
        base: u32,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let base = self.cfg.clamp(u64::from(base));
        let jitter_ns = u64::try_from(self.cfg.recovery_jitter.as_nanos()).unwrap_or(u64::MAX);
        let delay = if jitter_ns == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(splitmix64(&mut self.rng) % jitter_ns.saturating_add(1))
        };
        self.base_limit = base;
        self.ramp = Some(Ramp {
            base,
            started_at: now,
            stages_applied: 0,
            next_at: now + delay,
            pending: None,
        });
        events.push(ThrottleEvent::RampStarted { at: now, base });
        self.advance(now, events);
    }

    /// Jumps a running ramp to its end: the base (or a higher pending increase) applies now.
    pub(crate) fn complete_recovery(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if let Some(ramp) = self.ramp.take() {
            let target = ramp.pending.unwrap_or(0).max(ramp.base);
            self.set_limit(
                self.cfg.clamp(u64::from(target)),
                ChangeReason::RampCompleted,
                None,
                0.0,
                now,
                events,
            );
            self.last_was_cut = false;
            events.push(ThrottleEvent::RampCompleted {
                at: now,
                limit: self.limit,
            });
        }
    }
}

/// The highest limit the ramp allows now: the latest landed stage, or (before the first stage
/// lands) the limit as it is.
pub(super) fn ramp_cap(cfg: &ThrottleConfig, ramp: &Ramp, current: u32) -> u32 {
    match ramp.stages_applied.checked_sub(1) {
        None => current,
        Some(i) => {
            let fraction = cfg.recovery_stages[i.min(cfg.recovery_stages.len() - 1)];
            cfg.clamp((f64::from(ramp.base) * fraction).floor() as u64)
        }
    }
}
