//! The durable dead-letter queue across real processes (`dlq_node` example) and a real Redis:
//! work parked by one node survives that node's SIGKILL in the middle of a replay, is replayed
//! by the others exactly once, and never again; and a flood larger than the queue's bound is
//! counted while Redis keeps only the bound.
//!
//! A recording upstream inside the test receives the replays; it never answers the first
//! request it receives, so the node replaying it is caught before its acknowledgement. Every
//! wait is bounded; the only sleeps wait out (multiples of) the claim idle time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tower_adaptive_throttle::dlq::DurableQueue;
use tower_adaptive_throttle::store::{DlqCounts, RedisStore};

use super::processes::example_binary_named;
use super::redis_server::{available, RedisServer};

const TOKEN: &str = "t0ken";
const CLAIM_IDLE: Duration = Duration::from_millis(800);

/// One `dlq_node` process; its stderr lines are kept (and echoed into the test's output).
struct DlqNode {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl DlqNode {
    fn start(bin: &Path, redis: &str, queue: &str, name: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .args(["--redis", redis, "--queue", queue, "--port", "0"])
            .args(["--name", name, "--admin-token", TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the dlq_node example");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let (lines, tag) = (log.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        // The readiness line, read on a thread so the wait is bounded.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{name} printed no readiness line within 10 s"));
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{name}'s first line: {line:?}"))
            .to_owned();
        Self { child, addr, log }
    }

    /// SIGKILL: no destructor, no acknowledgement, no goodbye.
    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the node");
        self.child.wait().expect("reap the node");
    }

    /// Lines of its log containing `needle`.
    fn logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for DlqNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the upstream saw, by `x-request-id`: every request received, and those it answered
/// with a success. Replays must carry the replay marker.
#[derive(Default)]
struct Seen {
    received: Vec<String>,
    completed: Vec<String>,
    unmarked: Vec<String>,
}

type Upstream = Arc<Mutex<Seen>>;

/// The first request received is held open, never answered; every other one gets a 200.
async fn record(State(seen): State<Upstream>, uri: Uri, headers: HeaderMap) -> &'static str {
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| uri.path())
        .to_owned();
    let first = {
        let mut seen = seen.lock().unwrap();
        if headers.get("x-throttle-replay").is_none() {
            seen.unmarked.push(id.clone());
        }
        seen.received.push(id.clone());
        seen.received.len() == 1
    };
    if first {
        std::future::pending::<()>().await;
    }
    seen.lock().unwrap().completed.push(id);
    "ok"
}

