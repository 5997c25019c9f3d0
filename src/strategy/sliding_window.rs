//! Sub-bucketed sliding window counter (ThrottleKit TK-007).

use super::{ceil_u64, effective_cost, floor_u64, RateDecision, Strategy, StrategyError};

/// The largest number of sub-buckets a [`SlidingWindow`] accepts (ThrottleKit's cap).
pub const MAX_BUCKETS: u32 = 100_000;

/// ThrottleKit's default number of sub-buckets.
pub const DEFAULT_BUCKETS: u32 = 10;

/// The largest limit a [`SlidingWindow`] accepts: its sub-bucket counters are `u32`.
pub const MAX_SLIDING_WINDOW_LIMIT: u64 = u32::MAX as u64;

/// Sliding window: at most `limit` units in any trailing `window_ms`, estimated from `buckets`
/// sub-buckets.
///
/// The window of `window_ms` is cut into `S` sub-buckets of width `w = window_ms / S` (a float);
/// tick `c = floor(now / w)` is the current sub-bucket. A ring of `S + 1` slots holds the counts of
/// ticks `c − S ..= c`: the `S` newest fully, and the oldest weighted by the part of it still
/// inside the trailing window.
///
/// ```text
/// elapsed  = now − c·w,   weight = (w − elapsed) / w            (clamped to [0, 1])
/// estimate = Σ count(c − S + 1 ..= c) + count(c − S) · weight
/// allow iff estimate + cost ≤ limit
/// reset_at = ceil((c + 1)·w + window_ms)
///   allow: count(c) += cost, remaining = floor(limit − (estimate + cost))
///   deny:  remaining = floor(limit − estimate); with the excess D = estimate + cost − limit,
///          retry_after = ceil(D·w / oldest)       if oldest > 0 and D ≤ oldest · weight
///                        ceil((c + 1)·w − now)    otherwise (the next tick), at least 1
/// ```
///
/// The estimate never undercounts the `S` newest sub-buckets, so the units admitted in any `S`
/// consecutive sub-buckets never exceed the limit; the approximation error is at most one
/// sub-bucket. `S = 1` is the classic two-counter estimator. ThrottleKit's default is
/// [`DEFAULT_BUCKETS`] and its cap [`MAX_BUCKETS`].
///
/// Memory: the ring is a `Box<[u32]>` of `S + 1` counters allocated on a key's first admission
/// (`4·(S + 1)` bytes, 44 for the default), plus 32 bytes inline. A running total makes a check
/// O(1) while the key is busy, and O(min(S, ticks since the last admission)) after a pause.
/// Counters are 32-bit, so limits are capped at [`MAX_SLIDING_WINDOW_LIMIT`].
///
/// Clock jumps: when `now` falls before the newest sub-bucket already written (the clock went
/// backwards), the newest sub-bucket stays current with the oldest at full weight, so nothing is
/// forgotten early (ThrottleKit would read the ring as of the earlier time and could admit more).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    limit: u64,
    window_ms: u64,
    buckets: u32,
    /// Sub-bucket width `w = window_ms / buckets`, in ms.
    width: f64,
}

/// Per-key sliding-window state: a ring of `S + 1` sub-bucket counters. The default (no ring) is a
/// cold key; the ring is allocated on the first admission. A state whose ring does not have
/// `S + 1` slots for the strategy it is used with (for example after the bucket count changed) is
/// treated as cold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlidingWindowState {
    /// Slot `t mod (S + 1)` holds the count of tick `t`, for `t` in `newest − S ..= newest`.
    slots: Box<[u32]>,
    /// The newest tick written.
    newest: u64,
    /// The sum of all slots.
    total: u64,
}

