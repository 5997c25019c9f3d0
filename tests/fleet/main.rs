//! Fleet mode: throttles sharing one limit through a store.
//!
//! - `memory`: the protocol on a `MemoryStore` with a `ManualClock` (deterministic).
//! - `redis`: a real `redis-server` spawned per test (skipped loudly when missing, unless
//!   `THROTTLE_REQUIRE_REDIS=1`): strict exactness, the leased bound, faults, Cluster.
//! - `processes`: three `fleet` example processes against one Redis.
//! - `control_plane`: fleet-wide operator state and the fleet view on a `MemoryStore` (paused
//!   time); `control_plane_redis`: the same on a real Redis, in process and across `fleet`
//!   example processes driven through their admin routers.
//! - `dlq_streams`: the durable dead-letter queue on a real Redis, in process;
//!   `dlq_processes`: the same across `dlq_node` example processes (one SIGKILLed mid-replay).

mod control_plane;
mod control_plane_redis;
mod dlq_processes;
mod dlq_streams;
mod memory;
mod processes;
mod redis;
mod redis_server;
