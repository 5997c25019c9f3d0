//! Capture: [`DeadLetterLayer`] stores requests the throttle rejected, filtered by
//! [`CaptureOptions`].
//!
//! The layer goes **outside** the throttle layer, on the routes that opt in. It recognises the
//! throttle's own rejection by a 429 whose extensions hold a
//! [`ThrottleRejected`](crate::dlq::ThrottleRejected) marker; any other response passes by
//! untouched. Request bodies are read only when such a 429 hands them back
//! ([`RejectedBody`](crate::dlq::RejectedBody)); admitted ones stream through unread.

use http::header::{HeaderName, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method};

pub mod future;
mod layer;
mod service;

pub use layer::DeadLetterLayer;
pub use service::DeadLetterService;

/// Largest body captured by default: 64 KiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;
/// Header that marks a replayed request; such a request is never captured again.
pub const DEFAULT_REPLAY_HEADER: HeaderName = HeaderName::from_static("x-throttle-replay");

/// Credential headers that are not standard but common, dropped from captures by default
/// (lower case, as `HeaderName` stores them).
pub const DEFAULT_CREDENTIAL_HEADERS: [&str; 7] = [
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-csrf-token",
    "x-xsrf-token",
];

/// What [`DeadLetterLayer`] captures. Consuming setters; every combination is valid.
///
/// # Default
///
/// - methods: `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` (the idempotent ones; replay
///   re-executes the request from scratch, so `POST` only with [`method`](Self::method) when
///   the route is idempotent);
/// - headers dropped: `Authorization`, `Cookie`, `Proxy-Authorization` and the common
///   credential headers [`DEFAULT_CREDENTIAL_HEADERS`] (`X-Api-Key`, `Api-Key`,
///   `X-Auth-Token`, `X-Access-Token`, `X-Amz-Security-Token`, `X-CSRF-Token`,
///   `X-XSRF-Token`);
/// - body: captured when `Content-Length` (or an exact body size hint) is at most
///   [`DEFAULT_MAX_BODY_SIZE`];
/// - replay marker header: [`DEFAULT_REPLAY_HEADER`].
///
/// ```
/// use http::{header::HeaderName, Method};
/// use tower_adaptive_throttle::dlq::CaptureOptions;
///
/// let options = CaptureOptions::new()
///     .method(Method::POST) // this route's POST is idempotent (it carries an idempotency key)
///     .sensitive_header(HeaderName::from_static("x-api-key"))
///     .max_body_size(16 * 1024);
/// assert!(options.captures_method(&Method::POST));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CaptureOptions {
    methods: Vec<Method>,
    sensitive: Vec<HeaderName>,
    allowed: Vec<HeaderName>,
    max_body_size: usize,
    replay_header: HeaderName,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ],
            sensitive: [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION]
                .into_iter()
                .chain(
                    DEFAULT_CREDENTIAL_HEADERS
                        .iter()
                        .map(|name| HeaderName::from_static(name)),
                )
                .collect(),
            allowed: Vec::new(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            replay_header: DEFAULT_REPLAY_HEADER,
        }
    }
}

impl CaptureOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also captures `method` (for example `POST` on a route whose POST is idempotent).
    pub fn method(mut self, method: Method) -> Self {
        if !self.methods.contains(&method) {
            self.methods.push(method);
        }
        self
    }

    /// Captures exactly these methods.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Also drops header `name` from captured requests.
    pub fn sensitive_header(mut self, name: HeaderName) -> Self {
        if !self.sensitive.contains(&name) {
            self.sensitive.push(name);
        }
        self
    }

    /// Keeps header `name` even though it is sensitive (including the default three): an
    /// explicit choice to store, for example, `Authorization` so the replay is authenticated.
    pub fn allow_header(mut self, name: HeaderName) -> Self {
        if !self.allowed.contains(&name) {
            self.allowed.push(name);
        }
        self
    }

    /// Largest body captured, in bytes: the most the layer reads of a rejected request's body.
    /// Larger bodies (declared so, or found so while read) and bodies of undeclared length are
    /// not captured and are counted in [`DlqStats`](crate::dlq::DlqStats). Admitted requests
    /// are never read, whatever their size.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// The header that marks replayed requests (the replayer must use the same one).
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        self.replay_header = name;
        self
    }

    /// Whether requests with `method` are captured.
    pub fn captures_method(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// Whether header `name` is dropped from captured requests.
    pub fn drops_header(&self, name: &HeaderName) -> bool {
        self.sensitive.contains(name) && !self.allowed.contains(name)
    }

    /// The configured largest captured body.
    pub fn max_body(&self) -> usize {
        self.max_body_size
    }

    /// The replay marker header.
    pub fn replay_header_name(&self) -> &HeaderName {
        &self.replay_header
    }

    /// Whether a request is a candidate at all: a captured method and no replay marker.
    pub(crate) fn considers<B>(&self, request: &http::Request<B>) -> bool {
        self.captures_method(request.method())
            && !request.headers().contains_key(&self.replay_header)
    }

    /// The headers kept for replay.
    pub(crate) fn kept_headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if !self.drops_header(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn default_methods_are_the_idempotent_ones() {
        let o = CaptureOptions::new();
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(o.captures_method(&m), "{m}");
        }
        assert!(!o.captures_method(&Method::POST));
        assert!(!o.captures_method(&Method::PATCH));
        assert!(o.method(Method::POST).captures_method(&Method::POST));
    }

    #[test]
    fn kept_headers_drop_the_sensitive_ones_and_keep_repeated_values() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        h.insert(COOKIE, HeaderValue::from_static("session=1"));
        h.insert(PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        h.append("accept", HeaderValue::from_static("text/plain"));
        h.append("accept", HeaderValue::from_static("application/json"));
        h.insert("x-auth-token", HeaderValue::from_static("t"));
        // The common credential headers are dropped by default.
        let o = CaptureOptions::new();
        let kept = o.kept_headers(&h);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept.get_all("accept").iter().count(), 2);
        let o = o.allow_header(AUTHORIZATION);
        assert_eq!(o.kept_headers(&h)[AUTHORIZATION], "Bearer s3cret");
    }
}
