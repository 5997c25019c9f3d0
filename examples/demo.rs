//! cargo run --release --example demo
//!
//! The live demo: an axum app on 127.0.0.1 with `AdaptiveThrottleLayer` in front of a simulated
//! backend, and an internal load generator that drives it over real HTTP through four phases —
//! steady (0.6× capacity), spike (2×), capacity drop (the backend loses half its workers, offered
//! 0.9× of the original capacity) and recovery (0.8×) — marking each phase on the console's
//! timeline.
//!
//! What it prints: the URLs of the console (`/admin/throttle/console`), the stats and the metrics,
//! the backend's size and the phases; then, once a second, a line with the time, the phase, the
//! limit (`throttle.current_limit()`: the service-wide limit per one-second window, which follows
//! the capacity estimate; each client's quota is its fair share of it), the in-flight
//! limit (the concurrency axis: requests served at once, `-` without one), the p50 and p99
//! latency the generator observed on admitted requests, the requests it saw admitted and
//! rejected (429 or a failed connection) in that second, and the throttle's regime; at the end a
//! summary line (totals, limit changes, SLA warnings and criticals). The console shows the same
//! live, with its history, the phase marks and the audit trail of every change.
//!
//! Options:
//!
//! - `--port N` (default 3000; 0 picks a free port). A port in use is reported by number, with
//!   the advice to use `--port 0`, and the demo exits with status 1.
//! - `--duration SECONDS` (default 60)
//! - `--plot FILE.svg` or `FILE.png`: a chart of the limits and latency over the run (then a
//!   last line `chart written to FILE`)
//! - `--rps N`: healthy capacity in requests per second (default 400)
//!
//! No Redis, no configuration.
//!
//! The demo's work is [`run`], which writes its report to any `Write`: `main` hands it stdout,
//! and the test in `tests/demo/` drives it in-process with a short duration on paused tokio time
//! (hence `tokio::time::Instant`, which is the system's monotonic clock when time is not paused).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::{routing::get, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower_adaptive_throttle::admin::{AdminOptions, Timeline};
use tower_adaptive_throttle::http::HeaderKey;
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, ConcurrencyConfig, ThrottleConfig, ThrottleRegistry,
};

/// Service time of one request on one worker.
const SERVICE_TIME: Duration = Duration::from_millis(50);
/// Requests the generator keeps outstanding at most (protects the demo machine).
const MAX_OUTSTANDING: usize = 4000;
const CLIENT_HEADER: &str = "x-client";
const TIER_HEADER: &str = "x-priority";

/// The command line, parsed.
pub(crate) struct Options {
    port: u16,
    duration: Duration,
    plot: Option<PathBuf>,
    capacity_rps: f64,
}

/// Parses the arguments after the program name.
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        port: 3000,
        duration: Duration::from_secs(60),
        plot: None,
        capacity_rps: 400.0,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                o.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--duration" => {
                let secs: f64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                if !(secs.is_finite() && secs >= 2.0) {
                    return Err(format!("--duration must be at least 2 seconds, got {secs}"));
                }
                o.duration = Duration::from_secs_f64(secs);
            }
            "--plot" => {
                let path = PathBuf::from(value("--plot")?);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("svg" | "png") => o.plot = Some(path),
                    _ => {
                        return Err(format!(
                            "--plot needs a .svg or .png file, got {}",
                            path.display()
                        ))
                    }
                }
            }
            "--rps" => {
                o.capacity_rps = value("--rps")?.parse().map_err(|e| format!("--rps: {e}"))?;
                if !(o.capacity_rps >= 10.0 && o.capacity_rps <= 5000.0) {
                    return Err(format!(
                        "--rps must be between 10 and 5000, got {}",
                        o.capacity_rps
                    ));
                }
            }
            "-h" | "--help" => {
                println!("cargo run --release --example demo -- [--port N] [--duration SECONDS] [--plot FILE.svg|FILE.png] [--rps N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(o)
}

/// The simulated backend: `workers` requests at a time, each taking `SERVICE_TIME`; the rest
/// wait, so latency grows with load. Half the workers can be taken away.
struct Backend {
    workers: Arc<Semaphore>,
    full: usize,
    removed: Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>,
}

impl Backend {
    fn new(workers: usize) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            full: workers,
            removed: Mutex::new(Vec::new()),
        }
    }

    async fn handle(&self) {
        let Ok(_worker) = self.workers.acquire().await else {
            return;
        };
        tokio::time::sleep(SERVICE_TIME).await;
    }

    /// Takes half the workers away (each as soon as it is free).
    async fn halve(self: &Arc<Self>) {
        for _ in 0..self.full / 2 {
            if let Ok(p) = self.workers.clone().acquire_owned().await {
                self.removed.lock().push(p);
            }
        }
    }

    fn restore(&self) {
        self.removed.lock().clear();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Steady,
    Spike,
    CapacityDrop,
    Recovery,
}

