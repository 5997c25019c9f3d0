//! Replay: [`Replayer`] sends captured requests through a tower service in paced batches while
//! the throttle is healthy.

use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Request, Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;
use tower_service::Service;

use super::capture::DEFAULT_REPLAY_HEADER;
use super::store::{Delivery, DlqConfigError, DlqEvent, Lease, Settled};
use super::DeadLetterQueue;
use crate::events::ThrottleEvent;
use crate::governance::BreakerState;
use crate::AdaptiveThrottle;

/// Entries sent per batch (Baldur's `replay_batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 10;
/// Pause between two batches at full capacity (Baldur's `replay_interval_ms`); slowed by
/// [`pace_multiplier`] as capacity falls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Fraction of the initial limit the current limit must reach for replay to run (Baldur's
/// `replay_min_recovery_percent`, 50 %).
pub const DEFAULT_MIN_RECOVERY: f64 = 0.5;

/// Baldur's pacing table: the factor applied to the interval between batches for a capacity
/// ratio `current_limit / initial_limit`.
///
/// | ratio | factor |
/// |---|---|
/// | ≥ 0.9 | ×1 |
/// | ≥ 0.7 | ×2 |
/// | ≥ 0.5 | ×4 |
/// | otherwise | ×10 |
pub fn pace_multiplier(ratio: f64) -> u32 {
    if ratio >= 0.9 {
        1
    } else if ratio >= 0.7 {
        2
    } else if ratio >= 0.5 {
        4
    } else {
        10
    }
}

/// Settings of a [`Replayer`].
///
/// # Default
///
/// `batch_size` [`DEFAULT_BATCH_SIZE`] (10), `interval` [`DEFAULT_INTERVAL`] (100 ms),
/// `min_recovery` [`DEFAULT_MIN_RECOVERY`] (0.5), `replay_header`
/// [`DEFAULT_REPLAY_HEADER`](crate::dlq::DEFAULT_REPLAY_HEADER), no `poll_interval`.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    batch_size: usize,
    interval: Duration,
    min_recovery: f64,
    replay_header: HeaderName,
    poll_interval: Option<Duration>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            interval: DEFAULT_INTERVAL,
            min_recovery: DEFAULT_MIN_RECOVERY,
            replay_header: DEFAULT_REPLAY_HEADER,
            poll_interval: None,
        }
    }
}

impl ReplayConfig {
    /// A builder with the defaults.
    pub fn builder() -> ReplayConfigBuilder {
        ReplayConfigBuilder {
            config: Self::default(),
        }
    }

    /// Entries sent per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Pause between batches at full capacity.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Fraction of the initial limit needed to replay.
    pub fn min_recovery(&self) -> f64 {
        self.min_recovery
    }

    /// The header replayed requests carry.
    pub fn replay_header(&self) -> &HeaderName {
        &self.replay_header
    }

    /// How often automatic replay also looks for pending work without a trigger event.
    pub fn poll_interval(&self) -> Option<Duration> {
        self.poll_interval
    }
}

/// Builder of a [`ReplayConfig`]; consuming setters, everything checked in
/// [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplayConfigBuilder {
    config: ReplayConfig,
}

impl ReplayConfigBuilder {
    /// Entries sent per batch.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Pause between batches at full capacity (multiplied by [`pace_multiplier`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// Fraction of the initial limit the current limit must reach for a run to start and to
    /// go on, in `(0, 1]`.
    pub fn min_recovery(mut self, fraction: f64) -> Self {
        self.config.min_recovery = fraction;
        self
    }

    /// The header replayed requests carry; must match
    /// [`CaptureOptions::replay_header`](crate::dlq::CaptureOptions::replay_header).
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        self.config.replay_header = name;
        self
    }

    /// Automatic replay also checks for pending work this often, so requests rejected while
    /// the throttle stays healthy (a key over its share, say) are replayed without waiting for
    /// a recovery event. Off by default, as in Baldur.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = Some(every);
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`DlqConfigError::Zero`] for a zero `batch_size`, `interval` or `poll_interval`;
    /// [`DlqConfigError::MinRecoveryOutOfRange`] when `min_recovery` is not in `(0, 1]`.
    pub fn build(self) -> Result<ReplayConfig, DlqConfigError> {
        let c = self.config;
        if c.batch_size == 0 {
            return Err(DlqConfigError::Zero {
                setting: "batch_size",
            });
        }
        if c.interval.is_zero() {
            return Err(DlqConfigError::Zero {
                setting: "interval",
            });
        }
        if c.poll_interval.is_some_and(|p| p.is_zero()) {
            return Err(DlqConfigError::Zero {
                setting: "poll_interval",
            });
        }
        if !(c.min_recovery > 0.0 && c.min_recovery <= 1.0) {
            return Err(DlqConfigError::MinRecoveryOutOfRange {
                value: c.min_recovery,
            });
        }
        Ok(c)
    }
}

