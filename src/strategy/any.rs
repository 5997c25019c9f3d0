//! Every rate strategy behind one enum, so per-key state can be stored without generics.

use super::{
    FixedWindow, FixedWindowState, Gcra, GcraState, RateDecision, SlidingWindow, SlidingWindowLog,
    SlidingWindowLogState, SlidingWindowState, Strategy, TokenBucket, TokenBucketState,
};

/// Every rate strategy behind one enum so the throttle can store per-key state without generics.
///
/// Its state is [`AnyState`]. A state of another strategy's variant (or [`AnyState::Cold`]) is
/// treated as a cold key of the right one, so swapping the strategy at run time is safe; the state
/// is replaced only when a request is admitted (denials never change the state).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AnyStrategy {
    /// [`Gcra`].
    Gcra(Gcra),
    /// [`TokenBucket`].
    TokenBucket(TokenBucket),
    /// [`FixedWindow`].
    FixedWindow(FixedWindow),
    /// [`SlidingWindow`].
    SlidingWindow(SlidingWindow),
    /// [`SlidingWindowLog`].
    SlidingWindowLog(SlidingWindowLog),
}

/// Per-key state for [`AnyStrategy`]; the default is a cold key of any strategy.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum AnyState {
    /// A key that has never been admitted.
    #[default]
    Cold,
    /// State of a [`Gcra`].
    Gcra(GcraState),
    /// State of a [`TokenBucket`].
    TokenBucket(TokenBucketState),
    /// State of a [`FixedWindow`].
    FixedWindow(FixedWindowState),
    /// State of a [`SlidingWindow`].
    SlidingWindow(SlidingWindowState),
    /// State of a [`SlidingWindowLog`].
    SlidingWindowLog(SlidingWindowLogState),
}

impl AnyStrategy {
    /// The strategy's adjustable limit: the sustained rate of a [`Gcra`], the capacity of a
    /// [`TokenBucket`], the window limit of the windowed strategies. This is the value
    /// [`with_limit`](Self::with_limit) sets.
    pub fn limit(&self) -> u64 {
        match self {
            Self::Gcra(s) => s.limit(),
            Self::TokenBucket(s) => s.capacity(),
            Self::FixedWindow(s) => s.limit(),
            Self::SlidingWindow(s) => s.limit(),
            Self::SlidingWindowLog(s) => s.limit(),
        }
    }

    /// The same strategy with a new limit, through the variant's own `with_limit`: [`Gcra`] changes
    /// its rate (keeping period and burst), [`TokenBucket`] its capacity (scaling the refill rate so
    /// a full refill takes as long), the windows their limit. A limit of 0 is clamped to 1 (and a
    /// sliding window's to at most its maximum). O(1), allocation-free; existing states stay valid.
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        match self {
            Self::Gcra(s) => Self::Gcra(s.with_limit(limit)),
            Self::TokenBucket(s) => Self::TokenBucket(s.with_limit(limit)),
            Self::FixedWindow(s) => Self::FixedWindow(s.with_limit(limit)),
            Self::SlidingWindow(s) => Self::SlidingWindow(s.with_limit(limit)),
            Self::SlidingWindowLog(s) => Self::SlidingWindowLog(s.with_limit(limit)),
        }
    }
}

/// Runs `check` on the state of the right variant, or on a fresh cold one that is stored only if
/// the request is admitted.
macro_rules! check_variant {
    ($strategy:expr, $state:expr, $variant:ident, $now:expr, $cost:expr) => {{
        if let AnyState::$variant(inner) = $state {
            return $strategy.check(inner, $now, $cost);
        }
        let mut fresh = Default::default();
        let decision = $strategy.check(&mut fresh, $now, $cost);
        if decision.allowed {
            *$state = AnyState::$variant(fresh);
        }
        decision
    }};
}

/// Runs `peek` on the state of the right variant, or on a cold one.
macro_rules! peek_variant {
    ($strategy:expr, $state:expr, $variant:ident, $now:expr) => {{
        match $state {
            AnyState::$variant(inner) => $strategy.peek(inner, $now),
            _ => $strategy.peek(&Default::default(), $now),
        }
    }};
}

impl Strategy for AnyStrategy {
    type State = AnyState;

    fn check(&self, state: &mut AnyState, now_ms: u64, cost: u64) -> RateDecision {
        match self {
            Self::Gcra(s) => check_variant!(s, state, Gcra, now_ms, cost),
            Self::TokenBucket(s) => check_variant!(s, state, TokenBucket, now_ms, cost),
            Self::FixedWindow(s) => check_variant!(s, state, FixedWindow, now_ms, cost),
            Self::SlidingWindow(s) => check_variant!(s, state, SlidingWindow, now_ms, cost),
            Self::SlidingWindowLog(s) => check_variant!(s, state, SlidingWindowLog, now_ms, cost),
        }
    }

