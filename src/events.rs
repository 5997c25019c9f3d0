//! Events: every change of the limit and every state transition, published on the throttle's
//! broadcast channel ([`AdaptiveThrottle::subscribe`](crate::AdaptiveThrottle::subscribe)).
//!
//! No event is sent per request; per-request facts are counters in
//! [`ThrottleStats`](crate::ThrottleStats).

use std::time::Duration;

use crate::governance::{BreakerState, ErrorBudget};

/// Why the limit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ChangeReason {
    /// Latency at or above `sla_critical`: cut by `critical_decrease_ratio`.
    SlaCritical,
    /// Latency at or above `sla_warning`: cut by `decrease_ratio`.
    SlaWarning,
    /// Latency rising: the ladder's trend above `gradient_up_threshold` (cut by
    /// `decrease_ratio`), or the capacity estimate reading queueing (cut towards the delivered
    /// rate).
    LatencyRising,
    /// Latency at its floor: the ladder's trend below `gradient_down_threshold`, or the capacity
    /// estimate growing a limit that binds (or one too close to what is delivered).
    Headroom,
    /// The capacity estimate moved without a latency signal of its own: it followed the
    /// in-flight limit, came down towards what is used, or re-measured its baseline.
    CapacityEstimate,
    /// A recovery ramp stage landed.
    RampStage,
    /// The recovery ramp ended and a deferred increase was applied.
    RampCompleted,
    /// A new configuration moved the bounds.
    ConfigSwap,
    /// `rollback_to_base_limit` was called.
    Rollback,
    /// `reset_all` was called.
    Reset,
    /// An emergency level started, changed or ended.
    Emergency,
    /// Upstream 429s started, escalated or ended.
    Upstream429,
    /// The error budget changed.
    ErrorBudget,
    /// Load shedding changed.
    LoadShedding,
    /// A circuit breaker changed state.
    CircuitBreaker,
    /// Break glass was used.
    BreakGlass,
    /// The fleet's shared limit moved (another instance changed it, or a cold start loaded it).
    Fleet,
}

impl ChangeReason {
    /// Every reason.
    pub const ALL: [ChangeReason; 17] = [
        Self::SlaCritical,
        Self::SlaWarning,
        Self::LatencyRising,
        Self::Headroom,
        Self::CapacityEstimate,
        Self::RampStage,
        Self::RampCompleted,
        Self::ConfigSwap,
        Self::Rollback,
        Self::Reset,
        Self::Emergency,
        Self::Upstream429,
        Self::ErrorBudget,
        Self::LoadShedding,
        Self::CircuitBreaker,
        Self::BreakGlass,
        Self::Fleet,
    ];

    /// The snake_case name used in events, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SlaCritical => "sla_critical",
            Self::SlaWarning => "sla_warning",
            Self::LatencyRising => "latency_rising",
            Self::Headroom => "headroom",
            Self::CapacityEstimate => "capacity_estimate",
            Self::RampStage => "ramp_stage",
            Self::RampCompleted => "ramp_completed",
            Self::ConfigSwap => "config_swap",
            Self::Rollback => "rollback",
            Self::Reset => "reset",
            Self::Emergency => "emergency",
            Self::Upstream429 => "upstream_429",
            Self::ErrorBudget => "error_budget",
            Self::LoadShedding => "load_shedding",
            Self::CircuitBreaker => "circuit_breaker",
            Self::BreakGlass => "break_glass",
            Self::Fleet => "fleet",
        }
    }

    /// True for the reasons the adaptive loop produces (as opposed to operator actions).
    pub const fn is_adaptive(self) -> bool {
        matches!(
            self,
            Self::SlaCritical
                | Self::SlaWarning
                | Self::LatencyRising
                | Self::Headroom
                | Self::CapacityEstimate
        )
    }
}

impl std::fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the limit is frozen. Reasons are independent: the limit moves again only when all are
/// clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FreezeReason {
    /// The kill switch is on.
    KillSwitch,
    /// Emergency level 3.
    Emergency,
    /// An operator froze the limit.
    Operator,
}

