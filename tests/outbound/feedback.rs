//! What the coordinator tells the rest of the service: events, counters, pressure, and the
//! inbound throttle it can feed.

use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::Instant;
use tower_adaptive_throttle::outbound::{CoordinatorEvent, Pressure, RateLimitCoordinator};

use crate::stub::{exact, secs, status, stub, Answer, KEY};
use crate::support::baldur;

#[tokio::test(start_paused = true)]
async fn events_follow_an_episode_from_429_to_recovery() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let mut events = coord.subscribe();
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 => Answer::TooMany(Some("8")),
        1 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    let start = Instant::now();
    assert_eq!(status(&client).await, 429);
    assert_eq!(
        events.try_recv().unwrap(),
        CoordinatorEvent::RateLimited {
            key: KEY.into(),
            status: 429,
            consecutive: 1,
            retry_after: Some(secs(8.0)),
        }
    );
    assert_eq!(
        events.try_recv().unwrap(),
        CoordinatorEvent::CooldownStarted {
            key: KEY.into(),
            consecutive: 1,
            delay: secs(8.0),
            until: start + secs(8.0),
            extended: false,
            retry_after_honored: false,
            retry_after_clamped: false,
        }
    );
    assert_eq!(status(&client).await, 429); // the canary, at t = 8
    assert!(matches!(
        events.try_recv().unwrap(),
        CoordinatorEvent::RateLimited {
            consecutive: 2,
            retry_after: None,
            ..
        }
    ));
    assert!(matches!(
        events.try_recv().unwrap(),
        CoordinatorEvent::CooldownStarted { consecutive: 2, delay, .. } if delay == secs(10.0)
    ));
    assert_eq!(status(&client).await, 200);
    assert_eq!(
        events.try_recv().unwrap(),
        CoordinatorEvent::CooldownEnded { key: KEY.into() }
    );
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));

    let stats = coord.stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.cooldowns_started, 2);
    assert_eq!(stats.cooldowns_extended, 0);
    assert_eq!(stats.cooldowns_ended, 1);
    assert_eq!(stats.canaries, 2);
    assert_eq!(stats.waited, 2);
    assert_eq!(stats.cooling_keys, 0);
}

#[tokio::test(start_paused = true)]
async fn a_clamped_retry_after_is_flagged() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let mut events = coord.subscribe();
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(Some("7200")));
    assert_eq!(status(&client).await, 429);
    let _rate_limited = events.try_recv().unwrap();
    assert!(matches!(
        events.try_recv().unwrap(),
        CoordinatorEvent::CooldownStarted {
            retry_after_honored: true,
            retry_after_clamped: true,
            delay,
            ..
        } if delay == secs(3600.0)
    ));
}

#[tokio::test(start_paused = true)]
async fn pressure_follows_the_consecutive_count() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |n| {
        if n < 6 {
            Answer::TooMany(None)
        } else {
            Answer::Ok
        }
    });
    let mut seen = vec![coord.pressure_multiplier(KEY)];
    for _ in 0..6 {
        assert_eq!(status(&client).await, 429);
        seen.push(coord.pressure_multiplier(KEY));
        tokio::time::advance(coord.cooldown_remaining(KEY).unwrap()).await;
    }
    assert_eq!(seen, [1.0, 1.5, 2.0, 2.5, 2.5, 4.0, 4.0]);
    assert_eq!(coord.pressure(KEY), Pressure::Severe);
    assert_eq!(status(&client).await, 200);
    assert_eq!(coord.pressure(KEY), Pressure::Normal);
}

#[tokio::test(start_paused = true)]
async fn a_linked_inbound_throttle_is_cut_on_429s_and_released_on_recovery() {
    let (throttle, _clock) = baldur();
    let before = throttle.current_limit();
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    coord.link_inbound(throttle.clone());
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 | 1 => Answer::TooMany(None),
        _ => Answer::Ok,
    });

    assert_eq!(status(&client).await, 429);
    let state = throttle.governance().state();
    assert_eq!(state.upstream_429s, 1);
    assert_eq!(
        throttle.current_limit(),
        before * 8 / 10,
        "first 429: × 0.8"
    );

    assert_eq!(status(&client).await, 429); // the canary, after 5 s
    assert_eq!(throttle.governance().state().upstream_429s, 2);
    assert!(
        throttle.current_limit() < before * 8 / 10,
        "second 429 compounds"
    );

    assert_eq!(status(&client).await, 200); // the canary, after 10 s more
    let state = throttle.governance().state();
    assert_eq!(state.upstream_429s, 0, "the cooldown ended");
    assert_eq!(state.upstream_429_limit, None);
}

#[tokio::test(start_paused = true)]
async fn the_inbound_reduction_lasts_while_any_key_is_rate_limited() {
    let (throttle, _clock) = baldur();
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    coord.link_inbound(throttle.clone());
    let (client, _) = stub(&coord, Duration::ZERO, |n| match n {
        0 | 1 => Answer::TooMany(None),
        _ => Answer::Ok,
    });
    let to = |host: &str| {
        let c = client.clone();
        let req = http::Request::get(format!("http://{host}/"))
            .body(String::new())
            .unwrap();
        async move { tower::ServiceExt::oneshot(c, req).await.unwrap().status() }
    };
    assert_eq!(to("a.test").await, 429);
    assert_eq!(to("b.test").await, 429);
    tokio::time::advance(secs(5.0)).await;
    assert_eq!(to("a.test").await, 200);
    assert_eq!(
        throttle.governance().state().upstream_429s,
        1,
        "b.test still cools"
    );
    assert_eq!(to("b.test").await, 200);
    assert_eq!(throttle.governance().state().upstream_429s, 0);
}
