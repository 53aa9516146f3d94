//! Layering, enforced (DESIGN.md §1): crate dependencies follow the layers
//! (read from `cargo metadata`), and the daemon's module graph has no cycle.

mod crates;
mod cycles;
mod modgraph;
mod source;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Edges allowed to break the layers for now (none). An edge listed here
/// that no longer exists fails the test too, so the list only shrinks.
const PENDING: &[(&str, &str, &str)] = &[];

fn workspace_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn crate_dependencies_follow_the_layers() {
    let edges = crates::workspace_edges(&workspace_metadata());
    assert!(
        edges.contains(&("ferrovirtd".into(), "ferrovirt-store".into())),
        "the metadata was read: {edges:?}"
    );
    let pending: BTreeSet<(String, String)> = PENDING
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let found = crates::violations(&edges);
    let new: Vec<&String> = found
        .iter()
        .filter(|(e, _)| !pending.contains(e))
        .map(|(_, why)| why)
        .collect();
    let gone: Vec<&(String, String)> = pending.difference(&edges).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "crate layering broken:\n{}\nremoved edges still listed in PENDING: {gone:?}",
        new.iter()
            .map(|w| format!("  {w}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn daemon_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modgraph::read_crate(&src).expect("the daemon's sources are readable");
    let graph = modgraph::build(&files);
    assert!(graph.contains_key("routes"), "the module tree was read");
    let knots = cycles::knots(&graph);
    assert!(
        knots.is_empty(),
        "the daemon's module graph has {} knot(s):\n{}",
        knots.len(),
        knots
            .iter()
            .map(|k| format!("  {k}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
