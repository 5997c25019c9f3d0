//! The adjustment ladder: a pure function from (limit, latency, trend) to the next limit.

use std::time::Duration;

use crate::config::{IncreaseSizing, ThrottleConfig};
use crate::events::ChangeReason;

/// What the ladder sees on one adjustment tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LadderInput {
    /// The latency statistic for the SLA rules (the triggering sample, or a percentile).
    pub(crate) rtt: Duration,
    /// The latency trend for the gradient rules.
    pub(crate) gradient: f64,
}

/// The ladder's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Adjustment {
    /// The next limit, clamped to the bounds.
    pub(crate) limit: u32,
    /// Which rule matched; `None` in the dead band.
    pub(crate) reason: Option<ChangeReason>,
}

/// Applies the first matching rule of the ladder to `current`:
///
/// 1. `rtt ≥ sla_critical` → `floor(limit × critical_decrease_ratio)`
/// 2. `rtt ≥ sla_warning` → `floor(limit × decrease_ratio)`
/// 3. `gradient > gradient_up_threshold` → `floor(limit × decrease_ratio)`
/// 4. `gradient < gradient_down_threshold` → `limit + increase` (step or proportional)
/// 5. otherwise hold.
///
/// The result is clamped to `[min_limit, max_limit]`.
pub(super) fn next_limit(current: u32, input: LadderInput, cfg: &ThrottleConfig) -> Adjustment {
    let cut = |ratio: f64| (f64::from(current) * ratio).floor() as u64;
    let (raw, reason) = if input.rtt >= cfg.sla_critical {
        (
            cut(cfg.critical_decrease_ratio),
            Some(ChangeReason::SlaCritical),
        )
    } else if input.rtt >= cfg.sla_warning {
        (cut(cfg.decrease_ratio), Some(ChangeReason::SlaWarning))
    } else if input.gradient > cfg.gradient_up_threshold {
        (cut(cfg.decrease_ratio), Some(ChangeReason::LatencyRising))
    } else if input.gradient < cfg.gradient_down_threshold {
        let step = u64::from(cfg.increase_step);
        let increase = match cfg.increase_sizing {
            IncreaseSizing::Step => step,
            IncreaseSizing::Proportional(fraction) => {
                step.max((f64::from(current) * fraction).ceil() as u64)
            }
        };
        (
            u64::from(current).saturating_add(increase),
            Some(ChangeReason::Headroom),
        )
    } else {
        (u64::from(current), None)
    };
    Adjustment {
        limit: cfg.clamp(raw),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rtt_ms: u64, gradient: f64) -> LadderInput {
        LadderInput {
            rtt: Duration::from_millis(rtt_ms),
            gradient,
        }
    }

    #[test]
    fn a_critical_latency_cuts_by_the_critical_ratio() {
        let cfg = ThrottleConfig::baldur();
        let slow = LadderInput {
            rtt: Duration::from_millis(600),
            gradient: 0.0,
        };
        assert_eq!(next_limit(100, slow, &cfg).limit, 70);
    }

    /// (current, rtt ms, gradient) → (next, reason), with `ThrottleConfig::baldur()`.
    #[test]
    fn baldur_ladder_table() {
        use ChangeReason::*;
        let cfg = ThrottleConfig::baldur();
        let table: &[(u32, u64, f64, u32, Option<ChangeReason>)] = &[
            // rule 1: critical wins over everything, even a falling trend
            (100, 600, -0.5, 70, Some(SlaCritical)),
            (100, 500, 0.0, 70, Some(SlaCritical)),
            // rule 2: warning, inclusive threshold
            (70, 250, 0.0, 63, Some(SlaWarning)),
            (100, 200, -0.9, 90, Some(SlaWarning)),
            (100, 499, 0.9, 90, Some(SlaWarning)),
            // rule 3: rising trend, strict threshold
            (100, 50, 0.11, 90, Some(LatencyRising)),
            (100, 50, 0.1, 100, None),
            // rule 4: falling trend, strict threshold
            (100, 50, -0.06, 101, Some(Headroom)),
            (100, 50, -0.05, 100, None),
            // rule 5: dead band
            (100, 199, 0.0, 100, None),
            // clamps
            (11, 600, 0.0, 10, Some(SlaCritical)),
            (10, 600, 0.0, 10, Some(SlaCritical)),
            (500, 50, -0.5, 500, Some(Headroom)),
            // floor of the product
            (99, 250, 0.0, 89, Some(SlaWarning)),
            (99, 600, 0.0, 69, Some(SlaCritical)),
        ];
        for &(current, rtt, g, next, reason) in table {
            let got = next_limit(current, input(rtt, g), &cfg);
            assert_eq!(
                got,
                Adjustment {
                    limit: next,
                    reason
                },
                "limit {current}, rtt {rtt} ms, gradient {g}"
            );
        }
    }

    #[test]
    fn proportional_increase_is_at_least_the_step() {
        let cfg = ThrottleConfig::builder()
            .increase_sizing(IncreaseSizing::Proportional(0.05))
            .increase_step(2)
            .build()
            .unwrap();
        assert_eq!(next_limit(200, input(10, -0.2), &cfg).limit, 210);
        assert_eq!(next_limit(20, input(10, -0.2), &cfg).limit, 22);
        assert_eq!(next_limit(101, input(10, -0.2), &cfg).limit, 107); // ceil(5.05)
    }

    #[test]
    fn every_constant_is_honoured() {
        let cfg = ThrottleConfig::baldur_builder()
            .sla_warning(Duration::from_millis(100))
            .sla_critical(Duration::from_millis(300))
            .decrease_ratio(0.5)
            .critical_decrease_ratio(0.25)
            .gradient_up_threshold(0.5)
            .gradient_down_threshold(-0.5)
            .increase_step(7)
            .build()
            .unwrap();
        assert_eq!(next_limit(100, input(300, 0.0), &cfg).limit, 25);
        assert_eq!(next_limit(100, input(100, 0.0), &cfg).limit, 50);
        assert_eq!(next_limit(100, input(10, 0.4), &cfg).limit, 100);
        assert_eq!(next_limit(100, input(10, 0.6), &cfg).limit, 50);
        assert_eq!(next_limit(100, input(10, -0.4), &cfg).limit, 100);
        assert_eq!(next_limit(100, input(10, -0.6), &cfg).limit, 107);
    }
}
