//! cargo run --release --example virtual_overload
//!
//! Drives an `AdaptiveThrottle` through a simulated overload in virtual time: a backend with a
//! fixed number of requests it can finish per second behind a FIFO queue (so latency rises with
//! admitted load), offered 1.5× its capacity; at t = 20 s its capacity halves, at t = 40 s it
//! returns. It prints the preset, the offered load and the capacity, then one line per simulated
//! second — the limit, the smoothed RTT, the gradient, the requests admitted and rejected in
//! that second, their p99 latency and the regime — and last the number of limit changes up and
//! down and of SLA warnings and criticals. Runs in well under a second; no network, no
//! configuration.
//!
//! Requests are admitted with `acquire` and hold their permit until they complete, as the HTTP
//! layer does. With the recommended config (`default`) the binding limit is the concurrency
//! axis (requests in flight), and the rate axis is a per-client quota far above this single
//! client's need; with `baldur` (no concurrency axis) the limit is admissions per second. The
//! header line under the column names says which it is.
//! The full comparison is `cargo run --release -p throttle-sim --example simulate`.
//!
//! Options: `--seconds N` (default 60), `--preset baldur|default` (default `default`).

use std::collections::VecDeque;
use std::time::Duration;

use tower_adaptive_throttle::{
    AdaptiveThrottle, ConcurrencyPermit, ManualClock, ThrottleConfig, Tier,
};

const STEP: Duration = Duration::from_millis(10);
const BASE_LATENCY: Duration = Duration::from_millis(40);
const HEALTHY_CAPACITY: f64 = 400.0; // requests per second
const OFFERED: f64 = 600.0; // requests per second

fn main() {
    let mut seconds = 60u64;
    let mut preset = String::from("default");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(60),
            "--preset" => preset = args.next().unwrap_or_default(),
            other => {
                eprintln!(
                    "unknown argument {other:?}; options: --seconds N, --preset baldur|default"
                );
                std::process::exit(2);
            }
        }
    }
    let builder = match preset.as_str() {
        "baldur" => ThrottleConfig::baldur_builder(),
        "default" => ThrottleConfig::builder(),
        other => {
            eprintln!("unknown preset {other:?}: use baldur or default");
            std::process::exit(2);
        }
    };
    // The limit counts admissions per second for one shared key: a capacity guard.
    let cfg = builder
        .window(Duration::from_secs(1))
        .initial_limit(300)
        .min_limit(20)
        .max_limit(1000)
        .rate_strategy(tower_adaptive_throttle::config::RateStrategy::Gcra {
            burst_fraction: 0.05,
        })
        .build()
        .unwrap_or_else(|e| {
            eprintln!("invalid config: {e}");
            std::process::exit(2);
        });

    let clock = ManualClock::new();
    let throttle = AdaptiveThrottle::with_clock(cfg, clock.clone());

    // FIFO of (arrival time, permit) waiting for a worker; completions feed the throttle.
    let mut queue: VecDeque<(Duration, ConcurrencyPermit)> = VecDeque::new();
    let mut service_credit = 0.0f64;
    let mut arrival_credit = 0.0f64;
    let (mut admitted, mut rejected) = (0u64, 0u64);
    let mut latencies: Vec<Duration> = Vec::new();

    println!(
        "preset={preset}  offered={OFFERED}/s  capacity={HEALTHY_CAPACITY}/s, halved 20s..40s\n"
    );
    println!(
        "{:>4}  {:>5}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>10}",
        "t(s)", "limit", "rtt(ms)", "gradient", "admitted", "rejected", "p99(ms)", "regime"
    );
    if throttle.concurrency_stats().is_some() {
        println!(
            "(limit = in-flight limit of the concurrency axis; gradient = its Gradient2 gradient)"
        );
    } else {
        println!("(limit = admissions per second on the rate axis)");
    }
    let steps_per_second = (Duration::from_secs(1).as_millis() / STEP.as_millis()) as u64;
    for step in 0..seconds * steps_per_second {
        let now = clock.now();
        let t = now.as_secs_f64();
        let capacity = if (20.0..40.0).contains(&t) {
            HEALTHY_CAPACITY / 2.0
        } else {
            HEALTHY_CAPACITY
        };

        // Arrivals.
        arrival_credit += OFFERED * STEP.as_secs_f64();
        while arrival_credit >= 1.0 {
            arrival_credit -= 1.0;
            match throttle.acquire("all-clients", Tier::Standard) {
                Ok(permit) => {
                    admitted += 1;
                    queue.push_back((now, permit));
                }
                Err(_) => rejected += 1,
            }
        }

        // Service: `capacity` completions per second; each request also takes BASE_LATENCY.
        service_credit += capacity * STEP.as_secs_f64();
        while service_credit >= 1.0 {
            let Some((arrived, permit)) = queue.pop_front() else {
                service_credit = 0.0;
                break;
            };
            service_credit -= 1.0;
            let latency = now - arrived + BASE_LATENCY;
            latencies.push(latency);
            throttle.record_response(latency);
            permit.success();
        }

        clock.advance(STEP);
        if (step + 1) % steps_per_second == 0 {
            let stats = throttle.stats();
            let rtt = stats.smoothed_rtt;
            let (limit, gradient) = match throttle.concurrency_stats() {
                Some(c) => (c.limit, c.gradient),
                None => (stats.current_limit, stats.gradient),
            };
            latencies.sort();
            let p99 = latencies
                .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default();
            println!(
                "{:>4}  {:>5}  {:>9.1}  {:>8.3}  {:>8}  {:>8}  {:>8.0}  {:>10}",
                (step + 1) / steps_per_second,
                limit,
                rtt.unwrap_or_default().as_secs_f64() * 1000.0,
                gradient,
                admitted,
                rejected,
                p99.as_secs_f64() * 1000.0,
                throttle.regime().as_str(),
            );
            admitted = 0;
            rejected = 0;
            latencies.clear();
        }
    }
    let stats = throttle.stats();
    println!(
        "\nadjustments: {} up, {} down; SLA warnings {}, criticals {}",
        stats.adjustments_up, stats.adjustments_down, stats.sla_warnings, stats.sla_criticals
    );
}
