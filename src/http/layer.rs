//! [`AdaptiveThrottleLayer`]: the builder and tower `Layer`.

use std::fmt;
use std::sync::Arc;

use ::http::header::HeaderName;
use tower_layer::Layer;

use super::classify::ServerErrorsAsOverload;
use super::cost::{CostSettle, FixedCost};
use super::headers::{DefaultRejection, HeaderOptions};
use super::key::PeerIp;
use super::service::AdaptiveThrottleService;
use super::tier::{FixedTier, TierHeader};
use crate::{AdaptiveThrottle, ThrottleConfig, Tier};

/// A tower [`Layer`] that throttles HTTP requests with an [`AdaptiveThrottle`].
///
/// Each request is keyed ([`key_extractor`](Self::key_extractor); the peer IP by default), given
/// a [`Tier`] ([`tier`](Self::tier), [`tier_header`](Self::tier_header),
/// [`tier_extractor`](Self::tier_extractor); [`Tier::Standard`] by default) and checked. A
/// denied request gets a `429` with `Retry-After`, `RateLimit` and `RateLimit-Policy` (see
/// [`on_reject`](Self::on_reject) to change it) and never reaches the inner service. An
/// admitted request has its [`Tier`] and [`Decision`](crate::Decision) inserted into the
/// request extensions, is timed from `call` to the response headers (or to the end of the body,
/// [`measure_to_end_of_body`](Self::measure_to_end_of_body)), and its outcome, classified by
/// [`classifier`](Self::classifier), moves the limit.
///
/// Cheap to clone; every clone, and every service it builds, shares one throttle and so one
/// limit. The setters consume and return the layer; those that replace a pluggable part change
/// its type.
///
/// # Default
///
/// Key: [`PeerIp`] (IPv6 by /64). Tier: [`Tier::Standard`]. Classifier:
/// [`ServerErrorsAsOverload`]. Rejection: [`DefaultRejection`] (JSON 429). Enforcing (not
/// shadow). Timed to the response headers. IETF `RateLimit` fields on, legacy `X-RateLimit-*`
/// off.
#[derive(Clone)]
pub struct AdaptiveThrottleLayer<
    K = PeerIp,
    T = FixedTier,
    C = ServerErrorsAsOverload,
    R = DefaultRejection,
    E = FixedCost,
> {
    throttle: AdaptiveThrottle,
    key: K,
    tier: T,
    classifier: C,
    on_reject: R,
    options: Options,
    estimator: E,
    settle: Arc<CostSettle>,
}

/// Switches shared by the layer and its services.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub(crate) shadow: bool,
    pub(crate) to_end_of_body: bool,
    pub(crate) headers: HeaderOptions,
}

/// What every clone of a service shares.
pub(crate) struct Shared<K, T, C, R, E> {
    pub(crate) throttle: AdaptiveThrottle,
    pub(crate) key: K,
    pub(crate) tier: T,
    pub(crate) classifier: C,
    pub(crate) on_reject: R,
    pub(crate) options: Options,
    pub(crate) estimator: E,
    pub(crate) settle: Arc<CostSettle>,
}

impl AdaptiveThrottleLayer {
    /// A layer with a new throttle on the real clock. Infallible: a [`ThrottleConfig`] is
    /// validated when it is built.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self::from_throttle(AdaptiveThrottle::new(cfg))
    }

    /// A layer on an existing throttle (shared with other layers, an admin router, your code).
    pub fn from_throttle(throttle: AdaptiveThrottle) -> Self {
        Self {
            throttle,
            key: PeerIp::new(),
            tier: FixedTier(Tier::Standard),
            classifier: ServerErrorsAsOverload,
            on_reject: DefaultRejection,
            options: Options::default(),
            estimator: FixedCost::default(),
            settle: Arc::new(CostSettle::default()),
        }
    }
}

impl<K, T, C, R, E> AdaptiveThrottleLayer<K, T, C, R, E> {
    /// The throttle this layer and all its services share.
    pub fn throttle(&self) -> &AdaptiveThrottle {
        &self.throttle
    }

    /// Keys requests with `key` (a [`KeyExtractor`](super::KeyExtractor): a built-in or a
    /// closure).
    #[must_use]
    pub fn key_extractor<K2>(self, key: K2) -> AdaptiveThrottleLayer<K2, T, C, R, E> {
        AdaptiveThrottleLayer {
            throttle: self.throttle,
            key,
            tier: self.tier,
            classifier: self.classifier,
            on_reject: self.on_reject,
            options: self.options,
            estimator: self.estimator,
            settle: self.settle,
        }
    }

    /// Gives requests their tier with `tier` (a [`TierExtractor`](super::TierExtractor): a
    /// built-in or a closure).
    #[must_use]
    pub fn tier_extractor<T2>(self, tier: T2) -> AdaptiveThrottleLayer<K, T2, C, R, E> {
        AdaptiveThrottleLayer {
            throttle: self.throttle,
            key: self.key,
            tier,
            classifier: self.classifier,
            on_reject: self.on_reject,
            options: self.options,
            estimator: self.estimator,
            settle: self.settle,
        }
    }

    /// Every request through this layer has `tier`: for per-route layers
    /// (`.route_layer(AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::Critical))`).
    #[must_use]
    pub fn tier(self, tier: Tier) -> AdaptiveThrottleLayer<K, FixedTier, C, R, E> {
        self.tier_extractor(FixedTier(tier))
    }

