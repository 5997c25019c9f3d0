//! The outbound rate-limit coordinator: a client-side layer that makes every caller of a
//! dependency back off together when it answers 429 (Baldur's Rate Limit Coordinator,
//! BAL-025).
//!
//! Without it, each task that meets a 429 retries on its own schedule, and together they
//! hammer the dependency harder — a self-inflicted denial of service. A
//! [`RateLimitCoordinator`] replaces that with one decision per dependency (per coordination
//! key, the URI's host by default):
//!
//! - **One cooldown per key**, shared by every clone. The `n`-th consecutive 429 earns
//!   `base_delay × 2^(n−1)` (5 s, 10 s, 20 s, …) with ±30 % jitter, capped at 60 s. An
//!   upstream's `Retry-After` (seconds or HTTP-date) is a floor, never jittered, capped at an
//!   hour; an invalid or past one is ignored. The stored cooldown only ever extends.
//! - **Serve or defer.** A call during a cooldown sleeps to its end if that is within
//!   `max_wait` (default 60 s), and otherwise fails at once with [`Deferred`] — nothing is
//!   dropped silently, nothing sleeps past its bound.
//! - **One canary.** After the cooldown one call goes first; the others wait for its answer.
//!   Anything but a 429 ends the episode and releases them; a 429 arms the next step of the
//!   ladder. A canary that fails or is cancelled hands the role to the next call in line.
//! - **Feedback**: [`CoordinatorEvent`]s, [`CoordinatorStats`], a [`Pressure`] level for
//!   retry layers, and an optional link to an inbound
//!   [`AdaptiveThrottle`](crate::AdaptiveThrottle)
//!   ([`RateLimitCoordinator::link_inbound`]).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
//! use tower_adaptive_throttle::outbound::{CoordinatorConfig, Deferred, RateLimitCoordinator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let coord = RateLimitCoordinator::new(CoordinatorConfig::default());
//! // Any client service: a hyper-util `Client`, reqwest behind a tower adapter, a stub.
//! let upstream = service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::builder().status(429).body(String::new()).unwrap())
//! });
//! let client = ServiceBuilder::new().layer(coord.layer()).service(upstream);
//!
//! let request = || Request::get("http://api.example.com/items").body(String::new()).unwrap();
//! let response = client.clone().oneshot(request()).await?;
//! assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS); // passed through, cooldown armed
//! assert!(coord.cooldown_remaining("api.example.com").is_some());
//! # Ok(())
//! # }
//! ```
//!
//! # gRPC (tonic clients)
//!
//! A tonic `Channel` is a tower service over `http` types, so the layer wraps it as any client:
//! `HealthClient::new(ServiceBuilder::new().layer(coord.layer().key(GrpcService)).service(channel))`.
//! A gRPC server says 429 as HTTP 200 with `grpc-status: 8` (`RESOURCE_EXHAUSTED`) and
//! `Retry-After` as `grpc-retry-pushback-ms` (gRFC A6): the coordinator reads both from the
//! response **headers**, which covers trailers-only responses — how servers (tonic, grpc-go,
//! this crate's own layer) refuse a call before sending any message. A `RESOURCE_EXHAUSTED`
//! sent in the trailers after messages (mid-stream) is not read: the response is handed to the
//! caller at its headers, and reading trailers would mean wrapping its body. `UNAVAILABLE` with
//! a pushback counts like a 503 with `Retry-After` (only with `cooldown_on_503`). Key a tonic
//! client with [`GrpcService`] or a closure: its requests carry no host.
//!
//! The coordinator reads tokio's clock, so it needs a tokio runtime with the `time` driver;
//! `#[tokio::test(start_paused = true)]` drives it exactly.

mod config;
mod cooldown;
mod coordinator;
mod error;
mod feedback;
mod future;
mod key;
mod layer;
mod retry_after;
mod service;
mod table;
mod ticket;

pub use config::{
    CoordinatorConfig, CoordinatorConfigBuilder, CoordinatorConfigError,
    DEFAULT_BACKOFF_MULTIPLIER, DEFAULT_BASE_DELAY, DEFAULT_JITTER, DEFAULT_MAX_DELAY,
    DEFAULT_MIN_COOLDOWN, DEFAULT_RETRY_AFTER_CEILING,
};
pub use coordinator::RateLimitCoordinator;
pub use error::{BoxError, Deferred};
pub use feedback::{CoordinatorEvent, CoordinatorStats, Pressure};
pub use future::ResponseFuture;
pub use key::{CoordinationKey, GrpcService, Host};
pub use layer::CoordinatorLayer;
pub use retry_after::{parse_retry_after, parse_retry_pushback};
pub use service::CoordinatorService;