impl Phase {
    fn at(fraction: f64) -> Self {
        match fraction {
            f if f < 0.2 => Self::Steady,
            f if f < 0.4 => Self::Spike,
            f if f < 0.7 => Self::CapacityDrop,
            _ => Self::Recovery,
        }
    }

    /// The phase in the progress lines (one word).
    fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Spike => "spike",
            Self::CapacityDrop => "capacity-drop",
            Self::Recovery => "recovery",
        }
    }

    /// The phase's mark on the console's timeline.
    fn mark(self) -> &'static str {
        match self {
            Self::Steady => "steady (0.6×)",
            Self::Spike => "spike (2×)",
            Self::CapacityDrop => "capacity drop (half the workers)",
            Self::Recovery => "recovery (workers back)",
        }
    }

    /// Offered load as a multiple of the healthy capacity.
    fn load(self) -> f64 {
        match self {
            Self::Steady => 0.6,
            Self::Spike => 2.0,
            Self::CapacityDrop => 0.9,
            Self::Recovery => 0.8,
        }
    }
}

#[derive(Default)]
struct Second {
    admitted: AtomicU64,
    rejected: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

struct Point {
    t: f64,
    limit: u32,
    inflight_limit: Option<u32>,
    p50_ms: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(opts, &mut std::io::stdout()).await {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

/// Runs the demo for `opts.duration`, writing the banner, one progress line per second and the
/// summary to `out`.
pub(crate) async fn run(
    opts: Options,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let workers = ((opts.capacity_rps * SERVICE_TIME.as_secs_f64()).round() as usize).max(2);
    let backend = Arc::new(Backend::new(workers));

    // The recommended configuration with bounds for this service: a service-wide limit per
    // second that starts at its healthy capacity and may range from 5 % to twice it, each
    // client's quota its fair share of it; the in-flight limit starts at twice the workers.
    let capacity = opts.capacity_rps.round() as u32;
    let inflight = u32::try_from(workers * 2).unwrap_or(u32::MAX);
    let cfg = ThrottleConfig::builder()
        .window(Duration::from_secs(1))
        .initial_limit(capacity)
        .min_limit((capacity / 20).max(1))
        .max_limit(capacity * 2)
        .concurrency(
            ConcurrencyConfig::default()
                .to_builder()
                .initial_limit(inflight)
                .build()?,
        )
        .build()?;
    let throttle = AdaptiveThrottle::new(cfg);
    let registry = ThrottleRegistry::new();
    registry.register("demo", throttle.clone());
    // The phases, marked on the console's charts.
    let timeline = Timeline::new();

    let handler_backend = backend.clone();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let backend = handler_backend.clone();
                async move {
                    backend.handle().await;
                    "done"
                }
            }),
        )
        .layer(
            AdaptiveThrottleLayer::from_throttle(throttle.clone())
                .key_extractor(HeaderKey::new(HeaderName::from_static(CLIENT_HEADER)))
                .tier_header(HeaderName::from_static(TIER_HEADER)),
        )
        .nest_service(
            "/admin/throttle",
            AdminOptions::new(registry)
                .timeline(timeline.clone())
                .router(),
        );

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], opts.port)))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {} on 127.0.0.1 is already in use (another demo?); try --port 0 to pick a free port",
                opts.port
            ),
            _ => format!(
                "cannot listen on 127.0.0.1:{}: {e}; try --port 0 to pick a free port",
                opts.port
            ),
        })?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("demo: server stopped: {e}");
        }
    });

    writeln!(out, "tower-adaptive-throttle live demo on http://{addr}")?;
    writeln!(out, "  console:  http://{addr}/admin/throttle/console")?;
    writeln!(out, "  stats:    http://{addr}/admin/throttle/demo   metrics: http://{addr}/admin/throttle/metrics")?;
    writeln!(
        out,
        "  backend:  {workers} workers × {} ms = {:.0} req/s; phases: steady 0.6× → spike 2× → capacity halves (0.9× of the original offered) → recovery 0.8×; {} s",
        SERVICE_TIME.as_millis(),
        opts.capacity_rps,
        opts.duration.as_secs_f64()
    )?;
    writeln!(
        out,
        "  columns:  limit = throttle.current_limit(), the service-wide limit per 1 s window (each client's quota is its share); in-flight limit = the concurrency axis' limit on requests served at once; p50/p99 = latency of admitted requests as the generator saw it"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5}  {:<13} {:>6}  {:>15} {:>8} {:>8} {:>10} {:>10}  {:<10}",
        "t(s)",
        "phase",
        "limit",
        "in-flight limit",
        "p50(ms)",
        "p99(ms)",
        "admitted/s",
        "rejected/s",
        "regime"
    )?;

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http();
    let second = Arc::new(Second::default());
    let outstanding = Arc::new(AtomicUsize::new(0));
    let uri: axum::http::Uri = format!("http://{addr}/work").parse()?;

    let start = Instant::now();
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut credit = 0.0;
    let mut seq: u64 = 0;
    let mut next_report = Duration::from_secs(1);
    let mut phase = Phase::Steady;
    timeline.mark(phase.mark());
    let mut points = Vec::new();

    while start.elapsed() < opts.duration {
        interval.tick().await;
        let elapsed = start.elapsed();
        let now_phase = Phase::at(elapsed.as_secs_f64() / opts.duration.as_secs_f64());
        if now_phase != phase {
            match now_phase {
                Phase::CapacityDrop => {
                    let b = backend.clone();
                    tokio::spawn(async move { b.halve().await });
                }
                Phase::Recovery => backend.restore(),
                _ => {}
            }
            phase = now_phase;
            timeline.mark(phase.mark());
        }

        credit += opts.capacity_rps * phase.load() * tick.as_secs_f64();
        while credit >= 1.0 {
            credit -= 1.0;
            seq += 1;
            if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
                continue;
            }
            let tier = match seq % 10 {
                0 => "critical",
                1..=6 => "standard",
                _ => "non_essential",
            };
            let req = Request::get(uri.clone())
                .header(CLIENT_HEADER, HeaderValue::from(seq % 20))
                .header(TIER_HEADER, tier)
                .body(Empty::new())?;
            let (client, second, outstanding) =
                (client.clone(), second.clone(), outstanding.clone());
            outstanding.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let sent = Instant::now();
                match client.request(req).await {
                    Ok(res) => {
                        let status = res.status();
                        let _ = res.into_body().collect().await;
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            second.rejected.fetch_add(1, Ordering::Relaxed);
                        } else {
                            second.admitted.fetch_add(1, Ordering::Relaxed);
                            second
                                .latencies_us
                                .lock()
                                .push(sent.elapsed().as_micros() as u64);
                        }
                    }
                    Err(_) => {
                        second.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                outstanding.fetch_sub(1, Ordering::Relaxed);
            });
        }

        if elapsed >= next_report {
            next_report += Duration::from_secs(1);
            let mut lat = std::mem::take(&mut *second.latencies_us.lock());
            lat.sort_unstable();
            let pct = |q: f64| {
                lat.get(((lat.len() as f64 * q).ceil() as usize).saturating_sub(1))
                    .map_or(0.0, |us| *us as f64 / 1000.0)
            };
            let stats = throttle.stats();
            let limit = throttle.current_limit();
            let inflight_limit = throttle.concurrency_stats().map(|c| c.limit);
            let admitted = second.admitted.swap(0, Ordering::Relaxed);
            let rejected = second.rejected.swap(0, Ordering::Relaxed);
            let point = Point {
                t: elapsed.as_secs_f64(),
                limit,
                inflight_limit,
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
            };
            writeln!(
                out,
                "{:>5.0}  {:<13} {:>6}  {:>15} {:>8.1} {:>8.1} {:>10} {:>10}  {:<10}",
                point.t,
                phase.name(),
                point.limit,
                inflight_limit.map_or("-".into(), |l| l.to_string()),
                point.p50_ms,
                point.p99_ms,
                admitted,
                rejected,
                stats.regime.as_str()
            )?;
            points.push(point);
        }
    }

    let stats = throttle.stats();
    writeln!(
        out,
        "\ndone: {} admitted, {} rejected; limit changes {} up / {} down; SLA warnings {}, criticals {}",
        stats.allowed_requests,
        stats.rejected_requests,
        stats.adjustments_up,
        stats.adjustments_down,
        stats.sla_warnings,
        stats.sla_criticals
    )?;
    if let Some(path) = &opts.plot {
        plot(&points, path)?;
        writeln!(out, "chart written to {}", path.display())?;
    }
    Ok(())
}