    fn peek(&self, state: &AnyState, now_ms: u64) -> RateDecision {
        match self {
            Self::Gcra(s) => peek_variant!(s, state, Gcra, now_ms),
            Self::TokenBucket(s) => peek_variant!(s, state, TokenBucket, now_ms),
            Self::FixedWindow(s) => peek_variant!(s, state, FixedWindow, now_ms),
            Self::SlidingWindow(s) => peek_variant!(s, state, SlidingWindow, now_ms),
            Self::SlidingWindowLog(s) => peek_variant!(s, state, SlidingWindowLog, now_ms),
        }
    }

    fn is_idle(&self, state: &AnyState, now_ms: u64) -> bool {
        match (self, state) {
            (Self::Gcra(s), AnyState::Gcra(inner)) => s.is_idle(inner, now_ms),
            (Self::TokenBucket(s), AnyState::TokenBucket(inner)) => s.is_idle(inner, now_ms),
            (Self::FixedWindow(s), AnyState::FixedWindow(inner)) => s.is_idle(inner, now_ms),
            (Self::SlidingWindow(s), AnyState::SlidingWindow(inner)) => s.is_idle(inner, now_ms),
            (Self::SlidingWindowLog(s), AnyState::SlidingWindowLog(inner)) => {
                s.is_idle(inner, now_ms)
            }
            // Cold, or another strategy's state: a cold key of this one.
            _ => true,
        }
    }
}

impl From<Gcra> for AnyStrategy {
    fn from(s: Gcra) -> Self {
        Self::Gcra(s)
    }
}

impl From<TokenBucket> for AnyStrategy {
    fn from(s: TokenBucket) -> Self {
        Self::TokenBucket(s)
    }
}

impl From<FixedWindow> for AnyStrategy {
    fn from(s: FixedWindow) -> Self {
        Self::FixedWindow(s)
    }
}

impl From<SlidingWindow> for AnyStrategy {
    fn from(s: SlidingWindow) -> Self {
        Self::SlidingWindow(s)
    }
}

impl From<SlidingWindowLog> for AnyStrategy {
    fn from(s: SlidingWindowLog) -> Self {
        Self::SlidingWindowLog(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<AnyStrategy> {
        vec![
            Gcra::new(10, 1000, 5).unwrap().into(),
            TokenBucket::new(5, 5.0).unwrap().into(),
            FixedWindow::new(5, 1000).unwrap().into(),
            SlidingWindow::new(5, 1000, 10).unwrap().into(),
            SlidingWindowLog::new(5, 1000).unwrap().into(),
        ]
    }

    #[test]
    fn any_strategy_matches_the_wrapped_strategy() {
        let gcra = Gcra::new(10, 1000, 5).unwrap();
        let any = AnyStrategy::from(gcra);
        let mut direct = GcraState::default();
        let mut wrapped = AnyState::default();
        for now in [0, 0, 0, 0, 0, 0, 100, 150, 1000] {
            assert_eq!(
                any.check(&mut wrapped, now, 1),
                gcra.check(&mut direct, now, 1)
            );
            assert_eq!(any.peek(&wrapped, now), gcra.peek(&direct, now));
        }
        assert_eq!(wrapped, AnyState::Gcra(direct));
    }

    #[test]
    fn any_strategy_treats_cold_and_foreign_state_as_cold() {
        let foreign = AnyState::FixedWindow(FixedWindowState::default());
        for strategy in all() {
            for state in [AnyState::Cold, foreign.clone()] {
                assert!(strategy.is_idle(&state, 0));
                assert_eq!(strategy.peek(&state, 0).remaining, 5);
                let mut state = state;
                assert!(strategy.check(&mut state, 0, 1).allowed);
                assert!(!strategy.is_idle(&state, 0));
            }
        }
    }

    #[test]
    fn any_strategy_denial_leaves_foreign_state_untouched() {
        let window = FixedWindow::new(5, 1000).unwrap();
        let mut fixed = FixedWindowState::default();
        window.check(&mut fixed, 0, 3);
        let mut state = AnyState::FixedWindow(fixed);
        let before = state.clone();
        let gcra = AnyStrategy::from(Gcra::new(10, 1000, 5).unwrap());
        assert!(!gcra.check(&mut state, 0, 6).allowed);
        assert_eq!(state, before);
    }

    #[test]
    fn any_strategy_with_limit_changes_the_adjustable_limit() {
        for strategy in all() {
            let raised = strategy.with_limit(8);
            assert_eq!(raised.limit(), 8);
            assert_eq!(strategy.with_limit(0).limit(), 1);
            assert_eq!(strategy.with_limit(strategy.limit()), strategy);
        }
    }
}
