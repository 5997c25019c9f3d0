//! The response body: the inner body, or the layer's own small rejection body.

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::classify::{Outcome, TrailersClassifier};
use super::cost::CostTracker;
use crate::concurrency::ConcurrencyPermit;
use crate::AdaptiveThrottle;

pin_project! {
    /// The body of every response the layer returns: the inner service's body, untouched, or the
    /// body of a rejection. Implements [`Body`] for any inner `B: Body<Data = Bytes>`, with the
    /// inner body's error type.
    ///
    /// With [`measure_to_end_of_body`](super::AdaptiveThrottleLayer::measure_to_end_of_body), or
    /// when the classifier waits for the trailers (a gRPC call), the latency sample is recorded
    /// when the inner body ends (its trailers frame, its last frame, or
    /// [`is_end_stream`](Body::is_end_stream)); a body dropped before its end records nothing,
    /// and a body that fails records an overload.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
            timer: Option<BodyTimer>,
            cost: Option<CostTracker>,
        },
        Rejected {
            data: Option<Bytes>,
        },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B, timer: Option<BodyTimer>, cost: Option<CostTracker>) -> Self {
        Self {
            kind: Kind::Inner { body, timer, cost },
        }
    }

    pub(crate) fn rejected(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejected {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// Records one latency sample when the body ends, and releases the concurrency slot.
pub(crate) struct BodyTimer {
    pub(crate) throttle: AdaptiveThrottle,
    pub(crate) start: Duration,
    pub(crate) outcome: Outcome,
    /// The concurrency slot, held until the body ends; dropped with the body, it is released
    /// as cancelled (no sample).
    pub(crate) permit: Option<ConcurrencyPermit>,
    /// Reads the outcome from the trailers (gRPC's `grpc-status`) instead of `outcome`.
    pub(crate) trailers: Option<TrailersClassifier>,
    /// The latency when it was measured to the headers and only the outcome waits for the
    /// trailers; `None`: measured to the end of the body.
    pub(crate) head_latency: Option<Duration>,
}

impl BodyTimer {
    /// The body ended: with `trailers` (its trailers frame), or without (`None`).
    fn end(self, trailers: Option<&::http::HeaderMap>) {
        let outcome = self.trailers.map_or(self.outcome, |read| read(trailers));
        self.fail(outcome);
    }

    /// Records `outcome` whatever the classifier says (a failed body is an overload).
    fn fail(self, outcome: Outcome) {
        record(
            &self.throttle,
            self.start,
            self.head_latency,
            outcome,
            self.permit,
        );
    }
}

/// Feeds the time since `start` (or `latency`, measured earlier) to `throttle` as `outcome`
/// says, and releases the concurrency slot with the same outcome.
pub(crate) fn record(
    throttle: &AdaptiveThrottle,
    start: Duration,
    latency: Option<Duration>,
    outcome: Outcome,
    permit: Option<ConcurrencyPermit>,
) {
    let now = throttle.now();
    let elapsed = latency.unwrap_or_else(|| now.saturating_sub(start));
    match outcome {
        Outcome::Success => throttle.record_response_at(elapsed, now),
        Outcome::Overload => throttle.record_overload_at(elapsed, now),
        Outcome::Ignore => {}
    }
    if let Some(permit) = permit {
        permit.complete_at(outcome, now);
    }
}

/// Follows the response body for its cost: trailers are read, and the cost is settled at the
/// end of the body. A failed body drops the tracker, which refunds what was not reported.
fn settle_on<E>(
    cost: &mut Option<CostTracker>,
    frame: &Option<Result<Frame<Bytes>, E>>,
    ended: bool,
) {
    match frame {
        Some(Ok(f)) => {
            if let (Some(trailers), Some(t)) = (f.trailers_ref(), cost.as_mut()) {
                t.on_trailers(trailers);
            }
            if ended {
                if let Some(t) = cost.take() {
                    t.finish();
                }
            }
        }
        None => {
            if let Some(t) = cost.take() {
                t.finish();
            }
        }
        Some(Err(_)) => drop(cost.take()),
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Rejected { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner {
                mut body,
                timer,
                cost,
            } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                if cost.is_some() {
                    settle_on(cost, &frame, body.is_end_stream());
                }
                if timer.is_some() {
                    match &frame {
                        // The trailers frame is the last one: the outcome is in it.
                        Some(Ok(f)) if f.is_trailers() => {
                            if let Some(t) = timer.take() {
                                t.end(f.trailers_ref());
                            }
                        }
                        Some(Ok(_)) if !body.is_end_stream() => {}
                        None | Some(Ok(_)) => {
                            if let Some(t) = timer.take() {
                                t.end(None);
                            }
                        }
                        Some(Err(_)) => {
                            if let Some(t) = timer.take() {
                                t.fail(Outcome::Overload);
                            }
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Rejected { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Rejected { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
