//! Prometheus / OpenMetrics exposition of every throttle in a [`ThrottleRegistry`], built with
//! `prometheus-client` and collected at scrape time from snapshots (nothing is added to the
//! request path beyond the throttle's own atomic counters).
//!
//! Every series carries a `throttle` label with the registered name. Families:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `throttle_limit`, `throttle_min_limit`, `throttle_max_limit`, `throttle_base_limit` | gauge | |
//! | `throttle_smoothed_rtt_seconds`, `throttle_gradient` | gauge | |
//! | `throttle_rtt_seconds` | histogram | |
//! | `throttle_requests_total` | counter | `tier`, `result` (`allowed` / `rejected`) |
//! | `throttle_rejections_total` | counter | `reason` |
//! | `throttle_shadow_rejections_total` | counter | |
//! | `throttle_limit_changes_total` | counter | `direction`, `trigger` |
//! | `throttle_sla_warnings_total`, `throttle_sla_criticals_total` | counter | |
//! | `throttle_regime` | gauge (1 for the current regime) | `regime` |
//! | `throttle_ramp_active`, `throttle_ramp_stage` | gauge | |
//! | `throttle_frozen`, `throttle_disabled`, `throttle_full_stop_active` | gauge | |
//! | `throttle_emergency_level` | gauge | |
//! | `throttle_breaker_state` | gauge (1 for the current state) | `state` |
//! | `throttle_active_keys`, `throttle_evicted_keys_total` | gauge, counter | |
//! | `throttle_audit_dropped_total` | counter | |
//! | `throttle_inflight`, `throttle_concurrency_limit` | gauge (throttles with a concurrency axis) | |
//! | `throttle_store_degraded`, `throttle_fleet_instances` | gauge (throttles with a store) | |
//! | `throttle_store_round_trips_total`, `throttle_store_errors_total`, `throttle_lease_hits_total`, `throttle_store_fallback_decisions_total` | counter (throttles with a store) | |
//! | `throttle_cost_budget`, `throttle_cost_spent` | gauge (throttles with a cost axis): the budget per key per window, units spent in the window by all keys | |
//! | `throttle_cost_admitted_total`, `throttle_cost_refunded_total`, `throttle_cost_charged_total` | counter (throttles with a cost axis): units reserved by admitted requests, given back at settlement or cancellation, charged above a reservation | |
//!
//! ```
//! use tower_adaptive_throttle::{ThrottleConfig, ThrottleRegistry};
//!
//! let registry = ThrottleRegistry::new();
//! registry.get_or_create("api", ThrottleConfig::default());
//! let text = tower_adaptive_throttle::metrics::render(&registry);
//! assert!(text.contains("throttle_limit{throttle=\"api\"} 100"));
//! ```

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::control::Regime;
use crate::counters::CounterSnapshot;
use crate::governance::BreakerState;
use crate::registry::ThrottleRegistry;
use crate::throttle::ThrottleStats;

/// A `prometheus-client` collector over a registry: register it in your own
/// `prometheus_client::registry::Registry` to expose the throttles next to your metrics.
#[derive(Debug, Clone)]
pub struct ThrottleCollector {
    registry: ThrottleRegistry,
}

impl ThrottleCollector {
    /// A collector over `registry`'s throttles (those registered later included).
    pub fn new(registry: ThrottleRegistry) -> Self {
        Self { registry }
    }
}

/// The text exposition (OpenMetrics) of every throttle in `registry`.
pub fn render(registry: &ThrottleRegistry) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(ThrottleCollector::new(registry.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Sample {
    name: String,
    stats: ThrottleStats,
    concurrency: Option<crate::concurrency::ConcurrencyStats>,
    counters: CounterSnapshot,
    audit_dropped: u64,
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample").field("name", &self.name).finish()
    }
}

fn gauge<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[Sample],
    value: impl Fn(&Sample) -> V,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for s in samples {
        family
            .encode_family(&[("throttle", s.name.as_str())])?
            .encode_gauge(&value(s))?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[Sample],
    value: impl Fn(&Sample) -> u64,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for s in samples {
        family
            .encode_family(&[("throttle", s.name.as_str())])?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value(s), None)?;
    }
    Ok(())
}

fn labelled<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl Iterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, metric_type)?;
    for (labels, v) in series {
        let mut m = family.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => {
                m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)?
            }
            _ => m.encode_gauge(&v)?,
        }
    }
    Ok(())
}

