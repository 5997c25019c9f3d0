//! The admin router (feature `axum`): live stats as JSON, Prometheus metrics, a server-sent
//! event stream, the history of every throttle and a self-contained console page, plus operator
//! controls behind a bearer token.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_adaptive_throttle::{admin, ThrottleConfig, ThrottleRegistry};
//!
//! # async fn run() {
//! let registry = ThrottleRegistry::new();
//! registry.get_or_create("api", ThrottleConfig::default());
//! let timeline = admin::Timeline::new();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     // `nest_service` answers `/admin/throttle/` too; axum's `nest` only `/admin/throttle`.
//!     .nest_service("/admin/throttle", admin::router(registry.clone()));
//! // With operator controls, and the application's marks on the console's timeline:
//! let ops = admin::AdminOptions::new(registry)
//!     .bearer_token("s3cret")
//!     .timeline(timeline.clone())
//!     .router();
//! timeline.mark("deploy 1.4.2");
//! # }
//! ```
//!
//! From the moment it is built, whether or not anyone looks, the router keeps a history: a
//! snapshot of every registered throttle each [`AdminOptions::history_interval`] (1 s), the last
//! [`HISTORY_CAPACITY`] (600: ten minutes) of each, and the marks of its [`Timeline`]. The
//! snapshots are taken by a task on the tokio runtime the router is built on (or, built outside
//! one, on the runtime of its first request), off the request path; the task ends once the
//! router is dropped.
//!
//! Read-only routes (open by default, since they hold no request data; behind the token with
//! [`AdminOptions::reads_need_token`]):
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | every throttle's stats (JSON array of `{name, stats}`) |
//! | `GET /metrics` | Prometheus / OpenMetrics text |
//! | `GET /events` | server-sent events: `throttle` events as they happen, a `tick` snapshot every second, and each `sample` round of the history as it is taken (`?throttle=name` to filter; `?since=n` to get the kept rounds after round `n` first); with a dead-letter queue, its `dlq` events too |
//! | `GET /console` | the live console (HTML, works offline), with the history drawn from the start |
//! | `GET /fleet` | fleet mode: for each throttle with a store, the live instances of its fleet (`[{throttle, fleet, instance, instances: [{instance, this_instance, limit, in_flight, regime, store_health, ops_version, last_seen_ms_ago}]}]`, `error` when the store did not answer) |
//! | `GET /{name}` | one throttle's stats, governance, breaker and counters |
//! | `GET /{name}/audit?limit=N` | the latest audit entries |
//! | `GET /{name}/history` | the history kept: `{throttle, interval_ms, capacity, last_seq, samples, markers}`, each sample with its round's `seq` and its time `t` (milliseconds since the Unix epoch), the limit, in-flight count and limit, smoothed RTT, admitted and rejected per second, regime, ramp; each marker `{id, t, label}` |
//! | `GET /dlq/audit?limit=N` (feature `dlq`) | the latest audit entries of the dead-letter queue |
//!
//! Routes that need `Authorization: Bearer <token>` (401 without it, or when no token is
//! configured; checked before the body is read, the scheme case-insensitively, the token in
//! constant time). The actor recorded in the audit trail is the `X-Throttle-Actor` header, or
//! `admin`:
//!
//! | route | body |
//! |---|---|
//! | `GET /{name}/keys/{key}` | — (per-key status, consuming nothing) |
//! | `POST /{name}/kill-switch` | `{"on": true}` |
//! | `POST /{name}/emergency` | `{"level": 2}` |
//! | `POST /{name}/error-budget` | `{"state": "critical"}` |
//! | `POST /{name}/load-shedding` | `{"traffic_percent": 40}` or `{"traffic_percent": null}` |
//! | `POST /{name}/break-glass`, `/enable`, `/disable`, `/reset`, `/rollback` | — |
//! | `PUT /{name}/config` | a `ThrottleConfig` as JSON (validated; unknown fields rejected) |
//! | `GET /dlq` (feature `dlq`) | — (pending and permanently failed entries, counters; a durable queue's store counts) |
//! | `POST /dlq/replay`, `/dlq/purge`, `/dlq/purge-failed` | — |
//!
//! In fleet mode (a throttle built with a store) the kill switch, emergency, error budget, load
//! shedding, break glass, enable, disable and config routes act on every instance of the fleet:
//! the answer waits for the change to be stored (bounded by the store timeout) and adds
//! `"fleet_ops": {"version": n, "propagated": bool}` — `false` when the store is away and the
//! change applies to this instance only, for now. Reset and rollback stay per instance.
//!
//! The dead-letter routes need [`AdminOptions::dead_letter_queue`] or
//! [`AdminOptions::replayer`].
//!
//! Durations in JSON answers are milliseconds (floats). A throttle named like a fixed route
//! (`metrics`, `events`, `console`, `fleet`) is reachable through the JSON list only.

