//! Fixed window counter (ThrottleKit TK-006).

use super::{effective_cost, window_start, RateDecision, Strategy, StrategyError};

/// Fixed window: at most `limit` units per epoch-aligned window of `window_ms`.
///
/// Each window counts the units admitted in it:
///
/// ```text
/// window_start = floor(now / window_ms) · window_ms,   reset_at = window_start + window_ms
/// count        = stored count if the stored window is the current one, else 0
/// allow iff count + cost ≤ limit
///   allow: count += cost, remaining = limit − count
///   deny:  remaining = limit − count, retry_after = reset_at − now
/// ```
///
/// Windows reset on hard boundaries, so a client can spend the full limit at the
/// end of one window and again at the start of the next: up to `2 × limit` across one boundary
/// (ThrottleKit documents the same). Use [`SlidingWindow`](super::SlidingWindow) or
/// [`SlidingWindowLog`](super::SlidingWindowLog) for boundary-free limits.
///
/// Clock jumps: if `now` falls in a window *earlier* than the stored one, the stored (newer) window
/// keeps being used, so a backwards clock cannot re-open a spent window (ThrottleKit would count
/// from zero there).
///
/// O(1) time, 16 bytes of state per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    limit: u64,
    window_ms: u64,
}

/// Per-key fixed-window state: the window's start and the units admitted in it. The default (no
/// units) is a cold key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindowState {
    start_ms: u64,
    count: u64,
}

impl FixedWindowState {
    /// The start of the window the count belongs to, in ms.
    pub fn window_start_ms(&self) -> u64 {
        self.start_ms
    }

    /// Units admitted in that window.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl FixedWindow {
    /// At most `limit` units per epoch-aligned window of `window_ms` milliseconds.
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

    /// Units admitted per window; the reported `limit` of each decision.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length, in ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The same window with a new `limit` (0 is clamped to 1). O(1), allocation-free; the current
    /// window's count carries over, so lowering the limit below it denies until the window ends.
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        Self {
            limit: limit.max(1),
            ..self
        }
    }

    /// The window in force at `now_ms` and its count. A stored window newer than `now_ms` (the
    /// clock went backwards) stays in force.
    fn current(&self, state: &FixedWindowState, now_ms: u64) -> (u64, u64) {
        let start = window_start(now_ms, self.window_ms);
        if state.count > 0 && state.start_ms >= start {
            (state.start_ms, state.count)
        } else {
            (start, 0)
        }
    }

    fn denial(&self, now_ms: u64, count: u64, reset_at: u64) -> RateDecision {
        RateDecision::deny(
            self.limit,
            self.limit.saturating_sub(count),
            reset_at,
            reset_at.saturating_sub(now_ms),
        )
    }
}

impl Strategy for FixedWindow {
    type State = FixedWindowState;

    fn check(&self, state: &mut FixedWindowState, now_ms: u64, cost: u64) -> RateDecision {
        let cost = effective_cost(cost);
        let (start, count) = self.current(state, now_ms);
        let reset_at = start.saturating_add(self.window_ms);
        match count.checked_add(cost) {
            Some(new_count) if new_count <= self.limit => {
                *state = FixedWindowState {
                    start_ms: start,
                    count: new_count,
                };
                RateDecision::allow(self.limit, self.limit - new_count, reset_at)
            }
            _ => self.denial(now_ms, count, reset_at),
        }
    }

    fn peek(&self, state: &FixedWindowState, now_ms: u64) -> RateDecision {
        let (start, count) = self.current(state, now_ms);
        let reset_at = start.saturating_add(self.window_ms);
        if count < self.limit {
            RateDecision::allow(self.limit, self.limit - count, reset_at)
        } else {
            self.denial(now_ms, count, reset_at)
        }
    }

