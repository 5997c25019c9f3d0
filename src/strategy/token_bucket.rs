//! Token bucket (ThrottleKit TK-005).

use super::{ceil_u64, effective_cost, floor_u64, RateDecision, Strategy, StrategyError};

/// Token bucket: `capacity` tokens, refilled at `refill_per_sec` tokens per second.
///
/// The bucket refills continuously and a cold key starts full. With
/// `rate = refill_per_sec / 1000` tokens per ms:
///
/// ```text
/// tokens = min(capacity, tokens + max(0, now − last) · rate)
/// allow iff tokens ≥ cost
///   allow: tokens −= cost, remaining = floor(tokens), reset_at = now + ceil((capacity − tokens) / rate)
///   deny:  remaining = floor(tokens), reset_at = now + ceil((capacity − tokens) / rate),
///          retry_after = ceil((cost − tokens) / rate)
/// ```
///
/// The token count is fractional (`f64`) and every operation follows ThrottleKit's order, so the
/// integers match.
///
/// One deliberate difference: on an admission ThrottleKit stores `last = now` even when `now` went
/// backwards, which lets the next forward step refill the same interval twice. Here `last` never
/// moves backwards (`last = max(last, now)`), so a backwards clock cannot mint tokens. With a
/// monotone clock both are identical.
///
/// O(1) time, 24 bytes of state per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    capacity: u64,
    refill_per_sec: f64,
    /// `refill_per_sec / 1000`: tokens per ms.
    refill_per_ms: f64,
}

/// The level of a warm bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level {
    /// Tokens available as of `last_ms` (fractional).
    tokens: f64,
    /// When `tokens` was last brought current, in ms.
    last_ms: u64,
}

/// Per-key token-bucket state. The default is a cold key, whose bucket is full.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenBucketState {
    level: Option<Level>,
}

impl TokenBucketState {
    /// The stored (not yet refilled) token count and the time it was last brought current, or
    /// `None` for a cold key.
    pub fn level(&self) -> Option<(f64, u64)> {
        self.level.map(|l| (l.tokens, l.last_ms))
    }
}

/// Whether a per-ms rate gives finite, positive results for a bucket of `capacity`.
fn rate_is_usable(capacity: u64, refill_per_ms: f64) -> bool {
    refill_per_ms.is_finite()
        && refill_per_ms > 0.0
        && (capacity as f64 / refill_per_ms).is_finite()
}

impl TokenBucket {
    /// A bucket of `capacity` tokens refilled at `refill_per_sec` tokens per second (fractional
    /// rates are fine).
    ///
    /// # Errors
    ///
    /// [`StrategyError::ZeroCapacity`] when `capacity` is 0;
    /// [`StrategyError::InvalidRefillRate`] when `refill_per_sec` is not finite or not above 0, or
    /// is so extreme that the per-millisecond rate or the full-refill time is not a finite,
    /// positive number.
    pub fn new(capacity: u64, refill_per_sec: f64) -> Result<Self, StrategyError> {
        if capacity == 0 {
            return Err(StrategyError::ZeroCapacity);
        }
        let refill_per_ms = refill_per_sec / 1000.0;
        let valid = refill_per_sec.is_finite()
            && refill_per_sec > 0.0
            && rate_is_usable(capacity, refill_per_ms);
        if !valid {
            return Err(StrategyError::InvalidRefillRate {
                rate: refill_per_sec,
            });
        }
        Ok(Self {
            capacity,
            refill_per_sec,
            refill_per_ms,
        })
    }

