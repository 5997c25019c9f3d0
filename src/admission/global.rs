//! The service-wide limit that per-key quotas share: one GCRA cell in an atomic, so every key's
//! admission also counts against the whole, without a lock shared by all requests.
//!
//! Lower tiers stop earlier in the burst: a critical request may use the whole burst, a standard
//! one only `standard_share` of it, a non-essential one `non_essential_share`. Under sustained
//! overload the schedule sits at the lower tiers' threshold, so the rest of the burst — and so
//! the capacity — goes to critical work first.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::decision::Tier;

/// The service-wide GCRA cell: the theoretical arrival time in microseconds on the throttle's
/// clock.
#[derive(Debug, Default)]
pub(crate) struct GlobalCell {
    tat_us: AtomicU64,
}

/// The cell's parameters for one decision (the limit moves, so they are passed in).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlobalRate {
    /// Emission interval: one request per `interval_us`.
    pub(crate) interval_us: u64,
    /// Burst tolerance of each tier (critical, standard, non-essential), in microseconds.
    pub(crate) tolerance_us: [u64; 3],
}

impl GlobalRate {
    /// `limit` requests per `window_us`, a burst of `burst` requests, tier shares of the burst.
    pub(crate) fn new(limit: u32, window_us: u64, burst: u64, shares: [f64; 3]) -> Self {
        let interval_us = (window_us / u64::from(limit.max(1))).max(1);
        let full = interval_us.saturating_mul(burst.max(1));
        Self {
            interval_us,
            tolerance_us: shares.map(|s| ((full as f64) * s.clamp(0.0, 1.0)) as u64),
        }
    }

    fn tolerance(&self, tier: Tier) -> u64 {
        self.tolerance_us[match tier {
            Tier::Critical => 0,
            Tier::Standard => 1,
            Tier::NonEssential => 2,
        }]
    }
}

/// The outcome of a look at the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GlobalView {
    pub(crate) allowed: bool,
    /// Whole requests of this tier the cell would still admit now.
    pub(crate) remaining: u64,
    /// Microseconds until a request of this tier would be admitted (0 when allowed).
    pub(crate) retry_after_us: u64,
}

impl GlobalCell {
    /// What a request of `tier` would get now, consuming nothing.
    pub(crate) fn peek(&self, rate: &GlobalRate, tier: Tier, now_us: u64) -> GlobalView {
        view(self.tat_us.load(Ordering::Acquire), rate, tier, now_us)
    }

    /// Admits one request of `tier` if the cell has room for it, atomically.
    pub(crate) fn try_take(&self, rate: &GlobalRate, tier: Tier, now_us: u64) -> bool {
        let mut tat = self.tat_us.load(Ordering::Acquire);
        loop {
            if !view(tat, rate, tier, now_us).allowed {
                return false;
            }
            let new_tat = tat.max(now_us).saturating_add(rate.interval_us);
            match self.tat_us.compare_exchange_weak(
                tat,
                new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Forgets the schedule.
    pub(crate) fn reset(&self) {
        self.tat_us.store(0, Ordering::Release);
    }
}

fn view(tat: u64, rate: &GlobalRate, tier: Tier, now_us: u64) -> GlobalView {
    let backlog = tat.saturating_sub(now_us);
    let tolerance = rate.tolerance(tier);
    // Admit iff the schedule after this request stays within the tier's tolerance.
    let after = backlog.saturating_add(rate.interval_us);
    let allowed = after <= tolerance.saturating_add(rate.interval_us);
    let room = (tolerance.saturating_add(rate.interval_us)).saturating_sub(after);
    GlobalView {
        allowed,
        remaining: if allowed { room / rate.interval_us } else { 0 },
        retry_after_us: if allowed {
            0
        } else {
            (after - tolerance - rate.interval_us).max(1)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_SHARES: [f64; 3] = [1.0, 0.8, 0.6];

    #[test]
    fn admits_the_burst_then_the_rate() {
        // 10 per second with a burst of 5: 5 + 1 at once, then one per 100 ms.
        let rate = GlobalRate::new(10, 1_000_000, 5, ALL_SHARES);
        let cell = GlobalCell::default();
        let admitted = (0..20)
            .filter(|_| cell.try_take(&rate, Tier::Critical, 0))
            .count();
        assert_eq!(admitted, 6);
        assert!(!cell.try_take(&rate, Tier::Critical, 50_000));
        assert!(cell.try_take(&rate, Tier::Critical, 100_000));
    }

    #[test]
    fn lower_tiers_leave_the_top_of_the_burst_to_critical_work() {
        let rate = GlobalRate::new(100, 1_000_000, 10, ALL_SHARES);
        let cell = GlobalCell::default();
        let non_essential = (0..50)
            .filter(|_| cell.try_take(&rate, Tier::NonEssential, 0))
            .count();
        let standard = (0..50)
            .filter(|_| cell.try_take(&rate, Tier::Standard, 0))
            .count();
        let critical = (0..50)
            .filter(|_| cell.try_take(&rate, Tier::Critical, 0))
            .count();
        assert_eq!((non_essential, standard, critical), (7, 2, 2));
        let denied = cell.peek(&rate, Tier::Standard, 0);
        assert!(!denied.allowed && denied.retry_after_us > 0);
    }

    #[test]
    fn never_admits_more_than_the_rate_plus_the_burst() {
        let rate = GlobalRate::new(50, 1_000_000, 25, ALL_SHARES);
        let cell = GlobalCell::default();
        let mut admitted = 0u64;
        // One attempt every millisecond for ten seconds.
        for ms in 0..10_000u64 {
            if cell.try_take(&rate, Tier::Critical, ms * 1000) {
                admitted += 1;
            }
        }
        assert!(admitted <= 50 * 10 + 25 + 1, "{admitted}");
        assert!(admitted >= 50 * 10, "{admitted}");
    }
}
