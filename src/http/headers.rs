//! What the client is told: `Retry-After`, the IETF `RateLimit` / `RateLimit-Policy` fields,
//! legacy `X-RateLimit-*`, the default JSON 429 body and the replaceable [`OnReject`] handler.

use std::time::Duration;

use ::http::header::{Entry, HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use ::http::{Response, StatusCode};
use bytes::Bytes;

use crate::Decision;

/// The name of the policy in the `RateLimit` and `RateLimit-Policy` fields.
pub const POLICY_NAME: &str = "adaptive";

/// The policy name when the adaptive in-flight limit (the concurrency axis) denied a request;
/// the fields then count concurrent requests (`qu="concurrent-requests"`), as the draft's
/// "use for limiting concurrency" example does.
pub(super) const CONCURRENCY_POLICY_NAME: &str = "concurrency";

/// The policy name when the cost axis binds (a budget per key per window, denied or with the
/// least room left); the fields then count the budget's unit (`qu="tokens"`).
pub const COST_POLICY_NAME: &str = "cost";

/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// Legacy `X-RateLimit-Limit` (opt-in).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Legacy `X-RateLimit-Remaining` (opt-in).
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Legacy `X-RateLimit-Reset`, in seconds from now (opt-in).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `Retry-After` seconds for a wait of `d`: whole seconds rounded up, at least 1 (a client told
/// `0` retries at once, which is the storm the 429 is trying to stop).
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::http::retry_after_secs;
///
/// assert_eq!(retry_after_secs(Duration::ZERO), 1);
/// assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
/// assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
/// ```
pub fn retry_after_secs(d: Duration) -> u64 {
    ceil_secs(d).max(1)
}

fn ceil_secs(d: Duration) -> u64 {
    // Saturating: a window or wait near `Duration::MAX` must not overflow.
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// Which rate-limit fields the layer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderOptions {
    /// IETF `RateLimit` and `RateLimit-Policy` (default on).
    pub(crate) ietf: bool,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (default off).
    pub(crate) legacy: bool,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        Self {
            ietf: true,
            legacy: false,
        }
    }
}

impl HeaderOptions {
    pub(crate) fn any(self) -> bool {
        self.ietf || self.legacy
    }
}

/// The numbers the rate-limit fields carry, taken from a [`Decision`] once (small enough to keep
/// in the response future).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    allowed: bool,
    limit: u32,
    remaining: u32,
    /// Seconds until more quota is available: the retry delay when denied (so `Retry-After`
    /// never points earlier than `t`), the window's reset when allowed.
    t: u64,
    /// The window in whole seconds, at least 1.
    w: u64,
    /// The in-flight limit denied the request: the fields describe concurrency, not a quota
    /// per window (`qu="concurrent-requests"`, no `w`).
    concurrency: bool,
    /// The cost axis binds: the fields count this unit of a budget per window
    /// (`qu="<unit>"`); a shared name, not a copy.
    cost_unit: Option<std::sync::Arc<str>>,
}

impl Fields {
    /// The fields of a decision the cost axis bound: its budget per `window`, in `unit`.
    pub(crate) fn cost(
        d: &Decision,
        budget: u64,
        window: Duration,
        unit: &std::sync::Arc<str>,
    ) -> Self {
        let mut f = Self::new(d, window);
        f.limit = u32::try_from(budget).unwrap_or(u32::MAX);
        f.concurrency = false;
        f.cost_unit = Some(unit.clone());
        f
    }

    pub(crate) fn new(d: &Decision, window: Duration) -> Self {
        Self {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            t: if d.allowed {
                ceil_secs(d.reset_after)
            } else {
                retry_after_secs(d.retry_after)
            },
            w: ceil_secs(window).max(1),
            concurrency: !d.allowed && d.axis == Some(crate::Axis::Concurrency),
            cost_unit: None,
        }
    }
}

/// Inserts `name` unless the map already has it (an inner layer or a custom rejection handler
/// wins); the value is built only when needed, with one lookup.
fn insert_absent(headers: &mut HeaderMap, name: HeaderName, value: impl FnOnce() -> HeaderValue) {
    if let Entry::Vacant(slot) = headers.entry(name) {
        slot.insert(value());
    }
}

