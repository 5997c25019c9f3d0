//! [`ReplayHealth`]: the throttle's health as the replayer sees it, and [`StopReason`], why a
//! run ended or did not start.

use crate::governance::BreakerState;
use crate::AdaptiveThrottle;

/// The throttle's health as the replayer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayHealth {
    /// The throttle's current limit.
    pub current_limit: u32,
    /// Its configured initial limit.
    pub initial_limit: u32,
    /// The breaker state.
    pub breaker: BreakerState,
    /// Full stop active.
    pub full_stop: bool,
    /// Emergency level (0–3).
    pub emergency_level: u8,
}

impl ReplayHealth {
    /// Reads `throttle`.
    pub fn of(throttle: &AdaptiveThrottle) -> Self {
        let governance = throttle.governance().state();
        Self {
            current_limit: throttle.current_limit(),
            initial_limit: throttle.config().initial_limit(),
            breaker: governance.breaker,
            full_stop: governance.full_stop,
            emergency_level: governance.emergency_level,
        }
    }

    /// `current_limit / initial_limit`.
    pub fn ratio(&self) -> f64 {
        f64::from(self.current_limit) / f64::from(self.initial_limit.max(1))
    }

    /// The ratio as a whole percentage (rounded down).
    pub fn recovery_percent(&self) -> u32 {
        (self.ratio() * 100.0).floor() as u32
    }

    /// Why replay must not run now, or `None` when it may. Replay runs only with the breaker
    /// closed (a half-open breaker is still probing), no full stop, no emergency (BAL-038:
    /// "emergency > 0" is unhealthy; an operator shedding load does not want parked work back)
    /// and `ratio() >= min_recovery`.
    pub fn blocker(&self, min_recovery: f64) -> Option<StopReason> {
        if self.full_stop {
            Some(StopReason::FullStop)
        } else if self.breaker != BreakerState::Closed {
            Some(StopReason::BreakerNotClosed(self.breaker))
        } else if self.emergency_level > 0 {
            Some(StopReason::Emergency(self.emergency_level))
        } else if self.ratio() < min_recovery {
            Some(StopReason::LimitBelowRecovery {
                percent: self.recovery_percent(),
            })
        } else {
            None
        }
    }
}

/// Why a replay run ended (or did not start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Nothing left to hand out.
    Drained,
    /// The breaker is open or half-open.
    BreakerNotClosed(BreakerState),
    /// Full stop.
    FullStop,
    /// An emergency level is set.
    Emergency(u8),
    /// The limit is below `min_recovery` of the initial limit.
    LimitBelowRecovery {
        /// The current limit as a percentage of the initial limit.
        percent: u32,
    },
}

impl StopReason {
    /// True unless the queue was drained: the throttle's health stopped the run.
    pub fn is_unhealthy(&self) -> bool {
        !matches!(self, Self::Drained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_blocks_on_breaker_full_stop_emergency_and_low_limit() {
        let healthy = ReplayHealth {
            current_limit: 50,
            initial_limit: 100,
            breaker: BreakerState::Closed,
            full_stop: false,
            emergency_level: 0,
        };
        assert_eq!(healthy.blocker(0.5), None);
        let low = ReplayHealth {
            current_limit: 49,
            ..healthy
        };
        assert_eq!(
            low.blocker(0.5),
            Some(StopReason::LimitBelowRecovery { percent: 49 })
        );
        let half_open = ReplayHealth {
            breaker: BreakerState::HalfOpen,
            ..healthy
        };
        assert_eq!(
            half_open.blocker(0.5),
            Some(StopReason::BreakerNotClosed(BreakerState::HalfOpen))
        );
        let stopped = ReplayHealth {
            full_stop: true,
            ..healthy
        };
        assert_eq!(stopped.blocker(0.5), Some(StopReason::FullStop));
        let emergency = ReplayHealth {
            emergency_level: 1,
            ..healthy
        };
        assert_eq!(emergency.blocker(0.5), Some(StopReason::Emergency(1)));
    }
}
