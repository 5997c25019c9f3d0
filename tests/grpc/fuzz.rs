//! Arbitrary metadata bytes (header values, method paths, `grpc-status` and pushback values)
//! through the gRPC key and tier extractors, the classifier and the rejection: nothing panics,
//! and what is read is read right.

use std::convert::Infallible;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use proptest::prelude::*;
use tower_adaptive_throttle::http::{
    is_grpc, DefaultRejection, GrpcCode, GrpcMethodKey, GrpcMethodTier, HeaderKey,
    ServerErrorsAsOverload, TierHeader, GRPC_STATUS,
};
use tower_adaptive_throttle::outbound::parse_retry_pushback;
use tower_adaptive_throttle::{
    Classify, Decision, KeyExtractor, OnReject, Outcome, Tier, TierExtractor,
};

use crate::support::proptest_config;

const NAMES: [&str; 7] = [
    "content-type",
    "grpc-status",
    "grpc-message",
    "grpc-retry-pushback-ms",
    "x-api-key",
    "x-priority",
    "x-token-bin",
];

fn value() -> impl Strategy<Value = HeaderValue> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..40)
        .prop_filter_map("valid header bytes", |b| HeaderValue::from_bytes(&b).ok());
    let shaped = "(application/grpc(-web)?(\\+proto)?(;.{0,8})?|-?[0-9]{0,12}|critical|standard)"
        .prop_filter_map("valid header text", |s| HeaderValue::from_str(&s).ok());
    prop_oneof![bytes, shaped]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec((0..NAMES.len(), value()), 0..6).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (i, v) in pairs {
            h.append(HeaderName::from_static(NAMES[i]), v);
        }
        h
    })
}

/// Paths a URI accepts, from arbitrary bytes and from method-shaped strings.
fn path() -> impl Strategy<Value = PathAndQuery> {
    // Mostly printable ASCII (what a URI's path may hold), with arbitrary bytes mixed in.
    let byte = prop_oneof![9 => 0x21u8..0x7f, 1 => any::<u8>()];
    let bytes = proptest::collection::vec(byte, 0..40).prop_filter_map("a valid path", |b| {
        let mut path = vec![b'/'];
        path.extend(b);
        PathAndQuery::try_from(path.as_slice()).ok()
    });
    let shaped = "/?[a-zA-Z0-9._]{0,12}/?[a-zA-Z0-9_/]{0,12}"
        .prop_filter_map("a valid path", |s| PathAndQuery::try_from(s.as_str()).ok());
    prop_oneof![bytes, shaped]
}

fn tiers() -> GrpcMethodTier {
    GrpcMethodTier::new()
        .method("/a.S/M", Tier::Critical)
        .service("a.S", Tier::NonEssential)
        .prefix("/b", Tier::Critical)
}

proptest! {
    #![proptest_config(proptest_config(1000))]

    #[test]
    fn no_metadata_or_path_makes_an_extractor_panic(h in headers(), p in path()) {
        let mut req = Request::new(());
        *req.uri_mut() = Uri::from(p.clone());
        *req.headers_mut() = h.clone();
        let key = GrpcMethodKey.extract(&req);
        prop_assert_eq!(key.as_ref().map(PathAndQuery::as_str), Some(p.as_str()));
        let tier = tiers().tier(&req);
        prop_assert_eq!(tier, tiers().tier_of(p.path()));
        if p.path() == "/a.S/M" {
            prop_assert_eq!(tier, Tier::Critical);
        }
        let _ = HeaderKey::new(HeaderName::from_static("x-token-bin")).extract(&req);
        let _ = TierHeader::new(HeaderName::from_static("x-priority")).tier(&req);
        let _ = GrpcMethodTier::service_of(p.path());
    }

    #[test]
    fn arbitrary_strings_never_panic_the_tier_table(s in any::<String>()) {
        let _ = tiers().tier_of(&s);
        let _ = GrpcMethodTier::service_of(&s);
        let _ = GrpcMethodTier::new().method(&s, Tier::Critical).service(&s, Tier::Standard).tier_of(&s);
    }

    #[test]
    fn no_metadata_makes_the_classifier_panic(h in headers(), trailers in headers(), status in 100u16..600) {
        let mut res = Response::new(());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        *res.headers_mut() = h.clone();
        let head = Classify::<(), Infallible>::classify(&ServerErrorsAsOverload, Ok(&res));
        let waits = Classify::<(), Infallible>::trailers_classifier(&ServerErrorsAsOverload, &res);
        let code = GrpcCode::from_headers(&h);
        if is_grpc(&h) {
            if let Some(code) = code {
                prop_assert_eq!(head, code.outcome());
                prop_assert!(waits.is_none());
            }
        } else {
            prop_assert!(waits.is_none(), "only gRPC waits for trailers");
        }
        if let Some(read) = waits {
            let outcome = read(Some(&trailers));
            match GrpcCode::from_headers(&trailers) {
                Some(c) => prop_assert_eq!(outcome, c.outcome()),
                None => prop_assert_eq!(outcome, Outcome::Overload),
            }
        }
        // A valid status is exactly the decimal number written.
        if let Some(GrpcCode(n)) = code {
            prop_assert_eq!(h[GRPC_STATUS].to_str().unwrap().parse::<u32>(), Ok(n));
        }
    }

    #[test]
    fn no_request_metadata_makes_a_rejection_panic(h in headers(), retry_ms in any::<u64>()) {
        let t = tower_adaptive_throttle::AdaptiveThrottle::new(
            crate::support::pinned(1).build().unwrap(),
        );
        t.check("k", Tier::Standard);
        let d: Decision = t.check("k", Tier::Standard);
        let res = DefaultRejection.on_reject_request(&d, &h);
        if is_grpc(&h) {
            prop_assert_eq!(res.status(), 200);
            prop_assert!(res.headers().contains_key(GRPC_STATUS));
        } else {
            prop_assert_eq!(res.status(), 429);
        }
        let _ = retry_ms;
    }

    #[test]
    fn pushback_values_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        if let Some(d) = parse_retry_pushback(&bytes) {
            let text = std::str::from_utf8(&bytes).unwrap().trim();
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(d.as_millis() <= u128::from(u64::MAX));
        }
    }
}
