//! Dead-letter queue routes (feature `dlq`), all behind the bearer token — captured requests can
//! hold personal data even with credentials stripped — except the queue's audit trail, whose
//! events hold none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::Response as HttpResponse;
use serde_json::{json, Value};
use tower_service::Service;

use super::json::to_ms;
use super::{authorise, AdminOptions, AuditQuery, Shared};
use crate::dlq::{DeadLetter, DeadLetterQueue, ReplayReport, Replayer};

/// Starts a run as the named operator.
type ReplayFn = dyn Fn(&str) -> Pin<Box<dyn Future<Output = ReplayReport> + Send>> + Send + Sync;

/// The queue the admin router shows, and how to replay it.
#[derive(Clone)]
pub(super) struct DlqAdmin {
    queue: DeadLetterQueue,
    replay: Option<Arc<ReplayFn>>,
}

impl DlqAdmin {
    /// The queue shown.
    pub(super) fn queue(&self) -> &DeadLetterQueue {
        &self.queue
    }
}

impl AdminOptions {
    /// Shows `queue` at `GET /dlq`, its audit trail at `GET /dlq/audit` and its events in
    /// `GET /events`, and lets operators purge it (`POST /dlq/purge`,
    /// `POST /dlq/purge-failed`).
    pub fn dead_letter_queue(mut self, queue: DeadLetterQueue) -> Self {
        let replay = self.dlq.take().and_then(|d| d.replay);
        self.dlq = Some(DlqAdmin { queue, replay });
        self
    }

    /// Shows the replayer's queue (as [`dead_letter_queue`](Self::dead_letter_queue) does) and
    /// lets operators start a paced run (`POST /dlq/replay`, answered with the run's report
    /// once it ends; the run's events name the operator in the queue's audit trail).
    pub fn replayer<S, B, R: Send + 'static>(mut self, replayer: Replayer<S, B>) -> Self
    where
        S: Service<Request<B>, Response = HttpResponse<R>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        B: From<Bytes> + Send + 'static,
        Replayer<S, B>: Send + Sync,
    {
        let queue = replayer.queue().clone();
        let replay: Arc<ReplayFn> = Arc::new(move |actor| Box::pin(replayer.replay_as(actor)));
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
        "body_unreadable": s.body_unreadable,
        "tier_skipped": s.tier_skipped,
    })
}