/// Limits (left axis) and p99 latency (right axis) over the run.
fn plot(points: &[Point], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    fn draw<DB: DrawingBackend>(
        root: DrawingArea<DB, plotters::coord::Shift>,
        points: &[Point],
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let t_max = points.last().map_or(1.0, |p| p.t).max(1.0);
        let limit_max = points
            .iter()
            .map(|p| p.limit.max(p.inflight_limit.unwrap_or(0)))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.1;
        let lat_max = points.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.1;
        let (top, bottom) = root.split_vertically(300);
        let mut limits = ChartBuilder::on(&top)
            .margin(15)
            .x_label_area_size(0)
            .y_label_area_size(0)
            .build_cartesian_2d(0.0..t_max, 0.0..limit_max)?;
        limits.draw_series(LineSeries::new(
            points.iter().map(|p| (p.t, f64::from(p.limit))),
            BLUE.stroke_width(2),
        ))?;
        limits.draw_series(LineSeries::new(
            points
                .iter()
                .filter_map(|p| p.inflight_limit.map(|l| (p.t, f64::from(l)))),
            GREEN.stroke_width(2),
        ))?;
        let mut latency = ChartBuilder::on(&bottom)
            .margin(15)
            .x_label_area_size(0)
            .y_label_area_size(0)
            .build_cartesian_2d(0.0..t_max, 0.0..lat_max)?;
        latency.draw_series(LineSeries::new(
            points.iter().map(|p| (p.t, p.p50_ms)),
            MAGENTA.stroke_width(1),
        ))?;
        latency.draw_series(LineSeries::new(
            points.iter().map(|p| (p.t, p.p99_ms)),
            RED.stroke_width(2),
        ))?;
        root.present()?;
        Ok(())
    }
    let size = (900, 600);
    if path.extension().and_then(|e| e.to_str()) == Some("png") {
        draw(BitMapBackend::new(path, size).into_drawing_area(), points)?;
    } else {
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, size).into_drawing_area(),
            points,
        )?;
        // Labels as plain SVG text (no font files needed).
        let label = |y: u32, text: &str| {
            format!(r#"<text x="20" y="{y}" font-family="sans-serif" font-size="13">{text}</text>"#)
        };
        let t_max = points.last().map_or(0.0, |p| p.t);
        let limit_max = points
            .iter()
            .map(|p| p.limit.max(p.inflight_limit.unwrap_or(0)))
            .max()
            .unwrap_or(0);
        let lat_max = points.iter().map(|p| p.p99_ms).fold(0.0, f64::max);
        let legend = [
            label(14, &format!("limits over {t_max:.0} s: blue = rate limit per client per second, green = in-flight limit (peak {limit_max})")),
            label(314, &format!("client-observed latency: red = p99, magenta = p50 (peak p99 {lat_max:.0} ms)")),
        ]
        .concat();
        let svg = svg.replacen("</svg>", &format!("{legend}</svg>"), 1);
        std::fs::write(path, svg)?;
    }
    Ok(())
}
