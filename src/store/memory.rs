//! [`MemoryStore`]: the store contract in process memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::{
    CompareAndSet, FleetView, Grant, LimitBounds, LimitSource, MemberReport, OpsRecord, OpsWrite,
    Store, StoreFuture, Take,
};
use crate::clock::Clock;

/// The [`Store`] contract in process memory: throttles of one process built on clones of one
/// `MemoryStore` share limits and budgets exactly as instances sharing a Redis do.
///
/// For tests (with a [`ManualClock`](crate::ManualClock), windows move with it) and for
/// several throttles of one process that must share a budget. Budgets of past windows are
/// dropped as new ones are taken, so memory follows the keys active in the current window.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    clock: Option<Arc<dyn Clock>>,
    seed: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Per (name, key): (window index, units taken).
    budgets: HashMap<(String, u64), (u64, u64)>,
    limits: HashMap<String, u32>,
    safe: HashMap<String, u32>,
    /// Per name: instance → (last heartbeat in store ms, its report).
    instances: HashMap<String, HashMap<String, (u64, String)>>,
    /// Per name: the operator state.
    ops: HashMap<String, OpsRecord>,
    /// Per name: the in-process equivalent of Redis's pub/sub channel.
    watchers: HashMap<String, tokio::sync::watch::Sender<u64>>,
    /// The window index budgets were last swept at.
    swept: u64,
    /// Per group, per key: (cooldown end in store ms, consecutive).
    cooldowns: HashMap<String, HashMap<String, (u64, u32)>>,
    failing: bool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store on the system clock (windows aligned to unix time).
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            clock: None,
            seed: foldhash::fast::RandomState::default().hash_one(0x5eed_u64),
        }
    }

    /// A store whose clock is `clock` (its time reads as unix ms), so windows move with a
    /// [`ManualClock`](crate::ManualClock) or paused tokio time.
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            clock: Some(Arc::new(clock)),
            ..Self::new()
        }
    }

    /// Makes every call fail (`true`) or succeed again (`false`): a store outage for tests of
    /// the fallbacks.
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().failing = failing;
    }

    fn now_ms(&self) -> u64 {
        let now = match &self.clock {
            Some(clock) => clock.now(),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        };
        u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, u64) -> T,
    ) -> StoreFuture<'static, T> {
        let now = self.now_ms();
        let result = {
            let mut state = self.state.lock();
            if state.failing {
                Err(super::StoreError::Unavailable(
                    "memory store set failing".into(),
                ))
            } else {
                Ok(f(&mut state, now))
            }
        };
        Box::pin(std::future::ready(result))
    }
}

use std::hash::BuildHasher;

