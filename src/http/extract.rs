//! axum extractors for the [`Decision`] and [`Tier`] the layer inserts (feature `axum`).
//!
//! `Decision` and `Tier` implement `FromRequestParts` themselves (no newtype): a handler behind
//! the layer takes `decision: Decision` or `tier: Tier` as arguments. Both are also
//! `OptionalFromRequestParts`, so `Option<Decision>` works where the layer may be absent.

use std::convert::Infallible;

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::{IntoResponse, Response};
use ::http::request::Parts;
use ::http::StatusCode;

use super::error::MissingThrottleExtension;
use crate::{Decision, Tier};

impl<S: Send + Sync> FromRequestParts<S> for Decision {
    type Rejection = MissingThrottleExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Decision>()
            .copied()
            .ok_or(MissingThrottleExtension { what: "decision" })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Decision {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Decision>().copied())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tier {
    type Rejection = MissingThrottleExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tier>()
            .copied()
            .ok_or(MissingThrottleExtension { what: "tier" })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Tier {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Tier>().copied())
    }
}

impl IntoResponse for MissingThrottleExtension {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The handle a handler reports its request's true cost into (present when the throttle has a
/// cost axis and the request was metered; take `Option<CostReport>` otherwise).
impl<S: Send + Sync> FromRequestParts<S> for crate::CostReport {
    type Rejection = MissingThrottleExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<crate::CostReport>()
            .cloned()
            .ok_or(MissingThrottleExtension {
                what: "cost report",
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::CostReport {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<crate::CostReport>().cloned())
    }
}
