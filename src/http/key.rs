//! Whose request is it? [`KeyExtractor`] and the built-in keys: peer IP (the default), client IP
//! behind trusted proxies, a header, one global key.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use ::http::header::{HeaderMap, HeaderName, HeaderValue, FORWARDED};
use ::http::Request;

use super::trust::{canonical, mask, TrustedProxies};

/// The default number of leading bits of an IPv6 address that make a key: a /64 is what one
/// subscriber usually gets, so keying by the full address would let one client rotate through
/// 2⁶⁴ keys.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Maps a request to the key whose window it is counted in.
///
/// `None` means "no key": every such request shares one fallback key (a single window for all of
/// them), which is also what a missing peer address gives with the default [`PeerIp`].
/// Extraction never fails a request.
///
/// Implemented for closures `Fn(&Request<B>) -> Option<K>` where `K: Hash`; the key is hashed
/// once to a 64-bit digest, so return a cheap value (an `IpAddr`, a `HeaderValue`, a `u64`), not a
/// formatted string.
///
/// ```
/// use http::Request;
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// // Key by tenant id, from a header set by an authenticating proxy.
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).key_extractor(
///     |req: &Request<String>| req.headers().get("x-tenant-id").cloned(),
/// );
/// # let _ = layer;
/// ```
pub trait KeyExtractor<B> {
    /// The key type.
    type Key: Hash;

    /// The key of `req`, or `None` for the shared fallback key.
    fn extract(&self, req: &Request<B>) -> Option<Self::Key>;
}

impl<F, K, B> KeyExtractor<B> for F
where
    F: Fn(&Request<B>) -> Option<K>,
    K: Hash,
{
    type Key = K;

    fn extract(&self, req: &Request<B>) -> Option<K> {
        self(req)
    }
}

/// The address of the connection's peer, from the request extensions: axum's
/// `ConnectInfo<SocketAddr>` (or `MockConnectInfo<SocketAddr>` in tests) with the `axum` feature,
/// then a plain `SocketAddr` (insert one yourself in a hyper server; see
/// `examples/hyper_server.rs`).
pub fn peer_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    let ext = req.extensions();
    #[cfg(feature = "axum")]
    {
        use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
        if let Some(ConnectInfo(addr)) = ext.get::<ConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
        if let Some(MockConnectInfo(addr)) = ext.get::<MockConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
    }
    ext.get::<SocketAddr>().copied()
}

/// The key of an IP address: IPv4 as is (IPv4-mapped IPv6 counts as IPv4), IPv6 cut to its first
/// `ipv6_prefix` bits.
pub fn ip_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, ipv6_prefix),
    }
}

/// The default key: the IP address of the connection's peer (see [`peer_addr`]), IPv6 by /64.
///
/// Without a peer address in the extensions (an axum app served without
/// `into_make_service_with_connect_info::<SocketAddr>()`, or a hyper server that does not insert
/// one) every request shares one key, and a warning is logged once (with the `tracing` feature).
/// Behind a reverse proxy every request has the proxy's address: use [`ClientIp`] there.
#[derive(Debug, Clone, Copy)]
pub struct PeerIp {
    ipv6_prefix: u8,
}

impl PeerIp {
    /// Keys by peer IP, IPv6 by /64.
    pub const fn new() -> Self {
        Self {
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Keys IPv6 peers by their first `bits` bits (128: the full address; clamped to 128).
    #[must_use]
    pub const fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = if bits > 128 { 128 } else { bits };
        self
    }
}

impl Default for PeerIp {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> KeyExtractor<B> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        match peer_addr(req) {
            Some(addr) => Some(ip_key(addr.ip(), self.ipv6_prefix)),
            None => {
                warn_no_peer();
                None
            }
        }
    }
}

fn warn_no_peer() {
    #[cfg(feature = "tracing")]
    {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "no peer address in the request extensions: every request shares one throttle \
                 key (serve axum with into_make_service_with_connect_info::<SocketAddr>(), or \
                 insert a SocketAddr extension)"
            );
        });
    }
}

/// Which forwarding header a [`ClientIp`] reads.
///
/// Only one is read: a proxy that sets one usually passes the other through from the client
/// untouched, so reading both would let clients choose their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de facto standard; the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"` (the `for=` parameters).
    Forwarded,
}

impl ProxyHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => FORWARDED,
        }
    }
}

/// The client's IP behind trusted reverse proxies.
///
/// When the peer is in the [`TrustedProxies`] list, the forwarding header ([`ProxyHeader`]) is
/// walked **from the right** (the hop appended last, by the nearest proxy), skipping hops that
/// are themselves trusted; the first untrusted hop is the client. When every hop is trusted the
/// leftmost one is the client. When the peer is not trusted the header is ignored and the peer's
/// address is the key, so a client cannot choose its key by sending the header.
///
/// Malformed input never fails a request: a hop that is not an IP address (`unknown`, an
/// obfuscated `_name`, garbage, non-UTF-8 bytes) stops the walk, and the last address reached
/// (a trusted hop, at worst the peer) is the key. Without a peer address it behaves like
/// [`PeerIp`]: one shared key.
///
/// ```
/// use tower_adaptive_throttle::http::{ClientIp, ProxyHeader, TrustedProxies};
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// let proxies = TrustedProxies::parse(["10.0.0.0/8"])?;
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default())
///     .key_extractor(ClientIp::new(proxies).header(ProxyHeader::Forwarded));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    proxies: TrustedProxies,
    header: ProxyHeader,
    header_name: HeaderName,
    ipv6_prefix: u8,
}

