//! The crate's shape, checked: the top-level modules form one-way layers (ARCHITECTURE.md), so no
//! module cycle can creep back in, and no source file outgrows a reader.
//!
//! The check reads `src/` as text: every `crate::<name>` path (and `crate::{…}` group) in a
//! module's code — comments excluded — is an edge to the module `<name>` is, or to the module a
//! root re-export of `<name>` comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use only modules of a lower layer.
const LAYERS: &[(&str, u32)] = &[
    // Leaves: plain values, no dependency inside the crate (config reads the tier names).
    ("decision", 0),
    ("util", 0),
    ("clock", 0),
    ("signal", 0),
    ("strategy", 0),
    ("config", 1),
    ("governance", 1),
    ("admission", 1),
    // Where a fleet keeps what it shares (memory or Redis); knows nothing of throttles.
    ("store", 1),
    ("events", 2),
    // The cost axis's meter and reservations (reads its config section).
    ("cost", 2),
    ("breaker", 2),
    ("counters", 3),
    ("audit", 3),
    ("log", 3),
    // The pure adaptive loop, then the in-flight limit.
    ("control", 4),
    ("concurrency", 4),
    // The handle joining them.
    ("throttle", 5),
    // Serving and operating it.
    ("http", 6),
    // The client side: coordinates outbound calls, optionally feeding an inbound throttle.
    ("outbound", 6),
    ("dlq", 7),
    ("registry", 7),
    ("metrics", 8),
    ("admin", 9),
];

/// The longest a source file may grow.
const MAX_LINES: usize = 700;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(path).expect("readable source directory") {
        let p = entry.expect("directory entry").path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The source without comment lines (doc links name modules without depending on them).
fn code_of(path: &Path) -> String {
    fs::read_to_string(path)
        .expect("readable source file")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Every name used as `crate::name` or inside `crate::{…}` (first path segment of each item).
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                if let Some(first) = identifiers(item).next() {
                    names.insert(first.to_owned());
                }
            }
        } else if let Some(first) = identifiers(rest).next() {
            names.insert(first.to_owned());
        }
    }
    names
}

/// Top-level modules and their files.
fn modules() -> BTreeMap<String, PathBuf> {
    fs::read_dir(src_dir())
        .expect("src/ exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "lib.rs"))
        .map(|p| {
            let name = p
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, p)
        })
        .collect()
}

/// Root re-exports (`pub use module::{A, B};` in lib.rs): name → defining module.
fn root_reexports(modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let lib = code_of(&src_dir().join("lib.rs"));
    let mut out = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.strip_prefix("crate::").unwrap_or(rest);
        let mut words = identifiers(rest);
        let Some(module) = words.next().filter(|m| modules.contains_key(*m)) else {
            continue;
        };
        for name in words {
            out.insert(name.to_owned(), module.to_owned());
        }
    }
    out
}

fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let reexports = root_reexports(&modules);
    modules
        .iter()
        .map(|(name, path)| {
            let deps = rust_files(path)
                .iter()
                .flat_map(|f| crate_paths(&code_of(f)))
                .filter_map(|used| {
                    if modules.contains_key(&used) {
                        Some(used)
                    } else {
                        reexports.get(&used).cloned()
                    }
                })
                .filter(|dep| dep != name)
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

#[test]
fn every_module_has_a_layer() {
    let layers: BTreeMap<_, _> = LAYERS.iter().copied().collect();
    let missing: Vec<_> = modules()
        .into_keys()
        .filter(|m| !layers.contains_key(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer (add them to LAYERS and ARCHITECTURE.md): {missing:?}"
    );
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let layers: BTreeMap<_, _> = LAYERS.iter().copied().collect();
    let graph = dependency_graph();
    // The parser sees real edges: the throttle joins the layers below it.
    assert!(graph["throttle"].contains("control") && graph["throttle"].contains("strategy"));
    let mut upward = Vec::new();
    for (module, deps) in &graph {
        let Some(&own) = layers.get(module.as_str()) else {
            continue;
        };
        for dep in deps {
            let theirs = layers.get(dep.as_str()).copied().unwrap_or(u32::MAX);
            if theirs >= own {
                upward.push(format!(
                    "{module} (layer {own}) uses {dep} (layer {theirs})"
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies against the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn module_graph_has_no_cycle() {
    let graph = dependency_graph();
    // Depth-first search with three colours: reaching a grey module again is a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(m, 1);
        path.push(m);
        for dep in graph.get(m).into_iter().flatten() {
            match colour.get(dep.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == dep).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| (*s).to_owned()).collect();
                    cycle.push(dep.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(dep, graph, colour, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour.insert(m, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for m in graph.keys() {
        if colour.get(m.as_str()).copied().unwrap_or(0) == 0 {
            let cycle = visit(m, &graph, &mut colour, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "module cycle: {}",
                cycle.unwrap().join(" → ")
            );
        }
    }
}

#[test]
fn the_parser_finds_paths_and_groups() {
    let code = "use crate::config::X;\nuse crate::{decision::Tier, AdaptiveThrottle};\n";
    let found = crate_paths(code);
    let expected: BTreeSet<String> = ["config", "decision", "AdaptiveThrottle"]
        .map(String::from)
        .into();
    assert_eq!(found, expected);
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let too_long: Vec<String> = rust_files(&src_dir())
        .into_iter()
        .filter_map(|f| {
            let lines = fs::read_to_string(&f).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "split these where they already divide: {too_long:?}"
    );
}
