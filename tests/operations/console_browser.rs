//! The console page rendered by a real headless browser (Debian's chromium) against a live
//! server: it must show the current limit and at least one chart point.
//!
//! Skipped, loudly, when no chromium binary is found — unless `THROTTLE_REQUIRE_BROWSER=1`
//! (set by `.ci/run`), in which case a missing browser fails the test.
#![cfg(feature = "axum")]

use std::process::Command;
use std::time::Duration;

use axum::Router;
use tower_adaptive_throttle::{admin, AdaptiveThrottle, ThrottleConfig, Tier};

use crate::support::{local_listener, registry_with};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_current_limit_and_a_chart_point() {
    let Some(browser) = chromium() else {
        let required = std::env::var("THROTTLE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "THROTTLE_REQUIRE_BROWSER=1 but no chromium binary was found on PATH"
        );
        eprintln!("SKIPPED console_shows_the_current_limit_and_a_chart_point: chromium not found (install Debian's `chromium`)");
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

    let app = Router::new().nest("/admin/throttle", admin::router(registry));
    let (listener, addr) = local_listener().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let profile = std::env::temp_dir().join(format!("throttle-console-{}", std::process::id()));
    let url = format!("http://{addr}/admin/throttle/console");
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
                // Not --virtual-time-budget: virtual time stops while the page's event stream
                // is open, so it would never run out. A real 5 s budget, then the DOM.
                "--timeout=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(&url)
            .output()
    })
    .await
    .unwrap()
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(r#"<div class="value" id="limit">70</div>"#),
        "the rendered page shows the current limit 70; stderr: {}\nDOM: {dom}",
        String::from_utf8_lossy(&output.stderr)
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
