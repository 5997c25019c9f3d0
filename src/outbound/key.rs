//! Which upstream a request goes to: [`CoordinationKey`] and the default, [`Host`].

use std::borrow::Cow;

use http::Request;

/// Maps an outbound request to the key whose cooldown it shares. `None`: the call is not
/// coordinated (it goes straight through, and its 429s arm nothing).
///
/// Implemented for closures `Fn(&Request<B>) -> Option<String>`:
///
/// ```
/// use http::Request;
/// use tower_adaptive_throttle::outbound::{CoordinatorConfig, RateLimitCoordinator};
///
/// // One cooldown per API tenant, from a header the client sets.
/// let coord = RateLimitCoordinator::new(CoordinatorConfig::default());
/// let layer = coord.layer().key(|req: &Request<String>| {
///     let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
///     Some(format!("billing/{tenant}"))
/// });
/// # let _ = layer;
/// ```
pub trait CoordinationKey<B> {
    /// The key of `request`, borrowed from it where possible.
    fn key<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>>;
}

impl<F, B> CoordinationKey<B> for F
where
    F: Fn(&Request<B>) -> Option<String>,
{
    fn key<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>> {
        self(request).map(Cow::Owned)
    }
}

/// The default key: the request URI's host without the port, in lower case (Baldur's
/// domain). A URI without a host (a relative one) is not coordinated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl<B> CoordinationKey<B> for Host {
    fn key<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>> {
        let host = request.uri().host()?;
        // Host names are case-insensitive; borrow unless there is something to fold.
        Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        })
    }
}

/// The gRPC service of the request's method path (`/package.Service/Method` →
/// `package.Service`); a path of another shape is not coordinated.
///
/// A tonic client's requests carry only the path — its `Channel` adds the scheme and authority
/// below the layers — so [`Host`] finds no host there and coordinates nothing. Key a tonic
/// client by service (one cooldown per upstream service), or with a closure naming the upstream.
///
/// ```
/// use tower_adaptive_throttle::outbound::{CoordinatorConfig, GrpcService, RateLimitCoordinator};
///
/// let coord = RateLimitCoordinator::new(CoordinatorConfig::default());
/// let layer = coord.layer().key(GrpcService);
/// // `tower::ServiceBuilder::new().layer(layer).service(channel)`, then
/// // `HealthClient::new(that)` (any generated tonic client takes a tower service).
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcService;

impl<B> CoordinationKey<B> for GrpcService {
    fn key<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>> {
        crate::util::grpc::service_of(request.uri().path()).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(uri: &str) -> Option<String> {
        let req = Request::get(uri).body(()).unwrap();
        Host.key(&req).map(Cow::into_owned)
    }

    #[test]
    fn host_drops_port_and_case() {
        assert_eq!(
            key_of("http://API.Example.com:8443/x").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(key_of("https://127.0.0.1/").as_deref(), Some("127.0.0.1"));
        assert_eq!(key_of("/relative"), None);
    }

    #[test]
    fn grpc_service_is_the_path_s_first_segment() {
        let req = Request::post("/grpc.health.v1.Health/Check")
            .body(())
            .unwrap();
        assert_eq!(
            GrpcService.key(&req).as_deref(),
            Some("grpc.health.v1.Health")
        );
        let req = Request::get("http://h/").body(()).unwrap();
        assert_eq!(GrpcService.key(&req), None);
    }
}
