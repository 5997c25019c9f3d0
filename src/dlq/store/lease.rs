//! Hand-out for replay: [`Lease`]s on in-flight entries, and how each attempt is settled.

use super::queue::DeadLetterQueue;
use super::types::{CapturedRequest, EntryId, EntryState};

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Succeeded,
    Failed,
}

/// Where a completed lease left its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Replayed and removed.
    Replayed,
    /// Failed, back in the queue for another attempt.
    Requeued,
    /// Failed for the last time: moved to the permanently-failed list.
    Exhausted,
    /// Cancelled (or already settled): back at the front, attempts unchanged.
    Released,
}

impl DeadLetterQueue {
    /// Moves up to `n` pending entries, oldest first, in flight and hands them out. Each lease
    /// must end in [`Lease::complete`]; a lease dropped without it puts its entry back at the
    /// front of the queue with its attempts unchanged (the replay was cancelled, not failed).
    pub(crate) fn take_batch(&self, n: usize) -> Vec<Lease> {
        let mut state = self.inner.state.lock();
        let n = n.min(state.pending.len());
        let mut leases = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(mut entry) = state.pending.pop_front() else {
                break;
            };
            entry.state = EntryState::InFlight;
            leases.push(Lease {
                queue: self.clone(),
                id: entry.id,
                request: entry.request.clone(),
                done: false,
            });
            state.in_flight.insert(entry.id, entry);
        }
        leases
    }

    fn settle(&self, id: EntryId, delivery: Option<Delivery>) -> Settled {
        let mut state = self.inner.state.lock();
        let Some(mut entry) = state.in_flight.remove(&id) else {
            return Settled::Released;
        };
        match delivery {
            Some(Delivery::Succeeded) => {
                state.stats.replayed += 1;
                Settled::Replayed
            }
            Some(Delivery::Failed) => {
                state.stats.failed_attempts += 1;
                entry.attempts += 1;
                if entry.attempts >= self.inner.max_attempts {
                    state.stats.exhausted += 1;
                    entry.state = EntryState::PermanentlyFailed;
                    if state.failed.len() >= self.inner.failed_capacity {
                        state.failed.pop_front();
                        state.stats.failed_dropped += 1;
                    }
                    state.failed.push_back(entry);
                    Settled::Exhausted
                } else {
                    // To the back: one stubborn entry does not hold up the rest.
                    entry.state = EntryState::Pending;
                    state.pending.push_back(entry);
                    Settled::Requeued
                }
            }
            None => {
                entry.state = EntryState::Pending;
                state.pending.push_front(entry);
                Settled::Released
            }
        }
    }
}

/// One entry handed out for replay. See [`DeadLetterQueue::take_batch`].
#[derive(Debug)]
pub(crate) struct Lease {
    queue: DeadLetterQueue,
    id: EntryId,
    request: CapturedRequest,
    done: bool,
}

impl Lease {
    pub(crate) fn request(&self) -> &CapturedRequest {
        &self.request
    }

    /// Records how the attempt ended: success removes the entry; failure counts an attempt and
    /// requeues it, or moves it to the permanently-failed list when its attempts ran out.
    pub(crate) fn complete(mut self, delivery: Delivery) -> Settled {
        self.done = true;
        self.queue.settle(self.id, Some(delivery))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            self.queue.settle(self.id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accounted, queue, request};
    use super::*;
    use crate::decision::{RejectReason, Tier};

    #[test]
    fn success_removes_the_entry_for_good() {
        let q = queue(10, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        let lease = q.take_batch(10).pop().unwrap();
        assert!(
            q.take_batch(10).is_empty(),
            "an in-flight entry is not handed out twice"
        );
        lease.complete(Delivery::Succeeded);
        let s = q.stats();
        assert_eq!((s.pending, s.in_flight, s.replayed), (0, 0, 1));
        assert!(q.take_batch(10).is_empty());
        assert_eq!(accounted(&s), s.captured);
    }

    #[test]
    fn failures_requeue_until_attempts_run_out_then_the_entry_is_permanently_failed() {
        let q = queue(10, 2);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        q.take_batch(1).pop().unwrap().complete(Delivery::Failed);
        assert_eq!(q.list()[0].attempts, 1);
        assert_eq!(q.list()[0].state, EntryState::Pending);
        q.take_batch(1).pop().unwrap().complete(Delivery::Failed);
        let s = q.stats();
        assert_eq!((s.pending, s.permanently_failed, s.exhausted), (0, 1, 1));
        assert_eq!(s.failed_attempts, 2);
        let failed = q.failed();
        assert_eq!(failed[0].state, EntryState::PermanentlyFailed);
        assert_eq!(failed[0].attempts, 2);
        assert_eq!(accounted(&s), s.captured);
    }

    #[test]
    fn a_dropped_lease_puts_the_entry_back_first_without_counting_an_attempt() {
        let q = queue(10, 3);
        q.push(
            request("/a"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        q.push(
            request("/b"),
            Tier::Standard,
            RejectReason::RateLimitExceeded,
        );
        drop(q.take_batch(1));
        let list = q.list();
        assert_eq!(list[0].request.uri().path(), "/a");
        assert_eq!(list[0].attempts, 0);
        assert_eq!(q.take_batch(1)[0].request().uri().path(), "/a");
    }

    #[test]
    fn the_failed_list_is_bounded_and_evictions_are_counted() {
        let q = queue(10, 1);
        for p in ["/a", "/b", "/c"] {
            q.push(request(p), Tier::Standard, RejectReason::RateLimitExceeded);
        }
        for lease in q.take_batch(3) {
            lease.complete(Delivery::Failed);
        }
        let failed: Vec<_> = q
            .failed()
            .iter()
            .map(|e| e.request.uri().path().to_owned())
            .collect();
        assert_eq!(failed, ["/b", "/c"]);
        assert_eq!(q.stats().failed_dropped, 1);
        assert_eq!(q.purge_failed(), 2);
        assert_eq!(q.stats().failed_dropped, 3);
    }
}
