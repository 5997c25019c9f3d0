//! What did the response say about the service's health? [`Classify`] and the default
//! [`ServerErrorsAsOverload`], which reads gRPC's `grpc-status` too.

use ::http::{HeaderMap, Response};

use super::grpc::{grpc_trailers_outcome, is_grpc, GrpcCode};

pub use crate::decision::Outcome;

/// Reads a response's outcome from its trailers, at the end of its body: `None` when the body
/// ended without a trailers frame. A plain function, so a response waiting for its trailers
/// carries no allocation and its body type stays [`ResponseBody<B>`](super::ResponseBody).
pub type TrailersClassifier = fn(Option<&HeaderMap>) -> Outcome;

/// Maps the inner service's result to an [`Outcome`].
///
/// A response whose outcome is only known from its trailers (a gRPC call: HTTP 200, then
/// `grpc-status` after the messages) says so through
/// [`trailers_classifier`](Self::trailers_classifier); its sample is then recorded when the
/// trailers arrive, with the outcome they give. The latency is still measured to the response
/// headers unless [`measure_to_end_of_body`](super::AdaptiveThrottleLayer::measure_to_end_of_body)
/// is set (a long server stream would otherwise read as a huge latency), but the concurrency
/// slot is held until the trailers.
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

    /// For a response whose outcome is decided by its trailers, the function that reads them;
    /// `classify`'s outcome is then not used. `None` (the default, and what closures give):
    /// `classify` decides at the headers.
    fn trailers_classifier(&self, response: &Response<B>) -> Option<TrailersClassifier> {
        let _ = response;
        None
    }
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
///
/// gRPC responses (`content-type: application/grpc…`, see [`is_grpc`]) are classified by their
/// `grpc-status` ([`GrpcCode::outcome`]: `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
/// `DEADLINE_EXCEEDED` and `INTERNAL` are overload, `CANCELLED` is ignored, other codes are
/// ordinary samples): from the headers of a trailers-only response (how tonic answers an error
/// returned by a handler), otherwise from the trailers at the end of the body
/// ([`grpc_trailers_outcome`]). So a tonic server behind the layer needs no setting for the limit
/// to learn from its failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrorsAsOverload;

impl<B, E> Classify<B, E> for ServerErrorsAsOverload {
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) if is_grpc(res.headers()) => match GrpcCode::from_headers(res.headers()) {
                Some(code) => code.outcome(),
                // A proxy's own 5xx in front of a gRPC service, or the trailers decide.
                None if res.status().is_server_error() => Outcome::Overload,
                None => Outcome::Success,
            },
            Ok(res) if res.status().is_server_error() => Outcome::Overload,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Overload,
        }
    }

    fn trailers_classifier(&self, res: &Response<B>) -> Option<TrailersClassifier> {
        let waits = res.status().is_success()
            && is_grpc(res.headers())
            && GrpcCode::from_headers(res.headers()).is_none();
        waits.then_some(grpc_trailers_outcome as TrailersClassifier)
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
