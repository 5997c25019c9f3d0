//! [`RateLimitCoordinator`]: the cheap-to-clone handle every client layer of one process shares,
//! and the state behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::config::CoordinatorConfig;
use super::feedback::{CoordinatorEvent, CoordinatorStats, Counters, Pressure, EVENT_CAPACITY};
use super::key::Host;
use super::layer::CoordinatorLayer;
use super::table::{Step, Table};
use crate::clock::tokio_now;
use crate::store::Store;
use crate::throttle::AdaptiveThrottle;

/// One shared decision per rate-limited dependency: when an upstream answers 429, every caller
/// of that upstream backs off together, and after the cooldown one canary goes first.
///
/// Clones share everything (cooldowns, counts, events, counters), so make one per process (or
/// per family of clients) and hand clones to each client's [`layer`](Self::layer).
///
/// ```
/// use tower_adaptive_throttle::outbound::{CoordinatorConfig, RateLimitCoordinator};
///
/// let coord = RateLimitCoordinator::new(CoordinatorConfig::default());
/// let layer = coord.layer(); // wrap any `Service<http::Request<B>, Response = http::Response<B2>>`
/// assert_eq!(coord.cooldown_remaining("api.example.com"), None);
/// # let _ = layer;
/// ```
///
/// Time is tokio's clock ([`tokio::time::Instant`]): cooldown ends are deadlines that waiting
/// calls sleep until, so paused tokio time drives the coordinator exactly in tests.
#[derive(Debug, Clone)]
pub struct RateLimitCoordinator {
    shared: Arc<Shared>,
}

/// The state every clone of a coordinator (and every layer and service made from it) shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: CoordinatorConfig,
    table: Mutex<Table>,
    /// The table's length, mirrored so a call on a coordinator with no rate-limited key skips
    /// the lock (the common case).
    cooling: AtomicUsize,
    /// The next dispatched call's number (see `Table::on_rate_limited`).
    seq: AtomicU64,
    events: broadcast::Sender<CoordinatorEvent>,
    pub(crate) counters: Counters,
    inbound: RwLock<Option<AdaptiveThrottle>>,
    /// Cooldowns shared with other processes through a store, when configured.
    fleet: Option<FleetLink>,
}

/// Where a coordinator shares its cooldowns.
#[derive(Debug)]
struct FleetLink {
    store: Arc<dyn Store>,
    name: Arc<str>,
    pulling: AtomicBool,
}

/// How often a coordinator with a store reads the fleet's cooldowns.
const PULL_INTERVAL: Duration = Duration::from_millis(100);
/// The bound on each of those reads and writes.
const STORE_TIMEOUT: Duration = Duration::from_millis(50);

impl RateLimitCoordinator {
    /// A coordinator with no key rate limited.
    pub fn new(cfg: CoordinatorConfig) -> Self {
        Self::build(cfg, None)
    }

    /// A coordinator whose cooldowns are shared through `store` with every coordinator of the
    /// same `name` (other processes, other machines): a 429 seen by one cools the key down for
    /// all. Each process reads the fleet's cooldowns every 100 ms and still sends its own
    /// canary after a cooldown. A store that does not answer (50 ms bound) leaves each
    /// coordinator on its own cooldowns.
    ///
    /// ```
    /// use tower_adaptive_throttle::outbound::{CoordinatorConfig, RateLimitCoordinator};
    /// use tower_adaptive_throttle::store::MemoryStore; // or RedisStore (feature `redis`)
    ///
    /// let coord = RateLimitCoordinator::with_store(
    ///     CoordinatorConfig::default(),
    ///     MemoryStore::new(),
    ///     "payments-clients",
    /// );
    /// # let _ = coord;
    /// ```
    pub fn with_store(cfg: CoordinatorConfig, store: impl Store, name: &str) -> Self {
        Self::build(
            cfg,
            Some(FleetLink {
                store: Arc::new(store),
                name: name.into(),
                pulling: AtomicBool::new(false),
            }),
        )
    }

