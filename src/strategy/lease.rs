//! Client-held lease spender (ThrottleKit TK-021, `LeaseSpender`).

use super::{effective_cost, RateDecision, StrategyError};

/// Spends credits leased from a coordinator, one key per spender.
///
/// A coordinator (ThrottleKit's `Fleet.Reserve`, or the crate's own shared store) grants a client
/// `capacity` credits valid until `expires_at`, the end of the coordinator's window. The client
/// spends them locally without a round trip; the spender only ever subtracts:
///
/// ```text
/// grant(capacity, expires_at): credits += capacity, coupled to expires_at
/// spend(now, cost):
///   window-coupled and now ≥ expires_at  →  credits = 0   (the granting window has rolled)
///   credits ≥ cost  →  credits −= cost,
///                      Allowed { limit, remaining = credits, reset_at = expires_at, retry 0 }
///   otherwise       →  NeedsRefresh   (never a synthesized denial: the coordinator decides)
/// ```
///
/// **Window coupling** is what makes leasing exact: credits never outlive the window that granted
/// them, so the units admitted per window across any number of clients never exceed the
/// coordinator's limit. Without it (carry-over mode) each client can carry up to `batch − 1`
/// credits into the next window. The spender is a few words of memory.
///
/// One refinement over ThrottleKit, in a case its vectors do not cover: in window-coupled mode a
/// grant for a *later* window than the credits held replaces them (the coordinator has already
/// moved on, so they belong to a closed window), and a grant for an *earlier* window than the
/// credits held is stale and ignored. ThrottleKit adds both and moves the expiry to the newest
/// grant, which would let leftover credits spill into the next window.
///
/// Pure and synchronous: `now` is passed to every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSpender {
    limit: u64,
    window_coupled: bool,
    credits: u64,
    expires_at: Option<u64>,
}

/// The outcome of [`LeaseSpender::spend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseSpend {
    /// Served from local credits; the decision is always an allow.
    Allowed(RateDecision),
    /// Not enough local credits: reserve more from the coordinator (and surface its denial if it
    /// grants nothing).
    NeedsRefresh,
}

