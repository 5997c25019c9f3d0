use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::future::{Capture, ResponseFuture};
use super::CaptureOptions;
use crate::dlq::store::{CapturedRequest, NotCapturable};
use crate::dlq::DeadLetterQueue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stores requests the throttle rejected (a 429 carrying
/// [`ThrottleRejected`](crate::dlq::ThrottleRejected)) in a [`DeadLetterQueue`]. Made by
/// [`DeadLetterLayer`](super::DeadLetterLayer).
///
/// Every request goes to the inner service as it came, body unread: an admitted request's body
/// streams through without being buffered or copied. For a request it considers (a captured
/// method, no replay marker) the layer copies the method, URI and kept headers before the call.
/// If the answer is the throttle's 429, the body comes back in the response's
/// [`RejectedBody`](crate::dlq::RejectedBody) (the throttle never passed it on) and the layer
/// reads it there, at most `max_body_size` bytes, before it returns the 429. Bodies whose
/// declared length (`Content-Length`, or else an exact size hint) is unknown or over the limit
/// are not read and are counted; so are bodies within the limit that the 429 does not hand
/// back or that fail while read. Responses are never changed.
///
/// `ReqBody: Send + 'static` because the hand-back travels in the response's extensions.
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let capture = if self.options.considers(&request) {
            let max = self.options.max_body_size;
            match declared_length(&request) {
                None => Capture::Count(NotCapturable::UnknownLength),
                Some(n) if n > max as u64 => Capture::Count(NotCapturable::BodyTooLarge),
                Some(0) => Capture::Store(self.snapshot(&request)),
                // Only the head is copied now; the body is read only if it comes back.
                Some(_) => Capture::ReadBack {
                    head: self.snapshot(&request),
                    max,
                },
            }
        } else {
            Capture::Ignore
        };
        ResponseFuture::new(self.inner.call(request), capture, self.dlq.clone())
    }
}

impl<S> DeadLetterService<S> {
    /// The method, URI and kept headers, with an empty body.
    fn snapshot<B>(&self, request: &Request<B>) -> CapturedRequest {
        CapturedRequest::new(
            request.method().clone(),
            request.uri().clone(),
            self.options.kept_headers(request.headers()),
            Bytes::new(),
        )
    }
}
