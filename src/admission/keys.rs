//! The per-key table.
//!
//! Keys are hashed once with a per-process random seed (so nobody can aim collisions at it) and
//! stored as 64-bit digests: no allocation per key, whatever the key type. The table is split
//! into shards, each behind its own short lock, so no lock is ever held across keys.
//!
//! Memory is bounded by `max_keys`. When a shard is full, a sweep first drops keys whose state
//! is idle (indistinguishable from a new key), then, if still over 7/8 full, the least recently
//! seen. A sweep costs O(shard) and frees at least 1/8 of it, so insertion stays O(1) amortized.
//! Evicting a key that is not idle forgets its window: keep `max_keys` above the number of keys
//! active within one window for exact per-key limits.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::strategy::{AnyState, AnyStrategy, RateDecision, Strategy};

const MAX_SHARDS: usize = 64;
/// Fewer shards for small tables so each shard holds a useful number of keys.
const MIN_KEYS_PER_SHARD: usize = 16;

#[derive(Debug)]
struct Slot {
    state: AnyState,
    last_seen_ms: u64,
}

/// The keys are already uniformly hashed digests: hash them as they are (the cost meter's
/// table uses it too).
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Slot, BuildHasherDefault<DigestHasher>>;

#[derive(Debug)]
pub(crate) struct KeyTable {
    shards: Box<[Mutex<Shard>]>,
    shard_mask: u64,
    per_shard_cap: usize,
    hasher: foldhash::fast::RandomState,
    evicted: AtomicU64,
    active: ActiveKeys,
}

/// Distinct keys seen in the current window and in the one before (windows aligned to the
/// clock): the number a fair share divides by. An estimate: a race at a window boundary may
/// miscount a key, never grow memory.
#[derive(Debug, Default)]
struct ActiveKeys {
    window: AtomicU64,
    current: AtomicU64,
    previous: AtomicU64,
}

impl ActiveKeys {
    fn rotate(&self, window: u64) {
        let seen = self.window.load(Ordering::Acquire);
        if window > seen
            && self
                .window
                .compare_exchange(seen, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let current = self.current.swap(0, Ordering::AcqRel);
            let previous = if window == seen + 1 { current } else { 0 };
            self.previous.store(previous, Ordering::Release);
        }
    }

    fn touch(&self, window: u64) {
        self.rotate(window);
        self.current.fetch_add(1, Ordering::AcqRel);
    }

    fn count(&self, window: u64) -> u64 {
        self.rotate(window);
        self.current
            .load(Ordering::Acquire)
            .max(self.previous.load(Ordering::Acquire))
    }

    fn clear(&self) {
        self.current.store(0, Ordering::Release);
        self.previous.store(0, Ordering::Release);
    }
}

/// For a key sharing one service-wide limit: the window keys are counted in, and the check of
/// the shared limit, run (under the key's lock) only when the key's own quota admits.
pub(crate) struct Shared<G> {
    pub(crate) window_ms: u64,
    /// Whether the key has a quota of its own below the shared limit (with one key, or a
    /// quota as large as the limit, the shared limit alone decides).
    pub(crate) own_quota: bool,
    /// The key's strategy for its lowest tier, when the request's tier is higher: the room
    /// reported is the room left for any request of the key, so a client pacing itself by what
    /// it is told is never refused for the reserve kept for its higher tiers.
    pub(crate) lowest_tier: Option<AnyStrategy>,
    pub(crate) gate: G,
}

