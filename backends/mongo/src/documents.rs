//! How poolcore's records become MongoDB documents and back.
//!
//! A record is serialized with serde into a BSON document, then shaped for MongoDB:
//!
//! - its id field becomes `_id` (the blueprint's name is its id);
//! - its timestamps become BSON dates, so that the server compares and sorts them
//!   (BSON dates count milliseconds: a time read back is the written one cut to the
//!   millisecond, which the [`Store`](poolcore::Store) contract allows);
//! - keys of free-form maps (labels, metadata, env, node and port names) have `%`,
//!   `.`, `$` and NUL percent-encoded: MongoDB refuses or misreads field names with
//!   `.` or a leading `$`, and a user may well put them in a label or metadata key.
//!   Field names of the records themselves never contain these characters, so the
//!   whole document is encoded alike.
//!
//! Decoding reverses each step. It also reads a time that a server stored as text:
//! MongoDB never does, but a compatible server may turn a date written with `$set`
//! into text (the nx-27017 test server does), and that must not make a record
//! unreadable.

use bson::{Bson, Document};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What the store needs to know of one kind of record to shape its documents.
#[derive(Debug)]
pub(crate) struct Shape {
    /// The record kind, for errors: `host`, `cluster`, ...
    pub(crate) kind: &'static str,
    /// The record's field that becomes `_id`.
    pub(crate) id: &'static str,
    /// The record's timestamp fields (`DateTime<Utc>` or `Option<DateTime<Utc>>`).
    pub(crate) times: &'static [&'static str],
}

/// [`poolcore::Host`].
pub(crate) const HOST: Shape = Shape {
    kind: "host",
    id: "id",
    times: &["last_seen", "created_at"],
};

/// [`poolcore::Blueprint`]: its name is its id.
pub(crate) const BLUEPRINT: Shape = Shape {
    kind: "blueprint",
    id: "name",
    times: &["created_at"],
};

/// [`poolcore::Cluster`].
pub(crate) const CLUSTER: Shape = Shape {
    kind: "cluster",
    id: "id",
    times: &["applied_at", "expires_at", "created_at", "updated_at"],
};

/// [`poolcore::LeaseRecord`].
pub(crate) const LEASE: Shape = Shape {
    kind: "lease",
    id: "id",
    times: &["applied_at", "released_at"],
};

/// [`poolcore::Operation`].
pub(crate) const OPERATION: Shape = Shape {
    kind: "operation",
    id: "id",
    times: &["created_at", "finished_at"],
};

/// Why a record could not become a document, or a document a record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// serde could not write the record as BSON.
    #[error("cannot encode {kind}: {source}")]
    Encode {
        kind: &'static str,
        source: Box<bson::ser::Error>,
    },
    /// A timestamp field did not hold a timestamp.
    #[error("cannot encode {kind}: its {field} {text:?} is not an RFC 3339 time")]
    Time {
        kind: &'static str,
        field: String,
        text: String,
    },
    /// The stored document does not hold a valid record.
    #[error("{kind} document {id} is not valid: {reason}")]
    Decode {
        kind: &'static str,
        id: String,
        reason: String,
    },
}

/// A BSON date for `t`, cut to the millisecond.
pub(crate) fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

/// A BSON date for `t`, or null.
pub(crate) fn opt_date(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, date)
}

/// `value` as BSON with its map keys encoded: for a `$set` of one field.
pub(crate) fn field<T: Serialize>(kind: &'static str, value: &T) -> Result<Bson, CodecError> {
    let value = bson::to_bson(value).map_err(|source| CodecError::Encode {
        kind,
        source: Box::new(source),
    })?;
    Ok(escape_keys(value))
}

