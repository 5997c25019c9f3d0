//! The admin router (feature `axum`): live stats as JSON, Prometheus metrics, a server-sent
//! event stream and a self-contained console page, plus operator controls behind a bearer token.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_adaptive_throttle::{admin, ThrottleConfig, ThrottleRegistry};
//!
//! let registry = ThrottleRegistry::new();
//! registry.get_or_create("api", ThrottleConfig::default());
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .nest("/admin/throttle", admin::router(registry.clone()));
//! // With operator controls:
//! let ops = admin::AdminOptions::new(registry).bearer_token("s3cret").router();
//! ```
//!
//! Read-only routes:
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | every throttle's stats (JSON array of `{name, stats}`) |
//! | `GET /metrics` | Prometheus / OpenMetrics text |
//! | `GET /events` | server-sent events: `throttle` events as they happen and a `tick` snapshot every second (`?throttle=name` to filter); with a dead-letter queue, its `dlq` events too |
//! | `GET /console` | the live console (HTML, works offline) |
//! | `GET /{name}` | one throttle's stats, governance, breaker and counters |
//! | `GET /{name}/audit?limit=N` | the latest audit entries |
//! | `GET /dlq/audit?limit=N` (feature `dlq`) | the latest audit entries of the dead-letter queue |
//!
//! Routes that need `Authorization: Bearer <token>` (401 without it, or when no token is
//! configured; the comparison is constant-time). The actor recorded in the audit trail is the
//! `X-Throttle-Actor` header, or `admin`:
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
//! | `GET /dlq` (feature `dlq`) | — (pending and permanently failed entries, counters) |
//! | `POST /dlq/replay`, `/dlq/purge`, `/dlq/purge-failed` | — |
//!
//! The dead-letter routes need [`AdminOptions::dead_letter_queue`] or
//! [`AdminOptions::replayer`].
//!
//! Durations in JSON answers are milliseconds (floats). A throttle named like a fixed route
//! (`metrics`, `events`, `console`) is reachable through the JSON list only.

#[cfg(feature = "dlq")]
mod dlq;
mod json;
mod sse;

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

/// The console page, one self-contained file.
pub(crate) const CONSOLE_HTML: &str = include_str!("console.html");

/// Options of the admin router.
#[derive(Clone)]
pub struct AdminOptions {
    registry: ThrottleRegistry,
    token: Option<Arc<str>>,
    tick: Duration,
    #[cfg(feature = "dlq")]
    dlq: Option<dlq::DlqAdmin>,
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("throttles", &self.registry.names())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("tick", &self.tick)
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
            #[cfg(feature = "dlq")]
            dlq: None,
        }
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

    /// The router; nest it wherever you like.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        #[cfg(feature = "dlq")]
        let routes = Router::new()
            .route("/dlq", get(dlq::list))
            .route("/dlq/audit", get(dlq::audit))
            .route("/dlq/replay", post(dlq::replay))
            .route("/dlq/purge", post(dlq::purge))
            .route("/dlq/purge-failed", post(dlq::purge_failed));
        #[cfg(not(feature = "dlq"))]
        let routes = Router::new();
        routes
            .route("/", get(list))
            .route("/metrics", get(metrics))
            .route("/events", get(sse::events))
            .route("/console", get(console))
            .route("/{name}", get(one))
            .route("/{name}/audit", get(audit))
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
            .with_state(state)
    }
}

/// The read-only admin router over `registry` (mutating routes answer 401). Use
/// [`AdminOptions`] to configure a bearer token.
pub fn router(registry: ThrottleRegistry) -> Router {
    AdminOptions::new(registry).router()
}

type Shared = Arc<AdminOptions>;

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
    // Embedded in a <script> element: `</` must not end it early.
    let state = state.to_string().replace("</", "<\\/");
    Html(CONSOLE_HTML.replacen("/*INITIAL_STATE*/[]", &state, 1))
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
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(Refused("missing or wrong bearer token"));
    }
    Ok(headers
        .get("x-throttle-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| "admin".to_owned(), |v| v.chars().take(128).collect()))
}

/// Runs an operator action on the named throttle as `actor`, answering with its new state.
fn operate(
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
    match t.as_actor(&actor, action) {
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
}

macro_rules! simple_action {
    ($($fn_name:ident => $method:ident;)*) => {$(
        async fn $fn_name(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
            operate(&s, &headers, &name, |t| {
                let _ = t.$method();
                Ok(())
            })
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
    operate(&s, &headers, &name, |t| {
        let cfg = parsed.map_err(|e| format!("invalid config: {e}"))?;
        t.swap_config(cfg);
        Ok(())
    })
}