    /// The bucket capacity: the largest burst, and the reported `limit` of each decision.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The refill rate, in tokens per second.
    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }

    /// The time an empty bucket takes to refill completely, in ms (`ceil(capacity / rate)`).
    pub fn full_refill_ms(&self) -> u64 {
        ceil_u64(self.capacity as f64 / self.refill_per_ms)
    }

    /// The same bucket with capacity `limit` and the refill rate scaled by `limit / capacity`, so a
    /// full bucket still refills in the same time. A `limit` of 0 is clamped to 1; a scaled rate
    /// that would leave `f64`'s finite positive range is clamped into it. O(1), allocation-free;
    /// existing states stay valid (a level above the new capacity is capped on the next refill).
    #[must_use]
    pub fn with_limit(self, limit: u64) -> Self {
        let limit = limit.max(1);
        if limit == self.capacity {
            return self;
        }
        let mut refill_per_sec = self.refill_per_sec * (limit as f64 / self.capacity as f64);
        if !refill_per_sec.is_finite() {
            refill_per_sec = f64::MAX;
        }
        let mut refill_per_ms = refill_per_sec / 1000.0;
        if refill_per_ms.is_nan() || refill_per_ms <= 0.0 {
            refill_per_sec = f64::MIN_POSITIVE * 1000.0;
            refill_per_ms = f64::MIN_POSITIVE;
        }
        Self {
            capacity: limit,
            refill_per_sec,
            refill_per_ms,
        }
    }

    /// The refilled token count at `now_ms` (a cold key is full).
    fn tokens_at(&self, state: &TokenBucketState, now_ms: u64) -> f64 {
        let capacity = self.capacity as f64;
        match state.level {
            None => capacity,
            Some(level) => {
                // max(0, now − last): jump-safe.
                let elapsed = now_ms.saturating_sub(level.last_ms) as f64;
                // ThrottleKit: min(capacity, tokens + elapsed * rate).
                (level.tokens + elapsed * self.refill_per_ms).min(capacity)
            }
        }
    }

    fn reset_at(&self, now_ms: u64, tokens: f64) -> u64 {
        now_ms.saturating_add(ceil_u64(
            (self.capacity as f64 - tokens) / self.refill_per_ms,
        ))
    }

    fn denial(&self, now_ms: u64, tokens: f64, cost: f64) -> RateDecision {
        RateDecision::deny(
            self.capacity,
            floor_u64(tokens),
            self.reset_at(now_ms, tokens),
            ceil_u64((cost - tokens) / self.refill_per_ms),
        )
    }
}

impl Strategy for TokenBucket {
    type State = TokenBucketState;

    fn check(&self, state: &mut TokenBucketState, now_ms: u64, cost: u64) -> RateDecision {
        let cost = effective_cost(cost);
        // Explicit so that costs beyond f64's integer precision cannot round down to the capacity.
        let fits = cost <= self.capacity;
        let cost = cost as f64;
        let tokens = self.tokens_at(state, now_ms);
        if fits && tokens >= cost {
            let tokens = tokens - cost;
            let last_ms = state.level.map_or(now_ms, |l| l.last_ms.max(now_ms));
            state.level = Some(Level { tokens, last_ms });
            return RateDecision::allow(
                self.capacity,
                floor_u64(tokens),
                self.reset_at(now_ms, tokens),
            );
        }
        self.denial(now_ms, tokens, cost)
    }

    fn peek(&self, state: &TokenBucketState, now_ms: u64) -> RateDecision {
        let tokens = self.tokens_at(state, now_ms);
        if tokens >= 1.0 {
            RateDecision::allow(
                self.capacity,
                floor_u64(tokens),
                self.reset_at(now_ms, tokens),
            )
        } else {
            self.denial(now_ms, tokens, 1.0)
        }
    }

    fn is_idle(&self, state: &TokenBucketState, now_ms: u64) -> bool {
        state.level.is_none() || self.tokens_at(state, now_ms) >= self.capacity as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::strategy::test_decision as decision;

    #[test]
    fn token_bucket_rejects_invalid_parameters() {
        assert_eq!(TokenBucket::new(0, 5.0), Err(StrategyError::ZeroCapacity));
        for rate in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
        ] {
            assert!(
                matches!(
                    TokenBucket::new(10, rate),
                    Err(StrategyError::InvalidRefillRate { .. })
                ),
                "rate {rate} accepted"
            );
        }
        // Finite per-ms rate, but the full-refill time would overflow f64.
        assert!(TokenBucket::new(u64::MAX, 1e-300).is_err());
        assert!(TokenBucket::new(10, 0.001).is_ok());
        assert!(TokenBucket::new(10, f64::MAX).is_ok());
    }

    #[test]
    fn token_bucket_matches_the_golden_example() {
        // TK-005: capacity 10, 5/s.
        let b = TokenBucket::new(10, 5.0).unwrap();
        let mut s = TokenBucketState::default();
        assert_eq!(b.check(&mut s, 0, 4), decision(true, 10, 6, 800, 0));
        assert_eq!(b.check(&mut s, 0, 6), decision(true, 10, 0, 2000, 0));
        assert_eq!(b.check(&mut s, 0, 1), decision(false, 10, 0, 2000, 200));
        assert_eq!(b.check(&mut s, 200, 1), decision(true, 10, 0, 2200, 0));
        assert_eq!(b.check(&mut s, 1000, 5), decision(false, 10, 4, 2200, 200));
        assert_eq!(
            b.check(&mut s, 10_000, 10),
            decision(true, 10, 0, 12_000, 0)
        );
    }

