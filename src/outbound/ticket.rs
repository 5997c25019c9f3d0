//! Serve or defer: how a call gets through the coordinator ([`admit`]), and the [`Ticket`] that
//! reports its outcome — released by RAII, so a canary that errors or is dropped cannot wedge
//! its key.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::coordinator::Shared;
use super::error::Deferred;
use super::feedback::Counters;
use super::retry_after::{parse_retry_after, parse_retry_pushback};
use super::table::Step;
use crate::clock::tokio_now;
use crate::util::grpc;

/// A coordinated call that has been let through. Settle it with its response; dropping it
/// unsettled (an error, or a caller that gave up) hands the canary role on.
#[derive(Debug)]
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    key: Box<str>,
    seq: u64,
    canary: bool,
    settled: bool,
}

impl Ticket {
    /// A ticket for a call on `key` dispatched now.
    pub(crate) fn issue(shared: Arc<Shared>, key: Box<str>, canary: bool) -> Self {
        if canary {
            Counters::bump(&shared.counters.canaries);
        }
        let seq = shared.dispatch_seq();
        Self {
            shared,
            key,
            seq,
            canary,
            settled: false,
        }
    }

    /// The upstream answered `status` with `headers`. A 429 (or a 503 with a valid
    /// `Retry-After`, when configured) arms the key's cooldown, and so does gRPC's
    /// `RESOURCE_EXHAUSTED` in the headers (or `UNAVAILABLE` with a valid
    /// `grpc-retry-pushback-ms`, when 503s are configured to); any other answer to a canary
    /// ends it.
    pub(crate) fn on_response(mut self, status: StatusCode, headers: &HeaderMap) {
        self.settled = true;
        if let Some(pushback) = self.grpc_rate_limited(status, headers) {
            let (key, seq) = (&*self.key, self.seq);
            self.shared
                .rate_limited(key, seq, status.as_u16(), pushback, self.canary);
            return;
        }
        let cools = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::SERVICE_UNAVAILABLE && self.shared.cfg.cooldown_on_503);
        if cools {
            // An HTTP-date is wall-clock time; this is the one place the coordinator reads it.
            let retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v.as_bytes(), SystemTime::now()));
            if status == StatusCode::TOO_MANY_REQUESTS || retry_after.is_some() {
                let (key, seq) = (&*self.key, self.seq);
                self.shared
                    .rate_limited(key, seq, status.as_u16(), retry_after, self.canary);
                return;
            }
        }
        if self.canary {
            // Whatever else the upstream said, it did not rate limit us: the key is clear.
            // (Its health is a circuit breaker's business, not this coordinator's.)
            self.shared.recovered(&self.key, true);
        }
    }
}

impl Ticket {
    /// `Some(pushback)` when a gRPC answer rate limits the key: HTTP 200 with `grpc-status` in
    /// the headers (a trailers-only response, which is how servers answer a call they refuse
    /// before any message) saying `RESOURCE_EXHAUSTED` — gRPC's 429 — or `UNAVAILABLE` with a
    /// pushback when `cooldown_on_503` is set. The pushback (`grpc-retry-pushback-ms`) plays
    /// `Retry-After`'s part.
    fn grpc_rate_limited(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Option<std::time::Duration>> {
        if status != StatusCode::OK {
            return None;
        }
        let code = grpc::status(headers)?;
        let pushback = headers
            .get(grpc::RETRY_PUSHBACK_MS)
            .and_then(|v| parse_retry_pushback(v.as_bytes()));
        let cools = code == grpc::RESOURCE_EXHAUSTED
            || (code == grpc::UNAVAILABLE && self.shared.cfg.cooldown_on_503 && pushback.is_some());
        cools.then_some(pushback)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.canary && !self.settled {
            self.shared.release_canary(&self.key);
        }
    }
}

/// The deadline of a call arriving at `now`: it may wait `max_wait`, and `None` means forever
/// (`Duration::MAX`, or a bound past the end of tokio's clock).
pub(crate) fn deadline(shared: &Shared, now: Instant) -> Option<Instant> {
    now.checked_add(shared.cfg.max_wait())
}

/// Waits until a call on `key` may go (sleeping through the cooldown, then waiting on the
/// canary), never past `deadline`; fails with [`Deferred`] as soon as it is known that the
/// call cannot go in time.
pub(crate) async fn admit(
    shared: Arc<Shared>,
    key: Box<str>,
    deadline: Option<Instant>,
) -> Result<Ticket, Deferred> {
    let mut waited = false;
    loop {
        match shared.step(&key, tokio_now(), deadline) {
            Step::Go { canary } => {
                if waited {
                    Counters::bump(&shared.counters.waited);
                }
                return Ok(Ticket::issue(shared, key, canary));
            }
            Step::Defer(not_before) => return Err(refuse(&shared, not_before)),
            Step::Wait { until, mut wake } => {
                // Whichever comes first; the next step decides what it meant.
                let mut sleep = std::pin::pin!(until.map(tokio::time::sleep_until));
                let mut changed = std::pin::pin!(wake.changed());
                std::future::poll_fn(|cx| {
                    let slept =
                        (sleep.as_mut().as_pin_mut()).is_some_and(|s| s.poll(cx).is_ready());
                    // A closed channel (the key recovered and left the table) is news too.
                    if slept || changed.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
        }
        waited = true;
    }
}

/// Counts a refusal and makes its error.
pub(crate) fn refuse(shared: &Shared, not_before: Instant) -> Deferred {
    Counters::bump(&shared.counters.deferred);
    Deferred { not_before }
}
