//! Reading an upstream's `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date; and
//! its gRPC counterpart, `grpc-retry-pushback-ms` (gRFC A6).

use std::time::{Duration, SystemTime};

/// The wait an upstream's `Retry-After` value asks for, measured from `now` (wall-clock time,
/// which an HTTP-date is written in).
///
/// `delay-seconds` (ASCII digits only, surrounding whitespace allowed; values too large for a
/// `u64` saturate) or an HTTP-date in any of RFC 9110's three formats. Anything else —
/// unparseable bytes, a sign, a fraction, a date at or before `now` — is `None`: such a header is
/// treated as absent, as BAL-025 says. Never panics, whatever the bytes.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tower_adaptive_throttle::outbound::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
/// assert_eq!(parse_retry_after(b"120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(7))
/// );
/// assert_eq!(parse_retry_after(b"-5", now), None);
/// assert_eq!(parse_retry_after(b"Sun, 06 Nov 1994 08:49:00 GMT", now), None); // past
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only, so the one way `parse` fails is overflow: a huge delay, saturated (the
        // ceiling bounds it later anyway).
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    match at.duration_since(now) {
        Ok(wait) if !wait.is_zero() => Some(wait),
        _ => None,
    }
}

/// The wait a gRPC server's `grpc-retry-pushback-ms` value asks for: a decimal number of
/// milliseconds (ASCII digits only, surrounding whitespace allowed; values too large for a `u64`
/// saturate). A negative value — gRFC A6's "do not retry" — and anything unparseable are `None`:
/// the coordinator then follows its own ladder, as for a 429 without `Retry-After`. Never panics,
/// whatever the bytes.
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::outbound::parse_retry_pushback;
///
/// assert_eq!(parse_retry_pushback(b"250"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_retry_pushback(b"-1"), None);
/// assert_eq!(parse_retry_pushback(b"1.5"), None);
/// ```
pub fn parse_retry_pushback(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: `parse` fails only on overflow, a huge delay (the ceiling bounds it later).
    Some(Duration::from_millis(text.parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn delta_seconds_and_whitespace() {
        assert_eq!(parse_retry_after(b" 0 ", at(0)), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", at(0)),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in [&b""[..], b"+5", b"1.5", b"5s", b"\xff", b"   "] {
            assert_eq!(parse_retry_after(bad, at(0)), None, "{bad:?}");
        }
    }

    #[test]
    fn pushback_is_whole_non_negative_milliseconds() {
        assert_eq!(parse_retry_pushback(b" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_pushback(b"99999999999999999999999"),
            Some(Duration::from_millis(u64::MAX))
        );
        for bad in [&b""[..], b"-5", b"+5", b"1.5", b"5ms", b"\xff", b"   "] {
            assert_eq!(parse_retry_pushback(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn all_three_date_formats() {
        let now = at(784_111_770);
        for form in [
            "Sun, 06 Nov 1994 08:49:40 GMT",
            "Sunday, 06-Nov-94 08:49:40 GMT",
            "Sun Nov  6 08:49:40 1994",
        ] {
            assert_eq!(
                parse_retry_after(form.as_bytes(), now),
                Some(Duration::from_secs(10)),
                "{form}"
            );
        }
        // Exactly now is not a wait.
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:30 GMT", now),
            None
        );
    }
}
