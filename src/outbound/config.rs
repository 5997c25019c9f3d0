//! [`CoordinatorConfig`]: the cooldown ladder, the `Retry-After` bounds, how long a caller may
//! wait, and the jitter seed. Every number is Baldur's default (BAL-025) unless said otherwise.

use std::fmt;
use std::time::Duration;

/// The first step of the cooldown ladder: a key's first 429 without `Retry-After` cools it for
/// about 5 s (Baldur's `default_retry_after`; Baldur's own `base_delay` of 1 s is not what its
/// ladder starts from, so ours names the number the ladder uses).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(5);
/// Each further consecutive 429 multiplies the ladder step by this (Baldur's
/// `backoff_multiplier`).
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;
/// The ladder's hard cap (Baldur's `max_delay`), and the default [`max_wait`](CoordinatorConfig::max_wait).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Ladder jitter, a fraction either way: ±30 % (Baldur's `jitter_percent`).
pub const DEFAULT_JITTER: f64 = 0.3;
/// The longest cooldown an upstream's `Retry-After` can impose: one hour.
pub const DEFAULT_RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);
/// The shortest cooldown ever stored: 100 ms.
pub const DEFAULT_MIN_COOLDOWN: Duration = Duration::from_millis(100);

/// Settings of a [`RateLimitCoordinator`](super::RateLimitCoordinator).
///
/// # Default
///
/// `base_delay` [`DEFAULT_BASE_DELAY`] (5 s), `backoff_multiplier`
/// [`DEFAULT_BACKOFF_MULTIPLIER`] (2), `max_delay` [`DEFAULT_MAX_DELAY`] (60 s), `jitter`
/// [`DEFAULT_JITTER`] (0.3), `retry_after_ceiling` [`DEFAULT_RETRY_AFTER_CEILING`] (3 600 s),
/// `min_cooldown` [`DEFAULT_MIN_COOLDOWN`] (100 ms), `max_wait` equal to `max_delay`,
/// `cooldown_on_503` off, `count_concurrent_429s` off, a random `seed`.
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::outbound::CoordinatorConfig;
///
/// let cfg = CoordinatorConfig::builder()
///     .base_delay(Duration::from_secs(1))
///     .max_wait(Duration::from_secs(10))
///     .seed(7)
///     .build()?;
/// assert_eq!(cfg.max_delay(), Duration::from_secs(60));
/// # Ok::<(), tower_adaptive_throttle::outbound::CoordinatorConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorConfig {
    pub(crate) base_delay: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: f64,
    pub(crate) retry_after_ceiling: Duration,
    pub(crate) min_cooldown: Duration,
    /// `None` follows `max_delay`, so raising the cap raises the wait with it.
    pub(crate) max_wait: Option<Duration>,
    pub(crate) cooldown_on_503: bool,
    pub(crate) count_concurrent_429s: bool,
    pub(crate) seed: Option<u64>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            base_delay: DEFAULT_BASE_DELAY,
            backoff_multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            max_delay: DEFAULT_MAX_DELAY,
            jitter: DEFAULT_JITTER,
            retry_after_ceiling: DEFAULT_RETRY_AFTER_CEILING,
            min_cooldown: DEFAULT_MIN_COOLDOWN,
            max_wait: None,
            cooldown_on_503: false,
            count_concurrent_429s: false,
            seed: None,
        }
    }
}

impl CoordinatorConfig {
    /// A builder with the defaults.
    pub fn builder() -> CoordinatorConfigBuilder {
        CoordinatorConfigBuilder {
            cfg: Self::default(),
        }
    }

    /// The ladder's first step (the cooldown after one 429, before jitter).
    pub fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The factor between two ladder steps.
    pub fn backoff_multiplier(&self) -> f64 {
        self.backoff_multiplier
    }

    /// The ladder's hard cap.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The ladder's jitter, a fraction either way.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The longest cooldown a `Retry-After` can impose.
    pub fn retry_after_ceiling(&self) -> Duration {
        self.retry_after_ceiling
    }

    /// The shortest cooldown stored.
    pub fn min_cooldown(&self) -> Duration {
        self.min_cooldown
    }

    /// The longest a call waits for a cooldown or a canary before it fails with
    /// [`Deferred`](super::Deferred); `Duration::MAX` waits without bound.
    pub fn max_wait(&self) -> Duration {
        self.max_wait.unwrap_or(self.max_delay)
    }

    /// Whether a `503` carrying a valid `Retry-After` cools its key down like a 429.
    pub fn cooldown_on_503(&self) -> bool {
        self.cooldown_on_503
    }

    /// Whether every 429 climbs the ladder, including those of calls already in flight when
    /// the key's cooldown was armed (Baldur's behaviour).
    pub fn count_concurrent_429s(&self) -> bool {
        self.count_concurrent_429s
    }

    /// The jitter seed, if fixed.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }
}

/// Builder of a [`CoordinatorConfig`]; consuming setters, everything checked in
/// [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct CoordinatorConfigBuilder {
    cfg: CoordinatorConfig,
}

