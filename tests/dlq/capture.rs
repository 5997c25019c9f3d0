//! Capture filters: what the layer keeps of a rejected request, and what it leaves alone.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION, CONTENT_LENGTH, COOKIE, PROXY_AUTHORIZATION};
use http::{Method, Request, Response, StatusCode};
use tower::{service_fn, Layer};
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, DlqEvent, ThrottleRejected,
    DEFAULT_REPLAY_HEADER,
};
use tower_adaptive_throttle::{RejectReason, Tier};

use crate::fixtures::{put, send, Chunked, StandIn};
use crate::support::{get, request};

#[tokio::test(start_paused = true)]
async fn sensitive_headers_are_stripped_unless_explicitly_allowed() {
    let request = || {
        Request::put("/items/1")
            .header(AUTHORIZATION, "Bearer s3cret")
            .header(COOKIE, "session=abc")
            .header(PROXY_AUTHORIZATION, "Basic eA==")
            .header("x-api-key", "k-123")
            .header("x-trace", "t-1")
            .header(CONTENT_LENGTH, 0)
            .body(Body::empty())
            .unwrap()
    };
    let options = CaptureOptions::new().sensitive_header(HeaderName::from_static("x-api-key"));

    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), options.clone()).layer(stand_in.service());
    assert_eq!(send(&svc, request()).await, StatusCode::TOO_MANY_REQUESTS);
    let entry = &dlq.list()[0];
    let kept = entry.request.headers();
    for gone in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
    ] {
        assert!(!kept.contains_key(gone), "{gone} must not be stored");
    }
    assert_eq!(kept["x-trace"], "t-1");
    // The inner service still saw every header: capture filters the copy, not the request.
    assert_eq!(
        stand_in.seen.lock().unwrap()[0].headers[AUTHORIZATION],
        "Bearer s3cret"
    );

    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(
        dlq.clone(),
        options
            .allow_header(AUTHORIZATION)
            .allow_header(HeaderName::from_static("x-api-key")),
    )
    .layer(StandIn::overloaded().service());
    send(&svc, request()).await;
    let kept = dlq.list()[0].request.headers().clone();
    assert_eq!(kept[AUTHORIZATION], "Bearer s3cret");
    assert_eq!(kept["x-api-key"], "k-123");
    assert!(
        !kept.contains_key(COOKIE),
        "only the allowed ones come back"
    );
}

