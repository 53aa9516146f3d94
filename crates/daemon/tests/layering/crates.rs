//! The crate layers of DESIGN.md §1, checked on `cargo metadata`:
//! `api ← client ← cli`; `api ← core ← {qmp ← qemu, storage, network,
//! store} ← daemon`. The CLI never reaches core or below; driver crates
//! never depend on each other, except qemu on qmp.

use std::collections::BTreeSet;

/// Where a workspace crate sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Depends on no other workspace crate (api, tls).
    Leaf,
    Client,
    Cli,
    Core,
    Driver,
    Daemon,
    /// Test support and end-to-end tests: may use anything, used by nothing
    /// but tests.
    Test,
}

/// The layer of every workspace crate; a new crate must be placed here.
pub fn layer_of(krate: &str) -> Option<Layer> {
    Some(match krate {
        "ferrovirt-api" | "ferrovirt-tls" => Layer::Leaf,
        "ferrovirt-client" => Layer::Client,
        "ferrovirt" => Layer::Cli,
        "ferrovirt-core" => Layer::Core,
        "ferrovirt-qmp" | "ferrovirt-qemu" | "ferrovirt-storage" | "ferrovirt-network"
        | "ferrovirt-store" => Layer::Driver,
        "ferrovirtd" => Layer::Daemon,
        "ferrovirt-testkit" | "ferrovirt-e2e" => Layer::Test,
        _ => return None,
    })
}

/// Why the edge `from → to` breaks the layers, or `None` if it is allowed.
pub fn forbidden(from: &str, to: &str) -> Option<String> {
    let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
        let unplaced = if layer_of(from).is_none() { from } else { to };
        return Some(format!(
            "crate {unplaced} has no layer: place it in layer_of()"
        ));
    };
    use Layer::*;
    let ok = match (a, b) {
        (Test, _) => true,
        (_, Test) => false,
        (Leaf, _) => false,
        (Client, Leaf) => true,
        (Cli, Leaf | Client) => true,
        (Core, Leaf) => true,
        (Driver, Leaf | Core) => true,
        (Driver, Driver) => from == "ferrovirt-qemu" && to == "ferrovirt-qmp",
        (Daemon, Leaf | Client | Core | Driver) => true,
        _ => false,
    };
    if ok {
        return None;
    }
    let why = match (a, b) {
        (_, Test) => "only tests may depend on test crates",
        (Leaf, _) => "api and tls depend on no other workspace crate",
        (Cli, _) => "the CLI depends only on api and client, never on core, drivers or the daemon",
        (Driver, Driver) => "driver crates never depend on each other (only qemu on qmp)",
        _ => "dependencies point down the layers only",
    };
    Some(format!("{from} → {to}: {why}"))
}

/// The `(from, to)` edges between workspace crates in `cargo metadata
/// --format-version 1 --no-deps` output, normal and build dependencies only
/// (a test may use anything).
pub fn workspace_edges(metadata: &serde_json::Value) -> BTreeSet<(String, String)> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = BTreeSet::new();
    for p in &packages {
        let from = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let to = d["name"].as_str().unwrap_or_default();
            let dev = d["kind"].as_str() == Some("dev");
            if names.contains(to) && !dev {
                edges.insert((from.to_owned(), to.to_owned()));
            }
        }
    }
    edges
}

/// Every forbidden edge, with why.
pub fn violations(edges: &BTreeSet<(String, String)>) -> Vec<((String, String), String)> {
    edges
        .iter()
        .filter_map(|(a, b)| forbidden(a, b).map(|why| ((a.clone(), b.clone()), why)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A package's name and its dependencies with their kind.
    type Package<'a> = (&'a str, &'a [(&'a str, Option<&'a str>)]);

    fn metadata(deps: &[Package<'_>]) -> serde_json::Value {
        json!({ "packages": deps.iter().map(|(name, ds)| json!({
            "name": name,
            "dependencies": ds.iter().map(|(d, kind)| json!({"name": d, "kind": kind}))
                .chain(std::iter::once(json!({"name": "serde", "kind": null})))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>() })
    }

    fn edge(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn edges_are_workspace_normal_and_build_dependencies() {
        let m = metadata(&[
            ("ferrovirt-api", &[]),
            ("ferrovirt-core", &[("ferrovirt-api", None)]),
            (
                "ferrovirt-qemu",
                &[
                    ("ferrovirt-core", Some("build")),
                    ("ferrovirt-api", Some("dev")),
                ],
            ),
        ]);
        let edges = workspace_edges(&m);
        let want = [
            edge("ferrovirt-core", "ferrovirt-api"),
            edge("ferrovirt-qemu", "ferrovirt-core"),
        ];
        assert_eq!(edges, want.into_iter().collect());
    }

    #[test]
    fn a_layered_graph_passes() {
        let edges = [
            edge("ferrovirt", "ferrovirt-client"),
            edge("ferrovirt-client", "ferrovirt-api"),
            edge("ferrovirt-qemu", "ferrovirt-qmp"),
            edge("ferrovirt-store", "ferrovirt-core"),
            edge("ferrovirtd", "ferrovirt-store"),
            edge("ferrovirt-e2e", "ferrovirtd"),
        ];
        assert!(violations(&edges.into_iter().collect()).is_empty());
    }

    #[test]
    fn cli_to_core_and_driver_to_driver_fail() {
        let edges = [
            edge("ferrovirt", "ferrovirt-core"),
            edge("ferrovirt-storage", "ferrovirt-qemu"),
            edge("ferrovirt-qmp", "ferrovirt-qemu"),
            edge("ferrovirt-core", "ferrovirt-store"),
            edge("ferrovirtd", "ferrovirt-testkit"),
            edge("ferrovirt-api", "ferrovirt-mystery"),
        ];
        let found = violations(&edges.into_iter().collect());
        let bad: Vec<_> = found.iter().map(|(e, _)| e.clone()).collect();
        assert_eq!(bad.len(), 6, "{found:#?}");
        let why = |a: &str, b: &str| &found.iter().find(|(e, _)| *e == edge(a, b)).unwrap().1;
        assert!(why("ferrovirt", "ferrovirt-core").contains("the CLI depends only on"));
        assert!(why("ferrovirt-storage", "ferrovirt-qemu").contains("never depend on each other"));
        assert!(why("ferrovirt-api", "ferrovirt-mystery").contains("has no layer"));
    }
}