    fn build(cfg: CoordinatorConfig, fleet: Option<FleetLink>) -> Self {
        let seed = cfg.seed.unwrap_or_else(crate::util::random_seed);
        Self {
            shared: Arc::new(Shared {
                cfg,
                table: Mutex::new(Table::new(seed)),
                cooling: AtomicUsize::new(0),
                seq: AtomicU64::new(0),
                events: broadcast::channel(EVENT_CAPACITY).0,
                counters: Counters::default(),
                inbound: RwLock::new(None),
                fleet,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.shared.cfg
    }

    /// A layer that coordinates the calls of the service it wraps through this coordinator,
    /// keyed by the request URI's host (see [`CoordinatorLayer::key`] for another key).
    pub fn layer(&self) -> CoordinatorLayer<Host> {
        CoordinatorLayer::new(self.shared.clone())
    }

    /// The cooldown left on `key` (as the key extractor gives it; the default is the URI's host
    /// in lower case, without the port), or `None` when it is not cooling down. A key whose
    /// cooldown has run out but whose canary has not been answered yet has none left.
    pub fn cooldown_remaining(&self, key: &str) -> Option<Duration> {
        self.shared.table.lock().remaining(key, tokio_now())
    }

    /// The consecutive 429s on `key` not yet followed by a successful canary (0: not rate
    /// limited).
    pub fn consecutive(&self, key: &str) -> u32 {
        self.shared.table.lock().consecutive(key)
    }

    /// How hard the upstream behind `key` is pushing back, for a retry layer's delays.
    pub fn pressure(&self, key: &str) -> Pressure {
        Pressure::from_consecutive(self.consecutive(key))
    }

    /// [`pressure`](Self::pressure)'s multiplier: 1.0 (normal) to 4.0 (emergency).
    pub fn pressure_multiplier(&self, key: &str) -> f64 {
        self.pressure(key).multiplier()
    }

    /// A receiver of every [`CoordinatorEvent`] from now on. A receiver that falls more than
    /// 256 events behind loses the oldest (`RecvError::Lagged`); publishing never blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<CoordinatorEvent> {
        self.shared.events.subscribe()
    }

    /// The counters so far.
    pub fn stats(&self) -> CoordinatorStats {
        let cooling = self.shared.cooling.load(Ordering::Relaxed) as u64;
        self.shared.counters.snapshot(cooling)
    }

    /// Feeds an inbound throttle from this coordinator, so a service throttled by its
    /// dependency also lowers its own admission (BAL-021 / BAL-023): each 429 that climbs a
    /// key's ladder calls `throttle.governance().on_upstream_429(consecutive)`, and when the
    /// last rate-limited key recovers, `on_upstream_cooldown_end()`. The throttle has one 429
    /// reduction for all upstreams, so it ends only when none is rate limited. Replaces any
    /// throttle linked before.
    pub fn link_inbound(&self, throttle: AdaptiveThrottle) {
        *self.shared.inbound.write() = Some(throttle);
    }

    /// Forgets `key`'s cooldown and count at once (the one way to shorten a cooldown), and lets
    /// the calls waiting on it go. Whether the key was rate limited.
    pub fn clear(&self, key: &str) -> bool {
        self.shared.recovered(key, false)
    }
}

impl Shared {
    /// What a call on `key` arriving at `now` should do, if it may wait until `deadline`.
    pub(crate) fn step(&self, key: &str, now: Instant, deadline: Option<Instant>) -> Step {
        if self.cooling.load(Ordering::Acquire) == 0 {
            return Step::Go { canary: false };
        }
        self.table.lock().step(key, now, deadline)
    }

    /// The number of a call being dispatched now.
    pub(crate) fn dispatch_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A response on `key` rate limited a call dispatched as `seq`: count, arm or extend the
    /// cooldown, then (lock released) publish and feed the inbound throttle.
    pub(crate) fn rate_limited(
        &self,
        key: &str,
        seq: u64,
        status: u16,
        retry_after: Option<Duration>,
        canary: bool,
    ) {
        // Counted before the table is touched, as Baldur records its 429 metric before any
        // storage call: the count stays right even if what follows misbehaves.
        Counters::bump(&self.counters.rate_limited);
        let now = tokio_now();
        let armed = {
            let mut table = self.table.lock();
            let next = self.seq.load(Ordering::Relaxed);
            let armed = table.on_rate_limited(&self.cfg, key, seq, next, retry_after, now);
            if canary {
                table.canary_rate_limited(key);
            }
            self.cooling.store(table.len(), Ordering::Release);
            armed
        };
        self.publish(CoordinatorEvent::RateLimited {
            key: key.to_owned(),
            status,
            consecutive: armed.consecutive,
            retry_after,
        });
        if let Some((c, until, extended)) = armed.cooldown {
            let counter = if extended {
                &self.counters.cooldowns_extended
            } else {
                &self.counters.cooldowns_started
            };
            Counters::bump(counter);
            self.publish(CoordinatorEvent::CooldownStarted {
                key: key.to_owned(),
                consecutive: armed.consecutive,
                delay: c.delay,
                until,
                extended,
                retry_after_honored: c.retry_after_honored,
                retry_after_clamped: c.retry_after_clamped,
            });
        }
        if armed.climbed {
            if let Some(t) = self.inbound.read().as_ref() {
                t.governance().on_upstream_429(armed.consecutive);
            }
        }
        if let (Some((_, until, _)), Some(fleet)) = (armed.cooldown, self.fleet.as_ref()) {
            let delay = until.saturating_duration_since(now);
            let (store, name, key) = (fleet.store.clone(), fleet.name.clone(), key.to_owned());
            let consecutive = armed.consecutive;
            spawn(async move {
                let push = store.extend_cooldown(&name, &key, delay, consecutive);
                let _ = tokio::time::timeout(STORE_TIMEOUT, push).await;
            });
        }
    }

    /// Starts reading the fleet's cooldowns (once, on the caller's runtime).
    pub(crate) fn start_pulling(self: &Arc<Self>) {
        let Some(fleet) = self.fleet.as_ref() else {
            return;
        };
        if fleet.pulling.load(Ordering::Relaxed) || fleet.pulling.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                shared.pull().await;
                drop(shared);
                tokio::time::sleep(PULL_INTERVAL).await;
            }
        });
    }

    /// Adopts every cooldown another instance started or extended.
    async fn pull(&self) {
        let Some(fleet) = self.fleet.as_ref() else {
            return;
        };
        let read = fleet.store.cooldowns(&fleet.name);
        let Ok(Ok(cooldowns)) = tokio::time::timeout(STORE_TIMEOUT, read).await else {
            return;
        };
        let now = tokio_now();
        for c in cooldowns {
            let until = now + c.remaining;
            let moved = {
                let mut table = self.table.lock();
                let next = self.seq.load(Ordering::Relaxed);
                let moved = table.adopt(&c.key, until, c.consecutive, next, now);
                self.cooling.store(table.len(), Ordering::Release);
                moved
            };
            if moved {
                Counters::bump(&self.counters.cooldowns_adopted);
                self.publish(CoordinatorEvent::CooldownStarted {
                    key: c.key,
                    consecutive: c.consecutive,
                    delay: c.remaining,
                    until,
                    extended: false,
                    retry_after_honored: false,
                    retry_after_clamped: false,
                });
            }
        }
    }

    /// `key` recovered: by a canary answered without a 429 (`by_canary`), or cleared by hand.
    /// Whether it was rate limited.
    pub(crate) fn recovered(&self, key: &str, by_canary: bool) -> bool {
        let (was, none_left) = {
            let mut table = self.table.lock();
            let was = table.recover(key);
            self.cooling.store(table.len(), Ordering::Release);
            (was, table.len() == 0)
        };
        if !was {
            return false;
        }
        if by_canary {
            Counters::bump(&self.counters.cooldowns_ended);
            if let Some(fleet) = self.fleet.as_ref() {
                let (store, name, key) = (fleet.store.clone(), fleet.name.clone(), key.to_owned());
                spawn(async move {
                    let clear = store.clear_cooldown(&name, &key);
                    let _ = tokio::time::timeout(STORE_TIMEOUT, clear).await;
                });
            }
        }
        self.publish(CoordinatorEvent::CooldownEnded {
            key: key.to_owned(),
        });
        if none_left {
            if let Some(t) = self.inbound.read().as_ref() {
                t.governance().on_upstream_cooldown_end();
            }
        }
        true
    }

    /// The canary on `key` settled without a verdict: the next waiting call goes first.
    pub(crate) fn release_canary(&self, key: &str) {
        self.table.lock().release_canary(key);
    }

    fn publish(&self, event: CoordinatorEvent) {
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }
}

/// Spawns on the caller's runtime; without one (a coordinator used outside tokio) the fleet
/// is simply not told.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(task);
    }
}