impl LeaseSpender {
    /// A spender with no credits, reporting `limit` (the coordinator's policy limit) in its
    /// decisions. With `window_coupled`, credits are discarded once their window has ended;
    /// without it they carry over.
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroLimit`] when `limit` is 0.
    pub fn new(limit: u64, window_coupled: bool) -> Result<Self, StrategyError> {
        if limit == 0 {
            return Err(StrategyError::ZeroLimit);
        }
        Ok(Self {
            limit,
            window_coupled,
            credits: 0,
            expires_at: None,
        })
    }

    /// The policy limit reported in each decision.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether credits are discarded when their window ends.
    pub fn is_window_coupled(&self) -> bool {
        self.window_coupled
    }

    /// Credits held (a window-coupled discard is applied lazily, on the next [`spend`](Self::spend)).
    pub fn credits(&self) -> u64 {
        self.credits
    }

    /// The window end the credits are coupled to, in ms, or `None` before the first grant.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Applies a grant of `capacity` credits valid until `expires_at` (ms, the coordinator's window
    /// end). Credits add up within one window; in window-coupled mode, a grant for a later window
    /// replaces credits held for an earlier one, and a grant for an earlier window than the
    /// credits held is ignored.
    pub fn grant(&mut self, capacity: u64, expires_at: u64) {
        match self.expires_at {
            Some(current) if self.window_coupled && self.credits > 0 && current != expires_at => {
                if expires_at > current {
                    self.credits = capacity;
                    self.expires_at = Some(expires_at);
                }
            }
            _ => {
                self.credits = self.credits.saturating_add(capacity);
                self.expires_at = Some(expires_at);
            }
        }
    }

    /// Serves `cost` units (0 counts as 1) from local credits at `now_ms`, or asks for a refresh.
    /// In window-coupled mode, credits whose window has ended (`now_ms ≥ expires_at`) are discarded
    /// first.
    pub fn spend(&mut self, now_ms: u64, cost: u64) -> LeaseSpend {
        let cost = effective_cost(cost);
        if self.window_coupled && self.expires_at.is_some_and(|end| now_ms >= end) {
            self.credits = 0;
        }
        if self.credits < cost {
            return LeaseSpend::NeedsRefresh;
        }
        self.credits -= cost;
        LeaseSpend::Allowed(RateDecision::allow(
            self.limit,
            self.credits,
            self.expires_at.unwrap_or(now_ms),
        ))
    }

    /// Forgets all credits and the window coupling (for example after a reconnect).
    pub fn reset(&mut self) {
        self.credits = 0;
        self.expires_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(limit: u64, remaining: u64, reset_at: u64) -> LeaseSpend {
        LeaseSpend::Allowed(RateDecision::allow(limit, remaining, reset_at))
    }

    #[test]
    fn lease_rejects_a_zero_limit() {
        assert_eq!(LeaseSpender::new(0, true), Err(StrategyError::ZeroLimit));
    }

    #[test]
    fn lease_without_a_grant_needs_a_refresh() {
        let mut l = LeaseSpender::new(5, true).unwrap();
        assert_eq!(l.spend(0, 1), LeaseSpend::NeedsRefresh);
        assert_eq!(l.expires_at(), None);
    }

    #[test]
    fn lease_spends_to_exhaustion_then_asks_for_more() {
        let mut l = LeaseSpender::new(5, true).unwrap();
        l.grant(5, 1000);
        for remaining in (0..5).rev() {
            assert_eq!(l.spend(0, 1), allowed(5, remaining, 1000));
        }
        assert_eq!(l.spend(0, 1), LeaseSpend::NeedsRefresh);
    }

    #[test]
    fn lease_window_coupled_credits_expire_with_their_window() {
        let mut l = LeaseSpender::new(5, true).unwrap();
        l.grant(5, 1000);
        assert_eq!(l.spend(0, 2), allowed(5, 3, 1000));
        assert_eq!(l.spend(1000, 1), LeaseSpend::NeedsRefresh);
        assert_eq!(l.credits(), 0);
        l.grant(5, 2000);
        assert_eq!(l.spend(1000, 1), allowed(5, 4, 2000));
    }

    #[test]
    fn lease_carry_over_keeps_credits_past_the_window() {
        let mut l = LeaseSpender::new(5, false).unwrap();
        l.grant(5, 1000);
        assert_eq!(l.spend(0, 2), allowed(5, 3, 1000));
        assert_eq!(l.spend(2000, 1), allowed(5, 2, 1000));
        assert_eq!(l.spend(2000, 2), allowed(5, 0, 1000));
        assert_eq!(l.spend(2000, 1), LeaseSpend::NeedsRefresh);
    }

    #[test]
    fn lease_insufficient_credits_are_kept_for_smaller_costs() {
        let mut l = LeaseSpender::new(100, true).unwrap();
        l.grant(5, 1000);
        assert_eq!(l.spend(0, 8), LeaseSpend::NeedsRefresh);
        assert_eq!(l.credits(), 5);
        l.grant(10, 1000);
        assert_eq!(l.spend(0, 8), allowed(100, 7, 1000));
    }

    #[test]
    fn lease_grant_for_a_later_window_replaces_leftover_credits() {
        let mut l = LeaseSpender::new(10, true).unwrap();
        l.grant(4, 1000);
        // The coordinator's clock is ahead: it already grants from the next window.
        l.grant(6, 2000);
        assert_eq!(l.credits(), 6);
        assert_eq!(l.expires_at(), Some(2000));
        // A late grant for the earlier window is stale.
        l.grant(3, 1000);
        assert_eq!(l.credits(), 6);
        assert_eq!(l.expires_at(), Some(2000));
    }

    #[test]
    fn lease_carry_over_adds_grants_across_windows() {
        let mut l = LeaseSpender::new(10, false).unwrap();
        l.grant(4, 1000);
        l.grant(6, 2000);
        assert_eq!(l.credits(), 10);
        assert_eq!(l.expires_at(), Some(2000));
    }

    #[test]
    fn lease_zero_cost_counts_as_one_and_reset_forgets() {
        let mut l = LeaseSpender::new(3, true).unwrap();
        l.grant(u64::MAX, 1000);
        l.grant(5, 1000);
        assert_eq!(l.credits(), u64::MAX);
        assert_eq!(l.spend(0, 0), allowed(3, u64::MAX - 1, 1000));
        l.reset();
        assert_eq!(l.spend(0, 1), LeaseSpend::NeedsRefresh);
    }
}
