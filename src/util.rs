//! Small helpers shared by the crate.

pub(crate) mod stripes;

/// SplitMix64: a tiny, seedable generator for jitter and sampling (not for security).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed that differs between throttles and processes.
pub(crate) fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::RandomState::default().hash_one(std::time::SystemTime::now())
}

/// Consuming builder setters `fn name(mut self, value: T) -> Self` that store into
/// `self.cfg.name` (the config builders' shape).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.cfg.$name = value;
            self
        }
    )*};
}
pub(crate) use setters;

/// gRPC's wire details shared by the server layer (`http::grpc`) and the client-side coordinator
/// (`outbound`), which sit side by side on one layer and so cannot use each other.
pub(crate) mod grpc {
    use ::http::header::{HeaderMap, HeaderName};

    /// `grpc-status`: the call's status code, in the trailers (or in the headers of a
    /// trailers-only response).
    pub(crate) const STATUS: HeaderName = HeaderName::from_static("grpc-status");

    /// `grpc-retry-pushback-ms` (gRFC A6): how long the client should wait before retrying.
    pub(crate) const RETRY_PUSHBACK_MS: HeaderName =
        HeaderName::from_static("grpc-retry-pushback-ms");

    /// `RESOURCE_EXHAUSTED`, gRPC's "you are over your quota".
    pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;

    /// `UNAVAILABLE`, gRPC's "the service cannot take this now".
    pub(crate) const UNAVAILABLE: u32 = 14;

    /// The status code in `bytes`: ASCII digits only (the spec writes a decimal integer), at
    /// most 10 of them so the value fits; anything else is `None`. Never panics.
    pub(crate) fn parse_status(bytes: &[u8]) -> Option<u32> {
        if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }

    /// The `grpc-status` in `headers` (the first value), if there is a valid one.
    pub(crate) fn status(headers: &HeaderMap) -> Option<u32> {
        parse_status(headers.get(STATUS)?.as_bytes())
    }

    /// Whether `headers` has a gRPC `content-type`: `application/grpc`, alone or followed by
    /// `+format` or `;params`, ASCII case-insensitive. gRPC-Web (`application/grpc-web…`) is
    /// not gRPC here: it carries its trailers inside the body.
    pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
        const PREFIX: &[u8] = b"application/grpc";
        let Some(value) = headers.get(::http::header::CONTENT_TYPE) else {
            return false;
        };
        let v = value.as_bytes();
        v.len() >= PREFIX.len()
            && v[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
            && matches!(v.get(PREFIX.len()), None | Some(b'+' | b';'))
    }

    /// The service of a gRPC method path, `/package.Service/Method` → `package.Service`;
    /// `None` for a path of another shape.
    pub(crate) fn service_of(path: &str) -> Option<&str> {
        let rest = path.strip_prefix('/')?;
        let (service, method) = rest.split_once('/')?;
        (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use ::http::HeaderValue;

        #[test]
        fn status_is_a_bounded_decimal() {
            assert_eq!(parse_status(b"0"), Some(0));
            assert_eq!(parse_status(b"14"), Some(14));
            assert_eq!(parse_status(b"4294967295"), Some(u32::MAX));
            for bad in [
                &b""[..],
                b"-1",
                b" 8",
                b"8 ",
                b"4294967296",
                b"99999999999",
                b"\xff",
            ] {
                assert_eq!(parse_status(bad), None, "{bad:?}");
            }
        }

        #[test]
        fn grpc_content_types() {
            let ct = |v: &'static str| {
                let mut h = HeaderMap::new();
                h.insert(::http::header::CONTENT_TYPE, HeaderValue::from_static(v));
                is_grpc(&h)
            };
            assert!(ct("application/grpc"));
            assert!(ct("application/grpc+proto"));
            assert!(ct("Application/GRPC;charset=utf-8"));
            assert!(!ct("application/grpc-web"));
            assert!(!ct("application/grpc-web+proto"));
            assert!(!ct("application/json"));
            assert!(!is_grpc(&HeaderMap::new()));
        }

        #[test]
        fn service_of_method_paths() {
            assert_eq!(
                service_of("/grpc.health.v1.Health/Check"),
                Some("grpc.health.v1.Health")
            );
            for bad in ["", "/", "//Check", "/Svc/", "/Svc", "Svc/Check", "/a/b/c"] {
                assert_eq!(service_of(bad), None, "{bad}");
            }
        }
    }
}

/// `x.floor() as u64` without the libm call (the hot path computes a few per request, and
/// without SSE4.1 `floor` is a function call): truncation is the floor for `x >= 0`, and both
/// saturate the same way (negative and NaN to 0, too large to `u64::MAX`).
pub(crate) fn floor_u64(x: f64) -> u64 {
    x as u64
}

/// `x.ceil() as u64` without the libm call; the same results for every `x` (see [`floor_u64`]).
pub(crate) fn ceil_u64(x: f64) -> u64 {
    let t = x as u64;
    t.saturating_add(u64::from((t as f64) < x))
}

#[cfg(test)]
mod rounding_tests {
    use super::{ceil_u64, floor_u64};

    #[test]
    fn floor_and_ceil_match_the_float_functions() {
        let values = [
            0.0,
            -0.0,
            0.5,
            1.0,
            1.5,
            2.999_999,
            3.0,
            1e9 + 0.25,
            1.5e19,
            1e20,
            -0.5,
            -3.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            4_503_599_627_370_497.0,
        ];
        for x in values {
            assert_eq!(floor_u64(x), x.floor() as u64, "floor of {x}");
            assert_eq!(ceil_u64(x), x.ceil() as u64, "ceil of {x}");
        }
    }
}
