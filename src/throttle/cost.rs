//! The cost axis on the handle: reservations against each key's budget, and the one decision
//! across concurrency → rate → cost (ThrottleKit TK-028).
//!
//! **Order and short-circuit.** A request takes its concurrency slot, then the rate axis, then
//! reserves its cost; the first axis that denies decides, and what was taken is given back (the
//! slot is released without a sample). A rate strategy cannot give a slot back, so the cost
//! meter is *looked at* before the rate axis consumes: a key whose budget is spent is refused
//! without spending a rate slot (and, in fleet mode, without a store round trip). When both
//! would deny, the rate axis is named, being first in the order. Only a request racing another
//! of the same key past its budget between the look and the reservation may spend a rate slot
//! and still be refused.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::join_permit;
use super::AdaptiveThrottle;
use crate::clock::as_millis_u64;
use crate::concurrency::ConcurrencyPermit;
use crate::cost::{CostMeter, CostReservation, CostStats, CostUsage};
use crate::decision::{Axis, Decision, RejectReason, Tier};
use crate::strategy::RateDecision;

/// A request admitted on every axis: its concurrency slot, its cost reservation, and the one
/// decision combining them.
#[derive(Debug)]
#[must_use = "dropping it releases the slot and refunds the reservation"]
pub struct Admitted {
    permit: ConcurrencyPermit,
    reservation: CostReservation,
}

impl Admitted {
    /// ThrottleKit's one decision over the axes that decided (rate and cost, by
    /// [`Decision::combine`]): `remaining` is the smaller, and `axis` names the one that binds.
    /// Without a cost reservation, the rate axis's decision.
    pub fn decision(&self) -> Decision {
        let rate = *self.permit.decision();
        self.reservation
            .decision()
            .map_or(rate, |cost| rate.combine(*cost))
    }

    /// The concurrency slot (its [`decision`](ConcurrencyPermit::decision) is the rate
    /// axis's own).
    pub fn permit(&mut self) -> &mut ConcurrencyPermit {
        &mut self.permit
    }

    /// The cost reservation, to settle (it holds nothing without a cost axis).
    pub fn reservation(&mut self) -> &mut CostReservation {
        &mut self.reservation
    }

    /// The slot and the reservation, to hold separately.
    pub fn into_parts(self) -> (ConcurrencyPermit, CostReservation) {
        (self.permit, self.reservation)
    }
}

/// The cost axis of one request: the meter and the key's digest, and the units to reserve.
pub(crate) struct CostAsk {
    meter: Arc<CostMeter>,
    digest: u64,
    units: u64,
}

impl AdaptiveThrottle {
    pub(super) fn cost_meter(&self) -> Option<&Arc<CostMeter>> {
        self.inner.cost.as_ref()
    }

    /// The cost axis's policy for the `RateLimit-Policy` field: the budget, the window and the
    /// unit (`None` without a cost axis).
    pub(crate) fn cost_policy(&self) -> Option<(u64, Duration, &Arc<str>)> {
        self.cost_meter()
            .map(|m| (m.budget(), m.window(), m.unit()))
    }