impl SlidingWindowState {
    /// Units recorded in the ring (the `S + 1` newest sub-buckets as of the last admission).
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The window as seen at one instant.
struct View {
    /// The current tick (the newest written one if the clock went backwards).
    tick: u64,
    /// Units in the `S` newest sub-buckets.
    full: u64,
    /// Units in the oldest sub-bucket.
    oldest: u64,
    /// The share of the oldest sub-bucket still inside the window.
    weight: f64,
    /// How far the current tick's start lies ahead of `now` (0 unless the clock went backwards).
    ahead_ms: f64,
}

impl SlidingWindow {
    /// At most `limit` units in any trailing `window_ms` milliseconds, with `buckets` sub-buckets
    /// (ThrottleKit's default is [`DEFAULT_BUCKETS`]).
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroLimit`], [`StrategyError::ZeroWindow`] or
    /// [`StrategyError::ZeroBuckets`] when the corresponding parameter is 0;
    /// [`StrategyError::TooManyBuckets`] above [`MAX_BUCKETS`];
    /// [`StrategyError::LimitTooLarge`] above [`MAX_SLIDING_WINDOW_LIMIT`].
    pub fn new(limit: u64, window_ms: u64, buckets: u32) -> Result<Self, StrategyError> {
        if limit == 0 {
            return Err(StrategyError::ZeroLimit);
        }
        if limit > MAX_SLIDING_WINDOW_LIMIT {
            return Err(StrategyError::LimitTooLarge {
                limit,
                max: MAX_SLIDING_WINDOW_LIMIT,
            });
        }
        if window_ms == 0 {
            return Err(StrategyError::ZeroWindow);
        }
        if buckets == 0 {
            return Err(StrategyError::ZeroBuckets);
        }
        if buckets > MAX_BUCKETS {
            return Err(StrategyError::TooManyBuckets {
                buckets: u64::from(buckets),
            });
        }
        Ok(Self {
            limit,
            window_ms,
            buckets,
            width: window_ms as f64 / f64::from(buckets),
        })
    }

    /// Units admitted in any trailing window; the reported `limit` of each decision.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length, in ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The number of sub-buckets `S`.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The same window with a new `limit`, clamped to `1 ..= MAX_SLIDING_WINDOW_LIMIT`. O(1),
    /// allocation-free; recorded counts carry over (the ring size depends only on `buckets`).
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        Self {
            limit: limit.clamp(1, MAX_SLIDING_WINDOW_LIMIT),
            ..self
        }
    }

    fn ring_len(&self) -> u64 {
        u64::from(self.buckets) + 1
    }

    fn slot(&self, tick: u64) -> usize {
        // Less than `ring_len`, which fits in usize (at most 100 001).
        (tick % self.ring_len()) as usize
    }

    fn is_warm(&self, state: &SlidingWindowState) -> bool {
        state.slots.len() as u64 == self.ring_len()
    }

    fn view(&self, state: &SlidingWindowState, now_ms: u64) -> View {
        let now = now_ms as f64;
        let w = self.width;
        let s = u64::from(self.buckets);
        let tick = floor_u64(now / w);
        if !self.is_warm(state) {
            return View {
                tick,
                full: 0,
                oldest: 0,
                weight: 1.0,
                ahead_ms: 0.0,
            };
        }
        let (tick, weight, ahead_ms) = if state.newest > tick {
            // The clock went backwards: stay on the newest tick, from its start.
            let c = state.newest;
            (c, 1.0, c as f64 * w - now)
        } else {
            let elapsed = (now - tick as f64 * w).max(0.0);
            let weight = ((w - elapsed) / w).clamp(0.0, 1.0);
            (tick, weight, 0.0)
        };
        // Ticks newest − S ..= tick − S leave the S newest; the last of them is the oldest.
        let behind = tick - state.newest;
        let (full, oldest) = if behind > s {
            (0, 0)
        } else {
            let mut dropped = 0u64;
            let mut last = 0u64;
            for k in 0..=behind {
                // Tick newest − S + k lives in slot (newest + 1 + k) mod (S + 1).
                last = u64::from(state.slots[self.slot(state.newest.wrapping_add(1 + k))]);
                dropped = dropped.saturating_add(last);
            }
            (state.total.saturating_sub(dropped), last)
        };
        View {
            tick,
            full,
            oldest,
            weight,
            ahead_ms,
        }
    }

    fn reset_at(&self, tick: u64) -> u64 {
        ceil_u64((tick as f64 + 1.0) * self.width + self.window_ms as f64)
    }

    fn decide(&self, view: &View, now_ms: u64, cost: f64) -> (bool, f64, RateDecision) {
        let limit = self.limit as f64;
        let estimate = view.full as f64 + view.oldest as f64 * view.weight;
        let projected = estimate + cost;
        let reset_at = self.reset_at(view.tick);
        if projected <= limit {
            let decision = RateDecision::allow(self.limit, floor_u64(limit - projected), reset_at);
            return (true, estimate, decision);
        }
        let w = self.width;
        let excess = projected - limit;
        let oldest = view.oldest as f64;
        let retry = if view.oldest > 0 && excess <= oldest * view.weight {
            ceil_u64(view.ahead_ms + excess * w / oldest)
        } else {
            ceil_u64((view.tick as f64 + 1.0) * w - now_ms as f64)
        };
        let decision = RateDecision::deny(self.limit, floor_u64(limit - estimate), reset_at, retry);
        (false, estimate, decision)
    }

    /// Records `cost` units in `tick`, advancing (and if needed allocating) the ring.
    fn record(&self, state: &mut SlidingWindowState, tick: u64, cost: u64) {
        if !self.is_warm(state) {
            state.slots = vec![0; self.ring_len() as usize].into_boxed_slice();
            state.total = 0;
            state.newest = tick;
        } else if tick > state.newest {
            let behind = tick - state.newest;
            if behind >= self.ring_len() {
                state.slots.fill(0);
                state.total = 0;
            } else {
                for k in 1..=behind {
                    let i = self.slot(state.newest.wrapping_add(k));
                    state.total = state.total.saturating_sub(u64::from(state.slots[i]));
                    state.slots[i] = 0;
                }
            }
            state.newest = tick;
        }
        let i = self.slot(tick);
        let add = u32::try_from(cost).unwrap_or(u32::MAX);
        state.slots[i] = state.slots[i].saturating_add(add);
        state.total = state.total.saturating_add(u64::from(add));
    }
}

impl Strategy for SlidingWindow {
    type State = SlidingWindowState;

    fn check(&self, state: &mut SlidingWindowState, now_ms: u64, cost: u64) -> RateDecision {
        let cost = effective_cost(cost);
        let view = self.view(state, now_ms);
        let (allowed, _, decision) = self.decide(&view, now_ms, cost as f64);
        if allowed {
            // Admitted, so cost ≤ limit ≤ u32::MAX.
            self.record(state, view.tick, cost);
        }
        decision
    }

    fn peek(&self, state: &SlidingWindowState, now_ms: u64) -> RateDecision {
        let view = self.view(state, now_ms);
        let (allowed, estimate, decision) = self.decide(&view, now_ms, 1.0);
        if allowed {
            RateDecision {
                remaining: floor_u64(self.limit as f64 - estimate),
                ..decision
            }
        } else {
            decision
        }
    }

    fn is_idle(&self, state: &SlidingWindowState, now_ms: u64) -> bool {
        let view = self.view(state, now_ms);
        view.full == 0 && view.oldest == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn sliding_window_rejects_invalid_parameters() {
        assert_eq!(
            SlidingWindow::new(0, 1000, 10),
            Err(StrategyError::ZeroLimit)
        );
        assert_eq!(
            SlidingWindow::new(10, 0, 10),
            Err(StrategyError::ZeroWindow)
        );
        assert_eq!(
            SlidingWindow::new(10, 1000, 0),
            Err(StrategyError::ZeroBuckets)
        );
        assert_eq!(
            SlidingWindow::new(10, 1000, MAX_BUCKETS + 1),
            Err(StrategyError::TooManyBuckets {
                buckets: u64::from(MAX_BUCKETS) + 1
            })
        );
        assert_eq!(
            SlidingWindow::new(MAX_SLIDING_WINDOW_LIMIT + 1, 1000, 10),
            Err(StrategyError::LimitTooLarge {
                limit: MAX_SLIDING_WINDOW_LIMIT + 1,
                max: MAX_SLIDING_WINDOW_LIMIT
            })
        );
        assert!(SlidingWindow::new(MAX_SLIDING_WINDOW_LIMIT, 1, MAX_BUCKETS).is_ok());
    }

    #[test]
    fn sliding_window_weights_the_oldest_bucket() {
        // The golden `slidingWindow/limit10-1s-10buckets` suite.
        let sw = SlidingWindow::new(10, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        assert_eq!(sw.check(&mut s, 0, 6), decision(true, 10, 4, 1100, 0));
        assert_eq!(sw.check(&mut s, 500, 4), decision(true, 10, 0, 1600, 0));
        assert_eq!(sw.check(&mut s, 500, 1), decision(false, 10, 0, 1600, 100));
        // The excess (5) fits in the oldest bucket (6 at full weight): ceil(5·100/6) = 84.
        assert_eq!(sw.check(&mut s, 1000, 5), decision(false, 10, 0, 2100, 84));
        assert_eq!(sw.check(&mut s, 1500, 5), decision(true, 10, 1, 2600, 0));
    }

    #[test]
    fn sliding_window_oldest_bucket_fades_linearly() {
        let sw = SlidingWindow::new(10, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        sw.check(&mut s, 0, 10);
        // At 1050 the oldest bucket (tick 0, 10 units) is half outside the window: estimate 5.
        assert_eq!(sw.peek(&s, 1050).remaining, 5);
        // The excess (1) fades out of the oldest bucket (10 units per 100 ms) in 10 ms.
        assert_eq!(sw.check(&mut s, 1050, 6), decision(false, 10, 5, 2100, 10));
        assert!(sw.check(&mut s, 1050, 5).allowed);
    }

    #[test]
    fn sliding_window_denied_request_does_not_consume() {
        let sw = SlidingWindow::new(10, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        sw.check(&mut s, 0, 7);
        let before = s.clone();
        assert!(!sw.check(&mut s, 250, 4).allowed);
        assert_eq!(s, before);
        assert!(sw.check(&mut s, 250, 3).allowed);
    }

    #[test]
    fn sliding_window_cold_key_allocates_nothing_until_admitted() {
        let sw = SlidingWindow::new(3, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        assert!(!sw.check(&mut s, 0, 4).allowed);
        assert_eq!(s, SlidingWindowState::default());
        assert!(sw.check(&mut s, 0, 3).allowed);
        assert_eq!(s.slots.len(), 11);
    }

    #[test]
    fn sliding_window_forgets_after_a_long_pause() {
        let sw = SlidingWindow::new(5, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        sw.check(&mut s, 0, 5);
        assert!(!sw.is_idle(&s, 1099));
        assert!(sw.is_idle(&s, 1100));
        assert_eq!(sw.check(&mut s, 50_000, 5).remaining, 0);
        assert_eq!(s.total(), 5);
    }

    #[test]
    fn sliding_window_clock_moving_backwards_never_admits_more() {
        let sw = SlidingWindow::new(4, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        assert!(sw.check(&mut s, 5_000, 4).allowed);
        // Back by two seconds: the units at 5 000 still count, and the wait covers the gap.
        let d = sw.check(&mut s, 3_000, 1);
        assert!(!d.allowed);
        assert_eq!(d.reset_at, 6_100);
        assert_eq!(d.retry_after_ms, 2_100);
        assert!(!sw.check(&mut s, 5_999, 1).allowed);
        // From 6 000 the bucket at 5 000 is the oldest and fades: a quarter of it is gone at 6 025.
        assert!(!sw.check(&mut s, 6_000, 1).allowed);
        assert!(sw.check(&mut s, 6_025, 1).allowed);
    }

    #[test]
    fn sliding_window_state_from_another_bucket_count_reads_as_cold() {
        let ten = SlidingWindow::new(5, 1000, 10).unwrap();
        let four = SlidingWindow::new(5, 1000, 4).unwrap();
        let mut s = SlidingWindowState::default();
        ten.check(&mut s, 0, 5);
        assert!(four.is_idle(&s, 0));
        assert!(four.check(&mut s, 0, 5).allowed);
        assert_eq!(s.slots.len(), 5);
    }

    #[test]
    fn sliding_window_peek_reports_without_consuming() {
        let sw = SlidingWindow::new(10, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        assert_eq!(sw.peek(&s, 0), decision(true, 10, 10, 1100, 0));
        sw.check(&mut s, 0, 10);
        let mut probe = s.clone();
        assert_eq!(sw.peek(&s, 300), sw.check(&mut probe, 300, 1));
    }

    #[test]
    fn sliding_window_with_limit_keeps_counts() {
        let sw = SlidingWindow::new(10, 1000, 10).unwrap();
        let mut s = SlidingWindowState::default();
        sw.check(&mut s, 0, 8);
        assert!(!sw.with_limit(8).check(&mut s, 100, 1).allowed);
        assert!(sw.with_limit(9).check(&mut s, 100, 1).allowed);
        assert_eq!(sw.with_limit(0).limit(), 1);
        assert_eq!(sw.with_limit(u64::MAX).limit(), MAX_SLIDING_WINDOW_LIMIT);
    }

    #[test]
    fn sliding_window_single_bucket_is_the_two_counter_estimator() {
        let sw = SlidingWindow::new(10, 1000, 1).unwrap();
        let mut s = SlidingWindowState::default();
        sw.check(&mut s, 900, 10);
        // At 1 250, a quarter of the previous window has left: 10·0.75 = 7.5 → 2 remaining.
        assert_eq!(sw.peek(&s, 1250).remaining, 2);
        assert!(sw.check(&mut s, 1250, 2).allowed);
        assert!(!sw.check(&mut s, 1250, 1).allowed);
    }
}
