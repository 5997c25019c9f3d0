//! What the admin router remembers: one snapshot of every registered throttle per history
//! interval (1 s by default), the last [`HISTORY_CAPACITY`] of them, and the moments an
//! application marked on a [`Timeline`].
//!
//! A sampler task reads the throttles' snapshots (`stats()`, `concurrency_stats()`) once per
//! interval, as the event stream's `tick` does; the request path is untouched. The task holds the
//! router's state only weakly, so it ends at its next interval once the router is dropped.
//!
//! Snapshots are taken in rounds: round `seq` holds one sample per throttle registered at that
//! moment (a throttle registered later appears from the next round on) and the marks made since
//! the previous round. The ring keeps the last [`HISTORY_CAPACITY`] rounds, so at most that many
//! samples of each throttle. Rounds are numbered from 1 within the router's `epoch` (the
//! wall-clock millisecond it was built, so that a reader can tell a restarted server), and a
//! reader can take the history, then the live rounds after it (`GET /events?since=seq`), with no
//! gap and no duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::AdminState;
use crate::registry::ThrottleRegistry;
use crate::throttle::AdaptiveThrottle;

/// Rounds of snapshots the admin router keeps: ten minutes at the default one-second interval.
pub const HISTORY_CAPACITY: usize = 600;

/// Marks a [`Timeline`] keeps until an admin router has collected them.
const MARKS_KEPT: usize = 256;
/// Characters of a mark's label kept.
const LABEL_MAX: usize = 120;
/// Rounds a slow event-stream client may fall behind before it is told it lagged.
const LIVE_ROUNDS_QUEUED: usize = 64;

/// A timeline on which an application marks moments ("spike", "deploy 1.4.2"): the admin
/// router records each mark in its history, and the console draws it as a labelled vertical line
/// across its charts.
///
/// Cheap to clone; clones share the marks. Give one to [`AdminOptions::timeline`] and keep a
/// clone where the moments happen:
///
/// ```no_run
/// use tower_adaptive_throttle::admin::{AdminOptions, Timeline};
/// use tower_adaptive_throttle::ThrottleRegistry;
///
/// # async fn run() {
/// let timeline = Timeline::new();
/// let admin = AdminOptions::new(ThrottleRegistry::new())
///     .timeline(timeline.clone())
///     .router();
/// timeline.mark("capacity drop");
/// # }
/// ```
///
/// A mark takes a short lock and never waits for the router. The timeline keeps the latest
/// 256 marks until a router's next snapshot collects them; the router then keeps them as long as
/// the snapshot they arrived with. The time of a mark is tokio's clock (paused time included).
///
/// [`AdminOptions::timeline`]: super::AdminOptions::timeline
#[derive(Clone, Default)]
pub struct Timeline {
    marks: Arc<Mutex<Marks>>,
}

#[derive(Default)]
struct Marks {
    /// Ids of marks made so far; the next mark's id is this plus one.
    made: u64,
    kept: VecDeque<Mark>,
}

#[derive(Clone)]
struct Mark {
    id: u64,
    at: Instant,
    label: Arc<str>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let marks = self.marks.lock();
        f.debug_struct("Timeline")
            .field("marks_made", &marks.made)
            .field("kept", &marks.kept.len())
            .finish()
    }
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks this moment with `label` (cut to 120 characters).
    pub fn mark(&self, label: impl Into<String>) {
        let label: String = label.into();
        let label: Arc<str> = if label.chars().count() > LABEL_MAX {
            Arc::from(label.chars().take(LABEL_MAX).collect::<String>())
        } else {
            Arc::from(label)
        };
        let at = Instant::now();
        let mut marks = self.marks.lock();
        marks.made += 1;
        let id = marks.made;
        if marks.kept.len() == MARKS_KEPT {
            marks.kept.pop_front();
        }
        marks.kept.push_back(Mark { id, at, label });
    }

    /// The marks with an id above `after`, oldest first.
    fn marks_after(&self, after: u64) -> Vec<Mark> {
        let marks = self.marks.lock();
        marks
            .kept
            .iter()
            .filter(|m| m.id > after)
            .cloned()
            .collect()
    }
}

