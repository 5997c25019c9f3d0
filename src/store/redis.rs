//! [`RedisStore`]: the store contract on Redis or Redis Cluster, one Lua script per operation.
//!
//! With its child `redis_dlq.rs`, the only code that names the `redis` crate (the scripts are in
//! `redis_scripts.rs`). Every script's keys share one hash slot (a
//! key's budget is alone in its slot; a throttle's limit keys share `{name}`), so each runs on
//! Cluster as on one node. Scripts run by SHA and are loaded again on `NOSCRIPT` (redis-rs's
//! `Script`). Window time is the server's (`TIME`), so instances with skewed clocks still agree
//! on window boundaries.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};

#[path = "redis_dlq.rs"]
mod dlq;

use super::redis_scripts::{
    ADJUST, CAS_LIMIT, COOLDOWNS, DEBIT, EXTEND_COOLDOWN, HEARTBEAT, LOAD_LIMIT, MEMBERS,
    SET_LIMIT, TAKE, WRITE_OPS,
};

use super::{
    budget_key, cooldown_key, limit_keys, ops_keys, CompareAndSet, DlqAppended, DlqCounts,
    FleetView, Grant, LimitBounds, LimitSource, MemberReport, OpsRecord, OpsWrite, SharedCooldown,
    Store, StoreError, StoreFuture, StoredLetter, Take, SAFE_LIMIT_TTL,
};

/// The key prefix of everything the crate stores.
const DEFAULT_PREFIX: &str = "throttle:";

/// How long connecting (and each reconnection attempt) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The scripts, hashed once.
struct Scripts {
    take: Script,
    load_limit: Script,
    set_limit: Script,
    cas_limit: Script,
    heartbeat: Script,
    extend_cooldown: Script,
    cooldowns: Script,
    debit: Script,
    adjust: Script,
    members: Script,
    write_ops: Script,
    dlq: dlq::DlqScripts,
}

impl Scripts {
    fn new() -> Self {
        Self {
            take: Script::new(TAKE),
            load_limit: Script::new(LOAD_LIMIT),
            set_limit: Script::new(SET_LIMIT),
            cas_limit: Script::new(CAS_LIMIT),
            heartbeat: Script::new(HEARTBEAT),
            extend_cooldown: Script::new(EXTEND_COOLDOWN),
            cooldowns: Script::new(COOLDOWNS),
            debit: Script::new(DEBIT),
            adjust: Script::new(ADJUST),
            members: Script::new(MEMBERS),
            write_ops: Script::new(WRITE_OPS),
            dlq: dlq::DlqScripts::new(),
        }
    }
}

/// One connection handle; both kinds are cheap to clone and multiplex concurrent calls.
#[derive(Clone)]
enum Connection {
    /// One node, reconnecting by itself (redis-rs's `ConnectionManager`).
    Single(ConnectionManager),
    /// A Redis Cluster: slot map, redirections and reconnection handled by redis-rs.
    Cluster(ClusterConnection),
}

impl Connection {
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            Self::Single(mut c) => call.invoke_async(&mut c).await,
            Self::Cluster(mut c) => call.invoke_async(&mut c).await,
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self.clone() {
            Self::Single(mut c) => cmd.query_async(&mut c).await,
            Self::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }
}

