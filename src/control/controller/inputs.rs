//! Governance inputs: external reductions combined by min-winner with the adaptive limit
//! (see [`crate::governance`]).

use std::time::Duration;

use super::Controller;
use crate::breaker::{BreakerConfig, BreakerStats, CircuitBreaker};
use crate::decision::{RejectReason, Tier};
use crate::events::{ChangeReason, FreezeReason, ThrottleEvent};
use crate::governance::{
    emergency_multiplier, emergency_tier_multiplier, upstream_429_limit, BreakerState, ErrorBudget,
    GovernanceSnapshot, GovernanceState, SHEDDING_COMPENSATION,
};

/// Governance: external inputs combined by min-winner with the adaptive limit. See
/// [`crate::governance`].
impl Controller {
    /// Governance inputs currently applied.
    pub(crate) fn governance(&self) -> GovernanceState {
        self.gov
    }

    /// The min-winner of the adaptive limit and every active reduction.
    pub(crate) fn conservative_limit(&self) -> u32 {
        self.gov
            .reduction_cap
            .map_or(self.limit, |cap| cap.min(self.limit))
    }

    /// The limit a request of `tier` is checked against, or why it is blocked outright.
    ///
    /// # Errors
    ///
    /// The reason the tier gets no capacity: full stop, error budget critical (non-essential),
    /// or an emergency level whose multiplier for the tier is zero.
    pub(crate) fn tier_limit(&self, tier: Tier) -> Result<u32, RejectReason> {
        if self.gov.full_stop {
            return Err(RejectReason::FullStop);
        }
        if self.gov.error_budget == ErrorBudget::Critical && tier == Tier::NonEssential {
            return Err(RejectReason::ErrorBudgetCriticalNonEssentialBlocked);
        }
        let limit = self.conservative_limit();
        // Critical traffic is held to the pre-reduction base, whatever reduced the limit.
        let limit = match (tier, self.gov.reduction_base) {
            (Tier::Critical, Some(base)) => base.max(limit),
            _ => limit,
        };
        if self.gov.emergency_level == 0 {
            return Ok(limit);
        }
        let m = emergency_tier_multiplier(self.gov.emergency_level, tier);
        if m <= 0.0 {
            return Err(RejectReason::EmergencyTierBlocked);
        }
        Ok(((f64::from(limit) * m).floor() as u32).max(self.cfg.min_limit))
    }

    /// Attaches (or with `None` removes) the built-in circuit breaker, fed by `record` and
    /// `record_overload`.
    pub(crate) fn set_breaker(
        &mut self,
        cfg: Option<BreakerConfig>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.breaker = cfg.map(CircuitBreaker::new);
        if self.breaker.is_none() && self.gov.breaker != BreakerState::Closed {
            self.on_breaker_state(BreakerState::Closed, now, events);
        }
    }

    /// Counters of the built-in breaker, if attached.
    pub(crate) fn breaker_stats(&self) -> Option<BreakerStats> {
        self.breaker.as_ref().map(CircuitBreaker::stats)
    }

    pub(super) fn breaker_moved(
        &mut self,
        state: BreakerState,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if state != self.gov.breaker {
            self.on_breaker_state(state, now, events);
        }
    }

    /// A breaker (built-in or external) changed state: open → floor, half-open → half of the
    /// initial limit, closed → the reduction ends (and the ramp starts if nothing else holds).
    pub(crate) fn on_breaker_state(
        &mut self,
        state: BreakerState,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let changed = self.set_input(
            |g| &mut g.breaker,
            state,
            |from| ThrottleEvent::BreakerStateChanged {
                at: now,
                from,
                to: state,
            },
            events,
        );
        if changed {
            self.check_full_stop(now, events);
            self.governance_changed(ChangeReason::CircuitBreaker, now, events);
        }
    }

    /// Sets the emergency level (0–3; higher values mean 3). Level 3 also freezes the limit;
    /// level 0 ends the emergency and releases a full stop.
    pub(crate) fn set_emergency_level(
        &mut self,
        level: u8,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let level = level.min(3);
        let changed = self.set_input(
            |g| &mut g.emergency_level,
            level,
            |from| ThrottleEvent::EmergencyLevelChanged {
                at: now,
                from,
                to: level,
            },
            events,
        );
        if !changed {
            return;
        }
        if level >= 3 {
            self.freeze(FreezeReason::Emergency, now, events);
        } else {
            self.unfreeze(FreezeReason::Emergency, now, events);
        }
        if level == 0 && self.gov.full_stop {
            self.gov.full_stop = false;
        }
        self.check_full_stop(now, events);
        self.governance_changed(ChangeReason::Emergency, now, events);
    }

