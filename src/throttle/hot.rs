//! What admission reads of the configuration on every request, mirrored so that reading it
//! writes nothing: a sequence lock over atomics. Loading the config itself (an `ArcSwap`) takes
//! two read-modify-write operations per request; the config changes only on a swap.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{KeyQuota, RateStrategy, ThrottleConfig, TierShares};
use crate::decision::Tier;

/// The fields of the config the rate axis reads per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HotConfig {
    pub(super) window: Duration,
    pub(super) key_quota: KeyQuota,
    pub(super) rate_strategy: RateStrategy,
    /// The share of a limit each tier may fill (critical, standard, non-essential): the
    /// concurrency section's tier shares, or their defaults.
    pub(super) shares: [f64; 3],
}

impl HotConfig {
    pub(super) fn of(cfg: &ThrottleConfig) -> Self {
        let shares = cfg
            .concurrency()
            .map_or_else(TierShares::default, |c| c.tier_shares());
        Self {
            window: cfg.window,
            key_quota: cfg.key_quota,
            rate_strategy: cfg.rate_strategy,
            shares: [
                1.0,
                shares.of(Tier::Standard),
                shares.of(Tier::NonEssential),
            ],
        }
    }

    fn encode(&self) -> [u64; WORDS] {
        let (quota_tag, quota) = match self.key_quota {
            KeyQuota::WholeLimit => (0, 0),
            KeyQuota::FairShare => (1, 0),
            KeyQuota::Fixed(q) => (2, u64::from(q)),
        };
        let (strategy_tag, param) = match self.rate_strategy {
            RateStrategy::SlidingWindow { buckets } => (0, u64::from(buckets)),
            RateStrategy::SlidingWindowLog => (1, 0),
            RateStrategy::FixedWindow => (2, 0),
            RateStrategy::Gcra { burst_fraction } => (3, burst_fraction.to_bits()),
            RateStrategy::TokenBucket => (4, 0),
        };
        [
            u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX),
            quota_tag << 32 | quota,
            strategy_tag,
            param,
            self.shares[1].to_bits(),
            self.shares[2].to_bits(),
        ]
    }

    fn decode(w: [u64; WORDS]) -> Self {
        let key_quota = match w[1] >> 32 {
            0 => KeyQuota::WholeLimit,
            1 => KeyQuota::FairShare,
            _ => KeyQuota::Fixed(w[1] as u32),
        };
        let rate_strategy = match w[2] {
            0 => RateStrategy::SlidingWindow {
                buckets: w[3] as u32,
            },
            1 => RateStrategy::SlidingWindowLog,
            2 => RateStrategy::FixedWindow,
            3 => RateStrategy::Gcra {
                burst_fraction: f64::from_bits(w[3]),
            },
            _ => RateStrategy::TokenBucket,
        };
        Self {
            window: Duration::from_nanos(w[0]),
            key_quota,
            rate_strategy,
            shares: [1.0, f64::from_bits(w[4]), f64::from_bits(w[5])],
        }
    }
}

const WORDS: usize = 6;

/// A [`HotConfig`] behind a sequence lock: readers retry while a (rare) store is under way and
/// never write; stores are serialised by the caller (the controller's lock).
#[derive(Debug)]
pub(super) struct HotCell {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl HotCell {
    pub(super) fn new(cfg: &ThrottleConfig) -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: HotConfig::of(cfg).encode().map(AtomicU64::new),
        }
    }

    /// The current fields, consistent (all from one store).
    pub(super) fn load(&self) -> HotConfig {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let words = self.words.each_ref().map(|w| w.load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return HotConfig::decode(words);
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Replaces the fields (callers hold the controller's lock: one store at a time).
    pub(super) fn store(&self, cfg: &ThrottleConfig) {
        let words = HotConfig::of(cfg).encode();
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (cell, word) in self.words.iter().zip(words) {
            cell.store(word, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConcurrencyConfig;

    #[test]
    fn every_field_survives_the_round_trip() {
        let configs = [
            ThrottleConfig::default(),
            ThrottleConfig::baldur(),
            ThrottleConfig::builder()
                .key_quota(KeyQuota::Fixed(7))
                .rate_strategy(RateStrategy::SlidingWindow { buckets: 12 })
                .window(Duration::from_millis(1_500))
                .concurrency(ConcurrencyConfig::builder().build().unwrap())
                .build()
                .unwrap(),
            ThrottleConfig::builder()
                .rate_strategy(RateStrategy::Gcra {
                    burst_fraction: 0.37,
                })
                .build()
                .unwrap(),
        ];
        let cell = HotCell::new(&configs[0]);
        for cfg in &configs {
            cell.store(cfg);
            assert_eq!(cell.load(), HotConfig::of(cfg));
        }
    }

    #[test]
    fn a_reader_never_sees_a_mix_of_two_stores() {
        let a = ThrottleConfig::default();
        let b = ThrottleConfig::builder()
            .key_quota(KeyQuota::Fixed(3))
            .rate_strategy(RateStrategy::TokenBucket)
            .window(Duration::from_secs(9))
            .build()
            .unwrap();
        let (hot_a, hot_b) = (HotConfig::of(&a), HotConfig::of(&b));
        let cell = HotCell::new(&a);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..20_000 {
                    cell.store(if i % 2 == 0 { &b } else { &a });
                }
            });
            for _ in 0..20_000 {
                let seen = cell.load();
                assert!(seen == hot_a || seen == hot_b, "torn read: {seen:?}");
            }
        });
    }
}
