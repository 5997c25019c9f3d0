//! Sliding window log, exact (ThrottleKit TK-008).

use std::collections::VecDeque;

use super::{effective_cost, RateDecision, Strategy, StrategyError};

/// Sliding window log: at most `limit` units in any trailing `window_ms`, counted exactly.
///
/// Records when each admitted unit was admitted and counts those still inside the trailing window
/// (a unit admitted at `t` leaves it at `t + window_ms`):
///
/// ```text
/// count = units with t + window_ms > now
/// allow iff count + cost ≤ limit
///   allow: record cost units at now, remaining = limit − (count + cost),
///          reset_at = oldest recorded t + window_ms
///   deny:  remaining = limit − count, reset_at = oldest live t + window_ms (now + window_ms if none),
///          retry_after = (k-th oldest live t) + window_ms − now, with k = clamp(count + cost − limit, 1, count),
///                        or window_ms when nothing is live
/// ```
///
/// Exact: the units admitted in any window of `window_ms` never exceed the limit. Memory: units
/// admitted at the same millisecond share one 16-byte entry, so a key holds at most
/// `min(limit, window_ms)` entries (ThrottleKit stores one sorted-set member per unit). Use it for
/// low limits where precision matters; [`SlidingWindow`](super::SlidingWindow) is the
/// bounded-memory alternative.
///
/// Clock jumps: admissions are recorded at `max(now, newest recorded time)`, so the log stays
/// sorted and a backwards clock makes units expire later, never earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowLog {
    limit: u64,
    window_ms: u64,
}

/// Units admitted at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    at_ms: u64,
    units: u64,
}

/// Per-key log state: admission times in ascending order with their unit counts. The default (an
/// empty log) is a cold key and allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingWindowLogState {
    stamps: VecDeque<Stamp>,
    /// Units over all stamps, expired or not.
    total: u64,
}

impl SlidingWindowLogState {
    /// The number of stored admission instants (expired ones are pruned on the next admission).
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }
}

/// The live part of a log at one instant.
struct Live {
    /// Leading stamps that have left the window.
    expired: usize,
    /// Units still inside the window.
    count: u64,
}

