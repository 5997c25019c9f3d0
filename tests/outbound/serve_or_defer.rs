//! Serve or defer: a call during a cooldown sleeps to its end when that is within `max_wait`,
//! and otherwise fails at once with `Deferred`, without reaching the upstream.

use std::time::Duration;

use tokio::time::Instant;
use tower_adaptive_throttle::outbound::{Deferred, RateLimitCoordinator};

use crate::stub::{call, exact, secs, status, stub, Answer};

#[tokio::test(start_paused = true)]
async fn a_call_within_max_wait_sleeps_to_the_end_of_the_cooldown() {
    let coord = RateLimitCoordinator::new(exact().max_wait(secs(10.0)).build().unwrap());
    let (client, seen) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    let start = Instant::now();
    assert_eq!(status(&client).await, 429);
    tokio::time::advance(secs(1.0)).await;
    assert_eq!(status(&client).await, 200);
    assert_eq!(
        seen.arrivals()[1] - start,
        secs(5.0),
        "sent the moment the cooldown ended"
    );
    assert_eq!(coord.stats().waited, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_beyond_max_wait_is_deferred_at_once_and_never_sent() {
    let coord = RateLimitCoordinator::new(exact().max_wait(secs(2.0)).build().unwrap());
    let (client, seen) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    let start = Instant::now();
    assert_eq!(status(&client).await, 429);
    let err = call(&client).await.expect_err("deferred");
    let deferred = err.downcast_ref::<Deferred>().expect("a Deferred");
    assert_eq!(deferred.not_before, start + secs(5.0));
    assert_eq!(deferred.retry_in(), secs(5.0));
    assert_eq!(Instant::now(), start, "no time spent waiting");
    assert_eq!(seen.count(), 1, "the upstream never saw it");
    assert_eq!(coord.stats().deferred, 1);

    // Once the remainder is within the bound, the same call waits instead.
    tokio::time::advance(secs(3.5)).await;
    assert_eq!(status(&client).await, 429);
    assert_eq!(Instant::now(), start + secs(5.0));
}

#[tokio::test(start_paused = true)]
async fn zero_max_wait_never_waits() {
    let coord = RateLimitCoordinator::new(exact().max_wait(Duration::ZERO).build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    assert_eq!(status(&client).await, 429);
    tokio::time::advance(secs(4.9)).await;
    let err = call(&client).await.unwrap_err();
    assert!(err.is::<Deferred>(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_default_bound_is_the_ladder_cap() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    assert_eq!(coord.config().max_wait(), secs(60.0));
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(Some("61")),
        1 => Answer::TooMany(Some("60")),
        _ => Answer::Ok,
    });
    assert_eq!(status(&client).await, 429);
    assert!(
        call(&client).await.unwrap_err().is::<Deferred>(),
        "61 s > 60 s"
    );
    tokio::time::advance(secs(61.0)).await;
    assert_eq!(status(&client).await, 429, "the canary");
    let start = Instant::now();
    assert_eq!(status(&client).await, 200, "60 s is within the bound");
    assert_eq!(Instant::now() - start, secs(60.0));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_is_deferred_as_soon_as_the_cooldown_outgrows_its_bound() {
    let coord = RateLimitCoordinator::new(exact().max_wait(secs(8.0)).build().unwrap());
    // Call 0 arms 5 s; call 1, already in flight, then says 30 s.
    let (client, seen) = stub(&coord, Duration::from_secs(1), |n| match n {
        0 => Answer::TooMany(None),
        1 => Answer::TooMany(Some("30")),
        _ => Answer::Ok,
    });
    let start = Instant::now();
    let first = tokio::spawn(call(&client));
    let straggler = tokio::spawn({
        let c = client.clone();
        async move {
            tokio::time::sleep(secs(0.5)).await;
            call(&c).await
        }
    });
    tokio::time::sleep(secs(1.2)).await; // t = 1: call 0 answered, cooldown to t = 6
    let waiter = call(&client).await; // waits; at t = 1.5 the straggler extends to t = 31.5
    let err = waiter.unwrap_err();
    let deferred = err.downcast_ref::<Deferred>().unwrap();
    assert_eq!(deferred.not_before - start, secs(31.5));
    assert_eq!(
        Instant::now() - start,
        secs(1.5),
        "refused as soon as it is known"
    );
    assert_eq!(first.await.unwrap().unwrap().status(), 429);
    assert_eq!(straggler.await.unwrap().unwrap().status(), 429);
    assert_eq!(seen.count(), 2);
}
