//! The HTTP layer: [`AdaptiveThrottleLayer`] for axum, hyper and any tower service over
//! types from the `http` crate.
//!
//! ```
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddr;
//! use axum::{routing::get, Router};
//! use tower_adaptive_throttle::{AdaptiveThrottleLayer, Decision, ThrottleConfig};
//!
//! async fn hello(decision: Decision) -> String {
//!     format!("hello; {} requests left in this window\n", decision.remaining)
//! }
//!
//! let cfg = ThrottleConfig::builder().initial_limit(20).min_limit(5).build()?;
//! let app = Router::new()
//!     .route("/", get(hello))
//!     .layer(AdaptiveThrottleLayer::new(cfg));
//!
//! // The default key is the peer IP, so serve with connect info:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(
//!     listener,
//!     app.clone().into_make_service_with_connect_info::<SocketAddr>(),
//! );
//! # drop(server);
//! # use tower::ServiceExt;
//! # use axum::extract::connect_info::MockConnectInfo;
//! # let app = app.layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
//! # let get = || http::Request::get("/").body(axum::body::Body::empty()).unwrap();
//! # let mut last = None;
//! # for _ in 0..21 { last = Some(app.clone().oneshot(get()).await?); }
//! # let last = last.unwrap();
//! # assert_eq!(last.status(), 429);
//! # assert!(last.headers().contains_key("retry-after"));
//! # assert!(last.headers()["ratelimit-policy"].to_str()?.starts_with("\"adaptive\";q="));
//! # Ok(())
//! # }
//! ```
//!
//! The recommended configuration admits with GCRA: the limit per window, spaced evenly, with a
//! burst of half the limit. Ask it 21 times in a row (`curl -i`) and, after the burst, the answer
//! is:
//!
//! ```text
//! HTTP/1.1 429 Too Many Requests
//! content-type: application/json
//! retry-after: 1
//! ratelimit-policy: "adaptive";q=21;w=60
//! ratelimit: "adaptive";r=0;t=1
//!
//! {"limit":21,"retry_after_secs":1,"tier":"standard","reason":"rate_limit_exceeded"}
//! ```
//!
//! (`q` is 21, not 20: while the service answers fast the adaptive limit grows.)
//!
//! # What happens to a request
//!
//! 1. `poll_ready` only forwards to the inner service; the decision is made in `call`.
//! 2. Its key ([`KeyExtractor`]: [`PeerIp`] by default, [`ClientIp`] behind trusted proxies,
//!    [`HeaderKey`], [`GlobalKey`], or a closure) and [`Tier`](crate::Tier) ([`TierExtractor`]:
//!    [`FixedTier`], [`TierHeader`], or a closure) are extracted; neither can fail a request.
//! 3. The throttle checks it. A denial is a `429` response built by the [`OnReject`] handler
//!    ([`DefaultRejection`]: a small JSON body; for a gRPC request, gRPC's trailers-only
//!    answer instead, see [gRPC](#grpc)) plus `Retry-After` (whole seconds, rounded up,
//!    at least 1), `RateLimit` and `RateLimit-Policy` in the syntax of
//!    draft-ietf-httpapi-ratelimit-headers-10. It never reaches the inner service and never
//!    feeds the controller.
//! 4. An admitted request gets the [`Tier`](crate::Tier) and [`Decision`](crate::Decision) in
//!    its extensions (extractable in axum handlers with the `axum` feature), and its response
//!    carries `RateLimit` and `RateLimit-Policy` too.
//! 5. Its latency, from `call` to the response headers (or to the end of the body), is fed to the
//!    throttle as the [`Classify`] classifier says: `5xx` and inner errors are overload, the
//!    rest (`4xx` included) ordinary samples; a gRPC response by its `grpc-status`. A response
//!    future or body dropped early records nothing.
//!
//! A [disabled](crate::AdaptiveThrottle::disable) throttle passes requests through untouched:
//! no check, no extensions, no headers (latency samples still flow, so the limit is current
//! when it is enabled again). [Shadow mode](AdaptiveThrottleLayer::shadow) checks and counts
//! but never rejects.
//!
//! # gRPC
//!
//! A tonic server takes the layer as any tower middleware,
//! `Server::builder().layer(AdaptiveThrottleLayer::new(cfg))`, and by the request's and the
//! response's `content-type: application/grpc…` ([`is_grpc`]) it speaks gRPC:
//!
//! - a rejection is trailers-only ([`GrpcRejection`]): HTTP 200, `grpc-status`
//!   `RESOURCE_EXHAUSTED` (the key's quota) or `UNAVAILABLE` (load shedding: the in-flight
//!   limit, governance, a fleet store outage; [`GrpcCode::for_rejection`]), a percent-encoded
//!   `grpc-message` and [`GRPC_RETRY_PUSHBACK_MS`] (gRFC A6) with the wait;
//! - the outcome is the `grpc-status` of a trailers-only answer or of the trailers at the end of
//!   the body ([`GrpcCode::outcome`], [`grpc_trailers_outcome`],
//!   [`Classify::trailers_classifier`]); the latency is still timed to the headers unless
//!   [`measure_to_end_of_body`](AdaptiveThrottleLayer::measure_to_end_of_body);
//! - metadata are headers ([`HeaderKey`], [`TierHeader`] read them); [`GrpcMethodKey`] and
//!   [`GrpcMethodTier`] key and tier by method path.
//!
//! tonic inserts the peer's address as its own `TcpConnectInfo`, not a `SocketAddr`, so the
//! default [`PeerIp`] finds none: key by peer with a closure reading it (see
//! `examples/grpc_server.rs`), or every call shares one key. gRPC-Web keeps the HTTP rules.
//! The dead-letter queue captures only 429s, so gRPC rejections are not parked for replay.
//!
//! # Per-route tiers
//!
//! One throttle, several layers: `route_layer` a layer with a fixed tier on each group of
//! routes; they all share the limit.
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # fn doc() {
//! use axum::{routing::{get, post}, Router};
//! use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, ThrottleConfig, Tier};
//!
//! let t = AdaptiveThrottle::new(ThrottleConfig::default());
//! let app: Router = Router::new()
//!     .route("/pay", post(|| async { "paid" }))
//!     .route_layer(AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::Critical))
//!     .merge(
//!         Router::new()
//!             .route("/feed", get(|| async { "feed" }))
//!             .route_layer(AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::NonEssential)),
//!     );
//! # }
//! ```

