//! The per-key cooldown table and its rules, run under the coordinator's lock with `now` passed
//! in. Nothing here sleeps, publishes or calls out: each rule returns what happened, and the
//! caller acts on it once the lock is released.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::CoordinatorConfig;
use super::cooldown::{cooldown, header_floor, Cooldown};

/// One key that has been rate limited and not yet recovered.
///
/// A key is in the table from its first 429 until a canary is answered without one, so
/// "in the table" is exactly "`consecutive > 0`, the next call is a canary".
#[derive(Debug)]
struct KeyState {
    consecutive: u32,
    /// The end of the cooldown in force; only ever moves later (until the key leaves).
    until: Instant,
    /// A canary has been let through and has not been answered yet.
    canary_in_flight: bool,
    /// Calls dispatched with a sequence number below this were already in flight when the
    /// ladder last climbed: their 429s belong to that burst.
    armed_seq: u64,
    /// Bumped whenever a waiting call should look again: the canary settled, the cooldown
    /// moved, the key recovered or was cleared. A receiver subscribed under the lock cannot
    /// miss a bump made under the lock later.
    wake: watch::Sender<u64>,
}

impl KeyState {
    fn wake(&self) {
        self.wake.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// What a call should do now.
#[derive(Debug)]
pub(crate) enum Step {
    /// Go ahead; as the key's canary if `canary`.
    Go { canary: bool },
    /// Fail at once with `Deferred { not_before }`.
    Defer(Instant),
    /// Wait until `until` (never past the call's bound; `None`: no bound) or until `wake`
    /// changes, then ask again: sleeping through a cooldown, or, once it is over, waiting for
    /// the canary's answer.
    Wait {
        until: Option<Instant>,
        wake: watch::Receiver<u64>,
    },
}

/// What one 429 did to its key.
#[derive(Debug)]
pub(crate) struct Armed {
    /// The key's consecutive count afterwards.
    pub(crate) consecutive: u32,
    /// It climbed the ladder (a new consecutive 429, not a straggler of the last burst).
    pub(crate) climbed: bool,
    /// The cooldown it earned, and whether the stored end moved (`Some(extended)`).
    pub(crate) cooldown: Option<(Cooldown, Instant, bool)>,
}

/// Every rate-limited key, and the jitter generator.
#[derive(Debug)]
pub(crate) struct Table {
    keys: HashMap<Box<str>, KeyState, foldhash::fast::RandomState>,
    rng: u64,
}

impl Table {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            keys: HashMap::default(),
            rng: seed,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// What a call on `key` should do at `now`, if it may wait until `deadline` (`None`: no
    /// bound). Marks the canary as out when it answers `Go { canary: true }`.
    pub(crate) fn step(&mut self, key: &str, now: Instant, deadline: Option<Instant>) -> Step {
        let Some(s) = self.keys.get_mut(key) else {
            return Step::Go { canary: false };
        };
        let beyond = |t: Instant| deadline.is_some_and(|d| t > d);
        if now < s.until {
            return if beyond(s.until) {
                Step::Defer(s.until)
            } else {
                Step::Wait {
                    until: Some(s.until),
                    wake: s.wake.subscribe(),
                }
            };
        }
        if s.canary_in_flight {
            // The canary's answer time is unknown: wait for it up to the bound, and if the bound
            // is already here, the earliest sensible retry is now.
            return if deadline.is_some_and(|d| d <= now) {
                Step::Defer(now)
            } else {
                Step::Wait {
                    until: deadline,
                    wake: s.wake.subscribe(),
                }
            };
        }
        s.canary_in_flight = true;
        Step::Go { canary: true }
    }

    /// A 429 (or a cooling 503) answered a call on `key` dispatched with sequence number `seq`;
    /// `next_seq` is the number the next dispatched call will get.
    pub(crate) fn on_rate_limited(
        &mut self,
        cfg: &CoordinatorConfig,
        key: &str,
        seq: u64,
        next_seq: u64,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> Armed {
        let rng = &mut self.rng;
        let s = self.keys.entry(key.into()).or_insert_with(|| KeyState {
            consecutive: 0,
            until: now,
            canary_in_flight: false,
            armed_seq: 0,
            wake: watch::channel(0).0,
        });
        let climbed = cfg.count_concurrent_429s || s.consecutive == 0 || seq >= s.armed_seq;
        let earned = if climbed {
            s.consecutive = s.consecutive.saturating_add(1);
            s.armed_seq = next_seq;
            Some(cooldown(cfg, s.consecutive, retry_after, rng))
        } else {
            retry_after.map(|h| header_floor(cfg, h))
        };
        let cooldown = earned.and_then(|c| {
            let end = now.checked_add(c.delay)?;
            if end <= s.until {
                return None;
            }
            let extended = s.until > now;
            s.until = end;
            // Waiting calls re-check their bound now rather than at the old end.
            s.wake();
            Some((c, end, extended))
        });
        Armed {
            consecutive: s.consecutive,
            climbed,
            cooldown,
        }
    }

    /// Another instance of the fleet cooled `key` down until `until`: the cooldown here ends no
    /// earlier (it only ever extends), and the count is at least theirs. Whether it moved.
    pub(crate) fn adopt(
        &mut self,
        key: &str,
        until: Instant,
        consecutive: u32,
        next_seq: u64,
        now: Instant,
    ) -> bool {
        let s = self.keys.entry(key.into()).or_insert_with(|| KeyState {
            consecutive: 0,
            until: now,
            canary_in_flight: false,
            armed_seq: next_seq,
            wake: watch::channel(0).0,
        });
        s.consecutive = s.consecutive.max(consecutive).max(1);
        if until <= s.until {
            return false;
        }
        s.until = until;
        s.wake();
        true
    }

    /// The canary on `key` settled without a verdict (an error, or its caller gave up): the
    /// next call in line becomes the canary.
    pub(crate) fn release_canary(&mut self, key: &str) {
        if let Some(s) = self.keys.get_mut(key) {
            s.canary_in_flight = false;
            s.wake();
        }
    }

    /// The canary on `key` was answered with a 429: the next cooldown is already armed; the
    /// calls waiting on the canary re-read it.
    pub(crate) fn canary_rate_limited(&mut self, key: &str) {
        self.release_canary(key);
    }

    /// `key` recovered (its canary was answered without a 429), or was cleared by hand: it
    /// leaves the table and its waiters go ahead. Whether it was there.
    pub(crate) fn recover(&mut self, key: &str) -> bool {
        match self.keys.remove(key) {
            Some(s) => {
                s.wake();
                true
            }
            None => false,
        }
    }

    /// The cooldown left on `key` at `now`.
    pub(crate) fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let s = self.keys.get(key)?;
        Some(s.until.saturating_duration_since(now)).filter(|d| !d.is_zero())
    }

    /// The key's consecutive 429 count (0 when it is not rate limited).
    pub(crate) fn consecutive(&self, key: &str) -> u32 {
        self.keys.get(key).map_or(0, |s| s.consecutive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CoordinatorConfig {
        CoordinatorConfig::builder().jitter(0.0).build().unwrap()
    }

    #[test]
    fn a_burst_counts_once_and_its_stragglers_only_extend() {
        let (cfg, now) = (cfg(), Instant::now());
        let mut t = Table::new(1);
        // Three calls dispatched as 0, 1, 2; the first 429 arms with next_seq 3.
        let a = t.on_rate_limited(&cfg, "k", 0, 3, None, now);
        assert_eq!((a.consecutive, a.climbed), (1, true));
        let b = t.on_rate_limited(&cfg, "k", 1, 3, Some(Duration::from_secs(30)), now);
        assert_eq!((b.consecutive, b.climbed), (1, false));
        let (c, end, extended) = b.cooldown.expect("the header extends");
        assert_eq!(
            (c.delay, end, extended),
            (Duration::from_secs(30), now + c.delay, true)
        );
        let c = t.on_rate_limited(&cfg, "k", 2, 3, None, now);
        assert!(c.cooldown.is_none(), "no header, no climb: nothing changes");
        // A call dispatched after the arming climbs.
        let d = t.on_rate_limited(&cfg, "k", 3, 4, None, now);
        assert_eq!((d.consecutive, d.climbed), (2, true));
    }

    #[test]
    fn one_canary_after_the_cooldown_and_recovery_clears() {
        let (cfg, now) = (cfg(), Instant::now());
        let mut t = Table::new(1);
        t.on_rate_limited(&cfg, "k", 0, 1, None, now);
        assert!(matches!(
            t.step("k", now, None),
            Step::Wait { until: Some(_), .. }
        ));
        let later = now + Duration::from_secs(5);
        assert!(matches!(
            t.step("k", later, None),
            Step::Go { canary: true }
        ));
        assert!(matches!(
            t.step("k", later, None),
            Step::Wait { until: None, .. }
        ));
        assert!(matches!(t.step("k", later, Some(later)), Step::Defer(_)));
        t.release_canary("k");
        assert!(matches!(
            t.step("k", later, None),
            Step::Go { canary: true }
        ));
        assert!(t.recover("k"));
        assert!(matches!(
            t.step("k", later, None),
            Step::Go { canary: false }
        ));
        assert_eq!(t.len(), 0);
    }
}
