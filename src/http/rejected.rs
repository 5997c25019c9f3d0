//! What a throttle's 429 response carries for an outer layer (the dead-letter queue's capture):
//! the marker telling the throttle's own rejections from the service's, and the rejected
//! request's unread body.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

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
/// (or by an upstream) are never mistaken for throttle rejections. It reads the request's body
/// from the [`RejectedBody`] next to the marker: a rejecter of your own that inserts only the
/// marker gets body-less requests stored, and the others counted, not stored.
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

/// Response extension holding the unread body of a request the throttle rejected, so a layer
/// outside it can still read what the inner service never received.
///
/// The throttle's HTTP layer inserts it next to [`ThrottleRejected`] in every 429 it produces.
/// The body is untouched: the throttle decides before anything reads it, so an admitted
/// request's body streams to the inner service unread and only a rejected one is handed back.
/// The dead-letter capture (`DeadLetterLayer`, feature `dlq`) takes it from the 429 and reads
/// it, up to its size limit, to store the request for replay.
///
/// [`take`](Self::take) hands the body out once; later calls, and clones of the extension
/// (which share the slot), get `None`. `B` is the request body type as the throttle received
/// it, and the extension is found only under that type (`extensions().get::<RejectedBody<B>>()`);
/// a layer between the two that changes the body type hides it.
///
/// A layer of your own that rejects on the throttle's behalf can hand the body back the same
/// way:
///
/// ```
/// use tower_adaptive_throttle::dlq::{RejectedBody, ThrottleRejected};
/// use tower_adaptive_throttle::{RejectReason, Tier};
///
/// let request = http::Request::new(String::from("payload"));
/// let mut response = http::Response::new(());
/// *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
/// let extensions = response.extensions_mut();
/// extensions.insert(ThrottleRejected::new(RejectReason::RateLimitExceeded, Tier::Standard));
/// extensions.insert(RejectedBody::new(request.into_body()));
///
/// let returned = response.extensions().get::<RejectedBody<String>>().unwrap();
/// assert_eq!(returned.take().as_deref(), Some("payload"));
/// assert_eq!(returned.take(), None);
/// ```
// `http::Extensions` wants `Clone + Send + Sync`; a body is usually `Send` but neither `Clone`
// nor `Sync`, hence the shared, locked, take-once slot (one allocation, on rejections only).
pub struct RejectedBody<B> {
    slot: Arc<Mutex<Option<B>>>,
}

impl<B> RejectedBody<B> {
    /// Holds `body` until it is taken.
    pub fn new(body: B) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Some(body))),
        }
    }

    /// The body, the first time; `None` after.
    pub fn take(&self) -> Option<B> {
        // A panic while the lock was held cannot leave the `Option` half-written.
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl<B> Clone for RejectedBody<B> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
        }
    }
}

impl<B> fmt::Debug for RejectedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let taken = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none();
        f.debug_struct("RejectedBody")
            .field("taken", &taken)
            .finish()
    }
}
