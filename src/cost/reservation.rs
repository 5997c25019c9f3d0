//! [`CostReservation`]: what an admitted request holds of its key's cost budget until its true
//! cost is known; [`CostReport`]: where that true cost is reported.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{CostMeter, MAX_COST};
use crate::decision::Decision;

/// An admitted request's hold on its key's cost budget: the estimate it reserved, until it is
/// settled with the true cost.
///
/// - [`settle`](Self::settle) with the true cost refunds the difference when the estimate was
///   higher and charges it when it was lower (unconditionally: the work is done).
/// - Dropped unsettled (the request was cancelled: its future or body dropped), it refunds the
///   reservation, keeping only the units already reported through its [`CostReport`]: those
///   were spent.
///
/// A refund counts in the window the reservation was made in; once that window has ended there
/// is nothing to give back (its budget renewed anyway). Without a cost axis a reservation holds
/// nothing and settling it does nothing.
#[must_use = "dropping a reservation refunds it"]
pub struct CostReservation {
    // Boxed: a request without a cost axis carries one null pointer through the admission
    // path, not the whole hold; only metered requests pay the allocation.
    held: Option<Box<Held>>,
}

struct Held {
    /// Fleet mode: the store's copy of the debit, adjusted by the settlement too.
    fleet: Option<FleetDebit>,
    meter: Arc<CostMeter>,
    digest: u64,
    window_start_ms: u64,
    reserved: u64,
    report: Option<CostReport>,
    decision: Decision,
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Settlement {
    /// Units reserved.
    pub reserved: u64,
    /// The true cost settled.
    pub actual: u64,
    /// Units given back (`reserved − actual` when positive).
    pub refunded: u64,
    /// Units charged beyond the reservation (`actual − reserved` when positive).
    pub charged: u64,
}

impl CostReservation {
    /// A reservation that holds nothing (no cost axis).
    pub(crate) const fn none() -> Self {
        Self { held: None }
    }

    pub(crate) fn held(
        meter: Arc<CostMeter>,
        digest: u64,
        window_start_ms: u64,
        reserved: u64,
        decision: Decision,
    ) -> Self {
        Self {
            held: Some(Box::new(Held {
                fleet: None,
                meter,
                digest,
                window_start_ms,
                reserved,
                report: None,
                decision,
            })),
        }
    }

    /// Fleet mode: the reservation was debited from the store's budget too, so its settlement
    /// adjusts the store's copy as well.
    pub(crate) fn in_fleet(mut self, debit: FleetDebit) -> Self {
        if let Some(h) = self.held.as_mut() {
            h.fleet = Some(debit);
        }
        self
    }

    /// The cost axis's decision when the reservation was made (`axis` is
    /// [`Axis::Cost`](crate::Axis::Cost); `remaining` in the budget's units), or `None` when
    /// it holds nothing.
    pub fn decision(&self) -> Option<&Decision> {
        self.held.as_ref().map(|h| &h.decision)
    }

    /// Units reserved (0 without a cost axis).
    pub fn reserved(&self) -> u64 {
        self.held.as_ref().map_or(0, |h| h.reserved)
    }

    /// Whether it holds units of a budget (false without a cost axis).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// The handle the true cost is reported into (by a handler, or a streaming body as it
    /// produces units). One handle per reservation: every call returns a clone of it.
    pub fn report(&mut self) -> CostReport {
        match &mut self.held {
            Some(h) => h.report.get_or_insert_with(CostReport::new).clone(),
            None => CostReport::new(),
        }
    }

    /// Settles with the true cost `actual` (clamped to 2^53 − 1): refunds or charges the
    /// difference from the reservation.
    pub fn settle(mut self, actual: u64) -> Settlement {
        match self.held.take() {
            Some(h) => h.settle(actual.min(MAX_COST)),
            None => Settlement::default(),
        }
    }

