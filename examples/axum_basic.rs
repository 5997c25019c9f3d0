//! cargo run --example axum_basic --features axum -- --demo
//!
//! An axum app behind `AdaptiveThrottleLayer`: a service-wide limit of 5 requests per second to
//! start with, shared fairly among client IPs and moving with the app's capacity. With `--demo`
//! it sends itself 8 requests at once and prints, for each, the status, the `RateLimit`,
//! `RateLimit-Policy` and `Retry-After` fields and the body, then exits. The service-wide limit
//! admits a burst of a tenth of itself (at least one request) and spaces the rest, so the first
//! is `200` ("hello! 0 of 5 left": alone, the client's share is the whole limit,
//! `RateLimit-Policy: "adaptive";q=5;w=1`) and the other 7 are `429` with `Retry-After: 1` and a
//! JSON body. Without `--demo`, it serves on 127.0.0.1:3000 until stopped: try
//! `curl -i localhost:3000/` a few times.

use std::net::SocketAddr;

use axum::{routing::get, Router};
use tower_adaptive_throttle::{AdaptiveThrottleLayer, Decision, ThrottleConfig};

async fn hello(decision: Decision) -> String {
    format!("hello! {} of {} left\n", decision.remaining, decision.limit)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let cfg = ThrottleConfig::builder()
        .initial_limit(5)
        .min_limit(1)
        .build()?;
    let app = Router::new()
        .route("/", get(hello))
        .layer(AdaptiveThrottleLayer::new(cfg));

    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // The default key is the peer IP, which axum provides through connect info.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !demo {
        println!("listening on http://{addr}/ — try: curl -i http://{addr}/");
        server.await?;
        return Ok(());
    }
    tokio::spawn(async move { server.await });
    demo_client::run(addr, &["/"; 8]).await
}

mod demo_client {
    include!("support/demo_client.rs");
}
