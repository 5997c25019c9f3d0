//! The durable dead-letter queue on a real Redis (Redis Streams with a consumer group): what
//! capture stores (and never stores), claims taken over from a dead replayer, claims kept alive
//! while a slow replay runs, the idempotency key that keeps a replayed entry from being
//! replayed again, automatic replay, and the length bound.
//!
//! Every wait is bounded; the only sleeps wait out (multiples of) the claim idle time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderName, Request, Response, StatusCode};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, DurableQueue, RejectedBody, ReplayConfig,
    Replayer, ThrottleRejected,
};
use tower_adaptive_throttle::store::{RedisStore, Store};
use tower_adaptive_throttle::{AdaptiveThrottle, RejectReason, ThrottleConfig, Tier};

use super::redis_server::RedisServer;

const QUEUE: &str = "orders";
const IDLE: Duration = Duration::from_millis(300);

/// "Throttle + app" while overloaded: a 429 with the marker, the body handed back unread.
fn rejecting(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send {
    service_fn(|request: Request<Body>| async move {
        let mut response = Response::new(Body::from("rejected"));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response.extensions_mut().insert(ThrottleRejected::new(
            RejectReason::RateLimitExceeded,
            Tier::Standard,
        ));
        response
            .extensions_mut()
            .insert(RejectedBody::new(request.into_body()));
        Ok::<_, Infallible>(response)
    })
}

/// The app once recovered: answers `status` and records every path it served.
fn app(
    seen: Arc<Mutex<Vec<String>>>,
    status: StatusCode,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send {
    service_fn(move |request: Request<Body>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(request.uri().path().to_owned());
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    })
}

async fn durable(redis: &RedisServer) -> (RedisStore, DurableQueue) {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let queue = DurableQueue::new(store.clone(), QUEUE).claim_idle(IDLE);
    (store, queue)
}

fn dlq(durable: DurableQueue) -> DeadLetterQueue {
    DeadLetterQueue::builder()
        .durable(durable)
        .max_attempts(2)
        .build()
        .unwrap()
}

async fn capture(dlq: &DeadLetterQueue, options: CaptureOptions, request: Request<Body>) {
    let svc = DeadLetterLayer::new(dlq.clone(), options).layer(rejecting());
    let status = svc.oneshot(request).await.unwrap().status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn capture_paths(dlq: &DeadLetterQueue, n: usize) {
    for i in 0..n {
        let request = Request::get(format!("/items/{i}"))
            .body(Body::empty())
            .unwrap();
        capture(dlq, CaptureOptions::new(), request).await;
    }
}

/// Waits (at most 5 s) until the durable queue holds `len` entries.
async fn wait_len(queue: &DurableQueue, len: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = queue.counts().await.unwrap();
        if counts.len == len {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue holds {counts:?}, not {len} entries"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn replayer(
    dlq: DeadLetterQueue,
    seen: &Arc<Mutex<Vec<String>>>,
    status: StatusCode,
) -> Replayer<impl Service<Request<Body>, Response = Response<Body>> + Clone, Body> {
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    Replayer::new(dlq, throttle, app(seen.clone(), status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_entry_is_in_redis_for_another_handle_and_holds_no_credentials() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue_a) = durable(&redis).await;
    let dlq_a = dlq(queue_a);
    let secret = HeaderName::from_static("x-tenant-secret");
    let request = Request::put("/orders/7")
        .header(AUTHORIZATION, "Bearer s3cr3t-bearer")
        .header(COOKIE, "session=s3cr3t-cookie")
        .header(PROXY_AUTHORIZATION, "Basic s3cr3t-proxy")
        .header("x-api-key", "s3cr3t-key")
        .header(&secret, "s3cr3t-tenant")
        .header("x-request-id", "req-42")
        .header(CONTENT_LENGTH, 7)
        .body(Body::from("payload"))
        .unwrap();
    capture(
        &dlq_a,
        CaptureOptions::new().sensitive_header(secret),
        request,
    )
    .await;

    // Another connection, another handle.
    let (_, queue_b) = durable(&redis).await;
    wait_len(&queue_b, 1).await;
    let stored = queue_b.stored(false, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    let raw = &stored[0].payload;
    assert!(raw.contains("/orders/7") && raw.contains("req-42"), "{raw}");
    for absent in [
        "s3cr3t",
        "authorization",
        "cookie",
        "x-api-key",
        "x-tenant-secret",
    ] {
        assert!(
            !raw.to_ascii_lowercase().contains(absent),
            "{absent} in {raw}"
        );
    }
    assert_eq!(dlq_a.stats().captured, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_replayer_died_is_claimed_after_the_idle_time_and_replayed_once() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (store, queue) = durable(&redis).await;
    let dlq_a = dlq(queue.clone());
    capture_paths(&dlq_a, 1).await;
    wait_len(&queue, 1).await;

    // A replayer claims the entry and dies before acknowledging it.
    let claimed = store
        .dlq_claim(QUEUE, "dead-instance", 10, IDLE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(store);

    let (_, queue_b) = durable(&redis).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let replay_b = replayer(dlq(queue_b.clone()), &seen, StatusCode::OK);
    let early = replay_b.replay_once().await;
    assert_eq!(early.replayed, 0, "still claimed by the dead replayer");
    assert_eq!(queue_b.counts().await.unwrap().in_flight, 1);

    tokio::time::sleep(IDLE + Duration::from_millis(100)).await;
    let report = replay_b.replay_once().await;
    assert_eq!(report.replayed, 1);
    assert_eq!(*seen.lock().unwrap(), ["/items/0"]);
    let again = replay_b.replay_once().await;
    assert_eq!(again.replayed, 0);
    assert_eq!(seen.lock().unwrap().len(), 1, "replayed once");
    let counts = queue_b.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_replayed_whose_ack_was_lost_is_acknowledged_not_replayed_again() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (store, queue) = durable(&redis).await;
    capture_paths(&dlq(queue.clone()), 1).await;
    wait_len(&queue, 1).await;

    // Replayed successfully, marked done, then the process died before XACK.
    let claimed = store
        .dlq_claim(QUEUE, "dead-instance", 10, IDLE)
        .await
        .unwrap();
    store
        .dlq_mark_done(QUEUE, &claimed[0].id, Duration::from_secs(60))
        .await
        .unwrap();

    tokio::time::sleep(IDLE + Duration::from_millis(100)).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let report = replayer(dlq(queue.clone()), &seen, StatusCode::OK)
        .replay_once()
        .await;
    assert_eq!(report.replayed, 0);
    assert!(seen.lock().unwrap().is_empty(), "never replayed twice");
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight), (0, 0), "acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replayers_at_once_replay_each_entry_exactly_once() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue) = durable(&redis).await;
    capture_paths(&dlq(queue.clone()), 30).await;
    wait_len(&queue, 30).await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_, queue_a) = durable(&redis).await;
    let (_, queue_b) = durable(&redis).await;
    let a = replayer(dlq(queue_a), &seen, StatusCode::OK);
    let b = replayer(dlq(queue_b), &seen, StatusCode::OK);
    let (ra, rb) = tokio::join!(a.replay_once(), b.replay_once());
    assert_eq!(ra.replayed + rb.replayed, 30);
    let mut paths = seen.lock().unwrap().clone();
    paths.sort();
    let before = paths.len();
    paths.dedup();
    assert_eq!((before, paths.len()), (30, 30), "each entry exactly once");
    assert_eq!(queue.counts().await.unwrap().len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_max_len_is_trimmed_and_counted_as_overflow() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue) = durable(&redis).await;
    let queue = queue.max_len(5);
    let dlq = dlq(queue.clone());
    capture_paths(&dlq, 12).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue.counts().await.unwrap().overflow < 7 {
        assert!(Instant::now() < deadline, "overflow not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.overflow), (5, 7));
    assert_eq!(dlq.stats().overflow, 7);
    assert_eq!(dlq.stats().captured, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_replays_requeue_then_move_to_the_bounded_failed_list() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue) = durable(&redis).await;
    let dlq = dlq(queue.clone());
    capture_paths(&dlq, 1).await;
    wait_len(&queue, 1).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let replay = replayer(dlq.clone(), &seen, StatusCode::SERVICE_UNAVAILABLE);
    // max_attempts 2: requeued at the back (a run ends on a short batch), then the failed list.
    let first = replay.replay_once().await;
    assert_eq!((first.failed, first.exhausted), (1, 0));
    let second = replay.replay_once().await;
    assert_eq!((second.failed, second.exhausted), (1, 1));
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight, counts.failed), (0, 0, 1));
    let failed = queue.stored(true, 10).await.unwrap();
    assert!(failed[0].payload.contains("\"attempts\":2"), "{failed:?}");
}

/// Waits (at most 5 s) until `seen` holds `n` paths.
async fn wait_seen(seen: &Arc<Mutex<Vec<String>>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "replayed {:?}, not {n} entries",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The gap the fix closes: a replay taking 3 × `claim_idle` (and the entries waiting behind it
/// in its batch) stays with its replayer, which renews its claims; a second replayer polling
/// all the while claims nothing, and each entry is replayed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_slower_than_the_claim_idle_time_is_not_claimed_by_a_second_replayer() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue) = durable(&redis).await;
    capture_paths(&dlq(queue.clone()), 3).await;
    wait_len(&queue, 3).await;

    // Replayer A: its first replay takes 3 × claim_idle; the other two wait behind it.
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let slow = {
        let seen = seen_a.clone();
        service_fn(move |request: Request<Body>| {
            let seen = seen.clone();
            async move {
                let first = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(request.uri().path().to_owned());
                    seen.len() == 1
                };
                if first {
                    tokio::time::sleep(IDLE * 3).await;
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        })
    };
    let (_, queue_a) = durable(&redis).await;
    let a = Replayer::new(
        dlq(queue_a),
        AdaptiveThrottle::new(ThrottleConfig::default()),
        slow,
    );
    let run_a = tokio::spawn(a.replay_once());
    wait_seen(&seen_a, 1).await;

    // Replayer B polls (every claim_idle / 3) until A's run ends.
    let (_, queue_b) = durable(&redis).await;
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let b = replayer(dlq(queue_b), &seen_b, StatusCode::OK);
    let mut b_runs = 0;
    let deadline = Instant::now() + IDLE * 10;
    while !run_a.is_finished() {
        assert!(Instant::now() < deadline, "A's run did not end");
        let report = b.replay_once().await;
        assert_eq!(
            report.replayed,
            0,
            "B replayed {:?}",
            seen_b.lock().unwrap()
        );
        b_runs += 1;
        tokio::time::sleep(IDLE / 3).await;
    }
    let report_a = run_a.await.unwrap();
    assert!(b_runs >= 6, "B tried while A's replay ran ({b_runs} runs)");
    assert_eq!((report_a.replayed, report_a.taken_over), (3, 0));
    assert!(seen_b.lock().unwrap().is_empty());
    let mut paths = seen_a.lock().unwrap().clone();
    paths.sort();
    assert_eq!(paths, ["/items/0", "/items/1", "/items/2"]);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight), (0, 0));
}

/// The keep-alive's store operation: it renews only the consumer's own claims, and never takes
/// back an entry another consumer claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_renews_only_the_consumers_own_claims() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (store, queue) = durable(&redis).await;
    capture_paths(&dlq(queue.clone()), 2).await;
    wait_len(&queue, 2).await;
    let claimed = store.dlq_claim(QUEUE, "a", 10, IDLE).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|l| l.id.clone()).collect();
    assert_eq!(ids.len(), 2);

    tokio::time::sleep(IDLE + Duration::from_millis(100)).await;
    // Only the first is renewed: the second is idle long enough for another consumer.
    let renewed = store.dlq_touch(QUEUE, "a", &ids[..1]).await.unwrap();
    assert_eq!(renewed, ids[..1]);
    let taken = store.dlq_claim(QUEUE, "b", 10, IDLE).await.unwrap();
    assert_eq!(
        taken.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        ids[1..]
    );
    // A asks for both: it still holds the first; the second stays with B.
    assert_eq!(store.dlq_touch(QUEUE, "a", &ids).await.unwrap(), ids[..1]);
    assert_eq!(store.dlq_touch(QUEUE, "b", &ids).await.unwrap(), ids[1..]);
    assert!(store.dlq_touch(QUEUE, "c", &ids).await.unwrap().is_empty());
    assert_eq!(queue.counts().await.unwrap().in_flight, 2);
}

/// Just before each replay the replayer checks the entry is still its own: one taken over in
/// the middle of its batch is left to the replayer that took it (counted, not replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_taken_over_mid_batch_is_left_to_the_replayer_that_took_it() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (store, queue) = durable(&redis).await;
    capture_paths(&dlq(queue.clone()), 2).await;
    wait_len(&queue, 2).await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let stolen = Arc::new(AtomicBool::new(false));
    // While the first entry is replayed, a "thief" claims everything pending (min idle 0).
    let app = {
        let (seen, stolen, store) = (seen.clone(), stolen.clone(), store.clone());
        service_fn(move |request: Request<Body>| {
            let (seen, stolen, store) = (seen.clone(), stolen.clone(), store.clone());
            async move {
                seen.lock().unwrap().push(request.uri().path().to_owned());
                if !stolen.swap(true, Ordering::SeqCst) {
                    let taken = store
                        .dlq_claim(QUEUE, "thief", 10, Duration::ZERO)
                        .await
                        .unwrap();
                    assert_eq!(taken.len(), 2, "the thief took both");
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        })
    };
    let (_, queue_a) = durable(&redis).await;
    let a = Replayer::new(
        dlq(queue_a),
        AdaptiveThrottle::new(ThrottleConfig::default()),
        app,
    );
    let report = a.replay_once().await;
    assert_eq!((report.replayed, report.taken_over), (1, 1));
    // (Captures append in the background, so either may be first in the stream.)
    assert_eq!(seen.lock().unwrap().len(), 1, "only the first was replayed");
    // The second entry is the thief's, still claimed.
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight), (1, 1));
}

/// Automatic replay looks at the durable queue's length (not this instance's in-memory queue,
/// which a durable queue leaves empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_replay_drains_a_durable_queue() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let (_, queue) = durable(&redis).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = ReplayConfig::builder()
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let recording = {
        let seen = seen.clone();
        service_fn(move |request: Request<Body>| {
            seen.lock().unwrap().push(request.uri().path().to_owned());
            std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
        })
    };
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    let auto = Replayer::new(dlq(queue.clone()), throttle, recording)
        .with_config(config)
        .spawn_auto_replay();
    capture_paths(&dlq(queue.clone()), 3).await;
    wait_seen(&seen, 3).await;
    let mut paths = seen.lock().unwrap().clone();
    paths.sort();
    assert_eq!(paths, ["/items/0", "/items/1", "/items/2"]);
    wait_len(&queue, 0).await;
    drop(auto);
}
