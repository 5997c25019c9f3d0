//! What operators see and touch: the admin router, the Prometheus exposition and the console
//! rendered by a headless browser.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod console_browser;
mod history;
mod metrics;
