//! Each key's lease on this instance: credits leased from the store (spent with the
//! window-coupled [`LeaseSpender`]), a cached denial, and the gate that makes concurrent misses
//! share one store call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::strategy::{LeaseSpend, LeaseSpender};

/// One key's lease.
pub(crate) struct KeyLease {
    pub(crate) state: Mutex<LeaseState>,
    /// Held across the one store call in flight for this key: a miss waits here, then finds
    /// the credits (or the denial) that call brought.
    pub(crate) gate: tokio::sync::Mutex<()>,
    /// Store calls started for this key; with `last_failed`, tells a miss that waited at the
    /// gate whether the call it waited for failed (then it falls back at once instead of
    /// queueing another call behind a store that does not answer).
    pub(crate) attempts: AtomicU64,
    /// A refill fetched ahead of need is on its way: one at a time per key.
    pub(crate) refilling: AtomicBool,
    /// The last window (local window index + 1; 0 never) this key was counted as active in.
    counted_window: AtomicU64,
}

pub(crate) struct LeaseState {
    pub(crate) spender: LeaseSpender,
    /// Units the fleet had taken from the window when the last grant was made.
    pub(crate) used_at_grant: u64,
    /// The store said the window is spent: deny without asking until then (local ms).
    pub(crate) denied_until_ms: u64,
    pub(crate) last_failed: bool,
}

/// What the local state can answer without the store.
pub(crate) enum Local {
    /// Served from credits: (remaining the instance knows of, ms until the window ends, credits
    /// left).
    Allowed {
        remaining: u64,
        reset_in_ms: u64,
        credits: u64,
    },
    /// The store denied this window: ms until it ends.
    Denied { retry_in_ms: u64 },
    /// Ask the store.
    Miss,
}

impl KeyLease {
    fn new() -> Self {
        Self {
            state: Mutex::new(LeaseState {
                spender: LeaseSpender::new(1, true).expect("a limit of 1 is valid"),
                used_at_grant: 0,
                denied_until_ms: 0,
                last_failed: false,
            }),
            gate: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            refilling: AtomicBool::new(false),
            counted_window: AtomicU64::new(0),
        }
    }

    /// Spends one credit at `now_ms`, or says why not.
    pub(crate) fn spend(&self, now_ms: u64, limit: u64) -> Local {
        let mut st = self.state.lock();
        st.spend(now_ms, limit)
    }

    /// Returns one credit just spent (a request the service-wide share then refused), to the
    /// window it came from.
    pub(crate) fn give_back(&self) {
        let mut st = self.state.lock();
        if let Some(expires) = st.spender.expires_at() {
            st.spender.grant(1, expires);
        }
    }

    /// Whether this is the key's first request in local window `window` (once per window).
    pub(crate) fn first_in_window(&self, window: u64) -> bool {
        let tag = window.saturating_add(1);
        self.counted_window.swap(tag, Ordering::AcqRel) != tag
    }

    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }
}

impl LeaseState {
    pub(crate) fn spend(&mut self, now_ms: u64, limit: u64) -> Local {
        match self.spender.spend(now_ms, 1) {
            LeaseSpend::Allowed(rd) => Local::Allowed {
                remaining: limit.saturating_sub(self.used_at_grant) + rd.remaining,
                reset_in_ms: rd.reset_at.saturating_sub(now_ms),
                credits: rd.remaining,
            },
            LeaseSpend::NeedsRefresh if self.denied_until_ms > now_ms => Local::Denied {
                retry_in_ms: self.denied_until_ms - now_ms,
            },
            LeaseSpend::NeedsRefresh => Local::Miss,
        }
    }

    /// Applies a store grant made for a call sent at `sent_ms`: the credits expire no later
    /// than the window that granted them (sent + time left when the store decided).
    pub(crate) fn apply(&mut self, granted: u64, used: u64, reset_in_ms: u64, sent_ms: u64) {
        let expires = sent_ms.saturating_add(reset_in_ms);
        self.last_failed = false;
        if granted == 0 {
            self.denied_until_ms = expires;
        } else {
            self.spender.grant(granted, expires);
            self.used_at_grant = used;
            self.denied_until_ms = 0;
        }
    }
}

const SHARDS: usize = 16;

/// The leases of the keys this instance has seen recently, bounded like the key table.
type Shard = Mutex<HashMap<u64, Arc<KeyLease>>>;

pub(crate) struct LeaseTable {
    shards: Box<[Shard]>,
    per_shard: usize,
}

impl LeaseTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (max_keys / SHARDS).max(16),
        }
    }

    /// The lease of `digest`, created when absent. A full shard first drops leases that hold
    /// nothing live and that no call is using; if every lease is live, one is dropped anyway
    /// (its credits are lost, which only ever admits less).
    pub(crate) fn get(&self, digest: u64, now_ms: u64) -> Arc<KeyLease> {
        let mut shard = self.shards[(digest as usize) % SHARDS].lock();
        if let Some(lease) = shard.get(&digest) {
            return lease.clone();
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, lease| {
                Arc::strong_count(lease) > 1 || {
                    let st = lease.state.lock();
                    st.denied_until_ms > now_ms
                        || (st.spender.credits() > 0
                            && st.spender.expires_at().is_some_and(|e| e > now_ms))
                }
            });
            if shard.len() >= self.per_shard {
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        shard
            .entry(digest)
            .or_insert_with(|| Arc::new(KeyLease::new()))
            .clone()
    }

    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_state_spends_grants_then_caches_the_denial() {
        let lease = KeyLease::new();
        assert!(matches!(lease.spend(0, 10), Local::Miss));
        lease.state.lock().apply(2, 4, 500, 100);
        assert!(matches!(
            lease.spend(150, 10),
            Local::Allowed {
                remaining: 7,
                reset_in_ms: 450,
                credits: 1
            }
        ));
        assert!(matches!(
            lease.spend(160, 10),
            Local::Allowed { credits: 0, .. }
        ));
        assert!(matches!(lease.spend(170, 10), Local::Miss));
        lease.state.lock().apply(0, 10, 400, 170);
        assert!(matches!(
            lease.spend(200, 10),
            Local::Denied { retry_in_ms: 370 }
        ));
        // Credits die with their window even if unspent.
        lease.state.lock().apply(3, 3, 100, 600);
        assert!(matches!(lease.spend(700, 10), Local::Miss));
    }

    #[test]
    fn lease_table_stays_bounded() {
        let table = LeaseTable::new(16 * 16);
        for digest in 0..10_000u64 {
            let lease = table.get(digest, 0);
            lease.state.lock().apply(1, 1, 1_000, 0);
        }
        assert!(table.len() <= 16 * 16, "{}", table.len());
    }
}
