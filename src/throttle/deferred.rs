//! Responses recorded without the controller's lock: a sample that would change nothing but
//! accumulated state (see `Controller::deferral_window`) waits in the recording thread's
//! stripe, and the stripes are folded into the controller in batches, and before anything
//! reads or moves it. Every response taking one shared lock is what kept the throttle from
//! scaling with cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::control::{Controller, DeferralWindow};
use crate::events::ThrottleEvent;
use crate::util::stripes::{Deferral, Stripes};

/// The stripes, and the controller's deferral window mirrored in clock nanoseconds
/// (`until == 0`: none).
#[derive(Debug)]
pub(super) struct DeferredSamples {
    from_nanos: AtomicU64,
    until_nanos: AtomicU64,
    below_nanos: AtomicU64,
    stripes: Stripes<Mutex<Vec<(Duration, Duration)>>>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl DeferredSamples {
    pub(super) fn new() -> Self {
        Self {
            from_nanos: AtomicU64::new(0),
            until_nanos: AtomicU64::new(0),
            below_nanos: AtomicU64::new(0),
            stripes: Stripes::new(),
        }
    }

    /// Leaves the response `rtt` observed at `now` in the thread's stripe, if it may wait.
    /// The window read may be a moment old; a sample that waits although an adjustment ran
    /// meanwhile counts towards the next one (see `Controller::record_deferred`).
    pub(super) fn offer(&self, rtt: Duration, now: Duration) -> Deferral {
        if !self.may_wait(rtt, now) {
            return Deferral::Now;
        }
        let mut stripe = self.stripes.local().lock();
        stripe.push((rtt, now));
        Deferral::after_push(stripe.len())
    }

    /// Whether a response observed at `now` falls in the mirrored window (`offer`'s test).
    pub(super) fn may_wait(&self, rtt: Duration, now: Duration) -> bool {
        let at = nanos(now);
        at < self.until_nanos.load(Ordering::Relaxed)
            && at >= self.from_nanos.load(Ordering::Relaxed)
            && nanos(rtt) < self.below_nanos.load(Ordering::Relaxed)
    }

    /// Feeds every waiting sample to `c`, each stripe in the order its thread recorded them.
    pub(super) fn fold_into(&self, c: &mut Controller, events: &mut Vec<ThrottleEvent>) {
        for stripe in self.stripes.iter() {
            for (rtt, now) in stripe.lock().drain(..) {
                c.record_deferred(rtt, now, events);
            }
        }
    }

    /// Mirrors `c`'s deferral window (called with the controller's lock held, after every
    /// change).
    pub(super) fn mirror(&self, c: &Controller) {
        match c.deferral_window() {
            Some(DeferralWindow { from, until, below }) => {
                self.from_nanos.store(nanos(from), Ordering::Relaxed);
                self.below_nanos.store(nanos(below), Ordering::Relaxed);
                self.until_nanos.store(nanos(until), Ordering::Relaxed);
            }
            None => self.until_nanos.store(0, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use crate::clock::ManualClock;
    use crate::control::Controller;
    use crate::{AdaptiveThrottle, ThrottleConfig};

    /// Feeds the same responses to a throttle (whose samples may wait in stripes) and to a
    /// controller that takes each at once; after every response the limits agree, and at the
    /// end the signal, the histogram and the counters do too.
    fn same_as_recording_each_at_once(cfg: ThrottleConfig, steps: &[(u64, u64)]) {
        let clock = ManualClock::new();
        let throttle = AdaptiveThrottle::builder(cfg.clone())
            .clock(clock.clone())
            .build();
        let mut reference = Controller::with_config(Arc::new(cfg));
        let mut events = Vec::new();
        let mut deferred = 0;
        for (i, &(rtt_ms, advance_ms)) in steps.iter().enumerate() {
            clock.advance(Duration::from_millis(advance_ms));
            let now = clock.now();
            let rtt = Duration::from_millis(rtt_ms);
            let waiting_before = throttle.inner.deferred.may_wait(rtt, now);
            deferred += usize::from(waiting_before);
            throttle.record_response(rtt);
            reference.record(rtt, now, &mut events);
            assert_eq!(
                throttle
                    .inner
                    .limit
                    .load(std::sync::atomic::Ordering::Acquire),
                reference.conservative_limit(),
                "limit after response {i}"
            );
        }
        let now = clock.now();
        let (snapshot, histogram, stats) =
            throttle.with_controller(now, |c, _| (c.snapshot(now), c.rtt_histogram(), c.stats()));
        assert_eq!(snapshot, reference.snapshot(now));
        assert_eq!(histogram, reference.rtt_histogram());
        assert_eq!(stats, reference.stats());
        // The property is only worth something if samples did wait.
        if steps.len() > 100 && steps.iter().all(|s| s.1 < 5) {
            assert!(deferred > 0, "no sample waited");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn waiting_samples_change_nothing_recommended(
            steps in proptest::collection::vec((1u64..3_000, 0u64..300), 1..400),
        ) {
            let cfg = ThrottleConfig::builder().jitter_seed(7).build().unwrap();
            same_as_recording_each_at_once(cfg, &steps);
        }

        #[test]
        fn waiting_samples_change_nothing_baldur(
            steps in proptest::collection::vec((1u64..3_000, 0u64..300), 1..400),
        ) {
            let cfg = ThrottleConfig::baldur_builder().jitter_seed(7).build().unwrap();
            same_as_recording_each_at_once(cfg, &steps);
        }
    }

    #[test]
    fn a_burst_of_fast_responses_waits_and_is_folded_before_it_is_read() {
        let steps: Vec<(u64, u64)> = (0..1_000).map(|i| (5 + i % 40, i % 3)).collect();
        let cfg = ThrottleConfig::builder().jitter_seed(3).build().unwrap();
        same_as_recording_each_at_once(cfg, &steps);
    }
}
