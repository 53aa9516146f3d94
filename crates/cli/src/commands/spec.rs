//! Spec documents as users write them: YAML files, and flag values laid
//! over them. The document stays untyped on purpose: the daemon validates
//! every field, unknown ones included, and names the path of a bad one.

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Map, Value};

/// Parses a YAML document into JSON for the API. Syntax errors are reported
/// here; field validation (including unknown fields) happens in the daemon.
pub fn yaml_to_json(text: &str, origin: &str) -> anyhow::Result<Value> {
    let v: Value =
        serde_norway::from_str(text).with_context(|| format!("{origin} is not valid YAML"))?;
    if !v.is_object() {
        bail!("{origin} must be a YAML mapping of spec fields");
    }
    Ok(v)
}

/// Reads a YAML spec file, or starts from an empty mapping.
pub fn spec_file(path: Option<&std::path::Path>) -> anyhow::Result<Value> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            yaml_to_json(&text, &path.display().to_string())
        }
        None => Ok(Value::Object(Map::new())),
    }
}

/// A spec document's mapping at `key` (created empty when absent).
pub fn mapping<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> anyhow::Result<&'a mut Map<String, Value>> {
    m.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .with_context(|| format!("{key} must be a mapping"))
}

/// A spec document's list at `key` (created empty when absent).
pub fn list<'a>(m: &'a mut Map<String, Value>, key: &str) -> anyhow::Result<&'a mut Vec<Value>> {
    m.entry(key)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .with_context(|| format!("{key} must be a list"))
}

/// Sets `key` to a flag's typed value, when the flag was given.
pub fn set<T: Serialize>(
    m: &mut Map<String, Value>,
    key: &str,
    v: Option<T>,
) -> anyhow::Result<()> {
    if let Some(v) = v {
        m.insert(key.into(), value(v)?);
    }
    Ok(())
}

/// A typed API value as a JSON value of the document.
pub fn value<T: Serialize>(v: T) -> anyhow::Result<Value> {
    serde_json::to_value(v).context("cannot encode a flag's value")
}

/// Turns `a.b=v` assignments into one JSON merge patch.
pub fn assignments_to_patch(assignments: &[String]) -> anyhow::Result<Value> {
    let mut patch = Value::Object(Map::new());
    for a in assignments {
        let (key, raw) = a
            .split_once('=')
            .with_context(|| format!("{a:?} is not key=value"))?;
        if key.is_empty() {
            bail!("{a:?} has an empty key");
        }
        let v: Value = if raw.is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
        };
        let mut cur = &mut patch;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let map = cur.as_object_mut().context("nested key under a scalar")?;
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), v.clone());
                break;
            }
            cur = map
                .entry(*part)
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_become_a_merge_patch() {
        let p = assignments_to_patch(&[
            "memory=1024".into(),
            "boot.cmdline=console=ttyS0 quiet".into(),
            "autostart=true".into(),
            "balloon=".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            serde_json::json!({"memory": 1024, "boot": {"cmdline": "console=ttyS0 quiet"},
                "autostart": true, "balloon": null})
        );
        assert!(assignments_to_patch(&["memory".into()]).is_err());
        assert!(assignments_to_patch(&["=1".into()]).is_err());
    }

    #[test]
    fn yaml_must_be_a_mapping() {
        assert!(yaml_to_json("cpus: 2\n", "x").is_ok());
        let err = yaml_to_json("- 1\n", "f.yaml").unwrap_err().to_string();
        assert!(err.contains("f.yaml must be a YAML mapping"), "{err}");
        let err = yaml_to_json("a: [1\n", "f.yaml").unwrap_err().to_string();
        assert!(err.contains("f.yaml is not valid YAML"), "{err}");
    }
}