/// One throttle's snapshot in a round.
struct Sample {
    name: Arc<str>,
    limit: u32,
    inflight: Option<u32>,
    inflight_limit: Option<u32>,
    smoothed_rtt_ms: Option<f64>,
    gradient: f64,
    /// `None` in a throttle's first round (no previous totals to take a rate from).
    admitted_per_s: Option<f64>,
    rejected_per_s: Option<f64>,
    allowed_total: u64,
    rejected_total: u64,
    regime: &'static str,
    /// Stages applied, stages, fraction, milliseconds to the next stage.
    ramp: Option<(usize, usize, f64, f64)>,
    emergency_level: u8,
    breaker: &'static str,
    /// The cost axis, when the throttle has one.
    cost: Option<CostSample>,
}

/// The cost axis in one round: the budget per key, what all keys spent in the window, the keys
/// spending, the totals admitted and refunded, and the unit.
struct CostSample {
    budget: u64,
    spent: u64,
    keys: usize,
    admitted: u64,
    refunded: u64,
    denied: u64,
    unit: Arc<str>,
}

impl Sample {
    fn to_json(&self) -> Map<String, Value> {
        let value = json!({
            "limit": self.limit,
            "inflight": self.inflight,
            "inflight_limit": self.inflight_limit,
            "smoothed_rtt_ms": self.smoothed_rtt_ms,
            "gradient": self.gradient,
            "admitted_per_s": self.admitted_per_s,
            "rejected_per_s": self.rejected_per_s,
            "allowed_total": self.allowed_total,
            "rejected_total": self.rejected_total,
            "regime": self.regime,
            "ramp": self.ramp.map(|(applied, stages, fraction, next_in_ms)| json!({
                "stages_applied": applied,
                "stages": stages,
                "fraction": fraction,
                "next_in_ms": next_in_ms,
            })),
            "emergency_level": self.emergency_level,
            "breaker": self.breaker,
            "cost": self.cost.as_ref().map(|c| json!({
                "budget": c.budget,
                "spent": c.spent,
                "keys": c.keys,
                "admitted_total": c.admitted,
                "refunded_total": c.refunded,
                "denied_total": c.denied,
                "unit": &*c.unit,
            })),
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// A mark as recorded in the history: its time on the history's clock.
struct RecordedMark {
    id: u64,
    t_ms: f64,
    label: Arc<str>,
}

impl RecordedMark {
    fn to_json(&self) -> Value {
        json!({ "id": self.id, "t": self.t_ms, "label": &*self.label })
    }
}

/// One snapshot of every registered throttle, and the marks made since the previous one.
pub(super) struct Round {
    epoch: u64,
    pub(super) seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    t_ms: f64,
    samples: Vec<Sample>,
    marks: Vec<RecordedMark>,
}

impl Round {
    /// The round as the event stream sends it (`only`: one throttle's sample, or all).
    pub(super) fn to_json(&self, only: Option<&str>) -> Value {
        let throttles: Vec<Value> = self
            .samples
            .iter()
            .filter(|s| only.is_none_or(|name| name == &*s.name))
            .map(|s| {
                let mut map = Map::new();
                map.insert("throttle".into(), json!(&*s.name));
                map.extend(s.to_json());
                Value::Object(map)
            })
            .collect();
        json!({
            "epoch": self.epoch,
            "seq": self.seq,
            "t": self.t_ms,
            "throttles": throttles,
            "markers": self.marks.iter().map(RecordedMark::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The previous totals of a throttle, for its rates.
struct Previous {
    at: Instant,
    allowed: u64,
    rejected: u64,
}

struct Ring {
    rounds: VecDeque<Arc<Round>>,
    next_seq: u64,
    previous: HashMap<Arc<str>, Previous>,
    marks_seen: u64,
}

/// The history of one admin router.
pub(super) struct History {
    interval: Duration,
    timeline: Option<Timeline>,
    /// The history's clock: tokio's `Instant` at `start` is `start_wall_ms` on the wall clock.
    start: Instant,
    start_wall_ms: f64,
    /// `start_wall_ms`, whole: what names this history's rounds besides their numbers.
    epoch: u64,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Round>>,
    sampler_started: AtomicBool,
}

impl History {
    pub(super) fn new(interval: Duration, timeline: Option<Timeline>) -> Self {
        let start_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        Self {
            interval,
            timeline,
            start: Instant::now(),
            start_wall_ms,
            epoch: start_wall_ms as u64,
            ring: Mutex::new(Ring {
                rounds: VecDeque::with_capacity(HISTORY_CAPACITY),
                next_seq: 1,
                previous: HashMap::new(),
                marks_seen: 0,
            }),
            live: broadcast::channel(LIVE_ROUNDS_QUEUED).0,
            sampler_started: AtomicBool::new(false),
        }
    }

    /// `at` on the wall clock, in milliseconds since the Unix epoch.
    fn wall_ms(&self, at: Instant) -> f64 {
        if at >= self.start {
            self.start_wall_ms + (at - self.start).as_secs_f64() * 1000.0
        } else {
            self.start_wall_ms - (self.start - at).as_secs_f64() * 1000.0
        }
    }

    /// Takes one round of snapshots of every throttle in `registry`, keeps it and sends it to
    /// the live readers.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn sample(&self, registry: &ThrottleRegistry) {
        // Snapshots are read before the ring's lock is taken: a throttle's `stats()` takes its
        // controller's lock, and readers of the history should not wait for that.
        let now = Instant::now();
        let throttles = registry.list();
        let snapshots: Vec<_> = throttles
            .iter()
            .map(|(name, t)| (name.as_str(), snapshot(t)))
            .collect();
        let mut ring = self.ring.lock();
        let mut marks = match &self.timeline {
            Some(timeline) => timeline.marks_after(ring.marks_seen),
            None => Vec::new(),
        };
        if let Some(last) = marks.last() {
            ring.marks_seen = last.id;
        }
        // Marks made long before the router was built are no part of its history.
        if let Some(earliest) = self.start.checked_sub(self.interval) {
            marks.retain(|m| m.at >= earliest);
        }
        let mut samples = Vec::with_capacity(snapshots.len());
        let mut previous = HashMap::with_capacity(snapshots.len());
        for (name, mut sample) in snapshots {
            let (name, before) = match ring.previous.remove_entry(name) {
                Some((name, before)) => (name, Some(before)),
                None => (Arc::from(name), None),
            };
            if let Some(before) = before {
                let dt = (now - before.at).as_secs_f64();
                if dt > 0.0 {
                    let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
                    sample.admitted_per_s = Some(rate(sample.allowed_total, before.allowed));
                    sample.rejected_per_s = Some(rate(sample.rejected_total, before.rejected));
                }
            }
            previous.insert(
                name.clone(),
                Previous {
                    at: now,
                    allowed: sample.allowed_total,
                    rejected: sample.rejected_total,
                },
            );
            sample.name = name;
            samples.push(sample);
        }
        // Throttles no longer registered are forgotten here (their rounds stay in the ring).
        ring.previous = previous;
        let round = Arc::new(Round {
            epoch: self.epoch,
            seq: ring.next_seq,
            t_ms: self.wall_ms(now),
            samples,
            marks: marks
                .into_iter()
                .map(|m| RecordedMark {
                    id: m.id,
                    t_ms: self.wall_ms(m.at),
                    label: m.label,
                })
                .collect(),
        });
        ring.next_seq += 1;
        if ring.rounds.len() == HISTORY_CAPACITY {
            ring.rounds.pop_front();
        }
        ring.rounds.push_back(round.clone());
        // Sent under the lock, so a reader that subscribes and then reads the ring under the
        // same lock sees every round exactly once, in one or the other.
        let _ = self.live.send(round);
    }

    /// The rounds kept after round `since` (`None`: none), a receiver of the rounds that follow
    /// them, and the number of the round the reader has seen last. A round of another epoch (a
    /// reader of a server that has restarted since) or not taken yet counts as none seen: all
    /// the rounds kept are sent.
    pub(super) fn follow(
        &self,
        since: Option<(Option<u64>, u64)>,
    ) -> (Vec<Arc<Round>>, broadcast::Receiver<Arc<Round>>, u64) {
        let ring = self.ring.lock();
        let live = self.live.subscribe();
        let taken = ring.next_seq - 1;
        let since = match since {
            None => return (Vec::new(), live, taken),
            Some((Some(epoch), _)) if epoch != self.epoch => 0,
            Some((_, seq)) if seq > taken => 0,
            Some((_, seq)) => seq,
        };
        let kept = ring
            .rounds
            .iter()
            .filter(|r| r.seq > since)
            .cloned()
            .collect();
        (kept, live, since)
    }

    /// The history of `only` (or of every throttle) as JSON: `{epoch, interval_ms, capacity, last_seq,
    /// throttles: {name: [sample…]}, markers: [mark…]}`, each sample with its round's `seq` and
    /// `t` (wall clock, milliseconds since the Unix epoch).
    pub(super) fn to_json(&self, only: Option<&str>) -> Value {
        let ring = self.ring.lock();
        let mut throttles: Map<String, Value> = Map::new();
        let mut markers = Vec::new();
        for round in &ring.rounds {
            for s in round
                .samples
                .iter()
                .filter(|s| only.is_none_or(|name| name == &*s.name))
            {
                let mut map = Map::new();
                map.insert("seq".into(), json!(round.seq));
                map.insert("t".into(), json!(round.t_ms));
                map.extend(s.to_json());
                if let Value::Array(list) = throttles
                    .entry(s.name.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.push(Value::Object(map));
                }
            }
            markers.extend(round.marks.iter().map(RecordedMark::to_json));
        }
        json!({
            "epoch": self.epoch,
            "interval_ms": self.interval.as_secs_f64() * 1000.0,
            "capacity": HISTORY_CAPACITY,
            "last_seq": ring.rounds.back().map_or(0, |r| r.seq),
            "throttles": throttles,
            "markers": markers,
        })
    }
}

/// A throttle's snapshot, without rates (the round adds them).
fn snapshot(t: &AdaptiveThrottle) -> Sample {
    let s = t.stats();
    let concurrency = t.concurrency_stats();
    Sample {
        name: Arc::from(""),
        // The headline limit, as `current_limit()` defines it.
        limit: t.current_limit(),
        inflight: concurrency.as_ref().map(|c| c.inflight),
        inflight_limit: concurrency.as_ref().map(|c| c.limit),
        smoothed_rtt_ms: s.smoothed_rtt.map(|d| d.as_secs_f64() * 1000.0),
        gradient: s.gradient,
        admitted_per_s: None,
        rejected_per_s: None,
        allowed_total: s.allowed_requests,
        rejected_total: s.rejected_requests,
        regime: s.regime.as_str(),
        ramp: s.ramp.map(|r| {
            (
                r.stages_applied,
                r.stages,
                r.fraction,
                r.next_in.as_secs_f64() * 1000.0,
            )
        }),
        emergency_level: s.governance.emergency_level,
        breaker: s.governance.breaker.as_str(),
        cost: s.cost.map(|c| CostSample {
            budget: c.budget,
            spent: c.spent_in_window,
            keys: c.active_keys,
            admitted: c.reserved_total,
            refunded: c.refunded_total,
            denied: c.denied_total,
            unit: Arc::from(c.unit),
        }),
    }
}

/// Starts the sampler of `state`'s history unless it runs already; `false` when there is no
/// tokio runtime to run it on (the router then tries again on each request).
pub(super) fn start_sampler(state: &Arc<AdminState>) -> bool {
    if state.history.sampler_started.load(Ordering::Acquire) {
        return true;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    if state.history.sampler_started.swap(true, Ordering::AcqRel) {
        return true;
    }
    let weak: Weak<AdminState> = Arc::downgrade(state);
    let interval = state.history.interval;
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // Only for the length of one round: a dropped router ends the task.
            let Some(state) = weak.upgrade() else {
                return;
            };
            state.history.sample(&state.registry);
        }
    });
    true
}
