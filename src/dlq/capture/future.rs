//! The response future of [`DeadLetterService`](super::DeadLetterService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::dlq::store::{CapturedRequest, NotCapturable};
use crate::dlq::{DeadLetterQueue, RejectedBody, ThrottleRejected};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do if the response turns out to be a throttle rejection.
// One per response future, stored inline: boxing the snapshot would add an allocation per
// captured-candidate request to save stack space in the rarer `Ignore`/`Count` cases.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Capture {
    /// Not a candidate (method, replay marker): nothing.
    Ignore,
    /// Store this snapshot (a request without a body).
    Store(CapturedRequest),
    /// Read the body the 429 hands back, at most `max` bytes, and store it with `head`.
    ReadBack { head: CapturedRequest, max: usize },
    /// A candidate whose body could not be kept: count it.
    Count(NotCapturable),
}

pin_project! {
    /// Response future of [`DeadLetterService`](super::DeadLetterService): calls the inner
    /// service and, if the response is the throttle's rejection, stores the request (reading
    /// the body the rejection hands back, when there is one to keep) before returning the
    /// response.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        ReqBody: Body,
        ReqBody::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, ReqBody>,
        dlq: DeadLetterQueue,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        ReqBody: Body,
        ReqBody::Error: Into<BoxError>,
    {
        Calling {
            #[pin]
            future: S::Future,
            capture: Capture,
        },
        // The throttle's 429 is held back until the body it returned is read (bounded by the
        // capture limit): a rejected request was cheap so far, and its client is still sending.
        Reading {
            #[pin]
            collect: Collect<Limited<ReqBody>>,
            head: Option<CapturedRequest>,
            marker: ThrottleRejected,
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    pub(crate) fn new(future: S::Future, capture: Capture, dlq: DeadLetterQueue) -> Self {
        Self {
            state: State::Calling { future, capture },
            dlq,
        }
    }
}

/// The throttle's marker, if `response` is its rejection (a 429 carrying it).
fn rejection<B>(response: &Response<B>) -> Option<ThrottleRejected> {
    if response.status() != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    response.extensions().get::<ThrottleRejected>().copied()
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future, capture } => {
                    let response = ready!(future.poll(cx))?;
                    let Some(marker) = rejection(&response) else {
                        return Poll::Ready(Ok(response));
                    };
                    let (head, max) = match std::mem::replace(capture, Capture::Ignore) {
                        Capture::Ignore => return Poll::Ready(Ok(response)),
                        Capture::Store(request) => {
                            this.dlq.push(request, marker.tier, marker.reason);
                            return Poll::Ready(Ok(response));
                        }
                        Capture::Count(why) => {
                            this.dlq.note_not_capturable(why);
                            return Poll::Ready(Ok(response));
                        }
                        Capture::ReadBack { head, max } => (head, max),
                    };
                    let returned = response
                        .extensions()
                        .get::<RejectedBody<ReqBody>>()
                        .and_then(RejectedBody::take);
                    let Some(body) = returned else {
                        // A rejecter that keeps (or consumed) the body, or a layer in between
                        // that changed the body type: the bytes are gone.
                        this.dlq.note_not_capturable(NotCapturable::BodyUnreadable);
                        return Poll::Ready(Ok(response));
                    };
                    this.state.set(State::Reading {
                        collect: Limited::new(body, max).collect(),
                        head: Some(head),
                        marker,
                        response: Some(response),
                    });
                }
                StateProj::Reading {
                    collect,
                    head,
                    marker,
                    response,
                } => {
                    let collected = ready!(collect.poll(cx));
                    let (Some(head), Some(response)) = (head.take(), response.take()) else {
                        unreachable!("taken only when leaving this state");
                    };
                    match collected {
                        Ok(collected) => {
                            let request = head.with_body(collected.to_bytes());
                            this.dlq.push(request, marker.tier, marker.reason);
                        }
                        // Longer than declared, past the limit: as if declared too large.
                        Err(e) if e.is::<LengthLimitError>() => {
                            this.dlq.note_not_capturable(NotCapturable::BodyTooLarge);
                        }
                        // Broken mid-way: the request cannot be kept intact.
                        Err(_) => this.dlq.note_not_capturable(NotCapturable::BodyUnreadable),
                    }
                    // The 429 is the throttle's, unchanged, whatever became of the body.
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
