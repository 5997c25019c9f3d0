//! `Retry-After` parsing as properties: any bytes are safe, past dates are absent, and both
//! forms read back what was written.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use tower_adaptive_throttle::outbound::parse_retry_after;

use crate::support::proptest_config;

/// A wall-clock "now" anywhere from 1970 to about 2100, at whole seconds.
fn now_strategy() -> impl Strategy<Value = SystemTime> {
    (0u64..4_100_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), now in now_strategy()) {
        let _ = parse_retry_after(&bytes, now);
    }

    #[test]
    fn arbitrary_text_never_panics_and_any_wait_is_positive_for_dates(text in "\\PC{0,40}", now in now_strategy()) {
        if let Some(wait) = parse_retry_after(text.as_bytes(), now) {
            let digits = text.trim().bytes().all(|b| b.is_ascii_digit());
            prop_assert!(digits || !wait.is_zero());
        }
    }

    #[test]
    fn past_and_present_dates_are_absent(now in now_strategy(), ago in 0u64..3_000_000_000) {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap();
        let then = UNIX_EPOCH + since_epoch.saturating_sub(Duration::from_secs(ago));
        let header = httpdate::fmt_http_date(then);
        prop_assert_eq!(parse_retry_after(header.as_bytes(), now), None);
    }

    #[test]
    fn future_dates_give_their_distance(now in now_strategy(), ahead in 1u64..10_000_000) {
        let header = httpdate::fmt_http_date(now + Duration::from_secs(ahead));
        prop_assert_eq!(
            parse_retry_after(header.as_bytes(), now),
            Some(Duration::from_secs(ahead))
        );
    }

    #[test]
    fn delta_seconds_read_back(secs in any::<u64>(), pad in "[ \\t]{0,2}") {
        let header = format!("{pad}{secs}{pad}");
        prop_assert_eq!(
            parse_retry_after(header.as_bytes(), UNIX_EPOCH),
            Some(Duration::from_secs(secs))
        );
    }

    #[test]
    fn signed_or_fractional_numbers_are_absent(n in any::<i64>(), frac in 1u32..1000) {
        prop_assert_eq!(parse_retry_after(format!("{}", -(n.unsigned_abs() as i128) - 1).as_bytes(), UNIX_EPOCH), None);
        prop_assert_eq!(parse_retry_after(format!("{}.{frac}", n.unsigned_abs()).as_bytes(), UNIX_EPOCH), None);
    }
}
