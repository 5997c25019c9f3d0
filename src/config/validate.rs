//! The rules `build()` enforces.

use std::time::Duration;

use super::{
    Adaptation, ConfigError, IncreaseSizing, RateStrategy, SignalKind, SlaTrigger, ThrottleConfig,
    TrendEstimator, MAX_EVENT_CAPACITY,
};

impl ThrottleConfig {
    /// Checks every rule `build()` enforces.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`] carrying the offending values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.min_limit == 0 {
            return Err(E::ZeroMinLimit);
        }
        if !(self.min_limit <= self.initial_limit && self.initial_limit <= self.max_limit) {
            return Err(E::LimitsOutOfOrder {
                min: self.min_limit,
                initial: self.initial_limit,
                max: self.max_limit,
            });
        }
        if self.sla_critical <= self.sla_warning {
            return Err(E::SlaOutOfOrder {
                warning: self.sla_warning,
                critical: self.sla_critical,
            });
        }
        for (name, value) in [
            ("decrease_ratio", self.decrease_ratio),
            ("critical_decrease_ratio", self.critical_decrease_ratio),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(E::RatioOutOfRange { name, value });
            }
        }
        if self.window.as_millis() == 0 {
            return Err(E::ZeroDuration { name: "window" });
        }
        if self.sample_interval.is_zero() {
            return Err(E::ZeroDuration {
                name: "sample_interval",
            });
        }
        if self.recovery_stage_interval.is_zero() {
            return Err(E::ZeroDuration {
                name: "recovery_stage_interval",
            });
        }
        if !(self.smoothing_factor > 0.0 && self.smoothing_factor <= 1.0) {
            return Err(E::SmoothingOutOfRange {
                value: self.smoothing_factor,
            });
        }
        let ordered = self.gradient_down_threshold < self.gradient_up_threshold;
        if !ordered
            || !self.gradient_down_threshold.is_finite()
            || !self.gradient_up_threshold.is_finite()
        {
            return Err(E::GradientThresholdsOutOfOrder {
                down: self.gradient_down_threshold,
                up: self.gradient_up_threshold,
            });
        }
        if self.increase_step == 0 {
            return Err(E::ZeroIncreaseStep);
        }
        if self.recovery_stages.is_empty() {
            return Err(E::EmptyRecoveryStages);
        }
        let stages_ok = self.recovery_stages.iter().all(|s| *s > 0.0 && *s <= 1.0)
            && self.recovery_stages.windows(2).all(|w| w[0] < w[1]);
        if !stages_ok {
            return Err(E::InvalidRecoveryStages {
                stages: self.recovery_stages.clone(),
            });
        }
        if let SlaTrigger::IntervalPercentile(q) = self.sla_trigger {
            if !(q > 0.0 && q <= 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "sla_trigger percentile",
                    value: q,
                });
            }
        }
        if let TrendEstimator::LongShortBaseline { long_smoothing } = self.trend {
            if !(long_smoothing > 0.0 && long_smoothing < 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "long_smoothing",
                    value: long_smoothing,
                });
            }
        }
        if let TrendEstimator::NoLoadBaseline { rise_per_interval } = self.trend {
            if !(0.0..1.0).contains(&rise_per_interval) {
                return Err(E::FractionOutOfRange {
                    name: "rise_per_interval",
                    value: rise_per_interval,
                });
            }
        }
        if let IncreaseSizing::Proportional(f) = self.increase_sizing {
            if !(f > 0.0 && f <= 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "proportional increase",
                    value: f,
                });
            }
        }
        if let SignalKind::TimeBucketed { window } = self.signal {
            if window < Duration::from_secs(2) {
                return Err(E::SignalWindowTooShort { window });
            }
        }
        match self.rate_strategy {
            RateStrategy::SlidingWindow { buckets } => {
                let window_ms = self.window.as_millis();
                if buckets == 0 || u128::from(buckets) > window_ms || buckets > 100_000 {
                    return Err(E::InvalidWindowBuckets {
                        buckets,
                        window: self.window,
                    });
                }
            }
            RateStrategy::Gcra { burst_fraction } => {
                if !(burst_fraction > 0.0 && burst_fraction <= 1.0) {
                    return Err(E::FractionOutOfRange {
                        name: "burst_fraction",
                        value: burst_fraction,
                    });
                }
            }
            RateStrategy::SlidingWindowLog
            | RateStrategy::FixedWindow
            | RateStrategy::TokenBucket => {}
        }
        if self.max_keys == 0 {
            return Err(E::ZeroCapacity { name: "max_keys" });
        }
        if self.event_capacity == 0 {
            return Err(E::ZeroCapacity {
                name: "event_capacity",
            });
        }
        if self.event_capacity > MAX_EVENT_CAPACITY {
            return Err(E::TooLarge {
                name: "event_capacity",
                value: self.event_capacity as u64,
                max: MAX_EVENT_CAPACITY as u64,
            });
        }
        if let Adaptation::CapacityEstimate(c) = &self.adaptation {
            c.validate()?;
        }
        self.key_quota.validate()?;
        if let Some(c) = &self.concurrency {
            c.validate()?;
        }
        if let Some(c) = &self.cost {
            c.validate()?;
        }
        Ok(())
    }
}
