//! cargo run --release --example fleet --features redis,axum -- --redis redis://127.0.0.1:6379/ --port 0 --name a
//!
//! One node of a fleet: `GET /` behind the throttle layer, keyed by the `x-api-key` header (one
//! shared key when absent), its limit and every key's window budget shared through Redis with
//! every other node started with the same Redis. `GET /stats` is the throttle's stats as JSON
//! (the `fleet` part shows the store's health, the fleet's size and the round trips).
//!
//! The body of `GET /` names the node and the fleet window (unix ms ÷ window ms) the request
//! was admitted in. Options: `--redis URL` (required), `--port P` (0 picks a free one), `--name NAME` (this
//! node's name), `--limit N` pins the per-key limit (initial = min = max = N) so a bound can be
//! checked, `--window-ms W` the window (default 1000), `--strict` for `Fleet::Strict` (default
//! leased), `--throttle NAME` the limit's fleet-wide name (default `fleet-example`),
//! `--admin-token TOKEN` mounts the admin router (operator routes behind that bearer token) at
//! `/admin/throttle`, where an operator action reaches every node and `GET
//! /admin/throttle/fleet` lists the live nodes. Before it listens, the node reads the fleet's
//! operator state (a kill switch engaged before it started holds from its first request). The
//! first line on stdout is `listening on http://ADDR`.
//!
//! Three nodes sharing one limit, in three shells:
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --release --example fleet --features redis,axum -- --redis redis://127.0.0.1:6379/ --port 8081 --name a --limit 20 &
//! cargo run --release --example fleet --features redis,axum -- --redis redis://127.0.0.1:6379/ --port 8082 --name b --limit 20 &
//! ```
//!
//! Requests with `x-api-key: k` to either node share 20 per second.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{extract::State, routing::get, Json, Router};
use tower_adaptive_throttle::config::KeyQuota;
use tower_adaptive_throttle::http::HeaderKey;
use tower_adaptive_throttle::{
    admin, store::RedisStore, AdaptiveThrottle, AdaptiveThrottleLayer, Decision, Fleet,
    ThrottleConfig, ThrottleRegistry, ThrottleStats,
};

struct Args {
    redis: String,
    port: u16,
    name: String,
    limit: Option<u32>,
    window_ms: u64,
    strict: bool,
    throttle: String,
    admin_token: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        redis: String::new(),
        port: 0,
        name: "node".into(),
        limit: None,
        window_ms: 1000,
        strict: false,
        throttle: "fleet-example".into(),
        admin_token: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => args.redis = value()?,
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--name" => args.name = value()?,
            "--limit" => args.limit = Some(value()?.parse().map_err(|e| format!("--limit: {e}"))?),
            "--window-ms" => {
                args.window_ms = value()?.parse().map_err(|e| format!("--window-ms: {e}"))?
            }
            "--throttle" => args.throttle = value()?,
            "--strict" => args.strict = true,
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
        eprintln!("fleet: {e}");
        e
    })?;
    let mut cfg = ThrottleConfig::builder()
        .window(Duration::from_millis(args.window_ms.max(1)))
        // Each key against the whole (fleet-wide) limit, so `--limit` is the per-key budget.
        .key_quota(KeyQuota::WholeLimit);
    if let Some(n) = args.limit {
        cfg = cfg.initial_limit(n).min_limit(n).max_limit(n);
    }
    let cfg = cfg.build()?;
    let store = RedisStore::connect(&args.redis).await?;
    let throttle = AdaptiveThrottle::builder(cfg)
        .name(args.throttle.clone())
        .instance_name(args.name.clone())
        .store(store)
        .fleet(if args.strict {
            Fleet::Strict
        } else {
            Fleet::Leased
        })
        .build();
    // The fleet's operator state before the first request (bounded by the store timeout; a
    // store that does not answer leaves the sync task to read it later).
    if let Err(e) = throttle.sync_fleet().await {
        eprintln!("fleet: operator state not read yet: {e}");
    }

    let name = args.name.clone();
    let window_ms = args.window_ms.max(1);
    let app = Router::new()
        .route(
            "/",
            get(move |d: Decision| async move {
                format!("ok {name} window {}\n", window_index(&d, window_ms))
            }),
        )
        .layer(
            AdaptiveThrottleLayer::from_throttle(throttle.clone())
                .key_extractor(HeaderKey::new("x-api-key".parse()?)),
        )
        .route("/stats", get(stats))
        .with_state(throttle.clone());
    let app = match &args.admin_token {
        Some(token) => {
            let registry = ThrottleRegistry::new();
            registry.register(&args.throttle, throttle);
            app.nest_service(
                "/admin/throttle",
                admin::AdminOptions::new(registry)
                    .bearer_token(token.clone())
                    .router(),
            )
        }
        None => app,
    };

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The fleet window the request was admitted in: the window ends `reset_after` from now
/// (windows are aligned to unix time), so a bound can be checked from outside.
fn window_index(d: &Decision, window_ms: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let end = now + d.reset_after.as_millis() as u64;
    // Rounded to the nearest boundary: the reset is measured a little before the window ends.
    ((end + window_ms / 2) / window_ms).saturating_sub(1)
}

async fn stats(State(throttle): State<AdaptiveThrottle>) -> Json<ThrottleStats> {
    Json(throttle.stats())
}
