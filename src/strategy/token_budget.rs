//! Streaming token meter (ThrottleKit TK-023, `tokenBudget`).

use super::{effective_cost, window_start, RateDecision, Strategy, StrategyError};

/// Token budget: `budget` tokens per epoch-aligned window of `window_ms`.
///
/// Tokens are debited as they are produced (for example per chunk of a streamed LLM response):
///
/// ```text
/// window_start = floor(now / window_ms) · window_ms,   reset_at = window_start + window_ms
/// deny iff served ≥ budget                      retry_after = reset_at − now, remaining = 0
/// else served += tokens, allow with remaining = max(0, budget − served)
/// ```
///
/// The debit that crosses the budget counts in full and is admitted; every later debit in the
/// window is refused. The worst-case overshoot is therefore the largest single debit − 1 (0 with
/// per-token debits), independent of concurrency.
///
/// As with [`FixedWindow`](super::FixedWindow), a `now` that falls before the stored window (the
/// clock went backwards) keeps the stored window in force.
///
/// O(1) time, 16 bytes of state per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    budget: u64,
    window_ms: u64,
}

/// Per-key token-budget state: the window's start and the tokens served in it. The default (no
/// tokens served) is a cold key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBudgetState {
    start_ms: u64,
    served: u64,
}

impl TokenBudgetState {
    /// The start of the window the tokens were served in, in ms.
    pub fn window_start_ms(&self) -> u64 {
        self.start_ms
    }

    /// Tokens served in that window (may exceed the budget by the crossing debit).
    pub fn served(&self) -> u64 {
        self.served
    }
}

