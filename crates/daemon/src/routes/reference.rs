//! The REST table of docs/reference.md, rendered from the OpenAPI document
//! that the route registration produces. The test below fails when the
//! document and the table drift apart; `UPDATE_DOCS=1` rewrites the table.

use serde_json::Value;

/// Marks the start of the generated table in docs/reference.md.
pub const BEGIN: &str =
    "<!-- BEGIN GENERATED REST TABLE (UPDATE_DOCS=1 cargo test -p ferrovirtd rest_table) -->";
/// Marks its end.
pub const END: &str = "<!-- END GENERATED REST TABLE -->";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One Markdown row per operation, in path order.
pub fn rest_table(doc: &Value) -> String {
    let mut out = String::from(
        "| method | path | summary | request body | answers |\n|---|---|---|---|---|\n",
    );
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths {
        for method in METHODS {
            let op = &item[method];
            if op.is_null() {
                continue;
            }
            out.push_str(&format!(
                "| {} | `{}` | {} | {} | {} |\n",
                method.to_uppercase(),
                path,
                cell(&what(op)),
                request_body(op),
                answers(op),
            ));
        }
    }
    out
}

/// The handler's doc comment: utoipa's summary (its first line) and
/// description (the rest).
fn what(op: &Value) -> String {
    [&op["summary"], &op["description"]]
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn request_body(op: &Value) -> String {
    match op["requestBody"]["content"].as_object() {
        Some(content) => content
            .values()
            .map(|c| format!("`{}`", schema_name(&c["schema"])))
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    }
}

fn answers(op: &Value) -> String {
    let Some(responses) = op["responses"].as_object() else {
        return String::new();
    };
    responses
        .iter()
        .map(|(status, r)| {
            let bodies: Vec<String> = r["content"]
                .as_object()
                .map(|c| {
                    c.values()
                        .map(|c| format!("`{}`", schema_name(&c["schema"])))
                        .collect()
                })
                .unwrap_or_default();
            if bodies.is_empty() {
                status.clone()
            } else {
                format!("{status} {}", bodies.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name a reader knows a schema by: the component it refers to, `[T]`
/// for an array of them, else its JSON type.
fn schema_name(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if s["type"] == "array" {
        return format!("[{}]", schema_name(&s["items"]));
    }
    match s["type"].as_str() {
        Some(t) => t.to_owned(),
        None => "JSON".to_owned(),
    }
}

/// Escapes what would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `doc` with the text between the markers replaced by `table`; `None` when
/// the markers are missing.
pub fn splice(doc: &str, table: &str) -> Option<String> {
    let start = doc.find(BEGIN)? + BEGIN.len();
    let end = doc[start..].find(END)? + start;
    Some(format!("{}\n{}{}", &doc[..start], table, &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference.md")
    }

    #[test]
    fn rest_table_in_reference_md_matches_the_routes() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let table = rest_table(&doc);
        let path = reference_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let fresh = splice(&text, &table).expect("docs/reference.md has the table markers");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        assert!(
            fresh == text,
            "the REST table of docs/reference.md differs from the routes; \
             run `UPDATE_DOCS=1 cargo test -p ferrovirtd rest_table` and commit the result"
        );
    }

    #[test]
    fn every_registered_operation_has_a_row() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let table = rest_table(&doc);
        let ops: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| METHODS.iter().filter(|m| !item[**m].is_null()).count())
            .sum();
        assert_eq!(table.lines().count(), ops + 2, "{table}");
        assert!(table.contains("| POST | `/1.0/instances` | Define a new instance. | `InstanceSpec` | 201 `Instance`, 400 `ErrorBody`, 409 `ErrorBody` |"), "{table}");
        assert!(
            table.contains("| GET | `/1.0/instances` | List instances. |  | 200 `[Instance]` |"),
            "{table}"
        );
    }

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let doc = format!("head\n{BEGIN}\nold\n{END}\ntail\n");
        assert_eq!(
            splice(&doc, "new\n").unwrap(),
            format!("head\n{BEGIN}\nnew\n{END}\ntail\n")
        );
        assert!(splice("no markers", "x").is_none());
    }
}
