//! How important is the request? [`TierExtractor`], a fixed tier and a tier header.

use ::http::header::HeaderName;
use ::http::Request;

use super::key::peer_addr;
use super::trust::TrustedProxies;
use crate::Tier;

/// Maps a request to its [`Tier`]. Never fails: unknown input gives a default.
///
/// Implemented for closures `Fn(&Request<B>) -> Tier`.
///
/// ```
/// use http::Request;
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig, Tier};
///
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).tier_extractor(
///     |req: &Request<String>| {
///         if req.uri().path().starts_with("/pay") { Tier::Critical } else { Tier::Standard }
///     },
/// );
/// # let _ = layer;
/// ```
pub trait TierExtractor<B> {
    /// The tier of `req`.
    fn tier(&self, req: &Request<B>) -> Tier;
}

impl<F, B> TierExtractor<B> for F
where
    F: Fn(&Request<B>) -> Tier,
{
    fn tier(&self, req: &Request<B>) -> Tier {
        self(req)
    }
}

/// Every request has the same tier: the default ([`Tier::Standard`]), or the one a per-route
/// layer sets with [`AdaptiveThrottleLayer::tier`](super::AdaptiveThrottleLayer::tier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedTier(pub Tier);

impl<B> TierExtractor<B> for FixedTier {
    fn tier(&self, _req: &Request<B>) -> Tier {
        self.0
    }
}

/// The tier named by a request header (`critical`, `standard`, `non_essential` or
/// `non-essential`, ASCII case-insensitive); a missing, unknown, non-UTF-8 or repeated-and-unknown
/// value gives the default tier ([`Tier::Standard`] unless set). Only the first value of a
/// repeated header is read.
///
/// A client can send any header, so a plain `TierHeader` lets clients promote themselves to
/// `critical`. When the header is set by your own reverse proxy or gateway, use
/// [`trusted_only`](Self::trusted_only): the header is then read only from peers in the list.
///
/// ```
/// use http::HeaderName;
/// use tower_adaptive_throttle::http::{TierHeader, TrustedProxies};
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig, Tier};
///
/// let tiers = TierHeader::new(HeaderName::from_static("x-priority"))
///     .default_tier(Tier::NonEssential)
///     .trusted_only(TrustedProxies::parse(["10.0.0.0/8"])?);
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).tier_extractor(tiers);
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TierHeader {
    name: HeaderName,
    default: Tier,
    trusted: Option<TrustedProxies>,
}

impl TierHeader {
    /// Reads the tier from `name`, from any peer, defaulting to [`Tier::Standard`].
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            default: Tier::Standard,
            trusted: None,
        }
    }

    /// The tier of requests without a valid header (and of untrusted peers with
    /// [`trusted_only`](Self::trusted_only)).
    #[must_use]
    pub fn default_tier(mut self, tier: Tier) -> Self {
        self.default = tier;
        self
    }

    /// Honours the header only when the connection's peer is in `proxies`; other requests get
    /// the default tier whatever they send.
    #[must_use]
    pub fn trusted_only(mut self, proxies: TrustedProxies) -> Self {
        self.trusted = Some(proxies);
        self
    }
}

impl<B> TierExtractor<B> for TierHeader {
    fn tier(&self, req: &Request<B>) -> Tier {
        if let Some(proxies) = &self.trusted {
            let trusted = peer_addr(req).is_some_and(|peer| proxies.contains(peer.ip()));
            if !trusted {
                return self.default;
            }
        }
        req.headers()
            .get(&self.name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<Tier>().ok())
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn req(peer: Option<[u8; 4]>, value: Option<&[u8]>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(v) = value {
            b = b.header("x-priority", http::HeaderValue::from_bytes(v).unwrap());
        }
        let mut r = b.body(()).unwrap();
        if let Some(p) = peer {
            r.extensions_mut().insert(SocketAddr::from((p, 1)));
        }
        r
    }

    #[test]
    fn header_names_the_tier_and_unknown_values_default() {
        let t = TierHeader::new(HeaderName::from_static("x-priority"));
        assert_eq!(t.tier(&req(None, Some(b"Critical"))), Tier::Critical);
        assert_eq!(
            t.tier(&req(None, Some(b"non-essential"))),
            Tier::NonEssential
        );
        assert_eq!(t.tier(&req(None, Some(b"vip"))), Tier::Standard);
        assert_eq!(t.tier(&req(None, Some(b"\xffcritical"))), Tier::Standard);
        assert_eq!(t.tier(&req(None, None)), Tier::Standard);
        let t = t.default_tier(Tier::NonEssential);
        assert_eq!(t.tier(&req(None, None)), Tier::NonEssential);
    }

    #[test]
    fn trusted_only_ignores_untrusted_peers() {
        let t = TierHeader::new(HeaderName::from_static("x-priority"))
            .trusted_only(TrustedProxies::parse(["10.0.0.0/8"]).unwrap());
        assert_eq!(
            t.tier(&req(Some([10, 0, 0, 1]), Some(b"critical"))),
            Tier::Critical
        );
        assert_eq!(
            t.tier(&req(Some([8, 8, 8, 8]), Some(b"critical"))),
            Tier::Standard
        );
        assert_eq!(t.tier(&req(None, Some(b"critical"))), Tier::Standard);
    }
}
