//! [`ThrottleBuilder`]: a throttle with a name, a clock, and optionally a fleet store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::{FleetSettings, FleetState};
use super::inner::Inner;
use super::AdaptiveThrottle;
use crate::clock::{Clock, MonotonicClock};
use crate::config::ThrottleConfig;
use crate::store::{
    Fleet, Store, StoreFallback, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_LEASE_FRACTION,
    DEFAULT_STORE_TIMEOUT,
};

/// Builds an [`AdaptiveThrottle`] with more than a config: a name, a clock, and fleet mode.
///
/// ```
/// use tower_adaptive_throttle::{store::MemoryStore, AdaptiveThrottle, Fleet, ThrottleConfig};
///
/// let store = MemoryStore::new(); // or `RedisStore::connect(url).await?` (feature `redis`)
/// let t = AdaptiveThrottle::builder(ThrottleConfig::default())
///     .name("api")
///     .store(store.clone())
///     .fleet(Fleet::Leased)
///     .build();
/// assert!(t.fleet_stats().is_some());
/// ```
#[must_use]
pub struct ThrottleBuilder {
    cfg: ThrottleConfig,
    clock: Option<Arc<dyn Clock>>,
    name: Option<String>,
    instance: Option<String>,
    store: Option<Arc<dyn Store>>,
    fleet: Fleet,
    fallback: StoreFallback,
    timeout: Duration,
    health_check_interval: Duration,
    lease_fraction: f64,
}

impl fmt::Debug for ThrottleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleBuilder")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("fleet", &self.fleet)
            .field("fallback", &self.fallback)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ThrottleBuilder {
    pub(super) fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            clock: None,
            name: None,
            instance: None,
            store: None,
            fleet: Fleet::default(),
            fallback: StoreFallback::default(),
            timeout: DEFAULT_STORE_TIMEOUT,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            lease_fraction: DEFAULT_LEASE_FRACTION,
        }
    }

    /// The limit's fleet-wide identity: instances with the same store and name share one limit
    /// and one budget per key. Default `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This instance's name in the fleet view (default: host name and process id).
    pub fn instance_name(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The clock (default: the real one, tokio's, so paused time in tests is honoured).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Fleet mode: share the limit and each key's window budget through `store`. Without a
    /// store everything stays in this process, as with [`AdaptiveThrottle::new`].
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How the fleet shares each key's budget (default [`Fleet::Leased`]).
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = fleet;
        self
    }

    /// What admission does while the store is unreachable (default
    /// [`StoreFallback::SafeOpen`]).
    pub fn store_fallback(mut self, fallback: StoreFallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The bound on every store call (default 50 ms); at least 1 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How often a degraded store is checked (default 5 s); at least 10 ms.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The share of a key's limit one lease takes (default 0.1), clamped to (0, 1]; a lease is
    /// at least one unit, and a value that is not a number keeps the default. Larger leases mean fewer store calls and
    /// more budget stranded on idle instances at a window's end; never more admitted.
    pub fn lease_fraction(mut self, fraction: f64) -> Self {
        if !fraction.is_nan() {
            self.lease_fraction = fraction.clamp(f64::MIN_POSITIVE, 1.0);
        }
        self
    }

    /// The throttle.
    pub fn build(self) -> AdaptiveThrottle {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(MonotonicClock::new()));
        let max_keys = self.cfg.max_keys;
        let mut inner = Inner::new(self.cfg, clock);
        if let Some(store) = self.store {
            let settings = FleetSettings {
                store,
                name: self.name.unwrap_or_else(|| "default".into()).into(),
                instance: self.instance.unwrap_or_else(default_instance_name).into(),
                mode: self.fleet,
                fallback: self.fallback,
                timeout: self.timeout,
                lease_fraction: self.lease_fraction,
                health_check_interval: self.health_check_interval,
            };
            inner.fleet = Some(Box::new(FleetState::new(settings, max_keys)));
        }
        let throttle = AdaptiveThrottle {
            inner: Arc::new(inner),
        };
        throttle.start_fleet_sync();
        throttle
    }
}

fn default_instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "instance".into());
    format!("{host}-{}", std::process::id())
}