/// A [`Store`] on Redis: one node ([`connect`](Self::connect)) or a Redis Cluster
/// ([`connect_cluster`](Self::connect_cluster)).
///
/// Cheap to clone; clones share the connection, which reconnects by itself after Redis goes
/// away. Everything it writes is under the prefix `throttle:` (see
/// [`with_prefix`](Self::with_prefix)) and expires on its own: a key's budget a second after
/// its window, the instance list after twice its time to live, the last safe limit after 24 h.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_adaptive_throttle::store::StoreError> {
/// use tower_adaptive_throttle::{store::RedisStore, AdaptiveThrottle, Fleet, ThrottleConfig};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let t = AdaptiveThrottle::builder(ThrottleConfig::default())
///     .name("api")
///     .store(store.clone())
///     .fleet(Fleet::Leased)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// One node's client, for the pub/sub connections that announce operator states (on a
    /// Cluster the heartbeat's version is read instead).
    client: Option<redis::Client>,
    scripts: std::sync::Arc<Scripts>,
    prefix: std::sync::Arc<str>,
    seed: u64,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("kind", &kind)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Connects to one Redis node (`redis://host:port/db`, `rediss://` needs a TLS feature of
    /// redis-rs that this crate does not enable).
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] for an invalid URL, [`StoreError::Unavailable`] when Redis does
    /// not answer within a second.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Config(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // The throttle bounds every call with its own timeout; here only a backstop.
            .set_response_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unavailable)?;
        let mut store = Self::from_connection(Connection::Single(manager)).await?;
        store.client = Some(client);
        Ok(store)
    }

    /// Connects to a Redis Cluster through any of its nodes.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_cluster<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(CONNECT_TIMEOUT)
            .retries(2)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let connection = client.get_async_connection().await.map_err(unavailable)?;
        Self::from_connection(Connection::Cluster(connection)).await
    }

    async fn from_connection(connection: Connection) -> Result<Self, StoreError> {
        let mut store = Self {
            connection,
            client: None,
            scripts: std::sync::Arc::new(Scripts::new()),
            prefix: DEFAULT_PREFIX.into(),
            seed: 0,
        };
        store.seed = store.fleet_seed().await?;
        Ok(store)
    }

    /// The same store with every key under `prefix` instead of `throttle:` (for several
    /// independent fleets on one Redis). The key seed is the new prefix's.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the seed cannot be read.
    pub async fn with_prefix(mut self, prefix: &str) -> Result<Self, StoreError> {
        self.prefix = prefix.into();
        self.seed = self.fleet_seed().await?;
        Ok(self)
    }

    /// The fleet's key seed: set once by whichever instance comes first (`SET NX`), read by
    /// all.
    async fn fleet_seed(&self) -> Result<u64, StoreError> {
        use std::hash::BuildHasher;
        let key = format!("{}seed", self.prefix);
        let candidate = foldhash::fast::RandomState::default().hash_one(std::process::id());
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(candidate.to_string()).arg("NX");
        self.connection
            .query::<Value>(&set)
            .await
            .map_err(unavailable)?;
        let seed: String = self
            .connection
            .query(redis::cmd("GET").arg(&key))
            .await
            .map_err(unavailable)?;
        seed.parse()
            .map_err(|_| StoreError::Protocol(format!("key seed {seed:?} is not a number")))
    }

    fn limit_keys(&self, name: &str) -> [String; 3] {
        limit_keys(&self.prefix, name)
    }
}

fn int(v: &Value, what: &str) -> Result<i64, StoreError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Protocol(format!("{what}: not an integer"))),
        other => Err(StoreError::Protocol(format!("{what}: {other:?}"))),
    }
}

fn ints<const N: usize>(v: Value, what: &str) -> Result<[i64; N], StoreError> {
    match v {
        Value::Array(items) if items.len() == N => {
            let mut out = [0; N];
            for (slot, item) in out.iter_mut().zip(&items) {
                *slot = int(item, what)?;
            }
            Ok(out)
        }
        other => Err(StoreError::Protocol(format!("{what}: {other:?}"))),
    }
}

fn text(v: &Value, what: &str) -> Result<String, StoreError> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Nil => Ok(String::new()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(StoreError::Protocol(format!("{what}: {other:?}"))),
    }
}

