//! [`DurableQueue`]: the dead-letter queue's durable backend on a [`Store`] (Redis Streams with
//! a consumer group on [`RedisStore`](crate::store::RedisStore)), and the [`Claim`]s the
//! replayer settles, on either backend.
//!
//! Capture appends the entry already stripped of credentials (the capture layer redacts before
//! the queue sees it), serialised as JSON, bounded by `max_len` (the oldest entries are
//! trimmed and counted as overflow). Replay claims entries through the group; while the
//! replayer works through a claimed batch its claims are renewed (`keepalive`), so only an
//! entry whose replayer died (or stalled for `claim_idle`) is claimed again, after
//! `claim_idle`. Before a replay the entry's idempotency key is checked: an entry already
//! replayed is acknowledged and skipped; and just before it is sent, the replayer checks that
//! the entry is still its own. After a success the key is set, then the entry is acknowledged.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::keepalive::{Held, Keepalive};
use super::lease::{Delivery, Lease, Settled};
use super::queue::DeadLetterQueue;
use super::types::{CapturedRequest, DlqEvent, EntryId};
use crate::decision::{RejectReason, Tier};
use crate::store::{DlqCounts, Store, StoreError, StoredLetter};

/// How long an entry claimed by a replayer may go without a sign of life before another
/// replayer claims it (its replayer is presumed dead). A live replayer renews its claims three
/// times per `claim_idle` for as long as a replay runs, so this bounds how long a dead
/// replayer's entries wait, not how long a replay may take.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);
/// How long the "replayed" mark of an entry is kept.
pub const DEFAULT_DONE_TTL: Duration = Duration::from_secs(86_400);

/// The durable backend of a [`DeadLetterQueue`]: a named queue in a [`Store`], shared by every
/// instance that names it. Give it to [`DeadLetterQueueBuilder::durable`](crate::dlq::DeadLetterQueueBuilder::durable).
///
/// Cheap to clone. Each value is one consumer of the queue's group (named at random unless
/// [`consumer`](Self::consumer) names it).
#[derive(Clone, Debug)]
pub struct DurableQueue {
    store: Arc<dyn Store>,
    name: Arc<str>,
    consumer: Arc<str>,
    max_len: u64,
    claim_idle: Duration,
    done_ttl: Duration,
}

/// An entry as it is stored: the captured request (credentials already removed) and its
/// bookkeeping.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    tier: Tier,
    reason: RejectReason,
    attempts: u32,
    captured_unix_ms: u64,
}

impl Wire {
    fn of(request: &CapturedRequest, tier: Tier, reason: RejectReason) -> Self {
        Self {
            method: request.method().as_str().to_owned(),
            uri: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: request.body().to_vec(),
            tier,
            reason,
            attempts: 0,
            captured_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    fn request(&self) -> Option<CapturedRequest> {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            headers.append(
                HeaderName::try_from(k.as_str()).ok()?,
                HeaderValue::try_from(v.as_str()).ok()?,
            );
        }
        Some(CapturedRequest::new(
            Method::from_bytes(self.method.as_bytes()).ok()?,
            self.uri.parse().ok()?,
            headers,
            Bytes::from(self.body.clone()),
        ))
    }
}

fn encode(wire: &Wire) -> String {
    serde_json::to_string(wire).expect("a dead letter serialises")
}

impl DurableQueue {
    /// The queue `name` in `store`, with at most [`DEFAULT_CAPACITY`](crate::dlq::DEFAULT_CAPACITY)
    /// entries, [`DEFAULT_CLAIM_IDLE`] and [`DEFAULT_DONE_TTL`].
    pub fn new(store: impl Store, name: &str) -> Self {
        Self::from_arc(Arc::new(store), name)
    }

    /// [`new`](Self::new) with a shared store.
    pub fn from_arc(store: Arc<dyn Store>, name: &str) -> Self {
        use std::hash::BuildHasher;
        let n = foldhash::fast::RandomState::default().hash_one(std::process::id());
        Self {
            store,
            name: name.into(),
            consumer: format!("{}-{n:016x}", std::process::id()).into(),
            max_len: super::DEFAULT_CAPACITY as u64,
            claim_idle: DEFAULT_CLAIM_IDLE,
            done_ttl: DEFAULT_DONE_TTL,
        }
    }

    /// Most entries kept; older ones are trimmed away (and counted as overflow).
    #[must_use]
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len.max(1);
        self
    }

