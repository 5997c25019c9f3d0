//! An adaptive throttle for tower, axum and hyper services: a limit on admitted work that moves
//! up and down on its own with the service's latency, so the service sheds load before it falls
//! over instead of after.
//!
//! ```
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddr;
//! use axum::{routing::get, Router};
//! use tower_adaptive_throttle::{admin, AdaptiveThrottle, AdaptiveThrottleLayer, ThrottleConfig, ThrottleRegistry};
//!
//! // One throttle: the recommended configuration (concurrency axis + adaptive rate axis).
//! let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
//! let registry = ThrottleRegistry::new();
//! registry.register("api", throttle.clone());
//!
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(AdaptiveThrottleLayer::from_throttle(throttle.clone()))
//!     .nest_service("/admin/throttle", admin::router(registry)); // stats, history, console
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
//! # drop(server);
//! # Ok(())
//! # }
//! ```
//!
//! Without HTTP, the two steps by hand, on a manual clock:
//!
//! ```
//! use std::time::Duration;
//! use tower_adaptive_throttle::{AdaptiveThrottle, ManualClock, ThrottleConfig, Tier};
//!
//! let clock = ManualClock::new();
//! let throttle = AdaptiveThrottle::with_clock(ThrottleConfig::baldur(), clock.clone());
//! assert!(throttle.check("user_123", Tier::Standard).allowed); // before the work
//! throttle.record_response(Duration::from_millis(600));         // after it: SLA critical
//! assert_eq!(throttle.current_limit(), 70);                     // 100 × 0.7
//! ```
//!
//! # How the limit moves
//!
//! [`ThrottleConfig::default()`] steers one service-wide limit per window by a capacity
//! estimate: at most once per `sample_interval` it reads the rate of completed requests, their
//! latency against a no-load floor and the work outstanding; it cuts below what is delivered
//! when work queues, probes upwards while probing raises what is delivered, and tells a slower
//! dependency from a queue (see [`config::CapacityEstimate`]). Each key's quota is its fair share
//! of that limit ([`config::KeyQuota`]), and the headers tell each client its share. With permits
//! ([`AdaptiveThrottle::acquire`], what the HTTP layer does) the in-flight limit is the estimate
//! and the rate follows it. [`ThrottleConfig::baldur()`] is the Baldur Adaptive Throttle exactly:
//! each key against the whole limit, moved by Baldur's ladder (SLA cuts, then the latency
//! trend). The limit stays within `[min_limit, max_limit]`.
//!
//! # Layout
//!
//! One-way layers, each using only those below it (the whole map, and how a request flows
//! through the files, is in `ARCHITECTURE.md`):
//!
//! - [`config`]: [`ThrottleConfig`] and its concurrency section, validated by `build()` (a leaf
//!   everything may use).
//! - The pure adaptive loop (private): latency signals, the controller with its ladder, regimes,
//!   freezes and recovery ramp; [`governance`] and [`breaker`] describe its external inputs.
//! - [`strategy`]: ThrottleKit-conformant rate strategies (pure).
//! - The concurrency axis (private): the adaptive in-flight limit (Gradient2, AIMD) behind
//!   [`ConcurrencyPermit`].
//! - [`AdaptiveThrottle`]: one cheap-to-clone handle joining them under one [`Clock`]; its
//!   governance inputs on one view, [`Governance`]; its snapshots in [`stats`]; where it applies
//!   in [`rules`].
//! - [`http`]: [`AdaptiveThrottleLayer`], the tower/axum/hyper middleware (keys, tiers, 429s,
//!   `RateLimit` headers).
//! - [`dlq`]: parking rejected idempotent requests and replaying them after recovery.
//! - [`registry`], [`audit`], `metrics`, `admin`: operating it.
//!
//! # Features
//!
//! | feature | adds |
//! |---|---|
//! | `serde` | `Serialize`/`Deserialize` for the config; `Serialize` for stats and events |
//! | `tracing` | a span per throttled request, `debug!` for every limit change, a rate-limited `warn!` while rejecting |
//! | `metrics` | Prometheus / OpenMetrics exposition (`prometheus-client`) |
//! | `axum` | the admin router and console; `ConnectInfo<SocketAddr>` as the default HTTP key; `Decision` and `Tier` as handler extractors |
//! | `dlq` | [`dlq`]: capture of rejected idempotent requests and their paced replay |
//! | `conformance` | nothing any more: kept so existing `features = ["conformance"]` still build (the token budget it used to gate is the cost axis now, always compiled) |

#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's Rust blocks compile (and the ones that do not serve run) as doctests.
#[cfg(all(doctest, feature = "axum", feature = "dlq", feature = "redis"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "axum")]
pub mod admin;
mod admission;
pub mod audit;
pub mod breaker;
mod clock;
mod concurrency;
pub mod config;
mod control;
pub mod cost;
mod counters;
mod decision;
pub mod dlq;
mod events;
pub mod governance;
pub mod http;
mod log;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod outbound;
pub mod registry;
mod signal;
pub mod store;
pub mod strategy;
mod throttle;
mod util;

pub use breaker::BreakerConfig;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use concurrency::ConcurrencyPermit;
pub use config::{
    ConcurrencyConfig, ConfigError, CostConfig, ThrottleConfig, ThrottleConfigBuilder,
};
pub use control::Regime;
pub use cost::{CostReport, CostReservation};
pub use decision::{Axis, Decision, Outcome, ParseTierError, RejectReason, Tier};
pub use events::{ChangeReason, FreezeReason, LimitChange, ThrottleEvent};
pub use governance::{BreakerState, ErrorBudget, GovernanceSnapshot, GovernanceSource};
pub use registry::ThrottleRegistry;
pub use store::Fleet;
pub use throttle::{rules, AdaptiveThrottle, Admitted, Governance, ThrottleBuilder, ThrottleStats};

/// The snapshots a throttle reports: [`ThrottleStats`] and the parts it is made of.
pub mod stats {
    pub use crate::breaker::BreakerStats;
    pub use crate::concurrency::ConcurrencyStats;
    pub use crate::control::RampProgress;
    pub use crate::cost::{CostKeyUsage, CostStats, CostUsage};
    pub use crate::counters::{CounterSnapshot, Direction, RttHistogram, RTT_BUCKETS_SECONDS};
    pub use crate::governance::GovernanceState;
    pub use crate::signal::SampleStats;
    pub use crate::throttle::{CapacityStats, FleetMember, FleetOps, FleetStats, ThrottleStats};
}

pub use crate::http::{
    AdaptiveThrottleLayer, AdaptiveThrottleService, Classify, KeyExtractor, OnReject, TierExtractor,
};

#[cfg(feature = "dlq")]
pub use dlq::{CaptureOptions, DeadLetterLayer, DeadLetterQueue, DlqEvent, Replayer};
// The marker and the unread body the HTTP layer puts in its 429s (read by the dead-letter
// queue's capture).
pub use http::{RejectedBody, ThrottleRejected};