/// The throttle's health as the replayer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayHealth {
    /// The throttle's current limit.
    pub current_limit: u32,
    /// Its configured initial limit.
    pub initial_limit: u32,
    /// The breaker state.
    pub breaker: BreakerState,
    /// Full stop active.
    pub full_stop: bool,
    /// Emergency level (0–3).
    pub emergency_level: u8,
}

impl ReplayHealth {
    /// Reads `throttle`.
    pub fn of(throttle: &AdaptiveThrottle) -> Self {
        let governance = throttle.governance().state();
        Self {
            current_limit: throttle.current_limit(),
            initial_limit: throttle.config().initial_limit(),
            breaker: governance.breaker,
            full_stop: governance.full_stop,
            emergency_level: governance.emergency_level,
        }
    }

    /// `current_limit / initial_limit`.
    pub fn ratio(&self) -> f64 {
        f64::from(self.current_limit) / f64::from(self.initial_limit.max(1))
    }

    /// The ratio as a whole percentage (rounded down).
    pub fn recovery_percent(&self) -> u32 {
        (self.ratio() * 100.0).floor() as u32
    }

    /// Why replay must not run now, or `None` when it may. Replay runs only with the breaker
    /// closed (a half-open breaker is still probing), no full stop, no emergency (BAL-038:
    /// "emergency > 0" is unhealthy; an operator shedding load does not want parked work back)
    /// and `ratio() >= min_recovery`.
    pub fn blocker(&self, min_recovery: f64) -> Option<StopReason> {
        if self.full_stop {
            Some(StopReason::FullStop)
        } else if self.breaker != BreakerState::Closed {
            Some(StopReason::BreakerNotClosed(self.breaker))
        } else if self.emergency_level > 0 {
            Some(StopReason::Emergency(self.emergency_level))
        } else if self.ratio() < min_recovery {
            Some(StopReason::LimitBelowRecovery {
                percent: self.recovery_percent(),
            })
        } else {
            None
        }
    }
}

/// Why a replay run ended (or did not start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Nothing left to hand out.
    Drained,
    /// The breaker is open or half-open.
    BreakerNotClosed(BreakerState),
    /// Full stop.
    FullStop,
    /// An emergency level is set.
    Emergency(u8),
    /// The limit is below `min_recovery` of the initial limit.
    LimitBelowRecovery {
        /// The current limit as a percentage of the initial limit.
        percent: u32,
    },
}

impl StopReason {
    /// True unless the queue was drained: the throttle's health stopped the run.
    pub fn is_unhealthy(&self) -> bool {
        !matches!(self, Self::Drained)
    }
}

/// What one replay run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Whether a run started (the throttle was healthy and work was pending).
    pub started: bool,
    /// Batches taken.
    pub batches: u32,
    /// Entries replayed successfully.
    pub replayed: u64,
    /// Failed delivery attempts.
    pub failed: u64,
    /// Entries whose last attempt failed in this run (moved to the permanently-failed list).
    pub exhausted: u64,
    /// Entries still waiting at the end.
    pub remaining: usize,
    /// Why the run ended.
    pub stop: StopReason,
}

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
    dlq: DeadLetterQueue,
    throttle: AdaptiveThrottle,
    service: S,
    config: ReplayConfig,
    classifier: Arc<dyn ReplayClassifier>,
    hook: Option<RequestHook<B>>,
    _body: PhantomData<fn() -> B>,
}

/// A function that adjusts each replayed request before it is sent.
type RequestHook<B> = Arc<dyn Fn(&mut Request<B>) + Send + Sync>;

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
    /// drops. Emits [`DlqEvent::ReplayStarted`] and [`DlqEvent::ReplayCompleted`] when it
    /// starts (nothing when unhealthy or empty at the start). Time is tokio's, so paused time
    /// drives it in tests. Cancelling the future puts unfinished entries back.
    ///
    /// The returned future owns clones of what it needs (it does not borrow `self`).
    pub fn replay_once(&self) -> impl Future<Output = ReplayReport> {
        run(
            self.dlq.clone(),
            self.throttle.clone(),
            self.service.clone(),
            self.config.clone(),
            self.classifier.clone(),
            self.hook.clone(),
        )
    }
}

