//! The cooldown a 429 earns: the ladder, its jitter, the `Retry-After` floor and ceiling, and a
//! stored cooldown that only extends.

use std::time::{Duration, SystemTime};

use tower_adaptive_throttle::outbound::{CoordinatorConfig, RateLimitCoordinator};

use crate::stub::{call, exact, secs, status, stub, Answer, KEY};

/// Drives `coord`'s key through `steps` consecutive 429s (each after the previous cooldown,
/// so each is the canary's) and returns the cooldown armed by each.
async fn ladder_of(coord: &RateLimitCoordinator, steps: usize) -> Vec<Duration> {
    let (client, _) = stub(coord, Duration::ZERO, |_| Answer::TooMany(None));
    let mut out = Vec::new();
    for _ in 0..steps {
        assert_eq!(status(&client).await, 429);
        let left = coord.cooldown_remaining(KEY).expect("a cooldown");
        out.push(left);
        tokio::time::advance(left).await;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn ladder_doubles_from_five_seconds_and_stops_at_sixty() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let steps = ladder_of(&coord, 7).await;
    assert_eq!(steps, [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0].map(secs));
    assert_eq!(coord.consecutive(KEY), 7);
}

#[tokio::test(start_paused = true)]
async fn every_ladder_constant_is_configurable() {
    let cfg = exact()
        .base_delay(Duration::from_millis(200))
        .backoff_multiplier(3.0)
        .max_delay(Duration::from_secs(2))
        .build()
        .unwrap();
    let steps = ladder_of(&RateLimitCoordinator::new(cfg), 4).await;
    assert_eq!(steps, [0.2, 0.6, 1.8, 2.0].map(secs));
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_thirty_percent_for_many_seeds() {
    let (mut below, mut above) = (false, false);
    for seed in 0..300 {
        let cfg = CoordinatorConfig::builder().seed(seed).build().unwrap();
        let coord = RateLimitCoordinator::new(cfg);
        let steps = ladder_of(&coord, 6).await;
        let first = steps[0].as_secs_f64();
        assert!((3.5..=6.5).contains(&first), "seed {seed}: {first}");
        below |= first < 4.5;
        above |= first > 5.5;
        for (i, step) in steps.iter().enumerate() {
            let nominal = (5.0 * 2f64.powi(i as i32)).min(60.0);
            let s = step.as_secs_f64();
            assert!(s >= nominal * 0.7 - 1e-9, "seed {seed}, step {i}: {s}");
            assert!(
                s <= (nominal * 1.3).min(60.0) + 1e-9,
                "seed {seed}, step {i}: {s}"
            );
        }
        // Same seed, same delays.
        let again = ladder_of(&RateLimitCoordinator::new(coord.config().clone()), 6).await;
        assert_eq!(again, steps, "seed {seed}");
    }
    assert!(below && above, "jitter reaches both sides of the step");
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_a_floor_and_never_jittered() {
    // Jitter on: a 30 s header beats a 5 s ± 30 % step, exactly.
    let coord = RateLimitCoordinator::new(CoordinatorConfig::builder().seed(9).build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(Some("30")));
    assert_eq!(status(&client).await, 429);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(30.0)));

    // A header shorter than the step: the step wins.
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(Some("2")));
    assert_eq!(status(&client).await, 429);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(5.0)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_a_floor() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let at: &'static str = Box::leak(at.into_boxed_str());
    let (client, _) = stub(&coord, Duration::ZERO, move |_| Answer::TooMany(Some(at)));
    assert_eq!(status(&client).await, 429);
    let left = coord.cooldown_remaining(KEY).unwrap();
    // HTTP-dates have whole seconds: between 119 and 120 s from now.
    assert!(left > secs(118.0) && left <= secs(120.0), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_by_the_ceiling() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(Some("100000")));
    assert_eq!(status(&client).await, 429);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(3600.0)));

    let cfg = exact()
        .retry_after_ceiling(Duration::from_secs(90))
        .build()
        .unwrap();
    let coord = RateLimitCoordinator::new(cfg);
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(Some("100000")));
    assert_eq!(status(&client).await, 429);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(90.0)));
}

