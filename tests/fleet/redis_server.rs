//! A `redis-server` of the test's own on a free port, killed when dropped. Missing binary:
//! the test is skipped loudly, unless `THROTTLE_REQUIRE_REDIS=1` (CI), where it fails.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct RedisServer {
    child: Child,
    pub(crate) port: u16,
    _dir: TempDir,
}

/// A scratch directory removed on drop (the server's working directory).
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether `binary` runs; if not, panics under `THROTTLE_REQUIRE_REDIS=1`, else says so.
pub(crate) fn available(binary: &str) -> bool {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let required = std::env::var("THROTTLE_REQUIRE_REDIS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "THROTTLE_REQUIRE_REDIS=1 but `{binary}` is not installed"
        );
        eprintln!("SKIPPED: `{binary}` not found; install redis-server to run the fleet tests");
    }
    found
}

fn scratch(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "throttle-redis-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    TempDir(dir)
}

impl RedisServer {
    /// Starts a server, or `None` when `redis-server` is missing (and not required).
    pub(crate) fn spawn() -> Option<Self> {
        if !available("redis-server") {
            return None;
        }
        Some(Self::spawn_with(&[]))
    }

    pub(crate) fn spawn_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = scratch("node");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Waits (bounded) until the server answers PING.
    pub(crate) fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts on the same port after `kill`.
    pub(crate) fn restart(&mut self) {
        let port = self.port.to_string();
        self.child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self._dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("respawn redis-server");
        self.wait_ready();
    }

    pub(crate) fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// A bare RESP PING over TCP, bounded.
pub(crate) fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A three-master Redis Cluster on free ports, created with `redis-cli --cluster create`.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub(crate) fn spawn() -> Option<Self> {
        if !available("redis-server") || !available("redis-cli") {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::spawn_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster creation failed");
        // Wait (bounded) until every node reports the cluster ok.
        let deadline = Instant::now() + Duration::from_secs(15);
        for n in &nodes {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli cluster info");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(Self { nodes })
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
