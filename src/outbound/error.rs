//! [`Deferred`]: the error of a call the coordinator refused, and the error type of its service.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::tokio_now;

/// The error type of a [`CoordinatorService`](super::CoordinatorService): the same type as
/// `tower::BoxError`, so `ServiceBuilder` stacks and `tower::BoxError` handlers take it as is.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call refused at once because its key's cooldown (or its canary) would outlast the call's
/// `max_wait`: retry at `not_before` at the earliest. The inner service was not called.
///
/// It reaches the caller boxed in a [`BoxError`]; find it with `downcast_ref`:
///
/// ```
/// use tower_adaptive_throttle::outbound::{BoxError, Deferred};
///
/// fn retry_at(error: &BoxError) -> Option<tokio::time::Instant> {
///     error.downcast_ref::<Deferred>().map(|d| d.not_before)
/// }
/// # let _ = retry_at;
/// ```
///
/// `not_before` is a [`tokio::time::Instant`], the clock the coordinator sleeps on: it honours
/// paused tokio time in tests, and [`Instant::into_std`] converts it. When the cooldown is over
/// but the canary has not answered within the call's bound, `not_before` is the moment of the
/// refusal (the wait left is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    /// The earliest time a retry can go through: the end of the cooldown in force.
    pub not_before: Instant,
}

impl Deferred {
    /// How long from now until `not_before` (zero if it has passed).
    pub fn retry_in(&self) -> Duration {
        self.not_before.saturating_duration_since(tokio_now())
    }
}

impl fmt::Display for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("call deferred: the upstream is rate limiting this key for longer than the call may wait")
    }
}

impl std::error::Error for Deferred {}
