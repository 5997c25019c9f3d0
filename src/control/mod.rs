//! The controller: the current limit, its bounds, the adjustment ladder, regimes, freezes and the
//! recovery ramp.
//!
//! Pure: no tokio, no HTTP, no clock of its own. Every method takes `now`, and every change is
//! reported as [`ThrottleEvent`](crate::ThrottleEvent)s pushed into a caller-owned buffer, so a
//! [`Controller`] can be driven by a test, a simulator or the [`AdaptiveThrottle`](crate::AdaptiveThrottle).

mod capacity;
mod controller;
mod interval;
mod ladder;

pub(crate) use controller::{Controller, DeferralWindow, Demand, STARVED_AFTER_INTERVALS};
pub use controller::{RampProgress, Regime};
