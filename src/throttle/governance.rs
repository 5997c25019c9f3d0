//! [`Governance`]: the external inputs and operator controls of one throttle, behind
//! [`AdaptiveThrottle::governance`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::AdaptiveThrottle;
use crate::breaker::{BreakerConfig, BreakerStats};
use crate::events::FreezeReason;
use crate::governance::{
    BreakerState, ErrorBudget, GovernanceSnapshot, GovernanceSource, GovernanceState,
};

/// The governance inputs of one throttle: kill switch, emergency level, error budget, load
/// shedding, breaker and upstream 429s, plus freezes and the recovery ramp. Each input caps
/// the limit (the lowest cap wins, see [`crate::governance`]); when an input clears, the limit
/// recovers through the ramp.
///
/// A cheap view that borrows the throttle: `throttle.governance().set_emergency_level(2)`.
///
/// In fleet mode (a throttle [built](crate::ThrottleBuilder) with a store) the operator
/// controls — kill switch, emergency level, break glass, error budget, load shedding — apply
/// here at once and reach every instance of the fleet through the store (see
/// [`AdaptiveThrottle::sync_fleet`]); the other inputs (breaker, upstream 429s, freezes, a
/// governance source) stay per instance.
///
/// ```
/// use tower_adaptive_throttle::{AdaptiveThrottle, ManualClock, ThrottleConfig};
///
/// let t = AdaptiveThrottle::with_clock(ThrottleConfig::baldur(), ManualClock::new());
/// t.governance().set_emergency_level(2); // cap at 50 % of the base
/// assert_eq!(t.current_limit(), 50);
/// t.governance().set_emergency_level(0); // back through the ramp: 80 % first
/// assert_eq!(t.current_limit(), 80);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Governance<'a> {
    throttle: &'a AdaptiveThrottle,
}

impl AdaptiveThrottle {
    /// The governance inputs and operator controls of this throttle (see [`Governance`]).
    pub fn governance(&self) -> Governance<'_> {
        Governance { throttle: self }
    }
}

