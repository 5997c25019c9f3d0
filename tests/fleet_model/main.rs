//! The model-checked overshoot bound of fleet mode's leased admission (issue 11; ThrottleKit
//! TK-016, TK-017).
//!
//! Run with `cargo test --all-features --test fleet_model -- --nocapture` to see, per
//! configuration, how many states the checker explored and the counterexamples it found for the
//! mutants.
//!
//! In leased mode an instance leases a slice of a key's window budget from the shared store and
//! spends it locally with the crate's own [`LeaseSpender`]. This test explores, with the
//! `stateright` model checker, every interleaving of that protocol over a fleet of three
//! instances, driving the real spender, and checks that the units admitted in any store window
//! never exceed the key's limit `L`, and that some window does admit exactly `L` (a limiter that
//! admits nothing would be trivially safe).
//!
//! # The protocol, as modelled
//!
//! - Time is the store's clock, in ticks; windows are aligned (window = `t ÷ W`) and two or three
//!   ticks long, so window boundaries fall between a request's send, its handling by the store
//!   and the delivery of its reply. The store keeps a counter `c[w] ≤ L` for the current window.
//! - Each instance has a local clock, the store's plus a fixed offset (negative, zero or positive,
//!   different per instance), and a `LeaseSpender` driven with its local time.
//! - **Serve**: a request at an instance calls `spend(local_now, 1)`. If it is allowed it is
//!   admitted, and counted in the window containing the store-clock time of the admission. On a
//!   miss (`NeedsRefresh`) the instance sends a lease request for the batch `B`, unless one is
//!   already in flight: concurrent misses share one request (coalescing), and the model's later
//!   serves stand for the requests that waited on it.
//! - **Refill ahead**: an instance with no request in flight may send one at any moment, whatever
//!   it still holds. This over-approximates every low-water policy.
//! - **Store**: a request is handled at any store time after it was sent (arbitrary delay):
//!   `w = t ÷ W`, grant `g = min(B, L − c[w])`, `c[w] += g`, and the reply carries `g` and
//!   `reset_in = (w + 1)·W − t`, the time left in the window (one atomic script).
//! - **Delivery**: after a further arbitrary delay the instance applies `grant(g, s + reset_in)`,
//!   where `s` is the local time at which it sent that request (a grant of 0 is a denial). That
//!   expiry is never later, on the instance's own clock, than the true window end.
//! - **Faults**: an instance may crash (it restarts with an empty spender) or give up on its
//!   request (a timeout; the spender is kept), any number of times. Its in-flight request or reply
//!   is then orphaned: the store may still handle it, and the reply is either lost or delivered to
//!   whatever spender the instance has by then, applied with that request's own send time. Both
//!   outcomes are explored. At most one orphan is in flight at a time (a crash while one is
//!   loses the crashing instance's message outright), and faults hit one instance (the
//!   instances differ only in their clock offset).
//!
//! # What the model covers and what it abstracts
//!
//! Covered: three instances; arbitrary message delay both ways (a request may be handled, and a
//! reply delivered, in a later window than it was sent); clock offsets of both signs; window
//! boundaries between any two steps; refills ahead of need; coalesced misses; crashes and
//! timeouts, with orphaned replies lost or delivered late to the restarted instance. The
//! configurations, each explored exhaustively (`N = 3`, offsets in ticks):
//!
//! | `L` | `B` | `W` | windows | offsets      | refill ahead | faults |
//! |-----|-----|-----|---------|--------------|--------------|--------|
//! | 3   | 1   | 2   | 2       | 0, −1, +1    | yes          | no     |
//! | 3   | 2   | 2   | 3       | 0, −1, +1    | yes          | no     |
//! | 3   | 3   | 2   | 3       | 0, −1, +1    | yes          | no     |
//! | 4   | 2   | 3   | 2       | 0, +2, −2    | no           | no     |
//! | 3   | 2   | 2   | 2       | 0, −1, +1    | no           | yes    |
//!
//! Abstracted: one key; every request costs 1; the store's read-modify-write of `c[w]` is atomic
//! (it is one Redis script); clocks run at the same rate (a fixed offset, no drift) and the
//! store's clock is monotonic; the lease size is fixed (no adaptive sizing, TK-018); the runtime's
//! futures, locks and Redis client are not modelled, only the messages they exchange. It is a
//! bounded model check (three instances, small `L`, `B` and horizon), not a parametric proof.
//!
//! A constant offset cancels out of the protocol: the expiry is computed on the instance's own
//! clock from its own send time. The `StoreDeadline` mutant below shows the offsets do matter to
//! a protocol that compares the store's absolute deadline with a local clock.
//!
//! To keep the state space small, states the spender cannot tell apart are merged: a spender with
//! no usable credits is replaced by a fresh one, and a reply that will be dead on arrival by a
//! plain denial. `canonical_spenders_behave_alike` checks, exhaustively on the real type, that
//! the merge is sound (the merged values answer every later `grant` and `spend` alike). Closed
//! windows are summarised by the most admitted in any window, all the properties read of them.
//!
//! # Mutants: the model has teeth
//!
//! Each changes one thing, and the checker must find a window admitting more than `L`:
//!
//! - carry-over credits (`LeaseSpender::new(L, false)`, no window coupling);
//! - the expiry computed from the reply's arrival time instead of the request's send time (with
//!   message delay the credits outlive their window);
//! - the expiry taken as the store's absolute window end and compared with the local clock (an
//!   instance whose clock runs behind keeps its credits past the window end).
//!
//! TK-017's carry-over bound `L + N·(B − 1)` is checked, and shown tight, in the setting of its
//! TLA⁺ model: a lease is one atomic step, taken on a miss whose request it then serves, with no
//! message delay, no refill ahead and no faults (limits 3 and 4, batches 2 and 3, four windows).
//! With message delay it does not hold: a reply can land without a request spending from it, so
//! an instance carries up to `B` credits. The checker finds a window admitting 7 > 3 + 3·1 for
//! `L = 3, B = 2` at depth 23, after about a million states (half a minute in a debug build, too
//! long for every `cargo test`, so it is not part of this file; the carry-over mutant already
//! shows the model catching a broken bound).

