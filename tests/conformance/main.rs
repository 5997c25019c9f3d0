//! ThrottleKit conformance: replays ThrottleKit's published golden vectors through the crate's
//! rate strategies and compares every integer of every decision.
//!
//! Run with `cargo test --test conformance -- --nocapture` to see the summary line. The vectors
//! are read from `$THROTTLE_GOLDEN_VECTORS`, or by default from `tests/data/`, where they are
//! vendored with ThrottleKit's MIT licence (`tests/data/THROTTLEKIT-LICENSE.txt`).
//!
//! The test fails on any mismatch, and also on anything it cannot run: an unknown primitive,
//! strategy kind, operation or field, a malformed value, or a contract version other than 1.
//! Nothing in the file is skipped silently.

use std::path::PathBuf;

use serde_json::{Map, Value};
use tower_adaptive_throttle::strategy::{
    AnyState, AnyStrategy, FixedWindow, Gcra, LeaseSpend, LeaseSpender, RateDecision,
    SlidingWindow, SlidingWindowLog, Strategy, TokenBucket, TokenBudget, TokenBudgetState,
};

const DEFAULT_VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/throttlekit-golden-vectors.json"
);

/// The decision fields of contract version 1, in wire order.
const DECISION_FIELDS: [&str; 5] = ["allowed", "limit", "remaining", "resetAt", "retryAfterMs"];

/// ThrottleKit's default sliding-window bucket count, used when a suite omits `buckets`.
const DEFAULT_BUCKETS: u32 = 10;

type Obj = Map<String, Value>;

/// Why a suite, or part of one, could not be replayed.
type CannotRun = String;

#[derive(Default)]
struct Replay {
    suites_run: usize,
    ops_checked: usize,
    failures: Vec<String>,
}

impl Replay {
    fn mismatch(
        &mut self,
        suite: &str,
        at: &str,
        field: &str,
        expected: &dyn std::fmt::Display,
        got: &dyn std::fmt::Display,
    ) {
        self.failures.push(format!(
            "suite `{suite}` {at}: field `{field}` expected {expected}, got {got}"
        ));
    }

    /// Compares one decision with its expectation; an unreadable expectation cannot be run.
    fn compare(
        &mut self,
        suite: &str,
        at: &str,
        expect: &Obj,
        got: &RateDecision,
    ) -> Result<(), CannotRun> {
        only_keys(expect, &DECISION_FIELDS, "expect")?;
        let expected_allowed = bool_field(expect, "allowed")?;
        if expected_allowed != got.allowed {
            self.mismatch(suite, at, "allowed", &expected_allowed, &got.allowed);
        }
        let integers = [
            ("limit", got.limit),
            ("remaining", got.remaining),
            ("resetAt", got.reset_at),
            ("retryAfterMs", got.retry_after_ms),
        ];
        for (field, value) in integers {
            let expected = u64_field(expect, field)?;
            if expected != value {
                self.mismatch(suite, at, field, &expected, &value);
            }
        }
        self.ops_checked += 1;
        Ok(())
    }

    fn run_suite(&mut self, suite: &Obj) -> Result<(), CannotRun> {
        let name = str_field(suite, "name")?;
        match str_field(suite, "primitive")? {
            "rateLimit" => self.run_rate_limit(name, suite),
            "tokenBudget" => self.run_token_budget(name, suite),
            "lease" => self.run_lease(name, suite),
            other => Err(format!("unknown primitive `{other}`")),
        }
    }

