use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use super::future::{Capture, ResponseFuture};
use super::CaptureOptions;
use crate::dlq::store::{CapturedRequest, NotCapturable};
use crate::dlq::DeadLetterQueue;

/// Stores requests the throttle rejected (a 429 carrying
/// [`ThrottleRejected`](crate::dlq::ThrottleRejected)) in a [`DeadLetterQueue`]. Made by
/// [`DeadLetterLayer`](super::DeadLetterLayer).
///
/// For a request it considers (a captured method, no replay marker) with a declared body of at
/// most `max_body_size` bytes, it reads the body first and hands the inner service a request
/// rebuilt from the same bytes (so `ReqBody: From<Bytes>`, which axum's `Body` is); the
/// method, URI and kept headers are copied before the call. Every other request goes through
/// untouched. The response is never changed, except that a request body that fails while it is
/// read (its length differs from its `Content-Length`, or the connection breaks) is answered
/// `400 Bad Request` with an empty body instead of reaching the inner service.
#[derive(Debug, Clone)]
pub struct DeadLetterService<S> {
    inner: S,
    dlq: DeadLetterQueue,
    options: Arc<CaptureOptions>,
}

impl<S> DeadLetterService<S> {
    pub(crate) fn new(inner: S, dlq: DeadLetterQueue, options: Arc<CaptureOptions>) -> Self {
        Self {
            inner,
            dlq,
            options,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The queue requests are stored in.
    pub fn queue(&self) -> &DeadLetterQueue {
        &self.dlq
    }
}

/// The body length a request declares: `Content-Length`, or else an exact size hint (0 for a
/// body-less request).
fn declared_length<B: Body>(request: &Request<B>) -> Option<u64> {
    match request.headers().get(http::header::CONTENT_LENGTH) {
        Some(value) => value.to_str().ok()?.trim().parse().ok(),
        None => request.body().size_hint().exact(),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DeadLetterService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let dlq = self.dlq.clone();
        if !self.options.considers(&request) {
            return ResponseFuture::calling(self.inner.call(request), Capture::Ignore, dlq);
        }
        let max = self.options.max_body_size as u64;
        match declared_length(&request) {
            None => ResponseFuture::calling(
                self.inner.call(request),
                Capture::Count(NotCapturable::UnknownLength),
                dlq,
            ),
            Some(n) if n > max => ResponseFuture::calling(
                self.inner.call(request),
                Capture::Count(NotCapturable::BodyTooLarge),
                dlq,
            ),
            Some(0) => {
                let snapshot = self.snapshot(&request, Bytes::new());
                ResponseFuture::calling(self.inner.call(request), Capture::Store(snapshot), dlq)
            }
            Some(_) => {
                // The body is read before the inner call, so the service that was polled ready
                // goes into the future and a fresh clone stays here (tower's usual swap).
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let (parts, body) = request.into_parts();
                let collect = Limited::new(body, self.options.max_body_size).collect();
                ResponseFuture::collecting(collect, parts, ready, self.options.clone(), dlq)
            }
        }
    }
}

impl<S> DeadLetterService<S> {
    fn snapshot<B>(&self, request: &Request<B>, body: Bytes) -> CapturedRequest {
        CapturedRequest::new(
            request.method().clone(),
            request.uri().clone(),
            self.options.kept_headers(request.headers()),
            body,
        )
    }
}
