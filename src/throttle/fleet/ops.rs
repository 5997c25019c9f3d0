//! The fleet's operator state: kill switch, emergency level, error budget, load shedding, break
//! glass, enabled and the config, set on any instance and applied by every instance.
//!
//! One versioned document per throttle name in the store (`{prefix}l:{name}:ops` on Redis).
//!
//! - **Writing.** An operator action ([`Governance`](crate::Governance)'s operator controls,
//!   `enable`/`disable`, `swap_config`) applies at once on the instance it is made on, and is
//!   recorded as *pending*: the document it makes, on top of the version the instance last
//!   applied (its base). The sync task (woken at once), or [`AdaptiveThrottle::sync_fleet`],
//!   stores it by compare-and-swap against that version; the store then announces the new
//!   version (Redis pub/sub; `MemoryStore`'s in-process channel).
//! - **Conflicts.** A write against a stale version is refused with the record in force. The
//!   writer merges three ways: a setting it changed and the stored record did not keep its
//!   value; a setting both changed takes the stored value (the version stored first wins,
//!   recorded as [`ThrottleEvent::FleetOpsConflict`]); then it writes again against the new
//!   version. Every instance converges on the same document, whatever the interleaving.
//! - **Applying.** An announcement (or a heartbeat that returns a newer version than the one
//!   applied, the fallback when an announcement is lost) makes the sync task read the
//!   document and apply every setting that differs from the instance's own, recording
//!   [`ThrottleEvent::FleetOpsApplied`] with the writer's actor and instance; the transitions it
//!   causes are audited with the writer's actor.
//! - **Store away.** The action still applies locally and stays pending
//!   ([`FleetStats::ops_pending`](crate::FleetStats)); on reconnection the instance reads the
//!   stored document first, so the fleet's state wins by version for every setting changed
//!   there meanwhile, and what is left of the pending change is written on top.

use std::sync::atomic::Ordering;

use super::super::AdaptiveThrottle;
use crate::events::ThrottleEvent;
use crate::governance::ErrorBudget;
use crate::store::{OpsRecord, OpsWrite, StoreError, StoreHealth};

/// The fleet-wide operator state of one throttle (one version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpsDoc {
    /// The store's version (0: none).
    pub(crate) version: u64,
    pub(crate) kill_switch: bool,
    pub(crate) emergency_level: u8,
    pub(crate) error_budget: ErrorBudget,
    pub(crate) load_shedding: Option<u8>,
    /// How many times break glass was used: a rise is one use to replay.
    pub(crate) break_glass: u64,
    pub(crate) enabled: bool,
    /// The swapped-in config as JSON (feature `serde`), when one was swapped.
    pub(crate) config: Option<String>,
    /// Who wrote this version, where, and what they changed.
    pub(crate) actor: String,
    pub(crate) instance: String,
    pub(crate) action: String,
}

impl Default for OpsDoc {
    fn default() -> Self {
        Self {
            version: 0,
            kill_switch: false,
            emergency_level: 0,
            error_budget: ErrorBudget::Healthy,
            load_shedding: None,
            break_glass: 0,
            enabled: true,
            config: None,
            actor: String::new(),
            instance: String::new(),
            action: String::new(),
        }
    }
}

fn budget_str(b: ErrorBudget) -> &'static str {
    match b {
        ErrorBudget::Healthy => "healthy",
        ErrorBudget::Warning => "warning",
        ErrorBudget::Critical => "critical",
    }
}

/// One line of text: no line breaks (the document is one `key=value` per line).
fn line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}

impl OpsDoc {
    /// One `key=value` per line; unknown keys are ignored when read, so instances of different
    /// versions can share a store.
    pub(crate) fn encode(&self) -> String {
        let mut out = format!(
            "kill_switch={}\nemergency={}\nerror_budget={}\nload_shedding={}\nbreak_glass={}\nenabled={}\nactor={}\ninstance={}\naction={}\n",
            u8::from(self.kill_switch),
            self.emergency_level,
            budget_str(self.error_budget),
            self.load_shedding.map_or_else(|| "off".to_owned(), |p| p.to_string()),
            self.break_glass,
            u8::from(self.enabled),
            line(&self.actor),
            line(&self.instance),
            line(&self.action),
        );
        if let Some(config) = &self.config {
            out.push_str("config=");
            out.push_str(&line(config));
            out.push('\n');
        }
        out
    }