/// `record` as a document shaped like `shape`.
pub(crate) fn encode<T: Serialize>(shape: &Shape, record: &T) -> Result<Document, CodecError> {
    let mut doc = bson::to_document(record).map_err(|source| CodecError::Encode {
        kind: shape.kind,
        source: Box::new(source),
    })?;
    let mut shaped = Document::new();
    if let Some(id) = doc.remove(shape.id) {
        shaped.insert("_id", id);
    }
    for (key, value) in doc {
        let value = match value {
            Bson::String(text) if shape.times.contains(&key.as_str()) => {
                match DateTime::parse_from_rfc3339(&text) {
                    Ok(t) => date(t.with_timezone(&Utc)),
                    Err(_) => {
                        return Err(CodecError::Time {
                            kind: shape.kind,
                            field: key,
                            text,
                        })
                    }
                }
            }
            other => escape_keys(other),
        };
        shaped.insert(key, value);
    }
    Ok(shaped)
}

/// The record a document shaped like `shape` holds.
pub(crate) fn decode<T: DeserializeOwned>(shape: &Shape, doc: Document) -> Result<T, CodecError> {
    let id = doc
        .get("_id")
        .map_or_else(|| "without _id".to_owned(), |id| id.to_string());
    let mut record = Document::new();
    for (key, value) in doc {
        let value = match value {
            Bson::DateTime(t) if shape.times.contains(&key.as_str()) => {
                Bson::String(t.to_chrono().to_rfc3339())
            }
            Bson::String(text) if shape.times.contains(&key.as_str()) => match time_from_text(&text) {
                Some(t) => Bson::String(t.to_rfc3339()),
                None => Bson::String(text),
            },
            other => unescape_keys(other),
        };
        if key == "_id" {
            record.insert(shape.id, value);
        } else {
            record.insert(key, value);
        }
    }
    bson::from_document(record).map_err(|e| CodecError::Decode {
        kind: shape.kind,
        id,
        reason: e.to_string(),
    })
}

/// A time a server stored as text: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff][+HH:MM]`
/// (UTC when no offset is given), which is how some MongoDB-compatible servers,
/// nx-27017 among them, store a date written with `$set`.
fn time_from_text(text: &str) -> Option<DateTime<Utc>> {
    const SPACED: &str = "%Y-%m-%d %H:%M:%S%.f";
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, &format!("{SPACED}%:z")))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| Some(NaiveDateTime::parse_from_str(text, SPACED).ok()?.and_utc()))
}

/// `value` with every key of every nested document percent-encoded.
fn escape_keys(value: Bson) -> Bson {
    map_keys(value, &|key| {
        if !key.contains(['%', '.', '$', '\0']) {
            return key;
        }
        let mut out = String::with_capacity(key.len() + 4);
        for c in key.chars() {
            match c {
                '%' => out.push_str("%25"),
                '.' => out.push_str("%2E"),
                '$' => out.push_str("%24"),
                '\0' => out.push_str("%00"),
                c => out.push(c),
            }
        }
        out
    })
}

/// The reverse of [`escape_keys`].
fn unescape_keys(value: Bson) -> Bson {
    map_keys(value, &|key| {
        if !key.contains('%') {
            return key;
        }
        let mut out = String::with_capacity(key.len());
        let mut rest = key.as_str();
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let code = rest.get(at..at + 3).unwrap_or(&rest[at..]);
            match code {
                "%25" => out.push('%'),
                "%2E" => out.push('.'),
                "%24" => out.push('$'),
                "%00" => out.push('\0'),
                // Not written by escape_keys: keep it as it is.
                other => out.push_str(other),
            }
            rest = &rest[at + code.len()..];
        }
        out.push_str(rest);
        out
    })
}

