//! No accepted configuration can crash the process: random configurations, extreme values
//! included, either fail `build()` or drive a throttle (check, acquire, record, stats) and the
//! HTTP layer in front of a router without a panic or an unbounded allocation.

use std::time::Duration;

use proptest::prelude::*;
use tower_adaptive_throttle::config::{
    Adaptation, CapacityEstimate, ConcurrencyConfig, IncreaseSizing, KeyQuota, MinRttProbe,
    RateStrategy, SignalKind, SlaTrigger, TrendEstimator,
};
use tower_adaptive_throttle::{ThrottleConfig, Tier};

use std::net::SocketAddr;

use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get;
use axum::Router;
use tower_adaptive_throttle::AdaptiveThrottleLayer;

use crate::support::{manual, proptest_config, respond};

/// Draws values from a list of random words, with the edges likely.
struct Draw(std::vec::IntoIter<u64>);

impl Draw {
    fn word(&mut self) -> u64 {
        self.0.next().unwrap_or(0)
    }

    fn duration(&mut self) -> Duration {
        let w = self.word();
        match w % 16 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(u64::MAX),
            2 => Duration::from_millis(u64::MAX / 2),
            3 => Duration::MAX,
            4 => Duration::from_nanos(w >> 3),
            _ => Duration::from_millis(1 + (w >> 8) % 5_000),
        }
    }

    fn count(&mut self) -> u32 {
        let w = self.word();
        match w % 16 {
            0 => 0,
            1 => u32::MAX,
            2 => u32::MAX - 1,
            _ => 1 + ((w >> 8) % 2_000) as u32,
        }
    }

    fn fraction(&mut self) -> f64 {
        let w = self.word();
        match w % 16 {
            8.. => (w >> 11) as f64 / (1u64 << 53) as f64,
            0 => (w >> 11) as f64 / (1u64 << 53) as f64 * 2.0,
            1 => 0.0,
            2 => 1.0,
            3 => f64::MIN_POSITIVE,
            4 => f64::MAX,
            5 => f64::INFINITY,
            6 => f64::NAN,
            _ => -1.0,
        }
    }

    fn size(&mut self) -> usize {
        let w = self.word();
        match w % 16 {
            0 => 0,
            1 => usize::MAX,
            2 => 1 << 40,
            _ => 1 + ((w >> 8) % 100_000) as usize,
        }
    }

    fn rate_strategy(&mut self) -> RateStrategy {
        match self.word() % 5 {
            0 => RateStrategy::SlidingWindow {
                buckets: self.count(),
            },
            1 => RateStrategy::SlidingWindowLog,
            2 => RateStrategy::FixedWindow,
            3 => RateStrategy::Gcra {
                burst_fraction: self.fraction(),
            },
            _ => RateStrategy::TokenBucket,
        }
    }

    fn adaptation(&mut self) -> Adaptation {
        if self.word().is_multiple_of(2) {
            return Adaptation::Ladder;
        }
        let mut c = CapacityEstimate::default();
        c.tolerance = 1.0 + self.fraction();
        c.probe_gain = self.fraction();
        c.startup_gain = self.fraction();
        c.headroom = 1.0 + self.fraction();
        c.min_drain = self.fraction();
        c.delivery_window = self.duration();
        c.rate_headroom = 1.0 + self.fraction();
        Adaptation::CapacityEstimate(c)
    }

    fn concurrency(&mut self) -> Option<ConcurrencyConfig> {
        if self.word().is_multiple_of(3) {
            return None;
        }
        let mut probe = MinRttProbe::every(self.duration());
        probe.request_count = self.count();
        probe.jitter = self.fraction();
        probe.probe_limit = self.count();
        probe.percentile = self.fraction();
        let mut b = ConcurrencyConfig::builder()
            .min_limit(self.count())
            .initial_limit(self.count())
            .max_limit(self.count())
            .jitter_seed(7);
        if self.word().is_multiple_of(2) {
            b = b.min_rtt_probe(probe);
        }
        b.build().ok()
    }

    /// Whether to change the next setting from the recommended one (about one in five).
    fn change(&mut self) -> bool {
        self.word().is_multiple_of(5)
    }

    fn config(&mut self) -> Result<ThrottleConfig, tower_adaptive_throttle::ConfigError> {
        let mut b = ThrottleConfig::builder().jitter_seed(11);
        if self.change() {
            // Usually ordered, so the rest of the configuration is explored too.
            let mut limits = [self.count(), self.count(), self.count()];
            if !self.word().is_multiple_of(4) {
                limits.sort_unstable();
            }
            b = b
                .min_limit(limits[0])
                .initial_limit(limits[1])
                .max_limit(limits[2]);
        }
        if self.change() {
            b = b.window(self.duration());
        }
        if self.change() {
            b = b.sample_interval(self.duration());
        }
        if self.change() {
            let mut sla = [self.duration(), self.duration()];
            sla.sort_unstable();
            b = b.sla_warning(sla[0]).sla_critical(sla[1]);
        }
        if self.change() {
            b = b
                .decrease_ratio(self.fraction())
                .critical_decrease_ratio(self.fraction());
        }
        if self.change() {
            b = b.smoothing_factor(self.fraction());
        }
        if self.change() {
            b = b.increase_step(self.count()).min_samples(self.count());
        }
        if self.change() {
            b = b
                .recovery_stage_interval(self.duration())
                .recovery_jitter(self.duration());
        }
        if self.change() {
            b = b.sla_trigger(if self.word().is_multiple_of(2) {
                SlaTrigger::TriggeringSample
            } else {
                SlaTrigger::IntervalPercentile(self.fraction())
            });
        }
        if self.change() {
            b = b.trend(match self.word() % 4 {
                0 => TrendEstimator::Signal,
                1 => TrendEstimator::IntervalMeans,
                2 => TrendEstimator::LongShortBaseline {
                    long_smoothing: self.fraction(),
                },
                _ => TrendEstimator::NoLoadBaseline {
                    rise_per_interval: self.fraction(),
                },
            });
        }
        if self.change() {
            b = b.increase_sizing(if self.word().is_multiple_of(2) {
                IncreaseSizing::Step
            } else {
                IncreaseSizing::Proportional(self.fraction())
            });
        }
        if self.change() {
            b = b.signal(if self.word().is_multiple_of(2) {
                SignalKind::Ema
            } else {
                SignalKind::TimeBucketed {
                    window: self.duration(),
                }
            });
        }
        if self.change() {
            b = b.rate_strategy(self.rate_strategy());
        }
        if self.change() {
            b = b.max_keys(self.size()).event_capacity(self.size());
        }
        if self.change() {
            b = b.adaptation(self.adaptation());
        }
        if self.change() {
            b = b.key_quota(match self.word() % 3 {
                0 => KeyQuota::WholeLimit,
                1 => KeyQuota::FairShare,
                _ => KeyQuota::Fixed(self.count()),
            });
        }
        if self.change() {
            b = match self.concurrency() {
                Some(c) => b.concurrency(c),
                None => b.without_concurrency(),
            };
        }
        b.build()
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn an_accepted_configuration_drives_a_throttle_without_panicking(
        words in prop::collection::vec(any::<u64>(), 80),
        ops in prop::collection::vec((0u8..5, 0u64..8, 0u64..3_000, 0u64..1_000), 1..120),
    ) {
        let Ok(cfg) = Draw(words.into_iter()).config() else { return Ok(()) };
        let (t, clock) = manual(cfg);
        let tiers = [Tier::Critical, Tier::Standard, Tier::NonEssential];
        for (op, key, rtt_ms, advance_ms) in ops {
            let tier = tiers[(key % 3) as usize];
            match op {
                0 => { t.check(&key, tier); }
                1 => { t.record_response(Duration::from_millis(rtt_ms)); }
                2 => {
                    if let Ok(permit) = t.acquire(&key, tier) {
                        clock.advance(Duration::from_millis(rtt_ms));
                        permit.success();
                    }
                }
                3 => { t.record_overload(Duration::from_millis(rtt_ms)); }
                _ => { t.stats(); t.peek(&key); }
            }
            clock.advance(Duration::from_millis(advance_ms));
        }
        // The same throttle behind the HTTP layer: headers, 429s and the response path.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(AdaptiveThrottleLayer::from_throttle(t.clone()))
                .layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40_000))));
            for _ in 0..6 {
                let res = respond(&app, crate::support::get("/")).await;
                assert!(res.status().is_success() || res.status().as_u16() == 429, "{}", res.status());
                clock.advance(Duration::from_millis(7));
            }
        });
        let stats = t.stats();
        prop_assert!(stats.current_limit >= t.config().min_limit());
        prop_assert!(stats.current_limit <= t.config().max_limit());
    }
}

/// The property above is not vacuous: a good share of the random configurations is accepted.
#[test]
fn a_good_share_of_the_random_configurations_is_accepted() {
    let mut state = 42u64;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let accepted = (0..1000)
        .filter(|_| {
            let words: Vec<u64> = (0..80).map(|_| next()).collect();
            Draw(words.into_iter()).config().is_ok()
        })
        .count();
    assert!(
        (250..1000).contains(&accepted),
        "{accepted} of 1000 accepted"
    );
}
