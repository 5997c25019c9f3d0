//! The console page rendered by a real headless browser (Debian's chromium) against a live
//! server: it must show the current limit and at least one chart point; opened late, it must
//! draw the server's history (at least 60 points) on a labelled time axis, with the timeline's
//! marks.
//!
//! Skipped, loudly, when no chromium binary is found — unless `THROTTLE_REQUIRE_BROWSER=1`
//! (set by `.ci/run`), in which case a missing browser fails the test.
#![cfg(feature = "axum")]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use tower_adaptive_throttle::admin::{self, AdminOptions, Timeline};
use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, Tier};

use crate::support::{body_json, get, local_listener, registry_with, respond};

fn chromium() -> Option<String> {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {candidate}"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if let Some(path) = found.filter(|p| !p.is_empty()) {
            return Some(path);
        }
    }
    None
}

/// The browser to use, or `None` after saying loudly why the test is skipped (a missing browser
/// fails the test when `THROTTLE_REQUIRE_BROWSER=1`).
fn browser_or_skip(test: &str) -> Option<String> {
    let browser = chromium();
    if browser.is_none() {
        let required = std::env::var("THROTTLE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "THROTTLE_REQUIRE_BROWSER=1 but no chromium binary was found on PATH"
        );
        eprintln!("SKIPPED {test}: chromium not found (install Debian's `chromium`)");
    }
    browser
}

/// The page at `url` as the browser has rendered it after five seconds: (DOM, stderr).
async fn rendered(browser: String, url: String) -> (String, String) {
    // One profile per run: two browsers cannot share one.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "throttle-console-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1200,1000",
                // Not --virtual-time-budget: virtual time stops while the page's event stream
                // is open, so it would never run out. A real 5 s budget, then the DOM.
                "--timeout=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(&url)
            .output()
    });
    // Chromium ends itself after its budget; this bounds the wait if it hangs.
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("chromium ends within a minute")
        .unwrap()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The number in `attribute="N"` on the element with `id="id"` in `dom`.
fn attribute_of(dom: &str, id: &str, attribute: &str) -> Option<u64> {
    let at = dom.find(&format!(r#"id="{id}""#))?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let value = tag.split(&format!(r#"{attribute}=""#)).nth(1)?;
    value[..value.find('"')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_current_limit_and_a_chart_point() {
    let Some(browser) = browser_or_skip("console_shows_the_current_limit_and_a_chart_point") else {
        return;
    };

    let throttle = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let registry = registry_with("api", &throttle);
    // Move the limit so the page must show the live value, not the default.
    throttle.record_response(Duration::from_millis(600));
    assert_eq!(throttle.current_limit(), 70);
    for _ in 0..5 {
        throttle.check("client", Tier::Standard);
    }

    let app = Router::new().nest_service("/admin/throttle", admin::router(registry));
    let (listener, addr) = local_listener().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = format!("http://{addr}/admin/throttle/console");
    let (dom, stderr) = rendered(browser, url).await;
    assert!(
        dom.contains(r#"<div class="value" id="limit">70</div>"#),
        "the rendered page shows the current limit 70; stderr: {stderr}\nDOM: {dom}"
    );
    assert!(
        dom.contains(r#"class="chart-point""#) && dom.contains(r#"data-limit="70""#),
        "the chart has at least one point at the limit; DOM: {dom}"
    );
    assert!(
        dom.contains("regime-throttling"),
        "regime rendered; DOM: {dom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_opened_late_draws_the_history_on_a_time_axis() {
    let Some(browser) = browser_or_skip("console_opened_late_draws_the_history_on_a_time_axis")
    else {
        return;
    };

    // The recommended configuration: a limit and an in-flight limit, each on its own panel.
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    let timeline = Timeline::new();
    timeline.mark("steady");
    // Snapshots every 50 ms: the 60 snapshots of a page opened a minute late take 3 s.
    let admin = AdminOptions::new(registry_with("api", &throttle))
        .history_interval(Duration::from_millis(50))
        .timeline(timeline.clone())
        .router();
    let app = Router::new().nest_service("/admin/throttle", admin);
    let (listener, addr) = local_listener().await;
    let server = app.clone();
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let mut kept = 0;
    for round in 0..200 {
        if round == 30 {
            timeline.mark("spike");
        }
        for _ in 0..3 {
            throttle.check("client", Tier::Standard);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let history = body_json(respond(&app, get("/admin/throttle/api/history")).await).await;
        kept = history["samples"].as_array().unwrap().len();
        if kept >= 65 {
            break;
        }
    }
    assert!(
        kept >= 65,
        "the server kept 65 snapshots within 10 s (kept {kept})"
    );

    let url = format!("http://{addr}/admin/throttle/console");
    let (dom, stderr) = rendered(browser, url).await;
    let points = attribute_of(&dom, "chart", "data-points");
    assert!(
        points.is_some_and(|n| n >= 60),
        "at least 60 points of history plotted, got {points:?}; stderr: {stderr}\nDOM: {dom}"
    );
    let ticks = attribute_of(&dom, "time-axis", "data-ticks");
    assert!(
        ticks.is_some_and(|n| n >= 2),
        "a time axis with ticks, got {ticks:?}; DOM: {dom}"
    );
    assert!(
        dom.contains("time (local clock, hh:mm:ss)"),
        "the time axis is labelled; DOM: {dom}"
    );
    assert!(
        dom.contains(r#"class="axis-y""#) && dom.contains(r#"class="tick-label""#),
        "value axes with tick labels; DOM: {dom}"
    );
    assert!(
        dom.contains(">in-flight limit<"),
        "the in-flight limit is labelled as a limit; DOM: {dom}"
    );
    for label in ["steady", "spike"] {
        assert!(
            dom.contains(&format!(r#"class="marker" data-label="{label}""#)),
            "the mark {label:?} is drawn; DOM: {dom}"
        );
    }
}