impl<S, B, R> Replayer<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: From<Bytes> + Send + 'static,
{
    /// Spawns a task that starts a run ([`replay_once`](Self::replay_once)) when the breaker
    /// closes, when the limit recovers from its floor to at least `min_recovery` of the initial
    /// limit, when the limit rises through that threshold, when an emergency ends or glass is
    /// broken — each only if the throttle is then healthy and work is pending — and, with
    /// [`ReplayConfigBuilder::poll_interval`], periodically. Runs never overlap.
    ///
    /// Must be called within a tokio runtime. Dropping the returned handle stops the task.
    pub fn spawn_auto_replay(&self) -> AutoReplay {
        let replayer = self.clone();
        let mut events = self.throttle.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let received = match replayer.config.poll_interval {
                    Some(every) => tokio::time::timeout(every, events.recv()).await.ok(),
                    None => Some(events.recv().await),
                };
                let start = match received {
                    // Periodic check.
                    None => true,
                    Some(Ok(event)) => replayer.is_trigger(&event),
                    // Missed events: look at the health directly.
                    Some(Err(RecvError::Lagged(_))) => true,
                    Some(Err(RecvError::Closed)) => break,
                };
                if start
                    && replayer.dlq.pending_len() > 0
                    && replayer
                        .health()
                        .blocker(replayer.config.min_recovery)
                        .is_none()
                {
                    replayer.replay_once().await;
                }
            }
        });
        AutoReplay { task }
    }
}

impl<S, B> Replayer<S, B> {
    fn is_trigger(&self, event: &ThrottleEvent) -> bool {
        let initial = f64::from(self.throttle.config().initial_limit().max(1));
        let min = self.config.min_recovery;
        match event {
            ThrottleEvent::BreakerStateChanged { to, .. } => *to == BreakerState::Closed,
            ThrottleEvent::LimitRecovered { new, .. } => f64::from(*new) / initial >= min,
            ThrottleEvent::LimitChanged(change) => {
                f64::from(change.previous) / initial < min && f64::from(change.new) / initial >= min
            }
            ThrottleEvent::EmergencyLevelChanged { to, .. } => *to == 0,
            ThrottleEvent::BreakGlass { .. } => true,
            _ => false,
        }
    }
}

/// Handle of the task made by [`Replayer::spawn_auto_replay`]. Dropping it stops the task
/// (a run in progress is cancelled; its unfinished entries go back to the queue).
#[derive(Debug)]
#[must_use = "dropping the handle stops automatic replay"]
pub struct AutoReplay {
    task: tokio::task::JoinHandle<()>,
}

impl AutoReplay {
    /// Stops the task.
    pub fn stop(self) {
        drop(self);
    }

