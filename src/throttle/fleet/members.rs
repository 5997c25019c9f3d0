//! The fleet view: what each instance reports with its heartbeat, and the live instances read
//! back from the store.

use std::time::Duration;

use super::super::AdaptiveThrottle;
use crate::store::{MemberReport, StoreError};

/// One live instance of a fleet, as its last heartbeat reported it (see
/// [`AdaptiveThrottle::fleet_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FleetMember {
    /// The instance's name.
    pub instance: String,
    /// True for the instance that answered.
    pub this_instance: bool,
    /// Its limit in force.
    pub limit: Option<u32>,
    /// Requests it had in flight (on its concurrency axis; `None` without one).
    pub in_flight: Option<u32>,
    /// Its regime (`normal`, `throttling`, `recovering`, `frozen`).
    pub regime: Option<String>,
    /// Its store's health (`connected`, `degraded`).
    pub store_health: Option<String>,
    /// The operator-state version it applied.
    pub ops_version: Option<u64>,
    /// Milliseconds since its last heartbeat, on the store's clock.
    pub last_seen_ms_ago: u64,
}

impl FleetMember {
    fn from_report(report: MemberReport, me: &str) -> Self {
        let mut member = Self {
            this_instance: report.instance == me,
            instance: report.instance,
            limit: None,
            in_flight: None,
            regime: None,
            store_health: None,
            ops_version: None,
            last_seen_ms_ago: report.last_seen_ms_ago,
        };
        for field in report.report.split(';') {
            match field.split_once('=') {
                Some(("limit", v)) => member.limit = v.parse().ok(),
                Some(("inflight", v)) => member.in_flight = v.parse().ok(),
                Some(("regime", v)) => member.regime = Some(v.to_owned()),
                Some(("health", v)) => member.store_health = Some(v.to_owned()),
                Some(("ops", v)) => member.ops_version = v.parse().ok(),
                _ => {}
            }
        }
        member
    }
}

impl AdaptiveThrottle {
    /// What this instance reports with its heartbeat: `key=value` pairs separated by `;`.
    pub(crate) fn member_report(&self) -> String {
        let fleet = self.fleet().expect("fleet mode");
        let inflight = self
            .concurrency_stats()
            .map_or_else(|| "-".to_owned(), |c| c.inflight.to_string());
        format!(
            "limit={};inflight={inflight};regime={};health={};ops={}",
            self.current_limit(),
            self.regime().as_str(),
            fleet.health().as_str(),
            self.fleet_ops().version,
        )
    }

    /// Fleet mode: every live instance sharing this throttle's store and name (heartbeated
    /// within the time to live: three sync periods, at least 3 s), sorted by name, with what
    /// each reported. `None` without a store.
    ///
    /// # Errors
    ///
    /// The store's error (the call is bounded by the store timeout).
    pub async fn fleet_members(&self) -> Option<Result<Vec<FleetMember>, StoreError>> {
        let fleet = self.fleet()?;
        let s = fleet.settings.clone();
        let ttl = self.heartbeat_ttl();
        Some(
            self.store_call(s.store.members(&s.name, ttl))
                .await
                .map(|reports| {
                    let mut members: Vec<FleetMember> = reports
                        .into_iter()
                        .map(|r| FleetMember::from_report(r, &s.instance))
                        .collect();
                    members.sort_by(|a, b| a.instance.cmp(&b.instance));
                    members
                }),
        )
    }

    pub(crate) fn heartbeat_ttl(&self) -> Duration {
        super::sync::heartbeat_ttl(self.sync_period())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_reports_parse_and_tolerate_what_they_do_not_know() {
        let report = MemberReport {
            instance: "a".into(),
            last_seen_ms_ago: 12,
            report: "limit=40;inflight=-;regime=frozen;health=connected;ops=3;new=1;junk".into(),
        };
        let m = FleetMember::from_report(report, "a");
        assert!(m.this_instance);
        assert_eq!(m.limit, Some(40));
        assert_eq!(m.in_flight, None);
        assert_eq!(m.regime.as_deref(), Some("frozen"));
        assert_eq!(m.ops_version, Some(3));
        assert_eq!(m.last_seen_ms_ago, 12);
    }
}