/// Forwards the announcements of one operator-state channel to `tx` until every receiver is
/// gone: a pub/sub connection of its own (redis-rs's `aio::PubSub`), opened again after it
/// breaks (every half second), and each (re)subscription counted as an announcement too, since
/// some may have been missed while it was away.
async fn announcements(
    client: redis::Client,
    channel: String,
    tx: tokio::sync::watch::Sender<u64>,
) {
    use futures_util::StreamExt;
    let bump = |tx: &tokio::sync::watch::Sender<u64>| tx.send_modify(|n| *n = n.wrapping_add(1));
    let mut first = true;
    while !tx.is_closed() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        if let Ok(Ok(mut pubsub)) = tokio::time::timeout(CONNECT_TIMEOUT, subscribed).await {
            if !first {
                bump(&tx);
            }
            first = false;
            let mut messages = pubsub.on_message();
            loop {
                let next = std::pin::pin!(messages.next());
                let closed = std::pin::pin!(tx.closed());
                match futures_util::future::select(next, closed).await {
                    futures_util::future::Either::Left((Some(_), _)) => bump(&tx),
                    // The connection broke: subscribe again.
                    futures_util::future::Either::Left((None, _)) => break,
                    futures_util::future::Either::Right(_) => return,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl RedisStore {
    /// Runs a per-key window script (`TAKE` or `DEBIT`: same arguments, same reply).
    async fn window_script(
        &self,
        script: &Script,
        take: Take<'_>,
        what: &str,
    ) -> Result<Grant, StoreError> {
        let mut call = script.key(budget_key(&self.prefix, take.name, take.key));
        call.arg(take.window_ms).arg(take.limit).arg(take.want);
        let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
        let [granted, used, reset_in, window] = ints::<4>(reply, what)?;
        Ok(Grant {
            granted: granted.max(0) as u64,
            used: used.max(0) as u64,
            reset_in_ms: reset_in.max(1) as u64,
            window: window.max(0) as u64,
        })
    }
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl Store for RedisStore {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        Box::pin(self.window_script(&self.scripts.take, take, "take"))
    }

    fn load_limit<'a>(
        &'a self,
        name: &'a str,
        default: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, (u32, LimitSource)> {
        Box::pin(async move {
            let [limit, safe, _] = self.limit_keys(name);
            let mut call = self.scripts.load_limit.key(limit);
            call.key(safe).arg(default).arg(bounds.min).arg(bounds.max);
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let Value::Array(items) = reply else {
                return Err(StoreError::Protocol("load_limit: not an array".into()));
            };
            let limit = items.first().map(|v| int(v, "load_limit")).transpose()?;
            let source = match items.get(1) {
                Some(Value::BulkString(s)) if s == b"current" => LimitSource::Current,
                Some(Value::BulkString(s)) if s == b"safe" => LimitSource::Safe,
                Some(Value::BulkString(s)) if s == b"default" => LimitSource::Default,
                other => return Err(StoreError::Protocol(format!("load_limit: {other:?}"))),
            };
            Ok((bounds.clamp(to_u32(limit.unwrap_or(0))), source))
        })
    }

    fn set_limit<'a>(
        &'a self,
        name: &'a str,
        limit: u32,
        bounds: LimitBounds,
        save_safe: bool,
    ) -> StoreFuture<'a, (Option<u32>, u32)> {
        Box::pin(async move {
            let [limit_key, safe, _] = self.limit_keys(name);
            let mut call = self.scripts.set_limit.key(limit_key);
            call.key(safe)
                .arg(limit)
                .arg(bounds.min)
                .arg(bounds.max)
                .arg(if save_safe { "1" } else { "0" })
                .arg(SAFE_LIMIT_TTL.as_secs());
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let [previous, new] = ints::<2>(reply, "set_limit")?;
            Ok(((previous >= 0).then(|| to_u32(previous)), to_u32(new)))
        })
    }

    fn compare_and_set_limit<'a>(
        &'a self,
        name: &'a str,
        expected: u32,
        limit: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, CompareAndSet> {
        Box::pin(async move {
            let [limit_key, _, _] = self.limit_keys(name);
            let mut call = self.scripts.cas_limit.key(limit_key);
            call.arg(expected)
                .arg(limit)
                .arg(bounds.min)
                .arg(bounds.max);
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let [ok, value] = ints::<2>(reply, "compare_and_set_limit")?;
            Ok(if ok == 1 {
                CompareAndSet::Set(to_u32(value))
            } else {
                CompareAndSet::Mismatch(to_u32(value))
            })
        })
    }

    fn heartbeat<'a>(
        &'a self,
        name: &'a str,
        instance: &'a str,
        ttl: Duration,
        report: &'a str,
    ) -> StoreFuture<'a, FleetView> {
        Box::pin(async move {
            let [limit_key, _, instances] = self.limit_keys(name);
            let [ops, reports, _] = ops_keys(&self.prefix, name);
            let mut call = self.scripts.heartbeat.key(limit_key);
            call.key(instances)
                .key(reports)
                .key(ops)
                .arg(instance)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                .arg(report);
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let [n, limit, ops] = ints::<3>(reply, "heartbeat")?;
            Ok(FleetView {
                instances: to_u32(n).max(1),
                limit: (limit >= 0).then(|| to_u32(limit)),
                ops_version: ops.max(0) as u64,
            })
        })
    }

    fn members<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Vec<MemberReport>> {
        Box::pin(async move {
            let [_, _, instances] = self.limit_keys(name);
            let [_, reports, _] = ops_keys(&self.prefix, name);
            let mut call = self.scripts.members.key(instances);
            call.key(reports)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let Value::Array(items) = reply else {
                return Err(StoreError::Protocol("members: not an array".into()));
            };
            items
                .chunks(3)
                .map(|c| match c {
                    [instance, ago, report] => Ok(MemberReport {
                        instance: text(instance, "members")?,
                        last_seen_ms_ago: int(ago, "members")?.max(0) as u64,
                        report: text(report, "members")?,
                    }),
                    _ => Err(StoreError::Protocol("members: a partial entry".into())),
                })
                .collect()
        })
    }

    fn load_ops<'a>(&'a self, name: &'a str) -> StoreFuture<'a, OpsRecord> {
        Box::pin(async move {
            let [ops, _, _] = ops_keys(&self.prefix, name);
            let reply: Value = self
                .connection
                .query(redis::cmd("HMGET").arg(ops).arg("v").arg("doc"))
                .await
                .map_err(unavailable)?;
            match reply {
                Value::Array(items) => match items.as_slice() {
                    [Value::Nil, _] => Ok(OpsRecord::default()),
                    [v, doc] => Ok(OpsRecord {
                        version: int(v, "load_ops")?.max(0) as u64,
                        document: text(doc, "load_ops")?,
                    }),
                    _ => Err(StoreError::Protocol("load_ops: not two fields".into())),
                },
                other => Err(StoreError::Protocol(format!("load_ops: {other:?}"))),
            }
        })
    }

    fn write_ops<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        document: &'a str,
    ) -> StoreFuture<'a, OpsWrite> {
        Box::pin(async move {
            let [ops, _, channel] = ops_keys(&self.prefix, name);
            let mut call = self.scripts.write_ops.key(ops);
            call.arg(expected).arg(document).arg(channel);
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let Value::Array(items) = reply else {
                return Err(StoreError::Protocol("write_ops: not an array".into()));
            };
            match items.as_slice() {
                [ok, v, doc] => {
                    let version = int(v, "write_ops")?.max(0) as u64;
                    Ok(if int(ok, "write_ops")? == 1 {
                        OpsWrite::Written(version)
                    } else {
                        OpsWrite::Conflict(OpsRecord {
                            version,
                            document: text(doc, "write_ops")?,
                        })
                    })
                }
                _ => Err(StoreError::Protocol("write_ops: not three fields".into())),
            }
        })
    }

    fn watch_ops(&self, name: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        let client = self.client.clone()?;
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let [_, _, channel] = ops_keys(&self.prefix, name);
        let (tx, rx) = tokio::sync::watch::channel(0);
        handle.spawn(announcements(client, channel, tx));
        Some(rx)
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: Value = self
                .connection
                .query(&redis::cmd("PING"))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn dlq_append<'a>(&'a self, q: &'a str, p: &'a str, max: u64) -> StoreFuture<'a, DlqAppended> {
        Box::pin(self.append_letter(q, p, max))
    }

    fn dlq_claim<'a>(
        &'a self,
        q: &'a str,
        consumer: &'a str,
        count: usize,
        min_idle: Duration,
    ) -> StoreFuture<'a, Vec<StoredLetter>> {
        Box::pin(self.claim_letters(q, consumer, count, min_idle))
    }

    fn dlq_touch<'a>(
        &'a self,
        q: &'a str,
        c: &'a str,
        ids: &'a [String],
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.touch_letters(q, c, ids))
    }

    fn dlq_ack<'a>(&'a self, q: &'a str, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.ack_letter(q, id))
    }

    fn dlq_is_done<'a>(&'a self, q: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.letter_done(q, id))
    }

    fn dlq_mark_done<'a>(&'a self, q: &'a str, id: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(self.mark_letter_done(q, id, ttl))
    }

    fn dlq_retry<'a>(
        &'a self,
        q: &'a str,
        id: &'a str,
        payload: &'a str,
        exhausted: bool,
        max: u64,
    ) -> StoreFuture<'a, String> {
        Box::pin(self.retry_letter(q, id, payload, exhausted, max))
    }

    fn dlq_counts<'a>(&'a self, q: &'a str) -> StoreFuture<'a, DlqCounts> {
        Box::pin(self.letter_counts(q))
    }

    fn dlq_entries<'a>(
        &'a self,
        q: &'a str,
        failed: bool,
        n: usize,
    ) -> StoreFuture<'a, Vec<StoredLetter>> {
        Box::pin(self.read_letters(q, failed, n))
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn debit<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        Box::pin(self.window_script(&self.scripts.debit, take, "debit"))
    }

    fn adjust<'a>(
        &'a self,
        name: &'a str,
        key: u64,
        window: u64,
        delta: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self.scripts.adjust.key(budget_key(&self.prefix, name, key));
            call.arg(window).arg(delta);
            let _: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn extend_cooldown<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
        delay: Duration,
        consecutive: u32,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self
                .scripts
                .extend_cooldown
                .key(cooldown_key(&self.prefix, name));
            call.arg(key)
                .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
                .arg(consecutive);
            let _: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn cooldowns<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<SharedCooldown>> {
        Box::pin(async move {
            let call = self.scripts.cooldowns.key(cooldown_key(&self.prefix, name));
            let reply: Value = self.connection.invoke(&call).await.map_err(unavailable)?;
            let Value::Array(items) = reply else {
                return Err(StoreError::Protocol("cooldowns: not an array".into()));
            };
            items
                .chunks_exact(3)
                .map(|c| {
                    let key = match &c[0] {
                        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        other => return Err(StoreError::Protocol(format!("cooldowns: {other:?}"))),
                    };
                    let left = int(&c[1], "cooldowns")?.max(0) as u64;
                    let n = to_u32(int(&c[2], "cooldowns")?);
                    Ok(SharedCooldown::new(key, Duration::from_millis(left), n))
                })
                .collect()
        })
    }

    fn clear_cooldown<'a>(&'a self, name: &'a str, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(cooldown_key(&self.prefix, name)).arg(key);
            let _: Value = self.connection.query(&cmd).await.map_err(unavailable)?;
            Ok(())
        })
    }
}