    /// True when the task ended (it ends only when stopped or when the throttle is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for AutoReplay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Puts unsent leases back in their original order (each release goes to the front).
fn release(leases: impl DoubleEndedIterator<Item = Lease>) {
    for lease in leases.rev() {
        drop(lease);
    }
}

async fn run<S, B, R>(
    dlq: DeadLetterQueue,
    throttle: AdaptiveThrottle,
    mut service: S,
    config: ReplayConfig,
    classifier: Arc<dyn ReplayClassifier>,
    hook: Option<RequestHook<B>>,
) -> ReplayReport
where
    S: Service<Request<B>, Response = Response<R>>,
    B: From<Bytes>,
{
    let mut report = ReplayReport {
        started: false,
        batches: 0,
        replayed: 0,
        failed: 0,
        exhausted: 0,
        remaining: dlq.len(),
        stop: StopReason::Drained,
    };
    let health = ReplayHealth::of(&throttle);
    if let Some(stop) = health.blocker(config.min_recovery) {
        report.stop = stop;
        return report;
    }
    let pending = dlq.pending_len();
    if pending == 0 {
        return report;
    }
    report.started = true;
    dlq.emit(DlqEvent::ReplayStarted {
        at: dlq.now(),
        pending,
        recovery_percent: health.recovery_percent(),
    });
    let marker = HeaderValue::from_static("1");
    'run: loop {
        let batch = dlq.take_batch(config.batch_size);
        if batch.is_empty() {
            report.stop = StopReason::Drained;
            break;
        }
        report.batches += 1;
        let mut leases = batch.into_iter();
        while let Some(lease) = leases.next() {
            if let Some(stop) = ReplayHealth::of(&throttle).blocker(config.min_recovery) {
                report.stop = stop;
                release(std::iter::once(lease).chain(leases));
                break 'run;
            }
            let mut request: Request<B> = lease.request().to_request();
            request
                .headers_mut()
                .insert(config.replay_header.clone(), marker.clone());
            if let Some(hook) = &hook {
                hook(&mut request);
            }
            // No lock is held here: the lease owns a copy of the request.
            // Only `bool`s and the status live across the awaits, so the future is `Send`
            // without asking the same of the service's error and body types.
            let ready = poll_fn(|cx| service.poll_ready(cx)).await.is_ok();
            let delivered = ready
                && service
                    .call(request)
                    .await
                    .is_ok_and(|response| classifier.is_success(response.status()));
            let outcome = if delivered {
                Delivery::Succeeded
            } else {
                Delivery::Failed
            };
            match lease.complete(outcome) {
                Settled::Replayed => report.replayed += 1,
                Settled::Requeued => report.failed += 1,
                Settled::Exhausted => {
                    report.failed += 1;
                    report.exhausted += 1;
                }
                Settled::Released => {}
            }
        }
        if dlq.pending_len() == 0 {
            report.stop = StopReason::Drained;
            break;
        }
        let health = ReplayHealth::of(&throttle);
        if let Some(stop) = health.blocker(config.min_recovery) {
            report.stop = stop;
            break;
        }
        tokio::time::sleep(config.interval * pace_multiplier(health.ratio())).await;
    }
    report.remaining = dlq.len();
    dlq.emit(DlqEvent::ReplayCompleted {
        at: dlq.now(),
        replayed: report.replayed,
        failed: report.failed,
        remaining: report.remaining,
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_follows_baldurs_table() {
        for (ratio, factor) in [
            (1.2, 1),
            (1.0, 1),
            (0.9, 1),
            (0.89, 2),
            (0.7, 2),
            (0.69, 4),
            (0.5, 4),
            (0.49, 10),
            (0.0, 10),
        ] {
            assert_eq!(pace_multiplier(ratio), factor, "ratio {ratio}");
        }
    }

    #[test]
    fn replay_config_refuses_bad_values_by_name() {
        assert_eq!(
            ReplayConfig::builder().batch_size(0).build().unwrap_err(),
            DlqConfigError::Zero {
                setting: "batch_size"
            }
        );
        assert!(ReplayConfig::builder()
            .interval(Duration::ZERO)
            .build()
            .is_err());
        assert!(ReplayConfig::builder()
            .poll_interval(Duration::ZERO)
            .build()
            .is_err());
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let err = ReplayConfig::builder()
                .min_recovery(bad)
                .build()
                .unwrap_err();
            assert!(matches!(err, DlqConfigError::MinRecoveryOutOfRange { .. }));
        }
        assert!(ReplayConfig::builder().min_recovery(1.0).build().is_ok());
    }

    #[test]
    fn health_blocks_on_breaker_full_stop_emergency_and_low_limit() {
        let healthy = ReplayHealth {
            current_limit: 50,
            initial_limit: 100,
            breaker: BreakerState::Closed,
            full_stop: false,
            emergency_level: 0,
        };
        assert_eq!(healthy.blocker(0.5), None);
        let low = ReplayHealth {
            current_limit: 49,
            ..healthy
        };
        assert_eq!(
            low.blocker(0.5),
            Some(StopReason::LimitBelowRecovery { percent: 49 })
        );
        let half_open = ReplayHealth {
            breaker: BreakerState::HalfOpen,
            ..healthy
        };
        assert_eq!(
            half_open.blocker(0.5),
            Some(StopReason::BreakerNotClosed(BreakerState::HalfOpen))
        );
        let stopped = ReplayHealth {
            full_stop: true,
            ..healthy
        };
        assert_eq!(stopped.blocker(0.5), Some(StopReason::FullStop));
        let emergency = ReplayHealth {
            emergency_level: 1,
            ..healthy
        };
        assert_eq!(emergency.blocker(0.5), Some(StopReason::Emergency(1)));
    }
}
