//! The live demo (the project's main job) runs, reports once a second, and its limits move.

use std::path::PathBuf;
use std::process::Command;

fn demo_binary() -> PathBuf {
    // Tests run from target/<profile>/deps; a full `cargo test` builds the examples next door.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = profile_dir
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo.rs");
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&path) < modified(&source) {
        // Run alone (`cargo test --test demo`), the example may be missing or stale.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--all-features", "--example", "demo"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo builds the demo");
        assert!(status.success(), "building the demo failed");
    }
    path
}

#[test]
fn demo_prints_progress_lines_and_the_limits_move() {
    let plot = std::env::temp_dir().join(format!("throttle-demo-{}.svg", std::process::id()));
    let output = Command::new(demo_binary())
        .args(["--duration", "5", "--port", "0", "--rps", "200", "--plot"])
        .arg(&plot)
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("/admin/throttle/console"), "{stdout}");
    // Progress lines: "<t> <phase> <limit> <inflight> <p50> <p99> <admitted/s> <rejected/s> <regime>"
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
