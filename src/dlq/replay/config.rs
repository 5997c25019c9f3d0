//! [`ReplayConfig`]: batch size, pacing ([`pace_multiplier`]), the recovery threshold, the
//! replay header and the optional polling interval.

use std::time::Duration;

use http::header::HeaderName;

use crate::dlq::capture::DEFAULT_REPLAY_HEADER;
use crate::dlq::DlqConfigError;

/// Entries sent per batch (Baldur's `replay_batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 10;
/// Pause between two batches at full capacity (Baldur's `replay_interval_ms`); slowed by
/// [`pace_multiplier`] as capacity falls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Fraction of the initial limit the current limit must reach for replay to run (Baldur's
/// `replay_min_recovery_percent`, 50 %).
pub const DEFAULT_MIN_RECOVERY: f64 = 0.5;

/// Baldur's pacing table: the factor applied to the interval between batches for a capacity
/// ratio `current_limit / initial_limit`.
///
/// | ratio | factor |
/// |---|---|
/// | ≥ 0.9 | ×1 |
/// | ≥ 0.7 | ×2 |
/// | ≥ 0.5 | ×4 |
/// | otherwise | ×10 |
pub fn pace_multiplier(ratio: f64) -> u32 {
    if ratio >= 0.9 {
        1
    } else if ratio >= 0.7 {
        2
    } else if ratio >= 0.5 {
        4
    } else {
        10
    }
}

/// Settings of a [`Replayer`](super::Replayer).
///
/// # Default
///
/// `batch_size` [`DEFAULT_BATCH_SIZE`] (10), `interval` [`DEFAULT_INTERVAL`] (100 ms),
/// `min_recovery` [`DEFAULT_MIN_RECOVERY`] (0.5), `replay_header`
/// [`DEFAULT_REPLAY_HEADER`](crate::dlq::DEFAULT_REPLAY_HEADER), no `poll_interval`.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    batch_size: usize,
    interval: Duration,
    min_recovery: f64,
    replay_header: HeaderName,
    poll_interval: Option<Duration>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            interval: DEFAULT_INTERVAL,
            min_recovery: DEFAULT_MIN_RECOVERY,
            replay_header: DEFAULT_REPLAY_HEADER,
            poll_interval: None,
        }
    }
}

impl ReplayConfig {
    /// A builder with the defaults.
    pub fn builder() -> ReplayConfigBuilder {
        ReplayConfigBuilder {
            config: Self::default(),
        }
    }

    /// Entries sent per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Pause between batches at full capacity.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Fraction of the initial limit needed to replay.
    pub fn min_recovery(&self) -> f64 {
        self.min_recovery
    }

    /// The header replayed requests carry.
    pub fn replay_header(&self) -> &HeaderName {
        &self.replay_header
    }

    /// How often automatic replay also looks for pending work without a trigger event.
    pub fn poll_interval(&self) -> Option<Duration> {
        self.poll_interval
    }
}

/// Builder of a [`ReplayConfig`]; consuming setters, everything checked in
/// [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplayConfigBuilder {
    config: ReplayConfig,
}

impl ReplayConfigBuilder {
    /// Entries sent per batch.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Pause between batches at full capacity (multiplied by [`pace_multiplier`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// Fraction of the initial limit the current limit must reach for a run to start and to
    /// go on, in `(0, 1]`.
    pub fn min_recovery(mut self, fraction: f64) -> Self {
        self.config.min_recovery = fraction;
        self
    }

    /// The header replayed requests carry; must match
    /// [`CaptureOptions::replay_header`](crate::dlq::CaptureOptions::replay_header).
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        self.config.replay_header = name;
        self
    }

    /// Automatic replay also checks for pending work this often, so requests rejected while
    /// the throttle stays healthy (a key over its share, say) are replayed without waiting for
    /// a recovery event. Off by default, as in Baldur.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = Some(every);
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`DlqConfigError::Zero`] for a zero `batch_size`, `interval` or `poll_interval`;
    /// [`DlqConfigError::MinRecoveryOutOfRange`] when `min_recovery` is not in `(0, 1]`.
    pub fn build(self) -> Result<ReplayConfig, DlqConfigError> {
        let c = self.config;
        if c.batch_size == 0 {
            return Err(DlqConfigError::Zero {
                setting: "batch_size",
            });
        }
        if c.interval.is_zero() {
            return Err(DlqConfigError::Zero {
                setting: "interval",
            });
        }
        if c.poll_interval.is_some_and(|p| p.is_zero()) {
            return Err(DlqConfigError::Zero {
                setting: "poll_interval",
            });
        }
        if !(c.min_recovery > 0.0 && c.min_recovery <= 1.0) {
            return Err(DlqConfigError::MinRecoveryOutOfRange {
                value: c.min_recovery,
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_follows_baldurs_table() {
        for (ratio, factor) in [
            (1.2, 1),
            (1.0, 1),
            (0.9, 1),
            (0.89, 2),
            (0.7, 2),
            (0.69, 4),
            (0.5, 4),
            (0.49, 10),
            (0.0, 10),
        ] {
            assert_eq!(pace_multiplier(ratio), factor, "ratio {ratio}");
        }
    }

    #[test]
    fn replay_config_refuses_bad_values_by_name() {
        assert_eq!(
            ReplayConfig::builder().batch_size(0).build().unwrap_err(),
            DlqConfigError::Zero {
                setting: "batch_size"
            }
        );
        assert!(ReplayConfig::builder()
            .interval(Duration::ZERO)
            .build()
            .is_err());
        assert!(ReplayConfig::builder()
            .poll_interval(Duration::ZERO)
            .build()
            .is_err());
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let err = ReplayConfig::builder()
                .min_recovery(bad)
                .build()
                .unwrap_err();
            assert!(matches!(err, DlqConfigError::MinRecoveryOutOfRange { .. }));
        }
        assert!(ReplayConfig::builder().min_recovery(1.0).build().is_ok());
    }
}