#[tokio::test(start_paused = true)]
async fn invalid_negative_or_past_retry_after_is_ignored() {
    for header in ["-5", "soon", "1.5", "Sun, 06 Nov 1994 08:49:37 GMT", ""] {
        let coord = RateLimitCoordinator::new(exact().build().unwrap());
        let (client, _) = stub(&coord, Duration::ZERO, move |_| {
            Answer::TooMany(Some(header))
        });
        assert_eq!(status(&client).await, 429);
        assert_eq!(coord.cooldown_remaining(KEY), Some(secs(5.0)), "{header:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn minimum_cooldown_is_a_tenth_of_a_second() {
    let cfg = exact()
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let coord = RateLimitCoordinator::new(cfg);
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    assert_eq!(status(&client).await, 429);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(0.1)));
}

#[tokio::test(start_paused = true)]
async fn concurrent_429s_of_one_burst_climb_once_and_only_extend() {
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    // Three calls in flight together; the second says 30 s, the third 10 s.
    let (client, _) = stub(&coord, Duration::from_millis(10), |n| match n {
        1 => Answer::TooMany(Some("30")),
        2 => Answer::TooMany(Some("10")),
        _ => Answer::TooMany(None),
    });
    let (a, b, c) = tokio::join!(call(&client), call(&client), call(&client));
    for r in [a, b, c] {
        assert_eq!(
            r.unwrap().status(),
            429,
            "the 429 itself reaches its caller"
        );
    }
    assert_eq!(coord.consecutive(KEY), 1, "one burst, one step");
    assert_eq!(
        coord.cooldown_remaining(KEY),
        Some(secs(30.0)),
        "the longest holds"
    );
}

#[tokio::test(start_paused = true)]
async fn count_concurrent_429s_is_baldurs_per_response_count() {
    let coord = RateLimitCoordinator::new(exact().count_concurrent_429s(true).build().unwrap());
    let (client, _) = stub(&coord, Duration::from_millis(10), |_| Answer::TooMany(None));
    let _ = tokio::join!(call(&client), call(&client), call(&client));
    assert_eq!(coord.consecutive(KEY), 3);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(20.0)));
}

#[tokio::test(start_paused = true)]
async fn a_503_cools_down_only_when_configured_and_with_retry_after() {
    let script = |n| match n {
        0 => Answer::Status(503, None),
        _ => Answer::Status(503, Some("7")),
    };
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, script);
    assert_eq!(status(&client).await, 503);
    assert_eq!(status(&client).await, 503);
    assert_eq!(coord.cooldown_remaining(KEY), None, "off by default");

    let coord = RateLimitCoordinator::new(exact().cooldown_on_503(true).build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, script);
    assert_eq!(status(&client).await, 503);
    assert_eq!(
        coord.cooldown_remaining(KEY),
        None,
        "no Retry-After, no cooldown"
    );
    assert_eq!(status(&client).await, 503);
    assert_eq!(coord.cooldown_remaining(KEY), Some(secs(7.0)));
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_host_are_not_coordinated() {
    let coord = RateLimitCoordinator::new(exact().max_wait(Duration::ZERO).build().unwrap());
    let (client, seen) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    for _ in 0..3 {
        let req = http::Request::get("/relative").body(String::new()).unwrap();
        let res = tower::ServiceExt::oneshot(client.clone(), req)
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
    }
    assert_eq!(seen.count(), 3);
    assert_eq!(coord.stats().cooling_keys, 0);
}

#[tokio::test(start_paused = true)]
async fn keys_are_independent_and_a_closure_can_choose_them() {
    let coord = RateLimitCoordinator::new(exact().max_wait(Duration::ZERO).build().unwrap());
    let (client, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    assert_eq!(status(&client).await, 429);
    // Another host is not held by api.test's cooldown.
    let other = http::Request::get("http://other.test:8080/")
        .body(String::new())
        .unwrap();
    let res = tower::ServiceExt::oneshot(client.clone(), other)
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(coord.cooldown_remaining("other.test").is_some());

    // Keyed by path prefix instead.
    let coord = RateLimitCoordinator::new(exact().build().unwrap());
    let (plain, _) = stub(&coord, Duration::ZERO, |_| Answer::TooMany(None));
    let keyed = coord
        .layer()
        .key(|req: &http::Request<String>| Some(format!("tenant{}", req.uri().path())));
    let keyed = tower::Layer::layer(&keyed, plain.get_ref().clone());
    let res = tower::ServiceExt::oneshot(keyed, crate::stub::request())
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(coord.cooldown_remaining("tenant/").is_some());
    assert!(coord.cooldown_remaining(KEY).is_none());
}