mod body;
mod classify;
mod cost;
pub mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod future;
mod grpc;
mod headers;
mod key;
mod layer;
mod prefix;
mod rejected;
mod service;
mod swap;
mod tier;
mod trust;

pub use body::ResponseBody;
pub use classify::{Classify, Outcome, ServerErrorsAsOverload, TrailersClassifier};
pub use cost::{json_u64_field, CostEstimator, CostHeader, FixedCost};
pub use grpc::{
    grpc_trailers_outcome, is_grpc, GrpcCode, GrpcMethodKey, GrpcMethodTier, GrpcRejection,
    GRPC_MESSAGE, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS,
};
pub use headers::{
    retry_after_secs, DefaultRejection, OnReject, COST_POLICY_NAME, POLICY_NAME, RATELIMIT,
    RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
pub use key::{
    ip_key, peer_addr, ClientIp, GlobalKey, HeaderKey, KeyExtractor, PeerIp, ProxyHeader,
    DEFAULT_IPV6_PREFIX,
};
pub use layer::AdaptiveThrottleLayer;
pub use prefix::{BodyPrefix, BodyPrefixLayer, BodyPrefixService, PrefixFuture, PrefixedBody};
pub use rejected::{RejectedBody, ThrottleRejected};
pub use service::AdaptiveThrottleService;
pub use swap::Swappable;
pub use tier::{FixedTier, TierExtractor, TierHeader};
pub use trust::{Cidr, TrustedProxies};