impl KeyTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let shards = (max_keys / MIN_KEYS_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_mask: shards as u64 - 1,
            per_shard_cap: (max_keys / shards).max(1),
            hasher: foldhash::fast::RandomState::default(),
            evicted: AtomicU64::new(0),
            active: ActiveKeys::default(),
        }
    }

    /// Counts a key first seen in this window by a caller that keeps its own per-key state
    /// (fleet mode's leases), so fair shares divide among it too.
    pub(crate) fn note_active(&self, now_ms: u64, window_ms: u64) {
        self.active.touch(now_ms / window_ms.max(1));
    }

    /// Distinct keys seen in this window or the previous one (at least 1).
    pub(crate) fn active(&self, now_ms: u64, window_ms: u64) -> u64 {
        self.active.count(now_ms / window_ms.max(1)).max(1)
    }

    /// Checks one request of `digest` against its own quota and, when that admits, against a
    /// shared limit (`shared.gate`, which consumes on success): a request denied by either
    /// consumes nothing. Every key that asks is counted as active, admitted or not.
    pub(crate) fn check_shared<G>(
        &self,
        digest: u64,
        strategy: &AnyStrategy,
        now_ms: u64,
        shared: Shared<G>,
    ) -> RateDecision
    where
        G: FnOnce() -> Result<(), RateDecision>,
    {
        let window = now_ms / shared.window_ms.max(1);
        let mut shard = self.shard(digest).lock();
        if !shard.contains_key(&digest) {
            self.insert_slot(&mut shard, digest, AnyState::default(), strategy, now_ms);
            self.active.touch(window);
        }
        let slot = shard.get_mut(&digest).expect("inserted above");
        if slot.last_seen_ms / shared.window_ms.max(1) < window {
            self.active.touch(window);
        }
        slot.last_seen_ms = slot.last_seen_ms.max(now_ms);
        if shared.own_quota {
            let own = strategy.peek(&slot.state, now_ms);
            if !own.allowed {
                return own;
            }
        }
        if let Err(denied) = (shared.gate)() {
            return denied;
        }
        let mut admitted = if shared.own_quota {
            // Admitted: the key's own state moves too, so its quota holds when others arrive.
            strategy.check(&mut slot.state, now_ms, 1)
        } else {
            // The shared limit decided; the key's own window describes the remaining room.
            let mut admitted = strategy.peek(&slot.state, now_ms);
            admitted.allowed = true;
            admitted.retry_after_ms = 0;
            admitted
        };
        narrow_to_lowest_tier(
            &mut admitted,
            shared.lowest_tier.as_ref(),
            &slot.state,
            now_ms,
        );
        admitted
    }

    /// [`peek`](Self::peek), reporting the room left for `lowest_tier` (when given) as
    /// [`check_shared`](Self::check_shared) does.
    pub(crate) fn peek_shared(
        &self,
        digest: u64,
        strategy: &AnyStrategy,
        lowest_tier: Option<&AnyStrategy>,
        now_ms: u64,
    ) -> RateDecision {
        let shard = self.shard(digest).lock();
        let cold = AnyState::default();
        let state = shard.get(&digest).map_or(&cold, |slot| &slot.state);
        let mut decision = strategy.peek(state, now_ms);
        narrow_to_lowest_tier(&mut decision, lowest_tier, state, now_ms);
        decision
    }

    pub(crate) fn digest<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, digest: u64) -> &Mutex<Shard> {
        // The middle bits pick the shard; the map itself uses the low and high bits.
        &self.shards[((digest >> 32) & self.shard_mask) as usize]
    }

    /// Checks (and, when allowed, consumes) one unit for `digest`.
    pub(crate) fn check(
        &self,
        digest: u64,
        strategy: &AnyStrategy,
        now_ms: u64,
        cost: u64,
    ) -> RateDecision {
        let mut shard = self.shard(digest).lock();
        if let Some(slot) = shard.get_mut(&digest) {
            slot.last_seen_ms = slot.last_seen_ms.max(now_ms);
            return strategy.check(&mut slot.state, now_ms, cost);
        }
        let mut state = AnyState::default();
        let decision = strategy.check(&mut state, now_ms, cost);
        // A denied new key consumed nothing, so it need not be remembered.
        if decision.allowed {
            self.insert_slot(&mut shard, digest, state, strategy, now_ms);
        }
        decision
    }

    /// Remembers a new key, sweeping idle ones first when the shard is full.
    fn insert_slot(
        &self,
        shard: &mut Shard,
        digest: u64,
        state: AnyState,
        strategy: &AnyStrategy,
        now_ms: u64,
    ) {
        if shard.len() >= self.per_shard_cap {
            let evicted = sweep(shard, self.per_shard_cap, strategy, now_ms);
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        shard.insert(
            digest,
            Slot {
                state,
                last_seen_ms: now_ms,
            },
        );
    }

    /// The same view as `check` with cost 1, consuming nothing.
    pub(crate) fn peek(&self, digest: u64, strategy: &AnyStrategy, now_ms: u64) -> RateDecision {
        let shard = self.shard(digest).lock();
        match shard.get(&digest) {
            Some(slot) => strategy.peek(&slot.state, now_ms),
            None => strategy.peek(&AnyState::default(), now_ms),
        }
    }

    /// Forgets one key.
    pub(crate) fn remove(&self, digest: u64) -> bool {
        self.shard(digest).lock().remove(&digest).is_some()
    }

    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().clear();
        }
        self.active.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.per_shard_cap * self.shards.len()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// Frees room in a full shard; returns how many keys were dropped.
