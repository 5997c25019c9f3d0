//! What did the response say about the service's health? [`Classify`] and the default
//! [`ServerErrorsAsOverload`].

use ::http::Response;

pub use crate::decision::Outcome;

/// Maps the inner service's result to an [`Outcome`].
///
/// Implemented for closures `Fn(Result<&Response<B>, &E>) -> Outcome`.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Response, StatusCode};
/// use tower_adaptive_throttle::http::Outcome;
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// // Also treat 504s from a gateway inside the service as overload, and ignore 503s it sends
/// // during deploys.
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).classifier(
///     |res: Result<&Response<String>, &Infallible>| match res {
///         Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => Outcome::Ignore,
///         Ok(r) if r.status().is_server_error() => Outcome::Overload,
///         Ok(_) => Outcome::Success,
///         Err(_) => Outcome::Overload,
///     },
/// );
/// # let _ = layer;
/// ```
pub trait Classify<B, E> {
    /// The outcome of one admitted request.
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome;
}

impl<F, B, E> Classify<B, E> for F
where
    F: Fn(Result<&Response<B>, &E>) -> Outcome,
{
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: a `5xx` response or an inner error is [`Outcome::Overload`];
/// anything else, `4xx` included, is [`Outcome::Success`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrorsAsOverload;

impl<B, E> Classify<B, E> for ServerErrorsAsOverload {
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) if res.status().is_server_error() => Outcome::Overload,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Overload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::StatusCode;

    fn status(code: u16) -> Outcome {
        let res = Response::builder().status(code).body(()).unwrap();
        ServerErrorsAsOverload.classify(Ok::<_, &()>(&res))
    }

    #[test]
    fn server_errors_and_inner_errors_are_overload_client_errors_are_not() {
        assert_eq!(status(200), Outcome::Success);
        assert_eq!(status(404), Outcome::Success);
        assert_eq!(status(429), Outcome::Success);
        assert_eq!(status(500), Outcome::Overload);
        assert_eq!(
            status(StatusCode::GATEWAY_TIMEOUT.as_u16()),
            Outcome::Overload
        );
        let err = ServerErrorsAsOverload.classify(Err::<&Response<()>, _>(&"boom"));
        assert_eq!(err, Outcome::Overload);
    }
}