impl SlidingWindowLog {
    /// At most `limit` units in any trailing `window_ms` milliseconds.
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroLimit`] or [`StrategyError::ZeroWindow`] when the corresponding
    /// parameter is 0.
    pub fn new(limit: u64, window_ms: u64) -> Result<Self, StrategyError> {
        if limit == 0 {
            return Err(StrategyError::ZeroLimit);
        }
        if window_ms == 0 {
            return Err(StrategyError::ZeroWindow);
        }
        Ok(Self { limit, window_ms })
    }

    /// Units admitted in any trailing window; the reported `limit` of each decision.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length, in ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The same log with a new `limit` (0 is clamped to 1). O(1), allocation-free; recorded units
    /// keep counting until they leave the window.
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        Self {
            limit: limit.max(1),
            ..self
        }
    }

    fn expires_at(&self, stamp: &Stamp) -> u64 {
        stamp.at_ms.saturating_add(self.window_ms)
    }

    fn live(&self, state: &SlidingWindowLogState, now_ms: u64) -> Live {
        let mut expired = 0;
        let mut gone = 0u64;
        for stamp in &state.stamps {
            if self.expires_at(stamp) > now_ms {
                break;
            }
            expired += 1;
            gone = gone.saturating_add(stamp.units);
        }
        Live {
            expired,
            count: state.total.saturating_sub(gone),
        }
    }

    fn oldest_live_reset(&self, state: &SlidingWindowLogState, live: &Live, now_ms: u64) -> u64 {
        let oldest = state.stamps.get(live.expired).map_or(now_ms, |s| s.at_ms);
        oldest.saturating_add(self.window_ms)
    }

    fn denial(
        &self,
        state: &SlidingWindowLogState,
        live: &Live,
        now_ms: u64,
        cost: u64,
    ) -> RateDecision {
        let retry = if live.count == 0 {
            // Only a cost above the limit is denied on an empty log: it can never fit.
            self.window_ms
        } else {
            // The k-th oldest live unit must leave before `cost` more fit.
            let k = live
                .count
                .saturating_add(cost)
                .saturating_sub(self.limit)
                .clamp(1, live.count);
            let mut seen = 0u64;
            let mut reference = now_ms;
            for stamp in state.stamps.iter().skip(live.expired) {
                seen = seen.saturating_add(stamp.units);
                if seen >= k {
                    reference = stamp.at_ms;
                    break;
                }
            }
            reference
                .saturating_add(self.window_ms)
                .saturating_sub(now_ms)
        };
        RateDecision::deny(
            self.limit,
            self.limit.saturating_sub(live.count),
            self.oldest_live_reset(state, live, now_ms),
            retry,
        )
    }
}

impl Strategy for SlidingWindowLog {
    type State = SlidingWindowLogState;

    fn check(&self, state: &mut SlidingWindowLogState, now_ms: u64, cost: u64) -> RateDecision {
        let cost = effective_cost(cost);
        let live = self.live(state, now_ms);
        let admitted = match live.count.checked_add(cost) {
            Some(n) if n <= self.limit => n,
            _ => return self.denial(state, &live, now_ms, cost),
        };
        state.stamps.drain(..live.expired);
        state.total = admitted;
        match state.stamps.back_mut() {
            Some(newest) if newest.at_ms >= now_ms => newest.units += cost,
            _ => state.stamps.push_back(Stamp {
                at_ms: now_ms,
                units: cost,
            }),
        }
        // Give memory back after a burst under a since-lowered limit.
        let len = state.stamps.len();
        if state.stamps.capacity() > 64 && len < state.stamps.capacity() / 4 {
            state.stamps.shrink_to(len * 2);
        }
        let reset_at = state
            .stamps
            .front()
            .map_or(now_ms, |s| s.at_ms)
            .saturating_add(self.window_ms);
        RateDecision::allow(self.limit, self.limit - admitted, reset_at)
    }

    fn peek(&self, state: &SlidingWindowLogState, now_ms: u64) -> RateDecision {
        let live = self.live(state, now_ms);
        if live.count < self.limit {
            RateDecision::allow(
                self.limit,
                self.limit - live.count,
                self.oldest_live_reset(state, &live, now_ms),
            )
        } else {
            self.denial(state, &live, now_ms, 1)
        }
    }

    fn is_idle(&self, state: &SlidingWindowLogState, now_ms: u64) -> bool {
        // Stamps are sorted: if the newest has left the window, all have.
        state
            .stamps
            .back()
            .is_none_or(|newest| self.expires_at(newest) <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn sliding_log_rejects_zero_parameters() {
        assert_eq!(
            SlidingWindowLog::new(0, 1000),
            Err(StrategyError::ZeroLimit)
        );
        assert_eq!(SlidingWindowLog::new(5, 0), Err(StrategyError::ZeroWindow));
    }

    #[test]
    fn sliding_log_counts_exactly_over_the_trailing_window() {
        let log = SlidingWindowLog::new(5, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        for (i, now) in [0, 100, 200, 300, 400].into_iter().enumerate() {
            assert_eq!(
                log.check(&mut s, now, 1),
                decision(true, 5, 4 - i as u64, 1000, 0)
            );
        }
        assert_eq!(log.check(&mut s, 500, 1), decision(false, 5, 0, 1000, 500));
        // The units at 0 and 100 have left at 1 100 (t + window ≤ now).
        assert_eq!(log.check(&mut s, 1100, 1), decision(true, 5, 1, 1200, 0));
    }

    #[test]
    fn sliding_log_retry_waits_for_the_kth_oldest_unit() {
        let log = SlidingWindowLog::new(5, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        log.check(&mut s, 0, 2);
        log.check(&mut s, 300, 2);
        log.check(&mut s, 600, 1);
        // Three more need three units to leave: the third oldest was admitted at 300.
        assert_eq!(log.check(&mut s, 700, 3), decision(false, 5, 0, 1000, 600));
        assert_eq!(log.check(&mut s, 700, 2), decision(false, 5, 0, 1000, 300));
        assert!(log.check(&mut s, 1300, 3).allowed);
    }

    #[test]
    fn sliding_log_cost_above_limit_waits_a_window_when_empty() {
        let log = SlidingWindowLog::new(5, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        assert_eq!(log.check(&mut s, 42, 6), decision(false, 5, 5, 1042, 1000));
        assert!(s.is_empty());
        log.check(&mut s, 50, 1);
        // k clamps to the live count: the newest (only) unit.
        assert_eq!(
            log.check(&mut s, 60, u64::MAX),
            decision(false, 5, 4, 1050, 990)
        );
    }

    #[test]
    fn sliding_log_denied_request_does_not_consume() {
        let log = SlidingWindowLog::new(3, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        log.check(&mut s, 0, 2);
        let before = s.clone();
        // Even at a time where expired stamps could be pruned, a denial changes nothing.
        assert!(!log.check(&mut s, 500, 2).allowed);
        assert_eq!(s, before);
    }

    #[test]
    fn sliding_log_merges_units_admitted_at_the_same_instant() {
        let log = SlidingWindowLog::new(100, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        for _ in 0..50 {
            log.check(&mut s, 7, 1);
        }
        assert_eq!(s.len(), 1);
        log.check(&mut s, 2000, 1);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn sliding_log_clock_moving_backwards_never_admits_more() {
        let log = SlidingWindowLog::new(2, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        log.check(&mut s, 5_000, 1);
        // Back in time: the unit at 5 000 still counts; this one is stamped at 5 000 too.
        assert!(log.check(&mut s, 3_000, 1).allowed);
        assert_eq!(
            log.check(&mut s, 3_000, 1),
            decision(false, 2, 0, 6000, 3000)
        );
        assert!(!log.check(&mut s, 5_999, 1).allowed);
        assert!(log.check(&mut s, 6_000, 2).allowed);
    }

    #[test]
    fn sliding_log_peek_and_idle() {
        let log = SlidingWindowLog::new(2, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        assert_eq!(log.peek(&s, 10), decision(true, 2, 2, 1010, 0));
        assert!(log.is_idle(&s, 10));
        log.check(&mut s, 10, 2);
        let mut probe = s.clone();
        assert_eq!(log.peek(&s, 20), log.check(&mut probe, 20, 1));
        assert!(!log.is_idle(&s, 1009));
        assert!(log.is_idle(&s, 1010));
    }

    #[test]
    fn sliding_log_with_limit_keeps_recorded_units() {
        let log = SlidingWindowLog::new(5, 1000).unwrap();
        let mut s = SlidingWindowLogState::default();
        log.check(&mut s, 0, 4);
        assert!(!log.with_limit(4).check(&mut s, 10, 1).allowed);
        assert!(log.with_limit(6).check(&mut s, 10, 2).allowed);
        assert_eq!(log.with_limit(0).limit(), 1);
    }

    #[test]
    fn sliding_log_releases_memory_after_the_limit_drops() {
        let log = SlidingWindowLog::new(10_000, 100_000).unwrap();
        let mut s = SlidingWindowLogState::default();
        for now in 0..5_000 {
            log.check(&mut s, now, 1);
        }
        let small = log.with_limit(3);
        small.check(&mut s, 200_000, 1);
        assert_eq!(s.len(), 1);
        assert!(s.stamps.capacity() < 64);
    }
}