fn map_keys(value: Bson, f: &dyn Fn(String) -> String) -> Bson {
    match value {
        Bson::Document(doc) => Bson::Document(doc.into_iter().map(|(k, v)| (f(k), map_keys(v, f))).collect()),
        Bson::Array(items) => Bson::Array(items.into_iter().map(|v| map_keys(v, f)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bson::doc;
    use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
    use poolcore::{Blueprint, Cluster, Host};

    use super::*;

    /// `t` cut to the millisecond, as a BSON date keeps it.
    fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
        bson::DateTime::from_chrono(t).to_chrono()
    }

    #[test]
    fn records_round_trip_to_the_millisecond() {
        let mut cluster = ready_cluster("bp", "host-1");
        cluster.applied_at = Some(Utc::now());
        cluster.metadata = BTreeMap::from([
            ("a.b".into(), "dotted".into()),
            ("$where".into(), "dollar".into()),
            ("100%".into(), "percent %2E".into()),
            ("nul\0".into(), "nul".into()),
        ]);
        let doc = encode(&CLUSTER, &cluster).expect("encode");
        assert_eq!(doc.get_str("_id").ok(), Some(cluster.id.as_str()));
        assert!(doc.get("id").is_none());
        assert!(matches!(doc.get("created_at"), Some(Bson::DateTime(_))));
        assert!(matches!(doc.get("applied_at"), Some(Bson::DateTime(_))));
        assert_eq!(doc.get("expires_at"), Some(&Bson::Null));
        let metadata = doc.get_document("metadata").expect("metadata");
        assert!(
            metadata.keys().all(|k| !k.contains(['.', '$', '\0'])),
            "{metadata}"
        );
        assert_eq!(metadata.get_str("100%25").ok(), Some("percent %2E"));

        let back: Cluster = decode(&CLUSTER, doc).expect("decode");
        let expected = Cluster {
            created_at: millis(cluster.created_at),
            updated_at: millis(cluster.updated_at),
            applied_at: cluster.applied_at.map(millis),
            ..cluster
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn hosts_and_blueprints_round_trip() {
        let host = Host {
            created_at: millis(Utc::now()),
            last_seen: None,
            ..sample_host()
        };
        let back: Host = decode(&HOST, encode(&HOST, &host).expect("encode")).expect("decode");
        assert_eq!(back, host);

        let mut blueprint = Blueprint {
            created_at: millis(Utc::now()),
            ..sample_blueprint()
        };
        blueprint.nodes[0].name = "peer0.org1".into();
        blueprint.nodes[0].env.insert("A.B".into(), "1".into());
        let doc = encode(&BLUEPRINT, &blueprint).expect("encode");
        assert_eq!(doc.get_str("_id").ok(), Some(blueprint.name.as_str()));
        let back: Blueprint = decode(&BLUEPRINT, doc).expect("decode");
        assert_eq!(back, blueprint);
    }

    #[test]
    fn a_bad_document_names_its_record() {
        let err = decode::<Host>(&HOST, doc! {"_id": "h1", "name": 5}).expect_err("not a host");
        let text = err.to_string();
        assert!(text.contains("host document \"h1\""), "{text}");
    }

    #[test]
    fn times_stored_as_text_are_read() {
        let cases = [
            ("2026-11-26T00:58:16.312Z", "2026-11-26T00:58:16.312+00:00"),
            ("2026-11-26 00:58:16.312000", "2026-11-26T00:58:16.312+00:00"),
            ("2026-11-26 00:58:16", "2026-11-26T00:58:16+00:00"),
            ("2026-11-26 01:58:16.5+01:00", "2026-11-26T00:58:16.500+00:00"),
        ];
        for (text, want) in cases {
            let t = time_from_text(text).unwrap_or_else(|| panic!("{text} not read"));
            assert_eq!(t.to_rfc3339(), want, "{text}");
        }
        assert!(time_from_text("yesterday").is_none());
        let doc = doc! {"_id": "op", "kind": "fill", "host_id": "h", "status": "running", "done": 0_i64,
        "total": 1_i64, "error": null, "created_at": "2026-11-26 00:58:16.312000", "finished_at": null};
        let op: poolcore::Operation = decode(&OPERATION, doc).expect("decode");
        assert_eq!(op.created_at.to_rfc3339(), "2026-11-26T00:58:16.312+00:00");
    }

    #[test]
    fn unknown_escapes_are_kept() {
        let value = unescape_keys(Bson::Document(doc! {"50%": 1, "%zz": 2, "%2": 3}));
        let Bson::Document(doc) = value else {
            panic!("a document")
        };
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["50%", "%zz", "%2"]);
    }
}
