//! cargo run --example per_route_tiers --features axum -- --demo
//!
//! Three groups of routes sharing one `AdaptiveThrottle` (one service-wide limit, 4 requests per
//! second): `/pay` is always `critical`, `/feed` always `non_essential` (fixed tiers through
//! `route_layer`), and `/api` takes its tier from the `x-priority` header. Each handler answers
//! with the tier it was admitted as. With `--demo` it sends itself six requests at once —
//! `/pay`, `/feed`, `/api` with `x-priority: critical`, `/api`, `/feed`, `/api` with
//! `x-priority: non-essential` — and prints what each got: the two `critical` ones (`/pay` and
//! `/api` with `x-priority: critical`) are admitted, since critical work keeps a reserve at the
//! top of the limit's burst; the four others are `429`s whose body names their tier, whatever
//! their route. A last line sums it up (`shared limit 4: 2 admitted, 4 rejected across all
//! routes`), then it exits. Without `--demo`, it serves on 127.0.0.1:3000 until stopped.

use std::net::SocketAddr;

use axum::{routing::get, Router};
use http::HeaderName;
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, Decision, ThrottleConfig, Tier,
};

async fn admitted(tier: Tier, decision: Decision) -> String {
    format!("admitted as {tier}, {} left\n", decision.remaining)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let throttle = AdaptiveThrottle::new(
        ThrottleConfig::builder()
            .initial_limit(4)
            .min_limit(1)
            .build()?,
    );
    let layer = AdaptiveThrottleLayer::from_throttle(throttle.clone());

    let app = Router::new()
        .route("/pay", get(admitted))
        .route_layer(layer.clone().tier(Tier::Critical))
        .merge(
            Router::new()
                .route("/feed", get(admitted))
                .route_layer(layer.clone().tier(Tier::NonEssential)),
        )
        .merge(
            Router::new()
                .route("/api", get(admitted))
                .route_layer(layer.tier_header(HeaderName::from_static("x-priority"))),
        );

    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !demo {
        println!("listening on http://{addr}/ — try /pay, /feed, and /api with x-priority");
        server.await?;
        return Ok(());
    }
    tokio::spawn(async move { server.await });
    demo_client::run_with_headers(
        addr,
        &[
            ("/pay", &[]),
            ("/feed", &[]),
            ("/api", &[("x-priority", "critical")]),
            ("/api", &[]),
            ("/feed", &[]),
            ("/api", &[("x-priority", "non-essential")]),
        ],
    )
    .await?;
    println!(
        "shared limit {}: {} admitted, {} rejected across all routes",
        throttle.current_limit(),
        throttle.stats().allowed_requests,
        throttle.stats().rejected_requests
    );
    Ok(())
}

mod demo_client {
    include!("support/demo_client.rs");
}
