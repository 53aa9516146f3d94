//! Printing API objects as a table, JSON or YAML.

use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;

use crate::cli::Format;

/// Prints `value` as JSON or YAML; returns `false` for table format so the
/// caller prints its own table.
pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_norway::to_string(value)?),
        Format::Table => return Ok(false),
    }
    Ok(true)
}

/// A borderless table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    *t.style_mut() = NOTHING;
    t.set_header(header.to_vec());
    for row in rows {
        t.add_row(row);
    }
    println!("{t}");
}
