//! The response future of [`AdaptiveThrottleService`](super::AdaptiveThrottleService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ::http::Response;
use bytes::Bytes;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::{record, BodyTimer, ResponseBody};
use super::classify::{Classify, Outcome};
use super::cost::CostTracker;
use super::headers::{write_headers, Fields, HeaderOptions};
use crate::concurrency::ConcurrencyPermit;
use crate::AdaptiveThrottle;

pin_project! {
    /// The response future: the inner service's future (timed and classified when it
    /// completes), or a ready rejection. No boxing.
    ///
    /// A future dropped before it completes records nothing: a cancelled request says nothing
    /// about the service's latency.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Admitted {
            #[pin]
            future: F,
            recorder: Option<Recorder<C>>,
            headers: Option<AdmittedHeaders>,
            cost: Option<CostTracker>,
        },
        Rejected {
            response: Option<Response<Bytes>>,
        },
        // Fleet mode: the store is deciding; then the request goes on as admitted or rejected.
        Waiting {
            decided: Pin<Box<dyn Future<Output = ResponseFuture<F, C>> + Send>>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn admitted(
        future: F,
        recorder: Option<Recorder<C>>,
        headers: Option<AdmittedHeaders>,
        cost: Option<CostTracker>,
    ) -> Self {
        Self {
            kind: Kind::Admitted {
                future,
                recorder,
                headers,
                cost,
            },
        }
    }

    pub(crate) fn waiting(
        decided: Pin<Box<dyn Future<Output = ResponseFuture<F, C>> + Send>>,
    ) -> Self {
        Self {
            kind: Kind::Waiting { decided },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Rejected { .. } => "rejected",
            Kind::Waiting { .. } => "waiting on the store",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

/// Times and classifies one admitted request.
pub(crate) struct Recorder<C> {
    pub(crate) throttle: AdaptiveThrottle,
    pub(crate) classifier: C,
    pub(crate) start: Duration,
    pub(crate) to_end_of_body: bool,
    /// The concurrency slot of the request. A future dropped before completion drops it, which
    /// releases the slot as cancelled (no sample).
    pub(crate) permit: Option<ConcurrencyPermit>,
}

/// The rate-limit fields of an admitted response.
pub(crate) struct AdmittedHeaders {
    pub(crate) fields: Fields,
    pub(crate) options: HeaderOptions,
}

impl<C> Recorder<C> {
    /// Records the sample now, or returns a timer for the body when the sample ends with it:
    /// timed to the end of the body, or classified by the trailers (gRPC).
    fn finish<B, E>(self, result: Result<&Response<B>, &E>) -> Option<BodyTimer>
    where
        C: Classify<B, E>,
        B: Body,
    {
        let outcome = self.classifier.classify(result);
        let trailers = result
            .ok()
            .and_then(|res| self.classifier.trailers_classifier(res));
        match result {
            Ok(res)
                if !res.body().is_end_stream()
                    && (trailers.is_some()
                        || (outcome != Outcome::Ignore && self.to_end_of_body)) =>
            {
                // Waiting for the trailers only: the latency is the headers' (see `Classify`).
                let head_latency =
                    (!self.to_end_of_body).then(|| self.throttle.now().saturating_sub(self.start));
                Some(BodyTimer {
                    throttle: self.throttle,
                    start: self.start,
                    outcome,
                    permit: self.permit,
                    trailers,
                    head_latency,
                })
            }
            _ => {
                // A body already over has no trailers to wait for.
                let outcome = trailers.map_or(outcome, |read| read(None));
                record(&self.throttle, self.start, None, outcome, self.permit);
                None
            }
        }
    }
}

impl<F, B, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
    C: Classify<B, E>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let KindProj::Waiting { decided } = self.as_mut().project().kind.project() {
            let next = ready!(decided.as_mut().poll(cx));
            self.as_mut().project().kind.set(next.kind);
        }
        match self.project().kind.project() {
            KindProj::Waiting { .. } => unreachable!("a decided request is admitted or rejected"),
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response.map(ResponseBody::rejected)))
            }
            KindProj::Admitted {
                future,
                recorder,
                headers,
                cost,
            } => {
                let result = ready!(future.poll(cx));
                let timer = recorder.take().and_then(|r| r.finish(result.as_ref()));
                // An inner error drops the tracker: the reservation is refunded (but for what
                // was reported).
                let mut cost = cost.take();
                Poll::Ready(result.map(|mut res| {
                    if let Some(tracker) = cost.as_mut() {
                        tracker.on_response(res.headers());
                    }
                    if let Some(h) = headers.take() {
                        write_headers(res.headers_mut(), h.fields, h.options);
                    }
                    let cost = match cost {
                        // Nothing more will come: settle now.
                        Some(tracker) if res.body().is_end_stream() => {
                            tracker.finish();
                            None
                        }
                        other => other,
                    };
                    res.map(|body| ResponseBody::inner(body, timer, cost))
                }))
            }
        }
    }
}