#[cfg(feature = "dlq")]
mod dlq;
mod history;
mod json;
mod sse;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::ThrottleConfig;
use crate::governance::ErrorBudget;
use crate::registry::ThrottleRegistry;
use crate::throttle::AdaptiveThrottle;

pub use history::{Timeline, HISTORY_CAPACITY};

/// The console page, one self-contained file.
pub(crate) const CONSOLE_HTML: &str = include_str!("console.html");

/// Options of the admin router.
#[derive(Clone)]
pub struct AdminOptions {
    registry: ThrottleRegistry,
    token: Option<Arc<str>>,
    tick: Duration,
    history_interval: Duration,
    timeline: Option<Timeline>,
    reads_need_token: bool,
    #[cfg(feature = "dlq")]
    dlq: Option<dlq::DlqAdmin>,
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("throttles", &self.registry.names())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("tick", &self.tick)
            .field("history_interval", &self.history_interval)
            .field("timeline", &self.timeline)
            .field("reads_need_token", &self.reads_need_token)
            .finish_non_exhaustive()
    }
}

impl AdminOptions {
    /// Read-only admin over `registry`.
    pub fn new(registry: ThrottleRegistry) -> Self {
        Self {
            registry,
            token: None,
            tick: Duration::from_secs(1),
            history_interval: Duration::from_secs(1),
            timeline: None,
            reads_need_token: false,
            #[cfg(feature = "dlq")]
            dlq: None,
        }
    }

    /// Puts the read-only routes — stats, audit trails, history, `/metrics`, `/events` and the
    /// console — behind the bearer token too (default: open, since they hold no request data;
    /// a deployment that exposes the router beyond its operators should turn this on). The
    /// console page then needs a proxy that adds the `Authorization` header, and a Prometheus
    /// scrape its `authorization` setting.
    pub fn reads_need_token(mut self, on: bool) -> Self {
        self.reads_need_token = on;
        self
    }

    /// Enables the per-key and mutating routes for requests bearing this token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        let token: String = token.into();
        self.token = (!token.is_empty()).then(|| Arc::from(token));
        self
    }

    /// How often the event stream sends a `tick` snapshot (default 1 s).
    pub fn tick_interval(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(10));
        self
    }

    /// How often the history takes a snapshot of every throttle (default 1 s, at least 10 ms).
    /// The router keeps the last [`HISTORY_CAPACITY`] snapshots of each: ten minutes at the
    /// default.
    pub fn history_interval(mut self, interval: Duration) -> Self {
        self.history_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Records the marks made on `timeline` in the history, where the console draws them as
    /// labelled vertical lines.
    pub fn timeline(mut self, timeline: Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// The router. Mount it with `nest_service`, which answers both `/admin/throttle` and
    /// `/admin/throttle/` (axum's `nest` routes only the first).
    ///
    /// From now on, and whether or not anyone reads it, the router keeps a history of every
    /// registered throttle (see [`history_interval`](Self::history_interval)). Its sampler is a
    /// task on the current tokio runtime, which ends once the router is dropped; a router built
    /// outside a runtime starts it on its first request.
    pub fn router(self) -> Router {
        let history = history::History::new(self.history_interval, self.timeline.clone());
        let state = Arc::new(AdminState {
            options: self,
            history,
        });
        // The first snapshot now; the sampler takes the next one an interval later.
        state.history.sample(&state.registry);
        let sampling = history::start_sampler(&state);
        #[cfg(feature = "dlq")]
        let operator = Router::new()
            .route("/dlq", get(dlq::list))
            .route("/dlq/replay", post(dlq::replay))
            .route("/dlq/purge", post(dlq::purge))
            .route("/dlq/purge-failed", post(dlq::purge_failed));
        #[cfg(not(feature = "dlq"))]
        let operator = Router::new();
        let operator = operator
            .route("/{name}/keys/{key}", get(key_status))
            .route("/{name}/kill-switch", post(kill_switch))
            .route("/{name}/emergency", post(emergency))
            .route("/{name}/error-budget", post(error_budget))
            .route("/{name}/load-shedding", post(load_shedding))
            .route("/{name}/break-glass", post(break_glass))
            .route("/{name}/enable", post(enable))
            .route("/{name}/disable", post(disable))
            .route("/{name}/reset", post(reset))
            .route("/{name}/rollback", post(rollback))
            .route("/{name}/config", put(swap_config))
            // The credential is checked before any extractor runs: a request without it is
            // answered 401 and its body is never read.
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_token,
            ));
        let routes = Router::new()
            .route("/", get(list))
            .route("/metrics", get(metrics))
            .route("/events", get(sse::events))
            .route("/console", get(console))
            .route("/fleet", get(fleet))
            .route("/{name}", get(one))
            .route("/{name}/audit", get(audit))
            .route("/{name}/history", get(history_of));
        // The queue's audit trail is read-only and holds no request data, like a throttle's.
        #[cfg(feature = "dlq")]
        let routes = routes.route("/dlq/audit", get(dlq::audit));
        let routes = if state.reads_need_token {
            routes.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_token,
            ))
        } else {
            routes
        };
        let routes = routes.merge(operator).with_state(state.clone());
        if sampling {
            return routes;
        }
        routes.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                history::start_sampler(&state);
                next.run(request)
            },
        ))
    }
}

