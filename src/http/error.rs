//! Errors of the HTTP layer's configuration and extractors.
//!
//! The layer itself never fails a request: a rejection is a `429` response and the inner
//! service's error type passes through untouched.

use std::fmt;

/// A trusted-proxy entry that is not `ADDR` or `ADDR/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError {
    kind: CidrErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CidrErrorKind {
    Invalid(String),
    PrefixTooLong { prefix: u8, max: u8 },
}

impl ParseCidrError {
    pub(crate) fn invalid(input: &str) -> Self {
        Self {
            kind: CidrErrorKind::Invalid(input.chars().take(64).collect()),
        }
    }

    pub(crate) fn prefix_too_long(prefix: u8, max: u8) -> Self {
        Self {
            kind: CidrErrorKind::PrefixTooLong { prefix, max },
        }
    }
}

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CidrErrorKind::Invalid(input) => write!(
                f,
                "invalid network {input:?}: expected an IP address or ADDR/PREFIX"
            ),
            CidrErrorKind::PrefixTooLong { prefix, max } => {
                write!(f, "prefix /{prefix} is longer than the address (/{max})")
            }
        }
    }
}

impl std::error::Error for ParseCidrError {}

/// The rejection of the axum extractors for [`Decision`](crate::Decision) and
/// [`Tier`](crate::Tier) when the handler is not behind an
/// [`AdaptiveThrottleLayer`](super::AdaptiveThrottleLayer) (or the throttle is disabled): a
/// `500 Internal Server Error`, like a missing `Extension`.
///
/// Extract `Option<Decision>` instead to handle that case in the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingThrottleExtension {
    pub(crate) what: &'static str,
}

impl fmt::Display for MissingThrottleExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no throttle {} in the request extensions: is the handler behind an enabled \
             AdaptiveThrottleLayer?",
            self.what
        )
    }
}

impl std::error::Error for MissingThrottleExtension {}