impl Collector for ThrottleCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let samples: Vec<Sample> = self
            .registry
            .list()
            .into_iter()
            .map(|(name, t)| Sample {
                name,
                stats: t.stats(),
                concurrency: t.concurrency_stats(),
                counters: t.counters(),
                audit_dropped: t.audit().dropped(),
            })
            .collect();
        let e = &mut enc;
        gauge(e, "throttle_limit", "Current limit.", &samples, |s| {
            s.stats.current_limit
        })?;
        gauge(
            e,
            "throttle_min_limit",
            "Floor of the limit.",
            &samples,
            |s| s.stats.min_limit,
        )?;
        gauge(
            e,
            "throttle_max_limit",
            "Ceiling of the limit.",
            &samples,
            |s| s.stats.max_limit,
        )?;
        gauge(
            e,
            "throttle_base_limit",
            "Base a ramp or rollback returns to.",
            &samples,
            |s| s.stats.base_limit,
        )?;
        gauge(
            e,
            "throttle_smoothed_rtt_seconds",
            "Smoothed response latency.",
            &samples,
            |s| s.stats.smoothed_rtt.map_or(0.0, |d| d.as_secs_f64()),
        )?;
        gauge(
            e,
            "throttle_gradient",
            "Latency trend (positive = slowing).",
            &samples,
            |s| s.stats.gradient,
        )?;
        {
            let mut family = e.encode_descriptor(
                "throttle_rtt_seconds",
                "Latency of recorded responses.",
                None,
                MetricType::Histogram,
            )?;
            for s in &samples {
                let h = &s.counters.rtt;
                family
                    .encode_family(&[("throttle", s.name.as_str())])?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    h.sum_seconds,
                    h.count,
                    &non_cumulative(&h.buckets),
                    None,
                )?;
            }
        }
        labelled(
            e,
            "throttle_requests",
            "Admission decisions by tier and result.",
            MetricType::Counter,
            samples.iter().flat_map(|s| {
                s.counters
                    .requests_by_tier
                    .iter()
                    .flat_map(move |(tier, a, r)| {
                        [("allowed", *a), ("rejected", *r)].map(|(result, v)| {
                            (
                                [
                                    ("throttle", s.name.as_str()),
                                    ("tier", tier.as_str()),
                                    ("result", result),
                                ],
                                v,
                            )
                        })
                    })
            }),
        )?;
        labelled(
            e,
            "throttle_rejections",
            "Rejections by reason.",
            MetricType::Counter,
            samples.iter().flat_map(|s| {
                s.counters
                    .rejections_by_reason
                    .iter()
                    .map(move |(reason, v)| {
                        (
                            [("throttle", s.name.as_str()), ("reason", reason.as_str())],
                            *v,
                        )
                    })
            }),
        )?;
        counter(
            e,
            "throttle_shadow_rejections",
            "Would-be rejections let through in shadow mode.",
            &samples,
            |s| s.stats.shadow_rejections,
        )?;
        labelled(
            e,
            "throttle_limit_changes",
            "Limit changes by direction and trigger.",
            MetricType::Counter,
            samples.iter().flat_map(|s| {
                s.counters
                    .limit_changes
                    .iter()
                    .map(move |(dir, reason, v)| {
                        (
                            [
                                ("throttle", s.name.as_str()),
                                ("direction", dir.as_str()),
                                ("trigger", reason.as_str()),
                            ],
                            *v,
                        )
                    })
            }),
        )?;
        counter(
            e,
            "throttle_sla_warnings",
            "Adjustment ticks that saw an SLA warning.",
            &samples,
            |s| s.stats.sla_warnings,
        )?;
        counter(
            e,
            "throttle_sla_criticals",
            "Adjustment ticks that saw an SLA critical.",
            &samples,
            |s| s.stats.sla_criticals,
        )?;
        labelled(
            e,
            "throttle_regime",
            "1 for the throttle's current regime.",
            MetricType::Gauge,
            samples.iter().flat_map(|s| {
                [
                    Regime::Normal,
                    Regime::Throttling,
                    Regime::Recovering,
                    Regime::Frozen,
                ]
                .map(|r| {
                    (
                        [("throttle", s.name.as_str()), ("regime", r.as_str())],
                        u64::from(s.stats.regime == r),
                    )
                })
            }),
        )?;
        gauge(
            e,
            "throttle_ramp_active",
            "1 while a recovery ramp runs.",
            &samples,
            |s| u64::from(s.stats.ramp.is_some()),
        )?;
        gauge(
            e,
            "throttle_ramp_stage",
            "Ramp stages applied (0 when no ramp).",
            &samples,
            |s| s.stats.ramp.map_or(0, |r| r.stages_applied as u64),
        )?;
        gauge(
            e,
            "throttle_frozen",
            "1 while any freeze reason is set.",
            &samples,
            |s| u64::from(!s.stats.frozen_reasons.is_empty()),
        )?;
        gauge(
            e,
            "throttle_disabled",
            "1 while the throttle passes everything through.",
            &samples,
            |s| u64::from(s.stats.disabled),
        )?;
        gauge(
            e,
            "throttle_full_stop_active",
            "1 during a full stop.",
            &samples,
            |s| u64::from(s.stats.governance.full_stop),
        )?;
        gauge(
            e,
            "throttle_emergency_level",
            "Emergency level (0-3).",
            &samples,
            |s| u64::from(s.stats.governance.emergency_level),
        )?;
        labelled(
            e,
            "throttle_breaker_state",
            "1 for the breaker's current state.",
            MetricType::Gauge,
            samples.iter().flat_map(|s| {
                [
                    BreakerState::Closed,
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                ]
                .map(|b| {
                    (
                        [("throttle", s.name.as_str()), ("state", b.as_str())],
                        u64::from(s.stats.governance.breaker == b),
                    )
                })
            }),
        )?;
        gauge(
            e,
            "throttle_active_keys",
            "Keys tracked by the rate axis.",
            &samples,
            |s| s.stats.active_keys as u64,
        )?;
        counter(
            e,
            "throttle_evicted_keys",
            "Keys evicted to stay within max_keys.",
            &samples,
            |s| s.stats.evicted_keys,
        )?;
        counter(
            e,
            "throttle_audit_dropped",
            "Audit entries a slow sink could not take.",
            &samples,
            |s| s.audit_dropped,
        )?;
        // The concurrency axis, for throttles that have one.
        let with_axis = || {
            samples
                .iter()
                .filter_map(|s| Some((s.name.as_str(), s.concurrency?)))
        };
        labelled(
            e,
            "throttle_inflight",
            "Requests in flight on the concurrency axis.",
            MetricType::Gauge,
            with_axis().map(|(name, c)| ([("throttle", name)], u64::from(c.inflight))),
        )?;
        labelled(
            e,
            "throttle_concurrency_limit",
            "Adaptive in-flight limit of the concurrency axis.",
            MetricType::Gauge,
            with_axis().map(|(name, c)| ([("throttle", name)], u64::from(c.limit))),
        )?;
        // Fleet mode, for throttles with a store.
        let fleet = || {
            samples
                .iter()
                .filter_map(|s| Some((s.name.as_str(), s.stats.fleet.as_ref()?)))
        };
        labelled(
            e,
            "throttle_store_degraded",
            "1 while the fleet's store is degraded (admission on the store fallback).",
            MetricType::Gauge,
            fleet().map(|(name, f)| {
                (
                    [("throttle", name)],
                    u64::from(f.health == crate::store::StoreHealth::Degraded),
                )
            }),
        )?;
        labelled(
            e,
            "throttle_fleet_instances",
            "Live instances of the fleet at the last heartbeat.",
            MetricType::Gauge,
            fleet().map(|(name, f)| ([("throttle", name)], u64::from(f.instances))),
        )?;
        for (family, help, value) in [
            (
                "throttle_store_round_trips",
                "Store calls made.",
                (|f| f.round_trips) as fn(&crate::stats::FleetStats) -> u64,
            ),
            (
                "throttle_store_errors",
                "Store calls that failed or timed out.",
                |f| f.store_errors,
            ),
            (
                "throttle_lease_hits",
                "Requests served from leased credits without a store call.",
                |f| f.lease_hits,
            ),
            (
                "throttle_store_fallback_decisions",
                "Decisions made by the store fallback.",
                |f| f.fallback_decisions,
            ),
        ] {
            labelled(
                e,
                family,
                help,
                MetricType::Counter,
                fleet().map(|(name, f)| ([("throttle", name)], value(f))),
            )?;
        }
        // The cost axis, for throttles with a cost section.
        let cost = || {
            samples
                .iter()
                .filter_map(|s| Some((s.name.as_str(), s.stats.cost.as_ref()?)))
        };
        for (family, help, kind, value) in [
            (
                "throttle_cost_budget",
                "Cost budget per key per window, in the axis's unit.",
                MetricType::Gauge,
                (|c| c.budget) as fn(&crate::cost::CostStats) -> u64,
            ),
            (
                "throttle_cost_spent",
                "Units spent in the current cost window, all keys together.",
                MetricType::Gauge,
                |c| c.spent_in_window,
            ),
            (
                "throttle_cost_admitted",
                "Units reserved by admitted requests (and direct debits).",
                MetricType::Counter,
                |c| c.reserved_total,
            ),
            (
                "throttle_cost_refunded",
                "Units given back: estimates above the true cost, and cancelled requests.",
                MetricType::Counter,
                |c| c.refunded_total,
            ),
            (
                "throttle_cost_charged",
                "Units charged at settlement above the reservation.",
                MetricType::Counter,
                |c| c.charged_total,
            ),
        ] {
            labelled(
                e,
                family,
                help,
                kind,
                cost().map(|(name, c)| ([("throttle", name)], value(c))),
            )?;
        }
        Ok(())
    }
}

/// prometheus-client takes per-bucket counts and accumulates them itself.
fn non_cumulative(buckets: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut previous = 0;
    buckets
        .iter()
        .map(|(bound, cumulative)| {
            let n = cumulative - previous;
            previous = *cumulative;
            // prometheus-client writes `le="+Inf"` for f64::MAX.
            (if bound.is_finite() { *bound } else { f64::MAX }, n)
        })
        .collect()
}
