//! Checks every answer the tests get against the served spec: the status is one the
//! operation documents, and the body follows the schema documented for that status.
//!
//! A small validator over `serde_json::Value` for the part of OpenAPI 3.0 the spec
//! uses. Objects with `properties` and no `additionalProperties` are taken as closed, so
//! a field the server sends but the spec does not name fails too.

use std::sync::OnceLock;

use chrono::DateTime;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The spec, as the server serves it.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(&poolmanager::api::spec()).expect("the spec is JSON"))
}

/// The operation `method path` (a concrete path, query left out) is, with its template.
fn operation(method: &Method, path: &str) -> Option<(&'static str, &'static Value)> {
    let parts: Vec<&str> = path.split('/').collect();
    spec()["paths"].as_object()?.iter().find_map(|(template, item)| {
        let segments: Vec<&str> = template.split('/').collect();
        let matches = segments.len() == parts.len()
            && segments
                .iter()
                .zip(&parts)
                .all(|(s, p)| s == p || (s.starts_with('{') && !p.is_empty()));
        let op = item.get(method.as_str().to_ascii_lowercase())?;
        matches.then_some((template.as_str(), op))
    })
}

/// Asserts that `status`, `headers` and `body` are what the spec documents for
/// `method path`. Paths the spec does not hold (unknown paths) are not checked.
pub fn check(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let path = path.split('?').next().unwrap_or_default();
    let Some((template, op)) = operation(method, path) else {
        return;
    };
    let id = op["operationId"].as_str().unwrap_or(template);
    let Some(response) = op["responses"].get(status.as_str()) else {
        panic!("{id} answered {status}, which its spec does not list: {body}");
    };
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        if header["required"] == true {
            assert!(
                headers.contains_key(name.as_str()),
                "{id} {status} lacks header {name}"
            );
        }
    }
    let Some(content) = response["content"].as_object().and_then(|c| c.values().next()) else {
        assert!(body.is_null(), "{id} {status} documents no body but sent {body}");
        return;
    };
    let mut errors = Vec::new();
    validate(&content["schema"], body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{id} {status}: the body does not follow the spec:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}

/// Checks `value` against `schema`, adding what is wrong (with where) to `errors`.
pub fn validate(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return validate(&spec()["components"]["schemas"][name], value, at, errors);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(part, value, at, errors);
    }
    if value.is_null() {
        if schema["nullable"] != true && !schema["type"].is_null() {
            errors.push(format!("{at}: null where the spec says {}", schema["type"]));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("object") => object(schema, value, at, errors),
        Some("array") => match value.as_array() {
            Some(items) => {
                bound(schema, "maxItems", items.len(), |n, max| n <= max, at, errors);
                bound(schema, "minItems", items.len(), |n, min| n >= min, at, errors);
                for (i, item) in items.iter().enumerate() {
                    validate(&schema["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{at}: {value} is not an array")),
        },
        Some("string") => match value.as_str() {
            Some(text) => string(schema, text, at, errors),
            None => errors.push(format!("{at}: {value} is not a string")),
        },
        Some("integer") => match value
            .as_i64()
            .map(|n| n as f64)
            .or(value.as_u64().map(|n| n as f64))
        {
            Some(n) => number(schema, n, at, errors),
            None => errors.push(format!("{at}: {value} is not an integer")),
        },
        Some("number") => match value.as_f64() {
            Some(n) => number(schema, n, at, errors),
            None => errors.push(format!("{at}: {value} is not a number")),
        },
        Some("boolean") if !value.is_boolean() => errors.push(format!("{at}: {value} is not a boolean")),
        _ => {}
    }
}

fn object(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(fields) = value.as_object() else {
        return errors.push(format!("{at}: {value} is not an object"));
    };
    bound(
        schema,
        "maxProperties",
        fields.len(),
        |n, max| n <= max,
        at,
        errors,
    );
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !fields.contains_key(name) {
            errors.push(format!("{at}: required field {name} is missing"));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, field) in fields {
        let where_ = format!("{at}.{name}");
        match (
            properties.and_then(|p| p.get(name)),
            &schema["additionalProperties"],
        ) {
            (Some(property), _) => validate(property, field, &where_, errors),
            (None, Value::Object(_)) => validate(&schema["additionalProperties"], field, &where_, errors),
            (None, _) if properties.is_some() => {
                errors.push(format!("{where_}: the spec names no such field"))
            }
            (None, _) => {}
        }
    }
}

fn string(schema: &Value, text: &str, at: &str, errors: &mut Vec<String>) {
    bound(
        schema,
        "maxLength",
        text.chars().count(),
        |n, max| n <= max,
        at,
        errors,
    );
    if let Some(pattern) = schema["pattern"].as_str() {
        // The pool's patterns repeat Unicode classes thousands of times: allow them room.
        let matches = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 28)
            .build()
            .is_ok_and(|re| re.is_match(text));
        if !matches {
            errors.push(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if schema["format"] == "date-time" && DateTime::parse_from_rfc3339(text).is_err() {
        errors.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
    }
}

fn number(schema: &Value, n: f64, at: &str, errors: &mut Vec<String>) {
    if schema["minimum"].as_f64().is_some_and(|min| n < min) {
        errors.push(format!("{at}: {n} is below the minimum {}", schema["minimum"]));
    }
    if schema["maximum"].as_f64().is_some_and(|max| n > max) {
        errors.push(format!("{at}: {n} is above the maximum {}", schema["maximum"]));
    }
}

fn bound(
    schema: &Value,
    key: &str,
    n: usize,
    ok: fn(usize, usize) -> bool,
    at: &str,
    errors: &mut Vec<String>,
) {
    if let Some(limit) = schema[key].as_u64() {
        if !ok(n, limit as usize) {
            errors.push(format!("{at}: {n} breaks {key} {limit}"));
        }
    }
}