    /// Reserves `units` of `key`'s cost budget, on the cost axis alone (no slot, no rate
    /// check). Refused, consuming nothing, once the key's budget for the window is spent;
    /// otherwise reserved in full, even across the budget (ThrottleKit's token budget).
    /// Without a cost axis, or while disabled, the reservation holds nothing.
    ///
    /// # Errors
    ///
    /// The denial: [`RejectReason::BudgetExhausted`] on [`Axis::Cost`], `retry_after` the time
    /// until the window renews.
    pub fn reserve_cost<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        units: u64,
    ) -> Result<CostReservation, Decision> {
        match self.cost_ask(key, Some(units)) {
            Some(ask) => self.reserve(ask, tier, self.now()),
            None => Ok(CostReservation::none()),
        }
    }

    /// Debits `units` from `key`'s budget with nothing to settle later (ThrottleKit's
    /// `debit(key, tokens)`): for metering a stream chunk by chunk. The same rule as a
    /// reservation: refused once the window's budget is spent. Without a cost axis, an
    /// unlimited decision.
    pub fn debit_cost<K: Hash + ?Sized>(&self, key: &K, tier: Tier, units: u64) -> Decision {
        match self.reserve_cost(key, tier, units) {
            Ok(reservation) => {
                let d = reservation
                    .decision()
                    .copied()
                    .unwrap_or_else(|| Decision::unlimited(tier));
                // Settled at once at its full value: a debit is final.
                let actual = reservation.reserved();
                reservation.settle(actual);
                d
            }
            Err(denied) => denied,
        }
    }

    /// Admits one request of `key` at `tier` costing an estimated `units` on every configured
    /// axis, in ThrottleKit's order concurrency → rate → cost, with one decision: the first
    /// axis that denies decides and everything already taken is given back. Settle the
    /// reservation with the true cost when it is known ([`CostReservation::settle`]); dropping
    /// it unsettled refunds it.
    ///
    /// Without a cost section this is [`acquire`](Self::acquire) with a reservation that holds
    /// nothing.
    ///
    /// # Errors
    ///
    /// The denying [`Decision`]: `axis` names the axis that bound, and a denial by the cost
    /// axis is [`RejectReason::BudgetExhausted`] (combined with the rate axis's view by the
    /// algebra: the smaller limit, the longer wait).
    pub fn acquire_with_cost<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        units: u64,
    ) -> Result<Admitted, Decision> {
        self.acquire_cost_at(key, tier, self.now(), Some(units))
    }

    /// `acquire_with_cost` at a time just read from this throttle's clock; `units` `None` for a
    /// request without a cost estimate (the cost axis is then not consulted).
    pub(crate) fn acquire_cost_at<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        now: Duration,
        units: Option<u64>,
    ) -> Result<Admitted, Decision> {
        let Some(ask) = self.cost_ask(key, units) else {
            return Ok(Admitted {
                permit: self.acquire_at(key, tier, now)?,
                reservation: CostReservation::none(),
            });
        };
        let permit = self.acquire_slot(tier, now)?;
        let digest = ask.digest;
        if let Some(denied) = self.cost_precheck(&ask, tier, now, Some(digest)) {
            drop(permit);
            return Err(denied);
        }
        let rate = self.check_digest(digest, tier, true, Some(now));
        let permit = join_permit(permit, rate)?;
        self.finish_cost(permit, Some(ask), tier, now)
    }

    /// The cost axis for a request of `key` with an estimate of `units`, when there is one to
    /// consult (a cost section, an estimate, and not disabled).
    pub(crate) fn cost_ask<K: Hash + ?Sized>(
        &self,
        key: &K,
        units: Option<u64>,
    ) -> Option<CostAsk> {
        let meter = self.cost_meter()?;
        let units = units?;
        if self.is_disabled() {
            return None;
        }
        Some(CostAsk {
            meter: meter.clone(),
            digest: self.inner.keys.digest(key),
            units,
        })
    }

    /// A look at the key's budget before the rate axis consumes: the denial when it is spent.
    /// With `rate_digest`, the rate axis is looked at too, so that when both would deny the
    /// rate axis (first in the order) is the one named; in fleet mode the rate axis may need
    /// the store, so it is not looked at.
    pub(crate) fn cost_precheck(
        &self,
        ask: &CostAsk,
        tier: Tier,
        now: Duration,
        rate_digest: Option<u64>,
    ) -> Option<Decision> {
        let now_ms = as_millis_u64(now);
        let rd = ask.meter.peek(ask.digest, now_ms);
        if rd.allowed {
            return None;
        }
        let mut rate = None;
        if let Some(digest) = rate_digest {
            let peeked = self.check_digest(digest, tier, false, Some(now));
            if !peeked.allowed {
                // A denied check consumes nothing; it counts the rejection where it belongs.
                return Some(self.check_digest(digest, tier, true, Some(now)));
            }
            rate = Some(peeked);
        }
        let denied = self.cost_denial(&ask.meter, rd, tier, now_ms);
        Some(rate.map_or(denied, |r| r.combine(denied)))
    }

    /// The last step of an admission: reserve the cost, or give the slot back.
    pub(crate) fn finish_cost(
        &self,
        mut permit: ConcurrencyPermit,
        ask: Option<CostAsk>,
        tier: Tier,
        now: Duration,
    ) -> Result<Admitted, Decision> {
        let Some(ask) = ask else {
            return Ok(Admitted {
                permit,
                reservation: CostReservation::none(),
            });
        };
        match self.reserve(ask, tier, now) {
            Ok(reservation) => Ok(Admitted {
                permit,
                reservation,
            }),
            Err(denied) => {
                permit.set_outcome(crate::Outcome::Ignore);
                Err(permit.decision().combine(denied))
            }
        }
    }

    /// The cost axis in fleet mode: one debit of the key's budget in the store (the crossing
    /// debit counts in full, so the fleet overshoots by at most the largest debit − 1 at any
    /// fleet size), mirrored in the local meter for stats; the settlement adjusts both. A
    /// store that does not answer leaves the decision to the local meter.
    pub(crate) async fn fleet_cost(
        &self,
        mut permit: ConcurrencyPermit,
        ask: CostAsk,
        fleet_digest: u64,
        tier: Tier,
    ) -> Result<Admitted, Decision> {
        let fleet = self.fleet().expect("fleet mode");
        let s = fleet.settings.clone();
        let name: Arc<str> = format!("{}:cost", s.name).into();
        let window_ms = as_millis_u64(ask.meter.window()).max(1);
        let units = ask.units.clamp(1, crate::cost::MAX_COST);
        let take =
            crate::store::Take::new(&name, fleet_digest, window_ms, ask.meter.budget(), units);
        let grant = self.store_call(s.store.debit(take)).await;
        let now = self.now();
        let now_ms = as_millis_u64(now);
        match grant {
            Ok(g) if g.granted > 0 => {
                let debit = crate::cost::FleetDebit {
                    store: s.store.clone(),
                    name,
                    key: fleet_digest,
                    window: g.window,
                    timeout: s.timeout,
                };
                match self.finish_cost(permit, Some(ask), tier, now) {
                    Ok(mut admitted) => {
                        let reservation =
                            std::mem::replace(&mut admitted.reservation, CostReservation::none());
                        admitted.reservation = reservation.in_fleet(debit);
                        Ok(admitted)
                    }
                    Err(denied) => {
                        // The local mirror refused (its window is this process's): give the
                        // store its units back.
                        debit.adjust(-i64::try_from(units).unwrap_or(i64::MAX));
                        Err(denied)
                    }
                }
            }
            Ok(g) => {
                let rd = RateDecision {
                    allowed: false,
                    limit: ask.meter.budget(),
                    remaining: 0,
                    reset_at: now_ms + g.reset_in_ms.max(1),
                    retry_after_ms: g.reset_in_ms.max(1),
                };
                let denied = self.cost_denial(&ask.meter, rd, tier, now_ms);
                permit.set_outcome(crate::Outcome::Ignore);
                Err(permit.decision().combine(denied))
            }
            Err(_) => self.finish_cost(permit, Some(ask), tier, now),
        }
    }

    fn reserve(
        &self,
        ask: CostAsk,
        tier: Tier,
        now: Duration,
    ) -> Result<CostReservation, Decision> {
        let now_ms = as_millis_u64(now);
        let (rd, start) = ask.meter.reserve(ask.digest, ask.units, now_ms);
        if !rd.allowed {
            return Err(self.cost_denial(&ask.meter, rd, tier, now_ms));
        }
        let limit = u32::try_from(ask.meter.budget()).unwrap_or(u32::MAX);
        let mut d = self.decision_from(rd, limit, tier, now_ms);
        d.axis = Some(Axis::Cost);
        let reserved = ask.units.clamp(1, crate::cost::MAX_COST);
        Ok(CostReservation::held(
            ask.meter, ask.digest, start, reserved, d,
        ))
    }

    fn cost_denial(
        &self,
        meter: &CostMeter,
        rd: RateDecision,
        tier: Tier,
        now_ms: u64,
    ) -> Decision {
        let reason = RejectReason::BudgetExhausted;
        self.inner.counters.decision(tier, false, Some(reason));
        meter.note_denied();
        let limit = u32::try_from(meter.budget()).unwrap_or(u32::MAX);
        let mut d = self.decision_from(rd, limit, tier, now_ms);
        d.reason = Some(reason);
        d.axis = Some(Axis::Cost);
        d
    }

    /// `key`'s use of its cost budget in the current window (`None` without a cost axis). A
    /// key that spent nothing has its whole budget.
    pub fn cost_usage<K: Hash + ?Sized>(&self, key: &K) -> Option<CostUsage> {
        let meter = self.cost_meter()?;
        let digest = self.inner.keys.digest(key);
        Some(meter.usage(digest, as_millis_u64(self.now())))
    }

    /// The cost axis's totals and the keys that spent most (`None` without a cost axis).
    /// O(keys): meant for operations, not for the request path.
    pub fn cost_stats(&self) -> Option<CostStats> {
        let meter = self.cost_meter()?;
        Some(meter.stats(as_millis_u64(self.now())))
    }
}
