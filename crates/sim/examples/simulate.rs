//! cargo run --release -p throttle-sim --example simulate
//!
//! Runs every scenario of `throttle_sim` (the capacity scenarios, then the client scenarios:
//! many clients, a greedy client, pacing clients) through every policy (no limit, two
//! static limits, Baldur's preset, the recommended ladder alone, the recommended deployment,
//! the recommended configuration on the two-step path with a shared key and per client,
//! Netflix Gradient2, AIMD, and an oracle that knows the true capacity), prints one table per
//! scenario, and writes one SVG per scenario: per policy, its limit over time (with the
//! oracle's equivalent, dashed grey) and its p99 latency over a trailing 2 s (with
//! `sla_warning` in orange and twice the unloaded p99 in green). A client scenario also gets
//! a table of its clients (fairness, the greedy client's share, pacing clients' rejections
//! and the quota they see).
//!
//! Options: `--out DIR` (default `target/simulate` at the workspace root, wherever it is run
//! from; a relative `DIR` is relative to the current directory), `--seed N` (default 42),
//! `--scenario NAME` (default: all), `--quick` (the smaller scale the tests use),
//! `--timeline POLICY` (also print that policy's 500 ms bins), `--path acquire|two-step|both`
//! (every throttle policy driven along that path, or along both one after the other; default:
//! the standard set, where only the `recommended (check+record, …)` policies use the two-step
//! path), `--policy TEXT` (only the policies whose name contains `TEXT`, plus the oracle),
//! `--no-plots`, `--goals` (instead: the acceptance goals of `throttle_sim::goals` for the
//! recommended configuration, on the paths of `--path` (default both), with a shared key and
//! per client; only in `--scenario` if given).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use throttle_sim::goals::{Goal, GoalReport};
use throttle_sim::{Evaluation, Keying, Path as DrivePath, Policy, PolicyKind, Scenario, SimScale};

fn main() {
    // The workspace root is two levels above this package (crates/sim).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/sim lies two levels below the workspace root");
    let mut out = root.join("target/simulate");
    let mut seed = 42u64;
    let mut only: Option<String> = None;
    let mut scale = SimScale::full();
    let mut timeline: Option<String> = None;
    let mut paths: Option<Vec<DrivePath>> = None;
    let mut policy_filter: Option<String> = None;
    let mut plots = true;
    let mut goals = false;
    let usage = "options: --out DIR, --seed N, --scenario NAME, --quick, --timeline POLICY, \
                 --path acquire|two-step|both, --policy TEXT, --no-plots, --goals";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().map(Into::into).unwrap_or(out),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--scenario" => only = args.next(),
            "--timeline" => timeline = args.next(),
            "--quick" => scale = SimScale::quick(),
            "--path" => {
                paths = Some(match args.next().as_deref() {
                    Some("acquire") => vec![DrivePath::Acquire],
                    Some("two-step" | "check+record") => vec![DrivePath::TwoStep],
                    Some("both") => DrivePath::BOTH.to_vec(),
                    other => {
                        eprintln!("--path {other:?}: expected acquire, two-step or both");
                        std::process::exit(2);
                    }
                })
            }
            "--policy" => policy_filter = args.next(),
            "--no-plots" => plots = false,
            "--goals" => goals = true,
            other => {
                eprintln!("unknown argument {other:?}; {usage}");
                std::process::exit(2);
            }
        }
    }
    let scenarios: Vec<_> = Scenario::all(scale)
        .into_iter()
        .chain(Scenario::client_scenarios(scale))
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name))
        .collect();
    if scenarios.is_empty() {
        eprintln!("no scenario named {only:?}");
        std::process::exit(2);
    }
    if goals {
        let paths = paths.unwrap_or_else(|| DrivePath::BOTH.to_vec());
        let report = GoalReport::measure_in(scale, seed, &Goal::ALL, &paths, &Keying::BOTH, |s| {
            scenarios.iter().any(|x| x.name == s.name)
        });
        println!(
            "# Goals (seed {seed}, {} scale; ✓ met, ✗ missed, (info): not required with that keying)\n",
            if scale == SimScale::quick() { "quick" } else { "full" }
        );
        println!("{}", report.table());
        return;
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    println!("# Simulation (seed {seed}; goodput = completions within sla_warning)\n");
    for s in &scenarios {
        let mut policies = match &paths {
            None => Policy::standard_set(s),
            Some(paths) => Policy::standard_set_on(s, paths),
        };
        if let Some(f) = &policy_filter {
            policies.retain(|p| p.name.contains(f.as_str()) || p.name == "oracle");
        }
        if !policies.iter().any(|p| p.name == "oracle") {
            policies.push(Policy::oracle());
        }
        let eval = Evaluation::run(s, &policies, seed);
        println!("{}", eval.table());
        let clients = eval.clients_table();
        if !clients.is_empty() {
            println!("{clients}");
        }
        if let Some(name) = &timeline {
            print_timeline(&eval, name);
        }
        if plots {
            let path = out.join(format!("{}.svg", eval.scenario.name));
            match plot(&eval, &policies, &path) {
                Ok(()) => println!("plot: {}\n", path.display()),
                Err(e) => eprintln!("plot {} failed: {e}", path.display()),
            }
        }
    }
}

