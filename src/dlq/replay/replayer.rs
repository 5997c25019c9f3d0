//! [`Replayer`]: what to drain into which service, and how success is judged.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower_service::Service;

use super::config::ReplayConfig;
use super::health::ReplayHealth;
use super::run::{run, ReplayReport};
use crate::dlq::DeadLetterQueue;
use crate::AdaptiveThrottle;

/// Decides whether a replayed request succeeded, from the response status. Implemented for
/// closures `Fn(StatusCode) -> bool`.
pub trait ReplayClassifier: Send + Sync + 'static {
    /// True when the replay succeeded; false sends the entry back for another attempt.
    fn is_success(&self, status: StatusCode) -> bool;
}

impl<F> ReplayClassifier for F
where
    F: Fn(StatusCode) -> bool + Send + Sync + 'static,
{
    fn is_success(&self, status: StatusCode) -> bool {
        self(status)
    }
}

/// The default classifier: 2xx and 3xx succeed; everything else (429 included) fails.
pub fn success_or_redirect(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

/// Sends captured requests through a tower service (typically the application itself) in
/// paced batches, while the throttle is healthy.
///
/// Each replayed request carries the replay header (`x-throttle-replay: 1` by default) so the
/// capture layer never stores it again, and goes through the throttle like any request. A
/// response the classifier calls a success removes the entry; anything else (an error
/// included) counts an attempt, and after `max_attempts` moves it to the permanently-failed
/// list. Pacing: batches of `batch_size`, `interval × pace_multiplier(current/initial)` apart;
/// health is checked before every request.
///
/// `B` is the body type replayed requests are built with (`B: From<Bytes>`). A service that
/// accepts any body, like axum's `Router`, needs it named: `Replayer::<_, axum::body::Body>::new`.
///
/// ```
/// # async fn doc() {
/// use std::convert::Infallible;
/// use tower_adaptive_throttle::dlq::{DeadLetterQueue, Replayer};
/// use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig};
///
/// let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
/// let dlq = DeadLetterQueue::default();
/// // Usually the axum `Router` itself, with the throttle and the capture layer on it.
/// let app = tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///     Ok::<_, Infallible>(http::Response::new(axum::body::Body::empty()))
/// });
/// let replayer = Replayer::new(dlq, throttle, app);
/// let report = replayer.replay_once().await; // or: replayer.spawn_auto_replay()
/// assert!(!report.started); // nothing was pending
/// # }
/// ```
pub struct Replayer<S, B> {
    pub(super) dlq: DeadLetterQueue,
    pub(super) throttle: AdaptiveThrottle,
    service: S,
    pub(super) config: ReplayConfig,
    classifier: Arc<dyn ReplayClassifier>,
    hook: Option<RequestHook<B>>,
    _body: PhantomData<fn() -> B>,
}

/// A function that adjusts each replayed request before it is sent.
pub(super) type RequestHook<B> = Arc<dyn Fn(&mut Request<B>) + Send + Sync>;

impl<S: Clone, B> Clone for Replayer<S, B> {
    fn clone(&self) -> Self {
        Self {
            dlq: self.dlq.clone(),
            throttle: self.throttle.clone(),
            service: self.service.clone(),
            config: self.config.clone(),
            classifier: self.classifier.clone(),
            hook: self.hook.clone(),
            _body: PhantomData,
        }
    }
}

impl<S, B> fmt::Debug for Replayer<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("dlq", &self.dlq)
            .field("throttle", &self.throttle)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Replayer<S, B> {
    /// A replayer draining `dlq` into `service` while `throttle` is healthy, with the default
    /// [`ReplayConfig`] and classifier ([`success_or_redirect`]).
    pub fn new(dlq: DeadLetterQueue, throttle: AdaptiveThrottle, service: S) -> Self {
        Self {
            dlq,
            throttle,
            service,
            config: ReplayConfig::default(),
            classifier: Arc::new(success_or_redirect),
            hook: None,
            _body: PhantomData,
        }
    }

    /// Replaces the configuration.
    #[must_use]
    pub fn with_config(mut self, config: ReplayConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the success classifier.
    #[must_use]
    pub fn with_classifier(mut self, classifier: impl ReplayClassifier) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// Calls `hook` on every replayed request just before it is sent (after the replay header
    /// is set). Captured requests keep no extensions and no sensitive headers, so this is where
    /// to put back what the app needs: a peer address for the throttle's key extractor (axum's
    /// `ConnectInfo<SocketAddr>`, else replays share the layer's fallback key), or an internal
    /// credential in place of the stripped `Authorization`.
    #[must_use]
    pub fn with_request_hook(
        mut self,
        hook: impl Fn(&mut Request<B>) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The throttle's health now.
    pub fn health(&self) -> ReplayHealth {
        ReplayHealth::of(&self.throttle)
    }

    /// The queue being drained.
    pub fn queue(&self) -> &DeadLetterQueue {
        &self.dlq
    }
}

impl<S, B, R> Replayer<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    B: From<Bytes>,
{
    /// One paced run: batches until the queue has nothing to hand out or the throttle's health
    /// drops. Emits [`DlqEvent::ReplayStarted`](crate::dlq::DlqEvent::ReplayStarted) and
    /// [`DlqEvent::ReplayCompleted`](crate::dlq::DlqEvent::ReplayCompleted) when it
    /// starts (nothing when unhealthy or empty at the start). Time is tokio's, so paused time
    /// drives it in tests. Cancelling the future puts unfinished entries back.
    ///
    /// The returned future owns clones of what it needs (it does not borrow `self`).
    pub fn replay_once(&self) -> impl Future<Output = ReplayReport> {
        self.run(None)
    }

    /// [`replay_once`](Self::replay_once) started by the operator `actor`, who is recorded as
    /// the source of the run's events in the queue's audit trail.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn replay_as(&self, actor: &str) -> impl Future<Output = ReplayReport> {
        self.run(Some(actor.to_owned()))
    }

    fn run(&self, actor: Option<String>) -> impl Future<Output = ReplayReport> {
        run(
            self.dlq.clone(),
            self.throttle.clone(),
            self.service.clone(),
            self.config.clone(),
            self.classifier.clone(),
            self.hook.clone(),
            actor,
        )
    }
}
