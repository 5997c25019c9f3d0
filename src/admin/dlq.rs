//! Dead-letter queue routes (feature `dlq`), all behind the bearer token: captured requests can
//! hold personal data even with credentials stripped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::Response as HttpResponse;
use serde_json::{json, Value};
use tower_service::Service;

use super::{authorise, AdminOptions, Shared};
use crate::dlq::{DeadLetter, DeadLetterQueue, ReplayReport, Replayer};

type ReplayFn = dyn Fn() -> Pin<Box<dyn Future<Output = ReplayReport> + Send>> + Send + Sync;

/// The queue the admin router shows, and how to replay it.
#[derive(Clone)]
pub(super) struct DlqAdmin {
    queue: DeadLetterQueue,
    replay: Option<Arc<ReplayFn>>,
}

impl AdminOptions {
    /// Shows `queue` at `GET /dlq` and lets operators purge it (`POST /dlq/purge`,
    /// `POST /dlq/purge-failed`).
    pub fn dead_letter_queue(mut self, queue: DeadLetterQueue) -> Self {
        let replay = self.dlq.take().and_then(|d| d.replay);
        self.dlq = Some(DlqAdmin { queue, replay });
        self
    }

    /// Shows the replayer's queue and lets operators start a paced run (`POST /dlq/replay`,
    /// answered with the run's report once it ends).
    pub fn replayer<S, B, R: Send + 'static>(mut self, replayer: Replayer<S, B>) -> Self
    where
        S: Service<Request<B>, Response = HttpResponse<R>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        B: From<Bytes> + Send + 'static,
        Replayer<S, B>: Send + Sync,
    {
        let queue = replayer.queue().clone();
        let replay: Arc<ReplayFn> = Arc::new(move || Box::pin(replayer.replay_once()));
        self.dlq = Some(DlqAdmin {
            queue,
            replay: Some(replay),
        });
        self
    }
}

fn entry(e: &DeadLetter) -> Value {
    json!({
        "id": e.id.get(),
        "method": e.request.method().as_str(),
        "uri": e.request.uri().to_string(),
        "headers": e.request.headers().keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        "body_bytes": e.request.body().len(),
        "tier": e.tier.as_str(),
        "reason": e.reason.as_str(),
        "captured_at_ms": e.captured_at.as_secs_f64() * 1000.0,
        "attempts": e.attempts,
        "state": e.state.as_str(),
    })
}

fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no dead-letter queue is attached to this admin router"})),
    )
        .into_response()
}

fn stats(q: &DeadLetterQueue) -> Value {
    let s = q.stats();
    json!({
        "capacity": s.capacity,
        "pending": s.pending,
        "in_flight": s.in_flight,
        "permanently_failed": s.permanently_failed,
        "captured": s.captured,
        "replayed": s.replayed,
        "failed_attempts": s.failed_attempts,
        "exhausted": s.exhausted,
        "purged": s.purged,
        "overflow": s.overflow,
        "failed_dropped": s.failed_dropped,
        "body_too_large": s.body_too_large,
        "body_unknown_length": s.body_unknown_length,
        "tier_skipped": s.tier_skipped,
    })
}

pub(super) async fn list(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorise(&s, &headers) {
        return refused.into_response();
    }
    let Some(d) = s.dlq.as_ref() else {
        return missing();
    };
    Json(json!({
        "stats": stats(&d.queue),
        "pending": d.queue.list().iter().map(entry).collect::<Vec<_>>(),
        "permanently_failed": d.queue.failed().iter().map(entry).collect::<Vec<_>>(),
    }))
    .into_response()
}

pub(super) async fn replay(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorise(&s, &headers) {
        return refused.into_response();
    }
    let Some(replay) = s.dlq.as_ref().and_then(|d| d.replay.clone()) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no replayer is attached to this admin router"})),
        )
            .into_response();
    };
    let r = replay().await;
    Json(json!({
        "started": r.started,
        "batches": r.batches,
        "replayed": r.replayed,
        "failed": r.failed,
        "exhausted": r.exhausted,
        "remaining": r.remaining,
        "stop": format!("{:?}", r.stop),
    }))
    .into_response()
}

pub(super) async fn purge(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorise(&s, &headers) {
        return refused.into_response();
    }
    match s.dlq.as_ref() {
        Some(d) => Json(json!({"purged": d.queue.purge()})).into_response(),
        None => missing(),
    }
}

pub(super) async fn purge_failed(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorise(&s, &headers) {
        return refused.into_response();
    }
    match s.dlq.as_ref() {
        Some(d) => Json(json!({"purged": d.queue.purge_failed()})).into_response(),
        None => missing(),
    }
}