impl ClientIp {
    /// Reads `X-Forwarded-For` from the given proxies; IPv6 keyed by /64.
    pub fn new(proxies: TrustedProxies) -> Self {
        Self {
            proxies,
            header: ProxyHeader::XForwardedFor,
            header_name: ProxyHeader::XForwardedFor.name(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Reads `header` instead.
    #[must_use]
    pub fn header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self.header_name = header.name();
        self
    }

    /// Keys IPv6 clients by their first `bits` bits (clamped to 128).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The trusted proxies.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// The client address of a request from `peer` with `headers` (before keying).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.proxies.contains(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all(&self.header_name).iter().rev() {
            let Ok(line) = value.to_str() else {
                return client;
            };
            for hop in line.rsplit(',') {
                let parsed = match self.header {
                    ProxyHeader::XForwardedFor => parse_node(hop),
                    ProxyHeader::Forwarded => forwarded_for(hop),
                };
                let Some(ip) = parsed else {
                    return client;
                };
                client = canonical(ip);
                if !self.proxies.contains(client) {
                    return client;
                }
            }
        }
        client
    }
}

impl<B> KeyExtractor<B> for ClientIp {
    type Key = IpAddr;

    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        let Some(peer) = peer_addr(req) else {
            warn_no_peer();
            return None;
        };
        Some(ip_key(
            self.client_ip(peer.ip(), req.headers()),
            self.ipv6_prefix,
        ))
    }
}

/// The `for=` node of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            parse_node(value)
        } else {
            None
        }
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`, optionally in double quotes.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// The value of one header as the key (an API key or a tenant id); requests without the header
/// share the fallback key.
///
/// The value is compared byte for byte, so `abc` and `ABC` are different keys. Only put a header
/// here that your own authentication has checked, or a client can pick a fresh key per request.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys by the value of `name`.
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }
}

impl<B> KeyExtractor<B> for HeaderKey {
    type Key = HeaderValue;

    fn extract(&self, req: &Request<B>) -> Option<HeaderValue> {
        // Cloning a received value is a reference-count increment, not a copy.
        req.headers().get(&self.name).cloned()
    }
}

/// One key for every request: the limit becomes a global one.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalKey;

impl<B> KeyExtractor<B> for GlobalKey {
    type Key = ();

    fn extract(&self, _req: &Request<B>) -> Option<()> {
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_the_header() {
        let c = ClientIp::new(proxies());
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(c.client_ip(ip("203.0.113.5"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn walks_from_the_right_skipping_trusted_hops() {
        let c = ClientIp::new(proxies());
        // The client claims 6.6.6.6; the edge proxy appended the real 203.0.113.7.
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.7, 10.0.0.2"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let c = ClientIp::new(proxies());
        let h = headers("x-forwarded-for", &["198.51.100.1", "10.0.0.3"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        let c = ClientIp::new(proxies());
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.0.0.8"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn malformed_hop_stops_at_the_last_address_reached() {
        let c = ClientIp::new(proxies());
        let h = headers("x-forwarded-for", &["1.2.3.4, garbage, 10.0.0.7"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.7"));
        let h = headers("x-forwarded-for", &[""]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_brackets_are_understood() {
        let c = ClientIp::new(proxies());
        for (v, want) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let h = headers("x-forwarded-for", &[v]);
            assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip(want), "{v}");
        }
    }

    #[test]
    fn forwarded_header_reads_for_parameters() {
        let c = ClientIp::new(proxies()).header(ProxyHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[
                r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5;by=10.0.0.1"#,
            ],
        );
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=unknown, for=10.0.0.5"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.5"));
        // X-Forwarded-For is not read in Forwarded mode.
        let h = headers("x-forwarded-for", &["203.0.113.1"]);
        assert_eq!(c.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_keys_share_a_slash_64() {
        assert_eq!(
            ip_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip_key(ip("2001:db8:1:2:bbbb::2"), 64)
        );
        assert_ne!(
            ip_key(ip("2001:db8:1:2::1"), 64),
            ip_key(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(ip_key(ip("::ffff:1.2.3.4"), 64), ip("1.2.3.4"));
        assert_eq!(ip_key(ip("1.2.3.4"), 0), ip("1.2.3.4"), "IPv4 is never cut");
    }

    #[test]
    fn peer_ip_reads_a_socket_addr_extension() {
        let mut req = Request::new(());
        assert_eq!(PeerIp::new().extract(&req), None);
        req.extensions_mut()
            .insert(SocketAddr::from(([192, 0, 2, 1], 5555)));
        assert_eq!(PeerIp::new().extract(&req), Some(ip("192.0.2.1")));
    }
}