use std::hash::{Hash, Hasher};
use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model, Property};
use tower_adaptive_throttle::strategy::{LeaseSpend, LeaseSpender};

/// The fleet size.
const N: usize = 3;

/// The crate's spender, hashed through its observable fields (it is `Eq` but not `Hash`, and
/// the checker needs hashable states). Those fields are all of its state, so `Hash` agrees with
/// `Eq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spender(LeaseSpender);

impl Hash for Spender {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.limit().hash(state);
        self.0.is_window_coupled().hash(state);
        self.0.credits().hash(state);
        self.0.expires_at().hash(state);
    }
}

/// The representative of the spenders that behave like `spender` from local time `now` on: one
/// with no usable credits (none, or window-coupled ones whose window has ended) is a fresh one.
/// The spender discards expired credits lazily, on the next `spend`, and one holding no credits
/// takes any grant whole, so neither the leftover count nor the old expiry can make a difference;
/// `canonical_spenders_behave_alike` checks that on the real type.
fn canonical(spender: LeaseSpender, now: u64) -> LeaseSpender {
    let expired = spender.is_window_coupled() && spender.expires_at().is_some_and(|e| now >= e);
    if spender.credits() == 0 || expired {
        LeaseSpender::new(spender.limit(), spender.is_window_coupled()).expect("limit > 0")
    } else {
        spender
    }
}

/// How a delivered grant's expiry is computed, on the instance's local clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// The protocol: the request's local send time plus the reply's `reset_in`.
    SendTime,
    /// Mutant: the reply's local arrival time plus `reset_in`.
    ArrivalTime,
    /// Mutant: the store's absolute window end, read as a local time.
    StoreDeadline,
}

/// One configuration of the protocol.
#[derive(Clone, Debug)]
struct Fleet {
    name: &'static str,
    /// The key's limit per window, `L`.
    limit: u64,
    /// The lease size asked for, `B`.
    batch: u64,
    /// The window length, in ticks.
    window: u64,
    /// The last store time explored.
    horizon: u64,
    /// Each instance's clock offset from the store's, in ticks.
    offsets: [i64; N],
    /// Window-coupled spenders (the protocol) or carry-over ones (a mutant).
    window_coupled: bool,
    expiry: Expiry,
    /// With delay, requests and replies are messages handled and delivered at any later time;
    /// without, a lease is one atomic step on a miss, which also serves the missing request
    /// (TK-017's TLA⁺ model).
    delays: bool,
    /// Whether an instance may ask for a lease before it runs out.
    refill_ahead: bool,
    /// Whether instance 0 crashes and times out.
    faults: bool,
    /// A second bound checked alongside `L`, and that must be reached (tightness).
    bound: u64,
}

