//! The cost axis: each key's budget of units per window, metered with ThrottleKit's token
//! budget ([`TokenBudget`], TK-023), and the reservations requests hold against it.
//!
//! - `mod.rs`: the meter, a sharded per-key table bounded by `max_keys`, and its snapshots
//!   ([`CostUsage`], [`CostStats`]);
//! - `reservation.rs`: [`CostReservation`] (reserve, then settle; refunded when dropped) and
//!   [`CostReport`], the handle a handler or a streaming body reports the true cost into.
//!
//! The table is separate from the rate axis's: the cost window (say a minute) is not the rate
//! window (say a second), and a throttle without a cost section has no table at all, so the
//! hot path of a request without cost is what it was.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::admission::DigestHasher;
use crate::clock::{as_millis_u64, Clock};
use crate::config::CostConfig;
use crate::strategy::{RateDecision, TokenBudget, TokenBudgetState};

mod reservation;

pub(crate) use reservation::FleetDebit;
pub use reservation::{CostReport, CostReservation, Settlement};

/// The largest cost one request may reserve or settle (ThrottleKit TK-003: 2^53 − 1, exact in
/// every language's numbers); larger values are clamped to it.
pub const MAX_COST: u64 = (1 << 53) - 1;

/// How many keys [`CostStats::top_keys`] lists.
pub const COST_TOP_KEYS: usize = 10;

const MAX_SHARDS: usize = 64;
const MIN_KEYS_PER_SHARD: usize = 16;

/// Keys are digests already: hashed as they are.
type Shard = HashMap<u64, TokenBudgetState, BuildHasherDefault<DigestHasher>>;

/// One throttle's cost meter: the budget, the per-key table and the counters.
#[derive(Debug)]
pub(crate) struct CostMeter {
    budget: TokenBudget,
    window: Duration,
    unit: Arc<str>,
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    shard_mask: u64,
    per_shard_cap: usize,
    reserved: AtomicU64,
    refunded: AtomicU64,
    charged: AtomicU64,
    denied: AtomicU64,
    evicted: AtomicU64,
}

/// One key's use of its budget in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CostUsage {
    /// Units per window.
    pub budget: u64,
    /// Units spent in the window (reservations not yet settled count at their estimate; may
    /// exceed the budget by the crossing reservation and by settlements above their estimate).
    pub spent: u64,
    /// Units left (`budget − spent`, never negative).
    pub remaining: u64,
    /// Time until the window renews.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration_ms"))]
    pub reset_after: Duration,
}

/// One of the keys that spent most, in [`CostStats::top_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CostKeyUsage {
    /// The key's digest in hex: the throttle never stores keys themselves (memory, privacy).
    /// Look a known key up with
    /// [`AdaptiveThrottle::cost_usage`](crate::AdaptiveThrottle::cost_usage).
    pub key: String,
    /// Units spent in the current window.
    pub spent: u64,
    /// Units left in it.
    pub remaining: u64,
}

/// The cost axis in a throttle's stats.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CostStats {
    /// Units per key per window.
    pub budget: u64,
    /// The window.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration_ms"))]
    pub window: Duration,
    /// The unit's name.
    pub unit: String,
    /// Keys that spent something in the current window.
    pub active_keys: usize,
    /// Units spent in the current window by all keys together.
    pub spent_in_window: u64,
    /// Units reserved by admitted requests (and debited directly), since the start.
    pub reserved_total: u64,
    /// Units given back: reservations above the true cost, and cancelled requests.
    pub refunded_total: u64,
    /// Units charged at settlement above the reservation.
    pub charged_total: u64,
    /// Reservations refused because the key's budget was spent.
    pub denied_total: u64,
    /// Keys evicted to stay within `max_keys`.
    pub evicted_keys: u64,
    /// Up to [`COST_TOP_KEYS`] keys that spent most in the current window, most first.
    pub top_keys: Vec<CostKeyUsage>,
}