fn print_timeline(eval: &Evaluation, name: &str) {
    let Some(run) = eval.find(name) else {
        let names: Vec<&str> = eval.runs.iter().map(|r| r.policy.as_str()).collect();
        eprintln!("--timeline {name:?}: no such policy in this run; the policies are {names:?}");
        std::process::exit(2);
    };
    println!("timeline of {name}: t, offered, rejected, good, p99 (2 s) ms, rate limit, concurrency limit, in flight, quota seen (mean Decision::limit)");
    for b in &run.bins {
        println!(
            "{:>5.1} {:>5} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8}",
            b.t,
            b.offered,
            b.rejected,
            b.good,
            b.p99_2s.map_or(0, |p| p.as_millis()),
            b.rate_limit.map_or(-1, i64::from),
            b.concurrency_limit.map_or(-1, i64::from),
            b.inflight,
            b.seen_limit.map_or("-".to_string(), |q| format!("{q:.1}")),
        );
    }
    println!();
}

const PANEL_W: u32 = 460;
const PANEL_H: u32 = 130;
const LEFT: u32 = 60;
const TOP: u32 = 40;
const GAP: u32 = 34;

/// Lines with plotters' SVG backend (no fonts needed), labels added as plain SVG text.
fn plot(
    eval: &Evaluation,
    policies: &[Policy],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let s = &eval.scenario;
    let runs: Vec<_> = eval
        .runs
        .iter()
        .filter(|r| r.policy != "no limit" && r.policy != "oracle")
        .collect();
    let width = LEFT + 2 * PANEL_W + 3 * 20;
    let height = TOP + runs.len() as u32 * (PANEL_H + GAP) + 10;
    let duration = s.duration.as_secs_f64();
    let mut labels: Vec<(i32, i32, String, &str)> = Vec::new();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        for (row, r) in runs.iter().enumerate() {
            let y0 = (TOP + row as u32 * (PANEL_H + GAP)) as i32;
            let policy = policies.iter().find(|p| p.name == r.policy);
            let (concurrency, keys, window) = match policy.map(|p| &p.kind) {
                Some(PolicyKind::Throttle {
                    config,
                    keying,
                    path,
                }) => (
                    config.concurrency().is_some() && *path == DrivePath::Acquire,
                    match keying {
                        Keying::Shared => 1.0,
                        Keying::PerClient => f64::from(s.clients),
                    },
                    config.window().as_secs_f64(),
                ),
                _ => (false, 1.0, 1.0),
            };
            // Limit panel: the binding limit and the oracle's equivalent in the same unit.
            let limit: Vec<(f64, f64)> = r
                .bins
                .iter()
                .filter(|b| b.t < duration)
                .filter_map(|b| {
                    let v = if concurrency {
                        b.concurrency_limit
                    } else {
                        b.rate_limit
                    };
                    v.map(|v| (b.t, f64::from(v)))
                })
                .collect();
            let ideal: Vec<(f64, f64)> = (0..=(duration * 2.0) as u32)
                .map(|i| {
                    let t = f64::from(i) / 2.0;
                    let at = std::time::Duration::from_secs_f64(t);
                    let workers = s.workers_at(at);
                    let v = if concurrency {
                        f64::from(workers)
                    } else {
                        s.service.capacity_rps(workers) / keys * window
                    };
                    (t, v)
                })
                .collect();
            let y_max = limit
                .iter()
                .chain(ideal.iter())
                .map(|p| p.1)
                .fold(1.0f64, f64::max)
                * 1.1;
            let area = root.margin(
                y0 as u32,
                height - y0 as u32 - PANEL_H,
                LEFT,
                width - LEFT - PANEL_W,
            );
            let mut chart =
                ChartBuilder::on(&area).build_cartesian_2d(0.0..duration, 0.0..y_max)?;
            frame(&mut chart, duration, y_max)?;
            chart.draw_series(LineSeries::new(
                ideal,
                RGBColor(170, 170, 170).stroke_width(1),
            ))?;
            chart.draw_series(LineSeries::new(limit, BLUE.stroke_width(2)))?;
            let (px, py) = chart.backend_coord(&(0.0, y_max));
            let unit = if concurrency {
                "in-flight limit"
            } else if keys > 1.0 {
                "rate limit per client per s"
            } else {
                "rate limit per s"
            };
            labels.push((px, py - 6, format!("{} — {unit}", r.policy), "start"));
            labels.push((px - 4, py + 10, format!("{y_max:.0}"), "end"));
            let (bx, by) = chart.backend_coord(&(duration, 0.0));
            labels.push((bx, by + 14, format!("{duration:.0} s"), "end"));

            // Latency panel.
            let cap = s.sla_critical.as_secs_f64() * 1000.0 * 1.2;
            let lat: Vec<(f64, f64)> = r
                .bins
                .iter()
                .filter(|b| b.t < duration)
                .filter_map(|b| b.p99_2s.map(|p| (b.t, (p.as_secs_f64() * 1000.0).min(cap))))
                .collect();
            let area = root.margin(
                y0 as u32,
                height - y0 as u32 - PANEL_H,
                LEFT + PANEL_W + 40,
                width - LEFT - 2 * PANEL_W - 40,
            );
            let mut chart = ChartBuilder::on(&area).build_cartesian_2d(0.0..duration, 0.0..cap)?;
            frame(&mut chart, duration, cap)?;
            let warn = s.sla_warning.as_secs_f64() * 1000.0;
            let bound = eval.unloaded_p99.as_secs_f64() * 2000.0;
            chart.draw_series(LineSeries::new(
                vec![(0.0, warn), (duration, warn)],
                RGBColor(230, 140, 0).stroke_width(1),
            ))?;
            chart.draw_series(LineSeries::new(
                vec![(0.0, bound), (duration, bound)],
                RGBColor(0, 150, 0).stroke_width(1),
            ))?;
            chart.draw_series(LineSeries::new(lat, RED.stroke_width(2)))?;
            let (px, py) = chart.backend_coord(&(0.0, cap));
            labels.push((
                px,
                py - 6,
                format!("{} — p99 latency, ms (trailing 2 s)", r.policy),
                "start",
            ));
            labels.push((px - 4, py + 10, format!("{cap:.0}"), "end"));
            let (bx, by) = chart.backend_coord(&(duration, 0.0));
            labels.push((bx, by + 14, format!("{duration:.0} s"), "end"));
        }
        root.present()?;
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        r#"<text x="{}" y="22" font-family="sans-serif" font-size="15" font-weight="bold">{} — {}</text>"#,
        LEFT,
        s.name,
        escape(s.description)
    );
    for (x, y, t, anchor) in labels {
        let _ = writeln!(
            text,
            r#"<text x="{x}" y="{y}" font-family="sans-serif" font-size="11" text-anchor="{anchor}">{}</text>"#,
            escape(&t)
        );
    }
    let svg = svg.replace("</svg>", &format!("{text}</svg>"));
    std::fs::write(path, svg)?;
    Ok(())
}

fn frame<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    x_max: f64,
    y_max: f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(225, 225, 225);
    let mut t = 0.0;
    while t <= x_max {
        chart.draw_series(LineSeries::new(
            vec![(t, 0.0), (t, y_max)],
            grey.stroke_width(1),
        ))?;
        t += 10.0;
    }
    chart.draw_series(LineSeries::new(
        vec![(0.0, y_max), (0.0, 0.0), (x_max, 0.0)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