/// Writes the rate-limit fields into `headers`, leaving any field already present alone.
/// `Retry-After` is written on denials.
pub(crate) fn write_headers(headers: &mut HeaderMap, f: Fields, opts: HeaderOptions) {
    if !f.allowed {
        // For a denial `t` is the retry delay.
        insert_absent(headers, RETRY_AFTER, || HeaderValue::from(f.t));
    }
    if opts.ietf {
        let name: &[u8] = if f.concurrency {
            CONCURRENCY_POLICY_NAME.as_bytes()
        } else if f.cost_unit.is_some() {
            COST_POLICY_NAME.as_bytes()
        } else {
            POLICY_NAME.as_bytes()
        };
        insert_absent(headers, RATELIMIT_POLICY, || {
            let mut v = Buf::new();
            v.quoted(name);
            v.push(b";q=");
            v.num(u64::from(f.limit));
            if f.concurrency {
                v.push(b";qu=\"concurrent-requests\"");
            } else if let Some(unit) = &f.cost_unit {
                // The unit was validated: 1 to 32 of `a-z 0-9 - _`, nothing to escape.
                v.push(b";qu=");
                v.quoted(unit.as_bytes());
                v.push(b";w=");
                v.num(f.w);
            } else {
                v.push(b";w=");
                v.num(f.w);
            }
            v.value()
        });
        insert_absent(headers, RATELIMIT, || {
            let mut v = Buf::new();
            v.quoted(name);
            v.push(b";r=");
            v.num(u64::from(f.remaining));
            v.push(b";t=");
            v.num(f.t);
            v.value()
        });
    }
    if opts.legacy {
        insert_absent(headers, X_RATELIMIT_LIMIT, || HeaderValue::from(f.limit));
        insert_absent(headers, X_RATELIMIT_REMAINING, || {
            HeaderValue::from(f.remaining)
        });
        insert_absent(headers, X_RATELIMIT_RESET, || HeaderValue::from(f.t));
    }
}

