//! Logging through `tracing` when the feature is on; nothing otherwise.

use crate::events::ThrottleEvent;

#[cfg(feature = "tracing")]
pub(crate) fn event(event: &ThrottleEvent) {
    match event {
        ThrottleEvent::LimitChanged(c) => tracing::debug!(
            previous = c.previous,
            new = c.new,
            reason = c.reason.as_str(),
            rtt_ms = c.rtt.map(|d| d.as_secs_f64() * 1000.0),
            gradient = c.gradient,
            "throttle limit changed"
        ),
        other => tracing::debug!(kind = other.kind(), "throttle event"),
    }
}

#[cfg(not(feature = "tracing"))]
pub(crate) fn event(_event: &ThrottleEvent) {}

/// At most one `warn!` per period while requests are being rejected, with how many were.
#[derive(Debug, Default)]
pub(crate) struct OverloadWarning {
    #[cfg(feature = "tracing")]
    next_at_nanos: std::sync::atomic::AtomicU64,
    #[cfg(feature = "tracing")]
    rejected_then: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "tracing")]
const OVERLOAD_WARN_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

impl OverloadWarning {
    /// Called on every rejection with the clock time; `facts` (running rejection count, limit)
    /// is evaluated only when a warning is due.
    #[cfg(feature = "tracing")]
    pub(crate) fn rejected(&self, now: std::time::Duration, facts: impl FnOnce() -> (u64, u32)) {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let due = self.next_at_nanos.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(OVERLOAD_WARN_PERIOD.as_nanos() as u64);
        if self
            .next_at_nanos
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another thread warns for this period
        }
        let (rejected_total, limit) = facts();
        let before = self.rejected_then.swap(rejected_total, Ordering::Relaxed);
        tracing::warn!(
            rejected = rejected_total.saturating_sub(before),
            limit,
            "throttle is rejecting requests (at most one warning per 10 s)"
        );
    }

    #[cfg(not(feature = "tracing"))]
    pub(crate) fn rejected(&self, _now: std::time::Duration, _facts: impl FnOnce() -> (u64, u32)) {}
}