/// A lease request or its reply, in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Msg {
    /// A request for `B` credits, sent at local time `sent`, not yet handled by the store.
    Request { sent: u64 },
    /// The store's answer: `granted` credits and what the instance computes their expiry from
    /// (see [`Fleet::expiry_basis`]).
    Reply { granted: u64, basis: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Instance {
    spender: Spender,
    /// This incarnation's request or reply in flight (misses coalesce on it).
    in_flight: Option<Msg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct State {
    /// The store's time.
    now: u64,
    /// The store's counter for the current window, `c[now ÷ W]` (a closed window's is never read
    /// again).
    leased: u64,
    /// Units admitted in the current window, across the fleet.
    admitted: u64,
    /// The most admitted in any window so far, the current one included: all the properties read
    /// of the closed windows (a window's count passes through every value up to its final one).
    peak: u64,
    instances: [Instance; N],
    /// A message whose instance crashed or gave up on it since it was sent, and its instance.
    orphan: Option<(usize, Msg)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// The store's clock advances one tick (every clock does).
    Tick,
    /// A request arrives at an instance.
    Serve(usize),
    /// An instance asks for a lease ahead of need.
    Refill(usize),
    /// The store handles an instance's request.
    Handle(usize),
    /// An instance receives its reply.
    Deliver(usize),
    /// The store handles the orphaned request.
    HandleOrphan,
    /// The orphaned reply reaches its instance.
    DeliverOrphan,
    /// The orphaned message is lost.
    LoseOrphan,
    /// An instance crashes and restarts with an empty spender.
    Crash(usize),
    /// An instance gives up on its in-flight request and keeps its spender.
    Timeout(usize),
}

impl Fleet {
    /// The protocol, with message delay and refills ahead, over `windows` windows.
    fn leased(
        name: &'static str,
        limit: u64,
        batch: u64,
        window: u64,
        windows: u64,
        offsets: [i64; N],
    ) -> Self {
        Self {
            name,
            limit,
            batch,
            window,
            horizon: windows * window - 1,
            offsets,
            window_coupled: true,
            expiry: Expiry::SendTime,
            delays: true,
            refill_ahead: true,
            faults: false,
            bound: limit,
        }
    }

    /// TK-017's setting: atomic leases on a miss, no refill ahead, no faults, no delay.
    fn atomic(name: &'static str, limit: u64, batch: u64, window_coupled: bool) -> Self {
        let bound = if window_coupled {
            limit
        } else {
            limit + N as u64 * (batch - 1)
        };
        Self {
            window_coupled,
            delays: false,
            refill_ahead: false,
            bound,
            // N + 1 windows: the instances can take full batches in turn before the last one.
            ..Self::leased(name, limit, batch, 2, N as u64 + 1, [0, -1, 1])
        }
    }

    fn with_faults(self) -> Self {
        Self {
            faults: true,
            ..self
        }
    }

    /// Every local clock is shifted by this much so that it stays non-negative.
    fn base(&self) -> u64 {
        self.offsets
            .iter()
            .map(|o| o.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    fn local(&self, now: u64, instance: usize) -> u64 {
        (now + self.base())
            .checked_add_signed(self.offsets[instance])
            .expect("base covers the offsets")
    }

    /// The store's lease script: the grant and the time left in the window.
    fn lease(&self, state: &mut State) -> (u64, u64) {
        let granted = self.batch.min(self.limit - state.leased);
        state.leased += granted;
        let reset_in = (state.now / self.window + 1) * self.window - state.now;
        (granted, reset_in)
    }

    /// What a reply carries for its instance to compute the expiry from. The instance adds the
    /// request's send time to the reply's `reset_in`; adding them when the reply is made gives
    /// the same expiry with fewer distinct states (a `(sent, reset_in)` pair collapses to its
    /// sum). The mutants keep what they need.
    fn expiry_basis(&self, state: &State, sent: u64, reset_in: u64) -> u64 {
        match self.expiry {
            Expiry::SendTime => sent + reset_in,
            Expiry::ArrivalTime => reset_in,
            // The window end on the store's clock, read by the instance as a local time.
            Expiry::StoreDeadline => state.now + reset_in + self.base(),
        }
    }

    fn handle(&self, state: &mut State, msg: Msg) -> Msg {
        let Msg::Request { sent } = msg else {
            unreachable!("the store handles requests")
        };
        let (granted, reset_in) = self.lease(state);
        Msg::Reply {
            granted,
            basis: self.expiry_basis(state, sent, reset_in),
        }
    }

    fn deliver(&self, state: &mut State, to: usize, msg: Msg) {
        let Msg::Reply { granted, basis } = msg else {
            unreachable!("instances receive replies")
        };
        let expires_at = match self.expiry {
            Expiry::SendTime | Expiry::StoreDeadline => basis,
            Expiry::ArrivalTime => self.local(state.now, to) + basis,
        };
        state.instances[to].spender.0.grant(granted, expires_at);
    }

    fn admit(&self, state: &mut State) {
        state.admitted += 1;
        state.peak = state.peak.max(state.admitted);
    }

    fn send(&self, state: &mut State, instance: usize) {
        state.instances[instance].in_flight = Some(Msg::Request {
            sent: self.local(state.now, instance),
        });
    }

    /// Merges states the spender cannot tell apart, so that the checker visits one of each.
    fn canonicalize(&self, state: &mut State) {
        for (i, instance) in state.instances.iter_mut().enumerate() {
            instance.spender = Spender(canonical(instance.spender.0, self.local(state.now, i)));
        }
        if !self.window_coupled || self.expiry == Expiry::ArrivalTime {
            return;
        }
        let now = state.now;
        let dead_on_arrival = |to: usize, msg: &mut Msg| {
            if let Msg::Reply { granted, basis } = msg {
                if *basis <= self.local(now, to) {
                    // Its credits expire before they can be spent: no different from a denial
                    // for a long-gone window (checked by `canonical_spenders_behave_alike`).
                    (*granted, *basis) = (0, 0);
                }
            }
        };
        for (i, instance) in state.instances.iter_mut().enumerate() {
            if let Some(msg) = &mut instance.in_flight {
                dead_on_arrival(i, msg);
            }
        }
        if let Some((to, msg)) = &mut state.orphan {
            dead_on_arrival(*to, msg);
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}: N={N} L={} B={} W={} T={} offsets={:?}{}{}{}",
            self.name,
            self.limit,
            self.batch,
            self.window,
            self.horizon,
            self.offsets,
            if self.delays {
                ", delays"
            } else {
                ", atomic leases"
            },
            if self.refill_ahead {
                ", refill ahead"
            } else {
                ""
            },
            if self.faults {
                ", crashes/timeouts"
            } else {
                ""
            },
        )
    }

    /// Explores the whole state space (or until every property has a discovery).
    fn check(self) -> impl Checker<Self> {
        self.check_until(HasDiscoveries::All)
    }

    fn check_until(self, finish_when: HasDiscoveries) -> impl Checker<Self> {
        let started = Instant::now();
        let label = self.describe();
        let checker = self.checker().finish_when(finish_when).spawn_bfs().join();
        println!(
            "{label}: {} states ({} generated, depth {}) in {:.2?}",
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth(),
            started.elapsed()
        );
        checker
    }
}

const WITHIN_LIMIT: &str = "admitted per window ≤ limit";
const REACHES_LIMIT: &str = "some window admits exactly the limit";
const WITHIN_BOUND: &str = "admitted per window ≤ bound";
const REACHES_BOUND: &str = "some window admits exactly the bound";

impl Model for Fleet {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let spender = LeaseSpender::new(self.limit, self.window_coupled).expect("limit > 0");
        vec![State {
            now: 0,
            leased: 0,
            admitted: 0,
            peak: 0,
            instances: [Instance {
                spender: Spender(spender),
                in_flight: None,
            }; N],
            orphan: None,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.now < self.horizon {
            actions.push(Action::Tick);
        }
        for (i, instance) in state.instances.iter().enumerate() {
            actions.push(Action::Serve(i));
            match instance.in_flight {
                None if self.refill_ahead => actions.push(Action::Refill(i)),
                None => {}
                Some(Msg::Request { .. }) => actions.push(Action::Handle(i)),
                Some(Msg::Reply { .. }) => actions.push(Action::Deliver(i)),
            }
            if self.faults && i == 0 {
                actions.push(Action::Crash(i));
                // Its request or reply becomes the orphan: one at a time.
                if instance.in_flight.is_some() && state.orphan.is_none() {
                    actions.push(Action::Timeout(i));
                }
            }
        }
        match state.orphan {
            None => {}
            Some((_, Msg::Request { .. })) => actions.push(Action::HandleOrphan),
            Some((_, Msg::Reply { .. })) => actions.push(Action::DeliverOrphan),
        }
        if state.orphan.is_some() {
            actions.push(Action::LoseOrphan);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = *last;
        match action {
            Action::Tick => {
                state.now += 1;
                if state.now.is_multiple_of(self.window) {
                    state.leased = 0;
                    state.admitted = 0;
                }
            }
            Action::Serve(i) => {
                let local = self.local(state.now, i);
                let mut spender = state.instances[i].spender.0;
                match spender.spend(local, 1) {
                    LeaseSpend::Allowed(_) => self.admit(&mut state),
                    LeaseSpend::NeedsRefresh if !self.delays => {
                        // TK-017's atomic lease: the miss leases and is served from the grant.
                        let (granted, reset_in) = self.lease(&mut state);
                        spender.grant(granted, local + reset_in);
                        if let LeaseSpend::Allowed(_) = spender.spend(local, 1) {
                            self.admit(&mut state);
                        }
                    }
                    LeaseSpend::NeedsRefresh => {
                        if state.instances[i].in_flight.is_none() {
                            self.send(&mut state, i);
                        }
                    }
                }
                state.instances[i].spender = Spender(spender);
            }
            Action::Refill(i) => self.send(&mut state, i),
            Action::Handle(i) => {
                let msg = state.instances[i]
                    .in_flight
                    .expect("offered when in flight");
                state.instances[i].in_flight = Some(self.handle(&mut state, msg));
            }
            Action::Deliver(i) => {
                let msg = state.instances[i].in_flight.take().expect("in flight");
                self.deliver(&mut state, i, msg);
            }
            Action::HandleOrphan => {
                let (to, msg) = state.orphan.expect("offered with an orphan");
                state.orphan = Some((to, self.handle(&mut state, msg)));
            }
            Action::DeliverOrphan => {
                let (to, msg) = state.orphan.take().expect("offered with an orphan");
                self.deliver(&mut state, to, msg);
            }
            Action::LoseOrphan => state.orphan = None,
            Action::Crash(i) | Action::Timeout(i) => {
                if let Some(msg) = state.instances[i].in_flight.take() {
                    if state.orphan.is_some() {
                        // A second orphan would be lost at once: a crash that loses it.
                        debug_assert!(matches!(action, Action::Crash(_)));
                    } else {
                        state.orphan = Some((i, msg));
                    }
                }
                if let Action::Crash(_) = action {
                    state.instances[i].spender.0.reset();
                }
            }
        }
        self.canonicalize(&mut state);
        (state != *last).then_some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(WITHIN_LIMIT, |m: &Fleet, s: &State| s.peak <= m.limit),
            Property::sometimes(REACHES_LIMIT, |m: &Fleet, s: &State| s.peak >= m.limit),
            Property::always(WITHIN_BOUND, |m: &Fleet, s: &State| s.peak <= m.bound),
            Property::sometimes(REACHES_BOUND, |m: &Fleet, s: &State| s.peak >= m.bound),
        ]
    }
}

/// Checks a configuration of the protocol: no window ever admits more than `L`, and some window
/// admits exactly `L`.
fn assert_bounded(fleet: Fleet) {
    fleet.check().assert_properties();
}

/// Checks that a mutant breaks the bound, and prints the counterexample it was caught with.
fn assert_caught(fleet: Fleet) {
    let checker = fleet.check_until(HasDiscoveries::AnyOf([WITHIN_LIMIT].into()));
    let path = checker
        .discovery(WITHIN_LIMIT)
        .expect("the checker finds a window admitting more than the limit");
    let peak = path.last_state().peak;
    println!(
        "  caught: a window admits {peak} > L = {} after {:?}",
        checker.model().limit,
        path.into_actions()
    );
}

#[test]
fn window_coupled_leases_never_admit_more_than_the_limit() {
    // Three windows for the middle batch: a request sent in one window can be handled in the next
    // and its reply delivered in the one after.
    assert_bounded(Fleet::leased("leased", 3, 1, 2, 2, [0, -1, 1]));
    assert_bounded(Fleet::leased("leased", 3, 2, 2, 3, [0, -1, 1]));
    assert_bounded(Fleet::leased("leased", 3, 3, 2, 3, [0, -1, 1]));
}

#[test]
fn window_coupled_leases_never_admit_more_than_the_limit_on_a_miss_alone_or_with_faults() {
    // Leases only on a miss (no refill ahead), longer windows, larger offsets.
    assert_bounded(Fleet {
        refill_ahead: false,
        ..Fleet::leased("leased on a miss", 4, 2, 3, 2, [0, 2, -2])
    });
    // Crashes and timeouts, orphaned replies lost or delivered to the restarted instance.
    assert_bounded(Fleet {
        refill_ahead: false,
        ..Fleet::leased("leased", 3, 2, 2, 2, [0, -1, 1]).with_faults()
    });
}

/// A mutant, in the plain protocol (leases on a miss, two windows).
fn mutant(name: &'static str) -> Fleet {
    Fleet {
        refill_ahead: false,
        ..Fleet::leased(name, 3, 2, 2, 2, [0, -1, 1])
    }
}

#[test]
fn carry_over_credits_break_the_limit() {
    assert_caught(Fleet {
        window_coupled: false,
        ..mutant("mutant: carry-over")
    });
}

#[test]
fn an_expiry_from_the_arrival_time_breaks_the_limit() {
    assert_caught(Fleet {
        expiry: Expiry::ArrivalTime,
        ..mutant("mutant: expiry from arrival")
    });
}

#[test]
fn an_absolute_store_deadline_on_a_local_clock_breaks_the_limit() {
    assert_caught(Fleet {
        expiry: Expiry::StoreDeadline,
        ..mutant("mutant: store deadline")
    });
}

/// TK-017 in the setting of its TLA⁺ model: carry-over admits at most `L + N·(B − 1)` per
/// window, and does reach it; window coupling holds it to `L`.
#[test]
fn tk017_carry_over_bound_is_tight_and_coupling_removes_it() {
    for (limit, batch) in [(3, 2), (4, 3)] {
        let checker = Fleet::atomic("TK-017 carry-over", limit, batch, false).check();
        checker.assert_no_discovery(WITHIN_BOUND);
        checker.assert_any_discovery(REACHES_BOUND);
        checker.assert_any_discovery(WITHIN_LIMIT);
        assert_bounded(Fleet::atomic("TK-017 window-coupled", limit, batch, true));
    }
}

/// The soundness of the state merging: a spender and its canonical representative answer every
/// later `spend` and `grant` alike, and end up with the same representative; and a grant that
/// expires before it can be spent acts like a denial for a long-gone window. Exhaustive over the
/// values the model reaches (by induction on the steps, the merged states are bisimilar).
#[test]
fn canonical_spenders_behave_alike() {
    const TIMES: u64 = 12;
    let mut checked = 0u64;
    for coupled in [true, false] {
        for credits in 0..=6 {
            for expires_at in (0..=TIMES).map(Some).chain([None]) {
                let mut x = LeaseSpender::new(4, coupled).unwrap();
                if let Some(e) = expires_at {
                    x.grant(credits, e);
                }
                for now in 0..=TIMES {
                    let y = canonical(x, now);
                    for later in now..=TIMES {
                        let (mut xs, mut ys) = (x, y);
                        assert_eq!(xs.spend(later, 1), ys.spend(later, 1), "{x:?} at {now}");
                        assert_eq!(canonical(xs, later), canonical(ys, later), "{x:?} at {now}");
                        for granted in 0..=4 {
                            for e in 0..=TIMES {
                                let (mut xg, mut yg) = (x, y);
                                xg.grant(granted, e);
                                yg.grant(granted, e);
                                assert_eq!(canonical(xg, later), canonical(yg, later));
                                checked += 1;
                            }
                        }
                    }
                    if coupled {
                        for granted in 0..=4 {
                            for e in 0..=now {
                                let (mut late, mut denial) = (x, x);
                                late.grant(granted, e);
                                denial.grant(0, 0);
                                assert_eq!(canonical(late, now), canonical(denial, now));
                            }
                        }
                    }
                }
            }
        }
    }
    println!("canonical spenders: {checked} grant/spend pairs agree");
}
