//! Keys and tiers from a gRPC call's method path, `/package.Service/Method`.

use std::sync::Arc;

use ::http::uri::PathAndQuery;
use ::http::Request;

use crate::http::key::KeyExtractor;
use crate::http::tier::TierExtractor;
use crate::util::grpc::service_of;
use crate::Tier;

/// The call's method path (`/package.Service/Method`) as the key: one quota per method, shared by
/// every client. For a quota per client per method, key with a closure returning both, e.g.
/// `(req.headers().get("x-api-key").cloned(), req.uri().path_and_query().cloned())`.
///
/// Works on any request (an HTTP path is keyed the same way); a request whose URI has no path
/// shares the fallback key. The key is the URI's own path, reference-counted, not a copy.
///
/// ```
/// use tower_adaptive_throttle::http::GrpcMethodKey;
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).key_extractor(GrpcMethodKey);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMethodKey;

impl<B> KeyExtractor<B> for GrpcMethodKey {
    type Key = PathAndQuery;

    fn extract(&self, req: &Request<B>) -> Option<PathAndQuery> {
        req.uri().path_and_query().cloned()
    }
}

/// Tiers by method: exact method paths first, then the longest matching service or prefix
/// rule, then the default ([`Tier::Standard`] unless set).
///
/// ```
/// use tower_adaptive_throttle::http::GrpcMethodTier;
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig, Tier};
///
/// let tiers = GrpcMethodTier::new()
///     .method("/shop.v1.Orders/Pay", Tier::Critical)      // one method
///     .service("shop.v1.Recommendations", Tier::NonEssential) // every method of a service
///     .prefix("/grpc.health.", Tier::Critical);           // any path starting so
/// assert_eq!(tiers.tier_of("/shop.v1.Orders/Pay"), Tier::Critical);
/// assert_eq!(tiers.tier_of("/shop.v1.Recommendations/ForYou"), Tier::NonEssential);
/// assert_eq!(tiers.tier_of("/shop.v1.Orders/List"), Tier::Standard);
///
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).tier_extractor(tiers);
/// # let _ = layer;
/// ```
///
/// Matching is on the path's bytes, case-sensitive (gRPC method names are). Rules are looked up
/// in a short list per request: meant for tens of rules, not thousands.
#[derive(Debug, Clone)]
pub struct GrpcMethodTier {
    exact: Arc<[(Box<str>, Tier)]>,
    /// Longest first, so the first match is the most specific.
    prefixes: Arc<[(Box<str>, Tier)]>,
    default: Tier,
}

impl Default for GrpcMethodTier {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcMethodTier {
    /// No rules: every call is [`Tier::Standard`].
    pub fn new() -> Self {
        Self {
            exact: Arc::new([]),
            prefixes: Arc::new([]),
            default: Tier::Standard,
        }
    }

    /// Calls matching no rule get `tier`.
    #[must_use]
    pub fn default_tier(mut self, tier: Tier) -> Self {
        self.default = tier;
        self
    }

    /// The method at `path` (`/package.Service/Method`; a missing leading `/` is added) gets
    /// `tier`. A later rule for the same path replaces an earlier one.
    #[must_use]
    pub fn method(mut self, path: &str, tier: Tier) -> Self {
        let path = with_slash(path);
        let mut rules: Vec<_> = self
            .exact
            .iter()
            .filter(|(p, _)| **p != *path)
            .cloned()
            .collect();
        rules.push((path, tier));
        self.exact = rules.into();
        self
    }

    /// Every method of `service` (`package.Service`) gets `tier`: the prefix
    /// `/package.Service/`.
    #[must_use]
    pub fn service(self, service: &str, tier: Tier) -> Self {
        let service = service.trim_matches('/');
        self.prefix(&format!("/{service}/"), tier)
    }

    /// Every path starting with `prefix` (a missing leading `/` is added) gets `tier`: a
    /// package (`/shop.v1.`) or a service. The longest matching prefix wins.
    #[must_use]
    pub fn prefix(mut self, prefix: &str, tier: Tier) -> Self {
        let prefix = with_slash(prefix);
        let mut rules: Vec<_> = (self.prefixes.iter())
            .filter(|(p, _)| **p != *prefix)
            .cloned()
            .collect();
        rules.push((prefix, tier));
        rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self.prefixes = rules.into();
        self
    }

    /// The tier of a call to `path`.
    pub fn tier_of(&self, path: &str) -> Tier {
        if let Some((_, tier)) = self.exact.iter().find(|(p, _)| **p == *path) {
            return *tier;
        }
        self.prefixes
            .iter()
            .find(|(p, _)| path.starts_with(&**p))
            .map_or(self.default, |(_, tier)| *tier)
    }

    /// The service of a method path, `/package.Service/Method` → `package.Service`; `None` for a
    /// path of another shape.
    pub fn service_of(path: &str) -> Option<&str> {
        service_of(path)
    }
}

fn with_slash(path: &str) -> Box<str> {
    if path.starts_with('/') {
        path.into()
    } else {
        format!("/{path}").into()
    }
}

impl<B> TierExtractor<B> for GrpcMethodTier {
    fn tier(&self, req: &Request<B>) -> Tier {
        self.tier_of(req.uri().path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let t = GrpcMethodTier::new()
            .prefix("/shop.", Tier::NonEssential)
            .service("shop.v1.Orders", Tier::Standard)
            .method("shop.v1.Orders/Pay", Tier::Critical)
            .default_tier(Tier::Critical);
        assert_eq!(t.tier_of("/shop.v1.Orders/Pay"), Tier::Critical);
        assert_eq!(t.tier_of("/shop.v1.Orders/List"), Tier::Standard);
        assert_eq!(t.tier_of("/shop.v2.Cart/Add"), Tier::NonEssential);
        assert_eq!(t.tier_of("/other.Svc/M"), Tier::Critical);
        assert_eq!(t.tier_of(""), Tier::Critical);
    }

    #[test]
    fn a_later_rule_for_the_same_path_replaces_the_earlier() {
        let t = GrpcMethodTier::new()
            .method("/a.S/M", Tier::Critical)
            .method("/a.S/M", Tier::NonEssential)
            .service("a.S", Tier::Critical)
            .service("/a.S/", Tier::NonEssential);
        assert_eq!(t.tier_of("/a.S/M"), Tier::NonEssential);
        assert_eq!(t.tier_of("/a.S/N"), Tier::NonEssential);
    }

    #[test]
    fn method_key_is_the_path() {
        let req = Request::post("http://h/pkg.Svc/Do").body(()).unwrap();
        assert_eq!(GrpcMethodKey.extract(&req).unwrap().as_str(), "/pkg.Svc/Do");
    }
}
