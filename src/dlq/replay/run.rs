//! One paced replay run, and its [`ReplayReport`].

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::config::{pace_multiplier, ReplayConfig};
use super::health::{ReplayHealth, StopReason};
use super::replayer::{ReplayClassifier, RequestHook};
use crate::dlq::store::{Claim, Delivery, Settled};
use crate::dlq::{DeadLetterQueue, DlqEvent};
use crate::AdaptiveThrottle;

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
    /// Durable entries not replayed because another replayer had taken them over by the time
    /// their turn came (this one went `claim_idle` without renewing its claim): theirs to
    /// replay.
    pub taken_over: u64,
    /// Entries still waiting at the end.
    pub remaining: usize,
    /// Why the run ended.
    pub stop: StopReason,
}

/// Puts unsent leases back in their original order (each release goes to the front).
fn release(leases: impl DoubleEndedIterator<Item = Claim>) {
    for lease in leases.rev() {
        drop(lease);
    }
}

/// Publishes `event` on the queue; `actor`, when given, is its source in the queue's audit trail.
fn emit(dlq: &DeadLetterQueue, actor: Option<&str>, event: DlqEvent) {
    match actor {
        Some(actor) => crate::audit::with_actor(actor, || dlq.emit(event)),
        None => dlq.emit(event),
    }
}

/// One run (see [`Replayer::replay_once`](super::Replayer::replay_once)); `actor` names the
/// operator who started it, if one did.
pub(super) async fn run<S, B, R>(
    dlq: DeadLetterQueue,
    throttle: AdaptiveThrottle,
    mut service: S,
    config: ReplayConfig,
    classifier: Arc<dyn ReplayClassifier>,
    hook: Option<RequestHook<B>>,
    actor: Option<String>,
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
        taken_over: 0,
        remaining: 0,
        stop: StopReason::Drained,
    };
    let health = ReplayHealth::of(&throttle);
    if let Some(stop) = health.blocker(config.min_recovery()) {
        report.stop = stop;
        report.remaining = dlq.remaining().await;
        return report;
    }
    let pending = dlq.waiting().await;
    if pending == 0 {
        report.remaining = dlq.remaining().await;
        return report;
    }
    report.started = true;
    emit(
        &dlq,
        actor.as_deref(),
        DlqEvent::ReplayStarted {
            at: dlq.now(),
            pending,
            recovery_percent: health.recovery_percent(),
        },
    );
    let marker = HeaderValue::from_static("1");
    'run: loop {
        let batch = dlq.claim_batch(config.batch_size()).await;
        let short = batch.len() < config.batch_size();
        if batch.is_empty() {
            report.stop = StopReason::Drained;
            break;
        }
        report.batches += 1;
        let mut leases = batch.into_iter();
        while let Some(lease) = leases.next() {
            if let Some(stop) = ReplayHealth::of(&throttle).blocker(config.min_recovery()) {
                report.stop = stop;
                release(std::iter::once(lease).chain(leases));
                break 'run;
            }
            if !lease.still_held().await {
                report.taken_over += 1;
                continue;
            }
            let mut request: Request<B> = lease.request().to_request();
            request
                .headers_mut()
                .insert(config.replay_header().clone(), marker.clone());
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
            match lease.complete(outcome).await {
                Settled::Replayed => report.replayed += 1,
                Settled::Requeued => report.failed += 1,
                Settled::Exhausted => {
                    report.failed += 1;
                    report.exhausted += 1;
                }
                Settled::Released => {}
            }
        }
        // The durable queue has no cheap count: a short batch means it is drained.
        let drained = match dlq.durable() {
            None => dlq.pending_len() == 0,
            Some(_) => short,
        };
        if drained {
            report.stop = StopReason::Drained;
            break;
        }
        let health = ReplayHealth::of(&throttle);
        if let Some(stop) = health.blocker(config.min_recovery()) {
            report.stop = stop;
            break;
        }
        tokio::time::sleep(config.interval() * pace_multiplier(health.ratio())).await;
    }
    report.remaining = dlq.remaining().await;
    emit(
        &dlq,
        actor.as_deref(),
        DlqEvent::ReplayCompleted {
            at: dlq.now(),
            replayed: report.replayed,
            failed: report.failed,
            remaining: report.remaining,
        },
    );
    report
}
