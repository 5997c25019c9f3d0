//! Releases recorded without the limiter's lock. With windowed aggregation, a completed
//! request only adds to the current window until the window's shortest span has passed; such
//! a sample waits in the releasing thread's stripe and is folded in before anything reads or
//! moves the state (the window can only close on a sample taken after that span, which is
//! recorded at once). Folded in order per thread, the window ends up exactly as if each sample
//! had taken the lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{nanos, Probe, State};
use parking_lot::Mutex;

use crate::config::SampleAggregation;
pub(super) use crate::util::stripes::Deferral;
use crate::util::stripes::Stripes;

/// One completed request's sample.
#[derive(Debug, Clone, Copy)]
pub(super) struct Released {
    pub(super) started_at: Duration,
    pub(super) now: Duration,
    pub(super) inflight: u32,
    pub(super) dropped: bool,
}

/// What waits in one stripe.
#[derive(Debug, Default)]
pub(super) struct Pending {
    samples: Vec<Released>,
    /// Permits released without a sample (ignored or cancelled): only counted.
    ignored: u64,
}

#[derive(Debug)]
pub(super) struct DeferredReleases {
    /// A sample taken before this time (clock nanoseconds) may wait; 0: none may.
    until_nanos: AtomicU64,
    stripes: Stripes<Mutex<Pending>>,
}

impl DeferredReleases {
    pub(super) fn new() -> Self {
        Self {
            until_nanos: AtomicU64::new(0),
            stripes: Stripes::new(),
        }
    }

    /// A permit released without a sample: counted in the stripe.
    pub(super) fn ignored(&self) {
        self.stripes.local().lock().ignored += 1;
    }

    /// Leaves `sample` in the thread's stripe, if it may wait. A window read a moment old is
    /// harmless: a sample folded in late never closes a window (see `fold_into`).
    pub(super) fn offer(&self, sample: Released) -> Deferral {
        if nanos(sample.now) >= self.until_nanos.load(Ordering::Relaxed) {
            return Deferral::Now;
        }
        let mut stripe = self.stripes.local().lock();
        stripe.samples.push(sample);
        Deferral::after_push(stripe.samples.len())
    }

    /// Samples waiting in the stripes.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().samples.len()).sum()
    }

    /// Adds every waiting sample to `st`'s counters and window (or the probe's samples), each
    /// stripe in its thread's order; never closes a window or ends a probe (the next sample
    /// recorded at once does).
    pub(super) fn fold_into(&self, st: &mut State) {
        for stripe in self.stripes.iter() {
            let mut pending = stripe.lock();
            st.ignored += std::mem::take(&mut pending.ignored);
            for s in pending.samples.drain(..) {
                let rtt = s.now.saturating_sub(s.started_at);
                st.count_sample(rtt, s.dropped);
                match &mut st.probe {
                    Probe::Active {
                        started_at, rtts, ..
                    } => {
                        if s.started_at >= *started_at && !s.dropped {
                            rtts.push(rtt.as_secs_f64() * 1000.0);
                        }
                    }
                    _ => st.window.add(s.now, rtt, s.inflight, s.dropped),
                }
            }
        }
    }

    /// Mirrors when samples may wait: with windowed aggregation, no probe running, until the
    /// current window's shortest span (or the next probe) is reached.
    pub(super) fn mirror(&self, st: &State, aggregation: SampleAggregation) {
        let until = match (aggregation, &st.probe, st.window.start) {
            (SampleAggregation::Windowed { min_window, .. }, Probe::Off, Some(start)) => {
                nanos(start.saturating_add(min_window))
            }
            (
                SampleAggregation::Windowed { min_window, .. },
                Probe::Waiting { next_at },
                Some(start),
            ) => nanos(start.saturating_add(min_window)).min(nanos(*next_at)),
            _ => 0,
        };
        self.until_nanos.store(until, Ordering::Relaxed);
    }
}