    /// How long a claimed entry may go without its replayer renewing the claim before another
    /// replayer claims it. A live replayer renews its claims every third of this while it
    /// works through them, so a slow replay is not taken over; a replay that hangs holds its
    /// entry as long as its process lives, so give the replay service a timeout. Every
    /// instance sharing the queue should use the same value.
    #[must_use]
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }

    /// How long an entry's "replayed" mark is kept.
    #[must_use]
    pub fn done_ttl(mut self, ttl: Duration) -> Self {
        self.done_ttl = ttl;
        self
    }

    /// This handle's consumer name in the queue's group (an instance name, say).
    #[must_use]
    pub fn consumer(mut self, consumer: &str) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// The queue's name in the store.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sizes and counters as the store reports them (every instance's).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn counts(&self) -> Result<DlqCounts, StoreError> {
        self.store.dlq_counts(&self.name).await
    }

    /// Up to `count` stored entries (or permanently failed ones), oldest first, as stored.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn stored(
        &self,
        failed: bool,
        count: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        self.store.dlq_entries(&self.name, failed, count).await
    }

    /// Appends a captured request; returns its id and how many old entries were trimmed.
    async fn append(
        &self,
        request: &CapturedRequest,
        tier: Tier,
        reason: RejectReason,
    ) -> Result<(String, u64), StoreError> {
        let payload = encode(&Wire::of(request, tier, reason));
        let appended = self
            .store
            .dlq_append(&self.name, &payload, self.max_len)
            .await?;
        Ok((appended.id, appended.trimmed))
    }
}

/// One entry claimed from the durable queue, its claim renewed until it is settled. Dropped
/// without [`Claim::complete`], it is no longer renewed and another replayer (or this one)
/// claims it after `claim_idle`.
#[derive(Debug)]
pub(crate) struct DurableLease {
    queue: DeadLetterQueue,
    durable: DurableQueue,
    letter: StoredLetter,
    request: CapturedRequest,
    attempts: u32,
    _held: Held,
}

/// An entry handed out for replay, by either backend.
#[derive(Debug)]
pub(crate) enum Claim {
    Memory(Lease),
    Durable(DurableLease),
}

impl Claim {
    pub(crate) fn request(&self) -> &CapturedRequest {
        match self {
            Self::Memory(lease) => lease.request(),
            Self::Durable(lease) => &lease.request,
        }
    }

    /// Whether this replayer still holds the entry, asked just before it is replayed (and its
    /// claim renewed on the way). False only when the store says another replayer has taken
    /// it over (this one stalled for `claim_idle`): it is theirs to replay. A store that does
    /// not answer, or cannot tell, leaves the entry to this replayer (delivery is
    /// at-least-once).
    pub(crate) async fn still_held(&self) -> bool {
        let Self::Durable(lease) = self else {
            return true;
        };
        let durable = &lease.durable;
        let id = std::slice::from_ref(&lease.letter.id);
        match durable
            .store
            .dlq_touch(&durable.name, &durable.consumer, id)
            .await
        {
            Ok(held) => held.contains(&lease.letter.id),
            Err(_) => true,
        }
    }

    /// Settles the attempt (see [`Lease::complete`]). On the durable backend a success marks
    /// the entry replayed, then acknowledges it; a failure re-appends it with its attempt
    /// counted (or moves it to the failed list). A store error leaves the entry claimed, to be
    /// taken over after `claim_idle`.
    pub(crate) async fn complete(self, delivery: Delivery) -> Settled {
        let lease = match self {
            Self::Memory(lease) => return lease.complete(delivery),
            Self::Durable(lease) => lease,
        };
        // `_held` lives to the end: the claim is renewed until it is settled.
        let DurableLease {
            queue,
            durable,
            letter,
            attempts,
            _held,
            ..
        } = lease;
        let store = &durable.store;
        let name = &*durable.name;
        match delivery {
            Delivery::Succeeded => {
                if store
                    .dlq_mark_done(name, &letter.id, durable.done_ttl)
                    .await
                    .is_err()
                {
                    return Settled::Released;
                }
                // A lost acknowledgement is harmless: the mark makes the next claim skip it.
                let _ = store.dlq_ack(name, &letter.id).await;
                queue.inner.state.lock().stats.replayed += 1;
                Settled::Replayed
            }
            Delivery::Failed => {
                let attempts = attempts + 1;
                let exhausted = attempts >= queue.max_attempts();
                let mut wire: Wire = match serde_json::from_str(&letter.payload) {
                    Ok(wire) => wire,
                    Err(_) => return Settled::Released,
                };
                wire.attempts = attempts;
                let moved = store
                    .dlq_retry(name, &letter.id, &encode(&wire), exhausted, durable.max_len)
                    .await;
                if moved.is_err() {
                    return Settled::Released;
                }
                let mut state = queue.inner.state.lock();
                state.stats.failed_attempts += 1;
                if exhausted {
                    state.stats.exhausted += 1;
                    Settled::Exhausted
                } else {
                    Settled::Requeued
                }
            }
        }
    }
}

