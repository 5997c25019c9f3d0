//! `GET /events`: server-sent events of every throttle (or one, with `?throttle=name`).
//!
//! Kinds of message:
//!
//! - `throttle`: a `ThrottleEvent` as it happens, with the throttle's name —
//!   `{"throttle": name, "kind": kind, "event": {"type": kind, "at": ms, ...}}`;
//! - `dlq` (feature `dlq`, when the router has a dead-letter queue, whatever the `?throttle`
//!   filter): a `DlqEvent` of the queue as it happens — `{"kind": kind, "event": {"type":
//!   kind, "at": ms, ...}}`;
//! - `tick`: a snapshot every tick interval (limit, smoothed latency, gradient, regime, ramp,
//!   request totals) from which a client derives rates;
//! - `lagged`: events this client missed because it read too slowly —
//!   `{"throttle": name, "missed": n}` or, for the queue's, `{"dlq": true, "missed": n}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::json::to_ms;
use super::Shared;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    throttle: Option<String>,
}

/// Events queued per client before the slowest are dropped (the stream then says so).
const CLIENT_QUEUE: usize = 1024;

pub(super) async fn events(
    State(s): State<Shared>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let throttles: Vec<_> = s
        .registry
        .list()
        .into_iter()
        .filter(|(name, _)| q.throttle.as_deref().is_none_or(|only| only == name))
        .collect();
    let (tx, rx) = mpsc::channel::<Event>(CLIENT_QUEUE);
    for (name, t) in &throttles {
        let name = name.clone();
        forward(t.subscribe(), tx.clone(), move |received| match received {
            Ok(e) => {
                let body = to_ms(json!({
                    "throttle": name,
                    "kind": e.kind(),
                    "event": serde_json::to_value(&e).unwrap_or(Value::Null),
                }));
                Event::default().event("throttle").data(body.to_string())
            }
            Err(missed) => Event::default()
                .event("lagged")
                .data(json!({ "throttle": name, "missed": missed }).to_string()),
        });
    }
    #[cfg(feature = "dlq")]
    if let Some(d) = s.dlq.as_ref() {
        forward(
            d.queue().subscribe(),
            tx.clone(),
            |received| match received {
                Ok(e) => {
                    let body = to_ms(json!({
                        "kind": e.kind(),
                        "event": serde_json::to_value(&e).unwrap_or(Value::Null),
                    }));
                    Event::default().event("dlq").data(body.to_string())
                }
                Err(missed) => Event::default()
                    .event("lagged")
                    .data(json!({ "dlq": true, "missed": missed }).to_string()),
            },
        );
    }
    let tick = s.tick;
    let snapshot_of = Arc::new(throttles);
    let state = (rx, tokio::time::interval(tick), snapshot_of);
    let stream =
        futures_util::stream::unfold(state, |(mut rx, mut interval, throttles)| async move {
            let event = tokio::select! {
                biased;
                Some(event) = rx.recv() => event,
                _ = interval.tick() => tick_event(&throttles),
            };
            Some((Ok(event), (rx, interval, throttles)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Sends what `events` receives to the client, as the messages `message` makes of them (`Ok`
/// an event, `Err` how many were missed). Ends as soon as the client goes away (even when no
/// event comes) or the events' source (throttle or queue) is dropped.
fn forward<E: Clone + Send + 'static>(
    mut events: broadcast::Receiver<E>,
    tx: mpsc::Sender<Event>,
    message: impl Fn(Result<E, u64>) -> Event + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                () = tx.closed() => return,
            };
            let event = match received {
                Ok(e) => message(Ok(e)),
                Err(broadcast::error::RecvError::Lagged(n)) => message(Err(n)),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
}

fn tick_event(throttles: &[(String, crate::AdaptiveThrottle)]) -> Event {
    let snapshots: Vec<Value> = throttles
        .iter()
        .map(|(name, t)| {
            let s = t.stats();
            let concurrency = t.concurrency_stats();
            json!({
                "throttle": name,
                "limit": s.current_limit,
                "smoothed_rtt_ms": s.smoothed_rtt.map(|d| d.as_secs_f64() * 1000.0),
                "gradient": s.gradient,
                "regime": s.regime.as_str(),
                "ramp": s.ramp.map(|r| json!({
                    "stages_applied": r.stages_applied,
                    "stages": r.stages,
                    "fraction": r.fraction,
                    "next_in_ms": r.next_in.as_secs_f64() * 1000.0,
                })),
                "allowed_total": s.allowed_requests,
                "rejected_total": s.rejected_requests,
                "emergency_level": s.governance.emergency_level,
                "breaker": s.governance.breaker.as_str(),
                "inflight_limit": concurrency.map(|c| c.limit),
                "inflight": concurrency.map(|c| c.inflight),
            })
        })
        .collect();
    Event::default()
        .event("tick")
        .data(Value::Array(snapshots).to_string())
}