impl Governance<'_> {
    /// The governance inputs currently applied.
    pub fn state(&self) -> GovernanceState {
        self.throttle.inner.controller.lock().governance()
    }

    /// Freezes the limit where it is (`true`) or releases it (`false`): the kill switch. While
    /// engaged, samples keep flowing but the limit does not move; released, the limit recovers
    /// through the ramp.
    pub fn set_kill_switch(&self, on: bool) {
        self.throttle
            .transition(|c, now, events| c.set_kill_switch(on, now, events));
        self.throttle
            .note_ops("kill_switch", |d| d.kill_switch = on);
    }

    /// Sets the emergency level, 0 (none) to 3: caps of 80 % / 50 % of the pre-incident base /
    /// the floor (and frozen), with per-tier multipliers. Back to 0 starts the recovery ramp.
    pub fn set_emergency_level(&self, level: u8) {
        self.throttle
            .transition(|c, now, events| c.set_emergency_level(level, now, events));
        let level = self.state().emergency_level;
        self.throttle
            .note_ops("emergency", |d| d.emergency_level = level);
    }

    /// Releases a full stop, the emergency level and the kill switch; the limit recovers through
    /// the ramp.
    pub fn break_glass(&self) {
        self.throttle
            .transition(|c, now, events| c.break_glass(now, events));
        self.throttle.note_ops("break_glass", |d| {
            d.break_glass += 1;
            d.kill_switch = false;
            d.emergency_level = 0;
        });
    }

    /// Sets the error budget state: warning caps at 80 % of the base, critical at 50 % and
    /// rejects non-essential requests.
    pub fn set_error_budget(&self, budget: ErrorBudget) {
        self.throttle
            .transition(|c, now, events| c.set_error_budget(budget, now, events));
        self.throttle
            .note_ops("error_budget", |d| d.error_budget = budget);
    }

    /// Load shedding at `traffic_percent` of capacity (cap `max_limit × p % × 1.5`), or off.
    pub fn set_load_shedding(&self, traffic_percent: Option<u8>) {
        self.throttle
            .transition(|c, now, events| c.set_load_shedding(traffic_percent, now, events));
        let shedding = self.state().load_shedding;
        self.throttle
            .note_ops("load_shedding", |d| d.load_shedding = shedding);
    }

    /// A circuit breaker guarding this service changed state (for an external breaker; the
    /// built-in one, see [`set_breaker`](Self::set_breaker), reports itself).
    pub fn on_breaker_state(&self, state: BreakerState) {
        self.throttle
            .transition(|c, now, events| c.on_breaker_state(state, now, events));
    }

    /// An upstream this service calls answered 429 for the `consecutive`-th time in a row: the
    /// limit in force now is cut to `max(floor(limit × r), min_limit)`, r = 0.8 / 0.6 / 0.5 for
    /// n = 1 / 2 / ≥ 3, so consecutive 429s compound (100 → 80 → 48 → 24); critical traffic
    /// keeps the pre-reduction base. The same `consecutive` twice is one 429 (no second cut);
    /// any other value is one new 429, cut once by its own ratio; 0 ends the reduction. The cap
    /// holds until [`on_upstream_cooldown_end`](Self::on_upstream_cooldown_end).
    pub fn on_upstream_429(&self, consecutive: u32) {
        self.throttle
            .transition(|c, now, events| c.on_upstream_429(consecutive, now, events));
    }

    /// The upstream's cooldown ended: the 429 reduction ends and the ramp starts.
    pub fn on_upstream_cooldown_end(&self) {
        self.throttle
            .transition(|c, now, events| c.on_upstream_cooldown_end(now, events));
    }

    /// Sets a freeze reason: samples keep flowing, the limit stops moving.
    pub fn freeze(&self, reason: FreezeReason) {
        self.throttle
            .transition(|c, now, events| c.freeze(reason, now, events));
    }

    /// Clears a freeze reason; the limit moves again once no reason remains.
    pub fn unfreeze(&self, reason: FreezeReason) {
        self.throttle
            .transition(|c, now, events| c.unfreeze(reason, now, events));
    }

    /// Starts a recovery ramp towards `base` (80 % → 90 % → 100 % by default).
    pub fn start_recovery(&self, base: u32) {
        self.throttle
            .transition(|c, now, events| c.start_recovery(base, now, events));
    }

    /// Ends a running ramp at once.
    pub fn complete_recovery(&self) {
        self.throttle
            .transition(|c, now, events| c.complete_recovery(now, events));
    }

    /// Attaches the built-in circuit breaker (fed by `record_response` and `record_overload`;
    /// three consecutive critical latencies count as a failure), or removes it with `None`.
    pub fn set_breaker(&self, cfg: Option<BreakerConfig>) {
        self.throttle
            .transition(|c, now, events| c.set_breaker(cfg, now, events));
    }

    /// Counters of the built-in breaker, if attached.
    pub fn breaker_stats(&self) -> Option<BreakerStats> {
        self.throttle.transition(|c, _, _| c.breaker_stats())
    }

    /// Polls `source` lazily from `check`, at most once per its TTL (the first poll happens on
    /// the next check), applying any difference from the throttle's state.
    pub fn set_source(&self, source: impl GovernanceSource) {
        let inner = &*self.throttle.inner;
        *inner.governance_source.lock() = Some(Box::new(source));
        inner.governance_due_nanos.store(0, Ordering::Release);
    }

    /// Applies governance facts now (what a poll of a source does).
    pub fn apply(&self, facts: GovernanceSnapshot) {
        self.throttle
            .transition(|c, now, events| c.apply_governance(facts, now, events));
    }
}

impl AdaptiveThrottle {
    /// Polls the governance source when it is due; one caller polls, the others go on with the
    /// state they have.
    pub(super) fn poll_governance(&self, now: Duration) {
        let inner = &*self.inner;
        let now_nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX - 1);
        let due = inner.governance_due_nanos.load(Ordering::Acquire);
        if now_nanos < due {
            return;
        }
        let Some(source) = inner.governance_source.try_lock() else {
            return;
        };
        let Some(source) = source.as_ref() else {
            return;
        };
        let ttl = u64::try_from(source.ttl().as_nanos()).unwrap_or(u64::MAX);
        inner
            .governance_due_nanos
            .store(now_nanos.saturating_add(ttl.max(1)), Ordering::Release);
        let facts = source.poll();
        self.with_controller(now, |c, events| c.apply_governance(facts, now, events));
    }
}
