//! The cooldown a 429 earns, as pure arithmetic: the jittered ladder and the `Retry-After` floor
//! (BAL-025). No clock, no lock: the caller passes the generator state.

use std::time::Duration;

use super::config::CoordinatorConfig;
use crate::util::splitmix64;

/// A cooldown decided for one 429.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cooldown {
    /// How long the key cools down from now.
    pub(crate) delay: Duration,
    /// The delay exceeds the ladder's cap: the upstream's `Retry-After` decided it.
    pub(crate) retry_after_honored: bool,
    /// The upstream's `Retry-After` exceeded the ceiling and was cut to it.
    pub(crate) retry_after_clamped: bool,
}

/// A uniform draw in `[0, 1)` from 53 random bits.
fn unit(rng: &mut u64) -> f64 {
    (splitmix64(rng) >> 11) as f64 / (1u64 << 53) as f64
}

/// The ladder's step for the `consecutive`-th 429 (n ≥ 1): `base × multiplier^(n−1)`, jittered
/// symmetrically below the cap and only inwards at it, never above the cap.
pub(crate) fn ladder(cfg: &CoordinatorConfig, consecutive: u32, rng: &mut u64) -> Duration {
    let cap = cfg.max_delay.as_secs_f64();
    let exponent = consecutive.saturating_sub(1).min(i32::MAX as u32) as i32;
    // Large exponents overflow to infinity, which the cap absorbs.
    let raw = cfg.base_delay.as_secs_f64() * cfg.backoff_multiplier.powi(exponent);
    let u = unit(rng);
    let secs = if raw >= cap {
        // Jitter at the cap can only shorten, or every capped cooldown would be the cap exactly
        // and keys that hit it together would come back together.
        cap * (1.0 - cfg.jitter * u)
    } else {
        (raw * (1.0 + cfg.jitter * (2.0 * u - 1.0))).min(cap)
    };
    Duration::from_secs_f64(secs.max(0.0))
}

/// The cooldown for the `consecutive`-th 429 with the upstream's `Retry-After` (already parsed;
/// `None` if absent or invalid): `max(min, min(ceiling, max(header, ladder)))`. The header is a
/// floor and never jittered.
pub(crate) fn cooldown(
    cfg: &CoordinatorConfig,
    consecutive: u32,
    retry_after: Option<Duration>,
    rng: &mut u64,
) -> Cooldown {
    let step = ladder(cfg, consecutive, rng);
    let (delay, clamped) = match retry_after {
        None => (step, false),
        Some(header) => (
            header.max(step).min(cfg.retry_after_ceiling),
            header > cfg.retry_after_ceiling,
        ),
    };
    let delay = delay.max(cfg.min_cooldown);
    Cooldown {
        delay,
        retry_after_honored: delay > cfg.max_delay,
        retry_after_clamped: clamped,
    }
}

/// A `Retry-After` alone, for a 429 that does not climb the ladder: its floor, bounded as above.
pub(crate) fn header_floor(cfg: &CoordinatorConfig, retry_after: Duration) -> Cooldown {
    let delay = retry_after
        .min(cfg.retry_after_ceiling)
        .max(cfg.min_cooldown);
    Cooldown {
        delay,
        retry_after_honored: delay > cfg.max_delay,
        retry_after_clamped: retry_after > cfg.retry_after_ceiling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn no_jitter() -> CoordinatorConfig {
        CoordinatorConfig::builder().jitter(0.0).build().unwrap()
    }

    #[test]
    fn ladder_doubles_from_five_seconds_to_the_cap() {
        let cfg = no_jitter();
        let mut rng = 1;
        let steps: Vec<_> = (1..=6).map(|n| ladder(&cfg, n, &mut rng)).collect();
        assert_eq!(steps, [5.0, 10.0, 20.0, 40.0, 60.0, 60.0].map(secs));
        assert_eq!(ladder(&cfg, u32::MAX, &mut rng), secs(60.0));
    }

    #[test]
    fn jitter_is_symmetric_below_the_cap_and_inward_at_it() {
        let cfg = CoordinatorConfig::default();
        let (mut lo, mut hi) = (f64::MAX, 0.0_f64);
        for seed in 0..2000 {
            let mut rng = seed;
            let d = ladder(&cfg, 1, &mut rng).as_secs_f64();
            assert!((3.5..=6.5).contains(&d), "{d}");
            lo = lo.min(d);
            hi = hi.max(d);
            let at_cap = ladder(&cfg, 9, &mut rng).as_secs_f64();
            assert!((42.0..=60.0).contains(&at_cap), "{at_cap}");
            // 40 s × 1.3 would be 52 s: still below the cap, so not cut.
            let d4 = ladder(&cfg, 4, &mut rng).as_secs_f64();
            assert!((28.0..=52.0).contains(&d4), "{d4}");
        }
        // Both sides of the step are reached.
        assert!(lo < 4.0 && hi > 6.0, "{lo}..{hi}");
    }

    #[test]
    fn retry_after_is_a_floor_bounded_by_the_ceiling() {
        let cfg = no_jitter();
        let mut rng = 0;
        let c = cooldown(&cfg, 1, Some(secs(2.0)), &mut rng);
        assert_eq!(c.delay, secs(5.0), "the ladder wins over a short header");
        let c = cooldown(&cfg, 1, Some(secs(90.0)), &mut rng);
        assert_eq!(
            (c.delay, c.retry_after_honored, c.retry_after_clamped),
            (secs(90.0), true, false)
        );
        let c = cooldown(&cfg, 1, Some(secs(7200.0)), &mut rng);
        assert_eq!(
            (c.delay, c.retry_after_honored, c.retry_after_clamped),
            (secs(3600.0), true, true)
        );
    }

    #[test]
    fn minimum_cooldown_holds() {
        let cfg = CoordinatorConfig::builder()
            .base_delay(Duration::from_millis(1))
            .jitter(0.0)
            .build()
            .unwrap();
        assert_eq!(cooldown(&cfg, 1, None, &mut 0).delay, secs(0.1));
        assert_eq!(header_floor(&cfg, Duration::ZERO).delay, secs(0.1));
    }
}