impl CoordinatorConfigBuilder {
    crate::util::setters! {
        /// The ladder's first step: the cooldown after a key's first 429, before jitter.
        base_delay: Duration;
        /// The factor between two ladder steps, at least 1.
        backoff_multiplier: f64;
        /// The ladder's hard cap, at least `base_delay`. A `Retry-After` may exceed it (up to
        /// `retry_after_ceiling`); the ladder never does.
        max_delay: Duration;
        /// The ladder's jitter, a fraction in `[0, 1)`: a step `d` below the cap becomes a
        /// uniform draw in `[d × (1 − j), d × (1 + j)]` (then capped); at the cap, in
        /// `[cap × (1 − j), cap]`.
        jitter: f64;
        /// The longest cooldown a `Retry-After` can impose, at least `min_cooldown`.
        retry_after_ceiling: Duration;
        /// The shortest cooldown stored, above zero.
        min_cooldown: Duration;
        /// Cool a key down on a `503 Service Unavailable` that carries a valid `Retry-After`,
        /// as for a 429. A 503 without one never does.
        cooldown_on_503: bool;
        /// Climb the ladder on every 429, as Baldur does. By default a 429 answered to a call
        /// that was already in flight when its key's cooldown was armed belongs to the burst
        /// that armed it: its `Retry-After` may extend the cooldown, but it does not count as
        /// one more consecutive 429, so fifty calls rejected together cost one step, not fifty.
        count_concurrent_429s: bool;
    }

    /// The longest a call waits for a cooldown (and a canary) before failing with
    /// [`Deferred`](super::Deferred). Zero never waits; `Duration::MAX` waits without bound.
    /// Defaults to `max_delay`.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.cfg.max_wait = Some(wait);
        self
    }

    /// Fixes the jitter seed so runs are reproducible (default: random per coordinator).
    pub fn seed(mut self, seed: u64) -> Self {
        self.cfg.seed = Some(seed);
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`CoordinatorConfigError::ZeroDuration`] for a zero `base_delay` or `min_cooldown`;
    /// [`CoordinatorConfigError::OutOfOrder`] when `max_delay < base_delay` or
    /// `retry_after_ceiling < min_cooldown`; [`CoordinatorConfigError::OutOfRange`] for a
    /// `backoff_multiplier` below 1 (or not finite) or a `jitter` outside `[0, 1)`.
    pub fn build(self) -> Result<CoordinatorConfig, CoordinatorConfigError> {
        let c = self.cfg;
        for (name, d) in [
            ("base_delay", c.base_delay),
            ("min_cooldown", c.min_cooldown),
        ] {
            if d.is_zero() {
                return Err(CoordinatorConfigError::ZeroDuration { name });
            }
        }
        if c.max_delay < c.base_delay {
            return Err(CoordinatorConfigError::OutOfOrder {
                lower: ("base_delay", c.base_delay),
                upper: ("max_delay", c.max_delay),
            });
        }
        if c.retry_after_ceiling < c.min_cooldown {
            return Err(CoordinatorConfigError::OutOfOrder {
                lower: ("min_cooldown", c.min_cooldown),
                upper: ("retry_after_ceiling", c.retry_after_ceiling),
            });
        }
        if !(c.backoff_multiplier.is_finite() && c.backoff_multiplier >= 1.0) {
            return Err(CoordinatorConfigError::OutOfRange {
                name: "backoff_multiplier",
                value: c.backoff_multiplier,
            });
        }
        if !(0.0..1.0).contains(&c.jitter) {
            return Err(CoordinatorConfigError::OutOfRange {
                name: "jitter",
                value: c.jitter,
            });
        }
        Ok(c)
    }
}

/// A [`CoordinatorConfig`] rule broken, with the values that broke it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoordinatorConfigError {
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The setting.
        name: &'static str,
    },
    /// Two durations are in the wrong order.
    OutOfOrder {
        /// The setting that must be the smaller, and its value.
        lower: (&'static str, Duration),
        /// The setting that must be the larger, and its value.
        upper: (&'static str, Duration),
    },
    /// A number is outside its range.
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
}

impl fmt::Display for CoordinatorConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroDuration { name } => write!(f, "{name} must be above zero"),
            Self::OutOfOrder { lower, upper } => write!(
                f,
                "{} ({:?}) must not exceed {} ({:?})",
                lower.0, lower.1, upper.0, upper.1
            ),
            Self::OutOfRange { name, value } => match *name {
                "jitter" => write!(f, "jitter must be in [0, 1), got {value}"),
                _ => write!(f, "{name} must be a finite number ≥ 1, got {value}"),
            },
        }
    }
}

impl std::error::Error for CoordinatorConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_baldurs() {
        let c = CoordinatorConfig::default();
        assert_eq!(c.base_delay(), Duration::from_secs(5));
        assert_eq!(c.max_delay(), Duration::from_secs(60));
        assert_eq!(c.max_wait(), c.max_delay());
        assert_eq!(c.jitter(), 0.3);
        assert_eq!(c.retry_after_ceiling(), Duration::from_secs(3600));
        assert_eq!(c.min_cooldown(), Duration::from_millis(100));
        assert_eq!(CoordinatorConfig::builder().build(), Ok(c));
    }

    #[test]
    fn build_refuses_broken_rules_by_name() {
        let b = CoordinatorConfig::builder;
        assert_eq!(
            b().base_delay(Duration::ZERO).build(),
            Err(CoordinatorConfigError::ZeroDuration { name: "base_delay" })
        );
        assert!(matches!(
            b().max_delay(Duration::from_secs(1)).build(),
            Err(CoordinatorConfigError::OutOfOrder { .. })
        ));
        for jitter in [-0.1, 1.0, f64::NAN] {
            assert!(b().jitter(jitter).build().is_err(), "jitter {jitter}");
        }
        for m in [0.5, f64::INFINITY, f64::NAN] {
            assert!(b().backoff_multiplier(m).build().is_err(), "multiplier {m}");
        }
        let e = b().jitter(2.0).build().unwrap_err();
        assert_eq!(e.to_string(), "jitter must be in [0, 1), got 2");
    }
}
