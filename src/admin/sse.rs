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
//! - `sample`: a round of the router's history as it is taken (every history interval), with
//!   `epoch:seq` as the message id — `{"epoch": e, "seq": n, "t": ms since the Unix epoch,
//!   "throttles": [{"throttle": name, "limit": …, …}], "markers": [{"id", "t", "label"}]}`.
//!   With `?since=n&epoch=e` (or a `Last-Event-ID` header, as a reconnecting `EventSource`
//!   sends), the stream first sends the kept rounds after `n`, then the live ones: none missed,
//!   none twice. A round of another epoch (the server restarted) sends every round kept;
//! - `lagged`: events this client missed because it read too slowly —
//!   `{"throttle": name, "missed": n}`, for the queue's `{"dlq": true, "missed": n}`, for
//!   rounds of the history `{"samples": true, "missed": n}` (reconnect with `?since=` to get
//!   them from the history).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::history::Round;
use super::json::to_ms;
use super::Shared;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    throttle: Option<String>,
    since: Option<u64>,
    epoch: Option<u64>,
}

/// Events queued per client before the slowest are dropped (the stream then says so).
const CLIENT_QUEUE: usize = 1024;

pub(super) async fn events(
    State(s): State<Shared>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
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
        forward(t.subscribe(), tx.clone(), move |received| {
            Some(match received {
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
            })
        });
    }
    #[cfg(feature = "dlq")]
    if let Some(d) = s.dlq.as_ref() {
        forward(d.queue().subscribe(), tx.clone(), |received| {
            Some(match received {
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
            })
        });
    }
    // The history: the kept rounds after `since`, then the live ones after those.
    // The id of the last message a reconnecting `EventSource` received wins over its URL's.
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_round_id)
        .or(q.since.map(|seq| (q.epoch, seq)));
    let (kept, live, seen) = s.history.follow(since);
    let only = q.throttle.clone();
    let epoch = s.history.epoch();
    let sample = move |round: &Round| {
        Event::default()
            .event("sample")
            .id(format!("{epoch}:{}", round.seq))
            .data(round.to_json(only.as_deref()).to_string())
    };
    let replay: VecDeque<Event> = kept.iter().map(|r| sample(r)).collect();
    let mut sent = kept.last().map_or(seen, |r| r.seq);
    forward(live, tx.clone(), move |received| match received {
        Ok(round) if round.seq > sent => {
            sent = round.seq;
            Some(sample(&round))
        }
        Ok(_) => None,
        Err(missed) => Some(
            Event::default()
                .event("lagged")
                .data(json!({ "samples": true, "missed": missed }).to_string()),
        ),
    });
    let tick = s.tick;
    let snapshot_of = Arc::new(throttles);
    let state = (replay, rx, tokio::time::interval(tick), snapshot_of);
    let stream = futures_util::stream::unfold(
        state,
        |(mut replay, mut rx, mut interval, throttles)| async move {
            let event = match replay.pop_front() {
                Some(event) => event,
                None => tokio::select! {
                    biased;
                    Some(event) = rx.recv() => event,
                    _ = interval.tick() => tick_event(&throttles),
                },
            };
            Some((Ok(event), (replay, rx, interval, throttles)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `epoch:seq` (or a bare `seq`, of an unknown epoch) as the `sample` messages' ids write it.
fn parse_round_id(id: &str) -> Option<(Option<u64>, u64)> {
    match id.trim().split_once(':') {
        Some((epoch, seq)) => Some((Some(epoch.parse().ok()?), seq.parse().ok()?)),
        None => Some((None, id.trim().parse().ok()?)),
    }
}

/// Sends what `events` receives to the client, as the messages `message` makes of them (`Ok`
/// an event, `Err` how many were missed; `None` to send nothing). Ends as soon as the client
/// goes away (even when no event comes) or the events' source (throttle, queue or router) is
/// dropped.
fn forward<E: Clone + Send + 'static>(
    mut events: broadcast::Receiver<E>,
    tx: mpsc::Sender<Event>,
    mut message: impl FnMut(Result<E, u64>) -> Option<Event> + Send + 'static,
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
            let Some(event) = event else { continue };
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
