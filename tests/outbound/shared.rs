//! Cooldowns shared through a store: a 429 seen by one coordinator cools the key down for
//! every coordinator of the same name (other processes, through Redis).

use std::time::Duration;

use tower_adaptive_throttle::outbound::RateLimitCoordinator;
use tower_adaptive_throttle::store::MemoryStore;
use tower_adaptive_throttle::MonotonicClock;

use crate::stub::{exact, secs, status, stub, Answer, KEY};

#[tokio::test(start_paused = true)]
async fn a_429_seen_by_one_coordinator_cools_the_others() {
    let store = MemoryStore::with_clock(MonotonicClock::new());
    let a = RateLimitCoordinator::with_store(exact().build().unwrap(), store.clone(), "clients");
    let b = RateLimitCoordinator::with_store(exact().build().unwrap(), store.clone(), "clients");
    let other = RateLimitCoordinator::with_store(exact().build().unwrap(), store, "elsewhere");
    let (client_a, _) = stub(&a, Duration::ZERO, |_| Answer::TooMany(None));
    let (client_b, seen_b) = stub(&b, Duration::ZERO, |_| Answer::Ok);
    let (client_o, _) = stub(&other, Duration::ZERO, |_| Answer::Ok);
    // Both have made a call (their readers run from then on).
    assert_eq!(status(&client_b).await, 200);
    assert_eq!(status(&client_o).await, 200);
    assert_eq!(status(&client_a).await, 429);
    assert_eq!(a.cooldown_remaining(KEY), Some(secs(5.0)));
    // Within a read interval, `b` holds the same cooldown (and the same count); another group
    // does not.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(50)).await;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
    let left = b.cooldown_remaining(KEY).expect("the shared cooldown");
    assert!(left <= secs(5.0) && left >= secs(4.7), "{left:?}");
    assert_eq!(b.consecutive(KEY), 1);
    assert_eq!(b.stats().cooldowns_adopted, 1);
    assert_eq!(other.cooldown_remaining(KEY), None);
    // `b`'s callers now wait it out instead of reaching the upstream.
    let before = seen_b.count();
    let waiting = tokio::spawn(async move { status(&client_b).await });
    tokio::time::advance(secs(1.0)).await;
    assert_eq!(seen_b.count(), before, "no call during the shared cooldown");
    tokio::time::advance(secs(5.0)).await;
    assert_eq!(waiting.await.unwrap(), 200);
}
