//! Time, injected.
//!
//! Every reading of time in the crate goes through a [`Clock`]. Production code uses
//! [`MonotonicClock`], which reads tokio's clock and therefore honours paused time in tests
//! (`#[tokio::test(start_paused = true)]`); unit tests and simulations use [`ManualClock`], whose
//! clones share one time that only moves when told to.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A monotonic source of time, measured from an arbitrary origin fixed when the clock was made.
///
/// Implementations must be cheap to call: the throttle reads the clock once per decision.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;
}

/// The real clock: tokio's monotonic `Instant`, so paused tokio time is honoured.
///
/// Outside a tokio runtime it reads the operating system's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: tokio::time::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

/// A clock that moves only when told to. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let view = clock.clone();
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(view.now(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at `start`.
    pub fn starting_at(start: Duration) -> Self {
        let clock = Self::new();
        clock.set(start);
        clock
    }

    /// Moves time forward by `by` (saturating at the largest representable time).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// The current time (the same as [`Clock::now`], without importing the trait).
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    /// Sets the time; it may move backwards (every consumer in the crate is jump-safe).
    pub fn set(&self, to: Duration) {
        self.nanos.store(duration_to_nanos(to), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        ManualClock::now(self)
    }
}

fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Now on tokio's clock, for code that must also sleep on that clock (the outbound coordinator's
/// cooldowns are deadlines it sleeps until): paused tokio time moves both, so tests stay exact.
pub(crate) fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn as_millis_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        a.advance(Duration::from_secs(3));
        assert_eq!(b.now(), Duration::from_secs(3));
        b.set(Duration::from_secs(1));
        assert_eq!(a.now(), Duration::from_secs(1));
    }

    #[test]
    fn manual_clock_advance_saturates() {
        let c = ManualClock::starting_at(Duration::from_nanos(u64::MAX - 1));
        c.advance(Duration::from_secs(10));
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn monotonic_clock_honours_paused_tokio_time() {
        let clock = MonotonicClock::new();
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(clock.now(), Duration::from_secs(7));
    }
}
