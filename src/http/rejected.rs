//! The marker a throttle's 429 response carries, so an outer layer (the dead-letter queue's
//! capture) can tell the throttle's own rejections from the service's.

use crate::decision::{RejectReason, Tier};

/// Response extension that marks a 429 as the throttle's own rejection.
///
/// The throttle's HTTP layer inserts it into the extensions of every 429 it produces:
///
/// ```
/// use tower_adaptive_throttle::dlq::ThrottleRejected;
/// use tower_adaptive_throttle::{RejectReason, Tier};
///
/// let mut response = http::Response::new(());
/// *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
/// response
///     .extensions_mut()
///     .insert(ThrottleRejected::new(RejectReason::RateLimitExceeded, Tier::Standard));
/// ```
///
/// The dead-letter capture layer (`DeadLetterLayer`, feature `dlq`) stores a request only when
/// its response is a 429 **and** carries this marker, so 429s produced by the application itself
/// (or by an upstream) are never mistaken for throttle rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ThrottleRejected {
    /// Why the throttle rejected the request.
    pub reason: RejectReason,
    /// The tier the request was checked as.
    pub tier: Tier,
}

impl ThrottleRejected {
    /// A marker for a rejection of a `tier` request for `reason`.
    pub const fn new(reason: RejectReason, tier: Tier) -> Self {
        Self { reason, tier }
    }
}
