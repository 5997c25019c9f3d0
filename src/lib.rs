//! An adaptive throttle for tower, axum and hyper services: a limit on admitted work that moves
//! up and down on its own with the service's latency, so the service sheds load before it falls
//! over instead of after.
//!
//! ```
//! use std::time::Duration;
//! use tower_adaptive_throttle::{AdaptiveThrottle, ManualClock, ThrottleConfig, Tier};
//!
//! let clock = ManualClock::new();
//! let throttle = AdaptiveThrottle::with_clock(ThrottleConfig::default(), clock.clone());
//!
//! // Before the work: admit or reject.
//! let decision = throttle.check("user_123", Tier::Standard);
//! assert!(decision.allowed);
//!
//! // After the work: feed the latency back; the limit follows it.
//! throttle.record_response(Duration::from_millis(45));
//! clock.advance(Duration::from_millis(500));
//! ```
//!
//! # How the limit moves
//!
//! At most once per `sample_interval`, on the response that finds the interval elapsed, the
//! first matching rule of the ladder wins: latency at or above `sla_critical` cuts the limit by
//! `critical_decrease_ratio`; at or above `sla_warning` by `decrease_ratio`; a rising latency
//! trend cuts by `decrease_ratio`; a falling trend raises it; otherwise it holds. The limit stays
//! within `[min_limit, max_limit]`. [`ThrottleConfig::baldur()`] is the Baldur Adaptive
//! Throttle's ladder exactly; [`ThrottleConfig::default()`] is the recommended configuration,
//! which feeds the same ladder statistics that do not drift under noise.
//!
//! # Layout
//!
//! - [`signal`]: latency samples → smoothed latency and trend.
//! - [`control`]: the limit, the ladder, regimes, freezes, the recovery ramp (pure).
//! - [`strategy`]: ThrottleKit-conformant rate strategies (pure).
//! - [`concurrency`]: the adaptive in-flight limit (Gradient2, AIMD) and its RAII permit.
//! - [`sim`]: a deterministic virtual-time simulator that measures control quality.
//! - [`AdaptiveThrottle`]: one cheap-to-clone handle joining them under one [`Clock`].
//! - [`http`]: [`AdaptiveThrottleLayer`], the tower/axum/hyper middleware (keys, tiers, 429s,
//!   `RateLimit` headers).
//!
//! # Features
//!
//! | feature | adds |
//! |---|---|
//! | `serde` | `Serialize`/`Deserialize` for the config, stats and events |
//! | `tracing` | `debug!` logs of every limit change |
//! | `axum` | `ConnectInfo<SocketAddr>` as the default HTTP key; `Decision` and `Tier` as handler extractors |
//! | `dlq` | [`dlq`]: capture of rejected idempotent requests and their paced replay |

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "axum")]
pub mod admin;
mod admission;
pub mod audit;
pub mod breaker;
pub mod clock;
pub mod concurrency;
pub mod config;
pub mod control;
pub mod counters;
mod decision;
pub mod dlq;
pub mod events;
pub mod governance;
pub mod http;
mod log;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod registry;
pub mod signal;
pub mod sim;
pub mod strategy;
mod throttle;
mod util;

pub use breaker::BreakerConfig;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use concurrency::{ConcurrencyConfig, ConcurrencyPermit, Outcome};
pub use config::{ConfigError, ThrottleConfig, ThrottleConfigBuilder};
pub use control::Regime;
pub use decision::{Axis, Decision, ParseTierError, RejectReason, Tier};
pub use events::{ChangeReason, FreezeReason, LimitChange, ThrottleEvent};
pub use governance::{BreakerState, ErrorBudget, GovernanceSnapshot, GovernanceSource};
pub use registry::ThrottleRegistry;
pub use throttle::{AdaptiveThrottle, ThrottleStats};

pub use crate::http::{
    AdaptiveThrottleLayer, AdaptiveThrottleService, Classify, KeyExtractor, OnReject, TierExtractor,
};

// Dead-letter queue: the marker is always available (the HTTP layer inserts it into its 429s);
// the queue, capture layer and replayer need the `dlq` feature.
pub use dlq::ThrottleRejected;
#[cfg(feature = "dlq")]
pub use dlq::{CaptureOptions, DeadLetterLayer, DeadLetterQueue, DlqEvent, Replayer};
