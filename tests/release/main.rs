//! Release checks that need no second toolchain: the declared minimum Rust version covers every
//! locked dependency a user builds (read from `cargo metadata`).

use std::process::Command;

use serde_json::Value;

/// `"1.85"` or `"1.85.0"` as comparable numbers.
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn the_declared_rust_version_covers_every_locked_dependency() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--all-features",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let by_id = |id: &str| packages.iter().find(|p| p["id"] == id).expect("package");
    let root = packages
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME"))
        .expect("this crate");
    let declared = root["rust_version"]
        .as_str()
        .expect("rust-version is declared");
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve graph");
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).expect("node");
    // What a user builds: normal and build dependencies, every feature on; dev-dependencies
    // are ours alone.
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root["id"].as_str().unwrap().to_owned()];
    let mut too_new = Vec::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let package = by_id(&id);
        if let Some(needs) = package["rust_version"].as_str() {
            if version(needs) > version(declared) {
                too_new.push(format!(
                    "{} {} needs {needs}",
                    package["name"].as_str().unwrap_or("?"),
                    package["version"].as_str().unwrap_or("?")
                ));
            }
        }
        for dep in node(&id)["deps"].as_array().into_iter().flatten() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if shipped {
                stack.push(dep["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(seen.len() > 20, "walked the graph: {} packages", seen.len());
    assert!(
        too_new.is_empty(),
        "rust-version = {declared:?}, but locked dependencies need more: {too_new:?}"
    );
}
