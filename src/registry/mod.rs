//! [`ThrottleRegistry`]: named throttles, their rules, and runtime control — a value you pass
//! around, never a global.
//!
//! Rules ([`crate::rules::Rule`], [`crate::rules::Bypass`], collected in a
//! [`crate::rules::RuleSet`]) restrict where a throttle applies.
//! Path patterns are split on `/`: `*` matches exactly one segment, `**` any number of segments
//! (including none), anything else matches literally — `/api/*/orders` matches
//! `/api/v1/orders`; `/static/**` matches `/static`, `/static/a` and `/static/a/b.css`.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::ThrottleConfig;
use crate::rules::{Bypass, Rule};
use crate::throttle::{AdaptiveThrottle, ThrottleStats};

/// Named throttles. Cheap to clone; clones share the same set.
///
/// ```
/// use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, ThrottleRegistry};
/// use tower_adaptive_throttle::rules::Rule;
///
/// let registry = ThrottleRegistry::new();
/// let payments = registry.get_or_create("payments", ThrottleConfig::default());
/// registry.add_rule("payments", Rule::path("/pay/**").methods(["POST"]));
/// assert!(registry.exists("payments"));
/// assert!(registry.get("payments").is_some());
/// registry.disable_all();
/// assert!(payments.is_disabled());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ThrottleRegistry {
    throttles: Arc<RwLock<BTreeMap<String, AdaptiveThrottle>>>,
}

/// One throttle's name and state, as listed by [`ThrottleRegistry::states`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ServiceState {
    /// Registered name.
    pub name: String,
    /// Its stats.
    pub stats: ThrottleStats,
}

impl ThrottleRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `throttle` under `name`, returning the one it replaces.
    pub fn register(
        &self,
        name: impl Into<String>,
        throttle: AdaptiveThrottle,
    ) -> Option<AdaptiveThrottle> {
        self.throttles.write().insert(name.into(), throttle)
    }

    /// The throttle named `name`, created with `cfg` if there is none (creation happens once even
    /// under concurrent calls).
    pub fn get_or_create(&self, name: &str, cfg: ThrottleConfig) -> AdaptiveThrottle {
        if let Some(t) = self.get(name) {
            return t;
        }
        self.throttles
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| AdaptiveThrottle::new(cfg))
            .clone()
    }

    /// The throttle named `name`.
    pub fn get(&self, name: &str) -> Option<AdaptiveThrottle> {
        self.throttles.read().get(name).cloned()
    }

    /// Whether a throttle is named `name`.
    pub fn exists(&self, name: &str) -> bool {
        self.throttles.read().contains_key(name)
    }

    /// Removes and returns the throttle named `name`.
    pub fn remove(&self, name: &str) -> Option<AdaptiveThrottle> {
        self.throttles.write().remove(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.throttles.read().keys().cloned().collect()
    }

    /// Every (name, throttle), sorted by name.
    pub fn list(&self) -> Vec<(String, AdaptiveThrottle)> {
        self.throttles
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Number of throttles.
    pub fn len(&self) -> usize {
        self.throttles.read().len()
    }

    /// True when no throttle is registered.
    pub fn is_empty(&self) -> bool {
        self.throttles.read().is_empty()
    }

    /// Name and stats of every throttle (stats are read after the registry lock is released).
    pub fn states(&self) -> Vec<ServiceState> {
        self.list()
            .into_iter()
            .map(|(name, t)| ServiceState {
                name,
                stats: t.stats(),
            })
            .collect()
    }

    /// Lets all traffic through the named throttle (pass-through). Returns whether it exists.
    pub fn disable(&self, name: &str) -> bool {
        self.get(name).map(|t| t.disable()).is_some()
    }

    /// Undoes [`disable`](Self::disable). Returns whether it exists.
    pub fn enable(&self, name: &str) -> bool {
        self.get(name).map(|t| t.enable()).is_some()
    }

    /// Disables every registered throttle (Traffik's fail-open switch; distinct from the kill
    /// switch, which freezes the limit and keeps limiting).
    pub fn disable_all(&self) {
        self.list().iter().for_each(|(_, t)| t.disable());
    }

    /// Enables every registered throttle.
    pub fn enable_all(&self) {
        self.list().iter().for_each(|(_, t)| t.enable());
    }

    /// Adds a rule to the named throttle (atomically; in-flight requests see the old or the new
    /// set, never a mix). Returns whether it exists.
    pub fn add_rule(&self, name: &str, rule: Rule) -> bool {
        self.get(name)
            .map(|t| t.update_rules(|set| set.rule(rule.clone())))
            .is_some()
    }

    /// Adds a bypass to the named throttle. Returns whether it exists.
    pub fn add_bypass(&self, name: &str, bypass: Bypass) -> bool {
        self.get(name)
            .map(|t| t.update_rules(|set| set.bypass(bypass.clone())))
            .is_some()
    }

    /// Replaces the named throttle's configuration, keeping its state; returns the old one.
    pub fn swap_config(&self, name: &str, cfg: ThrottleConfig) -> Option<ThrottleConfig> {
        self.get(name).map(|t| t.swap_config(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Tier;
    use crate::rules::RequestInfo;

    #[test]
    fn get_or_create_creates_once_and_shares_state() {
        let r = ThrottleRegistry::new();
        let a = r.get_or_create("svc", ThrottleConfig::baldur());
        let b = r.get_or_create("svc", ThrottleConfig::default());
        a.record_response(std::time::Duration::from_millis(900));
        assert_eq!(b.current_limit(), 70, "the same throttle");
        assert_eq!(r.names(), vec!["svc".to_owned()]);
        assert!(r.exists("svc") && !r.exists("other"));
        assert!(r.remove("svc").is_some());
        assert!(r.is_empty());
    }

    #[test]
    fn disable_all_is_pass_through_and_enable_all_restores() {
        let r = ThrottleRegistry::new();
        let cfg = ThrottleConfig::baldur_builder()
            .min_limit(1)
            .initial_limit(1)
            .build()
            .unwrap();
        let t = r.get_or_create("one", cfg);
        t.check("k", Tier::Standard);
        r.disable_all();
        assert!(t.check("k", Tier::Standard).allowed);
        r.enable_all();
        assert!(!t.check("k", Tier::Standard).allowed);
        assert!(r.disable("one") && !r.disable("missing"));
    }

    #[test]
    fn rules_attach_by_name() {
        let r = ThrottleRegistry::new();
        let t = r.get_or_create("api", ThrottleConfig::default());
        assert!(r.add_rule("api", Rule::path("/api/**")));
        assert!(r.add_bypass("api", Bypass::path("/api/health")));
        let req = |path| RequestInfo {
            method: "GET",
            path,
        };
        assert!(t.applies_to(&req("/api/x")));
        assert!(!t.applies_to(&req("/api/health")));
        assert!(!t.applies_to(&req("/web")));
        assert!(!r.add_rule("missing", Rule::any()));
    }
}
