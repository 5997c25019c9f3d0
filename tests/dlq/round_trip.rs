//! Capture and replay together: concurrent capture and replay lose nothing and never replay
//! after success, and a round trip through a real axum `Router`.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderMap, Request, Response, StatusCode};
use tower::{service_fn, Layer};
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, RejectedBody, ReplayConfig, Replayer,
    ThrottleRejected, DEFAULT_REPLAY_HEADER,
};
use tower_adaptive_throttle::{AdaptiveThrottle, RejectReason, ThrottleConfig, Tier};

use crate::fixtures::{throttle_rejection, REQUEST_ID};
use crate::support::respond;

#[tokio::test(start_paused = true)]
async fn every_captured_request_ends_exactly_once_as_replayed_pending_or_failed() {
    const TASKS: u64 = 6;
    const PER_TASK: u64 = 40;

    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    let dlq = DeadLetterQueue::builder()
        .capacity(10_000)
        .failed_capacity(10_000)
        .max_attempts(3)
        .build()
        .unwrap();

    // "Throttle + app": originals are always rejected (so all are captured); replays reach a
    // flaky handler that takes a little virtual time and fails ids ≡ 0 (mod 7) always and
    // every third attempt otherwise. Every delivery of a replay is logged with its outcome.
    let deliveries = Arc::new(Mutex::new(BTreeMap::<u64, Vec<bool>>::new()));
    let attempt_counter = Arc::new(AtomicU64::new(0));
    let app = {
        let deliveries = deliveries.clone();
        let attempt_counter = attempt_counter.clone();
        service_fn(move |request: Request<Body>| {
            let deliveries = deliveries.clone();
            let attempt_counter = attempt_counter.clone();
            async move {
                let id: u64 = request.headers()[&REQUEST_ID]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                if !request.headers().contains_key(DEFAULT_REPLAY_HEADER) {
                    tokio::task::yield_now().await;
                    return Ok::<_, Infallible>(throttle_rejection(request.into_body()));
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                let n = attempt_counter.fetch_add(1, Ordering::SeqCst);
                let ok = !id.is_multiple_of(7) && n % 3 != 2;
                deliveries.lock().unwrap().entry(id).or_default().push(ok);
                let mut response = Response::new(Body::empty());
                if !ok {
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok(response)
            }
        })
    };
    let captured_app = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()).layer(app);

    let config = ReplayConfig::builder()
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let auto = Replayer::new(dlq.clone(), throttle.clone(), captured_app.clone())
        .with_config(config)
        .spawn_auto_replay();

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let svc = captured_app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let id = task * PER_TASK + i;
                let request = Request::put(format!("/items/{id}"))
                    .header(REQUEST_ID, id)
                    .header(CONTENT_LENGTH, 2)
                    .body(Body::from("{}"))
                    .unwrap();
                let status = respond(&svc, request).await.status();
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                tokio::time::sleep(Duration::from_millis(7 + task)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Let replay go on (long enough for some ids to exhaust their attempts, not long enough to
    // drain: about 75 deliveries per virtual second), then stop it mid-run: a cancelled run
    // must put its in-flight entries back.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    auto.stop();
    tokio::task::yield_now().await;

    let ids_captured: BTreeSet<u64> = (0..TASKS * PER_TASK).collect();
    let header_id = |e: &tower_adaptive_throttle::dlq::DeadLetter| -> u64 {
        e.request.headers()[&REQUEST_ID]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let pending: Vec<u64> = dlq.list().iter().map(header_id).collect();
    let failed: Vec<u64> = dlq.failed().iter().map(header_id).collect();
    let deliveries = deliveries.lock().unwrap();
    let succeeded: Vec<u64> = deliveries
        .iter()
        .filter(|(_, outcomes)| outcomes.contains(&true))
        .map(|(id, _)| *id)
        .collect();

    // Nothing replayed after success: a success is the last delivery of its id, and unique.
    for (id, outcomes) in deliveries.iter() {
        let successes = outcomes.iter().filter(|ok| **ok).count();
        assert!(
            successes <= 1,
            "id {id} delivered successfully {successes} times"
        );
        if successes == 1 {
            assert_eq!(
                outcomes.last(),
                Some(&true),
                "id {id} replayed after success"
            );
        }
        assert!(
            outcomes.len() <= 3,
            "id {id} attempted more than max_attempts"
        );
    }

    // Exactly one end state per captured id; nothing lost, nothing invented.
    let mut end_states = BTreeMap::<u64, Vec<&str>>::new();
    for id in &pending {
        end_states.entry(*id).or_default().push("pending");
    }
    for id in &failed {
        end_states.entry(*id).or_default().push("failed");
    }
    for id in &succeeded {
        end_states.entry(*id).or_default().push("replayed");
    }
    for id in &ids_captured {
        let states = end_states.get(id).cloned().unwrap_or_default();
        assert_eq!(states.len(), 1, "id {id} ended as {states:?}");
    }
    assert_eq!(end_states.len(), ids_captured.len());

    let stats = dlq.stats();
    assert_eq!(stats.captured, TASKS * PER_TASK);
    assert_eq!(stats.in_flight, 0, "the cancelled run put its entries back");
    assert_eq!(stats.replayed, succeeded.len() as u64);
    assert_eq!(stats.exhausted, failed.len() as u64);
    assert_eq!(stats.pending, pending.len());
    assert_eq!(
        stats.captured,
        stats.replayed + stats.exhausted + stats.pending as u64
    );
    // The run exercised every end state.
    assert!(!succeeded.is_empty() && !failed.is_empty() && !pending.is_empty());
    // Failed entries failed exactly max_attempts times; pending ones fewer.
    for id in &failed {
        assert_eq!(deliveries[id].len(), 3);
    }
    for id in &pending {
        assert!(deliveries.get(id).map_or(0, Vec::len) < 3);
    }
}

#[tokio::test(start_paused = true)]
async fn axum_route_rejected_while_overloaded_is_replayed_once_with_the_marker() {
    use axum::extract::{Path, Request as AxumRequest};
    use axum::middleware::{self, Next};
    use axum::response::IntoResponse;
    use axum::routing::put as put_route;
    use axum::Router;

    let handled = Arc::new(Mutex::new(Vec::<(String, bool, String)>::new()));
    let overloaded = Arc::new(AtomicBool::new(true));

    let handler = {
        let handled = handled.clone();
        move |Path(id): Path<String>, headers: HeaderMap, body: String| {
            let handled = handled.clone();
            async move {
                let replayed = headers.contains_key(DEFAULT_REPLAY_HEADER)
                    && headers.contains_key("x-internal-replay-auth")
                    && !headers.contains_key(AUTHORIZATION);
                handled.lock().unwrap().push((id, replayed, body));
                StatusCode::NO_CONTENT
            }
        }
    };
    // Stands in for the throttle's HTTP layer: 429 + `ThrottleRejected` + the unread body while
    // overloaded.
    let stand_in_throttle = {
        let overloaded = overloaded.clone();
        move |request: AxumRequest, next: Next| {
            let overloaded = overloaded.clone();
            async move {
                if overloaded.load(Ordering::SeqCst) {
                    let mut response = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                    let extensions = response.extensions_mut();
                    extensions.insert(ThrottleRejected::new(
                        RejectReason::ConcurrencyLimitExceeded,
                        Tier::Critical,
                    ));
                    extensions.insert(RejectedBody::new(request.into_body()));
                    response
                } else {
                    next.run(request).await
                }
            }
        }
    };
    let dlq = DeadLetterQueue::default();
    let app: Router = Router::new()
        .route("/items/{id}", put_route(handler))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(middleware::from_fn(stand_in_throttle))
        .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()));

    for id in ["a", "b", "c"] {
        let request = Request::put(format!("/items/{id}"))
            .header(AUTHORIZATION, "Bearer s3cret")
            .header(CONTENT_LENGTH, 7)
            .body(Body::from(format!("body-{id}:")))
            .unwrap();
        let response = respond(&app, request).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(handled.lock().unwrap().is_empty());
    assert_eq!(dlq.len(), 3);
    let entry = &dlq.list()[0];
    assert_eq!(
        (entry.tier, entry.reason),
        (Tier::Critical, RejectReason::ConcurrencyLimitExceeded)
    );

    // Recovered: replay through the same router.
    overloaded.store(false, Ordering::SeqCst);
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    // A `Router` serves any body type: name the one replays are built with.
    // Captured requests keep no extensions: the hook puts back what the app needs.
    let replayer =
        Replayer::<_, Body>::new(dlq.clone(), throttle, app.clone()).with_request_hook(|request| {
            request.headers_mut().insert(
                "x-internal-replay-auth",
                http::HeaderValue::from_static("ok"),
            );
        });
    let report = replayer.replay_once().await;
    assert_eq!((report.replayed, report.failed), (3, 0));
    assert!(dlq.is_empty());
    let again = replayer.replay_once().await;
    assert!(!again.started);

    let handled = handled.lock().unwrap();
    assert_eq!(
        *handled,
        [
            ("a".to_owned(), true, "body-a:".to_owned()),
            ("b".to_owned(), true, "body-b:".to_owned()),
            ("c".to_owned(), true, "body-c:".to_owned()),
        ]
    );
    assert_eq!(dlq.stats().replayed, 3);
}