    /// Engages or releases the kill switch: it freezes the limit where it is; releasing it starts
    /// the recovery ramp from the frozen limit (unless a reduction is still active).
    pub(crate) fn set_kill_switch(
        &mut self,
        on: bool,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if on == self.gov.kill_switch {
            return;
        }
        self.gov.kill_switch = on;
        if on {
            self.freeze(FreezeReason::KillSwitch, now, events);
        } else {
            self.unfreeze(FreezeReason::KillSwitch, now, events);
            if self.gov.reduction_cap.is_none() {
                let base = self.ramp.as_ref().map_or(self.limit, |r| r.base);
                self.start_recovery(base, now, events);
            }
        }
    }

    /// Sets the error budget state.
    pub(crate) fn set_error_budget(
        &mut self,
        budget: ErrorBudget,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let changed = self.set_input(
            |g| &mut g.error_budget,
            budget,
            |from| ThrottleEvent::ErrorBudgetChanged {
                at: now,
                from,
                to: budget,
            },
            events,
        );
        if changed {
            self.check_full_stop(now, events);
            self.governance_changed(ChangeReason::ErrorBudget, now, events);
        }
    }

    /// Turns load shedding on at `traffic_percent` (0–100) or off with `None`.
    pub(crate) fn set_load_shedding(
        &mut self,
        traffic_percent: Option<u8>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let traffic_percent = traffic_percent.map(|p| p.min(100));
        let changed = self.set_input(
            |g| &mut g.load_shedding,
            traffic_percent,
            |_| ThrottleEvent::LoadSheddingChanged {
                at: now,
                traffic_percent,
            },
            events,
        );
        if changed {
            self.governance_changed(ChangeReason::LoadShedding, now, events);
        }
    }

    /// An upstream answered 429 for the `consecutive`-th time in a row (0 clears): the 429 cap
    /// becomes `max(floor(limit × ratio), min_limit)` of the limit in force now, so consecutive
    /// 429s compound. The same count again is the same 429 and changes nothing; any other count
    /// is one new 429 (one cut, by that count's ratio).
    pub(crate) fn on_upstream_429(
        &mut self,
        consecutive: u32,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if consecutive == self.gov.upstream_429s {
            return;
        }
        self.gov.upstream_429s = consecutive;
        // `self.limit` is already bounded by every active cap, this one included, so the cut
        // lands on what is in force: 100 → 80 → 48 → 24.
        self.gov.upstream_429_limit = (consecutive > 0)
            .then(|| upstream_429_limit(self.limit, consecutive, self.cfg.min_limit));
        if consecutive > 0 {
            events.push(ThrottleEvent::Upstream429 {
                at: now,
                consecutive,
            });
        }
        self.governance_changed(ChangeReason::Upstream429, now, events);
    }

    /// The upstream's cooldown ended: the 429 reduction ends.
    pub(crate) fn on_upstream_cooldown_end(
        &mut self,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if self.gov.upstream_429s == 0 {
            return;
        }
        self.gov.upstream_429s = 0;
        self.gov.upstream_429_limit = None;
        events.push(ThrottleEvent::CooldownEnded { at: now });
        self.governance_changed(ChangeReason::Upstream429, now, events);
    }

    /// Break glass: releases a full stop, the emergency level and the kill switch, and lets the
    /// limit recover through the ramp (breaker, error-budget, shedding and 429 reductions still
    /// apply by min-winner).
    pub(crate) fn break_glass(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        events.push(ThrottleEvent::BreakGlass {
            at: now,
            full_stop_released: self.gov.full_stop,
        });
        self.gov.full_stop = false;
        self.gov.break_glass = true;
        if self.gov.kill_switch {
            self.gov.kill_switch = false;
            self.unfreeze(FreezeReason::KillSwitch, now, events);
        }
        if self.gov.emergency_level != 0 {
            let from = std::mem::replace(&mut self.gov.emergency_level, 0);
            events.push(ThrottleEvent::EmergencyLevelChanged {
                at: now,
                from,
                to: 0,
            });
            self.unfreeze(FreezeReason::Emergency, now, events);
        }
        let was_reduced = self.gov.reduction_base.is_some();
        self.governance_changed(ChangeReason::BreakGlass, now, events);
        if !was_reduced && self.ramp.is_none() {
            self.start_recovery(self.base_limit, now, events);
        }
    }

