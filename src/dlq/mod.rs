//! Dead-letter queue: requests the throttle rejected, captured on the routes that opt in and
//! replayed once the service has recovered.
//!
//! Three parts, usable apart:
//!
//! - [`DeadLetterQueue`] (the store): a bounded queue of [`CapturedRequest`]s with an overflow
//!   counter, at-least-once hand-out and a bounded permanently-failed list; [`DlqEvent`]s on a
//!   broadcast channel ([`DeadLetterQueue::subscribe`]) and in the queue's own audit trail
//!   ([`DeadLetterQueue::audit`]).
//! - [`DeadLetterLayer`] (capture): a tower layer placed **outside** the throttle layer. It
//!   stores a request when its response is a 429 carrying the [`ThrottleRejected`] marker —
//!   only for idempotent methods, never for replays, without `Authorization`, `Cookie`,
//!   `Proxy-Authorization` or configured sensitive headers, and only with a declared body of at
//!   most `max_body_size` bytes (others are counted, not stored). It reads no body on the way
//!   in: the throttle hands a rejected request's unread body back in its 429
//!   ([`RejectedBody`]), and only that body is read; admitted bodies stream through untouched.
//! - [`Replayer`] (replay): sends captured requests through a tower service (usually the app)
//!   with the `x-throttle-replay` header, in batches of 10 every 100 ms slowed ×2 / ×4 / ×10 as
//!   capacity falls ([`pace_multiplier`]), while the throttle is healthy; started by hand
//!   ([`Replayer::replay_once`]) or by the throttle's events ([`Replayer::spawn_auto_replay`]:
//!   breaker closed, limit recovered to ≥ 50 % of initial).
//!
//! [`ThrottleRejected`] and [`RejectedBody`] are always available; everything else needs the
//! `dlq` feature.
//!
//! # Only idempotent work
//!
//! Replay re-executes a request from scratch, possibly more than once (delivery is
//! at-least-once). Put the layer only on routes where that is harmless.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "dlq")]
//! # async fn doc() {
//! use axum::{routing::put, Router};
//! use tower_adaptive_throttle::dlq::{CaptureOptions, DeadLetterLayer, DeadLetterQueue, Replayer};
//! use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig};
//!
//! let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
//! let dlq = DeadLetterQueue::default();
//!
//! let app: Router = Router::new()
//!     .route("/items/{id}", put(|| async { "stored" }))
//!     // .layer(throttle_layer) — the throttle's HTTP layer goes here, inside the capture
//!     .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::default()));
//!
//! // Replays go through the same app (and so through the throttle again). A `Router` serves
//! // any body type, so name the one replays are built with.
//! let replayer = Replayer::<_, axum::body::Body>::new(dlq.clone(), throttle.clone(), app);
//! let auto = replayer.spawn_auto_replay(); // keep `auto` alive as long as replay should run
//! # drop(auto);
//! # }
//! ```

// Without the feature only the marker is built; the links above point at feature-gated items.
#![cfg_attr(not(feature = "dlq"), allow(rustdoc::broken_intra_doc_links))]

// The marker and the hand-back live with the HTTP layer that inserts them; the queue reads them.
pub use crate::http::{RejectedBody, ThrottleRejected};

#[cfg(feature = "dlq")]
pub mod capture;
#[cfg(feature = "dlq")]
mod replay;
#[cfg(feature = "dlq")]
mod store;

#[cfg(feature = "dlq")]
pub use capture::{
    CaptureOptions, DeadLetterLayer, DeadLetterService, DEFAULT_CREDENTIAL_HEADERS,
    DEFAULT_MAX_BODY_SIZE, DEFAULT_REPLAY_HEADER,
};
#[cfg(feature = "dlq")]
pub use replay::{
    pace_multiplier, success_or_redirect, AutoReplay, ReplayClassifier, ReplayConfig,
    ReplayConfigBuilder, ReplayHealth, ReplayReport, Replayer, StopReason, DEFAULT_BATCH_SIZE,
    DEFAULT_INTERVAL, DEFAULT_MIN_RECOVERY,
};
#[cfg(feature = "dlq")]
pub use store::{
    CapturedRequest, DeadLetter, DeadLetterQueue, DeadLetterQueueBuilder, DlqConfigError, DlqEvent,
    DlqStats, DurableQueue, EntryId, EntryState, DEFAULT_CAPACITY, DEFAULT_CLAIM_IDLE,
    DEFAULT_DONE_TTL, DEFAULT_EVENT_CAPACITY, DEFAULT_FAILED_CAPACITY, DEFAULT_MAX_ATTEMPTS,
};
