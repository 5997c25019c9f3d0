//! cargo run --example grpc_server -- --demo
//!
//! A tonic server behind `AdaptiveThrottleLayer`, added with tonic's one line
//! (`Server::builder().layer(..)`), serving tonic-health's ready-made Health service — no
//! `.proto`, no `protoc`, no code generation. Calls are keyed by the peer's IP (read from
//! tonic's `TcpConnectInfo`) and the Health service is `critical`, through `GrpcMethodTier`.
//!
//! The limit starts at 3 calls per second per client. With `--demo` it sends itself 5 health
//! checks at once and prints what a tonic client sees: the burst the recommended GCRA admits at
//! once (2 calls) is `Serving`, the others `ResourceExhausted` with `grpc-retry-pushback-ms`
//! (the wait in milliseconds until GCRA's next slot, gRFC A6) in the status's metadata —
//! gRPC's own answer, not an HTTP 429 a gRPC client would read as a protocol error. Without `--demo` it serves on 127.0.0.1:50051 until stopped: try
//! `grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check` a few times.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower_adaptive_throttle::http::{ip_key, GrpcMethodTier, DEFAULT_IPV6_PREFIX};
use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig, Tier};

/// The peer's IP: tonic puts it in a `TcpConnectInfo` extension (not a `SocketAddr`, which the
/// default key reads), so a tonic server keys by peer with this closure.
fn peer_ip(req: &http::Request<tonic::body::Body>) -> Option<IpAddr> {
    let info = req.extensions().get::<TcpConnectInfo>()?;
    Some(ip_key(info.remote_addr()?.ip(), DEFAULT_IPV6_PREFIX))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    // 3 calls per second per client to start with, moving with the service's latency.
    let cfg = ThrottleConfig::builder()
        .initial_limit(3)
        .min_limit(1)
        .window(Duration::from_secs(1))
        .build()?;
    let tiers = GrpcMethodTier::new().service("grpc.health.v1.Health", Tier::Critical);
    let layer = AdaptiveThrottleLayer::new(cfg)
        .key_extractor(peer_ip)
        .tier_extractor(tiers);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:50051"
    };
    let incoming = TcpIncoming::bind(addr.parse::<SocketAddr>()?)?;
    let addr = incoming.local_addr()?;
    let server = Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming(incoming);
    if !demo {
        println!("listening on http://{addr}");
        server.await?;
        return Ok(());
    }

    tokio::spawn(server);
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let calls = (0..5).map(|_| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            tokio::time::timeout(Duration::from_secs(5), client.check(request)).await
        }
    });
    for (i, answer) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        match answer? {
            Ok(res) => println!("call {i}: {:?}", res.into_inner().status()),
            Err(status) => {
                let pushback = status
                    .metadata()
                    .get("grpc-retry-pushback-ms")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                println!(
                    "call {i}: {:?} ({}), grpc-retry-pushback-ms: {pushback}",
                    status.code(),
                    status.message()
                );
            }
        }
    }
    Ok(())
}