/// The state behind a router: its options and its history.
pub(crate) struct AdminState {
    options: AdminOptions,
    history: history::History,
}

impl Deref for AdminState {
    type Target = AdminOptions;

    fn deref(&self) -> &AdminOptions {
        &self.options
    }
}

/// The read-only admin router over `registry` (mutating routes answer 401). Use
/// [`AdminOptions`] to configure a bearer token.
pub fn router(registry: ThrottleRegistry) -> Router {
    AdminOptions::new(registry).router()
}

type Shared = Arc<AdminState>;

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no throttle named {name:?}")})),
    )
        .into_response()
}

async fn list(State(s): State<Shared>) -> Json<Value> {
    Json(Value::Array(
        s.registry
            .list()
            .iter()
            .map(|(name, t)| json::throttle(name, t))
            .collect(),
    ))
}

/// Every throttle in fleet mode with the live instances of its fleet.
async fn fleet(State(s): State<Shared>) -> Json<Value> {
    let mut out = Vec::new();
    for (name, t) in s.registry.list() {
        let Some(members) = t.fleet_members().await else {
            continue;
        };
        let stats = t.fleet_stats();
        let mut entry = json!({
            "throttle": name,
            "fleet": stats.as_ref().map(|f| f.name.clone()),
            "instance": stats.as_ref().map(|f| f.instance.clone()),
        });
        match members {
            Ok(members) => entry["instances"] = json!(members),
            Err(e) => {
                entry["instances"] = json!([]);
                entry["error"] = json!(e.to_string());
            }
        }
        out.push(entry);
    }
    Json(Value::Array(out))
}

async fn one(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match s.registry.get(&name) {
        Some(t) => Json(json::throttle(&name, &t)).into_response(),
        None => not_found(&name),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    match s.registry.get(&name) {
        Some(t) => {
            let entries = t.audit().recent(q.limit.unwrap_or(100).min(10_000));
            Json(json::to_ms(
                serde_json::to_value(entries).unwrap_or(Value::Null),
            ))
            .into_response()
        }
        None => not_found(&name),
    }
}

async fn history_of(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    if !s.registry.exists(&name) {
        return not_found(&name);
    }
    let mut history = s.history.to_json(Some(&name));
    let samples = history["throttles"]
        .get_mut(&name)
        .map_or(Value::Array(Vec::new()), Value::take);
    if let Value::Object(map) = &mut history {
        map.remove("throttles");
        map.insert("throttle".into(), json!(name));
        map.insert("samples".into(), samples);
    }
    Json(history).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&s.registry),
    )
        .into_response()
}

async fn console(State(s): State<Shared>) -> Html<String> {
    let state = Value::Array(
        s.registry
            .list()
            .iter()
            .map(|(name, t)| json::throttle(name, t))
            .collect(),
    );
    // Embedded in <script> elements, which neither `</script` nor `<!--` may appear in: `<`
    // only occurs inside JSON strings, where `\u003c` means the same.
    let state = state.to_string().replace('<', "\\u003c");
    let history = s.history.to_json(None).to_string().replace('<', "\\u003c");
    Html(fill(
        CONSOLE_HTML,
        &[("/*INITIAL_STATE*/[]", &state), ("/*HISTORY*/{}", &history)],
    ))
}

/// `template` with the first occurrence of each placeholder replaced (in the template only, not
/// in what replaces an earlier one).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    let mut pending: Vec<_> = values.to_vec();
    while let Some((at, i)) = pending
        .iter()
        .enumerate()
        .filter_map(|(i, (placeholder, _))| rest.find(placeholder).map(|at| (at, i)))
        .min()
    {
        let (placeholder, value) = pending.remove(i);
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + placeholder.len()..];
    }
    out.push_str(rest);
    out
}

/// Why an operator request was refused.
struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": self.0 })),
        )
            .into_response()
    }
}

