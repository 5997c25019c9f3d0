//! The live demo (the project's main job) runs, reports once a second, and its limits move.
//!
//! The example's own code (`examples/demo.rs`) runs in-process, over a real socket as with
//! `cargo run --example demo`, with its report written to a buffer instead of stdout: nothing is
//! built or spawned. Time is paused tokio time: the backend's service time and the generator's
//! ticks are virtual and the runtime jumps ahead whenever it is idle, so the five seconds of the
//! run take a fraction of one, however busy the machine.

// `main` and the `--help` text belong to the example binary.
#[allow(dead_code)]
#[path = "../../examples/demo.rs"]
mod demo;

#[tokio::test(start_paused = true)]
async fn demo_prints_progress_lines_and_the_limits_move() {
    let plot = std::env::temp_dir().join(format!("throttle-demo-{}.svg", std::process::id()));
    let args = ["--duration", "5", "--port", "0", "--rps", "200", "--plot"]
        .map(String::from)
        .into_iter()
        .chain([plot.display().to_string()]);
    let options = demo::parse_args(args).expect("the demo's arguments parse");
    let mut output = Vec::new();
    let outcome = demo::run(options, &mut output).await;
    let stdout = String::from_utf8_lossy(&output);
    assert!(
        outcome.is_ok(),
        "demo failed: {stdout}\n{}",
        outcome
            .as_ref()
            .err()
            .map_or(String::new(), ToString::to_string)
    );
    assert!(stdout.contains("/admin/throttle/console"), "{stdout}");
    assert!(
        stdout.contains("in-flight limit"),
        "the in-flight limit is labelled as a limit: {stdout}"
    );
    // Progress lines: "<t> <phase> <limit> <in-flight limit> <p50> <p99> <admitted/s> <rejected/s> <regime>"
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() == 9 && cols[0].parse::<u32>().is_ok())
        .collect();
    assert!(rows.len() >= 4, "one progress line per second: {stdout}");
    let limits: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    let inflight: Vec<&str> = rows.iter().map(|r| r[3]).collect();
    assert!(
        limits.windows(2).any(|w| w[0] != w[1]) || inflight.windows(2).any(|w| w[0] != w[1]),
        "a limit moved: {stdout}"
    );
    let svg = std::fs::read_to_string(&plot).expect("the chart was written");
    assert!(
        svg.contains("<svg") && svg.contains("<polyline"),
        "a chart with lines"
    );
    let _ = std::fs::remove_file(plot);
}

/// Runs the demo for `seconds` of paused time and returns its progress rows:
/// `[t, phase, limit, in-flight limit, p50, p99, admitted/s, rejected/s, regime]`.
async fn progress_rows(seconds: u32) -> (Vec<Vec<String>>, String) {
    let args = ["--duration", &seconds.to_string(), "--port", "0"].map(String::from);
    let options = demo::parse_args(args).expect("the demo's arguments parse");
    let mut output = Vec::new();
    demo::run(options, &mut output)
        .await
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output).into_owned();
    let rows = stdout
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|cols| cols.len() == 9 && cols[0].parse::<u32>().is_ok())
        .collect();
    (rows, stdout)
}

#[tokio::test(start_paused = true)]
async fn the_headline_limit_falls_with_capacity_and_climbs_back_and_steady_load_is_never_rejected()
{
    let (rows, stdout) = progress_rows(40).await;
    let in_phase =
        |phase: &str| -> Vec<&Vec<String>> { rows.iter().filter(|r| r[1] == phase).collect() };
    let limit = |r: &Vec<String>| r[2].parse::<u32>().expect("a limit");
    let steady = in_phase("steady");
    assert!(!steady.is_empty(), "{stdout}");
    for row in &steady {
        assert_eq!(row[7], "0", "no rejections below capacity: {stdout}");
        assert_eq!(row[8], "normal", "regime normal below capacity: {stdout}");
    }
    let spike_end = limit(in_phase("spike").last().expect("a spike phase"));
    let drop_low = in_phase("capacity-drop")
        .iter()
        .map(|r| limit(r))
        .min()
        .expect("a capacity-drop phase");
    let recovered = limit(in_phase("recovery").last().expect("a recovery phase"));
    assert!(
        f64::from(drop_low) <= f64::from(spike_end) * 2.0 / 3.0,
        "the limit falls by at least a third when capacity halves ({spike_end} → {drop_low}): {stdout}"
    );
    assert!(
        recovered > drop_low,
        "the limit climbs back in recovery ({drop_low} → {recovered}): {stdout}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_port_in_use_is_named_with_the_advice_to_use_port_0() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let args = ["--duration", "5", "--port", &port.to_string()].map(String::from);
    let options = demo::parse_args(args).expect("the demo's arguments parse");
    let mut output = Vec::new();
    let error = demo::run(options, &mut output)
        .await
        .expect_err("the port is taken")
        .to_string();
    assert!(
        error.contains(&format!("port {port}")) && error.contains("--port 0"),
        "{error}"
    );
}
