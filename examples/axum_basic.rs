//! cargo run --example axum_basic --features axum -- --demo
//!
//! An axum app behind `AdaptiveThrottleLayer`: a limit of 5 requests per client IP per minute
//! to start with, moving with the app's latency. With `--demo` it sends itself 8 requests and
//! prints, for each, the status, the `RateLimit`, `RateLimit-Policy` and `Retry-After` fields
//! and the body, then exits. The recommended configuration's GCRA admits a burst of half the
//! limit and spaces the rest over the window, so the first 3 are `200` ("hello! 2 of 5 left" …
//! "0 of 5 left") and the other 5 are `429` with `Retry-After` and a JSON body; by then the
//! limit has grown to 6 (`q=6`), since the app answers fast. Without `--demo`, it serves on
//! 127.0.0.1:3000 until stopped: try `curl -i localhost:3000/` a few times.

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