impl TokenBudget {
    /// A budget of `budget` tokens per epoch-aligned window of `window_ms` milliseconds.
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroBudget`] or [`StrategyError::ZeroWindow`] when the corresponding
    /// parameter is 0.
    pub fn new(budget: u64, window_ms: u64) -> Result<Self, StrategyError> {
        if budget == 0 {
            return Err(StrategyError::ZeroBudget);
        }
        if window_ms == 0 {
            return Err(StrategyError::ZeroWindow);
        }
        Ok(Self { budget, window_ms })
    }

    /// Tokens per window; the reported `limit` of each decision.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The window length, in ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The same meter with a new budget (0 is clamped to 1). O(1), allocation-free; tokens already
    /// served in the current window still count.
    #[must_use]
    pub fn with_limit(self, budget: u64) -> Self {
        Self {
            budget: budget.max(1),
            ..self
        }
    }

    /// Debits `tokens` at `now_ms`: denied (consuming nothing) once the window's budget is spent,
    /// otherwise admitted in full, even when it crosses the budget. A debit of 0 tokens counts as 1.
    pub fn debit(&self, state: &mut TokenBudgetState, now_ms: u64, tokens: u64) -> RateDecision {
        let (start, served) = self.current(state, now_ms);
        let reset_at = start.saturating_add(self.window_ms);
        if served >= self.budget {
            return self.denial(now_ms, reset_at);
        }
        let served = served.saturating_add(effective_cost(tokens));
        *state = TokenBudgetState {
            start_ms: start,
            served,
        };
        RateDecision::allow(self.budget, self.budget.saturating_sub(served), reset_at)
    }

    /// Gives back `tokens` debited in the window that starts at `window_start_ms` (a reservation
    /// larger than what was spent). A refund for a window that has already ended changes
    /// nothing: that window's budget is gone whatever was spent in it. Returns the tokens
    /// actually given back.
    pub fn refund(&self, state: &mut TokenBudgetState, window_start_ms: u64, tokens: u64) -> u64 {
        if state.start_ms != window_start_ms || state.served == 0 {
            return 0;
        }
        let given = tokens.min(state.served);
        state.served -= given;
        given
    }

    /// Charges `tokens` already spent (a reservation smaller than what was spent) to the window
    /// in force at `now_ms`, unconditionally: the work is done, so there is nothing left to
    /// refuse; later debits in the window see it.
    pub fn charge(&self, state: &mut TokenBudgetState, now_ms: u64, tokens: u64) {
        let (start, served) = self.current(state, now_ms);
        *state = TokenBudgetState {
            start_ms: start,
            served: served.saturating_add(tokens),
        };
    }

    /// The meter at `now_ms` without debiting: allowed while the budget is not spent, with the
    /// tokens still available.
    pub fn peek(&self, state: &TokenBudgetState, now_ms: u64) -> RateDecision {
        let (start, served) = self.current(state, now_ms);
        let reset_at = start.saturating_add(self.window_ms);
        if served >= self.budget {
            self.denial(now_ms, reset_at)
        } else {
            RateDecision::allow(self.budget, self.budget - served, reset_at)
        }
    }

    fn current(&self, state: &TokenBudgetState, now_ms: u64) -> (u64, u64) {
        let start = window_start(now_ms, self.window_ms);
        if state.served > 0 && state.start_ms >= start {
            (state.start_ms, state.served)
        } else {
            (start, 0)
        }
    }

    fn denial(&self, now_ms: u64, reset_at: u64) -> RateDecision {
        RateDecision::deny(self.budget, 0, reset_at, reset_at.saturating_sub(now_ms))
    }
}

/// The meter as a rate strategy: `check` is [`TokenBudget::debit`] with `cost` tokens.
impl Strategy for TokenBudget {
    type State = TokenBudgetState;

    fn check(&self, state: &mut TokenBudgetState, now_ms: u64, cost: u64) -> RateDecision {
        self.debit(state, now_ms, cost)
    }

    fn peek(&self, state: &TokenBudgetState, now_ms: u64) -> RateDecision {
        TokenBudget::peek(self, state, now_ms)
    }

    fn is_idle(&self, state: &TokenBudgetState, now_ms: u64) -> bool {
        self.current(state, now_ms).1 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn token_budget_rejects_zero_parameters() {
        assert_eq!(TokenBudget::new(0, 1000), Err(StrategyError::ZeroBudget));
        assert_eq!(TokenBudget::new(5, 0), Err(StrategyError::ZeroWindow));
    }

    #[test]
    fn token_budget_per_token_debits_stop_exactly_at_the_budget() {
        let b = TokenBudget::new(5, 60_000).unwrap();
        let mut s = TokenBudgetState::default();
        for remaining in (0..5).rev() {
            assert_eq!(
                b.debit(&mut s, 0, 1),
                decision(true, 5, remaining, 60_000, 0)
            );
        }
        assert_eq!(b.debit(&mut s, 0, 1), decision(false, 5, 0, 60_000, 60_000));
    }

    #[test]
    fn token_budget_crossing_debit_counts_in_full() {
        let b = TokenBudget::new(100, 60_000).unwrap();
        let mut s = TokenBudgetState::default();
        assert_eq!(b.debit(&mut s, 0, 80), decision(true, 100, 20, 60_000, 0));
        assert_eq!(b.debit(&mut s, 0, 50), decision(true, 100, 0, 60_000, 0));
        assert_eq!(s.served(), 130);
        assert_eq!(
            b.debit(&mut s, 0, 1),
            decision(false, 100, 0, 60_000, 60_000)
        );
    }

    #[test]
    fn token_budget_refills_when_the_window_rolls() {
        let b = TokenBudget::new(10, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        assert!(b.debit(&mut s, 0, 10).allowed);
        assert_eq!(b.debit(&mut s, 500, 1), decision(false, 10, 0, 1000, 500));
        assert_eq!(b.debit(&mut s, 1000, 6), decision(true, 10, 4, 2000, 0));
    }

    #[test]
    fn token_budget_denied_debit_does_not_consume() {
        let b = TokenBudget::new(3, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        b.debit(&mut s, 0, 3);
        let before = s;
        assert!(!b.debit(&mut s, 1, 1).allowed);
        assert_eq!(s, before);
    }

    #[test]
    fn token_budget_huge_debits_saturate() {
        let b = TokenBudget::new(3, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        assert!(b.debit(&mut s, 0, 2).allowed);
        assert_eq!(b.debit(&mut s, 0, u64::MAX).remaining, 0);
        assert_eq!(s.served(), u64::MAX);
        assert!(!b.debit(&mut s, 0, 1).allowed);
    }

    #[test]
    fn token_budget_peek_and_idle() {
        let b = TokenBudget::new(3, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        assert_eq!(b.peek(&s, 5), decision(true, 3, 3, 1000, 0));
        assert!(Strategy::is_idle(&b, &s, 5));
        Strategy::check(&b, &mut s, 5, 3);
        assert_eq!(b.peek(&s, 5), decision(false, 3, 0, 1000, 995));
        assert!(!Strategy::is_idle(&b, &s, 999));
        assert!(Strategy::is_idle(&b, &s, 1000));
    }

    #[test]
    fn token_budget_clock_moving_backwards_keeps_the_newer_window() {
        let b = TokenBudget::new(3, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        b.debit(&mut s, 2_500, 3);
        assert_eq!(b.debit(&mut s, 1_200, 1), decision(false, 3, 0, 3000, 1800));
    }

    #[test]
    fn token_budget_refunds_only_in_the_window_debited_and_charges_unconditionally() {
        let b = TokenBudget::new(10, 1000).unwrap();
        let mut s = TokenBudgetState::default();
        assert!(b.debit(&mut s, 0, 8).allowed);
        assert_eq!(b.refund(&mut s, 0, 5), 5);
        assert_eq!(s.served(), 3);
        b.charge(&mut s, 10, 9);
        assert_eq!(s.served(), 12);
        assert!(!b.debit(&mut s, 10, 1).allowed);
        // Refunds never go below zero, and a window that has ended is left alone.
        assert_eq!(b.refund(&mut s, 0, 100), 12);
        assert!(b.debit(&mut s, 1000, 4).allowed);
        assert_eq!(b.refund(&mut s, 0, 4), 0);
        assert_eq!(s.served(), 4);
    }
}
