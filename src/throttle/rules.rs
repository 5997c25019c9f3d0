//! Where a throttle applies: Traffik-style [`Rule`]s and [`Bypass`]es on paths, methods and a
//! predicate, compiled once and evaluated without allocation per request.
//!
//! Path patterns are split on `/`: `*` matches exactly one segment, `**` any number of segments
//! (including none), anything else matches a segment literally. `/api/*/orders` matches
//! `/api/v1/orders`; `/static/**` matches `/static`, `/static/a` and `/static/a/b.css`.

use std::fmt;
use std::sync::Arc;

/// What a rule sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Path, without the query string.
    pub path: &'a str,
}

type Predicate = Arc<dyn Fn(&RequestInfo<'_>) -> bool + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    One,
    Any,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: Box<str>,
    segments: Box<[Segment]>,
}

impl PathPattern {
    /// Compiles `pattern`: `*` matches one segment, `**` any number, anything else literally.
    pub fn new(pattern: &str) -> Self {
        let segments = split(pattern)
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Any,
                literal => Segment::Literal(literal.into()),
            })
            .collect();
        Self {
            source: pattern.into(),
            segments,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let parts = segments::Parts::new(path);
        matches_from(&self.segments, parts.as_slice())
    }
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split('/').filter(|seg| !seg.is_empty())
}

/// Segment splitting with a stack buffer for ordinary paths (no heap allocation up to 16
/// segments).
mod segments {
    // A stack buffer on purpose: it lives for one match and is never moved around.
    #[allow(clippy::large_enum_variant)]
    pub(super) enum Parts<'a> {
        Inline([&'a str; 16], usize),
        Heap(Vec<&'a str>),
    }

    impl<'a> Parts<'a> {
        pub(super) fn new(path: &'a str) -> Self {
            let mut inline = [""; 16];
            let mut n = 0;
            for seg in super::split(path) {
                if n == inline.len() {
                    return Parts::Heap(super::split(path).collect());
                }
                inline[n] = seg;
                n += 1;
            }
            Parts::Inline(inline, n)
        }

        pub(super) fn as_slice(&self) -> &[&'a str] {
            match self {
                Parts::Inline(a, n) => &a[..*n],
                Parts::Heap(v) => v,
            }
        }
    }
}

fn matches_from(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::Any, rest)) => {
            // `**` absorbs 0..=n segments; patterns are short, so backtracking is cheap.
            (0..=path.len()).any(|skip| matches_from(rest, &path[skip..]))
        }
        Some((Segment::One, rest)) => !path.is_empty() && matches_from(rest, &path[1..]),
        Some((Segment::Literal(lit), rest)) => {
            path.first().is_some_and(|seg| **seg == **lit) && matches_from(rest, &path[1..])
        }
    }
}

/// Limits where a throttle applies: it applies to a request only when the path matches (if
/// given), the method is listed (if given) and the predicate holds (if given).
#[derive(Clone, Default)]
pub struct Rule {
    path: Option<PathPattern>,
    methods: Option<Box<[Box<str>]>>,
    predicate: Option<Predicate>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("path", &self.path.as_ref().map(PathPattern::as_str))
            .field("methods", &self.methods)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

impl Rule {
    /// A rule on a path pattern.
    pub fn path(pattern: &str) -> Self {
        Self {
            path: Some(PathPattern::new(pattern)),
            ..Self::default()
        }
    }

    /// A rule matching any path (narrow it with [`methods`](Self::methods) or
    /// [`when`](Self::when)).
    pub fn any() -> Self {
        Self::default()
    }

    /// Only these methods (ASCII case-insensitive).
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = Some(methods.into_iter().map(|m| m.as_ref().into()).collect());
        self
    }

    /// Only when `predicate` holds.
    pub fn when(
        mut self,
        predicate: impl Fn(&RequestInfo<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self
    }

    /// Whether the request matches.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.path.as_ref().is_none_or(|p| p.matches(req.path))
            && self
                .methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(req.method)))
            && self.predicate.as_ref().is_none_or(|p| p(req))
    }
}

/// Exempts matching requests from a throttle (health checks, static files, internal callers).
#[derive(Clone, Debug)]
pub struct Bypass(Rule);

impl Bypass {
    /// Bypass requests matching `rule`.
    pub fn new(rule: Rule) -> Self {
        Self(rule)
    }

    /// Bypass a path pattern.
    pub fn path(pattern: &str) -> Self {
        Self(Rule::path(pattern))
    }

    /// Whether the request is exempt.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.0.matches(req)
    }
}

/// The rules and bypasses of one throttle.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    bypasses: Vec<Bypass>,
}

impl RuleSet {
    /// No rules: the throttle applies everywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule; once any rule exists the throttle applies only where one matches.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a bypass; a matching request skips the throttle whatever the rules say.
    pub fn bypass(mut self, bypass: Bypass) -> Self {
        self.bypasses.push(bypass);
        self
    }

    /// Whether the throttle applies to the request.
    pub fn applies(&self, req: &RequestInfo<'_>) -> bool {
        if self.bypasses.iter().any(|b| b.matches(req)) {
            return false;
        }
        self.rules.is_empty() || self.rules.iter().any(|r| r.matches(req))
    }

    /// True when there are neither rules nor bypasses.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.bypasses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str) -> RequestInfo<'a> {
        RequestInfo { method, path }
    }

    #[test]
    fn single_star_matches_exactly_one_segment() {
        let p = PathPattern::new("/api/*/orders");
        assert!(p.matches("/api/v1/orders"));
        assert!(p.matches("/api/v1/orders/"));
        assert!(!p.matches("/api/orders"));
        assert!(!p.matches("/api/v1/v2/orders"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let p = PathPattern::new("/static/**");
        assert!(p.matches("/static"));
        assert!(p.matches("/static/a"));
        assert!(p.matches("/static/a/b/c.css"));
        assert!(!p.matches("/statics/a"));
        let mid = PathPattern::new("/a/**/z");
        assert!(mid.matches("/a/z"));
        assert!(mid.matches("/a/b/c/z"));
        assert!(!mid.matches("/a/b/c"));
    }

    #[test]
    fn query_strings_and_long_paths() {
        assert!(PathPattern::new("/search").matches("/search?q=1"));
        let long: String = (0..40).map(|i| format!("/s{i}")).collect();
        assert!(PathPattern::new("/s0/**").matches(&long));
        assert!(!PathPattern::new("/s1/**").matches(&long));
    }

    #[test]
    fn rules_restrict_and_bypass_wins() {
        let set = RuleSet::new()
            .rule(Rule::path("/api/**").methods(["post", "PUT"]))
            .bypass(Bypass::path("/api/health"));
        assert!(set.applies(&req("POST", "/api/orders")));
        assert!(!set.applies(&req("GET", "/api/orders")));
        assert!(!set.applies(&req("POST", "/other")));
        assert!(!set.applies(&req("POST", "/api/health")));
        assert!(RuleSet::new().applies(&req("GET", "/anything")));
    }

    #[test]
    fn predicate_rules() {
        let set = RuleSet::new().rule(Rule::any().when(|r| r.path.ends_with(".json")));
        assert!(set.applies(&req("GET", "/x/data.json")));
        assert!(!set.applies(&req("GET", "/x/data.xml")));
    }
}