    #[test]
    fn token_bucket_fractional_refill_rounds_like_throttlekit() {
        // ThrottleKit 1.5.2's `tokenBucket/fractional-refill` vector: 3 tokens/s.
        let b = TokenBucket::new(7, 3.0).unwrap();
        let mut s = TokenBucketState::default();
        assert_eq!(b.check(&mut s, 1000, 7), decision(true, 7, 0, 3334, 0));
        assert_eq!(b.check(&mut s, 1000, 1), decision(false, 7, 0, 3334, 334));
        assert_eq!(b.check(&mut s, 1333, 1), decision(false, 7, 0, 3334, 1));
        assert_eq!(b.check(&mut s, 2000, 3), decision(true, 7, 0, 4334, 0));
    }

    #[test]
    fn token_bucket_denied_request_does_not_consume() {
        let b = TokenBucket::new(10, 5.0).unwrap();
        let mut s = TokenBucketState::default();
        b.check(&mut s, 0, 8);
        let before = s;
        assert!(!b.check(&mut s, 100, 3).allowed);
        assert_eq!(s, before);
        assert!(b.check(&mut s, 100, 2).allowed);
    }

    #[test]
    fn token_bucket_cost_above_capacity_is_always_denied() {
        let b = TokenBucket::new(10, 5.0).unwrap();
        let mut s = TokenBucketState::default();
        let d = b.check(&mut s, 0, 11);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 10);
        assert_eq!(s, TokenBucketState::default());
        assert!(!b.check(&mut s, u64::MAX, u64::MAX).allowed);
    }

    #[test]
    fn token_bucket_clock_moving_backwards_mints_no_tokens() {
        let b = TokenBucket::new(10, 10.0).unwrap();
        let mut s = TokenBucketState::default();
        assert!(b.check(&mut s, 10_000, 10).allowed);
        // Backwards: no refill, so nothing to spend.
        assert!(!b.check(&mut s, 5_000, 1).allowed);
        // Forward again by 100 ms from the newest time seen: exactly one token.
        assert!(b.check(&mut s, 10_100, 1).allowed);
        // Back again and spend nothing; then at 10 100 there is nothing left.
        assert!(!b.check(&mut s, 9_000, 1).allowed);
        assert!(!b.check(&mut s, 10_100, 1).allowed);
    }

    #[test]
    fn token_bucket_peek_reports_without_consuming() {
        let b = TokenBucket::new(10, 5.0).unwrap();
        let mut s = TokenBucketState::default();
        assert_eq!(b.peek(&s, 0), decision(true, 10, 10, 0, 0));
        b.check(&mut s, 0, 10);
        let peeked = b.peek(&s, 100);
        let mut probe = s;
        assert_eq!(peeked, b.check(&mut probe, 100, 1));
        assert_eq!(peeked, decision(false, 10, 0, 2000, 100));
    }

    #[test]
    fn token_bucket_is_idle_once_full_again() {
        let b = TokenBucket::new(10, 5.0).unwrap();
        let mut s = TokenBucketState::default();
        assert!(b.is_idle(&s, 0));
        b.check(&mut s, 0, 1);
        assert!(!b.is_idle(&s, 199));
        assert!(b.is_idle(&s, 200));
    }

    #[test]
    fn token_bucket_with_limit_keeps_the_full_refill_time() {
        let b = TokenBucket::new(10, 5.0).unwrap();
        let doubled = b.with_limit(20);
        assert_eq!(doubled.capacity(), 20);
        assert_eq!(doubled.refill_per_sec(), 10.0);
        assert_eq!(doubled.full_refill_ms(), b.full_refill_ms());
        assert_eq!(b.with_limit(10), b);
        assert_eq!(b.with_limit(0).capacity(), 1);
        // A level above a shrunken capacity is capped.
        let mut s = TokenBucketState::default();
        doubled.check(&mut s, 0, 1); // 19 tokens left
        let small = b.with_limit(4);
        assert_eq!(small.peek(&s, 0).remaining, 4);
        // Extreme scaling stays finite.
        let huge = TokenBucket::new(1, f64::MAX).unwrap().with_limit(u64::MAX);
        assert!(huge.refill_per_sec().is_finite());
        let tiny = TokenBucket::new(u64::MAX, 1e-3).unwrap().with_limit(1);
        assert!(tiny.refill_per_sec() > 0.0);
        let mut s = TokenBucketState::default();
        assert!(tiny.check(&mut s, 0, 1).allowed);
        assert!(!tiny.check(&mut s, 1, 1).allowed);
    }
}
