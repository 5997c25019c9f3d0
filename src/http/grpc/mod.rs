//! gRPC through the layer: tonic (and any gRPC server over `http` types) gets gRPC's own
//! rejections and is classified by `grpc-status`, with no dependency on tonic.
//!
//! A tonic service is a tower service over `http` requests, so
//! `Server::builder().layer(AdaptiveThrottleLayer::new(cfg))` throttles it as is. What this
//! module adds, all chosen by the request's or the response's `content-type: application/grpc…`:
//!
//! - **Rejections** ([`DefaultRejection`](super::DefaultRejection) picks [`GrpcRejection`] for a
//!   gRPC request): a *trailers-only* response — HTTP 200, `content-type: application/grpc`,
//!   `grpc-status` [`RESOURCE_EXHAUSTED`](GrpcCode::RESOURCE_EXHAUSTED) for the key's quota or
//!   [`UNAVAILABLE`](GrpcCode::UNAVAILABLE) when the service sheds load (the in-flight limit,
//!   governance, a fleet store outage), a percent-encoded `grpc-message`, and
//!   `grpc-retry-pushback-ms` (gRFC A6) with the retry delay. A 429 with a JSON body would reach
//!   a gRPC client as a protocol error instead.
//! - **Classification** ([`ServerErrorsAsOverload`](super::ServerErrorsAsOverload), the default
//!   classifier): a gRPC call fails with HTTP 200 and its `grpc-status` in the trailers, so the
//!   outcome waits for them ([`grpc_trailers_outcome`]) — or is read from the headers of a
//!   trailers-only answer. [`GrpcCode::outcome`] says what each code means for the limit.
//! - **Keys and tiers**: gRPC metadata are HTTP headers, so [`HeaderKey`](super::HeaderKey) and
//!   [`TierHeader`](super::TierHeader) read them as they are (`x-api-key`, a tenant id; a `-bin`
//!   key's value is its base64 text, compared byte for byte). The method path
//!   (`/package.Service/Method`) gives [`GrpcMethodKey`] and [`GrpcMethodTier`].

mod method;

use std::time::Duration;

use ::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use ::http::Response;
use bytes::Bytes;

pub use method::{GrpcMethodKey, GrpcMethodTier};

use super::classify::Outcome;
use super::headers::OnReject;
use crate::util::grpc as wire;
use crate::{Axis, Decision, RejectReason};

/// `grpc-status`: a call's status code, in the trailers (or in the headers of a trailers-only
/// response).
pub const GRPC_STATUS: HeaderName = wire::STATUS;
/// `grpc-message`: the status's message, percent-encoded.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-retry-pushback-ms` (gRFC A6): the server's retry delay in milliseconds.
pub const GRPC_RETRY_PUSHBACK_MS: HeaderName = wire::RETRY_PUSHBACK_MS;

/// A gRPC status code (the value of `grpc-status`), with the codes of the gRPC spec as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrpcCode(pub u32);

impl GrpcCode {
    /// `OK` (0).
    pub const OK: Self = Self(0);
    /// `CANCELLED` (1): the caller gave up.
    pub const CANCELLED: Self = Self(1);
    /// `UNKNOWN` (2).
    pub const UNKNOWN: Self = Self(2);
    /// `INVALID_ARGUMENT` (3).
    pub const INVALID_ARGUMENT: Self = Self(3);
    /// `DEADLINE_EXCEEDED` (4).
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// `NOT_FOUND` (5).
    pub const NOT_FOUND: Self = Self(5);
    /// `ALREADY_EXISTS` (6).
    pub const ALREADY_EXISTS: Self = Self(6);
    /// `PERMISSION_DENIED` (7).
    pub const PERMISSION_DENIED: Self = Self(7);
    /// `RESOURCE_EXHAUSTED` (8): over a quota.
    pub const RESOURCE_EXHAUSTED: Self = Self(wire::RESOURCE_EXHAUSTED);
    /// `FAILED_PRECONDITION` (9).
    pub const FAILED_PRECONDITION: Self = Self(9);
    /// `ABORTED` (10).
    pub const ABORTED: Self = Self(10);
    /// `OUT_OF_RANGE` (11).
    pub const OUT_OF_RANGE: Self = Self(11);
    /// `UNIMPLEMENTED` (12).
    pub const UNIMPLEMENTED: Self = Self(12);
    /// `INTERNAL` (13).
    pub const INTERNAL: Self = Self(13);
    /// `UNAVAILABLE` (14): the service cannot take the call now.
    pub const UNAVAILABLE: Self = Self(wire::UNAVAILABLE);
    /// `DATA_LOSS` (15).
    pub const DATA_LOSS: Self = Self(15);
    /// `UNAUTHENTICATED` (16).
    pub const UNAUTHENTICATED: Self = Self(16);

