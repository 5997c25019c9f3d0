use std::time::Duration;

use super::{from_millis_f64, millis_f64, LatencySignal, SampleStats, SignalSnapshot};

/// One second of latency samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub(crate) struct BucketStats {
    /// The second (since the clock's origin) this bucket holds.
    pub(crate) second: u64,
    /// Sum of samples, in milliseconds.
    pub(crate) sum_ms: f64,
    /// Number of samples.
    pub(crate) count: u32,
    /// Smallest sample, in milliseconds.
    pub(crate) min_ms: f64,
    /// Largest sample, in milliseconds.
    pub(crate) max_ms: f64,
}

/// Latency in a fixed ring of one-second buckets.
///
/// The smoothed latency is the window's average; the gradient is
/// `(recent-half average − previous-half average) / previous-half average`, zero until the
/// window holds `min_samples` samples and both halves have some. Memory is fixed at
/// construction ([`memory_usage_bytes`](Self::memory_usage_bytes)) whatever the request rate.
#[derive(Debug, Clone)]
pub(crate) struct TimeBucketedGradient {
    buckets: Box<[BucketStats]>,
    min_samples: u32,
    total: u64,
}

impl TimeBucketedGradient {
    /// A ring covering `window` (rounded down to whole seconds, at least 2).
    pub(crate) fn new(window: Duration, min_samples: u32) -> Self {
        let n = usize::try_from(window.as_secs())
            .unwrap_or(usize::MAX)
            .clamp(2, 3600);
        Self {
            buckets: vec![BucketStats::default(); n].into_boxed_slice(),
            min_samples,
            total: 0,
        }
    }

    /// Heap and inline bytes held, constant after construction.
    #[cfg(test)]
    pub(crate) fn memory_usage_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.buckets)
    }

    /// The live buckets at `now`, oldest first.
    #[cfg(test)]
    pub(crate) fn buckets(&self, now: Duration) -> Vec<BucketStats> {
        let mut live: Vec<_> = self.live(now).map(|(_, b)| *b).collect();
        live.sort_by_key(|b| b.second);
        live
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// Live buckets with their age in whole seconds.
    fn live(&self, now: Duration) -> impl Iterator<Item = (u64, &BucketStats)> {
        let sec = now.as_secs();
        let n = self.len();
        self.buckets.iter().filter_map(move |b| {
            let age = sec.checked_sub(b.second)?;
            (b.count > 0 && age < n).then_some((age, b))
        })
    }

    fn average(&self, now: Duration, ages: std::ops::Range<u64>) -> Option<(f64, u64)> {
        let (sum, count) = self
            .live(now)
            .filter(|(age, _)| ages.contains(age))
            .fold((0.0, 0u64), |(s, c), (_, b)| {
                (s + b.sum_ms, c + u64::from(b.count))
            });
        (count > 0).then(|| (sum / count as f64, count))
    }
}

impl LatencySignal for TimeBucketedGradient {
    fn add(&mut self, rtt: Duration, now: Duration) {
        let sec = now.as_secs();
        let idx = (sec % self.len()) as usize;
        let sample = millis_f64(rtt);
        let b = &mut self.buckets[idx];
        if b.second != sec || b.count == 0 {
            *b = BucketStats {
                second: sec,
                sum_ms: 0.0,
                count: 0,
                min_ms: sample,
                max_ms: sample,
            };
        }
        b.sum_ms += sample;
        b.count = b.count.saturating_add(1);
        b.min_ms = b.min_ms.min(sample);
        b.max_ms = b.max_ms.max(sample);
        self.total = self.total.saturating_add(1);
    }

    fn snapshot(&self, now: Duration) -> SignalSnapshot {
        let n = self.len();
        let whole = self.average(now, 0..n);
        let gradient = match (
            whole,
            self.average(now, 0..n / 2),
            self.average(now, n / 2..n),
        ) {
            (Some((_, total)), Some((recent, _)), Some((previous, _)))
                if total >= u64::from(self.min_samples) && previous > 0.0 =>
            {
                (recent - previous) / previous
            }
            _ => 0.0,
        };
        SignalSnapshot {
            smoothed_rtt: whole.map(|(avg, _)| from_millis_f64(avg)),
            gradient,
        }
    }

    fn stats(&self, now: Duration) -> SampleStats {
        let snap = self.snapshot(now);
        let live: Vec<_> = self.live(now).map(|(_, b)| *b).collect();
        SampleStats {
            sample_count: self.total,
            recent_sample_count: live.iter().map(|b| u64::from(b.count)).sum(),
            smoothed_rtt: snap.smoothed_rtt,
            gradient: snap.gradient,
            min_rtt: live
                .iter()
                .map(|b| b.min_ms)
                .reduce(f64::min)
                .map(from_millis_f64),
            max_rtt: live
                .iter()
                .map(|b| b.max_ms)
                .reduce(f64::max)
                .map(from_millis_f64),
        }
    }

    fn reset(&mut self) {
        self.buckets.fill(BucketStats::default());
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn memory_is_fixed_whatever_the_traffic() {
        let mut sig = TimeBucketedGradient::new(s(10), 3);
        let before = sig.memory_usage_bytes();
        for i in 0..100_000u64 {
            sig.add(ms(i % 50), Duration::from_micros(i * 300));
        }
        assert_eq!(sig.memory_usage_bytes(), before);
        assert!(before < 1024, "{before}");
    }

    #[test]
    fn gradient_compares_recent_half_with_previous_half() {
        let mut sig = TimeBucketedGradient::new(s(10), 3);
        for sec in 0..5 {
            sig.add(ms(100), s(sec));
        }
        for sec in 5..10 {
            sig.add(ms(150), s(sec));
        }
        let snap = sig.snapshot(s(9));
        assert!((snap.gradient - 0.5).abs() < 1e-9, "{snap:?}");
        assert_eq!(snap.smoothed_rtt, Some(ms(125)));
    }

    #[test]
    fn gradient_is_zero_below_min_samples_or_with_one_half_empty() {
        let mut sig = TimeBucketedGradient::new(s(10), 3);
        sig.add(ms(100), s(0));
        sig.add(ms(200), s(9));
        assert_eq!(sig.snapshot(s(9)).gradient, 0.0);
        let mut sig = TimeBucketedGradient::new(s(10), 1);
        sig.add(ms(100), s(9));
        sig.add(ms(200), s(9));
        assert_eq!(sig.snapshot(s(9)).gradient, 0.0);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let mut sig = TimeBucketedGradient::new(s(10), 1);
        sig.add(ms(500), s(0));
        sig.add(ms(100), s(15));
        let st = sig.stats(s(15));
        assert_eq!(st.recent_sample_count, 1);
        assert_eq!(st.smoothed_rtt, Some(ms(100)));
        assert_eq!(st.max_rtt, Some(ms(100)));
        assert_eq!(st.sample_count, 2);
        assert_eq!(sig.buckets(s(15)).len(), 1);
    }

    #[test]
    fn a_reused_slot_starts_fresh() {
        let mut sig = TimeBucketedGradient::new(s(2), 1);
        sig.add(ms(100), s(0));
        sig.add(ms(300), s(2)); // same slot, new second
        let b = sig.buckets(s(2));
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].count, b[0].sum_ms), (1, 300.0));
    }
}
