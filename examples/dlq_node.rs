//! cargo run --example dlq_node --features redis,axum,dlq -- --redis redis://127.0.0.1:6379/ --queue orders --port 8080 --name a --reject --admin-token t0ken
//!
//! One node of a service whose rejected work is parked in a durable dead-letter queue in Redis
//! and replayed later, by this node or by any other node sharing the queue — also after the
//! node that parked it, or the one replaying it, died.
//!
//! `GET` and `PUT /items/{id}` are served behind the throttle layer, wrapped in the capture
//! layer (`DeadLetterLayer`): a request the throttle rejects gets its 429 and is appended
//! (credentials stripped) to the Redis stream of `--queue`, which keeps its newest `--max-len`
//! entries and counts the rest as overflow. With `--replay-to URL` the node also replays the
//! queue to that upstream: each claimed entry is sent as the same request to `URL` + its path
//! and query, and leaves the queue once the upstream answers 2xx or 3xx. While a replay is in
//! flight the node renews its claims; an entry whose node died is claimed by another node
//! `--claim-idle-ms` after its last renewal. Each replay is logged on stderr
//! (`NODE: replaying GET /items/1`, then `NODE: replayed GET /items/1 -> 200 OK`).
//!
//! Options: `--redis URL` (required), `--queue NAME` (default `dlq-example`), `--port P` (0
//! picks a free one), `--name NODE` (in logs and in the node's consumer name), `--reject`
//! (start at emergency level 3: every request without a `critical` tier is rejected, and so
//! parked), `--replay-to URL`, `--claim-idle-ms MS` (default 30 000), `--poll-ms MS` (how often
//! replay looks for parked work; default 500), `--batch-size N` (entries claimed at a time;
//! default 10), `--max-len N` (default 1000), `--admin-token
//! TOKEN` (mounts the admin router at `/admin/throttle`: `GET /admin/throttle/dlq` shows this
//! node's counters and the Redis queue's length, in-flight and overflow counts; `POST
//! /admin/throttle/dlq-node/emergency` with `{"level": 0}` ends the rejection, and replay
//! starts). The throttle itself is this node's own; see the `fleet` example for a limit shared
//! through Redis. The first line on stdout is `listening on http://ADDR`.
//!
//! Park work on one node, then replay it from another:
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --example dlq_node --features redis,axum,dlq -- --redis redis://127.0.0.1:6379/ --port 8081 --name a --reject &
//! curl -i http://127.0.0.1:8081/items/1          # 429, parked in Redis
//! python3 -m http.server 9000 &                  # any upstream
//! cargo run --example dlq_node --features redis,axum,dlq -- --redis redis://127.0.0.1:6379/ --port 8082 --name b --replay-to http://127.0.0.1:9000
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::{extract::Path, routing::get, Router};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, DlqEvent, DurableQueue, ReplayConfig,
    Replayer,
};
use tower_adaptive_throttle::{
    admin, store::RedisStore, AdaptiveThrottle, AdaptiveThrottleLayer, ThrottleConfig,
    ThrottleRegistry,
};

