//! The durable dead-letter queue on Redis Streams (a child of `redis.rs`, so it reaches the
//! store's connection): one stream per queue with the consumer group `replay`, an overflow
//! counter, a bounded permanently-failed stream and one idempotency key per replayed entry.

use std::time::Duration;

use redis::{Script, Value};

use super::{int, text, unavailable, RedisStore};
use crate::store::redis_scripts::{
    DLQ_ACK, DLQ_APPEND, DLQ_CLAIM, DLQ_COUNTS, DLQ_RETRY, DLQ_TOUCH,
};
use crate::store::{dlq_keys, DlqAppended, DlqCounts, StoreError, StoredLetter};

/// The consumer group every replayer joins.
const GROUP: &str = "replay";

/// The dead-letter scripts, hashed once.
pub(super) struct DlqScripts {
    append: Script,
    claim: Script,
    touch: Script,
    ack: Script,
    retry: Script,
    counts: Script,
}

impl DlqScripts {
    pub(super) fn new() -> Self {
        Self {
            append: Script::new(DLQ_APPEND),
            claim: Script::new(DLQ_CLAIM),
            touch: Script::new(DLQ_TOUCH),
            ack: Script::new(DLQ_ACK),
            retry: Script::new(DLQ_RETRY),
            counts: Script::new(DLQ_COUNTS),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `{id, payload, id, payload, …}` or a stream reply `[[id, [field, value]], …]`.
fn letters(reply: Value, what: &str) -> Result<Vec<StoredLetter>, StoreError> {
    let Value::Array(items) = reply else {
        return Ok(Vec::new());
    };
    if items.iter().all(|i| !matches!(i, Value::Array(_))) {
        return items
            .chunks(2)
            .map(|c| match c {
                [id, payload] => Ok(StoredLetter {
                    id: text(id, what)?,
                    payload: text(payload, what)?,
                }),
                _ => Err(StoreError::Protocol(format!("{what}: a partial entry"))),
            })
            .collect();
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Array(pair) => match pair.as_slice() {
                [id, Value::Array(fields)] if fields.len() >= 2 => Ok(StoredLetter {
                    id: text(id, what)?,
                    payload: text(&fields[1], what)?,
                }),
                _ => Err(StoreError::Protocol(format!("{what}: a malformed entry"))),
            },
            _ => Err(StoreError::Protocol(format!("{what}: not an entry"))),
        })
        .collect()
}

impl RedisStore {
    fn dlq_keys(&self, queue: &str) -> [String; 3] {
        dlq_keys(&self.prefix, queue)
    }

    fn done_key(&self, queue: &str, id: &str) -> String {
        let [stream, _, _] = self.dlq_keys(queue);
        format!("{stream}:done:{id}")
    }

    pub(super) async fn append_letter(
        &self,
        queue: &str,
        payload: &str,
        max_len: u64,
    ) -> Result<DlqAppended, StoreError> {
        let [stream, overflow, _] = self.dlq_keys(queue);
        let mut call = self.scripts.dlq.append.key(stream);
        call.key(overflow)
            .arg(payload)
            .arg(max_len.max(1))
            .arg(GROUP);
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        match reply {
            Value::Array(v) if v.len() == 2 => Ok(DlqAppended {
                id: text(&v[0], "dlq_append")?,
                trimmed: int(&v[1], "dlq_append")?.max(0) as u64,
            }),
            _ => Err(StoreError::Protocol("dlq_append: not {id, trimmed}".into())),
        }
    }

    pub(super) async fn claim_letters(
        &self,
        queue: &str,
        consumer: &str,
        count: usize,
        min_idle: Duration,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        let [stream, _, _] = self.dlq_keys(queue);
        let mut call = self.scripts.dlq.claim.key(stream);
        call.arg(GROUP)
            .arg(consumer)
            .arg(count.max(1))
            .arg(millis(min_idle));
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        letters(reply, "dlq_claim")
    }

    pub(super) async fn touch_letters(
        &self,
        queue: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let [stream, _, _] = self.dlq_keys(queue);
        let mut call = self.scripts.dlq.touch.key(stream);
        call.arg(GROUP).arg(consumer);
        for id in ids {
            call.arg(id);
        }
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        match reply {
            Value::Array(held) => held.iter().map(|id| text(id, "dlq_touch")).collect(),
            _ => Err(StoreError::Protocol("dlq_touch: not a list of ids".into())),
        }
    }

    pub(super) async fn ack_letter(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        let [stream, _, _] = self.dlq_keys(queue);
        let mut call = self.scripts.dlq.ack.key(stream);
        call.arg(GROUP).arg(id);
        self.connection
            .invoke::<Value>(&call)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub(super) async fn letter_done(&self, queue: &str, id: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .connection
            .query(redis::cmd("EXISTS").arg(self.done_key(queue, id)))
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    pub(super) async fn mark_letter_done(
        &self,
        queue: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.done_key(queue, id))
            .arg(1)
            .arg("PX")
            .arg(millis(ttl).max(1));
        self.connection
            .query::<Value>(&set)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub(super) async fn retry_letter(
        &self,
        queue: &str,
        id: &str,
        payload: &str,
        exhausted: bool,
        max_len: u64,
    ) -> Result<String, StoreError> {
        let [stream, overflow, failed] = self.dlq_keys(queue);
        let target = if exhausted { failed } else { stream.clone() };
        let mut call = self.scripts.dlq.retry.key(stream);
        call.key(target)
            .key(overflow)
            .arg(GROUP)
            .arg(id)
            .arg(payload)
            .arg(max_len.max(1));
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        text(&reply, "dlq_retry")
    }

    pub(super) async fn letter_counts(&self, queue: &str) -> Result<DlqCounts, StoreError> {
        let [stream, overflow, failed] = self.dlq_keys(queue);
        let mut call = self.scripts.dlq.counts.key(stream);
        call.key(overflow).key(failed).arg(GROUP);
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        let [len, in_flight, overflow, failed] = super::ints::<4>(reply, "dlq_counts")?;
        Ok(DlqCounts {
            len: len.max(0) as u64,
            in_flight: in_flight.max(0) as u64,
            overflow: overflow.max(0) as u64,
            failed: failed.max(0) as u64,
        })
    }

    pub(super) async fn read_letters(
        &self,
        queue: &str,
        failed: bool,
        count: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        let [stream, _, failed_stream] = self.dlq_keys(queue);
        let key = if failed { failed_stream } else { stream };
        let reply: Value = self
            .connection
            .query(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(count.max(1)),
            )
            .await
            .map_err(unavailable)?;
        letters(reply, "dlq_entries")
    }
}
