use std::collections::VecDeque;
use std::time::Duration;

use super::{from_millis_f64, millis_f64, LatencySignal, SampleStats, SignalSnapshot};

/// Raw samples kept for statistics only (Baldur keeps 100).
const RECENT_SAMPLES: usize = 100;
/// Span of `recent_sample_count`.
const RECENT_WINDOW: Duration = Duration::from_secs(10);

/// Exponential moving average of latency with a step gradient.
///
/// `smoothed = α·rtt + (1 − α)·smoothed` (the first sample seeds it);
/// `gradient = (smoothed − previous) / previous`, and zero until `min_samples` samples exist.
#[derive(Debug, Clone)]
pub(crate) struct EmaGradient {
    smoothing: f64,
    min_samples: u32,
    smoothed_ms: Option<f64>,
    gradient: f64,
    count: u64,
    recent: VecDeque<(Duration, Duration)>,
}

impl EmaGradient {
    /// A calculator with weight `smoothing` (clamped into `(0, 1]`) for new samples.
    pub(crate) fn new(smoothing: f64, min_samples: u32) -> Self {
        Self {
            smoothing: sanitize_smoothing(smoothing),
            min_samples,
            smoothed_ms: None,
            gradient: 0.0,
            count: 0,
            recent: VecDeque::with_capacity(RECENT_SAMPLES),
        }
    }

    /// Changes the smoothing and `min_samples`, keeping the current average.
    pub(crate) fn reconfigure(&mut self, smoothing: f64, min_samples: u32) {
        self.smoothing = sanitize_smoothing(smoothing);
        self.min_samples = min_samples;
    }
}

fn sanitize_smoothing(s: f64) -> f64 {
    if s.is_finite() {
        s.clamp(f64::MIN_POSITIVE, 1.0)
    } else {
        1.0
    }
}

impl LatencySignal for EmaGradient {
    fn add(&mut self, rtt: Duration, now: Duration) {
        let sample = millis_f64(rtt);
        self.count = self.count.saturating_add(1);
        let next = match self.smoothed_ms {
            None => sample,
            Some(prev) => self.smoothing * sample + (1.0 - self.smoothing) * prev,
        };
        self.gradient = match self.smoothed_ms {
            Some(prev) if prev > 0.0 && self.count >= u64::from(self.min_samples.max(2)) => {
                (next - prev) / prev
            }
            _ => 0.0,
        };
        self.smoothed_ms = Some(next);
        if self.recent.len() == RECENT_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back((now, rtt));
    }

    fn snapshot(&self, _now: Duration) -> SignalSnapshot {
        SignalSnapshot {
            smoothed_rtt: self.smoothed_ms.map(from_millis_f64),
            gradient: self.gradient,
        }
    }

    fn stats(&self, now: Duration) -> SampleStats {
        let since = now.saturating_sub(RECENT_WINDOW);
        SampleStats {
            sample_count: self.count,
            recent_sample_count: self.recent.iter().filter(|(t, _)| *t >= since).count() as u64,
            smoothed_rtt: self.smoothed_ms.map(from_millis_f64),
            gradient: self.gradient,
            min_rtt: self.recent.iter().map(|(_, r)| *r).min(),
            max_rtt: self.recent.iter().map(|(_, r)| *r).max(),
        }
    }

    fn reset(&mut self) {
        self.smoothed_ms = None;
        self.gradient = 0.0;
        self.count = 0;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn the_third_sample_gives_the_relative_step_of_the_average() {
        let mut s = EmaGradient::new(0.5, 3);
        let t = Duration::ZERO;
        s.add(Duration::from_millis(100), t);
        s.add(Duration::from_millis(100), t);
        s.add(Duration::from_millis(200), t); // smoothed 100 → 150
        assert!((s.snapshot(t).gradient - 0.5).abs() < 1e-9);
    }

    #[test]
    fn first_sample_seeds_the_average() {
        let mut s = EmaGradient::new(0.5, 3);
        s.add(ms(80), Duration::ZERO);
        assert_eq!(s.snapshot(Duration::ZERO).smoothed_rtt, Some(ms(80)));
        assert_eq!(s.snapshot(Duration::ZERO).gradient, 0.0);
    }

    #[test]
    fn gradient_is_zero_until_min_samples() {
        let mut s = EmaGradient::new(0.5, 3);
        s.add(ms(100), Duration::ZERO);
        s.add(ms(300), Duration::ZERO); // smoothed 200: a real step, but only 2 samples
        assert_eq!(s.snapshot(Duration::ZERO).gradient, 0.0);
        s.add(ms(200), Duration::ZERO); // smoothed 200 → 200
        assert_eq!(s.snapshot(Duration::ZERO).gradient, 0.0);
        s.add(ms(400), Duration::ZERO); // 200 → 300
        assert!((s.snapshot(Duration::ZERO).gradient - 0.5).abs() < 1e-12);
    }

    #[test]
    fn min_samples_of_one_still_needs_a_previous_average() {
        let mut s = EmaGradient::new(0.5, 1);
        s.add(ms(100), Duration::ZERO);
        assert_eq!(s.snapshot(Duration::ZERO).gradient, 0.0);
        s.add(ms(50), Duration::ZERO); // 100 → 75
        assert!((s.snapshot(Duration::ZERO).gradient + 0.25).abs() < 1e-12);
    }

    #[test]
    fn stats_count_recent_samples_and_extremes() {
        let mut s = EmaGradient::new(0.5, 3);
        s.add(ms(10), Duration::from_secs(0));
        s.add(ms(30), Duration::from_secs(5));
        s.add(ms(20), Duration::from_secs(12));
        let st = s.stats(Duration::from_secs(12));
        assert_eq!(st.sample_count, 3);
        assert_eq!(st.recent_sample_count, 2);
        assert_eq!(st.min_rtt, Some(ms(10)));
        assert_eq!(st.max_rtt, Some(ms(30)));
        s.reset();
        assert_eq!(s.stats(Duration::ZERO).sample_count, 0);
        assert_eq!(s.snapshot(Duration::ZERO).smoothed_rtt, None);
    }

    #[test]
    fn zero_latency_never_divides_by_zero() {
        let mut s = EmaGradient::new(0.5, 1);
        for _ in 0..5 {
            s.add(Duration::ZERO, Duration::ZERO);
        }
        s.add(ms(10), Duration::ZERO);
        assert!(s.snapshot(Duration::ZERO).gradient.is_finite());
    }
}