    fn is_idle(&self, state: &FixedWindowState, now_ms: u64) -> bool {
        self.current(state, now_ms).1 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn fixed_window_rejects_zero_parameters() {
        assert_eq!(FixedWindow::new(0, 1000), Err(StrategyError::ZeroLimit));
        assert_eq!(FixedWindow::new(5, 0), Err(StrategyError::ZeroWindow));
    }

    #[test]
    fn fixed_window_counts_per_epoch_aligned_window() {
        let w = FixedWindow::new(5, 1000).unwrap();
        let mut s = FixedWindowState::default();
        assert_eq!(w.check(&mut s, 0, 1), decision(true, 5, 4, 1000, 0));
        assert_eq!(w.check(&mut s, 100, 1), decision(true, 5, 3, 1000, 0));
        assert_eq!(w.check(&mut s, 200, 3), decision(true, 5, 0, 1000, 0));
        assert_eq!(w.check(&mut s, 300, 1), decision(false, 5, 0, 1000, 700));
        assert_eq!(w.check(&mut s, 1000, 1), decision(true, 5, 4, 2000, 0));
        assert_eq!(w.check(&mut s, 1999, 4), decision(true, 5, 0, 2000, 0));
        assert_eq!(w.check(&mut s, 2000, 1), decision(true, 5, 4, 3000, 0));
    }

    #[test]
    fn fixed_window_denied_request_does_not_consume() {
        let w = FixedWindow::new(5, 1000).unwrap();
        let mut s = FixedWindowState::default();
        w.check(&mut s, 0, 3);
        let before = s;
        assert!(!w.check(&mut s, 10, 3).allowed);
        assert_eq!(s, before);
        assert!(w.check(&mut s, 10, 2).allowed);
    }

    #[test]
    fn fixed_window_cost_above_limit_is_denied_without_overflow() {
        let w = FixedWindow::new(5, 1000).unwrap();
        let mut s = FixedWindowState::default();
        assert!(!w.check(&mut s, 0, 6).allowed);
        w.check(&mut s, 0, 1);
        assert!(!w.check(&mut s, 0, u64::MAX).allowed);
        let d = w.check(&mut s, u64::MAX, u64::MAX);
        assert!(!d.allowed);
        assert!(d.retry_after_ms >= 1);
    }

    #[test]
    fn fixed_window_clock_moving_backwards_keeps_the_newer_window() {
        let w = FixedWindow::new(2, 1000).unwrap();
        let mut s = FixedWindowState::default();
        assert!(w.check(&mut s, 5_500, 2).allowed);
        let d = w.check(&mut s, 4_200, 1);
        assert_eq!(d, decision(false, 2, 0, 6000, 1800));
        assert!(w.check(&mut s, 6_000, 1).allowed);
    }

    #[test]
    fn fixed_window_peek_reports_without_consuming() {
        let w = FixedWindow::new(2, 1000).unwrap();
        let mut s = FixedWindowState::default();
        assert_eq!(w.peek(&s, 10), decision(true, 2, 2, 1000, 0));
        w.check(&mut s, 10, 2);
        let mut probe = s;
        assert_eq!(w.peek(&s, 10), w.check(&mut probe, 10, 1));
    }

    #[test]
    fn fixed_window_is_idle_when_the_window_has_passed() {
        let w = FixedWindow::new(2, 1000).unwrap();
        let mut s = FixedWindowState::default();
        assert!(w.is_idle(&s, 0));
        w.check(&mut s, 10, 1);
        assert!(!w.is_idle(&s, 999));
        assert!(w.is_idle(&s, 1000));
    }

    #[test]
    fn fixed_window_with_limit_keeps_the_count() {
        let w = FixedWindow::new(5, 1000).unwrap();
        let mut s = FixedWindowState::default();
        w.check(&mut s, 0, 4);
        assert!(!w.with_limit(3).check(&mut s, 0, 1).allowed);
        assert_eq!(w.with_limit(6).check(&mut s, 0, 2).remaining, 0);
        assert_eq!(w.with_limit(0).limit(), 1);
    }
}
