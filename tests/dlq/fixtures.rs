//! Stand-ins and request builders shared by the dead-letter queue's tests.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_LENGTH};
use http::{HeaderMap, Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service};
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, RejectedBody, ThrottleRejected,
};
use tower_adaptive_throttle::{RejectReason, Tier};

use crate::support::{body_bytes, respond};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The throttle's 429 for `body`: status plus what the HTTP layer inserts, the marker and the
/// request's body, unread.
pub(crate) fn throttle_rejection(body: Body) -> Response<Body> {
    let mut response = Response::new(Body::from("rejected"));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let extensions = response.extensions_mut();
    extensions.insert(ThrottleRejected::new(
        RejectReason::RateLimitExceeded,
        Tier::Standard,
    ));
    extensions.insert(RejectedBody::new(body));
    response
}

/// What a stand-in inner service saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub headers: HeaderMap,
    /// The body the app read; `None` for a rejected request, whose body the stand-in hands
    /// back unread, as the throttle does.
    pub body: Option<Bytes>,
}

/// A stand-in for "throttle + app": rejects with the marker while `overloaded` (handing the
/// body back unread), records every request it receives (the body when admitted).
#[derive(Clone, Default)]
pub(crate) struct StandIn {
    pub overloaded: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    pub(crate) fn overloaded() -> Self {
        let s = Self::default();
        s.overloaded.store(true, Ordering::SeqCst);
        s
    }

    pub(crate) fn service(
        &self,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
           + Clone
           + Send
           + 'static {
        let state = self.clone();
        service_fn(move |request: Request<Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                if state.overloaded.load(Ordering::SeqCst) {
                    state.seen.lock().unwrap().push(Seen {
                        headers: parts.headers,
                        body: None,
                    });
                    return Ok(throttle_rejection(body));
                }
                let body = body_bytes(body).await;
                state.seen.lock().unwrap().push(Seen {
                    headers: parts.headers,
                    body: Some(body),
                });
                Ok(Response::new(Body::from("ok")))
            }
        })
    }
}

pub(crate) fn put(path: &str, body: &'static str) -> Request<Body> {
    Request::put(path)
        .header(CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

pub(crate) async fn send<S>(svc: &S, request: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    respond(svc, request).await.status()
}

/// A body whose length is not known in advance (like a chunked upload).
pub(crate) struct Chunked(pub Option<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A body whose frames arrive on a channel, one data frame per message, ending when the
/// sender is dropped; its length is unknown to `size_hint` (only a `Content-Length` header can
/// declare it). Lets a test decide when each frame exists.
pub(crate) struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Fills `dlq` with `n` captured GETs `/items/{i}`.
pub(crate) async fn capture_n(dlq: &DeadLetterQueue, n: usize) {
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    for i in 0..n {
        let request = Request::get(format!("/items/{i}"))
            .header(REQUEST_ID, i)
            .body(Body::empty())
            .unwrap();
        send(&svc, request).await;
    }
    assert_eq!(dlq.len(), n);
}

/// An app that answers 200 and records the virtual time of every delivery.
pub(crate) fn timed_app(
    log: Arc<Mutex<Vec<Instant>>>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |_request: Request<Body>| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Instant::now());
            Ok(Response::new(Body::empty()))
        }
    })
}

/// Offsets from the first delivery of each batch's first delivery.
pub(crate) fn batch_starts(log: &[Instant], batch: usize) -> Vec<Duration> {
    log.chunks(batch).map(|chunk| chunk[0] - log[0]).collect()
}
