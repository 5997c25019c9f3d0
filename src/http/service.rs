//! [`AdaptiveThrottleService`]: decides in `call`, forwards `poll_ready`.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{Request, Response};
use bytes::Bytes;
use http_body::Body;
use tower_service::Service;

use super::classify::{Classify, ServerErrorsAsOverload};
use super::cost::{CostEstimator, CostTracker, FixedCost};
use super::future::{AdmittedHeaders, Recorder, ResponseFuture};
use super::headers::{write_headers, DefaultRejection, Fields, OnReject};
use super::key::{KeyExtractor, PeerIp};
use super::layer::Shared;
use super::tier::{FixedTier, TierExtractor};
use super::ResponseBody;
use crate::rules::RequestInfo;
use crate::throttle::Admission;
use crate::AdaptiveThrottle;

/// The middleware built by [`AdaptiveThrottleLayer`](super::AdaptiveThrottleLayer).
///
/// Cheap to clone (the inner service's clone and one `Arc`); every clone shares the throttle and
/// so the limit. [`poll_ready`](Service::poll_ready) only forwards to the inner service: a
/// request is admitted or rejected in [`call`](Service::call), and a rejection is a response,
/// never an error, so the inner service's error type passes through untouched.
pub struct AdaptiveThrottleService<
    S,
    K = PeerIp,
    T = FixedTier,
    C = ServerErrorsAsOverload,
    R = DefaultRejection,
    E = FixedCost,
> {
    inner: S,
    shared: Arc<Shared<K, T, C, R, E>>,
}

impl<S, K, T, C, R, E> AdaptiveThrottleService<S, K, T, C, R, E> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<K, T, C, R, E>>) -> Self {
        Self { inner, shared }
    }

    /// The throttle every clone shares.
    pub fn throttle(&self) -> &AdaptiveThrottle {
        &self.shared.throttle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, T, C, R, E> Clone for AdaptiveThrottleService<S, K, T, C, R, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, K, T, C, R, E> fmt::Debug for AdaptiveThrottleService<S, K, T, C, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottleService")
            .field("inner", &self.inner)
            .field("throttle", &self.shared.throttle)
            .finish_non_exhaustive()
    }
}

/// `S: Clone + Send` and `ReqBody: Send` because in fleet mode a request may wait for the
/// store before it is admitted: the service that was ready is taken into the response future
/// (a clone left in its place, as tower's buffering middleware do) and called after the wait.
/// `ReqBody: Send + 'static` also lets a rejected request's unread body ride in the 429's
/// extensions (`RejectedBody`) for a `DeadLetterLayer`.
impl<S, ReqBody, ResBody, K, T, C, R, E> Service<Request<ReqBody>>
    for AdaptiveThrottleService<S, K, T, C, R, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes>,
    K: KeyExtractor<ReqBody> + Send + Sync + 'static,
    T: TierExtractor<ReqBody> + Send + Sync + 'static,
    C: Classify<ResBody, S::Error> + Clone + Send + Sync + 'static,
    R: OnReject + Send + Sync + 'static,
    E: CostEstimator<ReqBody> + Send + Sync + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let throttle = &shared.throttle;
        let start = throttle.now();

        if throttle.is_disabled() {
            // Pass-through: no check, no extensions, no headers. Samples still flow, as
            // `AdaptiveThrottle::disable` documents, so the limit is current when re-enabled.
            let rec = recorder(shared, None, start);
            return ResponseFuture::admitted(self.inner.call(req), Some(rec), None, None);
        }
        let info = RequestInfo {
            method: req.method().as_str(),
            path: req.uri().path(),
        };
        if !throttle.applies_to(&info) {
            // Outside the throttle's rules (or bypassed): untouched and unmeasured.
            return ResponseFuture::admitted(self.inner.call(req), None, None, None);
        }

        let tier = shared.tier.tier(&req);
        // `None` hashes as one shared fallback key.
        let key = shared.key.extract(&req);
        // The estimator runs only with a cost axis: without one, nothing changes on this path.
        let cost = if throttle.cost_policy().is_some() {
            shared.estimator.estimate(&req)
        } else {
            None
        };
        // Every configured axis, concurrency → rate → cost; the permit holds the in-flight
        // slot and the reservation the cost until the response (or its body) completes.
        match throttle.admit(&key, tier, start, cost) {
            Admission::Ready(admission) => {
                respond(shared, &mut self.inner, req, tier, admission, start)
            }
            Admission::Wait(admission) => {
                // The store decides: the ready service goes with the request.
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                let shared = self.shared.clone();
                // The block resolves to the next state of this future, which polls it in place.
                #[allow(clippy::async_yields_async)]
                ResponseFuture::waiting(Box::pin(async move {
                    let admission = admission.await;
                    respond(&shared, &mut inner, req, tier, admission, start)
                }))
            }
        }
    }
}

