//! How the command line prints what the API answers: a table with a
//! header for people, JSON or YAML of the API's own objects for programs
//! (`-f json|yaml`, as `openstack -f` and `kubectl -o` do).

use clap::ValueEnum;
use comfy_table::{Table, presets};
use serde_json::Value;

/// `-f`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Columns with a header.
    #[default]
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// The same as YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML, or the table `table` makes of it.
pub fn emit(format: Format, value: &Value, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    let text = match format {
        Format::Table => table(),
        Format::Json => serde_json::to_string_pretty(value)?,
        Format::Yaml => serde_yaml_ng::to_string(value)?,
    };
    println!("{}", text.trim_end());
    Ok(())
}

/// Columns separated by spaces under an upper-case header, as `kubectl`
/// prints them: readable, and cut/awk still work.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    // The preset pads each cell by one space on both sides; the first
    // column's left pad only indents every line.
    table
        .lines()
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A field of `value` as a cell: strings bare, numbers and booleans as
/// written, nothing as `-`.
pub fn cell(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` UTC, or `-`.
pub fn time(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || "-".into(),
            |t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_has_a_header_and_aligned_columns() {
        let text = table(
            &["id", "status"],
            [
                vec!["a".into(), "active".into()],
                vec!["long-id".into(), "-".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID"), "{text}");
        let column = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[1].find("active"), Some(column), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn cells_say_dash_for_nothing() {
        let v = json!({"a": null, "b": "", "c": 3, "d": ["x", "y"], "e": "z", "t": "2026-12-03T04:05:06.123Z"});
        let cells: Vec<String> = ["a", "b", "c", "d", "e", "missing"]
            .iter()
            .map(|k| cell(&v, k))
            .collect();
        assert_eq!(cells, ["-", "-", "3", "x,y", "z", "-"]);
        assert_eq!(time(&v, "t"), "2026-12-03 04:05:06");
        assert_eq!(time(&v, "a"), "-");
    }
}
