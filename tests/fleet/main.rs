//! Fleet mode: throttles sharing one limit through a store.
//!
//! - `memory`: the protocol on a `MemoryStore` with a `ManualClock` (deterministic).
//! - `redis`: a real `redis-server` spawned per test (skipped loudly when missing, unless
//!   `THROTTLE_REQUIRE_REDIS=1`): strict exactness, the leased bound, faults, Cluster.
//! - `processes`: three `fleet` example processes against one Redis.

mod memory;
mod processes;
mod redis;
mod redis_server;