    /// Applies facts polled from a governance source, correcting any drift.
    pub(crate) fn apply_governance(
        &mut self,
        facts: GovernanceSnapshot,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.set_kill_switch(facts.kill_switch, now, events);
        self.set_emergency_level(facts.emergency_level, now, events);
        self.set_error_budget(facts.error_budget, now, events);
    }

    /// Sets one governance input to `value` and records `event(previous)`; returns whether it
    /// changed (an unchanged input records nothing).
    fn set_input<T: PartialEq + Copy>(
        &mut self,
        input: impl FnOnce(&mut GovernanceState) -> &mut T,
        value: T,
        event: impl FnOnce(T) -> ThrottleEvent,
        events: &mut Vec<ThrottleEvent>,
    ) -> bool {
        let slot = input(&mut self.gov);
        if *slot == value {
            return false;
        }
        let previous = std::mem::replace(slot, value);
        events.push(event(previous));
        true
    }

    /// Full stop: emergency level 3 with the breaker open and the error budget critical.
    pub(super) fn check_full_stop(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        let all = self.gov.emergency_level >= 3
            && self.gov.breaker == BreakerState::Open
            && self.gov.error_budget == ErrorBudget::Critical;
        if all && !self.gov.full_stop {
            self.gov.full_stop = true;
            self.gov.break_glass = false;
            events.push(ThrottleEvent::FullStop { at: now });
        }
    }

    /// The min-winner of the active reductions, if any: fractions of `base`, except the
    /// upstream-429 cap, which each 429 set from the limit in force when it arrived.
    pub(super) fn reduction_cap(&self, base: u32) -> Option<u32> {
        let cfg = &self.cfg;
        let floor = cfg.min_limit;
        let of = |value: u32, m: f64| ((f64::from(value) * m).floor() as u32).max(floor);
        let g = &self.gov;
        [
            g.full_stop.then_some(0),
            match g.emergency_level {
                0 => None,
                1 | 2 => Some(of(base, emergency_multiplier(g.emergency_level))),
                _ => Some(floor),
            },
            g.upstream_429_limit.map(|cap| cap.max(floor)),
            match g.error_budget {
                ErrorBudget::Healthy => None,
                ErrorBudget::Warning => Some(of(base, 0.8)),
                ErrorBudget::Critical => Some(of(base, 0.5)),
            },
            g.load_shedding.map(|p| {
                let raw = (u64::from(cfg.max_limit) * u64::from(p) / 100) as f64;
                let compensated = (raw * SHEDDING_COMPENSATION)
                    .floor()
                    .min(f64::from(cfg.max_limit));
                (compensated as u32).max(floor)
            }),
            match g.breaker {
                BreakerState::Closed => None,
                BreakerState::Open => Some(floor),
                BreakerState::HalfOpen => Some(of(cfg.initial_limit, 0.5)),
            },
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Re-evaluates the reductions after an input changed: entering a reduction records the
    /// pre-incident base (and cancels a ramp); a lower cap cuts at once; a higher cap lifts a
    /// limit that was pinned to the old one; leaving the last reduction starts the ramp.
    pub(super) fn governance_changed(
        &mut self,
        reason: ChangeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let base = self
            .gov
            .reduction_base
            .unwrap_or_else(|| self.ramp.as_ref().map_or(self.limit, |r| r.base));
        let old_cap = self.gov.reduction_cap;
        let cap = self.reduction_cap(base);
        self.gov.reduction_cap = cap;
        match (self.gov.reduction_base, cap) {
            (None, Some(cap)) => {
                self.gov.reduction_base = Some(base);
                self.base_limit = base;
                self.ramp = None;
                self.apply_cap(cap, None, reason, now, events);
            }
            (Some(_), Some(cap)) => self.apply_cap(cap, old_cap, reason, now, events),
            (Some(base), None) => {
                self.gov.reduction_base = None;
                self.start_recovery(base, now, events);
            }
            (None, None) => {}
        }
    }

    pub(super) fn apply_cap(
        &mut self,
        cap: u32,
        old_cap: Option<u32>,
        reason: ChangeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let pinned = old_cap.is_some_and(|old| self.limit >= old);
        if cap < self.limit || pinned {
            self.last_was_cut = cap < self.limit;
            // A cap is applied as is: full stop's 0 deliberately bypasses the floor.
            self.set_limit(cap, reason, None, 0.0, now, events);
        }
    }
}