    pub(crate) fn decode(record: &OpsRecord) -> Self {
        let mut doc = Self {
            version: record.version,
            ..Self::default()
        };
        for l in record.document.lines() {
            let Some((key, value)) = l.split_once('=') else {
                continue;
            };
            match key {
                "kill_switch" => doc.kill_switch = value == "1",
                "emergency" => doc.emergency_level = value.parse().unwrap_or(0).min(3),
                "error_budget" => {
                    doc.error_budget = match value {
                        "warning" => ErrorBudget::Warning,
                        "critical" => ErrorBudget::Critical,
                        _ => ErrorBudget::Healthy,
                    }
                }
                "load_shedding" => doc.load_shedding = value.parse().ok(),
                "break_glass" => doc.break_glass = value.parse().unwrap_or(0),
                "enabled" => doc.enabled = value != "0",
                "config" => doc.config = Some(value.to_owned()),
                "actor" => doc.actor = value.to_owned(),
                "instance" => doc.instance = value.to_owned(),
                "action" => doc.action = value.to_owned(),
                _ => {}
            }
        }
        doc
    }

    /// True when both set the same operator state (versions and authors aside).
    pub(crate) fn same_settings(&self, other: &Self) -> bool {
        self.kill_switch == other.kill_switch
            && self.emergency_level == other.emergency_level
            && self.error_budget == other.error_budget
            && self.load_shedding == other.load_shedding
            && self.break_glass == other.break_glass
            && self.enabled == other.enabled
            && self.config == other.config
    }
}

/// Three-way merge of a local change (`base` → `mine`) onto the stored `theirs`: a setting only
/// this instance changed keeps its value, every other setting is the stored one. Returns the
/// merged document (authored by `mine`) and the settings both changed to different values.
pub(crate) fn merge(base: &OpsDoc, mine: &OpsDoc, theirs: &OpsDoc) -> (OpsDoc, Vec<&'static str>) {
    let mut merged = theirs.clone();
    let mut lost = Vec::new();
    macro_rules! field {
        ($f:ident, $name:literal) => {
            if mine.$f != base.$f {
                if theirs.$f == base.$f {
                    merged.$f = mine.$f.clone();
                } else if theirs.$f != mine.$f {
                    lost.push($name);
                }
            }
        };
    }
    field!(kill_switch, "kill_switch");
    field!(emergency_level, "emergency");
    field!(error_budget, "error_budget");
    field!(load_shedding, "load_shedding");
    field!(enabled, "enabled");
    field!(config, "config");
    // Uses of break glass add up.
    merged.break_glass = theirs.break_glass + mine.break_glass.saturating_sub(base.break_glass);
    merged.actor.clone_from(&mine.actor);
    merged.instance.clone_from(&mine.instance);
    merged.action.clone_from(&mine.action);
    (merged, lost)
}

/// One instance's view of its throttle's operator state.
#[derive(Debug, Default)]
pub(crate) struct OpsState {
    /// The stored version this instance applied last (version 0: none yet).
    pub(crate) applied: OpsDoc,
    /// Operator changes made here and not stored yet: (the version they were made on, the
    /// document they make).
    pub(crate) pending: Option<(OpsDoc, OpsDoc)>,
    /// The uses of break glass the local state reflects.
    pub(crate) break_glass_seen: u64,
    /// The document was read from the store at least once.
    pub(crate) loaded: bool,
}

/// The fleet's operator state as one instance knows it (see
/// [`AdaptiveThrottle::sync_fleet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FleetOps {
    /// The stored version this instance applied last (0: none).
    pub version: u64,
    /// True when an operator change made here is not stored yet: it applies on this instance
    /// only, for now.
    pub pending: bool,
}

impl AdaptiveThrottle {
    /// Records an operator change just applied here, for the fleet (a no-op without a store).
    pub(crate) fn note_ops(&self, action: &str, change: impl FnOnce(&mut OpsDoc)) {
        let Some(fleet) = self.fleet() else { return };
        let actor = crate::audit::current_actor().unwrap_or_else(|| "api".into());
        let mut ops = fleet.ops.lock();
        let (base, mut desired) = match ops.pending.take() {
            Some(pending) => pending,
            None => (ops.applied.clone(), ops.applied.clone()),
        };
        change(&mut desired);
        ops.break_glass_seen = ops.break_glass_seen.max(desired.break_glass);
        desired.actor = actor;
        desired.instance = fleet.settings.instance.to_string();
        desired.action = action.to_owned();
        ops.pending = Some((base, desired));
        drop(ops);
        fleet.wake.notify_one();
    }

    /// The operator state as this instance knows it.
    pub(crate) fn fleet_ops(&self) -> FleetOps {
        match self.fleet() {
            None => FleetOps {
                version: 0,
                pending: false,
            },
            Some(fleet) => {
                let ops = fleet.ops.lock();
                FleetOps {
                    version: ops.applied.version,
                    pending: ops.pending.is_some(),
                }
            }
        }
    }