    fn run_rate_limit(&mut self, name: &str, suite: &Obj) -> Result<(), CannotRun> {
        only_keys(
            suite,
            &["primitive", "name", "strategy", "key", "ops"],
            "suite",
        )?;
        // Every op of a suite uses the suite's key, so one state replays it.
        str_field(suite, "key")?;
        let spec = obj_field(suite, "strategy")?;
        only_keys(spec, &["kind", "options"], "strategy")?;
        let strategy = build_strategy(str_field(spec, "kind")?, obj_field(spec, "options")?)?;
        let mut state = AnyState::default();
        for (i, op) in array_field(suite, "ops")?.iter().enumerate() {
            let at = format!("op {i}");
            let mut step = || -> Result<(), CannotRun> {
                let op = as_obj(op, "op")?;
                only_keys(op, &["now", "cost", "expect"], "op")?;
                let now = u64_field(op, "now")?;
                let cost = optional_u64(op, "cost", 1)?;
                let expect = obj_field(op, "expect")?;
                let got = strategy.check(&mut state, now, cost);
                self.compare(name, &at, expect, &got)
            };
            step().map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn run_token_budget(&mut self, name: &str, suite: &Obj) -> Result<(), CannotRun> {
        only_keys(suite, &["primitive", "name", "options", "ops"], "suite")?;
        let options = obj_field(suite, "options")?;
        only_keys(options, &["budget", "windowMs"], "options")?;
        let meter = TokenBudget::new(
            u64_field(options, "budget")?,
            u64_field(options, "windowMs")?,
        )
        .map_err(|e| format!("invalid options: {e}"))?;
        let mut state = TokenBudgetState::default();
        for (i, op) in array_field(suite, "ops")?.iter().enumerate() {
            let at = format!("op {i}");
            let mut step = || -> Result<(), CannotRun> {
                let op = as_obj(op, "op")?;
                only_keys(op, &["now", "tokens", "expect"], "op")?;
                let now = u64_field(op, "now")?;
                let tokens = u64_field(op, "tokens")?;
                let expect = obj_field(op, "expect")?;
                let got = meter.debit(&mut state, now, tokens);
                self.compare(name, &at, expect, &got)
            };
            step().map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn run_lease(&mut self, name: &str, suite: &Obj) -> Result<(), CannotRun> {
        let known = [
            "primitive",
            "name",
            "limit",
            "ttlMs",
            "windowCoupled",
            "events",
        ];
        only_keys(suite, &known, "suite")?;
        let limit = u64_field(suite, "limit")?;
        // `ttlMs` only dates a decision made before any grant, which cannot happen (a spender
        // without credits asks for a refresh), so it is validated but not needed.
        optional_u64(suite, "ttlMs", 0)?;
        let window_coupled = match suite.get("windowCoupled") {
            None => true, // ThrottleKit's default
            Some(_) => bool_field(suite, "windowCoupled")?,
        };
        let mut spender = LeaseSpender::new(limit, window_coupled)
            .map_err(|e| format!("invalid options: {e}"))?;
        for (i, event) in array_field(suite, "events")?.iter().enumerate() {
            let at = format!("event {i}");
            self.lease_event(name, &at, &mut spender, event)
                .map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn lease_event(
        &mut self,
        name: &str,
        at: &str,
        spender: &mut LeaseSpender,
        event: &Value,
    ) -> Result<(), CannotRun> {
        let event = as_obj(event, "event")?;
        match str_field(event, "op")? {
            "grant" => {
                only_keys(event, &["op", "capacity", "expiresAt"], "grant")?;
                spender.grant(
                    u64_field(event, "capacity")?,
                    u64_field(event, "expiresAt")?,
                );
                Ok(())
            }
            "spend" => {
                only_keys(event, &["op", "now", "cost", "expect"], "spend")?;
                let now = u64_field(event, "now")?;
                let cost = optional_u64(event, "cost", 1)?;
                let expect = obj_field(event, "expect")?;
                only_keys(expect, &["needsRefresh", "decision"], "expect")?;
                let needs_refresh = bool_field(expect, "needsRefresh")?;
                match (needs_refresh, spender.spend(now, cost)) {
                    (true, LeaseSpend::NeedsRefresh) => {
                        if expect.contains_key("decision") {
                            return Err("a decision is expected alongside needsRefresh".into());
                        }
                        self.ops_checked += 1;
                        Ok(())
                    }
                    (false, LeaseSpend::Allowed(decision)) => {
                        self.compare(name, at, obj_field(expect, "decision")?, &decision)
                    }
                    (expected, _) => {
                        self.mismatch(name, at, "needsRefresh", &expected, &!expected);
                        self.ops_checked += 1;
                        Ok(())
                    }
                }
            }
            other => Err(format!("unknown lease op `{other}`")),
        }
    }
}

fn build_strategy(kind: &str, options: &Obj) -> Result<AnyStrategy, CannotRun> {
    let invalid = |e: tower_adaptive_throttle::strategy::StrategyError| {
        format!("invalid {kind} options: {e}")
    };
    let strategy: AnyStrategy = match kind {
        "gcra" => {
            only_keys(options, &["limit", "periodMs", "burst"], "options")?;
            let limit = u64_field(options, "limit")?;
            // ThrottleKit: the burst defaults to the limit.
            let burst = optional_u64(options, "burst", limit)?;
            Gcra::new(limit, u64_field(options, "periodMs")?, burst)
                .map_err(invalid)?
                .into()
        }
        "tokenBucket" => {
            only_keys(options, &["capacity", "refillPerSec"], "options")?;
            let rate = options
                .get("refillPerSec")
                .and_then(Value::as_f64)
                .ok_or("field `refillPerSec` is missing or not a number")?;
            TokenBucket::new(u64_field(options, "capacity")?, rate)
                .map_err(invalid)?
                .into()
        }
        "fixedWindow" => {
            only_keys(options, &["limit", "windowMs"], "options")?;
            FixedWindow::new(
                u64_field(options, "limit")?,
                u64_field(options, "windowMs")?,
            )
            .map_err(invalid)?
            .into()
        }
        "slidingWindow" => {
            only_keys(options, &["limit", "windowMs", "buckets"], "options")?;
            let buckets = optional_u64(options, "buckets", u64::from(DEFAULT_BUCKETS))?;
            let buckets =
                u32::try_from(buckets).map_err(|_| format!("buckets {buckets} out of range"))?;
            SlidingWindow::new(
                u64_field(options, "limit")?,
                u64_field(options, "windowMs")?,
                buckets,
            )
            .map_err(invalid)?
            .into()
        }
        "slidingWindowLog" => {
            only_keys(options, &["limit", "windowMs"], "options")?;
            SlidingWindowLog::new(
                u64_field(options, "limit")?,
                u64_field(options, "windowMs")?,
            )
            .map_err(invalid)?
            .into()
        }
        other => return Err(format!("unknown rateLimit strategy kind `{other}`")),
    };
    Ok(strategy)
}

fn as_obj<'a>(value: &'a Value, what: &str) -> Result<&'a Obj, CannotRun> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))
}

fn obj_field<'a>(obj: &'a Obj, key: &str) -> Result<&'a Obj, CannotRun> {
    obj.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("field `{key}` is missing or not an object"))
}

fn array_field<'a>(obj: &'a Obj, key: &str) -> Result<&'a Vec<Value>, CannotRun> {
    obj.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("field `{key}` is missing or not an array"))
}

