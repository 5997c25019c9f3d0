//! Run with: `cargo run --example outbound`
//!
//! The outbound coordinator against a local upstream that answers `429` with `Retry-After: 1`
//! for its first 2.5 seconds: 50 concurrent callers, each a naive retry loop, share one cooldown.
//! The printed timeline shows what the upstream saw and the coordinator's events: the first wave
//! goes out before anyone has seen a 429 (its 429s count as one burst, and their `Retry-After`s
//! only extend the one cooldown), then one request per cooldown — the canary — while the
//! upstream rate limits, then everybody at once.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_adaptive_throttle::outbound::{
    CoordinatorConfig, CoordinatorEvent, Deferred, RateLimitCoordinator,
};

const CALLERS: usize = 50;

/// Milliseconds since `start`, for the timeline.
fn at(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

async fn upstream(State((start, limited_until)): State<(Instant, Instant)>) -> impl IntoResponse {
    if Instant::now() < limited_until {
        println!("{:>5} ms  upstream: request → 429", at(start));
        (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let start = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("http://{}/", listener.local_addr()?);
    let app = Router::new()
        .route("/", get(upstream))
        .with_state((start, start + Duration::from_millis(2500)));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let coord = RateLimitCoordinator::new(
        CoordinatorConfig::builder()
            .base_delay(Duration::from_millis(200))
            .max_wait(Duration::from_secs(10))
            .build()?,
    );
    let mut events = coord.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                // Extensions (the first wave's stragglers) are counted in the final stats.
                CoordinatorEvent::CooldownStarted {
                    key,
                    delay,
                    consecutive,
                    extended: false,
                    ..
                } => println!(
                    "{:>5} ms  coordinator: {key} cools down {delay:.1?} (429 #{consecutive})",
                    at(start)
                ),
                CoordinatorEvent::CooldownEnded { key } => {
                    println!(
                        "{:>5} ms  coordinator: {key} recovered, waiters released",
                        at(start)
                    )
                }
                _ => {}
            }
        }
    });

    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new().layer(coord.layer()).service(http);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (client, uri) = (client.clone(), uri.clone());
        callers.spawn(async move {
            loop {
                let request = http::Request::get(&uri).body(Empty::new()).unwrap();
                match client.clone().oneshot(request).await {
                    Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => continue,
                    Ok(r) => return Ok(r.status()),
                    Err(e) => return Err(e),
                }
            }
        });
    }
    let (mut ok, mut deferred) = (0, 0);
    while let Some(outcome) = callers.join_next().await {
        match outcome? {
            Ok(_) => ok += 1,
            Err(e) if e.is::<Deferred>() => deferred += 1,
            Err(e) => return Err(e),
        }
    }
    println!(
        "{:>5} ms  done: {ok} callers succeeded, {deferred} deferred; {:?}",
        at(start),
        coord.stats()
    );
    Ok(())
}
