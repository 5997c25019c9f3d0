//! [`ConfigError`]: one variant per broken rule, carrying the values that broke it.

use std::fmt;
use std::time::Duration;

/// A broken configuration rule, with the values that broke it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `min_limit` is 0: the throttle could shut a service off entirely.
    ZeroMinLimit,
    /// The limits are not ordered `min ≤ initial ≤ max`.
    LimitsOutOfOrder {
        /// `min_limit`.
        min: u32,
        /// `initial_limit`.
        initial: u32,
        /// `max_limit`.
        max: u32,
    },
    /// `sla_critical` is not above `sla_warning`.
    SlaOutOfOrder {
        /// `sla_warning`.
        warning: Duration,
        /// `sla_critical`.
        critical: Duration,
    },
    /// A cut ratio is outside `(0, 1)`.
    RatioOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The setting.
        name: &'static str,
    },
    /// `smoothing_factor` is outside `(0, 1]`.
    SmoothingOutOfRange {
        /// Its value.
        value: f64,
    },
    /// `gradient_down_threshold` is not below `gradient_up_threshold`.
    GradientThresholdsOutOfOrder {
        /// `gradient_down_threshold`.
        down: f64,
        /// `gradient_up_threshold`.
        up: f64,
    },
    /// `increase_step` is 0: the limit could never grow.
    ZeroIncreaseStep,
    /// No recovery stages.
    EmptyRecoveryStages,
    /// Recovery stages not strictly increasing within `(0, 1]`.
    InvalidRecoveryStages {
        /// The stages given.
        stages: Vec<f64>,
    },
    /// A fraction is outside its range.
    FractionOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The time-bucketed signal needs a window of at least two one-second buckets.
    SignalWindowTooShort {
        /// The window given.
        window: Duration,
    },
    /// Sliding-window sub-buckets must be between 1 and the window in milliseconds (≤ 100 000).
    InvalidWindowBuckets {
        /// The buckets given.
        buckets: u32,
        /// The window.
        window: Duration,
    },
    /// A capacity that must be positive is zero.
    ZeroCapacity {
        /// The setting.
        name: &'static str,
    },
    /// A count or capacity is above the largest the throttle accepts (it would allocate
    /// without a useful bound).
    TooLarge {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The concurrency limits are not ordered `1 ≤ min ≤ initial ≤ max`.
    ConcurrencyLimitsOutOfOrder {
        /// Concurrency `min_limit`.
        min: u32,
        /// Concurrency `initial_limit`.
        initial: u32,
        /// Concurrency `max_limit`.
        max: u32,
    },
    /// A concurrency-algorithm value is outside its range.
    ConcurrencyValueOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        range: &'static str,
    },
    /// A parameter of the capacity estimate is outside its range.
    CapacityValueOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        range: &'static str,
    },
    /// The concurrency aggregation window's bounds are inverted.
    ConcurrencyWindowsOutOfOrder {
        /// `min_window`.
        min_window: Duration,
        /// `max_window`.
        max_window: Duration,
    },
    /// The cost unit is empty, longer than 32 bytes, or has a byte outside `a-z`, `0-9`, `-`,
    /// `_`.
    InvalidCostUnit {
        /// The unit given (at most 64 characters of it).
        unit: String,
    },
    /// Tier shares must each be in `(0, 1]` and not increase from critical to non-essential.
    InvalidTierShares {
        /// Critical share.
        critical: f64,
        /// Standard share.
        standard: f64,
        /// Non-essential share.
        non_essential: f64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMinLimit => write!(f, "min_limit must be at least 1, got 0"),
            Self::LimitsOutOfOrder { min, initial, max } => write!(
                f,
                "limits must satisfy min_limit <= initial_limit <= max_limit, got min_limit={min}, initial_limit={initial}, max_limit={max}"
            ),
            Self::SlaOutOfOrder { warning, critical } => write!(
                f,
                "sla_critical must exceed sla_warning, got sla_warning={warning:?}, sla_critical={critical:?}"
            ),
            Self::RatioOutOfRange { name, value } => {
                write!(f, "{name} must be in (0, 1), got {value}")
            }
            Self::ZeroDuration { name } => write!(f, "{name} must be at least 1 ms, got 0"),
            Self::SmoothingOutOfRange { value } => {
                write!(f, "smoothing_factor must be in (0, 1], got {value}")
            }
            Self::GradientThresholdsOutOfOrder { down, up } => write!(
                f,
                "gradient_down_threshold must be below gradient_up_threshold, got gradient_down_threshold={down}, gradient_up_threshold={up}"
            ),
            Self::ZeroIncreaseStep => write!(f, "increase_step must be at least 1, got 0"),
            Self::EmptyRecoveryStages => write!(f, "recovery_stages must not be empty"),
            Self::InvalidRecoveryStages { stages } => write!(
                f,
                "recovery_stages must be strictly increasing and each in (0, 1], got {stages:?}"
            ),
            Self::FractionOutOfRange { name, value } => {
                write!(f, "{name} must be in its range (0, 1], got {value}")
            }
            Self::SignalWindowTooShort { window } => write!(
                f,
                "the time-bucketed signal window must be at least 2 s, got {window:?}"
            ),
            Self::InvalidWindowBuckets { buckets, window } => write!(
                f,
                "sliding-window buckets must be between 1 and min(window in ms, 100000), got buckets={buckets} for window={window:?}"
            ),
            Self::ZeroCapacity { name } => write!(f, "{name} must be at least 1, got 0"),
            Self::TooLarge { name, value, max } => {
                write!(f, "{name} must be at most {max}, got {value}")
            }
            Self::ConcurrencyLimitsOutOfOrder { min, initial, max } => write!(
                f,
                "concurrency limits must satisfy 1 <= min_limit <= initial_limit <= max_limit, got min_limit={min}, initial_limit={initial}, max_limit={max}"
            ),
            Self::ConcurrencyValueOutOfRange { name, value, range } => {
                write!(f, "concurrency {name} must be in {range}, got {value}")
            }
            Self::CapacityValueOutOfRange { name, value, range } => {
                write!(f, "capacity estimate {name} must be in {range}, got {value}")
            }
            Self::ConcurrencyWindowsOutOfOrder {
                min_window,
                max_window,
            } => write!(
                f,
                "concurrency max_window must be at least min_window, got min_window={min_window:?}, max_window={max_window:?}"
            ),
            Self::InvalidCostUnit { unit } => write!(
                f,
                "cost.unit must be 1 to 32 of a-z, 0-9, '-', '_', got {unit:?}"
            ),
            Self::InvalidTierShares {
                critical,
                standard,
                non_essential,
            } => write!(
                f,
                "tier shares must be in (0, 1] with critical >= standard >= non_essential, got critical={critical}, standard={standard}, non_essential={non_essential}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