impl FreezeReason {
    pub(crate) const ALL: [FreezeReason; 3] = [Self::KillSwitch, Self::Emergency, Self::Operator];

    pub(crate) const fn bit(self) -> u8 {
        match self {
            Self::KillSwitch => 1,
            Self::Emergency => 2,
            Self::Operator => 4,
        }
    }

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KillSwitch => "kill_switch",
            Self::Emergency => "emergency",
            Self::Operator => "operator",
        }
    }
}

/// One change of the limit, with what triggered it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LimitChange {
    /// Clock time of the change.
    pub at: Duration,
    /// Limit before.
    pub previous: u32,
    /// Limit after.
    pub new: u32,
    /// Why.
    pub reason: ChangeReason,
    /// The latency statistic the ladder saw, when the ladder made the change.
    pub rtt: Option<Duration>,
    /// The trend the ladder saw (with the capacity estimate: mean latency ÷ its floor − 1).
    pub gradient: f64,
    /// With the capacity estimate: the completions per second it measured.
    pub delivered_per_sec: Option<f64>,
    /// With the capacity estimate: the no-load latency it compares against.
    pub baseline_rtt: Option<Duration>,
}

/// Something that happened to a throttle.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ThrottleEvent {
    /// The limit changed.
    LimitChanged(LimitChange),
    /// An adjustment saw latency at or above `sla_warning` (and below `sla_critical`).
    SlaWarning {
        /// Clock time.
        at: Duration,
        /// The latency statistic.
        rtt: Duration,
        /// The threshold crossed.
        threshold: Duration,
    },
    /// An adjustment saw latency at or above `sla_critical`.
    SlaCritical {
        /// Clock time.
        at: Duration,
        /// The latency statistic.
        rtt: Duration,
        /// The threshold crossed.
        threshold: Duration,
    },
    /// The limit rose from its floor.
    LimitRecovered {
        /// Clock time.
        at: Duration,
        /// Limit before (at or below the floor).
        previous: u32,
        /// Limit after.
        new: u32,
        /// The latency that allowed it.
        rtt: Option<Duration>,
    },
    /// A freeze reason was set.
    Frozen {
        /// Clock time.
        at: Duration,
        /// The reason set.
        reason: FreezeReason,
    },
    /// A freeze reason was cleared.
    Unfrozen {
        /// Clock time.
        at: Duration,
        /// The reason cleared.
        reason: FreezeReason,
        /// True when no reason remains, so the limit moves again.
        all_clear: bool,
    },
    /// A recovery ramp started towards `base`.
    RampStarted {
        /// Clock time.
        at: Duration,
        /// The pre-incident base the ramp climbs to.
        base: u32,
    },
    /// A ramp stage landed.
    RampStage {
        /// Clock time.
        at: Duration,
        /// Stage index (0 = first).
        stage: usize,
        /// Fraction of the base.
        fraction: f64,
        /// The stage's limit.
        limit: u32,
    },
    /// The ramp ended.
    RampCompleted {
        /// Clock time.
        at: Duration,
        /// The limit at the end.
        limit: u32,
    },
    /// A circuit breaker changed state.
    BreakerStateChanged {
        /// Clock time.
        at: Duration,
        /// State before.
        from: BreakerState,
        /// State after.
        to: BreakerState,
    },
    /// The emergency level changed.
    EmergencyLevelChanged {
        /// Clock time.
        at: Duration,
        /// Level before.
        from: u8,
        /// Level after.
        to: u8,
    },
    /// The error budget changed.
    ErrorBudgetChanged {
        /// Clock time.
        at: Duration,
        /// State before.
        from: ErrorBudget,
        /// State after.
        to: ErrorBudget,
    },
    /// Load shedding changed.
    LoadSheddingChanged {
        /// Clock time.
        at: Duration,
        /// Traffic percent, `None` when off.
        traffic_percent: Option<u8>,
    },
    /// An upstream answered 429.
    Upstream429 {
        /// Clock time.
        at: Duration,
        /// Consecutive 429s.
        consecutive: u32,
    },
    /// The upstream cooldown ended.
    CooldownEnded {
        /// Clock time.
        at: Duration,
    },
    /// Full stop: everything is rejected until break glass.
    FullStop {
        /// Clock time.
        at: Duration,
    },
    /// Break glass was used.
    BreakGlass {
        /// Clock time.
        at: Duration,
        /// Whether a full stop was released.
        full_stop_released: bool,
    },
    /// The configuration was replaced.
    ConfigSwapped {
        /// Clock time.
        at: Duration,
    },
    /// Counters, samples, keys and governance were reset.
    Reset {
        /// Clock time.
        at: Duration,
    },
    /// The throttle was disabled (pass-through) or enabled again.
    EnabledChanged {
        /// Clock time.
        at: Duration,
        /// Whether it now limits.
        enabled: bool,
    },
    /// Fleet mode: the store stopped answering (admission follows the store fallback) or
    /// answers again.
    StoreHealthChanged {
        /// Clock time.
        at: Duration,
        /// The store's health now.
        health: crate::store::StoreHealth,
        /// The last error, when it degraded.
        error: Option<String>,
    },
    /// Fleet mode: an operator change made on this instance was stored as the fleet's
    /// operator state `version`, for every instance to apply.
    FleetOpsWritten {
        /// Clock time.
        at: Duration,
        /// The version stored.
        version: u64,
        /// The operator who made the change (`api` when no actor was named).
        actor: String,
        /// The instance it was made on (this one).
        instance: String,
        /// What was changed (`kill_switch`, `emergency`, `config`, …).
        action: String,
    },
    /// Fleet mode: this instance applied the fleet's operator state `version`.
    FleetOpsApplied {
        /// Clock time.
        at: Duration,
        /// The version applied.
        version: u64,
        /// The operator who made the change.
        actor: String,
        /// The instance the change was made on.
        instance: String,
        /// What was changed there.
        action: String,
        /// This instance, which applied it.
        applied_by: String,
    },
    /// Fleet mode: an operator change made on this instance lost to one stored first that
    /// changed the same settings (the stored state wins; changes to other settings were kept).
    FleetOpsConflict {
        /// Clock time.
        at: Duration,
        /// The version that won.
        version: u64,
        /// The settings this instance's change lost on, comma-separated.
        settings: String,
        /// The operator whose change won.
        actor: String,
        /// The instance it was made on.
        instance: String,
    },
}

