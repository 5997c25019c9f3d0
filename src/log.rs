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
