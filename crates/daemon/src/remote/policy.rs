//! What a restricted certificate may do, decided from the method and path
//! alone (pure, so it is tested without a daemon).

use axum::http::Method;

/// How a restricted caller's request is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Nothing instance-specific: let it through.
    Open,
    /// Refused with 403; the words complete "a restricted client may not …".
    Denied(&'static str),
    /// About this instance: let through only if the caller manages it,
    /// else 404 as if it did not exist.
    Instance(String),
    /// Makes instance `name` from the body's `name` (create, or a clone of
    /// the instance given here): the caller manages it on success.
    Creates { source: Option<String> },
    /// About this operation: visible only if every instance it names is
    /// the caller's.
    Operation(String),
    /// A listing (or stream) filtered down to the caller's instances.
    Filtered(Listing),
}

/// The listings a restricted caller sees a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET /1.0/instances`: items with `spec.name`.
    Instances,
    /// `GET /1.0/operations`: items with `resources`.
    Operations,
    /// `GET /1.0/stats`: items with `instance`.
    Stats,
    /// `GET /1.0/events`: a stream of lines with `instance`.
    Events,
}

/// The access a restricted caller has to `method path`.
pub fn restricted(method: &Method, path: &str) -> Access {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let read = method == Method::GET;
    match segs.as_slice() {
        ["metrics"] => Access::Denied("read the host's metrics, which name every instance"),
        ["1.0", "host", "tokens" | "trust", ..] => {
            Access::Denied("manage trusted certificates or join tokens")
        }
        ["1.0", "migrations", ..] => Access::Denied("receive incoming migrations"),
        ["1.0", "restore"] => Access::Denied("restore a saved file as a new instance"),
        ["1.0", "instances"] if read => Access::Filtered(Listing::Instances),
        ["1.0", "instances"] if method == Method::POST => Access::Creates { source: None },
        ["1.0", "instances", name, "clone"] if method == Method::POST => Access::Creates {
            source: Some((*name).to_owned()),
        },
        ["1.0", "instances", name, ..] => Access::Instance((*name).to_owned()),
        ["1.0", "operations"] => Access::Filtered(Listing::Operations),
        ["1.0", "operations", id, ..] => Access::Operation((*id).to_owned()),
        ["1.0", "stats"] => Access::Filtered(Listing::Stats),
        ["1.0", "events"] => Access::Filtered(Listing::Events),
        ["1.0", "networks", _, "leases"] => {
            Access::Denied("read a network's leases, which name every instance")
        }
        ["1.0", "networks", ..] if !read => Access::Denied("create, change or delete networks"),
        ["1.0", "pools"] | ["1.0", "pools", _] | ["1.0", "pools", _, "state"] if !read => {
            Access::Denied("create, change or delete pools")
        }
        _ => Access::Open,
    }
}

/// A field of a request body naming a host path, as segments (`[]` for
/// every element of an array).
pub type HostPathField = &'static [&'static str];

const SPEC_PATHS: &[HostPathField] = &[
    &["boot", "kernel"],
    &["boot", "initrd"],
    &["disks", "[]", "path"],
];

/// The body fields of `method path` that name host paths, which a
/// restricted caller may only point inside a pool's directory.
pub fn host_path_fields(method: &Method, path: &str) -> &'static [HostPathField] {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["1.0", "instances"]) | ("PUT" | "PATCH", ["1.0", "instances", _]) => SPEC_PATHS,
        ("POST", ["1.0", "instances", _, "disks"])
        | ("PUT", ["1.0", "instances", _, "disks", _, "media"])
        | ("POST", ["1.0", "pools", _, "volumes", _, "export"]) => &[&["path"]],
        ("POST", ["1.0", "instances", _, "save"]) => &[&["file"]],
        ("POST", ["1.0", "pools", _, "import"]) => &[&["source"]],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_wide_changes_are_denied() {
        for (m, p) in [
            (Method::POST, "/1.0/pools"),
            (Method::DELETE, "/1.0/pools/default"),
            (Method::PUT, "/1.0/pools/default/state"),
            (Method::POST, "/1.0/networks"),
            (Method::DELETE, "/1.0/networks/default"),
            (Method::POST, "/1.0/host/tokens"),
            (Method::GET, "/1.0/host/trust"),
            (Method::DELETE, "/1.0/host/trust/ab"),
            (Method::POST, "/1.0/migrations/incoming"),
            (Method::POST, "/1.0/restore"),
            (Method::GET, "/metrics"),
        ] {
            assert!(matches!(restricted(&m, p), Access::Denied(_)), "{m} {p}");
        }
    }

    #[test]
    fn instances_operations_and_listings_are_scoped() {
        assert_eq!(
            restricted(&Method::GET, "/1.0/instances/web/state"),
            Access::Instance("web".into())
        );
        assert_eq!(
            restricted(&Method::POST, "/1.0/instances/web/clone"),
            Access::Creates {
                source: Some("web".into())
            }
        );
        assert_eq!(
            restricted(&Method::POST, "/1.0/instances"),
            Access::Creates { source: None }
        );
        assert_eq!(
            restricted(&Method::GET, "/1.0/instances/"),
            Access::Filtered(Listing::Instances)
        );
        assert_eq!(
            restricted(&Method::DELETE, "/1.0/operations/x"),
            Access::Operation("x".into())
        );
        assert_eq!(restricted(&Method::GET, "/1.0/pools"), Access::Open);
        assert_eq!(
            restricted(&Method::POST, "/1.0/pools/p/volumes"),
            Access::Open
        );
    }

    #[test]
    fn host_path_fields_by_route() {
        assert_eq!(host_path_fields(&Method::POST, "/1.0/instances").len(), 3);
        assert_eq!(
            host_path_fields(&Method::POST, "/1.0/pools/p/import"),
            &[&["source"][..]]
        );
        assert!(host_path_fields(&Method::GET, "/1.0/instances").is_empty());
    }
}
