//! [`BodyPrefixLayer`]: reads the first bytes of each request body, so a cost estimate can be
//! taken from the body (`max_tokens` in a JSON request), and hands the body on whole.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::http::{request::Parts, Request};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// The first bytes of a request's body (at most the layer's bound), in the request extensions
/// for a [`CostEstimator`](super::CostEstimator) to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyPrefix(pub Bytes);

/// A tower [`Layer`] that buffers up to `max_bytes` of each request body before calling the
/// inner service, puts them in the extensions as [`BodyPrefix`], and re-chains them in front of
/// the rest of the body ([`PrefixedBody`]): the inner service reads the body whole, trailers
/// and errors included. Put it outside the throttle layer, so the throttle's cost estimator
/// sees the prefix.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{routing::post, Router};
/// use http::Request;
/// use tower_adaptive_throttle::config::CostConfig;
/// use tower_adaptive_throttle::http::{json_u64_field, BodyPrefix, BodyPrefixLayer};
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// let cfg = ThrottleConfig::builder().cost(CostConfig::new(10_000)).build().unwrap();
/// let estimate = |req: &Request<_>| {
///     let prefix = req.extensions().get::<BodyPrefix>()?;
///     json_u64_field(&prefix.0, "max_tokens")
/// };
/// let app: Router = Router::new()
///     .route("/v1/completions", post(|| async { "ok" }))
///     .layer(AdaptiveThrottleLayer::new(cfg).cost_estimator(estimate))
///     .layer(BodyPrefixLayer::new(4096));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BodyPrefixLayer {
    max_bytes: usize,
}

impl BodyPrefixLayer {
    /// Buffers at most `max_bytes` (plus the rest of the frame that crosses it) per request.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<S> Layer<S> for BodyPrefixLayer {
    type Service = BodyPrefixService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyPrefixService {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The service of [`BodyPrefixLayer`].
#[derive(Debug, Clone)]
pub struct BodyPrefixService<S> {
    inner: S,
    max_bytes: usize,
}

impl<S, B> Service<Request<B>> for BodyPrefixService<S>
where
    S: Service<Request<PrefixedBody<B>>> + Clone,
    B: Body<Data = Bytes> + Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = PrefixFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was ready goes with the request (a clone takes its place), as
        // tower's buffering middleware do.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let (parts, body) = req.into_parts();
        PrefixFuture {
            state: State::Reading {
                read: Some(Reading {
                    parts,
                    body: Some(body),
                    frames: VecDeque::new(),
                    len: 0,
                    inner,
                }),
                max_bytes: self.max_bytes,
            },
        }
    }
}

struct Reading<S, B: Body> {
    parts: Parts,
    body: Option<B>,
    frames: VecDeque<Result<Frame<Bytes>, B::Error>>,
    len: usize,
    inner: S,
}

pin_project! {
    /// The future of [`BodyPrefixService`]: reads the prefix, then runs the inner call.
    pub struct PrefixFuture<S, B>
    where
        S: Service<Request<PrefixedBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<PrefixedBody<B>>>,
        B: Body,
    {
        Reading { read: Option<Reading<S, B>>, max_bytes: usize },
        Calling { #[pin] future: S::Future },
    }
}

impl<S, B> std::fmt::Debug for PrefixFuture<S, B>
where
    S: Service<Request<PrefixedBody<B>>>,
    B: Body,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixFuture").finish_non_exhaustive()
    }
}

impl<S, B> Future for PrefixFuture<S, B>
where
    S: Service<Request<PrefixedBody<B>>>,
    B: Body<Data = Bytes> + Unpin,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Reading { read, max_bytes } => {
                    let r = read.as_mut().expect("PrefixFuture polled after completion");
                    while r.len < *max_bytes {
                        let Some(body) = r.body.as_mut() else { break };
                        if body.is_end_stream() {
                            break;
                        }
                        match ready!(Pin::new(body).poll_frame(cx)) {
                            None => r.body = None,
                            Some(Ok(frame)) => {
                                r.len += frame.data_ref().map_or(0, Bytes::len);
                                r.frames.push_back(Ok(frame));
                            }
                            Some(Err(e)) => {
                                // The inner service meets the error where it would have.
                                r.frames.push_back(Err(e));
                                r.body = None;
                            }
                        }
                    }
                    let r = read.take().expect("checked above");
                    let prefix = prefix_of(&r.frames, *max_bytes);
                    let mut req = Request::from_parts(
                        r.parts,
                        PrefixedBody {
                            buffered: r.frames,
                            rest: r.body,
                        },
                    );
                    req.extensions_mut().insert(BodyPrefix(prefix));
                    let mut inner = r.inner;
                    let future = inner.call(req);
                    self.as_mut().project().state.set(State::Calling { future });
                }
            }
        }
    }
}

/// The data of the buffered frames, up to `max` bytes: one frame is shared, not copied.
fn prefix_of<E>(frames: &VecDeque<Result<Frame<Bytes>, E>>, max: usize) -> Bytes {
    let mut data = frames
        .iter()
        .filter_map(|f| f.as_ref().ok().and_then(Frame::data_ref));
    let Some(first) = data.next() else {
        return Bytes::new();
    };
    let rest: Vec<&Bytes> = data.collect();
    if rest.is_empty() {
        return first.slice(..first.len().min(max));
    }
    let mut out = BytesMut::with_capacity(max);
    for chunk in std::iter::once(first).chain(rest) {
        let take = chunk.len().min(max - out.len());
        out.extend_from_slice(&chunk[..take]);
        if out.len() == max {
            break;
        }
    }
    out.freeze()
}

pin_project! {
    /// A request body whose first frames were read ahead by [`BodyPrefixLayer`]: those frames,
    /// then the rest of the original body.
    pub struct PrefixedBody<B: Body> {
        buffered: VecDeque<Result<Frame<Bytes>, B::Error>>,
        #[pin]
        rest: Option<B>,
    }
}

impl<B: Body> std::fmt::Debug for PrefixedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixedBody")
            .field("buffered_frames", &self.buffered.len())
            .field("rest", &self.rest.is_some())
            .finish()
    }
}

impl<B: Body<Data = Bytes>> Body for PrefixedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(frame) = this.buffered.pop_front() {
            return Poll::Ready(Some(frame));
        }
        match this.rest.as_pin_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .buffered
            .iter()
            .filter_map(|f| f.as_ref().ok().and_then(Frame::data_ref))
            .map(|d| d.len() as u64)
            .sum();
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        // Upper first: `set_lower` must never exceed the upper bound.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(hint.lower().saturating_add(buffered));
        hint
    }
}
