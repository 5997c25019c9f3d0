//! The cost axis: token budgets per key per window (ThrottleKit's meter, through the throttle
//! and the layer), reserve-then-settle over HTTP, and the one decision across concurrency →
//! rate → cost. Time comes from a `ManualClock`; nothing sleeps.

#[path = "../support/mod.rs"]
mod support;

mod budget;
mod decision;
mod fleet;
mod leak;
mod operations;
mod settle;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use tower_adaptive_throttle::config::{CostConfig, RateStrategy};
use tower_adaptive_throttle::{AdaptiveThrottle, CostReport, ManualClock, ThrottleConfigBuilder};

/// A configuration whose rate axis never binds (a million per millisecond, fixed window), so
/// the cost axis alone decides.
pub(crate) fn rate_unbound() -> ThrottleConfigBuilder {
    support::pinned(1_000_000)
        .window(Duration::from_millis(1))
        .rate_strategy(RateStrategy::FixedWindow)
}

/// A throttle with a budget of `budget` tokens per `window` per key, on a manual clock.
pub(crate) fn budget_throttle(budget: u64, window: Duration) -> (AdaptiveThrottle, ManualClock) {
    support::manual(
        rate_unbound()
            .cost(CostConfig::new(budget).window(window))
            .build()
            .unwrap(),
    )
}

/// The key the HTTP tests send (`x-api-key: alice`), as the layer's `HeaderKey` hashes it.
pub(crate) fn alice() -> Option<HeaderValue> {
    Some(HeaderValue::from_static("alice"))
}

/// A streamed response body, like a model producing tokens: one chunk per poll, each reported
/// into the request's `CostReport` as it is produced (one token per chunk), then optional
/// trailers.
pub(crate) struct TokenStream {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) report: Option<CostReport>,
    pub(crate) trailers: Option<HeaderMap>,
}

impl TokenStream {
    pub(crate) fn new(tokens: usize, report: Option<CostReport>) -> Self {
        if let Some(r) = &report {
            // The stream reports its tokens: an empty one cost nothing (not its estimate).
            r.add(0);
        }
        Self {
            chunks: (0..tokens).map(|i| Bytes::from(format!("t{i} "))).collect(),
            report,
            trailers: None,
        }
    }

    /// A body of these chunks, reporting nothing.
    pub(crate) fn from_chunks(chunks: Vec<Bytes>) -> Self {
        Self {
            chunks: chunks.into(),
            report: None,
            trailers: None,
        }
    }
}

impl Body for TokenStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            if let Some(r) = &self.report {
                r.add(1);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }
}