    /// Settles with what was reported through [`report`](Self::report), or keeps the
    /// reservation as the cost when nothing was reported.
    pub fn settle_reported(mut self) -> Settlement {
        match self.held.take() {
            Some(h) => {
                let actual = h
                    .report
                    .as_ref()
                    .and_then(CostReport::get)
                    .unwrap_or(h.reserved);
                h.settle(actual.min(MAX_COST))
            }
            None => Settlement::default(),
        }
    }
}

impl Held {
    fn settle(self, actual: u64) -> Settlement {
        let mut s = Settlement {
            reserved: self.reserved,
            actual,
            ..Settlement::default()
        };
        if let Some(fleet) = &self.fleet {
            let delta = i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(self.reserved).unwrap_or(i64::MAX);
            if delta != 0 {
                fleet.adjust(delta);
            }
        }
        if actual < self.reserved {
            s.refunded = self.reserved - actual;
            self.meter
                .refund(self.digest, self.window_start_ms, s.refunded);
        } else if actual > self.reserved {
            s.charged = actual - self.reserved;
            let now_ms = self.meter.now_ms();
            self.meter.charge(self.digest, s.charged, now_ms);
        }
        s
    }
}

impl Drop for CostReservation {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            // Cancelled: only what was reported is known to be spent.
            let spent = h.report.as_ref().and_then(CostReport::get).unwrap_or(0);
            h.settle(spent.min(MAX_COST));
        }
    }
}

impl fmt::Debug for CostReservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostReservation")
            .field("reserved", &self.reserved())
            .field("decision", &self.decision())
            .finish()
    }
}

/// Where a request's true cost is reported: by the handler (from the upstream's usage
/// figures) or by a streaming body as it produces units; counted when the response body ends.
///
/// The HTTP layer puts one in the request extensions of every request it reserves cost for
/// (`req.extensions().get::<CostReport>()`, or the extractor with the `axum` feature). Cheap
/// to clone; clones share the count.
#[derive(Clone, Default)]
pub struct CostReport {
    cell: Arc<Cell>,
}

#[derive(Default)]
struct Cell {
    units: AtomicU64,
    reported: AtomicBool,
}

impl CostReport {
    /// A fresh handle with nothing reported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `units` to the reported cost (a streamed chunk's tokens).
    pub fn add(&self, units: u64) {
        self.cell.units.fetch_add(units, Ordering::AcqRel);
        self.cell.reported.store(true, Ordering::Release);
    }

    /// Sets the reported cost to `units` (a total from the upstream's usage figures).
    pub fn set(&self, units: u64) {
        self.cell.units.store(units, Ordering::Release);
        self.cell.reported.store(true, Ordering::Release);
    }

    /// The cost reported so far, or `None` when nothing was reported.
    pub fn get(&self) -> Option<u64> {
        self.cell
            .reported
            .load(Ordering::Acquire)
            .then(|| self.cell.units.load(Ordering::Acquire))
    }
}

impl fmt::Debug for CostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostReport")
            .field("reported", &self.get())
            .finish()
    }
}

/// A reservation's debit in the fleet's store: where to send its settlement.
pub(crate) struct FleetDebit {
    pub(crate) store: Arc<dyn crate::store::Store>,
    pub(crate) name: Arc<str>,
    pub(crate) key: u64,
    pub(crate) window: u64,
    pub(crate) timeout: std::time::Duration,
}

impl FleetDebit {
    /// Sends `delta` to the store in the background (bounded by the store timeout); without a
    /// runtime, or if the store does not answer, the store keeps the reservation as the cost —
    /// the fleet may admit less, never more.
    pub(crate) fn adjust(&self, delta: i64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, name, key, window, timeout) = (
            self.store.clone(),
            self.name.clone(),
            self.key,
            self.window,
            self.timeout,
        );
        handle.spawn(async move {
            let _ = tokio::time::timeout(timeout, store.adjust(&name, key, window, delta)).await;
        });
    }
}
