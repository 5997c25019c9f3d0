//! Samples recorded later: what a response may leave in a per-thread buffer instead of taking
//! the controller's lock, and how such a sample is folded in.
//!
//! A sample may wait when feeding it at once would change nothing but accumulated state: no
//! adjustment is due (the gate is closed for the time it was taken), nothing moves with time
//! (no ramp, no open breaker), and it cannot move the breaker (a closed breaker sees a sample
//! below its critical latency, which only resets its failure count). Folded in later, in the
//! order each thread recorded them, such samples leave the controller exactly as it would have
//! been; the adjustment that follows sees all of them.

use std::time::Duration;

use super::Controller;
use crate::events::ThrottleEvent;
use crate::governance::BreakerState;
use crate::signal::millis_f64;

/// When a sample may be recorded later: taken at `from <= now < until`, and, with a breaker,
/// faster than `below`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeferralWindow {
    pub(crate) from: Duration,
    pub(crate) until: Duration,
    pub(crate) below: Duration,
}

impl Controller {
    /// When a response may be recorded later rather than now, or `None` while every sample
    /// must be fed at once (the gate is open, something moves with time, the breaker is not
    /// closed).
    pub(crate) fn deferral_window(&self) -> Option<DeferralWindow> {
        let from = self.last_adjust_at?;
        if self.awaits_time() {
            return None;
        }
        let below = match &self.breaker {
            None => Duration::MAX,
            Some(b) if b.stats().state == BreakerState::Closed => self.cfg.sla_critical,
            Some(_) => return None,
        };
        Some(DeferralWindow {
            from,
            until: from.saturating_add(self.cfg.sample_interval),
            below,
        })
    }

    /// Feeds a sample that waited (see [`deferral_window`](Self::deferral_window)): what
    /// [`record`](Self::record) does, except that it never runs an adjustment. It was taken
    /// when none was due; should one have run since (another thread's sample), this one
    /// counts towards the next.
    pub(crate) fn record_deferred(
        &mut self,
        rtt: Duration,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.rtt_tally.add(rtt);
        if let Some(breaker) = self.breaker.as_mut() {
            // Only a closed breaker's sample waits; should it have opened since, the sample
            // (taken before) is not a trial of the half-open breaker.
            if breaker.stats().state == BreakerState::Closed {
                let state = breaker.on_response(rtt >= self.cfg.sla_critical, now);
                self.breaker_moved(state, now, events);
            }
        }
        self.signal.as_dyn_mut().add(rtt, now);
        if let Some(c) = self.capacity.as_mut() {
            c.completed();
        }
        let stale = self.cfg.skip_stale_samples
            && self.capacity.is_none()
            && self
                .last_change_at
                .is_some_and(|changed| now.saturating_sub(rtt) < changed);
        if !stale {
            self.interval.push(millis_f64(rtt));
        }
    }
}
