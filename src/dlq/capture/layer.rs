use std::sync::Arc;

use tower_layer::Layer;

use super::{CaptureOptions, DeadLetterService};
use crate::dlq::DeadLetterQueue;

/// Applies [`DeadLetterService`]: stores requests the throttle rejected in a
/// [`DeadLetterQueue`].
///
/// Place it **outside** the throttle layer, so it sees the throttle's 429 responses. It never
/// buffers a request on the way in: admitted bodies stream to the inner service unread, and the
/// throttle hands a rejected request's body back in its 429
/// ([`RejectedBody`](crate::dlq::RejectedBody)), where this layer reads it (up to
/// [`max_body_size`](super::CaptureOptions::max_body_size)) to store it. Layers between the two
/// must keep the request body type (axum's routers do), or the body cannot be found in the 429
/// and the rejection is counted in [`DlqStats::body_unreadable`](crate::dlq::DlqStats) instead
/// of stored.
///
/// ```
/// use tower_adaptive_throttle::dlq::{CaptureOptions, DeadLetterLayer, DeadLetterQueue};
///
/// let dlq = DeadLetterQueue::default();
/// let layer = DeadLetterLayer::new(dlq.clone(), CaptureOptions::default());
/// // Router::new().route("/items/{id}", put(handler))
/// //     .layer(throttle_layer)   // inner: answers 429 + `ThrottleRejected`
/// //     .layer(layer);           // outer: captures them
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetterLayer {
    dlq: DeadLetterQueue,
    options: Arc<CaptureOptions>,
}

impl DeadLetterLayer {
    /// A layer storing into `dlq` what `options` lets through.
    pub fn new(dlq: DeadLetterQueue, options: CaptureOptions) -> Self {
        Self {
            dlq,
            options: Arc::new(options),
        }
    }
}

impl<S> Layer<S> for DeadLetterLayer {
    type Service = DeadLetterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadLetterService::new(inner, self.dlq.clone(), self.options.clone())
    }
}
