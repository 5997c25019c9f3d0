//! A deterministic, virtual-time simulator that measures how well a throttle protects a
//! service: a testing and evaluation tool, not something a service runs.
//!
//! A [`Scenario`] describes a service (`c` workers behind a FIFO queue, a log-normal service
//! time with a heavy tail, an optional slow dependency), how its capacity changes, and the
//! offered load (Poisson arrivals over client keys and tiers). A [`Policy`] admits or rejects
//! each arrival; throttle policies drive an
//! [`AdaptiveThrottle`](tower_adaptive_throttle::AdaptiveThrottle) on a
//! [`ManualClock`](tower_adaptive_throttle::ManualClock) along one of two [`Path`]s: exactly as
//! the HTTP layer does ([`Path::Acquire`]:
//! [`acquire`](tower_adaptive_throttle::AdaptiveThrottle::acquire) on arrival,
//! [`record_response`](tower_adaptive_throttle::AdaptiveThrottle::record_response) and the
//! permit's outcome on completion), or through the documented two-step API
//! ([`Path::TwoStep`]: [`check`](tower_adaptive_throttle::AdaptiveThrottle::check) before the
//! work, `record_response` after it, no permits). The recommended configurations are built in
//! one place, [`recommended`]. [`Evaluation`] runs policies side by
//! side and compares them with an oracle that knows the true capacity: goodput (completions
//! within `sla_warning`) per phase, p50 / p99 latency, rejections, time to converge after a
//! capacity change, latency when capacity returns, critical-tier success, and the limit's
//! trajectory. The client scenarios ([`Scenario::client_scenarios`]: many clients, a greedy
//! client, clients that pace themselves by the [`Decision`](tower_adaptive_throttle::Decision)
//! they get) add each client's admitted share, pacing clients' rejections and the quota they
//! see ([`Evaluation::clients_table`]). [`goals`] measures the acceptance goals on both paths.
//!
//! Everything is seeded: the same scenario, policy and seed give the same numbers, so tests can
//! pin control quality. `examples/simulate.rs` prints the full table and writes plots
//! (`cargo run --release -p throttle-sim --example simulate`).
//!
//! This crate is part of the workspace but not published: it uses only the public API of
//! `tower-adaptive-throttle`, and nothing of it is compiled into the library.
//!
//! ```
//! use throttle_sim::{Evaluation, Policy, Scenario, SimScale};
//!
//! let scale = SimScale { workers: 4, ..SimScale::quick() };
//! let scenario = Scenario::steady_overload(scale);
//! let eval = Evaluation::run(&scenario, &[Policy::unlimited(), Policy::oracle()], 7);
//! assert!(eval.total_goodput_vs_oracle("no limit") < 0.5, "an unbounded queue loses");
//! ```

mod clients;
pub mod goals;
mod model;
mod policy;
pub mod recommended;
mod report;
mod rng;
mod run;

pub use clients::{fair_shares, Fairness, QuotaFall};
pub use model::{Focus, LoadSegment, Phase, Scenario, ServiceModel, SimScale, GREEDY_CLIENT};
pub use policy::{Keying, Path, Policy, PolicyKind};
pub use report::{evaluate_all, Evaluation};
pub use rng::Rng;
pub use run::{pause_after, run, Bin, KeyStats, PhaseStats, RunReport, BIN, SETTLE};