async fn upstream() -> (Upstream, String) {
    let seen = Upstream::default();
    let app = axum::Router::new()
        .fallback(record)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One request, answered within 5 s: the status and the body as JSON (null if it is not).
async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> (u16, serde_json::Value) {
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("answered within 5 s")
        .expect("a response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// `GET /items/{id}` with `x-request-id: {id}` to a rejecting node: a 429, parked.
async fn park(client: &Client<HttpConnector, Full<Bytes>>, node: &str, id: &str) {
    let request = http::Request::get(format!("http://{node}/items/{id}"))
        .header("x-request-id", id)
        .body(Full::default())
        .unwrap();
    assert_eq!(call(client, request).await.0, 429, "{id} was not rejected");
}

async fn admin(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: String,
    body: &str,
) -> (u16, serde_json::Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    call(client, request).await
}

/// Polls (every 20 ms, at most `bound`) until `done` holds; panics with `what` otherwise.
async fn until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn counts_until(queue: &DurableQueue, bound: Duration, want: impl Fn(&DlqCounts) -> bool) {
    let deadline = Instant::now() + bound;
    loop {
        let counts = queue.counts().await.unwrap();
        if want(&counts) {
            return;
        }
        assert!(Instant::now() < deadline, "the queue stayed at {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tally(ids: &[String]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for id in ids {
        *tally.entry(id.clone()).or_default() += 1;
    }
    tally
}

fn binary() -> Option<PathBuf> {
    example_binary_named("dlq_node")
}

/// The issue's test. Node A parks 20 requests while rejecting, then starts replaying (batches
/// of 2): the upstream holds A's first replay open. Nodes B and C start and replay the other
/// 18 at once; for 3 × claim_idle neither touches the 2 entries A holds (A renews its claims).
/// A is SIGKILLed mid-replay, before its acknowledgement; B and C take its 2 entries over.
/// Every entry is answered successfully exactly once (the held one was received twice: by the
/// dead A's request, then once more), nothing is replayed again while B and C keep polling,
/// and the Redis stream ends empty with nothing pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_parked_work_survives_a_sigkill_mid_replay_and_is_replayed_once_across_processes() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let Some(bin) = binary() else { return };
    let started = Instant::now();
    let (seen, upstream) = upstream().await;
    let idle = CLAIM_IDLE.as_millis().to_string();
    let replaying = [
        "--replay-to",
        &upstream,
        "--claim-idle-ms",
        &idle,
        "--poll-ms",
        "100",
        "--batch-size",
        "2",
    ];
    let with_reject: Vec<&str> = replaying.iter().copied().chain(["--reject"]).collect();
    let mut a = DlqNode::start(&bin, &redis.url(), "orders", "a", &with_reject);
    let http = client();
    let ids: Vec<String> = (0..20).map(|i| format!("req-{i:02}")).collect();
    for id in &ids {
        park(&http, &a.addr, id).await;
    }
    let queue = DurableQueue::new(RedisStore::connect(&redis.url()).await.unwrap(), "orders");
    counts_until(&queue, Duration::from_secs(5), |c| c.len == 20).await;
    assert!(
        seen.lock().unwrap().received.is_empty(),
        "A replays nothing while rejecting"
    );

    // The emergency ends: A's replay starts, and its first request is held by the upstream.
    let url = format!("http://{}/admin/throttle/dlq-node/emergency", a.addr);
    let (status, answer) = admin(&http, "POST", url, r#"{"level": 0}"#).await;
    assert_eq!(status, 200, "{answer}");
    until(
        Duration::from_secs(5),
        "A's first replay reaches the upstream",
        || !seen.lock().unwrap().received.is_empty(),
    )
    .await;
    let held_at = Instant::now();
    let held = seen.lock().unwrap().received[0].clone();

    // B and C replay the 18 entries A has not claimed, concurrently, while A is stuck.
    let b = DlqNode::start(&bin, &redis.url(), "orders", "b", &replaying);
    let c = DlqNode::start(&bin, &redis.url(), "orders", "c", &replaying);
    until(
        Duration::from_secs(15),
        "B and C replay the 18 others",
        || seen.lock().unwrap().completed.len() >= 18,
    )
    .await;
    // ... and for 3 × claim_idle after A's replay began, A's 2 claimed entries stay A's.
    tokio::time::sleep((held_at + CLAIM_IDLE * 3).saturating_duration_since(Instant::now())).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.completed.len(), 18, "{:?}", tally(&seen.completed));
        assert_eq!(
            seen.received.len(),
            19,
            "nothing of A's taken while A lives"
        );
        assert!(!seen.completed.contains(&held));
    }
    assert_eq!(
        queue.counts().await.unwrap().in_flight,
        2,
        "A still holds 2"
    );
    assert!(
        held_at.elapsed() < Duration::from_secs(9),
        "A must die before its 10 s replay timeout ends the held replay"
    );

    // SIGKILL A in the middle of its replay, before the acknowledgement.
    a.sigkill();
    let killed = Instant::now();
    until(
        Duration::from_secs(10),
        "B and C take over A's 2 entries",
        || seen.lock().unwrap().completed.len() >= 20,
    )
    .await;
    let took_over = killed.elapsed();
    counts_until(&queue, Duration::from_secs(5), |c| {
        (c.len, c.in_flight) == (0, 0)
    })
    .await;

    // Never again: B and C keep polling (every 100 ms) for 3 × claim_idle.
    tokio::time::sleep(CLAIM_IDLE * 3).await;
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.len, counts.in_flight, counts.failed), (0, 0, 0));
    let seen = seen.lock().unwrap();
    let completed = tally(&seen.completed);
    assert_eq!(completed.len(), 20, "{completed:?}");
    assert!(
        completed.values().all(|n| *n == 1),
        "each answered successfully once: {completed:?}"
    );
    assert_eq!(completed.keys().cloned().collect::<Vec<_>>(), ids);
    let received = tally(&seen.received);
    for (id, n) in &received {
        let expected = if *id == held { 2 } else { 1 };
        assert_eq!(*n, expected, "{id} received {n} times: {received:?}");
    }
    assert!(seen.unmarked.is_empty(), "replays carry x-throttle-replay");
    let (by_b, by_c) = (b.logged("-> 200 OK"), c.logged("-> 200 OK"));
    assert_eq!(by_b + by_c, 20, "B and C replayed all 20 between them");
    assert_eq!(a.logged("-> 200"), 0, "A completed none");
    eprintln!(
        "held {held}; B replayed {by_b}, C {by_c}; A's entries taken over {took_over:?} after \
         the SIGKILL; the test took {:?}",
        started.elapsed()
    );
}