impl Store for MemoryStore {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        let name = take.name.to_owned();
        self.run(move |state, now| {
            let window = now / take.window_ms;
            if window != state.swept {
                state.budgets.retain(|_, (w, _)| *w >= window);
                state.swept = window;
            }
            let entry = state.budgets.entry((name, take.key)).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            let granted = take.want.min(take.limit.saturating_sub(entry.1));
            entry.1 += granted;
            Grant {
                granted,
                used: entry.1,
                reset_in_ms: (window + 1)
                    .saturating_mul(take.window_ms)
                    .saturating_sub(now)
                    .max(1),
                window,
            }
        })
    }

    fn load_limit<'a>(
        &'a self,
        name: &'a str,
        default: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, (u32, LimitSource)> {
        let name = name.to_owned();
        self.run(move |state, _| {
            if let Some(&current) = state.limits.get(&name) {
                return (bounds.clamp(current), LimitSource::Current);
            }
            let (limit, source) = match state.safe.get(&name) {
                Some(&safe) => (bounds.clamp(safe), LimitSource::Safe),
                None => (bounds.clamp(default), LimitSource::Default),
            };
            state.limits.insert(name, limit);
            (limit, source)
        })
    }

    fn set_limit<'a>(
        &'a self,
        name: &'a str,
        limit: u32,
        bounds: LimitBounds,
        save_safe: bool,
    ) -> StoreFuture<'a, (Option<u32>, u32)> {
        let name = name.to_owned();
        self.run(move |state, _| {
            let new = bounds.clamp(limit);
            if save_safe {
                state.safe.insert(name.clone(), new);
            }
            (state.limits.insert(name, new), new)
        })
    }

    fn compare_and_set_limit<'a>(
        &'a self,
        name: &'a str,
        expected: u32,
        limit: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, CompareAndSet> {
        let name = name.to_owned();
        self.run(move |state, _| match state.limits.get(&name) {
            Some(&current) if current != expected => CompareAndSet::Mismatch(current),
            _ => {
                let new = bounds.clamp(limit);
                state.limits.insert(name, new);
                CompareAndSet::Set(new)
            }
        })
    }

    fn heartbeat<'a>(
        &'a self,
        name: &'a str,
        instance: &'a str,
        ttl: Duration,
        report: &'a str,
    ) -> StoreFuture<'a, FleetView> {
        let (name, instance, report) = (name.to_owned(), instance.to_owned(), report.to_owned());
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(move |state, now| {
            let live = state.instances.entry(name.clone()).or_default();
            live.insert(instance, (now, report));
            live.retain(|_, (seen, _)| now.saturating_sub(*seen) <= ttl);
            FleetView {
                instances: u32::try_from(live.len()).unwrap_or(u32::MAX).max(1),
                limit: state.limits.get(&name).copied(),
                ops_version: state.ops.get(&name).map_or(0, |r| r.version),
            }
        })
    }

    fn members<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Vec<MemberReport>> {
        let name = name.to_owned();
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(move |state, now| {
            let mut members: Vec<MemberReport> = state
                .instances
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|(_, (seen, _))| now.saturating_sub(*seen) <= ttl)
                .map(|(instance, (seen, report))| MemberReport {
                    instance: instance.clone(),
                    last_seen_ms_ago: now.saturating_sub(*seen),
                    report: report.clone(),
                })
                .collect();
            members.sort_by(|a, b| a.instance.cmp(&b.instance));
            members
        })
    }

    fn load_ops<'a>(&'a self, name: &'a str) -> StoreFuture<'a, OpsRecord> {
        let name = name.to_owned();
        self.run(move |state, _| state.ops.get(&name).cloned().unwrap_or_default())
    }

    fn write_ops<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        document: &'a str,
    ) -> StoreFuture<'a, OpsWrite> {
        let (name, document) = (name.to_owned(), document.to_owned());
        self.run(move |state, _| {
            let current = state.ops.get(&name).cloned().unwrap_or_default();
            if current.version != expected {
                return OpsWrite::Conflict(current);
            }
            let version = expected + 1;
            state
                .ops
                .insert(name.clone(), OpsRecord { version, document });
            if let Some(tx) = state.watchers.get(&name) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
            OpsWrite::Written(version)
        })
    }

    fn watch_ops(&self, name: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        let mut state = self.state.lock();
        let tx = state
            .watchers
            .entry(name.to_owned())
            .or_insert_with(|| tokio::sync::watch::channel(0).0);
        Some(tx.subscribe())
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.run(|_, _| ())
    }

    fn debit<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        let name = take.name.to_owned();
        self.run(move |state, now| {
            let window = now / take.window_ms;
            let entry = state.budgets.entry((name, take.key)).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            let granted = if entry.1 < take.limit { take.want } else { 0 };
            entry.1 = entry.1.saturating_add(granted);
            Grant {
                granted,
                used: entry.1,
                reset_in_ms: (window + 1)
                    .saturating_mul(take.window_ms)
                    .saturating_sub(now)
                    .max(1),
                window,
            }
        })
    }

    fn adjust<'a>(
        &'a self,
        name: &'a str,
        key: u64,
        window: u64,
        delta: i64,
    ) -> StoreFuture<'a, ()> {
        let name = name.to_owned();
        self.run(move |state, _| {
            if let Some(entry) = state.budgets.get_mut(&(name, key)) {
                if entry.0 == window {
                    entry.1 = entry.1.saturating_add_signed(delta);
                }
            }
        })
    }

    fn extend_cooldown<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
        delay: Duration,
        consecutive: u32,
    ) -> StoreFuture<'a, ()> {
        let (name, key) = (name.to_owned(), key.to_owned());
        let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.run(move |state, now| {
            let entry = state
                .cooldowns
                .entry(name)
                .or_default()
                .entry(key)
                .or_insert((now, 0));
            entry.0 = entry.0.max(now.saturating_add(delay));
            entry.1 = entry.1.max(consecutive);
        })
    }

    fn cooldowns<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<super::SharedCooldown>> {
        let name = name.to_owned();
        self.run(move |state, now| {
            let Some(group) = state.cooldowns.get_mut(&name) else {
                return Vec::new();
            };
            group.retain(|_, (until, _)| *until > now);
            group
                .iter()
                .map(|(key, (until, n))| {
                    super::SharedCooldown::new(key.clone(), Duration::from_millis(until - now), *n)
                })
                .collect()
        })
    }

    fn clear_cooldown<'a>(&'a self, name: &'a str, key: &'a str) -> StoreFuture<'a, ()> {
        let (name, key) = (name.to_owned(), key.to_owned());
        self.run(move |state, _| {
            if let Some(group) = state.cooldowns.get_mut(&name) {
                group.remove(&key);
            }
        })
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn block_on<T>(f: StoreFuture<'_, T>) -> T {
        // Memory futures are ready at once.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = f;
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r.unwrap(),
            std::task::Poll::Pending => unreachable!("memory store futures are ready"),
        }
    }
    use std::future::Future;

    #[test]
    fn memory_store_grants_up_to_the_limit_per_window() {
        let clock = ManualClock::new();
        let s = MemoryStore::with_clock(clock.clone());
        let g = block_on(s.take(Take::new("api", 1, 1000, 5, 3)));
        assert_eq!(
            (g.granted, g.used, g.reset_in_ms, g.window),
            (3, 3, 1000, 0)
        );
        let g = block_on(s.take(Take::new("api", 1, 1000, 5, 3)));
        assert_eq!((g.granted, g.used), (2, 5));
        assert_eq!(block_on(s.take(Take::new("api", 1, 1000, 5, 1))).granted, 0);
        // Another key has its own budget; the next window starts afresh.
        assert_eq!(block_on(s.take(Take::new("api", 2, 1000, 5, 5))).granted, 5);
        clock.advance(Duration::from_millis(1250));
        let g = block_on(s.take(Take::new("api", 1, 1000, 5, 4)));
        assert_eq!((g.granted, g.reset_in_ms, g.window), (4, 750, 1));
    }

    #[test]
    fn memory_store_limit_cold_start_then_cas() {
        let s = MemoryStore::with_clock(ManualClock::new());
        let b = LimitBounds { min: 10, max: 500 };
        assert_eq!(
            block_on(s.load_limit("api", 100, b)),
            (100, LimitSource::Default)
        );
        assert_eq!(
            block_on(s.load_limit("api", 7, b)),
            (100, LimitSource::Current)
        );
        assert_eq!(block_on(s.set_limit("api", 900, b, true)), (Some(100), 500));
        assert_eq!(
            block_on(s.compare_and_set_limit("api", 100, 50, b)),
            CompareAndSet::Mismatch(500)
        );
        assert_eq!(
            block_on(s.compare_and_set_limit("api", 500, 5, b)),
            CompareAndSet::Set(10)
        );
        // A store that lost its current limit restarts from the last safe one.
        s.state.lock().limits.clear();
        assert_eq!(
            block_on(s.load_limit("api", 100, b)),
            (500, LimitSource::Safe)
        );
    }

    #[test]
    fn memory_store_operator_state_is_compare_and_swap_and_announced() {
        let s = MemoryStore::with_clock(ManualClock::new());
        let rx = s.watch_ops("api").unwrap();
        assert_eq!(block_on(s.load_ops("api")), OpsRecord::default());
        assert_eq!(block_on(s.write_ops("api", 0, "one")), OpsWrite::Written(1));
        assert!(rx.has_changed().unwrap());
        let stale = block_on(s.write_ops("api", 0, "two"));
        assert_eq!(
            stale,
            OpsWrite::Conflict(OpsRecord {
                version: 1,
                document: "one".into()
            })
        );
        assert_eq!(block_on(s.write_ops("api", 1, "two")), OpsWrite::Written(2));
        assert_eq!(block_on(s.load_ops("api")).document, "two");
        let ttl = Duration::from_secs(3);
        assert_eq!(block_on(s.heartbeat("api", "a", ttl, "")).ops_version, 2);
    }

    #[test]
    fn memory_store_counts_live_instances() {
        let clock = ManualClock::new();
        let s = MemoryStore::with_clock(clock.clone());
        let ttl = Duration::from_secs(3);
        assert_eq!(block_on(s.heartbeat("api", "a", ttl, "ra")).instances, 1);
        assert_eq!(block_on(s.heartbeat("api", "b", ttl, "rb")).instances, 2);
        assert_eq!(block_on(s.members("api", ttl)).len(), 2);
        clock.advance(Duration::from_secs(4));
        assert_eq!(block_on(s.heartbeat("api", "b", ttl, "rb2")).instances, 1);
        let members = block_on(s.members("api", ttl));
        assert_eq!(members.len(), 1);
        assert_eq!(
            (members[0].instance.as_str(), members[0].report.as_str()),
            ("b", "rb2")
        );
        s.set_failing(true);
        assert!(std::pin::pin!(s.ping())
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
            .is_ready());
    }
}