/// A small stack buffer for structured-field values: no `format!`, one copy into the value.
/// The longest value is the cost policy's: `"cost";q=<10 digits>;qu="<32>";w=<20 digits>`.
struct Buf {
    bytes: [u8; 96],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            bytes: [0; 96],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn quoted(&mut self, name: &[u8]) {
        self.push(b"\"");
        self.push(name);
        self.push(b"\"");
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn value(&self) -> HeaderValue {
        // Only quotes, ASCII letters, digits, `;` and `=` are ever written: always valid.
        HeaderValue::from_bytes(&self.bytes[..self.len]).unwrap_or(HeaderValue::from_static(""))
    }
}

/// Builds the response of a rejected request. The layer then adds `Retry-After`, `RateLimit`
/// and `RateLimit-Policy` (and legacy fields when enabled) where the response does not already
/// set them.
///
/// Implemented for closures `Fn(&Decision) -> Response<B>` with `B: Into<Bytes>` (`String`,
/// `Vec<u8>`, `&'static str`, `Bytes`).
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, Decision, ThrottleConfig};
///
/// // A plain-text 503 instead of the JSON 429.
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).on_reject(|d: &Decision| {
///     Response::builder()
///         .status(StatusCode::SERVICE_UNAVAILABLE)
///         .body(format!("busy, limit {}", d.limit))
///         .unwrap()
/// });
/// # let _ = layer;
/// ```
pub trait OnReject {
    /// The response for the denial `decision`.
    fn on_reject(&self, decision: &Decision) -> Response<Bytes>;

    /// The response for the denial `decision` of a request with `request_headers`: what the
    /// layer calls. The default ignores the request and calls [`on_reject`](Self::on_reject), so
    /// a closure answers every request alike; [`DefaultRejection`] overrides it to answer gRPC
    /// requests in gRPC ([`GrpcRejection`](super::GrpcRejection)). Override it to choose by
    /// content type, `accept` or anything else in the headers.
    fn on_reject_request(
        &self,
        decision: &Decision,
        request_headers: &HeaderMap,
    ) -> Response<Bytes> {
        let _ = request_headers;
        self.on_reject(decision)
    }
}

impl<F, B> OnReject for F
where
    F: Fn(&Decision) -> Response<B>,
    B: Into<Bytes>,
{
    fn on_reject(&self, decision: &Decision) -> Response<Bytes> {
        self(decision).map(Into::into)
    }
}

/// The default rejection: `429 Too Many Requests` with `content-type: application/json` and
/// the body `{"limit":100,"retry_after_secs":1,"tier":"standard","reason":"rate_limit_exceeded"}`.
///
/// A gRPC request (`content-type: application/grpc…`) gets gRPC's answer instead, as a tonic
/// client expects: [`GrpcRejection`](super::GrpcRejection)'s trailers-only `RESOURCE_EXHAUSTED`
/// or `UNAVAILABLE` with `grpc-retry-pushback-ms`. (`on_reject` alone, without the request,
/// is the JSON 429.)
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl OnReject for DefaultRejection {
    fn on_reject(&self, d: &Decision) -> Response<Bytes> {
        let mut res = Response::new(json_body(d));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }

    fn on_reject_request(&self, d: &Decision, request_headers: &HeaderMap) -> Response<Bytes> {
        if super::grpc::is_grpc(request_headers) {
            super::grpc::GrpcRejection.on_reject(d)
        } else {
            self.on_reject(d)
        }
    }
}

/// The default JSON body, written by hand (every field is a number or a fixed snake_case name,
/// so nothing needs escaping).
pub(crate) fn json_body(d: &Decision) -> Bytes {
    let mut out = Vec::with_capacity(128);
    let mut num = Buf::new();
    out.extend_from_slice(b"{\"limit\":");
    num.num(u64::from(d.limit));
    out.extend_from_slice(&num.bytes[..num.len]);
    out.extend_from_slice(b",\"retry_after_secs\":");
    num.len = 0;
    num.num(retry_after_secs(d.retry_after));
    out.extend_from_slice(&num.bytes[..num.len]);
    out.extend_from_slice(b",\"tier\":\"");
    out.extend_from_slice(d.tier.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(
        d.reason
            .map_or("rate_limit_exceeded", |r| r.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b"\"}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RejectReason, Tier};

    fn denied(retry_ms: u64) -> Decision {
        let mut d = Decision::unlimited(Tier::NonEssential);
        d.allowed = false;
        d.limit = 70;
        d.remaining = 0;
        d.retry_after = Duration::from_millis(retry_ms);
        d.reset_after = Duration::from_secs(59);
        d.reason = Some(RejectReason::RateLimitExceeded);
        d
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_at_least_one() {
        let cases = [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_000, 59)];
        for (ms, secs) in cases {
            assert_eq!(retry_after_secs(Duration::from_millis(ms)), secs, "{ms} ms");
        }
        assert_eq!(retry_after_secs(Duration::from_nanos(1_000_000_001)), 2);
    }

    #[test]
    fn denial_headers_follow_the_draft_syntax() {
        let mut h = HeaderMap::new();
        let opts = HeaderOptions {
            ietf: true,
            legacy: true,
        };
        write_headers(
            &mut h,
            Fields::new(&denied(1500), Duration::from_secs(60)),
            opts,
        );
        assert_eq!(h[RETRY_AFTER], "2");
        assert_eq!(h[RATELIMIT_POLICY], r#""adaptive";q=70;w=60"#);
        assert_eq!(h[RATELIMIT], r#""adaptive";r=0;t=2"#);
        assert_eq!(h[X_RATELIMIT_LIMIT], "70");
        assert_eq!(h[X_RATELIMIT_REMAINING], "0");
        assert_eq!(h[X_RATELIMIT_RESET], "2");
    }

    #[test]
    fn admission_headers_carry_remaining_and_reset_without_retry_after() {
        let mut d = Decision::unlimited(Tier::Standard);
        d.limit = 100;
        d.remaining = 41;
        d.reset_after = Duration::from_millis(29_001);
        let mut h = HeaderMap::new();
        write_headers(
            &mut h,
            Fields::new(&d, Duration::from_millis(500)),
            HeaderOptions::default(),
        );
        assert!(!h.contains_key(RETRY_AFTER));
        assert_eq!(h[RATELIMIT], r#""adaptive";r=41;t=30"#);
        assert_eq!(
            h[RATELIMIT_POLICY], r#""adaptive";q=100;w=1"#,
            "w is at least 1"
        );
        assert!(
            !h.contains_key(X_RATELIMIT_LIMIT),
            "legacy fields are opt-in"
        );
    }

    #[test]
    fn cost_fields_name_the_budget_and_its_unit() {
        let mut d = denied(59_001);
        d.reason = Some(RejectReason::BudgetExhausted);
        d.axis = Some(crate::Axis::Cost);
        let mut h = HeaderMap::new();
        let unit: std::sync::Arc<str> = "tokens".into();
        write_headers(
            &mut h,
            Fields::cost(&d, 10_000, Duration::from_secs(60), &unit),
            HeaderOptions::default(),
        );
        assert_eq!(h[RETRY_AFTER], "60");
        assert_eq!(h[RATELIMIT_POLICY], r#""cost";q=10000;qu="tokens";w=60"#);
        assert_eq!(h[RATELIMIT], r#""cost";r=0;t=60"#);
        let long: std::sync::Arc<str> = "x".repeat(32).into();
        let mut h = HeaderMap::new();
        d.limit = u32::MAX;
        write_headers(
            &mut h,
            Fields::cost(&d, u64::from(u32::MAX), Duration::MAX, &long),
            HeaderOptions::default(),
        );
        assert!(h[RATELIMIT_POLICY].to_str().unwrap().contains(&*long));
    }

    #[test]
    fn fields_already_present_are_kept() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        write_headers(
            &mut h,
            Fields::new(&denied(10), Duration::from_secs(60)),
            HeaderOptions::default(),
        );
        assert_eq!(h[RETRY_AFTER], "30");
        assert_eq!(h.get_all(RATELIMIT).iter().count(), 1);
    }

    #[test]
    fn default_rejection_is_a_json_429() {
        let res = DefaultRejection.on_reject(&denied(250));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "limit": 70, "retry_after_secs": 1, "tier": "non_essential",
                "reason": "rate_limit_exceeded"
            })
        );
    }

    #[test]
    fn numbers_are_written_exactly() {
        for n in [0, 7, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut b = Buf::new();
            b.num(n);
            assert_eq!(&b.bytes[..b.len], n.to_string().as_bytes());
        }
    }
}
