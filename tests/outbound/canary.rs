//! The canary: after a cooldown exactly one call per key goes first; the others wait for its
//! answer. A canary that fails or is cancelled does not wedge the key.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_adaptive_throttle::outbound::{Deferred, RateLimitCoordinator};

use crate::stub::{call, exact, secs, status, stub, Answer, Client, KEY};

/// Spawns `n` calls through `client`.
fn callers(client: &Client, n: usize) -> JoinSet<Result<u16, tower::BoxError>> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let c = client.clone();
        set.spawn(async move { call(&c).await.map(|r| r.status().as_u16()) });
    }
    set
}

#[tokio::test(start_paused = true)]
async fn exactly_one_call_goes_first_after_the_cooldown() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, seen) = stub(&coord, Duration::from_secs(1), |n| match n {
        0 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    let start = Instant::now();
    assert_eq!(status(&client).await, 429); // t = 1: cooling to t = 6
    seen.reset_max();
    let mut set = callers(&client, 20);
    tokio::time::sleep_until(start + secs(6.5)).await;
    assert_eq!(seen.count(), 2, "only the canary is out");
    assert_eq!(seen.max_in_flight(), 1);
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 20);
    let arrivals = seen.arrivals();
    assert_eq!(
        arrivals[1] - start,
        secs(6.0),
        "the canary, at the cooldown's end"
    );
    assert!(
        arrivals[2..].iter().all(|t| *t - start == secs(7.0)),
        "the rest, on its answer"
    );
    assert_eq!(coord.consecutive(KEY), 0);
    let stats = coord.stats();
    assert_eq!(
        (stats.canaries, stats.cooldowns_ended, stats.cooling_keys),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_canary_starts_the_next_cooldown_for_everyone() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, seen) = stub(&coord, Duration::from_secs(1), |n| match n {
        0 | 1 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    let start = Instant::now();
    assert_eq!(status(&client).await, 429); // t = 1: cooling to t = 6
    let mut set = callers(&client, 10);
    // t = 6: canary out; t = 7: its 429 arms 10 s, to t = 17; t = 17: the next canary, t = 18:
    // its 200 releases the rest. Nine callers get 200, the first canary its 429.
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        statuses.push(r.unwrap().unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 9].as_slice(), &[429]].concat());
    let arrivals: Vec<_> = seen.arrivals().iter().map(|t| *t - start).collect();
    assert_eq!(&arrivals[..3], [secs(0.0), secs(6.0), secs(17.0)]);
    assert!(arrivals[3..].iter().all(|t| *t == secs(18.0)));
    assert_eq!(
        seen.max_in_flight(),
        8,
        "only the eight released at the end overlap"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_canary_hands_the_role_to_the_next_call() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, seen) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(None),
        1 => Answer::Hang,
        _ => Answer::Ok,
    });
    let start = Instant::now();
    assert_eq!(status(&client).await, 429);
    tokio::time::advance(secs(5.0)).await;
    // The canary hangs; its caller gives up after 2 s (dropping the future).
    let canary = tokio::spawn({
        let c = client.clone();
        async move { tokio::time::timeout(secs(2.0), call(&c)).await }
    });
    tokio::task::yield_now().await;
    let waiter = status(&client).await;
    assert_eq!(waiter, 200);
    assert_eq!(
        Instant::now() - start,
        secs(7.0),
        "released the moment the canary was dropped"
    );
    assert!(canary.await.unwrap().is_err(), "the canary timed out");
    assert_eq!(seen.count(), 3);
    assert_eq!(coord.consecutive(KEY), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_canary_hands_the_role_to_the_next_call() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, seen) = stub(&coord, Duration::from_millis(100), |n| match n {
        0 => Answer::TooMany(None),
        1 => Answer::Fail,
        _ => Answer::Ok,
    });
    assert_eq!(status(&client).await, 429);
    let mut set = callers(&client, 5);
    let (mut ok, mut failed) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(200) => ok += 1,
            Err(e) => {
                assert!(!e.is::<Deferred>());
                failed += 1;
            }
            Ok(other) => panic!("status {other}"),
        }
    }
    assert_eq!((ok, failed), (4, 1));
    // Canary 1 failed, canary 2 succeeded, then the remaining three went together.
    assert_eq!(seen.count(), 6);
    assert_eq!(coord.stats().canaries, 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_on_a_silent_canary_are_deferred_at_their_bound() {
    let coord = RateLimitCoordinator::new(exact().max_wait(secs(3.0)).build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(None),
        1 => Answer::Hang,
        _ => Answer::Ok,
    });
    assert_eq!(status(&client).await, 429);
    tokio::time::advance(secs(5.0)).await;
    let _canary = tokio::spawn({
        let c = client.clone();
        async move { call(&c).await }
    });
    tokio::time::sleep(secs(0.1)).await;
    let start = Instant::now();
    let err = call(&client).await.unwrap_err();
    let deferred = err
        .downcast_ref::<Deferred>()
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        Instant::now() - start,
        secs(3.0),
        "exactly its bound, not more"
    );
    assert_eq!(deferred.not_before, Instant::now());
}

#[tokio::test(start_paused = true)]
async fn clear_releases_a_key_at_once() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    assert_eq!(status(&client).await, 429);
    let waiter = tokio::spawn({
        let c = client.clone();
        async move { status(&c).await }
    });
    tokio::time::advance(secs(1.0)).await;
    assert!(coord.clear(KEY));
    assert_eq!(waiter.await.unwrap(), 200);
    assert!(!coord.clear(KEY), "nothing left to clear");
}