impl DeadLetterQueue {
    /// The durable backend, if the queue has one.
    pub fn durable(&self) -> Option<&DurableQueue> {
        self.inner.durable.as_ref()
    }

    /// Stores a request on the durable backend, in the background (the 429 is not held up);
    /// trimmed entries are counted as overflow.
    pub(super) fn push_durable(
        &self,
        durable: &DurableQueue,
        request: CapturedRequest,
        tier: Tier,
        reason: RejectReason,
    ) -> EntryId {
        let id = {
            let mut state = self.inner.state.lock();
            state.next_id += 1;
            state.stats.captured += 1;
            EntryId::new(state.next_id)
        };
        let queue = self.clone();
        let durable = durable.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to append on (capture always runs on one; a direct call may not):
            // dropped, and counted, rather than a panic.
            let total = {
                let mut state = self.inner.state.lock();
                state.stats.overflow += 1;
                state.stats.overflow
            };
            self.emit(DlqEvent::Overflow {
                at: self.now(),
                tier,
                reason,
                dropped_total: total,
            });
            return id;
        };
        runtime.spawn(async move {
            let at = queue.now();
            match durable.append(&request, tier, reason).await {
                Ok((_, trimmed)) => {
                    queue.emit(DlqEvent::RejectionStored {
                        at,
                        id,
                        tier,
                        reason,
                    });
                    if trimmed > 0 {
                        let total = {
                            let mut state = queue.inner.state.lock();
                            state.stats.overflow += trimmed;
                            state.stats.overflow
                        };
                        queue.emit(DlqEvent::Overflow {
                            at,
                            tier,
                            reason,
                            dropped_total: total,
                        });
                    }
                }
                Err(_) => {
                    let total = {
                        let mut state = queue.inner.state.lock();
                        state.stats.overflow += 1;
                        state.stats.overflow
                    };
                    queue.emit(DlqEvent::Overflow {
                        at,
                        tier,
                        reason,
                        dropped_total: total,
                    });
                }
            }
        });
        id
    }

    /// Up to `n` entries for replay: leases on the in-memory queue, or entries claimed through
    /// the durable queue's group (entries already replayed are acknowledged and skipped).
    pub(crate) async fn claim_batch(&self, n: usize) -> Vec<Claim> {
        let Some(durable) = self.durable() else {
            return self.take_batch(n).into_iter().map(Claim::Memory).collect();
        };
        let store = &durable.store;
        let name = &*durable.name;
        let Ok(letters) = store
            .dlq_claim(name, &durable.consumer, n, durable.claim_idle)
            .await
        else {
            return Vec::new();
        };
        let mut claimed = Vec::with_capacity(letters.len());
        for letter in letters {
            // The idempotency check: replayed already (its acknowledgement was lost).
            match store.dlq_is_done(name, &letter.id).await {
                Ok(true) => {
                    let _ = store.dlq_ack(name, &letter.id).await;
                    continue;
                }
                Ok(false) => {}
                Err(_) => continue,
            }
            let wire: Option<Wire> = serde_json::from_str(&letter.payload).ok();
            let Some((wire, request)) = wire.and_then(|w| w.request().map(|r| (w, r))) else {
                // Unreadable: moved to the failed list, not replayed.
                let _ = store
                    .dlq_retry(name, &letter.id, &letter.payload, true, durable.max_len)
                    .await;
                continue;
            };
            claimed.push((letter, request, wire.attempts));
        }
        if claimed.is_empty() {
            return Vec::new();
        }
        let keepalive = Keepalive::start(
            store.clone(),
            durable.name.clone(),
            durable.consumer.clone(),
            claimed
                .iter()
                .map(|(letter, ..)| letter.id.clone())
                .collect(),
            durable.claim_idle,
        );
        claimed
            .into_iter()
            .map(|(letter, request, attempts)| {
                Claim::Durable(DurableLease {
                    queue: self.clone(),
                    durable: durable.clone(),
                    _held: Held::new(keepalive.clone(), letter.id.clone()),
                    letter,
                    request,
                    attempts,
                })
            })
            .collect()
    }

    /// Entries waiting, as far as the run is concerned: the in-memory queue's pending ones, or
    /// the durable queue's length (0 when the store does not answer).
    pub(crate) async fn waiting(&self) -> usize {
        match self.durable() {
            None => self.pending_len(),
            Some(d) => d
                .counts()
                .await
                .map_or(0, |c| usize::try_from(c.len).unwrap_or(usize::MAX)),
        }
    }

    /// Entries left (pending and in flight), on either backend.
    pub(crate) async fn remaining(&self) -> usize {
        match self.durable() {
            None => self.len(),
            Some(_) => self.waiting().await,
        }
    }
}