/// A durable queue's sizes and counters as its store reports them (every instance's), `null`
/// for an in-memory queue.
async fn durable(q: &DeadLetterQueue) -> Value {
    let Some(durable) = q.durable() else {
        return Value::Null;
    };
    match durable.counts().await {
        Ok(c) => json!({
            "queue": durable.name(),
            "len": c.len,
            "in_flight": c.in_flight,
            "overflow": c.overflow,
            "failed": c.failed,
        }),
        Err(e) => json!({"queue": durable.name(), "error": e.to_string()}),
    }
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
        "durable": durable(&d.queue).await,
        "pending": d.queue.list().iter().map(entry).collect::<Vec<_>>(),
        "permanently_failed": d.queue.failed().iter().map(entry).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `GET /dlq/audit?limit=N`: the queue's audit trail, read-only like a throttle's (its
/// events hold no request data: ids, tiers, reasons, counts).
pub(super) async fn audit(State(s): State<Shared>, Query(q): Query<AuditQuery>) -> Response {
    let Some(d) = s.dlq.as_ref() else {
        return missing();
    };
    let entries = d.queue.audit().recent(q.limit.unwrap_or(100).min(10_000));
    Json(to_ms(serde_json::to_value(entries).unwrap_or(Value::Null))).into_response()
}

pub(super) async fn replay(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let actor = match authorise(&s, &headers) {
        Ok(actor) => actor,
        Err(refused) => return refused.into_response(),
    };
    let Some(replay) = s.dlq.as_ref().and_then(|d| d.replay.clone()) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no replayer is attached to this admin router"})),
        )
            .into_response();
    };
    let r = replay(&actor).await;
    Json(json!({
        "started": r.started,
        "batches": r.batches,
        "replayed": r.replayed,
        "failed": r.failed,
        "exhausted": r.exhausted,
        "taken_over": r.taken_over,
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use axum::body::Body;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::audit::AuditSource;
    use crate::dlq::CapturedRequest;
    use crate::{AdaptiveThrottle, RejectReason, ThrottleConfig, ThrottleRegistry, Tier};

    const TOKEN: &str = "test-token";

    fn park(queue: &DeadLetterQueue, path: &str) {
        let request = CapturedRequest::new(
            http::Method::GET,
            path.parse().unwrap(),
            http::HeaderMap::new(),
            Bytes::new(),
        );
        queue.push(request, Tier::Standard, RejectReason::RateLimitExceeded);
    }

    fn setup() -> (ThrottleRegistry, AdaptiveThrottle, DeadLetterQueue) {
        let registry = ThrottleRegistry::new();
        let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
        registry.register("api", t.clone());
        (registry, t, DeadLetterQueue::default())
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_event_stream_carries_the_queues_events() {
        let (registry, _t, queue) = setup();
        let app = AdminOptions::new(registry)
            .dead_letter_queue(queue.clone())
            .router();
        // Filtered to a throttle: the queue's events come all the same.
        let req = Request::get("/events?throttle=api")
            .body(Body::empty())
            .unwrap();
        let mut body = app.oneshot(req).await.unwrap().into_body();
        let _tick = body.frame().await.unwrap().unwrap();
        park(&queue, "/a");
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let frame = body.frame().await.unwrap().unwrap();
                let text = String::from_utf8_lossy(frame.data_ref().unwrap()).to_string();
                if text.contains("event: dlq") {
                    return text;
                }
            }
        })
        .await
        .expect("the queue's event");
        let data = found
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["kind"], "rejection_stored");
        assert_eq!(data["event"]["type"], "rejection_stored");
        assert_eq!(data["event"]["id"], 1);
        assert_eq!(data["event"]["tier"], "standard");
        assert_eq!(data["event"]["reason"], "rate_limit_exceeded");
        assert!(data["event"]["at"].is_f64(), "durations in ms: {data}");
    }

    #[tokio::test]
    async fn an_operators_replay_is_audited_with_the_actor_in_the_queues_trail() {
        let (registry, t, queue) = setup();
        park(&queue, "/a");
        let app = tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(HttpResponse::new(Body::empty()))
        });
        let admin = AdminOptions::new(registry)
            .bearer_token(TOKEN)
            .replayer(Replayer::new(queue.clone(), t, app))
            .router();

        // Read-only, like a throttle's trail.
        let (status, trail) = call(
            &admin,
            Request::get("/dlq/audit").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(trail[0]["event"]["type"], "rejection_stored");
        assert_eq!(trail[0]["source"]["kind"], "governance");

        let replay = Request::post("/dlq/replay")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("x-throttle-actor", "alice")
            .body(Body::empty())
            .unwrap();
        let (status, report) = call(&admin, replay).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["replayed"], 1);
        let entries = queue.audit().recent(10);
        let run: Vec<_> = entries
            .iter()
            .filter(|e| e.event.kind().starts_with("replay_"))
            .map(|e| (e.event.kind(), e.source.clone()))
            .collect();
        let alice = AuditSource::Operator("alice".into());
        assert_eq!(
            run,
            [
                ("replay_started", alice.clone()),
                ("replay_completed", alice)
            ]
        );
    }

    #[tokio::test]
    async fn without_a_queue_its_trail_is_not_found() {
        let (registry, _t, _queue) = setup();
        let admin = AdminOptions::new(registry).router();
        let (status, _) = call(
            &admin,
            Request::get("/dlq/audit").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