/// Refuses an operator request without the bearer token before its body is read.
async fn require_token(
    State(s): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorise(&s, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The actor of an authorised request, or why it is refused.
fn authorise(s: &AdminOptions, headers: &HeaderMap) -> Result<String, Refused> {
    use subtle::ConstantTimeEq;
    let Some(expected) = s.token.as_deref() else {
        return Err(Refused(
            "operator routes are disabled: no bearer token is configured",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start());
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(Refused("missing or wrong bearer token"));
    }
    Ok(headers
        .get("x-throttle-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| "admin".to_owned(), |v| v.chars().take(128).collect()))
}

/// Runs an operator action on the named throttle as `actor`, answering with its new state. In
/// fleet mode the answer waits for the change to be stored for the fleet (bounded by the store
/// timeout) and says whether it was: `"fleet_ops": {"version": n, "propagated": bool}`.
async fn operate(
    s: &AdminOptions,
    headers: &HeaderMap,
    name: &str,
    action: impl FnOnce(&AdaptiveThrottle) -> Result<(), String>,
) -> Response {
    let actor = match authorise(s, headers) {
        Ok(actor) => actor,
        Err(refused) => return refused.into_response(),
    };
    let Some(t) = s.registry.get(name) else {
        return not_found(name);
    };
    let done = t.as_actor(&actor, action);
    match done {
        Ok(()) if t.fleet_stats().is_some() => {
            let ops = t.propagate_ops().await;
            let mut answer = json::throttle(name, &t);
            if let Value::Object(map) = &mut answer {
                map.insert(
                    "fleet_ops".into(),
                    json!({ "version": ops.version, "propagated": !ops.pending }),
                );
            }
            Json(answer).into_response()
        }
        Ok(()) => Json(json::throttle(name, &t)).into_response(),
        Err(message) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": message })),
        )
            .into_response(),
    }
}

async fn key_status(
    State(s): State<Shared>,
    Path((name, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorise(&s, &headers) {
        return refused.into_response();
    }
    match s.registry.get(&name) {
        // Keys given as text are hashed as text: this matches throttles keyed by strings.
        Some(t) => Json(json::to_ms(
            json!({ "key": key, "decision": t.peek(key.as_str()) }),
        ))
        .into_response(),
        None => not_found(&name),
    }
}

#[derive(Deserialize)]
struct KillSwitch {
    on: bool,
}

async fn kill_switch(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<KillSwitch>,
) -> Response {
    operate(&s, &headers, &name, |t| {
        t.governance().set_kill_switch(body.on);
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
struct Emergency {
    level: u8,
}

async fn emergency(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Emergency>,
) -> Response {
    operate(&s, &headers, &name, |t| {
        if body.level > 3 {
            return Err(format!(
                "emergency level must be 0 to 3, got {}",
                body.level
            ));
        }
        t.governance().set_emergency_level(body.level);
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
struct Budget {
    state: ErrorBudget,
}

async fn error_budget(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Budget>,
) -> Response {
    operate(&s, &headers, &name, |t| {
        t.governance().set_error_budget(body.state);
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
struct Shedding {
    traffic_percent: Option<u8>,
}

async fn load_shedding(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Shedding>,
) -> Response {
    operate(&s, &headers, &name, |t| {
        if body.traffic_percent.is_some_and(|p| p > 100) {
            return Err(format!(
                "traffic_percent must be 0 to 100, got {:?}",
                body.traffic_percent
            ));
        }
        t.governance().set_load_shedding(body.traffic_percent);
        Ok(())
    })
    .await
}

macro_rules! simple_action {
    ($($fn_name:ident => $method:ident;)*) => {$(
        async fn $fn_name(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
            operate(&s, &headers, &name, |t| {
                let _ = t.$method();
                Ok(())
            })
            .await
        }
    )*};
}

async fn break_glass(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    operate(&s, &headers, &name, |t| {
        t.governance().break_glass();
        Ok(())
    })
    .await
}

simple_action! {
    enable => enable;
    disable => disable;
    reset => reset_all;
    rollback => rollback_to_base_limit;
}

async fn swap_config(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Parsed here rather than by the `Json` extractor so a bad config answers with the
    // validation message naming the values.
    let parsed = serde_json::from_slice::<ThrottleConfig>(&body);
    // The fields the body names: one it leaves out keeps its running value either way.
    let named: Vec<String> = serde_json::from_slice::<serde_json::Map<String, Value>>(&body)
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default();
    operate(&s, &headers, &name, |t| {
        let cfg = parsed.map_err(|e| format!("invalid config: {e}"))?;
        let refused: Vec<String> = t
            .config()
            .fixed_at_build_differences(&cfg)
            .into_iter()
            .filter(|(field, _)| named.iter().any(|n| n == field))
            .map(|(field, values)| format!("{field} ({values})"))
            .collect();
        if !refused.is_empty() {
            return Err(format!(
                "fixed when the throttle is built, so a swap cannot apply: {}",
                refused.join(", ")
            ));
        }
        t.swap_config(cfg);
        Ok(())
    })
    .await
}
