//! The store: [`DeadLetterQueue`], a bounded in-memory queue of captured requests with
//! at-least-once hand-out to the replayer. Pure bookkeeping: no I/O, no runtime, one short lock.
//!
//! - `types`: entries, ids, states, counters, events and configuration errors;
//! - `builder`: [`DeadLetterQueueBuilder`] and the defaults;
//! - `queue`: [`DeadLetterQueue`] — storing, listing, purging, events and audit trail;
//! - `lease`: hand-out for replay and how each attempt is settled;
//! - `durable`: [`DurableQueue`], the backend in a shared store (Redis Streams), and the
//!   [`Claim`]s a replay settles on either backend;
//! - `keepalive`: renews a replayer's durable claims while it works through them.

mod builder;
mod durable;
mod keepalive;
mod lease;
mod queue;
mod types;

pub use builder::{
    DeadLetterQueueBuilder, DEFAULT_CAPACITY, DEFAULT_EVENT_CAPACITY, DEFAULT_FAILED_CAPACITY,
    DEFAULT_MAX_ATTEMPTS,
};
pub(crate) use durable::Claim;
pub use durable::{DurableQueue, DEFAULT_CLAIM_IDLE, DEFAULT_DONE_TTL};
pub(crate) use lease::{Delivery, Settled};
pub use queue::DeadLetterQueue;
pub(crate) use queue::NotCapturable;
pub use types::{
    CapturedRequest, DeadLetter, DlqConfigError, DlqEvent, DlqStats, EntryId, EntryState,
};

/// What the unit tests of the store share.
#[cfg(test)]
mod testing {
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    use super::{CapturedRequest, DeadLetterQueue, DlqStats};
    use crate::clock::ManualClock;

    pub(super) fn request(path: &str) -> CapturedRequest {
        CapturedRequest::new(
            Method::GET,
            path.parse().unwrap(),
            HeaderMap::new(),
            Bytes::new(),
        )
    }

    pub(super) fn queue(capacity: usize, max_attempts: u32) -> DeadLetterQueue {
        DeadLetterQueue::builder()
            .capacity(capacity)
            .failed_capacity(2)
            .max_attempts(max_attempts)
            .clock(ManualClock::new())
            .build()
            .unwrap()
    }

    pub(super) fn accounted(s: &DlqStats) -> u64 {
        (s.pending + s.in_flight) as u64 + s.replayed + s.exhausted + s.purged
    }
}
