//! cargo run --example llm_proxy --features axum
//!
//! An axum proxy in front of a (fake) language model that streams tokens, limited by tokens
//! per API key per minute on the throttle's cost axis:
//!
//! - each request **reserves** its `max_tokens`, read from the JSON body's first bytes by
//!   `BodyPrefixLayer` (the body still reaches the handler whole);
//! - the proxy streams the model's tokens back and **reports** each one into the request's
//!   `CostReport`; when the stream ends the true cost is **settled**: the unused part of the
//!   reservation is refunded;
//! - once a key's budget for the minute is spent, its next request gets a 429 whose
//!   `RateLimit` / `RateLimit-Policy` fields name the cost axis and its unit.
//!
//! It runs a scripted sequence of requests against the proxy in-process, prints each one, and
//! exits. With `--serve` it serves on 127.0.0.1:3000 (or `$PORT`) instead, with the admin
//! console at `/admin/throttle/console` (send
//! `curl -N -H 'x-api-key: alice' -d '{"max_tokens":50,"prompt":"hello"}' localhost:3000/v1/completions`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Json;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_adaptive_throttle::config::CostConfig;
use tower_adaptive_throttle::http::{json_u64_field, BodyPrefix, BodyPrefixLayer, HeaderKey};
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, CostReport, ThrottleConfig,
};

/// Tokens per API key per minute.
const BUDGET: u64 = 300;

/// The fake model: streams up to `max_tokens` tokens, as many as the prompt "needs" (here:
/// ten per word, a stand-in for a model that stops early).
fn model(prompt: &str, max_tokens: u64) -> mpsc::Receiver<String> {
    let wanted = (prompt.split_whitespace().count() as u64 * 10).min(max_tokens);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..wanted {
            if tx.send(format!("tok{i} ")).await.is_err() {
                return; // the client went away
            }
        }
    });
    rx
}

/// The proxy's response body: the model's tokens, each reported as it is sent.
struct TokenStream {
    tokens: mpsc::Receiver<String>,
    report: Option<CostReport>,
}

impl http_body::Body for TokenStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.tokens.poll_recv(cx) {
            Poll::Ready(Some(token)) => {
                if let Some(report) = &self.report {
                    report.add(1);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(token)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[derive(serde::Deserialize)]
struct Completion {
    max_tokens: u64,
    prompt: String,
}

async fn completions(report: Option<CostReport>, Json(req): Json<Completion>) -> Body {
    if let Some(report) = &report {
        // The stream reports every token: an empty answer costs nothing.
        report.set(0);
    }
    Body::new(TokenStream {
        tokens: model(&req.prompt, req.max_tokens),
        report,
    })
}

fn app(throttle: &AdaptiveThrottle) -> Router {
    // The estimate: `max_tokens` from the body's first KiB; no estimate, no reservation.
    let estimate = |req: &Request<_>| {
        let prefix = req.extensions().get::<BodyPrefix>()?;
        json_u64_field(&prefix.0, "max_tokens")
    };
    Router::new()
        .route("/v1/completions", post(completions))
        .layer(
            AdaptiveThrottleLayer::from_throttle(throttle.clone())
                .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
                .cost_estimator(estimate),
        )
        .layer(BodyPrefixLayer::new(1024))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ThrottleConfig::builder()
        .cost(
            CostConfig::new(BUDGET)
                .window(Duration::from_secs(60))
                .unit("tokens"),
        )
        .build()?;
    let throttle = AdaptiveThrottle::new(cfg);
    let app = app(&throttle);

    if std::env::args().any(|a| a == "--serve") {
        // The admin console shows the cost axis next to the others.
        let registry = tower_adaptive_throttle::ThrottleRegistry::new();
        registry.register("llm", throttle.clone());
        let app = app.nest(
            "/admin/throttle",
            tower_adaptive_throttle::admin::router(registry),
        );
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}/v1/completions (console: /admin/throttle/console)");
        axum::serve(listener, app).await?;
        return Ok(());
    }

    println!("budget: {BUDGET} tokens per API key per minute\n");
    let script: [(&str, u64, &str); 5] = [
        ("alice", 200, "tell me a joke"), // 40 tokens: 160 refunded
        (
            "alice",
            200,
            "explain the cost axis in twelve short words ok",
        ), // 90 tokens
        ("alice", 200, &"word ".repeat(30)), // 200 tokens: crosses the budget
        ("alice", 50, "one more please"), // budget spent: 429
        ("bob", 100, "hello there"),      // bob has his own budget
    ];
    for (key, max_tokens, prompt) in script {
        let body =
            serde_json::json!({ "model": "fake-1", "max_tokens": max_tokens, "prompt": prompt });
        let req = Request::post("/v1/completions")
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?;
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (ratelimit, policy, retry) = (
            header("ratelimit"),
            header("ratelimit-policy"),
            header("retry-after"),
        );
        let spent_before = spent(&throttle, key);
        let text = String::from_utf8(res.into_body().collect().await?.to_bytes().to_vec())?;
        println!("{key}: max_tokens={max_tokens} -> {status}");
        if status == StatusCode::OK {
            let streamed = text.split_whitespace().count() as u64;
            let reserved = max_tokens;
            println!(
                "  streamed {streamed} tokens; reserved {reserved}, refunded {}",
                reserved.saturating_sub(streamed)
            );
            println!(
                "  spent while streaming: {spent_before}, after settlement: {}",
                spent(&throttle, key)
            );
            println!("  ratelimit: {ratelimit}\n  ratelimit-policy: {policy}");
        } else {
            println!(
                "  retry-after: {retry}\n  ratelimit: {ratelimit}\n  ratelimit-policy: {policy}"
            );
            println!("  body: {text}");
        }
        println!();
    }
    let stats = throttle.cost_stats().expect("the cost axis is on");
    println!(
        "cost axis: {} {} admitted, {} refunded, {} reservations refused",
        stats.reserved_total, stats.unit, stats.refunded_total, stats.denied_total
    );
    Ok(())
}

/// Tokens `key` has spent this minute (the layer keys by the `x-api-key` header value).
fn spent(throttle: &AdaptiveThrottle, key: &str) -> u64 {
    let key = Some(http::HeaderValue::from_str(key).expect("a valid header value"));
    throttle.cost_usage(&key).map_or(0, |u| u.spent)
}
