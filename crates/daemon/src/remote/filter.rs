//! Listings and the event stream cut down to a restricted caller's
//! instances.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::Value;

use super::policy::Listing;

const INSTANCE_PREFIX: &str = "/1.0/instances/";

/// The instances an operation names in its resources.
pub fn operation_instances(op: &Value) -> impl Iterator<Item = &str> {
    op.get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| r.strip_prefix(INSTANCE_PREFIX))
        .map(|r| r.split('/').next().unwrap_or(r))
}

/// Whether an item of `listing` is about the caller's instances only.
pub fn visible(listing: Listing, item: &Value, mine: &BTreeSet<String>) -> bool {
    let own = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|n| mine.contains(n));
    match listing {
        Listing::Instances => own(item.pointer("/spec/name")),
        Listing::Stats | Listing::Events => own(item.get("instance")),
        Listing::Operations => operation_instances(item).all(|n| mine.contains(n)),
    }
}

/// Keeps the items of a JSON array body that are visible to the caller.
pub async fn list(resp: Response, listing: Listing, mine: BTreeSet<String>) -> Response {
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let kept = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .filter(|i| visible(listing, i, &mine))
                .collect(),
        ),
        // Not a list: show nothing rather than someone else's data.
        _ => Value::Array(Vec::new()),
    };
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(kept.to_string()))
}

/// Keeps the lines of a newline-delimited JSON stream that are visible.
pub fn events(resp: Response, mine: BTreeSet<String>) -> Response {
    let (parts, body) = resp.into_parts();
    let mut pending = BytesMut::new();
    let lines = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        pending.extend_from_slice(&chunk);
        let mut out = BytesMut::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(end + 1);
            let shown = serde_json::from_slice::<Value>(&line)
                .is_ok_and(|ev| visible(Listing::Events, &ev, &mine));
            if shown {
                out.extend_from_slice(&line);
            }
        }
        Ok::<Bytes, axum::Error>(out.freeze())
    });
    Response::from_parts(parts, Body::from_stream(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mine() -> BTreeSet<String> {
        ["web".to_owned()].into()
    }

    #[test]
    fn items_are_visible_only_when_all_their_instances_are_mine() {
        let m = mine();
        assert!(visible(
            Listing::Instances,
            &json!({"spec": {"name": "web"}}),
            &m
        ));
        assert!(!visible(
            Listing::Instances,
            &json!({"spec": {"name": "db"}}),
            &m
        ));
        assert!(visible(Listing::Stats, &json!({"instance": "web"}), &m));
        let op = |r: &[&str]| json!({ "resources": r });
        assert!(visible(
            Listing::Operations,
            &op(&["/1.0/instances/web"]),
            &m
        ));
        assert!(!visible(
            Listing::Operations,
            &op(&["/1.0/instances/web", "/1.0/instances/db"]),
            &m
        ));
        assert!(!visible(Listing::Events, &json!({"kind": "x"}), &m));
    }

    #[tokio::test]
    async fn lists_and_streams_are_cut() {
        let body = json!([{"instance": "web"}, {"instance": "db"}]).to_string();
        let resp = list(Response::new(Body::from(body)), Listing::Stats, mine()).await;
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes, json!([{"instance": "web"}]).to_string());
        let stream = "{\"instance\":\"db\"}\n{\"instance\":\"web\"}\n";
        let resp = events(Response::new(Body::from(stream)), mine());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes, "{\"instance\":\"web\"}\n");
    }
}