/// A flood of 300 rejected requests through a node whose queue keeps 20: Redis holds 20
/// entries (`XLEN`), the 280 trimmed are counted by the node and in Redis; after a second flood
/// of 600 the same holds (880 counted), and the stream's memory (`MEMORY USAGE`) has not grown
/// with the floods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_a_flood_beyond_max_len_is_counted_and_redis_stays_bounded() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    if !available("redis-cli") {
        return;
    }
    let Some(bin) = binary() else { return };
    let started = Instant::now();
    let node = DlqNode::start(
        &bin,
        &redis.url(),
        "flood",
        "f",
        &["--reject", "--max-len", "20"],
    );
    let http = client();
    let redis_cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let stream = "throttle:dlq:{flood}";
    let mut memory = Vec::new();
    for (flood, total) in [(300usize, 300u64), (600, 900)] {
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let (http, addr) = (http.clone(), node.addr.clone());
            tasks.push(tokio::spawn(async move {
                for i in (worker..flood).step_by(6) {
                    park(&http, &addr, &format!("flood-{total}-{i}")).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Appends run in the background: wait until the node has counted every one.
        let stats_url = format!("http://{}/admin/throttle/dlq", node.addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        let dlq = loop {
            let (status, dlq) = admin(&http, "GET", stats_url.clone(), "").await;
            assert_eq!(status, 200, "{dlq}");
            // Counted by the node and in Redis.
            let overflow = total - 20;
            if dlq["stats"]["captured"] == total
                && dlq["stats"]["overflow"] == overflow
                && dlq["durable"]["overflow"] == overflow
            {
                break dlq;
            }
            assert!(Instant::now() < deadline, "not counted: {dlq}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(dlq["durable"]["len"], 20);
        assert_eq!(redis_cli(&["XLEN", stream]), "20", "Redis keeps 20");
        assert_eq!(
            redis_cli(&["GET", &format!("{stream}:overflow")]),
            (total - 20).to_string()
        );
        let bytes: u64 = redis_cli(&["MEMORY", "USAGE", stream, "SAMPLES", "0"])
            .parse()
            .expect("the stream's memory usage");
        memory.push(bytes);
    }
    assert!(node.logged("queue full") > 0, "the node logs the overflow");
    // Unbounded, the stream would hold 3 × the entries after the second flood. Bounded, it
    // holds 20 (plus trimmed entries still in a partly trimmed stream node: at most one node).
    assert!(
        memory[1] <= memory[0] * 2,
        "the stream's memory grew with the flood: {memory:?} bytes"
    );
    eprintln!(
        "stream memory after 300 and 900 parked: {memory:?} bytes; the test took {:?}",
        started.elapsed()
    );
}
