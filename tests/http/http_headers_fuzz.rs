//! Arbitrary header bytes fed to every extractor: no input panics, and the trust rules hold
//! whatever the headers say.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, HeaderValue, Request};
use proptest::prelude::*;
use tower_adaptive_throttle::http::{
    ip_key, Cidr, ClientIp, FixedTier, GlobalKey, HeaderKey, PeerIp, ProxyHeader, TierHeader,
    TrustedProxies,
};
use tower_adaptive_throttle::{KeyExtractor, Tier, TierExtractor};

use crate::support::proptest_config;

const HEADERS: [&str; 5] = [
    "x-forwarded-for",
    "forwarded",
    "x-priority",
    "x-api-key",
    "x-real-ip",
];

/// Values that `HeaderValue` accepts, from arbitrary bytes and from arbitrary strings, plus
/// strings shaped like forwarding headers.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64)
        .prop_filter_map("valid header bytes", |b| HeaderValue::from_bytes(&b).ok());
    let text =
        any::<String>().prop_filter_map("valid header text", |s| HeaderValue::from_str(&s).ok());
    let shaped = "((for|For|by)=)?\"?\\[?[0-9a-f:.\\[\\]_\"]{0,40}\\]?(:[0-9]{0,6})?\"?(;proto=https)?( ?, ?[0-9.:a-f\\[\\]]{0,20}){0,4}"
        .prop_filter_map("valid header text", |s| HeaderValue::from_str(&s).ok());
    prop_oneof![bytes, text, shaped]
}

fn peer() -> impl Strategy<Value = Option<SocketAddr>> {
    prop_oneof![
        Just(None),
        any::<[u8; 4]>().prop_map(|ip| Some(SocketAddr::from((ip, 1)))),
        Just(Some(SocketAddr::from(([10, 0, 0, 1], 1)))),
        any::<[u16; 8]>().prop_map(|ip| Some(SocketAddr::from((ip, 1)))),
        Just(Some("[fd00::1]:1".parse().unwrap())),
    ]
}

fn request(peer: Option<SocketAddr>, headers: &[(usize, HeaderValue)]) -> Request<()> {
    let mut req = Request::new(());
    for (i, v) in headers {
        let name = HeaderName::from_static(HEADERS[i % HEADERS.len()]);
        req.headers_mut().append(name, v.clone());
    }
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    req
}

fn proxies() -> TrustedProxies {
    TrustedProxies::parse(["10.0.0.0/8", "fd00::/8", "127.0.0.1"]).unwrap()
}

proptest! {
    #![proptest_config(proptest_config(2000))]

    #[test]
    fn no_header_makes_an_extractor_panic(
        peer in peer(),
        headers in proptest::collection::vec((0usize..HEADERS.len(), header_value()), 0..6),
    ) {
        let req = request(peer, &headers);
        let xff = ClientIp::new(proxies());
        let fwd = ClientIp::new(proxies()).header(ProxyHeader::Forwarded);
        let _ = PeerIp::new().extract(&req);
        let _ = PeerIp::new().ipv6_prefix(200).extract(&req);
        let _ = xff.extract(&req);
        let _ = fwd.extract(&req);
        let _ = HeaderKey::new(HeaderName::from_static("x-api-key")).extract(&req);
        let _ = GlobalKey.extract(&req);
        let prio = HeaderName::from_static("x-priority");
        let _ = TierHeader::new(prio.clone()).tier(&req);
        let _ = TierHeader::new(prio).trusted_only(proxies()).tier(&req);
        prop_assert_eq!(FixedTier(Tier::Critical).tier(&req), Tier::Critical);
    }

    #[test]
    fn untrusted_peers_are_keyed_by_their_own_address(
        ip in any::<[u8; 4]>().prop_filter("not trusted", |ip| ip[0] != 10 && *ip != [127, 0, 0, 1]),
        headers in proptest::collection::vec((0usize..2, header_value()), 0..6),
    ) {
        let peer = SocketAddr::from((ip, 7));
        let req = request(Some(peer), &headers);
        for header in [ProxyHeader::XForwardedFor, ProxyHeader::Forwarded] {
            let key = ClientIp::new(proxies()).header(header).extract(&req);
            prop_assert_eq!(key, Some(ip_key(peer.ip(), 64)));
        }
    }

    #[test]
    fn an_untrusted_peer_never_gets_a_header_tier(
        ip in any::<[u8; 4]>().prop_filter("not trusted", |ip| ip[0] != 10 && *ip != [127, 0, 0, 1]),
        headers in proptest::collection::vec((2usize..3, header_value()), 0..4),
    ) {
        let req = request(Some(SocketAddr::from((ip, 7))), &headers);
        let tiers = TierHeader::new(HeaderName::from_static("x-priority"))
            .default_tier(Tier::NonEssential)
            .trusted_only(proxies());
        prop_assert_eq!(tiers.tier(&req), Tier::NonEssential);
    }

    #[test]
    fn trusted_peer_key_is_the_rightmost_untrusted_hop(
        hops in proptest::collection::vec(
            prop_oneof![
                3 => any::<[u8; 4]>().prop_map(Some),
                3 => Just(Some([10, 1, 2, 3])),
                1 => Just(None),
            ],
            1..6,
        ),
    ) {
        // A reference model of the walk: from the right, skip trusted hops, stop at garbage.
        let peer = SocketAddr::from(([10, 0, 0, 1], 7));
        let mut expected = peer.ip();
        for hop in hops.iter().rev() {
            match hop {
                None => break,
                Some(ip) => {
                    expected = IpAddr::from(*ip);
                    if !proxies().contains(expected) {
                        break;
                    }
                }
            }
        }
        let line = hops
            .iter()
            .map(|h| h.map_or("garbage".to_string(), |ip| IpAddr::from(ip).to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let value = HeaderValue::from_str(&line).unwrap();
        let req = request(Some(peer), &[(0, value)]);
        prop_assert_eq!(ClientIp::new(proxies()).extract(&req), Some(expected));
    }

    #[test]
    fn cidr_parsing_never_panics(s in any::<String>()) {
        let _ = s.parse::<Cidr>();
        let _ = TrustedProxies::parse([s.as_str()]);
    }
}