/// The recorder of one admitted request.
fn recorder<K, T, C: Clone, R, E>(
    shared: &Shared<K, T, C, R, E>,
    permit: Option<crate::ConcurrencyPermit>,
    start: std::time::Duration,
) -> Recorder<C> {
    Recorder {
        throttle: shared.throttle.clone(),
        classifier: shared.classifier.clone(),
        start,
        to_end_of_body: shared.options.to_end_of_body,
        permit,
    }
}

/// Answers a request once every axis has decided: a 429, or the inner service's call (timed).
fn respond<S, ReqBody: Send + 'static, ResBody, K, T, C, R, E>(
    shared: &Shared<K, T, C, R, E>,
    inner: &mut S,
    mut req: Request<ReqBody>,
    tier: crate::Tier,
    admission: Result<crate::Admitted, crate::Decision>,
    start: std::time::Duration,
) -> ResponseFuture<S::Future, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Clone,
    R: OnReject,
{
    let throttle = &shared.throttle;
    let (decision, admitted) = match admission {
        Ok(admitted) => (admitted.decision(), Some(admitted)),
        Err(denied) => (denied, None),
    };
    trace_decision(&decision);

    if !decision.allowed {
        if shared.options.shadow {
            throttle.note_shadow_rejection();
        } else {
            let mut res = shared.on_reject.on_reject_request(&decision, req.headers());
            write_headers(
                res.headers_mut(),
                fields(throttle, &decision, &decision),
                shared.options.headers,
            );
            // Marks the 429 as the throttle's own, so a `DeadLetterLayer` outside can park
            // the request for replay; and hands back the body, unread, so that layer reads
            // only rejected bodies and lets admitted ones stream through untouched.
            let extensions = res.extensions_mut();
            extensions.insert(super::ThrottleRejected::new(
                decision
                    .reason
                    .unwrap_or(crate::RejectReason::RateLimitExceeded),
                decision.tier,
            ));
            extensions.insert(super::RejectedBody::new(req.into_body()));
            // Our own 429 never feeds the controller: nothing is recorded.
            return ResponseFuture::rejected(res);
        }
    }

    let (permit, reservation) = match admitted {
        Some(a) => {
            let (permit, reservation) = a.into_parts();
            (Some(permit), Some(reservation))
        }
        None => (None, None),
    };
    // The fields describe the axis that binds, with that axis's own limit.
    let headers =
        (!shared.options.shadow && shared.options.headers.any()).then(|| AdmittedHeaders {
            fields: fields(
                throttle,
                &decision,
                permit.as_ref().map_or(&decision, |p| p.decision()),
            ),
            options: shared.options.headers,
        });
    let extensions = req.extensions_mut();
    extensions.insert(tier);
    extensions.insert(decision);
    let cost = reservation.filter(|r| r.is_held()).map(|r| {
        let (tracker, report) = CostTracker::new(r, shared.settle.clone());
        // Where the handler (or a streaming body) reports the true cost.
        extensions.insert(report);
        tracker
    });
    let rec = recorder(shared, permit, start);
    ResponseFuture::admitted(inner.call(req), Some(rec), headers, cost)
}

/// The rate-limit fields for `decision`: the cost axis's budget and unit when it binds, else
/// the fields of `own` (the rate axis's own decision, whose limit is its quota per window).
fn fields(
    throttle: &crate::AdaptiveThrottle,
    decision: &crate::Decision,
    own: &crate::Decision,
) -> Fields {
    match (decision.axis, throttle.cost_policy()) {
        (Some(crate::Axis::Cost), Some((budget, window, unit))) => {
            Fields::cost(decision, budget, window, unit)
        }
        _ => Fields::new(own, throttle.window()),
    }
}

/// One span per throttled request, carrying the decision (`debug` for rejections, `trace`
/// otherwise).
#[cfg(feature = "tracing")]
fn trace_decision(d: &crate::Decision) {
    let axis = d.axis.map_or("none", crate::Axis::as_str);
    let reason = d.reason.map_or("", crate::RejectReason::as_str);
    let retry_after_ms = d.retry_after.as_millis() as u64;
    if d.allowed {
        let span = tracing::trace_span!(
            "throttle",
            allowed = true,
            limit = d.limit,
            remaining = d.remaining,
            tier = d.tier.as_str(),
            axis
        );
        let _entered = span.enter();
        tracing::trace!("request admitted");
    } else {
        let span = tracing::debug_span!(
            "throttle",
            allowed = false,
            limit = d.limit,
            tier = d.tier.as_str(),
            axis,
            reason,
            retry_after_ms
        );
        let _entered = span.enter();
        tracing::debug!("request throttled");
    }
}

#[cfg(not(feature = "tracing"))]
fn trace_decision(_d: &crate::Decision) {}