/// The room `decision` reports becomes the room left for the key's lowest tier, when given:
/// what any of its requests may still use, not the reserve kept for its higher tiers.
fn narrow_to_lowest_tier(
    decision: &mut RateDecision,
    lowest_tier: Option<&AnyStrategy>,
    state: &AnyState,
    now_ms: u64,
) {
    if let Some(lowest) = lowest_tier {
        let room = lowest.peek(state, now_ms);
        decision.remaining = decision.remaining.min(room.remaining);
        decision.reset_at = decision.reset_at.max(room.reset_at);
    }
}

fn sweep(shard: &mut Shard, cap: usize, strategy: &AnyStrategy, now_ms: u64) -> u64 {
    let before = shard.len();
    shard.retain(|_, slot| !strategy.is_idle(&slot.state, now_ms));
    let target = cap - cap / 8 - 1;
    if shard.len() > target {
        let mut seen: Vec<u64> = shard.values().map(|s| s.last_seen_ms).collect();
        let excess = shard.len() - target;
        let (_, cutoff, _) = seen.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut to_drop = excess;
        shard.retain(|_, slot| {
            if to_drop > 0 && slot.last_seen_ms <= cutoff {
                to_drop -= 1;
                false
            } else {
                true
            }
        });
    }
    (before - shard.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::SlidingWindow;

    fn window(limit: u64) -> AnyStrategy {
        AnyStrategy::from(SlidingWindow::new(limit, 1000, 10).unwrap())
    }

    #[test]
    fn table_never_exceeds_max_keys() {
        let t = KeyTable::new(1000);
        let s = window(5);
        for i in 0..50_000u64 {
            assert!(t.check(t.digest(&i), &s, 0, 1).allowed);
            assert!(t.len() <= 1000);
        }
        assert!(t.len() <= t.capacity() && t.capacity() <= 1000);
        assert!(t.evicted() >= 49_000);
    }

    #[test]
    fn idle_keys_go_first() {
        let t = KeyTable::new(16);
        let s = window(5);
        let hot = t.digest("hot");
        for i in 0..15u64 {
            t.check(t.digest(&i), &s, 0, 1);
        }
        // all old keys idle after their window; the hot one is fresh
        for i in 0..5 {
            t.check(hot, &s, 5000 + i, 1);
        }
        // The table is full; new keys make room by dropping the 15 idle ones, not the hot one.
        for i in 100..110u64 {
            t.check(t.digest(&i), &s, 5005, 1);
        }
        assert!(t.evicted() >= 15);
        assert!(
            !t.check(hot, &s, 5006, 1).allowed,
            "hot key kept its window"
        );
    }

    #[test]
    fn denied_new_key_is_not_stored() {
        let t = KeyTable::new(100);
        let s = AnyStrategy::from(SlidingWindow::new(1, 1000, 10).unwrap());
        let d = t.check(t.digest("k"), &s, 0, 2);
        assert!(!d.allowed);
        assert_eq!(t.len(), 0);
    }
}
