//! [`CostConfig`]: the optional cost section of a [`ThrottleConfig`](crate::ThrottleConfig).

use std::time::Duration;

use super::ConfigError;

/// Recommended cost window: budgets of metered APIs are usually per minute.
pub const DEFAULT_COST_WINDOW: Duration = Duration::from_secs(60);
/// The default unit of a cost budget, as written in `RateLimit-Policy` (`qu="tokens"`).
pub const DEFAULT_COST_UNIT: &str = "tokens";
/// The largest budget: `Decision::limit` and `remaining` are `u32`, so every integer a client
/// is told about the cost axis stays exact.
pub const MAX_COST_BUDGET: u64 = u32::MAX as u64;
/// The longest unit name (it is written into every `RateLimit-Policy` field of the axis).
pub const MAX_COST_UNIT_LEN: usize = 32;

/// The cost axis: a budget of `budget` units (tokens, credits, bytes) per key per
/// epoch-aligned `window`, metered with ThrottleKit's token budget
/// ([`TokenBudget`](crate::strategy::TokenBudget), TK-023).
///
/// A request **reserves** an estimate of its cost before it runs and **settles** its true
/// cost when it is known (after the response, often at the end of a streamed body): the
/// difference is refunded or charged. The reservation follows the meter's rule: refused once
/// the key's window is spent (`served ≥ budget`), otherwise admitted in full even when it
/// crosses the budget. So the units admitted per window stay within `budget + largest
/// reservation − 1`, whatever the concurrency; a settlement above its reservation is charged
/// after the fact and adds its shortfall.
///
/// Off unless configured ([`ThrottleConfigBuilder::cost`](crate::ThrottleConfigBuilder::cost)).
/// Like the concurrency axis, the section is fixed when a throttle is built.
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::{config::CostConfig, ThrottleConfig};
///
/// let cfg = ThrottleConfig::builder()
///     .cost(CostConfig::new(10_000).window(Duration::from_secs(60)).unit("tokens"))
///     .build()?;
/// assert_eq!(cfg.cost().unwrap().budget(), 10_000);
/// # Ok::<(), tower_adaptive_throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CostConfig {
    pub(crate) budget: u64,
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::config::duration_ms", rename = "window_ms")
    )]
    pub(crate) window: Duration,
    pub(crate) unit: String,
}

impl Default for CostConfig {
    /// A budget of 1, which is only useful as a starting point for deserialisation: set the
    /// budget.
    fn default() -> Self {
        Self::new(1)
    }
}

impl CostConfig {
    /// `budget` units per key per minute, in [`DEFAULT_COST_UNIT`].
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            window: DEFAULT_COST_WINDOW,
            unit: DEFAULT_COST_UNIT.to_owned(),
        }
    }

    /// The window the budget renews in (epoch-aligned; default 60 s).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The unit's name for `RateLimit-Policy` (`qu="…"`) and the console (default `tokens`):
    /// 1 to 32 of `a-z`, `0-9`, `-`, `_`.
    #[must_use]
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Units per key per window.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The window length.
    pub fn window_length(&self) -> Duration {
        self.window
    }

    /// The unit's name.
    pub fn unit_name(&self) -> &str {
        &self.unit
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.budget == 0 {
            return Err(ConfigError::ZeroCapacity {
                name: "cost.budget",
            });
        }
        if self.budget > MAX_COST_BUDGET {
            return Err(ConfigError::TooLarge {
                name: "cost.budget",
                value: self.budget,
                max: MAX_COST_BUDGET,
            });
        }
        if self.window.as_millis() == 0 {
            return Err(ConfigError::ZeroDuration {
                name: "cost.window",
            });
        }
        // Written verbatim into a structured-field string: no quoting or escaping needed.
        let ok = !self.unit.is_empty()
            && self.unit.len() <= MAX_COST_UNIT_LEN
            && self
                .unit
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(ConfigError::InvalidCostUnit {
                unit: self.unit.chars().take(64).collect(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_section_rejects_what_it_cannot_honour() {
        assert_eq!(
            CostConfig::new(0).validate(),
            Err(ConfigError::ZeroCapacity {
                name: "cost.budget"
            })
        );
        let e = CostConfig::new(MAX_COST_BUDGET + 1).validate().unwrap_err();
        assert!(e.to_string().contains("4294967296"), "{e}");
        let e = CostConfig::new(5)
            .window(Duration::from_micros(10))
            .validate()
            .unwrap_err();
        assert_eq!(e.to_string(), "cost.window must be at least 1 ms, got 0");
        for bad in ["", "Tokens", "to\"k", &"x".repeat(33)] {
            let e = CostConfig::new(5).unit(bad).validate().unwrap_err();
            assert!(matches!(e, ConfigError::InvalidCostUnit { .. }), "{bad}");
        }
        assert!(CostConfig::new(5).unit("usd-micros").validate().is_ok());
    }
}