    /// Fleet mode: reads the fleet's operator state now and applies it, then stores the
    /// operator changes made here that are not stored yet. The sync task does the same as the
    /// first thing it does, on every announcement and after a reconnection; call this before
    /// serving to be sure an instance starts with the fleet's state (a kill switch engaged
    /// before it started, for instance). Without a store there is nothing to read: it answers
    /// at once with version 0.
    ///
    /// # Errors
    ///
    /// The store's error (every call is bounded by the store timeout); the local state is
    /// unchanged, and pending changes stay pending.
    pub async fn sync_fleet(&self) -> Result<FleetOps, StoreError> {
        if let Some(fleet) = self.fleet() {
            fleet.ops_stale.store(true, Ordering::Release);
            self.sync_ops().await?;
        }
        Ok(self.fleet_ops())
    }

    /// Stores what is pending here, unless the store is degraded (then the change stays
    /// local and pending, reported as not propagated).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) async fn propagate_ops(&self) -> FleetOps {
        if let Some(fleet) = self.fleet() {
            if fleet.health() == StoreHealth::Connected {
                let _ = self.sync_ops().await;
            }
        }
        self.fleet_ops()
    }

    /// Reads the stored document when it may be newer than the one applied, then writes what
    /// is pending (a few compare-and-swap rounds at most; the rest waits for the next sync).
    pub(crate) async fn sync_ops(&self) -> Result<(), StoreError> {
        let fleet = self.fleet().expect("fleet mode");
        let s = fleet.settings.clone();
        let _gate = fleet.ops_gate.lock().await;
        if fleet.ops_stale.swap(false, Ordering::AcqRel) {
            match self.store_call(s.store.load_ops(&s.name)).await {
                Ok(record) => self.adopt_ops(&record),
                Err(e) => {
                    fleet.ops_stale.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        for _ in 0..4 {
            let (expected, doc) = {
                let mut ops = fleet.ops.lock();
                match &ops.pending {
                    None => return Ok(()),
                    Some((_, desired)) if desired.same_settings(&ops.applied) => {
                        ops.pending = None;
                        return Ok(());
                    }
                    Some((_, desired)) => (ops.applied.version, desired.clone()),
                }
            };
            let encoded = doc.encode();
            match self
                .store_call(s.store.write_ops(&s.name, expected, &encoded))
                .await?
            {
                OpsWrite::Written(version) => {
                    let mut written = doc.clone();
                    written.version = version;
                    let mut ops = fleet.ops.lock();
                    ops.pending = match ops.pending.take() {
                        // Changed again while the write was in flight: the rest is pending
                        // on top of what was just stored.
                        Some((_, desired)) if !desired.same_settings(&doc) => {
                            Some((written.clone(), desired))
                        }
                        _ => None,
                    };
                    ops.applied = written;
                    ops.loaded = true;
                    drop(ops);
                    crate::audit::with_actor(&doc.actor, || {
                        self.transition(|_, at, events| {
                            events.push(ThrottleEvent::FleetOpsWritten {
                                at,
                                version,
                                actor: doc.actor.clone(),
                                instance: doc.instance.clone(),
                                action: doc.action.clone(),
                            })
                        })
                    });
                }
                OpsWrite::Conflict(record) => self.adopt_ops(&record),
            }
        }
        Ok(())
    }

    /// Applies a stored document read from the store, merged with what is pending here.
    fn adopt_ops(&self, record: &OpsRecord) {
        let fleet = self.fleet().expect("fleet mode");
        let mut ops = fleet.ops.lock();
        let first = !ops.loaded;
        ops.loaded = true;
        if record.version == ops.applied.version {
            return;
        }
        let theirs = OpsDoc::decode(record);
        if record.version < ops.applied.version {
            // The store lost the state (flushed, or another store): what this instance applied
            // is written again on top of what the store has.
            let desired = match ops.pending.take() {
                Some((_, desired)) => desired,
                None => ops.applied.clone(),
            };
            ops.pending = Some((theirs.clone(), desired));
            ops.applied = theirs;
            drop(ops);
            fleet.wake.notify_one();
            return;
        }
        let (target, lost) = match ops.pending.take() {
            None => (theirs.clone(), Vec::new()),
            Some((base, desired)) => {
                let (merged, lost) = merge(&base, &desired, &theirs);
                if !merged.same_settings(&theirs) {
                    ops.pending = Some((theirs.clone(), merged.clone()));
                }
                (merged, lost)
            }
        };
        // A fresh instance does not replay the uses of break glass before it started.
        let break_glass = !first && target.break_glass > ops.break_glass_seen;
        ops.break_glass_seen = ops.break_glass_seen.max(target.break_glass);
        let config_changed = target.config != ops.applied.config;
        ops.applied = theirs.clone();
        drop(ops);
        self.apply_ops(&target, break_glass, config_changed);
        let me = fleet.settings.instance.to_string();
        crate::audit::with_actor(&theirs.actor, || {
            self.transition(|_, at, events| {
                events.push(ThrottleEvent::FleetOpsApplied {
                    at,
                    version: theirs.version,
                    actor: theirs.actor.clone(),
                    instance: theirs.instance.clone(),
                    action: theirs.action.clone(),
                    applied_by: me,
                });
                if !lost.is_empty() {
                    events.push(ThrottleEvent::FleetOpsConflict {
                        at,
                        version: theirs.version,
                        settings: lost.join(","),
                        actor: theirs.actor.clone(),
                        instance: theirs.instance.clone(),
                    });
                }
            })
        });
    }

    /// Makes the local state what `doc` says, setting by setting, audited as its actor's.
    fn apply_ops(&self, doc: &OpsDoc, break_glass: bool, config_changed: bool) {
        crate::audit::with_actor(&doc.actor, || {
            if break_glass {
                self.transition(|c, now, events| c.break_glass(now, events));
            }
            let state = self.governance().state();
            if state.kill_switch != doc.kill_switch {
                self.transition(|c, now, events| c.set_kill_switch(doc.kill_switch, now, events));
            }
            if state.emergency_level != doc.emergency_level {
                self.transition(|c, now, events| {
                    c.set_emergency_level(doc.emergency_level, now, events)
                });
            }
            if state.error_budget != doc.error_budget {
                self.transition(|c, now, events| c.set_error_budget(doc.error_budget, now, events));
            }
            if state.load_shedding != doc.load_shedding {
                self.transition(|c, now, events| {
                    c.set_load_shedding(doc.load_shedding, now, events)
                });
            }
            if self.is_disabled() == doc.enabled {
                self.set_enabled_local(doc.enabled);
            }
            #[cfg(feature = "serde")]
            if let Some(cfg) = doc
                .config
                .as_deref()
                .filter(|_| config_changed)
                .and_then(|c| serde_json::from_str::<crate::config::ThrottleConfig>(c).ok())
            {
                self.swap_config_local(cfg);
            }
            #[cfg(not(feature = "serde"))]
            let _ = config_changed;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(f: impl FnOnce(&mut OpsDoc)) -> OpsDoc {
        let mut d = OpsDoc::default();
        f(&mut d);
        d
    }

    #[test]
    fn ops_document_round_trips_and_ignores_what_it_does_not_know() {
        let d = doc(|d| {
            d.version = 7;
            d.kill_switch = true;
            d.emergency_level = 2;
            d.error_budget = ErrorBudget::Critical;
            d.load_shedding = Some(40);
            d.break_glass = 3;
            d.enabled = false;
            d.config = Some("{\"a\":1}".into());
            d.actor = "alice\nbob".into();
            d.instance = "node-a".into();
            d.action = "kill_switch".into();
        });
        let record = OpsRecord {
            version: 7,
            document: format!("{}future=1\nnot a line\n", d.encode()),
        };
        let back = OpsDoc::decode(&record);
        assert!(back.same_settings(&d));
        assert_eq!(back.actor, "alice bob");
        assert_eq!(back.version, 7);
        assert_eq!(OpsDoc::decode(&OpsRecord::default()), OpsDoc::default());
    }

    #[test]
    fn ops_merge_keeps_mine_where_only_i_changed_and_theirs_where_both_did() {
        let base = OpsDoc::default();
        let mine = doc(|d| {
            d.kill_switch = true;
            d.emergency_level = 1;
            d.break_glass = 1;
        });
        let theirs = doc(|d| {
            d.emergency_level = 2;
            d.load_shedding = Some(50);
            d.break_glass = 1;
        });
        let (merged, lost) = merge(&base, &mine, &theirs);
        assert!(merged.kill_switch);
        assert_eq!(merged.emergency_level, 2);
        assert_eq!(merged.load_shedding, Some(50));
        assert_eq!(merged.break_glass, 2);
        assert_eq!(lost, vec!["emergency"]);
        // The same change on both sides is no conflict.
        let (_, lost) = merge(&base, &theirs, &theirs);
        assert!(lost.is_empty());
    }
}
