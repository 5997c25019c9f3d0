//! The cost axis over HTTP: what a request is estimated to cost ([`CostEstimator`]), and where
//! its true cost is read from the response (a header, a trailer, or the [`CostReport`] in its
//! extensions), settled when the response body ends.

use std::sync::Arc;

use ::http::header::{HeaderMap, HeaderName};
use ::http::Request;

use crate::cost::{CostReport, CostReservation, Settlement};

/// Estimates what a request will cost, to reserve it before the request runs (see
/// [`AdaptiveThrottleLayer::cost_estimator`](super::AdaptiveThrottleLayer::cost_estimator)).
/// `None`: the request is not metered on the cost axis.
///
/// Implemented for closures `Fn(&Request<B>) -> Option<u64>`, for [`FixedCost`] and for
/// [`CostHeader`]. To estimate from the body (say `max_tokens` of a JSON request), put a
/// [`BodyPrefixLayer`](super::BodyPrefixLayer) outside the throttle and read the
/// [`BodyPrefix`](super::BodyPrefix) it leaves in the extensions (see [`json_u64_field`]).
pub trait CostEstimator<B> {
    /// The estimated cost of `req`, or `None` to leave it unmetered.
    fn estimate(&self, req: &Request<B>) -> Option<u64>;
}

impl<F, B> CostEstimator<B> for F
where
    F: Fn(&Request<B>) -> Option<u64>,
{
    fn estimate(&self, req: &Request<B>) -> Option<u64> {
        self(req)
    }
}

/// Every request reserves the same cost (the default: 1, settled from the response when it
/// says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedCost(pub u64);

impl Default for FixedCost {
    fn default() -> Self {
        Self(1)
    }
}

impl<B> CostEstimator<B> for FixedCost {
    fn estimate(&self, _req: &Request<B>) -> Option<u64> {
        Some(self.0)
    }
}

/// The estimate from a request header holding a decimal integer (for example
/// `x-max-tokens`), or `default` when it is absent or not a number.
#[derive(Debug, Clone)]
pub struct CostHeader {
    name: HeaderName,
    default: Option<u64>,
}

impl CostHeader {
    /// Reads `name`; a request without it is not metered unless a [`default`](Self::default)
    /// is set.
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            default: None,
        }
    }

    /// The estimate when the header is absent or malformed.
    #[must_use]
    pub fn default(mut self, units: u64) -> Self {
        self.default = Some(units);
        self
    }
}

impl<B> CostEstimator<B> for CostHeader {
    fn estimate(&self, req: &Request<B>) -> Option<u64> {
        parse_units(req.headers(), &self.name).or(self.default)
    }
}

/// The value of a decimal integer header, if there is a well-formed one.
fn parse_units(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The unsigned integer value of `"field"` in the JSON text `prefix` (for example
/// `max_tokens` in `{"model":"m","max_tokens":256,…}`), found by a scan: no parser, no
/// allocation, and a prefix cut anywhere is fine. The first occurrence of the quoted name
/// followed by `:` and digits wins; a value that is not an unsigned integer gives `None`.
/// Meant for estimates, not for validation: a name inside a string value can match.
///
/// ```
/// use tower_adaptive_throttle::http::json_u64_field;
///
/// let body = br#"{"model": "tiny", "max_tokens": 256, "prompt": "hi"}"#;
/// assert_eq!(json_u64_field(body, "max_tokens"), Some(256));
/// assert_eq!(json_u64_field(body, "temperature"), None);
/// ```
pub fn json_u64_field(prefix: &[u8], field: &str) -> Option<u64> {
    let name = field.as_bytes();
    let mut i = 0;
    while i + name.len() + 2 <= prefix.len() {
        let at = i;
        i += 1;
        if prefix[at] != b'"'
            || &prefix[at + 1..at + 1 + name.len()] != name
            || prefix[at + 1 + name.len()] != b'"'
        {
            continue;
        }
        let rest = &prefix[at + 2 + name.len()..];
        let rest = skip_ws(rest);
        let Some((b':', rest)) = rest.split_first() else {
            continue;
        };
        let rest = skip_ws(rest);
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // A number cut by the prefix's end is not a number.
        if digits == 0 || digits == rest.len() {
            return None;
        }
        return std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
    }
    None
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// Where the true cost is read from a response, in order of precedence: a trailer, a response
/// header, what was reported through the request's [`CostReport`]; with none of them, the
/// reservation stands as the cost.
#[derive(Debug, Clone, Default)]
pub(crate) struct CostSettle {
    pub(crate) header: Option<HeaderName>,
    pub(crate) trailer: Option<HeaderName>,
}

/// One admitted request's reservation on its way to settlement: carried by the response
/// future, then the response body; dropped before the end, the reservation refunds itself.
pub(crate) struct CostTracker {
    reservation: CostReservation,
    report: CostReport,
    settle: Arc<CostSettle>,
    from_header: Option<u64>,
    from_trailer: Option<u64>,
}

impl CostTracker {
    pub(crate) fn new(
        mut reservation: CostReservation,
        settle: Arc<CostSettle>,
    ) -> (Self, CostReport) {
        let report = reservation.report();
        let tracker = Self {
            reservation,
            report: report.clone(),
            settle,
            from_header: None,
            from_trailer: None,
        };
        (tracker, report)
    }

    /// Reads the settlement header of the response.
    pub(crate) fn on_response(&mut self, headers: &HeaderMap) {
        if let Some(name) = &self.settle.header {
            self.from_header = parse_units(headers, name);
        }
    }

    /// Reads the settlement trailer.
    pub(crate) fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(name) = &self.settle.trailer {
            self.from_trailer = parse_units(trailers, name).or(self.from_trailer);
        }
    }

    /// The response is complete: settles with the best figure known.
    pub(crate) fn finish(self) -> Settlement {
        let actual = self
            .from_trailer
            .or(self.from_header)
            .or_else(|| self.report.get());
        match actual {
            Some(actual) => self.reservation.settle(actual),
            None => self.reservation.settle_reported(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_scan_finds_integers_only() {
        assert_eq!(
            json_u64_field(br#"{"max_tokens":7}"#, "max_tokens"),
            Some(7)
        );
        assert_eq!(
            json_u64_field(br#"{"a":{"max_tokens" : 12 }}"#, "max_tokens"),
            Some(12)
        );
        assert_eq!(json_u64_field(br#"{"max_tokens":"7"}"#, "max_tokens"), None);
        assert_eq!(json_u64_field(br#"{"max_tokens":-7}"#, "max_tokens"), None);
        // Cut by the prefix: unknown, not 12.
        assert_eq!(json_u64_field(br#"{"max_tokens":12"#, "max_tokens"), None);
        assert_eq!(json_u64_field(b"", "max_tokens"), None);
        assert_eq!(
            json_u64_field(br#"{"max_tokens_x":1,"max_tokens":3}"#, "max_tokens"),
            Some(3)
        );
    }
}