impl ThrottleEvent {
    /// The snake_case kind of the event.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::LimitChanged(_) => "limit_changed",
            Self::SlaWarning { .. } => "sla_warning",
            Self::SlaCritical { .. } => "sla_critical",
            Self::LimitRecovered { .. } => "limit_recovered",
            Self::Frozen { .. } => "frozen",
            Self::Unfrozen { .. } => "unfrozen",
            Self::RampStarted { .. } => "ramp_started",
            Self::RampStage { .. } => "ramp_stage",
            Self::RampCompleted { .. } => "ramp_completed",
            Self::BreakerStateChanged { .. } => "breaker_state_changed",
            Self::EmergencyLevelChanged { .. } => "emergency_level_changed",
            Self::ErrorBudgetChanged { .. } => "error_budget_changed",
            Self::LoadSheddingChanged { .. } => "load_shedding_changed",
            Self::Upstream429 { .. } => "upstream_429",
            Self::CooldownEnded { .. } => "cooldown_ended",
            Self::FullStop { .. } => "full_stop",
            Self::BreakGlass { .. } => "break_glass",
            Self::ConfigSwapped { .. } => "config_swapped",
            Self::Reset { .. } => "reset",
            Self::EnabledChanged { .. } => "enabled_changed",
            Self::StoreHealthChanged { .. } => "store_health_changed",
            Self::FleetOpsWritten { .. } => "fleet_ops_written",
            Self::FleetOpsApplied { .. } => "fleet_ops_applied",
            Self::FleetOpsConflict { .. } => "fleet_ops_conflict",
        }
    }
}
