//! Three `fleet` example processes against one Redis, hammered over HTTP.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;

pub(crate) struct Node {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binary `cargo test` built next to this test (`target/<profile>/examples`):
/// a plain `cargo test` builds every example first. (Building it from here would wait forever
/// on the build directory's lock, which the running `cargo test` holds.)
pub(crate) fn example_binary() -> Option<PathBuf> {
    example_binary_named("fleet")
}

/// [`example_binary`] for the example `name`.
pub(crate) fn example_binary_named(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join(name);
    if bin.exists() {
        return Some(bin);
    }
    let required = std::env::var("THROTTLE_REQUIRE_REDIS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{} is missing: run the whole `cargo test`",
        bin.display()
    );
    eprintln!(
        "SKIPPED: {} missing; `cargo test` (all targets) builds it",
        bin.display()
    );
    None
}

fn start(bin: &PathBuf, redis: &str, name: &str, limit: u32, window_ms: u64) -> Node {
    start_with(bin, redis, name, limit, window_ms, &[])
}

/// A node with extra arguments (`--admin-token T`, …).
pub(crate) fn start_with(
    bin: &PathBuf,
    redis: &str,
    name: &str,
    limit: u32,
    window_ms: u64,
    extra: &[&str],
) -> Node {
    let mut child = Command::new(bin)
        .args(extra)
        .args(["--redis", redis, "--port", "0", "--name", name])
        .args([
            "--limit",
            &limit.to_string(),
            "--window-ms",
            &window_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the fleet example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    Node { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_limit_per_window() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let Some(bin) = example_binary() else { return };
    let (limit, window_ms) = (30u32, 500u64);
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| start(&bin, &redis.url(), n, limit, window_ms))
        .collect();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let until = Instant::now() + Duration::from_millis(window_ms * 22);
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate().cycle().take(6) {
        let (client, uri) = (client.clone(), format!("http://{}/", node.addr));
        tasks.push(tokio::spawn(async move {
            let mut seen = BTreeMap::<u64, u32>::new();
            let (mut ok, mut limited) = (0u32, 0u32);
            while Instant::now() < until {
                let req = http::Request::get(&uri)
                    .header("x-api-key", "shared")
                    .body(http_body_util::Empty::new())
                    .unwrap();
                let res = tokio::time::timeout(Duration::from_secs(2), client.request(req))
                    .await
                    .unwrap_or_else(|_| panic!("node {i} did not answer within 2 s"))
                    .unwrap();
                match res.status().as_u16() {
                    200 => {
                        use http_body_util::BodyExt;
                        let body = res.into_body().collect().await.unwrap().to_bytes();
                        let text = String::from_utf8_lossy(&body).to_string();
                        let w: u64 = text.trim().rsplit(' ').next().unwrap().parse().unwrap();
                        *seen.entry(w).or_default() += 1;
                        ok += 1;
                    }
                    429 => {
                        limited += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (seen, ok, limited)
        }));
    }
    let mut per_window = BTreeMap::<u64, u32>::new();
    let mut limited = 0;
    for task in tasks {
        let (seen, _, l) = task.await.unwrap();
        limited += l;
        for (w, n) in seen {
            *per_window.entry(w).or_default() += n;
        }
    }
    assert!(limited > 0, "the load exceeded the limit");
    super::redis::assert_bound(&per_window, limit);
}
