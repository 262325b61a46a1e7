//! What commands read: request bodies from files and flags, `key=value` pairs,
//! values of the spec's enums, and lists a page at a time.

use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::fail::Failure;

/// Most items the server gives in one page.
pub const PAGE: u64 = 1000;

/// A JSON or TOML file as a JSON object: TOML when the name ends in `.toml`, JSON
/// otherwise; `-` is standard input, JSON or TOML.
pub fn object_file(path: &Path) -> Result<Map<String, Value>, Failure> {
    let stdin = path.as_os_str() == "-";
    let text = read_text(path)?;
    let toml_named = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let value = if toml_named {
        from_toml(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => value,
            Err(json) if stdin => from_toml(&text).map_err(|toml| {
                Failure::usage(format!(
                    "standard input is neither JSON ({json}) nor TOML ({toml})"
                ))
            })?,
            Err(e) => return Err(Failure::usage(format!("{} is not JSON: {e}", path.display()))),
        }
    };
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(Failure::usage(format!(
            "{} does not hold one object",
            path.display()
        ))),
    }
}

/// A JSON file (`-`: standard input) as a JSON value of any kind.
pub fn json_file(path: &Path) -> Result<Value, Failure> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| Failure::usage(format!("{} is not JSON: {e}", path.display())))
}

/// The text of the file at `path`, or of standard input for `-`.
fn read_text(path: &Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("reading standard input: {e}")))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))
    }
}

fn from_toml(text: &str) -> Result<Value, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(table).map_err(|e| e.to_string())
}

/// `fields` as the spec's request body `T`, checked against its rules here first.
pub fn body<T: DeserializeOwned>(what: &str, fields: Map<String, Value>) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| Failure::usage(format!("invalid {what}: {e}")))
}

/// Sets `key` to `value` when it is given.
pub fn set(fields: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        fields.insert(key.to_owned(), value.into());
    }
}

/// Sets `key` to the map of `pairs` when there are any.
pub fn set_map(fields: &mut Map<String, Value>, key: &str, pairs: &[(String, String)]) {
    if !pairs.is_empty() {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        fields.insert(key.to_owned(), Value::Object(map));
    }
}

/// A `key=value` argument.
pub fn pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// A value of one of the spec's enums (`ClusterStatus`, `Health`, ...).
pub fn spec_enum<T: FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not one of the values the spec allows here (see --help)"))
}

/// Every item of a list, asking page after page: `page(offset)` gives a page's items
/// and the total.
pub async fn every<T, P, F>(page: P) -> Result<Vec<T>, Failure>
where
    P: FnMut(i64) -> F,
    F: Future<Output = Result<(Vec<T>, u64), Failure>>,
{
    every_upto(usize::MAX, page).await
}

/// As [`every`], asking no further page once `max` items are there.
pub async fn every_upto<T, P, F>(max: usize, mut page: P) -> Result<Vec<T>, Failure>
where
    P: FnMut(i64) -> F,
    F: Future<Output = Result<(Vec<T>, u64), Failure>>,
{
    let mut items = Vec::new();
    loop {
        let offset = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let (mut got, total) = page(offset).await?;
        let empty = got.is_empty();
        items.append(&mut got);
        if empty || items.len() >= max || items.len() as u64 >= total {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(pair("a="), Ok(("a".into(), String::new())));
        assert!(pair("=b").is_err());
        assert!(pair("ab").is_err());
    }

    #[test]
    fn toml_reads_as_the_json_the_api_takes() {
        let value = from_toml("name = \"demo\"\n[[nodes]]\nname = \"vp0\"\nports = { web = \"80/tcp\" }\n")
            .expect("TOML");
        assert_eq!(
            value,
            serde_json::json!({"name": "demo", "nodes": [{"name": "vp0", "ports": {"web": "80/tcp"}}]})
        );
    }
}
