use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::coordinator::Shared;
use super::error::BoxError;
use super::future::ResponseFuture;
use super::key::CoordinationKey;
use super::table::Step;
use super::ticket::{admit, deadline, refuse, Ticket};
use crate::clock::tokio_now;

/// A client service whose calls go through a
/// [`RateLimitCoordinator`](super::RateLimitCoordinator). Made by
/// [`CoordinatorLayer`](super::CoordinatorLayer).
///
/// For each request, the key (by default the URI's host) decides:
///
/// - no cooldown, no canary pending: the call goes straight to the inner service;
/// - cooling down, and the cooldown ends within `max_wait`: the call sleeps until then;
///   otherwise it fails at once with [`Deferred`](super::Deferred);
/// - cooldown over, never answered since: this call is the canary, and the others wait (within
///   `max_wait`) for its answer.
///
/// Every response comes back unchanged — an upstream 429 reaches its caller as the response it
/// is, after arming the cooldown. The inner error is boxed into [`BoxError`].
///
/// `poll_ready` only forwards. A call that must wait takes a clone of the inner service and
/// polls that one ready once its wait is over, so no capacity the inner service reserved for
/// the next call is held through a cooldown (hence `S: Clone`, as every HTTP client is).
#[derive(Debug, Clone)]
pub struct CoordinatorService<S, K> {
    inner: S,
    shared: Arc<Shared>,
    key: K,
}

impl<S, K> CoordinatorService<S, K> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, key: K) -> Self {
        Self { inner, shared, key }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for CoordinatorService<S, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    K: CoordinationKey<ReqBody>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(key) = self.key.key(&request).map(Box::<str>::from) else {
            return ResponseFuture::calling(self.inner.call(request), None);
        };
        self.shared.start_pulling();
        let now = tokio_now();
        let deadline = deadline(&self.shared, now);
        match self.shared.step(&key, now, deadline) {
            Step::Go { canary } => {
                let ticket = Ticket::issue(self.shared.clone(), key, canary);
                ResponseFuture::calling(self.inner.call(request), Some(ticket))
            }
            Step::Defer(not_before) => ResponseFuture::refused(refuse(&self.shared, not_before)),
            // Only this path allocates a future: calls on a key that is not rate limited take
            // the branch above.
            Step::Wait { .. } => ResponseFuture::waiting(
                Box::pin(admit(self.shared.clone(), key, deadline)),
                self.inner.clone(),
                request,
            ),
        }
    }
}
