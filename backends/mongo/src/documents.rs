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
//! unreadable. Likewise a boolean written with `$set` that such a server stores as 0
//! or 1 reads as the boolean. Fields added since an earlier version (a host's `version`, a cluster's
//! `stopped_nodes`, ...) read as their defaults where a document lacks them.
//!
//! A cluster document carries three fields of the store's own beside the record's:
//! [`SLOT`], [`SINGLE_HOLDER`] and [`LAST_RELEASE`]; the updates built here keep them
//! in step with the record.

use bson::{doc, Bson, Document};
use chrono::{DateTime, NaiveDateTime, Utc};
use poolcore::{
    Claim, Cluster, ClusterFilter, ClusterSort, ClusterSortKey, ClusterStatus, Error, Health, LeaseRecord,
    OperationFilter,
};
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
    /// The record's boolean fields.
    pub(crate) flags: &'static [&'static str],
    /// Fields that documents written by an earlier version lack, with what they read as.
    pub(crate) added: &'static [(&'static str, Missing)],
}

/// What a field missing from a stored document reads as.
#[derive(Debug)]
pub(crate) enum Missing {
    /// Zero (a version).
    Zero,
    /// False.
    False,
    /// An empty list (a set).
    Empty,
    /// The value of another field of the document.
    SameAs(&'static str),
}

impl Missing {
    fn value(&self, doc: &Document) -> Bson {
        match self {
            Missing::Zero => Bson::Int64(0),
            Missing::False => Bson::Boolean(false),
            Missing::Empty => Bson::Array(Vec::new()),
            Missing::SameAs(field) => doc.get(*field).cloned().unwrap_or(Bson::Null),
        }
    }
}

/// [`poolcore::Host`].
pub(crate) const HOST: Shape = Shape {
    kind: "host",
    id: "id",
    times: &["last_seen", "created_at"],
    flags: &["schedulable", "autofill"],
    added: &[("version", Missing::Zero)],
};

/// [`poolcore::Blueprint`]: its name is its id.
pub(crate) const BLUEPRINT: Shape = Shape {
    kind: "blueprint",
    id: "name",
    times: &["created_at"],
    flags: &[],
    added: &[],
};

/// [`poolcore::Cluster`].
pub(crate) const CLUSTER: Shape = Shape {
    kind: "cluster",
    id: "id",
    times: &["applied_at", "expires_at", "created_at", "updated_at"],
    flags: &["single_apply"],
    added: &[
        ("single_apply", Missing::False),
        ("stopped_nodes", Missing::Empty),
    ],
};

/// [`poolcore::LeaseRecord`].
pub(crate) const LEASE: Shape = Shape {
    kind: "lease",
    id: "id",
    times: &["applied_at", "released_at"],
    flags: &[],
    added: &[],
};

/// [`poolcore::Operation`].
pub(crate) const OPERATION: Shape = Shape {
    kind: "operation",
    id: "id",
    times: &["created_at", "updated_at", "finished_at"],
    flags: &[],
    added: &[("updated_at", Missing::SameAs("created_at"))],
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
pub(crate) fn decode<T: DeserializeOwned>(shape: &Shape, mut doc: Document) -> Result<T, CodecError> {
    let id = doc
        .get("_id")
        .map_or_else(|| "without _id".to_owned(), |id| id.to_string());
    for (field, missing) in shape.added {
        if !doc.contains_key(field) {
            doc.insert(*field, missing.value(&doc));
        }
    }
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
            Bson::Int32(n) if shape.flags.contains(&key.as_str()) => Bson::Boolean(n != 0),
            Bson::Int64(n) if shape.flags.contains(&key.as_str()) => Bson::Boolean(n != 0),
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

/// A stored time: a date, or text as [`time_from_text`] reads it.
pub(crate) fn stored_time(value: Option<&Bson>) -> Option<DateTime<Utc>> {
    match value? {
        Bson::DateTime(t) => Some(t.to_chrono()),
        Bson::String(text) => time_from_text(text),
        _ => None,
    }
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

// ---------------------------------------------------------------------------------
// Clusters: the store's own fields, and the updates that change them

/// The cluster's place on its host, `0..`: a unique index on `(host_id, slot)` keeps
/// a host within its capacity (see [`MongoStore`](crate::MongoStore)).
pub(crate) const SLOT: &str = "slot";
/// The user an applied, single-claimed cluster is held by; absent on every other
/// cluster. Its unique index lets a user hold one such cluster at most.
pub(crate) const SINGLE_HOLDER: &str = "single_holder";
/// The closed lease record of the cluster's last release, for the lease repair.
pub(crate) const LAST_RELEASE: &str = "last_release";
/// The user's quota slot an applied cluster holds, `user#k` with `k` below the
/// user quota; absent when not applied, or claimed without a user quota. Its unique
/// index keeps a user within the quota (see [`MongoStore`](crate::MongoStore)).
pub(crate) const USER_SLOT: &str = "quota_user";
/// The blueprint's quota slot an applied cluster holds, `blueprint#k` with `k` below
/// its `max_applied`; absent when not applied, or claimed without a quota.
pub(crate) const BLUEPRINT_SLOT: &str = "quota_blueprint";

/// The quota slot `k` of `owner` (a user or a blueprint). The key always ends in
/// `#k`, so no two owners share one.
pub(crate) fn quota_slot(owner: &str, k: u32) -> String {
    format!("{owner}#{k}")
}

/// The fields [`Cluster::claim`] changes, the version aside.
const CLAIMED: &[&str] = &[
    "status",
    "user_id",
    "applied_at",
    "expires_at",
    "metadata",
    "lease_id",
    "single_apply",
    "stopped_nodes",
    "updated_at",
];

/// A version as BSON stores it.
pub(crate) fn version(v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::invalid("version", format!("{v} is too large")))
}

/// The document of a new cluster at `slot` on its host.
pub(crate) fn new_cluster(cluster: &Cluster, slot: i64) -> Result<Document, CodecError> {
    let mut doc = encode(&CLUSTER, cluster)?;
    doc.insert(SLOT, slot);
    if let Some(user) = single_holder(cluster) {
        doc.insert(SINGLE_HOLDER, user);
    }
    Ok(doc)
}

/// The update that writes `cluster` over the stored one; its slot stays.
pub(crate) fn cluster_update(cluster: &Cluster) -> Result<Document, CodecError> {
    let mut fields = encode(&CLUSTER, cluster)?;
    fields.remove("_id");
    Ok(with_single_holder(doc! {"$set": fields}, cluster))
}

/// The update a claim makes: what [`Cluster::claim`] changes, the version bumped.
pub(crate) fn claim_update(claim: &Claim) -> Result<Document, CodecError> {
    let mut claimed = Cluster::new("", "", "");
    claimed.claim(claim);
    let mut fields = encode(&CLUSTER, &claimed)?;
    let set: Document = CLAIMED
        .iter()
        .filter_map(|field| Some((field.to_string(), fields.remove(field)?)))
        .collect();
    Ok(with_single_holder(
        doc! {"$set": set, "$inc": {"version": 1_i64}},
        &claimed,
    ))
}

/// The holder [`SINGLE_HOLDER`] names for `cluster`, if any.
fn single_holder(cluster: &Cluster) -> Option<&str> {
    if cluster.is_applied() && cluster.single_apply {
        cluster.user_id.as_deref()
    } else {
        None
    }
}

/// `update` (with a `$set`) also setting or removing [`SINGLE_HOLDER`].
fn with_single_holder(mut update: Document, cluster: &Cluster) -> Document {
    match single_holder(cluster) {
        Some(user) => {
            if let Ok(set) = update.get_document_mut("$set") {
                set.insert(SINGLE_HOLDER, user);
            }
        }
        None => {
            let mut unset = doc! {SINGLE_HOLDER: ""};
            if !cluster.is_applied() {
                // Released or never applied: it holds no quota slot.
                unset.insert(USER_SLOT, "");
                unset.insert(BLUEPRINT_SLOT, "");
            }
            update.insert("$unset", unset);
        }
    }
    update
}

/// A claim's update, also taking the quota slots given.
pub(crate) fn claim_update_in_slots(
    claim: &Claim,
    user_slot: Option<&str>,
    blueprint_slot: Option<&str>,
) -> Result<Document, CodecError> {
    let mut update = claim_update(claim)?;
    if let Ok(set) = update.get_document_mut("$set") {
        for (field, slot) in [(USER_SLOT, user_slot), (BLUEPRINT_SLOT, blueprint_slot)] {
            if let Some(slot) = slot {
                set.insert(field, slot);
            }
        }
    }
    Ok(update)
}

/// The open lease record of an applied cluster, made from the lease fields it
/// carries, as its claim made it; `None` when it lacks them.
pub(crate) fn open_lease_of(cluster: &Cluster) -> Option<LeaseRecord> {
    let claim = Claim {
        user_id: cluster.user_id.clone()?,
        blueprints: vec![cluster.blueprint.clone()],
        hosts: vec![cluster.host_id.clone()],
        metadata: cluster.metadata.clone(),
        lease_id: cluster.lease_id.clone()?,
        now: cluster.applied_at?,
        expires_at: cluster.expires_at,
        allow_multiple: !cluster.single_apply,
        max_held: None,
        blueprint_quotas: Default::default(),
    };
    Some(LeaseRecord::opened(cluster, &claim))
}

// ---------------------------------------------------------------------------------
// Queries

/// The clusters a claim may take: ready, healthy, of a wanted blueprint, on a wanted host.
pub(crate) fn claimable(claim: &Claim) -> Document {
    claimable_of(claim, &claim.blueprints)
}

/// The clusters a claim may take of `blueprints`: ready, healthy, on a wanted host.
pub(crate) fn claimable_of(claim: &Claim, blueprints: &[String]) -> Document {
    doc! {
        "status": ClusterStatus::Ready.as_str(),
        "health": Health::Ok.as_str(),
        "blueprint": {"$in": blueprints},
        "host_id": {"$in": &claim.hosts},
    }
}

/// The applied clusters of a blueprint, for its quota.
pub(crate) fn applied_of(blueprint: &str) -> Document {
    doc! {"blueprint": blueprint, "status": ClusterStatus::Applied.as_str()}
}

/// The clusters that decide a single claim before it takes one: every cluster the
/// user holds (a user holds few), among which the caller looks for one of a wanted
/// blueprint and the single-claimed one. Two equalities, which the `clusters_user`
/// index answers on every server: nx-27017 (the test server) scans the collection
/// for a filter with an `$or`, which made each apply slower as more were applied.
pub(crate) fn holdings(claim: &Claim) -> Document {
    doc! {"user_id": &claim.user_id, "status": ClusterStatus::Applied.as_str()}
}

/// The query of a cluster listing.
pub(crate) fn cluster_filter(filter: &ClusterFilter) -> Document {
    let mut query = Document::new();
    if let Some(status) = filter.status {
        query.insert("status", status.as_str());
    }
    if let Some(host_id) = &filter.host_id {
        query.insert("host_id", host_id);
    }
    if let Some(user_id) = &filter.user_id {
        query.insert("user_id", user_id);
    }
    if let Some(blueprints) = &filter.blueprints {
        query.insert("blueprint", doc! {"$in": blueprints});
    }
    if let Some(health) = filter.health {
        query.insert("health", health.as_str());
    }
    query
}

/// The sort of a cluster listing, as [`ClusterSort::compare`] orders them: strings
/// compare as bytes, dates as dates, and a null or missing field first.
pub(crate) fn cluster_sort(sort: ClusterSort) -> Document {
    let field = match sort.key {
        ClusterSortKey::Name => None,
        ClusterSortKey::Blueprint => Some("blueprint"),
        ClusterSortKey::Host => Some("host_id"),
        ClusterSortKey::Status => Some("status"),
        ClusterSortKey::Health => Some("health"),
        ClusterSortKey::User => Some("user_id"),
        ClusterSortKey::AppliedAt => Some("applied_at"),
        ClusterSortKey::ExpiresAt => Some("expires_at"),
        ClusterSortKey::CreatedAt => Some("created_at"),
    };
    let dir = if sort.descending { -1 } else { 1 };
    field
        .into_iter()
        .chain(["name", "_id"])
        .map(|f| (f.to_owned(), Bson::Int32(dir)))
        .collect()
}

/// The query of an operation listing.
pub(crate) fn operation_filter(filter: &OperationFilter) -> Document {
    let mut query = Document::new();
    if let Some(host_id) = &filter.host_id {
        query.insert("host_id", host_id);
    }
    if let Some(kind) = filter.kind {
        query.insert("kind", kind.as_str());
    }
    if let Some(status) = filter.status {
        query.insert("status", status.as_str());
    }
    query
}

/// The leases applied or released at `since` or later.
pub(crate) fn active_since(since: DateTime<Utc>) -> Document {
    doc! {"$or": [{"applied_at": {"$gte": date(since)}}, {"released_at": {"$gte": date(since)}}]}
}

/// A count an aggregation answered: a whole number of either width.
pub(crate) fn whole_number(value: Option<&Bson>) -> Option<u64> {
    match value {
        Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
        Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
    use poolcore::model::new_id;
    use poolcore::{Blueprint, Cluster, Host, Operation};

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
    fn flags_stored_as_numbers_are_read() {
        let mut cluster = encode(&CLUSTER, &ready_cluster("bp", "h")).expect("encode");
        cluster.insert("single_apply", 1_i32);
        let cluster: Cluster = decode(&CLUSTER, cluster).expect("decode");
        assert!(cluster.single_apply);
        let mut host = encode(&HOST, &sample_host()).expect("encode");
        host.insert("schedulable", 0_i64);
        let host: Host = decode(&HOST, host).expect("decode");
        assert!(!host.schedulable);
    }

    #[test]
    fn unknown_escapes_are_kept() {
        let value = unescape_keys(Bson::Document(doc! {"50%": 1, "%zz": 2, "%2": 3}));
        let Bson::Document(doc) = value else {
            panic!("a document")
        };
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["50%", "%zz", "%2"]);
    }

    /// `doc` after the server applied `update` (`$set`, `$unset`, `$inc` of whole
    /// numbers at the top level, as the store's updates use them).
    fn apply(mut doc: Document, update: &Document) -> Document {
        for (op, fields) in update {
            let Bson::Document(fields) = fields else {
                panic!("{op} takes a document")
            };
            for (field, value) in fields {
                match op.as_str() {
                    "$set" => drop(doc.insert(field, value.clone())),
                    "$unset" => drop(doc.remove(field)),
                    "$inc" => {
                        let n = doc.get_i64(field).expect("a whole number") + value.as_i64().expect("i64");
                        doc.insert(field, n);
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }
        doc
    }

    fn a_claim(allow_multiple: bool) -> Claim {
        Claim {
            max_held: None,
            blueprint_quotas: Default::default(),
            user_id: "alice".into(),
            blueprints: vec!["bp".into()],
            hosts: vec!["h".into()],
            metadata: BTreeMap::from([("ticket.id".into(), "42".into())]),
            lease_id: new_id(),
            now: millis(Utc::now()),
            expires_at: Some(millis(Utc::now())),
            allow_multiple,
        }
    }

    #[test]
    fn the_claim_update_changes_what_the_model_claim_changes() {
        let mut ready = ready_cluster("bp", "h");
        ready.created_at = millis(ready.created_at);
        ready.stopped_nodes.insert("vp0".into());
        for allow_multiple in [true, false] {
            let claim = a_claim(allow_multiple);
            let update = claim_update(&claim).expect("update");
            let stored = new_cluster(&ready, 3).expect("document");
            let written = apply(stored, &update);
            let mut expected = ready.clone();
            expected.claim(&claim);
            let got: Cluster = decode(&CLUSTER, written.clone()).expect("decode");
            assert_eq!(got, expected);
            assert_eq!(written.get_i64(SLOT).ok(), Some(3), "the slot stays");
            let holder = written.get_str(SINGLE_HOLDER).ok();
            assert_eq!(holder, (!allow_multiple).then_some("alice"));
        }
    }

    #[test]
    fn only_applied_single_clusters_name_their_holder() {
        let mut cluster = ready_cluster("bp", "h");
        assert!(new_cluster(&cluster, 0)
            .expect("doc")
            .get(SINGLE_HOLDER)
            .is_none());
        cluster.claim(&a_claim(false));
        let doc = new_cluster(&cluster, 0).expect("doc");
        assert_eq!(doc.get_str(SINGLE_HOLDER).ok(), Some("alice"));
        assert_eq!(
            cluster_update(&cluster)
                .expect("update")
                .get_document("$set")
                .expect("$set")
                .get_str(SINGLE_HOLDER)
                .ok(),
            Some("alice")
        );
        cluster.release(Utc::now());
        let update = cluster_update(&cluster).expect("update");
        assert_eq!(
            update.get_document("$unset").ok(),
            Some(&doc! {SINGLE_HOLDER: "", USER_SLOT: "", BLUEPRINT_SLOT: ""}),
            "a released cluster gives up its hold and its quota slots"
        );
        assert!(update.get_document("$set").expect("$set").get("_id").is_none());
    }

    #[test]
    fn a_claim_under_quotas_takes_its_slots_and_keeps_them_while_applied() {
        let claim = a_claim(true);
        let update = claim_update_in_slots(&claim, Some("alice#0"), Some("bp#2")).expect("update");
        let set = update.get_document("$set").expect("$set");
        assert_eq!(set.get_str(USER_SLOT).ok(), Some("alice#0"));
        assert_eq!(set.get_str(BLUEPRINT_SLOT).ok(), Some("bp#2"));
        let mut cluster = ready_cluster("bp", "h");
        cluster.claim(&claim);
        let unset = cluster_update(&cluster).expect("update");
        assert_eq!(
            unset.get_document("$unset").ok(),
            Some(&doc! {SINGLE_HOLDER: ""}),
            "an applied cluster's write leaves its slots"
        );
        assert_ne!(
            quota_slot("a#1", 0),
            quota_slot("a", 10),
            "owners never share a slot"
        );
    }

    #[test]
    fn a_lease_is_rebuilt_from_its_claimed_cluster() {
        let mut cluster = ready_cluster("bp", "h");
        assert!(open_lease_of(&cluster).is_none(), "a free cluster has no lease");
        let claim = a_claim(true);
        cluster.claim(&claim);
        assert_eq!(
            open_lease_of(&cluster),
            Some(LeaseRecord::opened(&cluster, &claim))
        );
    }

    #[test]
    fn documents_of_an_earlier_version_read_with_defaults() {
        let mut host = encode(&HOST, &sample_host()).expect("encode");
        host.remove("version");
        host.remove("tls");
        let host: Host = decode(&HOST, host).expect("decode");
        assert_eq!((host.version, host.tls), (0, None));

        let mut cluster = encode(&CLUSTER, &ready_cluster("bp", "h")).expect("encode");
        cluster.remove("single_apply");
        cluster.remove("stopped_nodes");
        let cluster: Cluster = decode(&CLUSTER, cluster).expect("decode");
        assert!(!cluster.single_apply && cluster.stopped_nodes.is_empty());

        let op = doc! {"_id": "op", "kind": "fill", "host_id": "h", "status": "running", "done": 0_i64,
        "total": 1_i64, "error": null, "created_at": date(Utc::now()), "finished_at": null};
        let op: Operation = decode(&OPERATION, op).expect("decode");
        assert_eq!(op.updated_at, op.created_at, "updated_at reads as created_at");
    }

    #[test]
    fn filters_become_queries() {
        assert_eq!(cluster_filter(&ClusterFilter::default()), doc! {});
        let filter = ClusterFilter {
            status: Some(ClusterStatus::Ready),
            host_id: Some("h".into()),
            user_id: Some("u".into()),
            blueprints: Some(vec!["a".into(), "b".into()]),
            health: Some(Health::Failing),
            sort: ClusterSort::default(),
        };
        assert_eq!(
            cluster_filter(&filter),
            doc! {"status": "ready", "host_id": "h", "user_id": "u", "blueprint": {"$in": ["a", "b"]},
            "health": "failing"}
        );
        assert_eq!(cluster_sort(ClusterSort::default()), doc! {"name": 1, "_id": 1});
        assert_eq!(
            cluster_sort(ClusterSort::by(ClusterSortKey::AppliedAt).descending()),
            doc! {"applied_at": -1, "name": -1, "_id": -1}
        );
        let filter = OperationFilter {
            host_id: Some("h".into()),
            kind: Some(poolcore::OperationKind::Fill),
            status: Some(poolcore::OperationStatus::Interrupted),
        };
        assert_eq!(
            operation_filter(&filter),
            doc! {"host_id": "h", "kind": "fill", "status": "interrupted"}
        );
    }

    #[test]
    fn versions_beyond_i64_are_refused() {
        assert_eq!(version(7).ok(), Some(7));
        assert!(version(u64::MAX).is_err());
    }
}
