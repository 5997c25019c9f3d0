use super::*;

#[test]
fn baldur_preset_has_documented_numbers() {
    let c = ThrottleConfig::baldur();
    assert_eq!(
        (c.initial_limit(), c.min_limit(), c.max_limit()),
        (100, 10, 500)
    );
    assert_eq!(c.window(), Duration::from_secs(60));
    assert_eq!(c.sample_interval(), Duration::from_millis(500));
    assert_eq!(c.sla_warning(), Duration::from_millis(200));
    assert_eq!(c.sla_critical(), Duration::from_millis(500));
    assert_eq!(c.decrease_ratio(), 0.9);
    assert_eq!(c.critical_decrease_ratio(), 0.7);
    assert_eq!(c.increase_step(), 1);
    assert_eq!(c.gradient_up_threshold(), 0.1);
    assert_eq!(c.gradient_down_threshold(), -0.05);
    assert_eq!(c.smoothing_factor(), 0.5);
    assert_eq!(c.min_samples(), 3);
    assert_eq!(c.recovery_stages(), &[0.8, 0.9, 1.0]);
    assert_eq!(c.recovery_stage_interval(), Duration::from_secs(30));
    assert_eq!(c.sla_trigger(), SlaTrigger::TriggeringSample);
    assert_eq!(c.trend(), TrendEstimator::Signal);
    assert_eq!(c.increase_sizing(), IncreaseSizing::Step);
    assert_eq!(c.rate_strategy(), RateStrategy::SlidingWindowLog);
    assert_eq!(c.max_keys(), 100_000);
    assert_eq!(ThrottleConfig::baldur_builder().build().unwrap(), c);
    c.validate().unwrap();
    ThrottleConfig::default().validate().unwrap();
}

#[test]
fn build_rejects_zero_min_limit() {
    let e = ThrottleConfig::builder().min_limit(0).build().unwrap_err();
    assert_eq!(e, ConfigError::ZeroMinLimit);
}

#[test]
fn build_rejects_unordered_limits_naming_them() {
    let e = ThrottleConfig::builder()
        .min_limit(50)
        .initial_limit(20)
        .max_limit(100)
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::LimitsOutOfOrder {
            min: 50,
            initial: 20,
            max: 100
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("min_limit=50") && msg.contains("initial_limit=20"),
        "{msg}"
    );
    assert!(ThrottleConfig::builder()
        .initial_limit(DEFAULT_CAPACITY_MAX_LIMIT + 1)
        .build()
        .is_err());
}

#[test]
fn build_rejects_sla_critical_not_above_warning() {
    let e = ThrottleConfig::builder()
        .sla_warning(Duration::from_millis(300))
        .sla_critical(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::SlaOutOfOrder { .. }));
    assert!(e.to_string().contains("300ms"), "{e}");
}

#[test]
fn build_rejects_ratios_outside_open_unit_interval() {
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        let e = ThrottleConfig::builder()
            .decrease_ratio(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::RatioOutOfRange {
                    name: "decrease_ratio",
                    ..
                }
            ),
            "{bad}: {e}"
        );
        let e = ThrottleConfig::builder()
            .critical_decrease_ratio(bad)
            .build()
            .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::RatioOutOfRange {
                name: "critical_decrease_ratio",
                ..
            }
        ));
    }
}

#[test]
fn build_rejects_zero_durations() {
    let e = ThrottleConfig::builder()
        .window(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::ZeroDuration { name: "window" });
    let e = ThrottleConfig::builder()
        .sample_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::ZeroDuration {
            name: "sample_interval"
        }
    );
}

#[test]
fn build_rejects_smoothing_outside_half_open_interval() {
    assert!(ThrottleConfig::builder()
        .smoothing_factor(1.0)
        .build()
        .is_ok());
    for bad in [0.0, 1.01, f64::NAN] {
        let e = ThrottleConfig::builder()
            .smoothing_factor(bad)
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::SmoothingOutOfRange { .. }));
    }
}

#[test]
fn build_rejects_unordered_gradient_thresholds() {
    let e = ThrottleConfig::builder()
        .gradient_down_threshold(0.2)
        .gradient_up_threshold(0.1)
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::GradientThresholdsOutOfOrder { down: 0.2, up: 0.1 }
    );
}

#[test]
fn build_rejects_bad_recovery_stages() {
    assert_eq!(
        ThrottleConfig::builder()
            .recovery_stages(&[])
            .build()
            .unwrap_err(),
        ConfigError::EmptyRecoveryStages
    );
    for bad in [&[0.9, 0.8][..], &[0.5, 0.5], &[0.5, 1.2], &[0.0, 1.0]] {
        let e = ThrottleConfig::builder()
            .recovery_stages(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidRecoveryStages { .. }),
            "{bad:?}"
        );
    }
}

#[test]
fn build_rejects_out_of_range_pluggable_inputs() {
    assert!(ThrottleConfig::builder()
        .sla_trigger(SlaTrigger::IntervalPercentile(1.5))
        .build()
        .is_err());
    assert!(ThrottleConfig::builder()
        .trend(TrendEstimator::LongShortBaseline {
            long_smoothing: 1.0
        })
        .build()
        .is_err());
    assert!(ThrottleConfig::builder()
        .increase_sizing(IncreaseSizing::Proportional(0.0))
        .build()
        .is_err());
    assert!(ThrottleConfig::builder()
        .signal(SignalKind::TimeBucketed {
            window: Duration::from_secs(1)
        })
        .build()
        .is_err());
    assert!(ThrottleConfig::builder()
        .rate_strategy(RateStrategy::SlidingWindow { buckets: 0 })
        .build()
        .is_err());
    assert!(ThrottleConfig::builder()
        .rate_strategy(RateStrategy::Gcra {
            burst_fraction: 0.0
        })
        .build()
        .is_err());
    assert!(ThrottleConfig::builder().max_keys(0).build().is_err());
    assert!(ThrottleConfig::builder().increase_step(0).build().is_err());
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trips_and_validates() {
    let cfg = ThrottleConfig::builder().initial_limit(42).build().unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"window_ms\":1000"), "{json}");
    let back: ThrottleConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    let partial: ThrottleConfig = serde_json::from_str(r#"{"initial_limit": 50}"#).unwrap();
    assert_eq!(partial.initial_limit(), 50);
    let err = serde_json::from_str::<ThrottleConfig>(r#"{"min_limit": 0}"#).unwrap_err();
    assert!(err.to_string().contains("min_limit"), "{err}");
    assert!(serde_json::from_str::<ThrottleConfig>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn an_event_capacity_beyond_the_bound_is_refused_naming_it() {
    let e = ThrottleConfig::builder()
        .event_capacity(1 << 40)
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::TooLarge {
            name: "event_capacity",
            value: 1 << 40,
            max: MAX_EVENT_CAPACITY as u64,
        }
    );
    assert_eq!(
        e.to_string(),
        format!("event_capacity must be at most {MAX_EVENT_CAPACITY}, got 1099511627776")
    );
    let e = ThrottleConfig::builder()
        .event_capacity(usize::MAX)
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e:?}");
    assert!(ThrottleConfig::builder()
        .event_capacity(MAX_EVENT_CAPACITY)
        .build()
        .is_ok());
}
