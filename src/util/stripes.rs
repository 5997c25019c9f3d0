//! [`Stripes`]: one value per stripe, each on its own cache line, a thread always using the
//! same stripe. What every response would otherwise write to one shared place (a lock, a
//! counter) is written to the thread's stripe instead, and folded together when read.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most stripes a set has: more than enough for the cores a throttle runs on, few enough that
/// folding them stays cheap.
const MAX_STRIPES: usize = 64;

/// Values a buffering stripe holds before the thread that fills it folds every stripe in: few
/// enough that what is read trails by little, enough that the shared lock is taken once per
/// many requests.
pub(crate) const FOLD_AT: usize = 32;

/// What became of a value offered to a buffering stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferral {
    /// It waits in the thread's stripe.
    Waiting,
    /// It waits, and the stripe is full: fold the stripes now.
    Full,
    /// It may not wait: record it now, under the shared lock.
    Now,
}

impl Deferral {
    /// After a push that left `len` values in the stripe.
    pub(crate) fn after_push(len: usize) -> Self {
        if len >= FOLD_AT {
            Self::Full
        } else {
            Self::Waiting
        }
    }
}

/// Aligned to two cache lines (what adjacent-line prefetching pulls in together), so two
/// stripes never share a line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// One value per stripe. A thread always picks the same stripe (assigned round-robin the first
/// time it asks), so with no more threads than stripes a stripe's line is only ever written by
/// its thread (and read, or drained, by whoever folds the stripes). `T` is a lock or atomics.
#[derive(Debug)]
pub(crate) struct Stripes<T> {
    stripes: Box<[Padded<T>]>,
}

impl<T: Default> Stripes<T> {
    /// Twice the available parallelism (at least 4, at most 64), rounded up to a power of two:
    /// threads beyond the cores (blocking pools, several runtimes) rarely share a stripe.
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 2).clamp(4, MAX_STRIPES).next_power_of_two();
        Self {
            stripes: (0..count).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T: Default> Default for Stripes<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Stripes<T> {
    /// The calling thread's stripe.
    pub(crate) fn local(&self) -> &T {
        &self.stripes[thread_slot() & (self.stripes.len() - 1)].0
    }

    /// Every stripe.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|s| &s.0)
    }

    /// Stripes in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stripes.len()
    }
}

/// The calling thread's slot: assigned once per thread, round-robin over every thread that
/// ever asked, so the threads of one runtime land on distinct stripes.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        let mut s = slot.get();
        if s == usize::MAX {
            s = NEXT.fetch_add(1, Ordering::Relaxed);
            slot.set(s);
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn a_thread_keeps_its_stripe_and_a_fold_sees_every_stripe() {
        let stripes: Stripes<Mutex<Vec<u32>>> = Stripes::new();
        assert!(stripes.len().is_power_of_two() && stripes.len() >= 4);
        stripes.local().lock().push(1);
        stripes.local().lock().push(2);
        std::thread::scope(|s| {
            for n in 10..14 {
                let stripes = &stripes;
                s.spawn(move || stripes.local().lock().push(n));
            }
        });
        let mut mine = Vec::new();
        let mut all = Vec::new();
        for stripe in stripes.iter() {
            let mut v = stripe.lock();
            if v.starts_with(&[1]) {
                mine.clone_from(&v);
            }
            all.append(&mut v);
        }
        // Another thread may share the stripe (slots are global), but only after these two.
        assert_eq!(
            mine[..2],
            [1, 2],
            "one thread's values stay together, in order"
        );
        all.sort_unstable();
        assert_eq!(all, [1, 2, 10, 11, 12, 13]);
    }

    #[test]
    fn stripes_do_not_share_a_cache_line() {
        assert_eq!(std::mem::align_of::<Padded<Mutex<u64>>>(), 128);
    }
}