    /// The `grpc-status` in `headers` (a header map or a trailers map): the first value, when
    /// it is a decimal number that fits a `u32`; anything else is `None`. Never panics.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        wire::status(headers).map(Self)
    }

    /// What the code says about the service's health:
    ///
    /// - `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, `INTERNAL`:
    ///   [`Outcome::Overload`] — the service (or something it depends on) could not keep up;
    /// - `CANCELLED`: [`Outcome::Ignore`] — the caller gave up, so the latency was cut short
    ///   and says nothing, as with a dropped HTTP response future;
    /// - `OK` and every other code (`INVALID_ARGUMENT`, `NOT_FOUND`, `PERMISSION_DENIED`, …,
    ///   unknown numbers too): [`Outcome::Success`], an ordinary latency sample — the service
    ///   answered, the caller was wrong, as with an HTTP 4xx.
    pub const fn outcome(self) -> Outcome {
        match self.0 {
            4 | 8 | 13 | 14 => Outcome::Overload,
            1 => Outcome::Ignore,
            _ => Outcome::Success,
        }
    }

    /// The code a throttle rejection is answered with: `RESOURCE_EXHAUSTED` when the key used its
    /// quota ([`RejectReason::RateLimitExceeded`] on the rate axis), `UNAVAILABLE` when the
    /// service sheds load whoever asks (the in-flight limit, error budget, emergency level, full
    /// stop, a fleet store outage).
    pub fn for_rejection(decision: &Decision) -> Self {
        let quota = decision.axis != Some(Axis::Concurrency)
            && matches!(
                decision.reason,
                None | Some(RejectReason::RateLimitExceeded)
            );
        if quota {
            Self::RESOURCE_EXHAUSTED
        } else {
            Self::UNAVAILABLE
        }
    }
}

/// Whether `headers` (a request's or a response's) say gRPC: `content-type: application/grpc`,
/// alone or with `+proto`-style or `;parameter` suffixes, ASCII case-insensitive. gRPC-Web
/// (`application/grpc-web…`) is not: it carries its trailers inside the body, so it gets the
/// HTTP treatment.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    wire::is_grpc(headers)
}

/// The outcome of a gRPC call from its trailers (a
/// [`TrailersClassifier`](super::TrailersClassifier)): [`GrpcCode::outcome`] of their
/// `grpc-status`. A body that ends without trailers, or trailers without a valid `grpc-status`,
/// is [`Outcome::Overload`]: the client sees that protocol error as `INTERNAL`.
pub fn grpc_trailers_outcome(trailers: Option<&HeaderMap>) -> Outcome {
    trailers
        .and_then(GrpcCode::from_headers)
        .map_or(Outcome::Overload, GrpcCode::outcome)
}

/// A rejection for gRPC clients, whatever the request: a trailers-only response (HTTP 200,
/// `content-type: application/grpc`, an empty body) whose `grpc-status` is
/// [`GrpcCode::for_rejection`], with a `grpc-message` naming the reason and
/// `grpc-retry-pushback-ms` carrying the decision's retry delay in whole milliseconds (rounded
/// up). The layer adds `Retry-After`, `RateLimit` and `RateLimit-Policy` as for any rejection;
/// tonic hands them to the client as the status's metadata.
///
/// [`DefaultRejection`](super::DefaultRejection) already answers gRPC requests this way; set
/// `GrpcRejection` with [`on_reject`](super::AdaptiveThrottleLayer::on_reject) for a layer that
/// serves only gRPC (or `grpc-web` through a translating layer outside it).
///
/// A tonic client reads it as `Status` with `Code::ResourceExhausted` (or `Unavailable`):
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::http::{GrpcRejection, OnReject, GRPC_RETRY_PUSHBACK_MS};
/// use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, Tier};
///
/// let t = AdaptiveThrottle::new(ThrottleConfig::builder().initial_limit(1).min_limit(1).build()?);
/// t.check("k", Tier::Standard);
/// let denied = t.check("k", Tier::Standard);
/// let res = GrpcRejection.on_reject(&denied);
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["grpc-status"], "8");
/// assert!(res.headers().contains_key(GRPC_RETRY_PUSHBACK_MS));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

