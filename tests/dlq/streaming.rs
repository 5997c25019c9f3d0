//! The capture layer in front of the real throttle layer: admitted bodies stream through
//! unread, rejected ones come back with the 429 and are read there (issue 16, item 6).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_adaptive_throttle::dlq::{CaptureOptions, DeadLetterLayer, DeadLetterQueue};
use tower_adaptive_throttle::http::GlobalKey;
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer};

use crate::fixtures::ChannelBody;
use crate::support::{get, quota};

/// Long enough for anything that is not stuck: time is paused, so a stuck wait auto-advances
/// to it at once and the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// `PUT /items/1` declaring `length` bytes, whose frames are whatever is sent on the returned
/// channel (the body ends when the sender is dropped).
fn streamed_put(length: usize) -> (Request<Body>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(4);
    let request = Request::put("/items/1")
        .header(CONTENT_LENGTH, length)
        .header("x-trace", "t-1")
        .body(Body::new(ChannelBody(rx)))
        .unwrap();
    (request, tx)
}

/// Dead-letter capture (outer) around the throttle layer (inner, one shared key) around `app`.
fn stack<S>(
    dlq: &DeadLetterQueue,
    options: CaptureOptions,
    throttle: &AdaptiveThrottle,
    app: S,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let throttled = AdaptiveThrottleLayer::from_throttle(throttle.clone())
        .key_extractor(GlobalKey)
        .layer(app);
    // The throttle answers with its own body type; the stack answers axum's, like a Router.
    let throttled =
        tower::util::MapResponseLayer::new(|r: Response<_>| r.map(Body::new)).layer(throttled);
    DeadLetterLayer::new(dlq.clone(), options).layer(throttled)
}

/// An app that must never be called.
fn unreachable_app(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    service_fn(|_request: Request<Body>| async move {
        panic!("a rejected request reached the inner service");
        #[allow(unreachable_code)]
        Ok::<_, Infallible>(Response::new(Body::empty()))
    })
}

/// A throttle with its one slot per window already taken: it rejects whatever comes next.
async fn exhausted_throttle() -> AdaptiveThrottle {
    let throttle = quota(1);
    let svc = AdaptiveThrottleLayer::from_throttle(throttle.clone())
        .key_extractor(GlobalKey)
        .layer(service_fn(|_r: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let first = svc.oneshot(get("/warm")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    throttle
}

#[tokio::test(start_paused = true)]
async fn admitted_body_streams_to_the_inner_service_unbuffered() {
    // The app reads the first frame and reports it before the second one exists: only a
    // capture layer that hands the body on unread lets it see that frame.
    let (first_tx, first_rx) = oneshot::channel::<Bytes>();
    let first_tx = Arc::new(Mutex::new(Some(first_tx)));
    let frames = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let app = {
        let frames = frames.clone();
        service_fn(move |request: Request<Body>| {
            let first_tx = first_tx.clone();
            let frames = frames.clone();
            async move {
                let mut body = request.into_body();
                let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                frames.lock().unwrap().push(first.clone());
                first_tx
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap()
                    .send(first)
                    .unwrap();
                while let Some(frame) = body.frame().await {
                    frames
                        .lock()
                        .unwrap()
                        .push(frame.unwrap().into_data().unwrap());
                }
                Ok::<_, Infallible>(Response::new(Body::from("stored")))
            }
        })
    };
    let dlq = DeadLetterQueue::default();
    let throttle = quota(100);
    let svc = stack(&dlq, CaptureOptions::new(), &throttle, app);

    let (request, tx) = streamed_put(11);
    tx.send(Bytes::from_static(b"hello ")).await.unwrap();
    let call = tokio::spawn(svc.oneshot(request));
    let first = tokio::time::timeout(PATIENCE, first_rx)
        .await
        .expect("the inner service got no frame: the capture layer waits for the whole body")
        .unwrap();
    assert_eq!(first.as_ref(), b"hello ");
    tx.send(Bytes::from_static(b"world")).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the admitted request did not complete")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Frame by frame, as sent: not collected into one buffer and rebuilt.
    assert_eq!(
        *frames.lock().unwrap(),
        [Bytes::from_static(b"hello "), Bytes::from_static(b"world")]
    );
    assert!(dlq.is_empty());
    let stats = dlq.stats();
    assert_eq!(
        (
            stats.captured,
            stats.body_too_large,
            stats.body_unknown_length
        ),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_body_is_read_back_from_the_429_and_captured_whole() {
    let dlq = DeadLetterQueue::default();
    let throttle = exhausted_throttle().await;
    let svc = stack(&dlq, CaptureOptions::new(), &throttle, unreachable_app());

    let (request, tx) = streamed_put(11);
    let call = tokio::spawn(svc.oneshot(request));
    tx.send(Bytes::from_static(b"hello ")).await.unwrap();
    tx.send(Bytes::from_static(b"world")).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the rejection did not complete")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));

    let entries = dlq.list();
    assert_eq!(entries.len(), 1);
    let captured = &entries[0].request;
    assert_eq!(captured.method(), http::Method::PUT);
    assert_eq!(captured.uri(), "/items/1");
    assert_eq!(captured.headers()["x-trace"], "t-1");
    assert_eq!(captured.headers()[CONTENT_LENGTH], "11");
    assert_eq!(captured.body().as_ref(), b"hello world");
    assert_eq!(dlq.stats().captured, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_bodies_over_the_limit_or_of_unknown_length_are_counted_not_captured() {
    let dlq = DeadLetterQueue::default();
    let throttle = exhausted_throttle().await;
    let options = CaptureOptions::new().max_body_size(8);
    let svc = stack(&dlq, options, &throttle, unreachable_app());

    // Declared over the limit: not read at all.
    let (request, _tx) = streamed_put(9);
    let response = tokio::time::timeout(PATIENCE, svc.clone().oneshot(request))
        .await
        .expect("an over-limit body must not be waited for")
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Declared within the limit but longer: read up to the limit, then given up.
    let (request, tx) = streamed_put(4);
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    tx.send(Bytes::from_static(b"6789")).await.unwrap();
    let response = tokio::time::timeout(PATIENCE, svc.clone().oneshot(request))
        .await
        .expect("a body over the limit must not be read to its end")
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // No declared length.
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    let request = Request::put("/items/2")
        .body(Body::new(ChannelBody(rx)))
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    assert!(dlq.is_empty());
    let stats = dlq.stats();
    assert_eq!(
        (
            stats.captured,
            stats.body_too_large,
            stats.body_unknown_length
        ),
        (0, 2, 1)
    );
}
