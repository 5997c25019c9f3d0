//! Samples gathered between two adjustments: their mean and percentiles.

/// Latencies (ms) since the last adjustment. Up to `capacity` are kept exactly; beyond that a
/// uniform reservoir keeps the percentile estimate honest with fixed memory.
#[derive(Debug, Clone)]
pub(crate) struct IntervalSamples {
    kept: Vec<f64>,
    capacity: usize,
    seen: u64,
    sum: f64,
    rng: u64,
}

impl IntervalSamples {
    pub(crate) fn new(capacity: usize, seed: u64) -> Self {
        Self {
            kept: Vec::with_capacity(capacity.min(64)),
            capacity: capacity.max(1),
            seen: 0,
            sum: 0.0,
            rng: seed | 1,
        }
    }

    pub(crate) fn push(&mut self, ms: f64) {
        self.seen += 1;
        self.sum += ms;
        if self.kept.len() < self.capacity {
            self.kept.push(ms);
        } else {
            // Algorithm R: keep the new sample with probability capacity / seen.
            let slot = crate::util::splitmix64(&mut self.rng) % self.seen;
            if let Ok(slot) = usize::try_from(slot) {
                if slot < self.capacity {
                    self.kept[slot] = ms;
                }
            }
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.seen
    }

    pub(crate) fn mean(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.sum / self.seen as f64)
    }

    /// Nearest-rank quantile `q` in `(0, 1]`.
    pub(crate) fn quantile(&mut self, q: f64) -> Option<f64> {
        if self.kept.is_empty() {
            return None;
        }
        let n = self.kept.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        let (_, v, _) = self.kept.select_nth_unstable_by(rank, f64::total_cmp);
        Some(*v)
    }

    pub(crate) fn clear(&mut self) {
        self.kept.clear();
        self.seen = 0;
        self.sum = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = IntervalSamples::new(100, 1);
        for v in 1..=10 {
            s.push(f64::from(v));
        }
        assert_eq!(s.quantile(0.9), Some(9.0));
        assert_eq!(s.quantile(1.0), Some(10.0));
        assert_eq!(s.quantile(0.01), Some(1.0));
        assert_eq!(s.mean(), Some(5.5));
    }

    #[test]
    fn reservoir_keeps_memory_fixed_and_estimate_close() {
        let mut s = IntervalSamples::new(256, 7);
        for i in 0..100_000u32 {
            s.push(f64::from(i % 1000));
        }
        assert_eq!(s.kept.len(), 256);
        assert_eq!(s.count(), 100_000);
        let p90 = s.quantile(0.9).unwrap();
        assert!((800.0..=980.0).contains(&p90), "{p90}");
        s.clear();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
    }
}