    /// Reads the tier from the header `name` (`critical`, `standard`, `non_essential`); a
    /// missing or unknown value is [`Tier::Standard`]. Any client can send the header: see
    /// [`TierHeader::trusted_only`] to honour it only from your proxies, and
    /// [`TierHeader::default_tier`] for another default.
    #[must_use]
    pub fn tier_header(self, name: HeaderName) -> AdaptiveThrottleLayer<K, TierHeader, C, R, E> {
        self.tier_extractor(TierHeader::new(name))
    }

    /// Classifies outcomes with `classifier` (a [`Classify`](super::Classify): a closure or a
    /// type). Services clone it once per request, so keep it cheap to clone.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> AdaptiveThrottleLayer<K, T, C2, R, E> {
        AdaptiveThrottleLayer {
            throttle: self.throttle,
            key: self.key,
            tier: self.tier,
            classifier,
            on_reject: self.on_reject,
            options: self.options,
            estimator: self.estimator,
            settle: self.settle,
        }
    }

    /// Builds rejections with `on_reject` (an [`OnReject`](super::OnReject): a closure
    /// `Fn(&Decision) -> Response<impl Into<Bytes>>`), for a custom body, status or gRPC. The
    /// rate-limit fields are still added where the response does not set them.
    #[must_use]
    pub fn on_reject<R2>(self, on_reject: R2) -> AdaptiveThrottleLayer<K, T, C, R2, E> {
        AdaptiveThrottleLayer {
            throttle: self.throttle,
            key: self.key,
            tier: self.tier,
            classifier: self.classifier,
            on_reject,
            options: self.options,
            estimator: self.estimator,
            settle: self.settle,
        }
    }

    /// Shadow mode (`true`): never reject. Each request is still checked, a would-be rejection
    /// is counted ([`ThrottleStats::shadow_rejections`](crate::ThrottleStats)), the decision is
    /// inserted into the extensions and latency is still recorded, but the request goes
    /// through and no rate-limit fields are added to responses. Observe, then enforce.
    #[must_use]
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.options.shadow = shadow;
        self
    }

    /// Times each request to the end of its response body (`true`) instead of to the response
    /// headers (the default). For streaming responses, where the headers come first and the
    /// work after. A body dropped before its end records nothing.
    #[must_use]
    pub fn measure_to_end_of_body(mut self, on: bool) -> Self {
        self.options.to_end_of_body = on;
        self
    }

    /// Writes the IETF `RateLimit` and `RateLimit-Policy` fields (default `true`).
    /// `Retry-After` is always written on rejections.
    #[must_use]
    pub fn ratelimit_headers(mut self, on: bool) -> Self {
        self.options.headers.ietf = on;
        self
    }

    /// Estimates each request's cost with `estimator` (a [`CostEstimator`](super::CostEstimator):
    /// a closure, [`CostHeader`](super::CostHeader), [`FixedCost`]), reserved on the cost axis
    /// before the request runs. Only consulted when the throttle has a cost section
    /// ([`CostConfig`](crate::config::CostConfig)); the default reserves 1 per request.
    #[must_use]
    pub fn cost_estimator<E2>(self, estimator: E2) -> AdaptiveThrottleLayer<K, T, C, R, E2> {
        AdaptiveThrottleLayer {
            throttle: self.throttle,
            key: self.key,
            tier: self.tier,
            classifier: self.classifier,
            on_reject: self.on_reject,
            options: self.options,
            estimator,
            settle: self.settle,
        }
    }

    /// Settles each request's true cost from the response header `name` (a decimal integer,
    /// such as `x-tokens-used`) when the response has it. A trailer
    /// ([`settle_from_trailer`](Self::settle_from_trailer)) takes precedence; without either,
    /// what the handler or a streaming body reported into the request's
    /// [`CostReport`](crate::CostReport) is the cost, and with nothing reported the estimate
    /// stands. Settlement happens when the response body ends; a request cancelled before
    /// (future or body dropped) is refunded but for what it reported.
    #[must_use]
    pub fn settle_from_header(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.settle).header = Some(name);
        self
    }

    /// Settles each request's true cost from the response trailer `name` (a decimal integer),
    /// read when the body's trailers arrive (gRPC-style usage at the end of a stream).
    #[must_use]
    pub fn settle_from_trailer(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.settle).trailer = Some(name);
        self
    }

    /// Also writes the legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (seconds) fields (default `false`).
    #[must_use]
    pub fn legacy_headers(mut self, on: bool) -> Self {
        self.options.headers.legacy = on;
        self
    }
}

impl<K, T, C, R, E> fmt::Debug for AdaptiveThrottleLayer<K, T, C, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottleLayer")
            .field("throttle", &self.throttle)
            .field("shadow", &self.options.shadow)
            .field("to_end_of_body", &self.options.to_end_of_body)
            .field("headers", &self.options.headers)
            .field("settle", &self.settle)
            .finish_non_exhaustive()
    }
}

impl<S, K, T, C, R, E> Layer<S> for AdaptiveThrottleLayer<K, T, C, R, E>
where
    K: Clone,
    T: Clone,
    C: Clone,
    R: Clone,
    E: Clone,
{
    type Service = AdaptiveThrottleService<S, K, T, C, R, E>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveThrottleService::from_parts(
            inner,
            Arc::new(Shared {
                throttle: self.throttle.clone(),
                key: self.key.clone(),
                tier: self.tier.clone(),
                classifier: self.classifier.clone(),
                on_reject: self.on_reject.clone(),
                options: self.options,
                estimator: self.estimator.clone(),
                settle: self.settle.clone(),
            }),
        )
    }
}
