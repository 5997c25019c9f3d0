//! The fleet control plane on a real Redis: in process (one connection and one pub/sub
//! subscription per instance), then across `fleet` example processes driven through their
//! admin routers. Every wait is bounded.

use std::time::{Duration, Instant};

use tower_adaptive_throttle::store::RedisStore;
use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, ThrottleEvent};

use super::processes::{example_binary, start_with, Node};
use super::redis_server::RedisServer;

async fn node(url: &str, i: usize) -> AdaptiveThrottle {
    let store = RedisStore::connect(url).await.unwrap();
    let t = AdaptiveThrottle::builder(ThrottleConfig::default())
        .name("ops")
        .instance_name(format!("node-{i}"))
        .store(store)
        .store_timeout(Duration::from_secs(1))
        .build();
    t.sync_fleet().await.unwrap();
    t
}

/// Real time: polls every 5 ms until `done` holds or `bound` passed; the time it took.
async fn within(bound: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn kill(t: &AdaptiveThrottle) -> bool {
    t.governance().state().kill_switch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_on_redis_kill_switch_late_start_break_glass_and_fleet_view() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let url = redis.url();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(&url, i).await);
    }
    nodes[0].as_actor("alice", |t| t.governance().set_kill_switch(true));
    let took = within(Duration::from_secs(1), || nodes.iter().all(kill)).await;
    assert!(took.is_some(), "all three frozen within 1 s");
    eprintln!("kill switch reached the fleet in {took:?}");
    assert!(nodes[2]
        .audit()
        .recent(100)
        .iter()
        .any(|e| matches!(&e.event,
        ThrottleEvent::FleetOpsApplied { actor, instance, applied_by, .. }
            if actor == "alice" && instance == "node-0" && applied_by == "node-2")));

    let late = node(&url, 3).await;
    assert!(
        kill(&late),
        "an instance started afterwards comes up frozen"
    );

    nodes[1].as_actor("bob", |t| t.governance().break_glass());
    nodes.push(late);
    let took = within(Duration::from_secs(1), || nodes.iter().all(|n| !kill(n))).await;
    assert!(took.is_some(), "break glass released all within 1 s");

    // The fleet view: exactly the live instances; one dropped is gone within its TTL (3 s).
    let listed = |members: Vec<tower_adaptive_throttle::stats::FleetMember>| {
        members.into_iter().map(|m| m.instance).collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let members = listed(nodes[0].fleet_members().await.unwrap().unwrap());
    assert_eq!(members, ["node-0", "node-1", "node-2", "node-3"]);
    drop(nodes.pop());
    let start = Instant::now();
    loop {
        let members = listed(nodes[0].fleet_members().await.unwrap().unwrap());
        if members == ["node-0", "node-1", "node-2"] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(6), "{members:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn http(method: &str, uri: String, body: &str) -> (u16, serde_json::Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer t0ken")
        .header("x-throttle-actor", "carol")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .expect("answer within 2 s")
        .unwrap();
    let status = res.status().as_u16();
    use http_body_util::BodyExt;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

async fn killed(n: &Node) -> bool {
    let (_, stats) = http("GET", format!("http://{}/stats", n.addr), "").await;
    stats["governance"]["kill_switch"] == serde_json::Value::Bool(true)
}

async fn all_within(nodes: &[Node], bound: Duration, want: bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let mut ok = true;
        for n in nodes {
            ok &= killed(n).await == want;
        }
        if ok {
            return Some(start.elapsed());
        }
        if start.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The issue's test: three processes; a kill switch set on one instance's admin freezes all
/// three within 1 s; a fourth started afterwards comes up frozen; break glass on another
/// releases all; the fleet view lists the four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_three_processes_kill_switch_late_fourth_and_break_glass() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let Some(bin) = example_binary() else { return };
    let admin = ["--admin-token", "t0ken"];
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| start_with(&bin, &redis.url(), n, 100, 1000, &admin))
        .collect();
    let (status, answer) = http(
        "POST",
        format!(
            "http://{}/admin/throttle/fleet-example/kill-switch",
            nodes[0].addr
        ),
        r#"{"on": true}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fleet_ops"]["propagated"], true, "{answer}");
    let took = all_within(&nodes, Duration::from_secs(1), true).await;
    assert!(took.is_some(), "all three frozen within 1 s");
    eprintln!("three processes frozen in {took:?}");

    nodes.push(start_with(&bin, &redis.url(), "d", 100, 1000, &admin));
    assert!(killed(&nodes[3]).await, "the fourth comes up frozen");
    let (_, audit) = http(
        "GET",
        format!(
            "http://{}/admin/throttle/fleet-example/audit?limit=50",
            nodes[1].addr
        ),
        "",
    )
    .await;
    let applied = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "fleet_ops_applied")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(applied["event"]["actor"], "carol");
    assert_eq!(applied["event"]["instance"], "a");
    assert_eq!(applied["event"]["applied_by"], "b");

    let (status, _) = http(
        "POST",
        format!(
            "http://{}/admin/throttle/fleet-example/break-glass",
            nodes[2].addr
        ),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let took = all_within(&nodes, Duration::from_secs(1), false).await;
    assert!(took.is_some(), "break glass released all four within 1 s");

    let start = Instant::now();
    loop {
        let (_, fleet) = http(
            "GET",
            format!("http://{}/admin/throttle/fleet", nodes[0].addr),
            "",
        )
        .await;
        let names: Vec<_> = fleet[0]["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["instance"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if names == ["a", "b", "c", "d"] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
