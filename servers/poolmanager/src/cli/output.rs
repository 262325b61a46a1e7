//! Printing answers: aligned tables for people, JSON or YAML for scripts.

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement};
use serde::Serialize;

use super::fail::{Exit, Failure};

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns (lists) or fields (one object), long values cut.
    Table,
    /// The server's objects as JSON (a list is an array of every item).
    Json,
    /// The same as YAML.
    Yaml,
}

/// Longest value a list's cell shows; longer ones end in `…`.
const MAX_CELL: usize = 40;

/// Prints `value` as JSON or YAML, or calls `table` for the table form.
pub fn print<T: Serialize>(format: Format, value: &T, table: impl FnOnce() -> String) -> Result<(), Failure> {
    let text = match format {
        Format::Table => table(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Failure::new(Exit::Failed, format!("printing JSON: {e}")))?,
        Format::Yaml => serde_yaml_ng::to_string(value)
            .map_err(|e| Failure::new(Exit::Failed, format!("printing YAML: {e}")))?,
    };
    println!("{}", text.trim_end());
    Ok(())
}

/// Columns with a header, aligned like `kubectl get`.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| cut(c, MAX_CELL)).collect());
    }

    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return "No resources found.".into();
        }
        columns(Some(&self.header), &self.rows)
    }
}

/// The fields of one object, a name and its value per line; values are whole.
pub struct Fields {
    rows: Vec<Vec<String>>,
    sections: Vec<String>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields {
            rows: Vec::new(),
            sections: Vec::new(),
        }
    }

    pub fn field(&mut self, name: &str, value: impl Into<String>) -> &mut Fields {
        self.rows.push(vec![format!("{name}:"), value.into()]);
        self
    }

    /// A titled table after the fields (nodes, service URLs).
    pub fn section(&mut self, title: &str, table: &Table) -> &mut Fields {
        let body = if table.rows.is_empty() {
            "  (none)".to_owned()
        } else {
            indent(&columns(Some(&table.header), &table.rows))
        };
        self.sections.push(format!("{title}:\n{body}"));
        self
    }

    pub fn render(&self) -> String {
        let mut out = columns(None, &self.rows);
        for section in &self.sections {
            out.push_str("\n\n");
            out.push_str(section);
        }
        out
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn columns(header: Option<&[&'static str]>, rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if let Some(header) = header {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row.clone());
    }
    let last = table.column_count().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 3 }));
    }
    table
        .to_string()
        .lines()
        .map(str::trim_end)
        // The preset draws the header's rule in spaces.
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` cut to `max` characters, the last being `…`; one line.
pub fn cut(text: &str, max: usize) -> String {
    let line = text.replace(['\n', '\r'], " ");
    if line.chars().count() <= max {
        return line;
    }
    let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// `-` for an absent value.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// `k=v,k=v`, sorted by key; `-` when empty.
pub fn pairs<'a>(map: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<String> = map.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        return "-".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// How long ago, as `kubectl` says it: `45s`, `12m`, `3h`, `5d`.
pub fn age(at: &DateTime<Utc>) -> String {
    span((Utc::now() - *at).num_seconds())
}

/// When a lease ends: `in 12m`, or `expired`.
pub fn until(at: Option<&DateTime<Utc>>) -> String {
    match at {
        None => "-".into(),
        Some(at) => {
            let left = (*at - Utc::now()).num_seconds();
            if left <= 0 {
                "expired".into()
            } else {
                format!("in {}", span(left))
            }
        }
    }
}

fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A time as RFC 3339, to the second.
pub fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(cut("two\nlines", 20), "two lines");
    }

    #[test]
    fn columns_align_without_borders() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec!["a".into(), "ready".into()]);
        table.row(vec!["longer-name".into(), "applied".into()]);
        assert_eq!(
            table.render(),
            "NAME          STATUS\na             ready\nlonger-name   applied"
        );
    }

    #[test]
    fn spans_read_like_kubectl() {
        assert_eq!(span(45), "45s");
        assert_eq!(span(600), "10m");
        assert_eq!(span(3 * 3600), "3h");
        assert_eq!(span(5 * 86_400), "5d");
    }
}
