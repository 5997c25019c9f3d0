//! cargo run --release --example bench_server --features axum -- --mode adaptive --port 3000
//!
//! The hello-world axum app of the HTTP benchmark (`scripts/bench-http.sh` runs it three times
//! under `wrk` and prints the ratios): `--mode bare` (no limiter), `--mode adaptive`
//! (`AdaptiveThrottleLayer` with the recommended configuration and its default headers) or
//! `--mode governor` (`tower_governor`'s `GovernorLayer`, peer-IP key). Both limiters are
//! configured so that they admit everything: the benchmark measures the cost of deciding, not
//! of rejecting. `--workers N` sets tokio's worker threads (default 1). Prints one line to
//! stderr (`bench_server: MODE on http://127.0.0.1:PORT/`), then answers `Hello, World!` on `/`
//! until killed.

use std::net::SocketAddr;

use axum::{routing::get, Router};
use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;

async fn hello() -> &'static str {
    "Hello, World!"
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = arg("--mode").unwrap_or_else(|| "bare".into());
    let port: u16 = arg("--port").map_or(Ok(3000), |p| p.parse())?;
    let workers: usize = arg("--workers").map_or(Ok(1), |w| w.parse())?;

    let app = Router::new().route("/", get(hello));
    let app = match mode.as_str() {
        "bare" => app,
        "adaptive" => {
            // A limit no benchmark run reaches, so every request is checked and admitted.
            let cfg = ThrottleConfig::builder()
                .initial_limit(1_000_000_000)
                .max_limit(1_000_000_000)
                .build()?;
            app.layer(AdaptiveThrottleLayer::new(cfg))
        }
        "governor" => {
            // One cell per nanosecond with the largest burst: admits everything.
            let conf = GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(u32::MAX)
                .finish()
                .ok_or("governor config")?;
            app.layer(GovernorLayer::new(conf))
        }
        other => return Err(format!("unknown --mode {other}: bare, adaptive or governor").into()),
    };

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            eprintln!("bench_server: {mode} on http://{}/", listener.local_addr()?);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
            Ok(())
        })
}
