//! The response future of [`DeadLetterService`](super::DeadLetterService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::Limited;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::CaptureOptions;
use crate::dlq::store::{CapturedRequest, NotCapturable};
use crate::dlq::{DeadLetterQueue, ThrottleRejected};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do if the response turns out to be a throttle rejection.
// One per response future, stored inline: boxing the snapshot would add an allocation per
// captured-candidate request to save stack space in the rarer `Ignore`/`Count` cases.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Capture {
    /// Not a candidate (method, replay marker): nothing.
    Ignore,
    /// Store this snapshot.
    Store(CapturedRequest),
    /// A candidate whose body could not be kept: count it.
    Count(NotCapturable),
}

pin_project! {
    /// Response future of [`DeadLetterService`](super::DeadLetterService): reads a capturable
    /// body (when there is one), calls the inner service, and stores the request if the
    /// response is the throttle's rejection.
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
        Collecting {
            #[pin]
            collect: Collect<Limited<ReqBody>>,
            parts: Option<Parts>,
            inner: S,
            options: Arc<CaptureOptions>,
        },
        Calling {
            #[pin]
            future: S::Future,
            capture: Capture,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    pub(crate) fn calling(future: S::Future, capture: Capture, dlq: DeadLetterQueue) -> Self {
        Self {
            state: State::Calling { future, capture },
            dlq,
        }
    }

    pub(crate) fn collecting(
        collect: Collect<Limited<ReqBody>>,
        parts: Parts,
        inner: S,
        options: Arc<CaptureOptions>,
        dlq: DeadLetterQueue,
    ) -> Self {
        Self {
            state: State::Collecting {
                collect,
                parts: Some(parts),
                inner,
                options,
            },
            dlq,
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting {
                    collect,
                    parts,
                    inner,
                    options,
                } => {
                    let collected = ready!(collect.poll(cx));
                    let Some(parts) = parts.take() else {
                        unreachable!("the parts are taken only when leaving this state");
                    };
                    let body = match collected {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => {
                            // Longer than declared, or broken mid-way: the request cannot be
                            // handed on intact.
                            let mut response = Response::new(ResBody::default());
                            *response.status_mut() = StatusCode::BAD_REQUEST;
                            return Poll::Ready(Ok(response));
                        }
                    };
                    let snapshot = CapturedRequest::new(
                        parts.method.clone(),
                        parts.uri.clone(),
                        options.kept_headers(&parts.headers),
                        body.clone(),
                    );
                    let future = inner.call(Request::from_parts(parts, ReqBody::from(body)));
                    this.state.set(State::Calling {
                        future,
                        capture: Capture::Store(snapshot),
                    });
                }
                StateProj::Calling { future, capture } => {
                    let response = ready!(future.poll(cx))?;
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        if let Some(marker) = response.extensions().get::<ThrottleRejected>() {
                            match std::mem::replace(capture, Capture::Ignore) {
                                Capture::Ignore => {}
                                Capture::Store(request) => {
                                    this.dlq.push(request, marker.tier, marker.reason);
                                }
                                Capture::Count(why) => this.dlq.note_not_capturable(why),
                            }
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