impl OnReject for GrpcRejection {
    fn on_reject(&self, d: &Decision) -> Response<Bytes> {
        let code = GrpcCode::for_rejection(d);
        let mut res = Response::new(Bytes::new());
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(GRPC_STATUS, HeaderValue::from(code.0));
        let reason = d.reason.map_or("rate_limit_exceeded", RejectReason::as_str);
        h.insert(
            GRPC_MESSAGE,
            percent_encode_message(&format!("throttled: {reason} (tier {})", d.tier.as_str())),
        );
        h.insert(
            GRPC_RETRY_PUSHBACK_MS,
            HeaderValue::from(pushback_ms(d.retry_after)),
        );
        res
    }
}

/// `grpc-retry-pushback-ms` for a wait of `d`: whole milliseconds, rounded up so the client
/// never comes back before the throttle would admit it; saturating.
pub(crate) fn pushback_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = ms + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `grpc-message` as the gRPC spec writes it: bytes outside printable ASCII (0x20–0x7E), and
/// `%` itself, as `%XX`; the rest as is. The result is always a valid header value.
pub(crate) fn percent_encode_message(message: &str) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    // Only printable ASCII is left, which is always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tier;

    fn denied(reason: RejectReason, axis: Axis, retry_ms: u64) -> Decision {
        let mut d = Decision::unlimited(Tier::Critical);
        d.allowed = false;
        d.reason = Some(reason);
        d.axis = Some(axis);
        d.retry_after = Duration::from_millis(retry_ms);
        d
    }

    #[test]
    fn quota_is_resource_exhausted_and_shedding_is_unavailable() {
        let rate = denied(RejectReason::RateLimitExceeded, Axis::Rate, 250);
        assert_eq!(GrpcCode::for_rejection(&rate), GrpcCode::RESOURCE_EXHAUSTED);
        for (reason, axis) in [
            (RejectReason::ConcurrencyLimitExceeded, Axis::Concurrency),
            (RejectReason::StoreUnavailable, Axis::Rate),
            (RejectReason::FullStop, Axis::Rate),
            (RejectReason::EmergencyTierBlocked, Axis::Rate),
        ] {
            let d = denied(reason, axis, 0);
            assert_eq!(
                GrpcCode::for_rejection(&d),
                GrpcCode::UNAVAILABLE,
                "{reason:?}"
            );
        }
    }

    #[test]
    fn rejection_is_trailers_only_with_pushback() {
        let res = GrpcRejection.on_reject(&denied(RejectReason::RateLimitExceeded, Axis::Rate, 1));
        assert_eq!(res.status(), 200);
        assert!(res.body().is_empty());
        let h = res.headers();
        assert_eq!(h[CONTENT_TYPE], "application/grpc");
        assert_eq!(h[GRPC_STATUS], "8");
        assert_eq!(h[GRPC_RETRY_PUSHBACK_MS], "1");
        assert_eq!(
            h[GRPC_MESSAGE],
            "throttled: rate_limit_exceeded (tier critical)"
        );
    }

    #[test]
    fn pushback_rounds_up_to_whole_milliseconds() {
        assert_eq!(pushback_ms(Duration::ZERO), 0);
        assert_eq!(pushback_ms(Duration::from_micros(1)), 1);
        assert_eq!(pushback_ms(Duration::from_micros(1500)), 2);
        assert_eq!(pushback_ms(Duration::from_secs(3)), 3000);
        assert_eq!(pushback_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn messages_are_percent_encoded_per_the_spec() {
        assert_eq!(percent_encode_message("a b~"), "a b~");
        assert_eq!(percent_encode_message("100%"), "100%25");
        assert_eq!(percent_encode_message("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn codes_map_to_outcomes() {
        for c in [4, 8, 13, 14] {
            assert_eq!(GrpcCode(c).outcome(), Outcome::Overload, "{c}");
        }
        for c in [0, 2, 3, 5, 7, 12, 16, 99] {
            assert_eq!(GrpcCode(c).outcome(), Outcome::Success, "{c}");
        }
        assert_eq!(GrpcCode::CANCELLED.outcome(), Outcome::Ignore);
    }

    #[test]
    fn trailers_decide_and_missing_status_is_overload() {
        let mut t = HeaderMap::new();
        assert_eq!(grpc_trailers_outcome(None), Outcome::Overload);
        assert_eq!(grpc_trailers_outcome(Some(&t)), Outcome::Overload);
        t.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert_eq!(grpc_trailers_outcome(Some(&t)), Outcome::Success);
        t.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(grpc_trailers_outcome(Some(&t)), Outcome::Overload);
        t.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        assert_eq!(grpc_trailers_outcome(Some(&t)), Outcome::Success);
    }
}