impl CostMeter {
    pub(crate) fn new(cfg: &CostConfig, max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        let window_ms = as_millis_u64(cfg.window).max(1);
        // The config was validated: both are at least 1.
        let budget = TokenBudget::new(cfg.budget.max(1), window_ms)
            .expect("budget and window are at least 1");
        let max_keys = max_keys.max(1);
        let shards = (max_keys / MIN_KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = shards.next_power_of_two().min(MAX_SHARDS);
        Self {
            budget,
            window: cfg.window,
            unit: Arc::from(cfg.unit.as_str()),
            clock,
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_mask: (shards - 1) as u64,
            per_shard_cap: max_keys.div_ceil(shards).max(1),
            reserved: AtomicU64::new(0),
            refunded: AtomicU64::new(0),
            charged: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    pub(crate) fn budget(&self) -> u64 {
        self.budget.budget()
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn unit(&self) -> &Arc<str> {
        &self.unit
    }

    pub(crate) fn now_ms(&self) -> u64 {
        as_millis_u64(self.clock.now())
    }

    fn shard(&self, digest: u64) -> &Mutex<Shard> {
        // The low bits pick the shard; the map hashes the whole digest.
        &self.shards[(digest.rotate_right(32) & self.shard_mask) as usize]
    }

    /// Debits `units` (the meter's rule: refused once spent, the crossing debit in full).
    /// Returns the decision and, when admitted, the start of the window it was debited in.
    pub(crate) fn reserve(&self, digest: u64, units: u64, now_ms: u64) -> (RateDecision, u64) {
        let units = units.clamp(1, MAX_COST);
        let mut shard = self.shard(digest).lock();
        if !shard.contains_key(&digest) && shard.len() >= self.per_shard_cap {
            self.sweep(&mut shard, now_ms);
        }
        let state = shard.entry(digest).or_default();
        let rd = self.budget.debit(state, now_ms, units);
        let start = state.window_start_ms();
        if state.served() == 0 {
            // A refused debit on a cold key stores nothing worth keeping.
            shard.remove(&digest);
        }
        drop(shard);
        if rd.allowed {
            self.reserved.fetch_add(units, Ordering::Relaxed);
        }
        (rd, start)
    }

    /// Counts a request the cost axis refused (by a reservation, or by the look before the
    /// rate axis).
    pub(crate) fn note_denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// The key's meter now, without debiting.
    pub(crate) fn peek(&self, digest: u64, now_ms: u64) -> RateDecision {
        let shard = self.shard(digest).lock();
        match shard.get(&digest) {
            Some(state) => self.budget.peek(state, now_ms),
            None => self.budget.peek(&TokenBudgetState::default(), now_ms),
        }
    }

    /// Gives back up to `units` debited in the window starting at `window_start_ms`.
    pub(crate) fn refund(&self, digest: u64, window_start_ms: u64, units: u64) {
        if units == 0 {
            return;
        }
        let mut shard = self.shard(digest).lock();
        let given = match shard.get_mut(&digest) {
            Some(state) => {
                let given = self.budget.refund(state, window_start_ms, units);
                if state.served() == 0 {
                    shard.remove(&digest);
                }
                given
            }
            None => 0,
        };
        drop(shard);
        // What could not be given back (its window has ended) is still counted as refunded:
        // the request did not spend it.
        let _ = given;
        self.refunded.fetch_add(units, Ordering::Relaxed);
    }

    /// Charges `units` spent beyond a reservation to the window in force now.
    pub(crate) fn charge(&self, digest: u64, units: u64, now_ms: u64) {
        if units == 0 {
            return;
        }
        let units = units.min(MAX_COST);
        let mut shard = self.shard(digest).lock();
        if !shard.contains_key(&digest) && shard.len() >= self.per_shard_cap {
            self.sweep(&mut shard, now_ms);
        }
        self.budget
            .charge(shard.entry(digest).or_default(), now_ms, units);
        drop(shard);
        self.charged.fetch_add(units, Ordering::Relaxed);
    }

    /// One key's use of its budget now.
    pub(crate) fn usage(&self, digest: u64, now_ms: u64) -> CostUsage {
        let spent = self.spent(digest, now_ms);
        let rd = self.peek(digest, now_ms);
        self.usage_of(spent, rd.reset_at.saturating_sub(now_ms))
    }

    fn usage_of(&self, spent: u64, reset_in_ms: u64) -> CostUsage {
        CostUsage {
            budget: self.budget(),
            spent,
            remaining: self.budget().saturating_sub(spent),
            reset_after: Duration::from_millis(reset_in_ms),
        }
    }

    /// Units the key spent in the window in force at `now_ms`.
    pub(crate) fn spent(&self, digest: u64, now_ms: u64) -> u64 {
        let shard = self.shard(digest).lock();
        shard.get(&digest).map_or(0, |s| self.spent_in(s, now_ms))
    }

    fn spent_in(&self, state: &TokenBudgetState, now_ms: u64) -> u64 {
        let window_ms = self.budget.window_ms();
        let start = now_ms - now_ms % window_ms;
        if state.window_start_ms() >= start {
            state.served()
        } else {
            0
        }
    }

    /// A snapshot: totals, and the keys that spent most (one pass, one shard lock at a time).
    pub(crate) fn stats(&self, now_ms: u64) -> CostStats {
        let mut active = 0;
        let mut spent_in_window = 0u64;
        let mut top: Vec<(u64, u64)> = Vec::with_capacity(COST_TOP_KEYS + 1);
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (digest, state) in shard.iter() {
                let spent = self.spent_in(state, now_ms);
                if spent == 0 {
                    continue;
                }
                active += 1;
                spent_in_window = spent_in_window.saturating_add(spent);
                if top.len() < COST_TOP_KEYS || top.last().is_some_and(|(s, _)| spent > *s) {
                    let at = top.partition_point(|(s, _)| *s >= spent);
                    top.insert(at, (spent, *digest));
                    top.truncate(COST_TOP_KEYS);
                }
            }
        }
        CostStats {
            budget: self.budget(),
            window: self.window,
            unit: self.unit.to_string(),
            active_keys: active,
            spent_in_window,
            reserved_total: self.reserved.load(Ordering::Relaxed),
            refunded_total: self.refunded.load(Ordering::Relaxed),
            charged_total: self.charged.load(Ordering::Relaxed),
            denied_total: self.denied.load(Ordering::Relaxed),
            evicted_keys: self.evicted.load(Ordering::Relaxed),
            top_keys: top
                .into_iter()
                .map(|(spent, digest)| CostKeyUsage {
                    key: format!("{digest:016x}"),
                    spent,
                    remaining: self.budget().saturating_sub(spent),
                })
                .collect(),
        }
    }

    /// Forgets every key's window (counters are kept: they are totals since the start).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().clear();
        }
    }

    /// Makes room in a full shard: keys whose window has ended first (indistinguishable from
    /// new keys), then, if the shard is still over 7/8 full, the keys that spent least (the
    /// smallest budgets forgotten). Frees at least 1/8 of the shard, so inserts stay O(1)
    /// amortised.
    fn sweep(&self, shard: &mut Shard, now_ms: u64) {
        let before = shard.len();
        shard.retain(|_, s| self.spent_in(s, now_ms) > 0);
        let keep = self.per_shard_cap - self.per_shard_cap.div_ceil(8);
        if shard.len() > keep {
            let mut spent: Vec<(u64, u64)> = shard.iter().map(|(d, s)| (s.served(), *d)).collect();
            spent.sort_unstable();
            for (_, digest) in spent.iter().take(shard.len() - keep) {
                shard.remove(digest);
            }
        }
        self.evicted
            .fetch_add((before - shard.len()) as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn meter(budget: u64, max_keys: usize) -> CostMeter {
        CostMeter::new(
            &CostConfig::new(budget).window(Duration::from_secs(60)),
            max_keys,
            Arc::new(ManualClock::new()),
        )
    }

    #[test]
    fn cost_meter_reserves_refunds_and_charges_per_key() {
        let m = meter(100, 1000);
        let (rd, start) = m.reserve(1, 80, 0);
        assert!(rd.allowed && rd.remaining == 20 && start == 0);
        m.refund(1, start, 30);
        assert_eq!(m.spent(1, 0), 50);
        m.charge(1, 70, 10);
        assert_eq!(m.usage(1, 10).remaining, 0);
        assert!(!m.reserve(1, 1, 10).0.allowed);
        m.note_denied();
        assert!(m.reserve(2, 1, 10).0.allowed, "keys are independent");
        let s = m.stats(10);
        assert_eq!(
            (s.reserved_total, s.refunded_total, s.charged_total),
            (81, 30, 70)
        );
        assert_eq!(
            (s.denied_total, s.active_keys, s.spent_in_window),
            (1, 2, 121)
        );
        assert_eq!(s.top_keys[0].spent, 120);
    }

    #[test]
    fn cost_meter_stays_within_max_keys() {
        let m = meter(10, 32);
        for key in 0..1000u64 {
            m.reserve(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1, 0);
        }
        let s = m.stats(0);
        assert!(s.active_keys <= 32 + 2, "{}", s.active_keys);
        assert!(s.evicted_keys > 0);
    }
}