/// The throttle's name in the admin router.
const THROTTLE: &str = "dlq-node";
/// The longest one replay may take: a replay that hangs would hold its entry (its claim kept
/// alive) for as long as this node lives.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    redis: String,
    queue: String,
    port: u16,
    name: String,
    reject: bool,
    replay_to: Option<String>,
    claim_idle: Duration,
    poll: Duration,
    batch_size: usize,
    max_len: u64,
    admin_token: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        redis: String::new(),
        queue: "dlq-example".into(),
        port: 0,
        name: "node".into(),
        reject: false,
        replay_to: None,
        claim_idle: Duration::from_secs(30),
        poll: Duration::from_millis(500),
        batch_size: 10,
        max_len: 1000,
        admin_token: None,
    };
    let ms = |flag: &str, v: String| {
        v.parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("{flag}: {e}"))
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => args.redis = value()?,
            "--queue" => args.queue = value()?,
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--name" => args.name = value()?,
            "--reject" => args.reject = true,
            "--replay-to" => args.replay_to = Some(value()?.trim_end_matches('/').to_owned()),
            "--claim-idle-ms" => args.claim_idle = ms(&flag, value()?)?,
            "--poll-ms" => args.poll = ms(&flag, value()?)?,
            "--batch-size" => {
                args.batch_size = value()?.parse().map_err(|e| format!("--batch-size: {e}"))?
            }
            "--max-len" => {
                args.max_len = value()?.parse().map_err(|e| format!("--max-len: {e}"))?
            }
            "--admin-token" => args.admin_token = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.redis.is_empty() {
        return Err("--redis URL is required".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse().map_err(|e| {
        eprintln!("dlq_node: {e}");
        e
    })?;
    let name = args.name.clone();

    // The durable queue: one Redis stream shared by every node naming it. The consumer name
    // must be unique per live process (it is what a claim belongs to).
    let store = RedisStore::connect(&args.redis).await?;
    let durable = DurableQueue::new(store, &args.queue)
        .max_len(args.max_len)
        .claim_idle(args.claim_idle)
        .consumer(&format!("{name}-{}", std::process::id()));
    let dlq = DeadLetterQueue::builder().durable(durable).build()?;
    log_events(&name, &dlq);

    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    if args.reject {
        throttle.governance().set_emergency_level(3);
    }

    let app = Router::new()
        .route("/items/{id}", get(item).put(item))
        .layer(AdaptiveThrottleLayer::from_throttle(throttle.clone()))
        // Outside the throttle: it sees the 429 and parks the request.
        .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::default()));

    let registry = ThrottleRegistry::new();
    registry.register(THROTTLE, throttle.clone());
    let mut options = admin::AdminOptions::new(registry).dead_letter_queue(dlq.clone());
    let mut _auto = None;
    if let Some(upstream) = &args.replay_to {
        let config = ReplayConfig::builder()
            .poll_interval(args.poll)
            .batch_size(args.batch_size)
            .build()?;
        let replayer = Replayer::new(dlq.clone(), throttle.clone(), forward(&name, upstream))
            .with_config(config);
        // Runs whenever the throttle is healthy and the queue holds work (checked every
        // `--poll-ms`, and at once when an emergency ends). Kept until the node stops.
        _auto = Some(replayer.spawn_auto_replay());
        options = options.replayer(replayer);
    }
    let app = match &args.admin_token {
        Some(token) => app.nest_service(
            "/admin/throttle",
            options.bearer_token(token.clone()).router(),
        ),
        None => app,
    };

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    eprintln!(
        "{name}: queue {:?} (max {}), {}, replay {}",
        args.queue,
        args.max_len,
        if args.reject { "rejecting" } else { "serving" },
        args.replay_to.as_deref().unwrap_or("off"),
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn item(Path(id): Path<String>) -> String {
    format!("stored {id}\n")
}

/// The replay target: each replayed request goes to `upstream` with its own path and query,
/// over hyper's client, bounded by [`REPLAY_TIMEOUT`] (a timeout is a failed attempt).
fn forward(
    node: &str,
    upstream: &str,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = String,
    Future = impl Send,
> + Clone
       + Send
       + Sync {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let (node, upstream) = (node.to_owned(), upstream.to_owned());
    tower::service_fn(move |mut request: http::Request<Full<Bytes>>| {
        let (client, node) = (client.clone(), node.clone());
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("{upstream}{target}").parse::<http::Uri>();
        let what = format!("{} {target}", request.method());
        // The captured Host named this node; the client sets the upstream's.
        request.headers_mut().remove(http::header::HOST);
        async move {
            *request.uri_mut() = uri.map_err(|e| format!("{what}: {e}"))?;
            eprintln!("{node}: replaying {what}");
            let answer = tokio::time::timeout(REPLAY_TIMEOUT, client.request(request)).await;
            match answer {
                Ok(Ok(response)) => {
                    eprintln!("{node}: replayed {what} -> {}", response.status());
                    Ok(response)
                }
                Ok(Err(e)) => {
                    eprintln!("{node}: replay of {what} failed: {e}");
                    Err(e.to_string())
                }
                Err(_) => {
                    eprintln!("{node}: replay of {what} timed out");
                    Err("timed out".to_owned())
                }
            }
        }
    })
}

/// Logs what happens to the queue: parked requests, overflow and each run's totals.
fn log_events(node: &str, dlq: &DeadLetterQueue) {
    let mut events = dlq.subscribe();
    let node = node.to_owned();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            match event {
                DlqEvent::RejectionStored { .. } => eprintln!("{node}: parked a rejected request"),
                DlqEvent::Overflow { dropped_total, .. } => {
                    eprintln!("{node}: queue full, {dropped_total} dropped so far")
                }
                DlqEvent::ReplayCompleted {
                    replayed, failed, ..
                } if replayed + failed > 0 => {
                    eprintln!("{node}: replay run: {replayed} replayed, {failed} failed")
                }
                _ => {}
            }
        }
    });
}