#[tokio::test(start_paused = true)]
async fn body_within_the_limit_is_read_back_from_the_rejection_and_captured() {
    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().max_body_size(8))
        .layer(stand_in.service());
    send(&svc, put("/items/1", "12345678")).await;
    assert_eq!(dlq.list()[0].request.body().as_ref(), b"12345678");
    // The rejecter handed the body back unread; the capture layer read it from the 429.
    assert_eq!(stand_in.seen.lock().unwrap()[0].body, None);
    assert_eq!(dlq.list()[0].request.method(), Method::PUT);
    assert_eq!(dlq.list()[0].request.uri(), "/items/1");

    // Admitted: the app gets the body as it was sent, and nothing is stored.
    stand_in.overloaded.store(false, Ordering::SeqCst);
    assert_eq!(send(&svc, put("/items/2", "abc")).await, StatusCode::OK);
    assert_eq!(
        stand_in.seen.lock().unwrap()[1].body.as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(dlq.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejection_that_does_not_hand_the_body_back_is_counted_unless_the_body_is_empty() {
    // A rejecter that sets the marker but keeps the body (it never reaches the app either).
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()).layer(service_fn(
        |_request: Request<Body>| async move {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response.extensions_mut().insert(ThrottleRejected::new(
                RejectReason::RateLimitExceeded,
                Tier::Standard,
            ));
            Ok::<_, Infallible>(response)
        },
    ));
    assert_eq!(
        send(&svc, put("/items/1", "abc")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(dlq.is_empty());
    assert_eq!(dlq.stats().body_unreadable, 1);
    // Without a body there is nothing to hand back: captured as before.
    send(&svc, get("/items/2")).await;
    assert_eq!(dlq.list()[0].request.uri(), "/items/2");
    assert_eq!(dlq.stats().body_unreadable, 1);
}

#[tokio::test(start_paused = true)]
async fn body_over_the_limit_or_of_unknown_length_is_not_captured_and_is_counted() {
    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().max_body_size(8))
        .layer(stand_in.service());

    assert_eq!(
        send(&svc, put("/items/1", "123456789")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let unknown = Request::put("/items/2")
        .body(Body::new(Chunked(Some(Bytes::from_static(b"abc")))))
        .unwrap();
    send(&svc, unknown).await;

    assert!(dlq.is_empty());
    let stats = dlq.stats();
    assert_eq!((stats.body_too_large, stats.body_unknown_length), (1, 1));
    assert_eq!(stats.captured, 0);

    // Admitted requests are not counted: only rejections that could not be kept are. Their
    // bodies, whatever their size, reach the app untouched.
    stand_in.overloaded.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&svc, put("/items/3", "123456789")).await,
        StatusCode::OK
    );
    let unknown = Request::put("/items/4")
        .body(Body::new(Chunked(Some(Bytes::from_static(b"abc")))))
        .unwrap();
    assert_eq!(send(&svc, unknown).await, StatusCode::OK);
    assert_eq!(dlq.stats().body_too_large, 1);
    assert_eq!(dlq.stats().body_unknown_length, 1);
    let seen = stand_in.seen.lock().unwrap();
    assert_eq!(seen[2].body.as_deref(), Some(&b"123456789"[..]));
    assert_eq!(seen[3].body.as_deref(), Some(&b"abc"[..]));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_methods_are_skipped_unless_opted_in() {
    let post = || {
        Request::post("/orders")
            .header(CONTENT_LENGTH, 2)
            .body(Body::from("{}"))
            .unwrap()
    };
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    send(&svc, post()).await;
    let patch = request("PATCH", "/orders/1", &[]);
    send(&svc, patch).await;
    assert!(dlq.is_empty());
    assert_eq!(dlq.stats().captured, 0);

    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().method(Method::POST))
        .layer(StandIn::overloaded().service());
    send(&svc, post()).await;
    assert_eq!(dlq.list()[0].request.method(), Method::POST);
    assert_eq!(dlq.list()[0].request.body().as_ref(), b"{}");
}

#[tokio::test(start_paused = true)]
async fn replay_marked_requests_are_never_captured() {
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    let replay = Request::get("/items/1")
        .header(DEFAULT_REPLAY_HEADER, "1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&svc, replay).await, StatusCode::TOO_MANY_REQUESTS);
    assert!(dlq.is_empty());

    // A custom marker header is honoured too.
    let custom = HeaderName::from_static("x-replayed");
    let svc = DeadLetterLayer::new(
        dlq.clone(),
        CaptureOptions::new().replay_header(custom.clone()),
    )
    .layer(StandIn::overloaded().service());
    let replay = Request::get("/items/1")
        .header(custom, "yes")
        .body(Body::empty())
        .unwrap();
    send(&svc, replay).await;
    assert_eq!(dlq.stats().captured, 0);
}

#[tokio::test(start_paused = true)]
async fn only_the_throttles_own_429_is_captured() {
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()).layer(service_fn(
        |request: Request<Body>| async move {
            let status = match request.uri().path() {
                "/app-429" => StatusCode::TOO_MANY_REQUESTS, // the app's own, no marker
                _ => StatusCode::OK,
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        },
    ));
    send(&svc, get("/app-429")).await;
    send(&svc, get("/fine")).await;
    assert_eq!(dlq.stats().captured, 0);
}

#[tokio::test(start_paused = true)]
async fn full_queue_drops_new_entries_counts_and_announces_them() {
    let dlq = DeadLetterQueue::builder().capacity(2).build().unwrap();
    let mut events = dlq.subscribe();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    for path in ["/a", "/b", "/c"] {
        send(&svc, get(path)).await;
    }
    let paths: Vec<_> = dlq
        .list()
        .iter()
        .map(|e| e.request.uri().path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/a", "/b"],
        "the new entry is dropped, not the oldest"
    );
    assert_eq!(dlq.stats().overflow, 1);
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let DlqEvent::Overflow {
            dropped_total,
            tier,
            reason,
            ..
        } = &event
        {
            assert_eq!(*dropped_total, 1);
            assert_eq!(
                (*tier, *reason),
                (Tier::Standard, RejectReason::RateLimitExceeded)
            );
        }
        kinds.push(event.kind());
    }
    assert_eq!(kinds, ["rejection_stored", "rejection_stored", "overflow"]);
}