fn str_field<'a>(obj: &'a Obj, key: &str) -> Result<&'a str, CannotRun> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field `{key}` is missing or not a string"))
}

fn bool_field(obj: &Obj, key: &str) -> Result<bool, CannotRun> {
    obj.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("field `{key}` is missing or not a boolean"))
}

fn u64_field(obj: &Obj, key: &str) -> Result<u64, CannotRun> {
    obj.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("field `{key}` is missing or not a non-negative integer"))
}

fn optional_u64(obj: &Obj, key: &str, default: u64) -> Result<u64, CannotRun> {
    match obj.get(key) {
        None => Ok(default),
        Some(_) => u64_field(obj, key),
    }
}

/// Fails on keys this replayer does not understand, so that nothing is ignored silently.
fn only_keys(obj: &Obj, known: &[&str], what: &str) -> Result<(), CannotRun> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!("unknown {what} field `{unknown}`")),
        None => Ok(()),
    }
}

#[test]
fn throttlekit_golden_vectors() {
    let path = std::env::var_os("THROTTLE_GOLDEN_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VECTORS));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read golden vectors at {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("golden vectors at {} are not JSON: {e}", path.display()));
    let doc = doc
        .as_object()
        .expect("golden vectors: the document is not an object");

    let version = doc.get("contractVersion").and_then(Value::as_str);
    assert_eq!(
        version,
        Some("1"),
        "golden vectors: unsupported contractVersion {version:?}"
    );
    if let Some(fields) = doc.get("decisionFields") {
        let fields: Vec<&str> = fields
            .as_array()
            .expect("golden vectors: decisionFields is not an array")
            .iter()
            .map(|f| {
                f.as_str()
                    .expect("golden vectors: a decision field is not a string")
            })
            .collect();
        assert_eq!(
            fields, DECISION_FIELDS,
            "golden vectors: decision fields differ from contract version 1"
        );
    }
    let suites = doc
        .get("suites")
        .and_then(Value::as_array)
        .expect("golden vectors: `suites` is missing or not an array");

    let mut replay = Replay::default();
    for (index, suite) in suites.iter().enumerate() {
        let label = suite
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{index}"), str::to_owned);
        let outcome = suite
            .as_object()
            .ok_or_else(|| "suite is not an object".to_owned())
            .and_then(|suite| replay.run_suite(suite));
        match outcome {
            Ok(()) => replay.suites_run += 1,
            Err(why) => replay
                .failures
                .push(format!("suite `{label}` cannot be run: {why}")),
        }
    }

    let summary = format!(
        "golden vectors: {} suites, {} ops checked",
        replay.suites_run, replay.ops_checked
    );
    assert!(
        replay.failures.is_empty(),
        "{} golden-vector failure(s) in {}:\n{}\n{summary}",
        replay.failures.len(),
        path.display(),
        replay.failures.join("\n")
    );
    assert_eq!(
        replay.suites_run,
        suites.len(),
        "golden vectors: not every suite in the file was run"
    );
    assert!(
        replay.ops_checked > 0,
        "golden vectors: no operations checked"
    );
    println!("{summary}");
}
