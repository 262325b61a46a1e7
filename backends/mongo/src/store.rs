//! [`MongoStore`]: the [`Store`] on MongoDB, its connection and its queries.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, ReturnDocument};
use mongodb::{Client, Collection, Database};
use poolcore::{
    Blueprint, Claim, Cluster, ClusterFilter, ClusterStatus, Error, Health, Host, LeaseRecord, Listing,
    Operation, Page, Result, Store,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn, Instrument};

use crate::config::MongoConfig;
use crate::documents::{self, date, decode, encode, opt_date, CodecError, Shape};
use crate::schema;

/// MongoDB's error code for a write that breaks a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "this server cannot serve now" (failover, shutdown,
/// network): worth retrying later.
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// How often a release re-reads a cluster that changed between its read and its write.
const RELEASE_TRIES: usize = 16;

/// The extra cluster field holding the lease record its last release closed.
const LAST_RELEASE: &str = "last_release";

/// A [`Store`] in one MongoDB database, shared by any number of PoolManager servers.
///
/// Open it with [`MongoStore::from_url`] or [`MongoStore::with_config`]; both check
/// that the server answers, create the indexes and repair the lease records.
/// Timestamps are kept as BSON dates, to the millisecond.
///
/// # Atomicity without transactions
///
/// Every change of a cluster is one single-document write whose filter carries the
/// condition: the claim is one `findOneAndUpdate` on the ready-cluster filter, and
/// every other change filters on `{_id, version}` (compare-and-set). MongoDB applies
/// a single-document write atomically, so concurrent writers, in one process or
/// many, never overwrite each other. No multi-document transaction is used.
///
/// # Leases: two writes, and why none is lost
///
/// A claim writes the cluster first and the lease record second; a release writes
/// the cluster first and closes the lease second. A crash between the two writes
/// must not lose or duplicate a lease, so:
///
/// - the claimed cluster carries every field of its lease (lease id, user,
///   metadata, applied_at): the lease record can always be rebuilt from it;
/// - the released cluster keeps the closed lease record in an extra field,
///   `last_release`, written by the same write that releases it;
/// - the lease record's `_id` is the lease id, so writing it twice is harmless;
/// - [`MongoStore::repair_leases`], run whenever a store connects, writes the lease
///   records a crash left missing or open.
///
/// A claim whose lease write fails hands the cluster back (conditional on the
/// version it wrote) before it reports the error. A release whose lease write fails
/// still succeeds: the cluster is released, and its `last_release` closes the lease
/// at the next repair.
pub struct MongoStore {
    config: MongoConfig,
    db: Database,
    hosts: Collection<Document>,
    blueprints: Collection<Document>,
    clusters: Collection<Document>,
    leases: Collection<Document>,
    operations: Collection<Document>,
    locks: Collection<Document>,
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("url", &self.config.redacted_url())
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

/// What [`MongoStore::repair_leases`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseRepair {
    /// Lease records written anew, open or closed, for applies whose record was missing.
    pub written: u64,
    /// Open lease records closed, for clusters no longer applied under them.
    pub closed: u64,
}

impl MongoStore {
    /// Connects to the database a connection string names; see [`MongoConfig`] for
    /// the forms (`mongodb://host:27017/poolmanager?replicaSet=rs0`, ...).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not a MongoDB one, else as
    /// [`MongoStore::with_config`].
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::with_config(MongoConfig::from_url(url)?).await
    }

    /// Connects to the database `config` describes, checks that it answers, creates
    /// the missing indexes and repairs the lease records.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad config; [`Error::Unavailable`] when no server
    /// answers within the driver's server selection timeout (30 s unless the URL sets
    /// `serverSelectionTimeoutMS`); [`Error::Backend`] when the server refuses.
    pub async fn with_config(config: MongoConfig) -> Result<Self> {
        config.validate()?;
        let mut options = ClientOptions::parse(&config.url).await.map_err(|e| {
            if matches!(*e.kind, ErrorKind::InvalidArgument { .. }) {
                Error::invalid("mongodb url", format!("{}: {e}", config.redacted_url()))
            } else {
                MongoError::from(e).into_error("read the connection string")
            }
        })?;
        options.app_name.get_or_insert_with(|| "poolmanager".to_owned());
        let client = Client::with_options(options).map_err(|e| MongoError::from(e).into_error("connect"))?;
        let db = client.database(&config.database_name());
        let collection = |name| db.collection::<Document>(name);
        let store = MongoStore {
            hosts: collection(schema::HOSTS),
            blueprints: collection(schema::BLUEPRINTS),
            clusters: collection(schema::CLUSTERS),
            leases: collection(schema::LEASES),
            operations: collection(schema::OPERATIONS),
            locks: collection(schema::LOCKS),
            db,
            config,
        };
        run("connect", async {
            store.db.run_command(doc! {"ping": 1}).await?;
            Ok(schema::create_indexes(&store.db).await?)
        })
        .await?;
        let repaired = store.repair_leases().await?;
        info!(
            url = %store.config.redacted_url(),
            database = store.db.name(),
            leases_written = repaired.written,
            leases_closed = repaired.closed,
            "opened mongodb store"
        );
        Ok(store)
    }

    /// The config the store was opened with.
    pub fn config(&self) -> &MongoConfig {
        &self.config
    }

    /// The database handle, for what the [`Store`] trait does not cover (backups,
    /// dropping a test database).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Writes the lease records that a crash between a claim's or a release's two
    /// writes left missing or open:
    ///
    /// - an applied cluster whose lease record is missing gets it, open;
    /// - a released cluster whose last lease record is missing or still open gets it
    ///   closed at the time of the release;
    /// - an open lease record whose cluster is gone, or no longer applied under that
    ///   lease, is closed now.
    ///
    /// Runs whenever a store connects; safe to run at any time, from any number of
    /// servers at once: every write is idempotent.
    ///
    /// # Errors
    /// As any store operation: [`Error::Unavailable`] or [`Error::Backend`].
    pub async fn repair_leases(&self) -> Result<LeaseRepair> {
        run("repair leases", async {
            let mut repair = LeaseRepair {
                written: self.write_missing_open_leases().await?,
                ..LeaseRepair::default()
            };
            let (written, closed) = self.write_released_leases().await?;
            repair.written += written;
            repair.closed += closed + self.close_orphaned_leases(Utc::now()).await?;
            Ok(repair)
        })
        .await
    }

    async fn write_missing_open_leases(&self) -> Result<u64, MongoError> {
        let applied = doc! {"status": ClusterStatus::Applied.as_str(), "lease_id": {"$ne": Bson::Null}};
        let clusters: Vec<Cluster> = find_all(&self.clusters, &documents::CLUSTER, applied, None).await?;
        let leases: Vec<LeaseRecord> = clusters.iter().filter_map(open_lease_of).collect();
        let existing = self.existing_leases(leases.iter().map(|l| l.id.as_str())).await?;
        let mut written = 0;
        for lease in leases.iter().filter(|l| !existing.contains(&l.id)) {
            written += u64::from(self.insert_lease(lease).await?);
        }
        Ok(written)
    }

    /// Returns (lease records written, lease records closed).
    async fn write_released_leases(&self) -> Result<(u64, u64), MongoError> {
        let released = self
            .clusters
            .find(doc! {LAST_RELEASE: {"$type": "object"}})
            .projection(doc! {LAST_RELEASE: 1})
            .await?
            .try_collect::<Vec<Document>>()
            .await?;
        let closed_leases = released
            .into_iter()
            .filter_map(|mut doc| match doc.remove(LAST_RELEASE) {
                Some(Bson::Document(lease)) => Some(decode::<LeaseRecord>(&documents::LEASE, lease)),
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<&str> = closed_leases.iter().map(|l| l.id.as_str()).collect();
        let open: HashSet<String> = self
            .leases
            .find(doc! {"_id": {"$in": &ids}, "released_at": Bson::Null})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect::<Vec<Document>>()
            .await?
            .into_iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect();
        let existing = self.existing_leases(ids.iter().copied()).await?;
        let (mut written, mut closed) = (0, 0);
        for lease in &closed_leases {
            if !existing.contains(&lease.id) {
                written += u64::from(self.insert_lease(lease).await?);
            } else if open.contains(&lease.id) {
                let released_at = lease.released_at.unwrap_or_else(Utc::now);
                closed += self.close_if_open(&lease.id, released_at).await?;
            }
        }
        Ok((written, closed))
    }

    async fn close_orphaned_leases(&self, now: DateTime<Utc>) -> Result<u64, MongoError> {
        // Read the leases before their clusters: a claim writes its cluster before
        // its lease, so a cluster read afterwards is at least as new as the claim.
        let open: Vec<LeaseRecord> = find_all(
            &self.leases,
            &documents::LEASE,
            doc! {"released_at": Bson::Null},
            None,
        )
        .await?;
        let cluster_ids: Vec<&str> = open
            .iter()
            .map(|l| l.cluster_id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let clusters: Vec<Cluster> = find_all(
            &self.clusters,
            &documents::CLUSTER,
            doc! {"_id": {"$in": cluster_ids}},
            None,
        )
        .await?;
        let held: HashMap<&str, Option<&str>> = clusters
            .iter()
            .filter(|c| c.is_applied())
            .map(|c| (c.id.as_str(), c.lease_id.as_deref()))
            .collect();
        let mut closed = 0;
        for lease in &open {
            if held.get(lease.cluster_id.as_str()) != Some(&Some(lease.id.as_str())) {
                closed += self.close_if_open(&lease.id, now).await?;
            }
        }
        Ok(closed)
    }

    /// The ids among `ids` that have a lease record.
    async fn existing_leases<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashSet<String>, MongoError> {
        let ids: Vec<&str> = ids.collect();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let found = self
            .leases
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect::<Vec<Document>>()
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect())
    }

    /// Writes `lease` unless a record with its id exists; returns whether it wrote.
    async fn insert_lease(&self, lease: &LeaseRecord) -> Result<bool, MongoError> {
        match self.leases.insert_one(encode(&documents::LEASE, lease)?).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets `released_at` of an open lease record; returns how many it closed.
    async fn close_if_open(&self, id: &str, released_at: DateTime<Utc>) -> Result<u64, MongoError> {
        let closed = self
            .leases
            .update_one(
                doc! {"_id": id, "released_at": Bson::Null},
                doc! {"$set": {"released_at": date(released_at)}},
            )
            .await?;
        Ok(closed.modified_count)
    }

    /// Writes the closed `lease`: closes its record, or writes it whole if missing.
    async fn close_lease(&self, lease: &LeaseRecord) -> Result<(), MongoError> {
        let mut on_insert = encode(&documents::LEASE, lease)?;
        on_insert.remove("_id");
        let released_at = on_insert.remove("released_at").unwrap_or(Bson::Null);
        let update = doc! {"$set": {"released_at": released_at}, "$setOnInsert": on_insert};
        let filter = doc! {"_id": &lease.id};
        match self
            .leases
            .update_one(filter.clone(), update.clone())
            .upsert(true)
            .await
        {
            Ok(_) => Ok(()),
            // Another writer inserted it between the upsert's look and its insert.
            Err(e) if is_duplicate_key(&e) => Ok(self.leases.update_one(filter, update).await.map(drop)?),
            Err(e) => Err(e.into()),
        }
    }

    /// Hands a claimed cluster back after its lease could not be written, if nobody
    /// changed it since.
    async fn undo_claim(&self, claimed: &Cluster) {
        let undo = async {
            let filter = doc! {"_id": &claimed.id, "version": version(claimed.version)?};
            let update = doc! {
                "$set": {
                    "status": ClusterStatus::Ready.as_str(),
                    "user_id": Bson::Null,
                    "applied_at": Bson::Null,
                    "expires_at": Bson::Null,
                    "metadata": {},
                    "lease_id": Bson::Null,
                    "updated_at": date(Utc::now()),
                },
                "$inc": {"version": 1_i64},
            };
            Ok::<_, MongoError>(self.clusters.update_one(filter, update).await?.modified_count)
        };
        match undo.await {
            Ok(1) => warn!(cluster_id = %claimed.id, "lease not written; the claim was undone"),
            Ok(_) => warn!(cluster_id = %claimed.id, "lease not written; the cluster changed meanwhile"),
            Err(e) => warn!(
                cluster_id = %claimed.id,
                error = %e,
                "lease not written and the claim not undone; the lease repair writes it"
            ),
        }
    }

    async fn stored_version(&self, id: &str) -> Result<Option<u64>, MongoError> {
        let found = self
            .clusters
            .find_one(doc! {"_id": id})
            .projection(doc! {"version": 1})
            .await?;
        found
            .map(|doc| {
                doc.get("version")
                    .and_then(|v| match v {
                        Bson::Int64(n) => u64::try_from(*n).ok(),
                        Bson::Int32(n) => u64::try_from(*n).ok(),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        MongoError::from(CodecError::Decode {
                            kind: "cluster",
                            id: id.to_owned(),
                            reason: format!("version {:?} is not a whole number", doc.get("version")),
                        })
                    })
            })
            .transpose()
    }

    /// Adds `record`; a taken `_id` or unique name is a conflict naming `name`.
    async fn insert<T: Serialize>(
        &self,
        collection: &Collection<Document>,
        shape: &Shape,
        record: &T,
        name: &str,
    ) -> Result<(), MongoError> {
        let doc = encode(shape, record)?;
        collection
            .insert_one(doc)
            .await
            .map_err(|e| conflict_on_duplicate(e, || format!("{} {name:?} exists", shape.kind)))?;
        Ok(())
    }

    /// Removes the document with `id`; returns whether it existed.
    async fn delete(&self, collection: &Collection<Document>, id: &str) -> Result<bool, MongoError> {
        Ok(collection.delete_one(doc! {"_id": id}).await?.deleted_count > 0)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        collection: &Collection<Document>,
        shape: &Shape,
        id: &str,
    ) -> Result<Option<T>, MongoError> {
        let found = collection.find_one(doc! {"_id": id}).await?;
        Ok(found.map(|doc| decode(shape, doc)).transpose()?)
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// What can go wrong inside the store; becomes an [`Error`] with the operation's name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MongoError {
    /// The driver or the server failed.
    #[error(transparent)]
    Driver(#[from] mongodb::error::Error),
    /// A record could not be written as a document, or a document read as a record.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A pool error decided by the store (conflict, not found).
    #[error(transparent)]
    Pool(#[from] Error),
}

/// A failed operation, for [`Error::Backend`]'s source.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
struct Failed {
    op: &'static str,
    cause: MongoError,
}

impl MongoError {
    /// The pool error for this failure of `op`: duplicate keys are conflicts, an
    /// unreachable or failing-over server is unavailable (retrying may work), the
    /// rest is a backend failure.
    fn into_error(self, op: &'static str) -> Error {
        match self {
            MongoError::Pool(e) => e,
            MongoError::Driver(ref e) if is_duplicate_key(e) => Error::conflict(format!("{op}: {e}")),
            MongoError::Driver(ref e) if is_unavailable(e) => {
                Error::unavailable("mongodb server", format!("{op}: {e}"))
            }
            cause => Error::backend("mongodb", Failed { op, cause }),
        }
    }
}

fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(DUPLICATE_KEY)
}

fn is_unavailable(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    ) || server_code(e).is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
}

/// `e`, or [`Error::Conflict`] with `message` when `e` is a duplicate key.
fn conflict_on_duplicate(e: mongodb::error::Error, message: impl FnOnce() -> String) -> MongoError {
    if is_duplicate_key(&e) {
        MongoError::Pool(Error::conflict(message()))
    } else {
        MongoError::Driver(e)
    }
}

fn changed_meanwhile(id: &str, read: u64, stored: u64) -> MongoError {
    MongoError::Pool(Error::conflict(format!(
        "cluster {id} changed meanwhile (version {read} is now {stored})"
    )))
}

/// Runs the work of `op` in a span and turns its error into a pool error.
async fn run<T>(op: &'static str, work: impl Future<Output = Result<T, MongoError>>) -> Result<T> {
    work.instrument(tracing::debug_span!("mongodb", op))
        .await
        .map_err(|e| e.into_error(op))
}

// ---------------------------------------------------------------------------------
// Queries

/// A cluster version as BSON stores it.
fn version(v: u64) -> Result<i64, MongoError> {
    i64::try_from(v).map_err(|_| MongoError::Pool(Error::invalid("version", format!("{v} is too large"))))
}

/// The lease record `cluster` was claimed under, open; `None` when it lacks the
/// lease fields.
fn open_lease_of(cluster: &Cluster) -> Option<LeaseRecord> {
    Some(LeaseRecord {
        id: cluster.lease_id.clone()?,
        cluster_id: cluster.id.clone(),
        cluster_name: cluster.name.clone(),
        blueprint: cluster.blueprint.clone(),
        host_id: cluster.host_id.clone(),
        user_id: cluster.user_id.clone()?,
        metadata: cluster.metadata.clone(),
        applied_at: cluster.applied_at?,
        released_at: None,
    })
}

/// Every document of `collection` matching `filter`, as records, ordered by `sort`
/// if given.
async fn find_all<T: DeserializeOwned>(
    collection: &Collection<Document>,
    shape: &Shape,
    filter: Document,
    sort: Option<Document>,
) -> Result<Vec<T>, MongoError> {
    let mut find = collection.find(filter);
    if let Some(sort) = sort {
        find = find.sort(sort);
    }
    let docs: Vec<Document> = find.await?.try_collect().await?;
    Ok(decode_all(shape, docs)?)
}

fn decode_all<T: DeserializeOwned>(shape: &Shape, docs: Vec<Document>) -> Result<Vec<T>, CodecError> {
    docs.into_iter().map(|doc| decode(shape, doc)).collect()
}

/// One page of the documents matching `filter`, ordered by `sort`, and their total.
async fn list_page<T: DeserializeOwned>(
    collection: &Collection<Document>,
    shape: &Shape,
    filter: Document,
    sort: Document,
    page: Page,
) -> Result<Listing<T>, MongoError> {
    let count = count(collection, filter.clone());
    let items = async {
        // MongoDB reads a limit of 0 as "no limit".
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let mut find = collection.find(filter).sort(sort).skip(page.offset);
        if let Ok(limit) = i64::try_from(page.limit) {
            find = find.limit(limit);
        }
        let docs: Vec<Document> = find.await?.try_collect().await?;
        Ok::<_, MongoError>(docs)
    };
    let (total, docs) = tokio::try_join!(count, items)?;
    Ok(Listing {
        items: decode_all(shape, docs)?,
        total,
    })
}

/// How many documents of `collection` match `filter`.
///
/// A `$count` stage rather than the driver's `count_documents` (a `$group` summing
/// ones): MongoDB answers both alike from the `$match`'s index, and some compatible
/// servers (nx-27017, the test server) only the former quickly.
async fn count(collection: &Collection<Document>, filter: Document) -> Result<u64, MongoError> {
    let mut counted = collection
        .aggregate([doc! {"$match": filter}, doc! {"$count": "n"}])
        .await?;
    // No document at all when nothing matches.
    let Some(doc) = counted.try_next().await? else {
        return Ok(0);
    };
    match doc.get("n") {
        Some(Bson::Int32(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        Some(Bson::Int64(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => Err(MongoError::Pool(Error::backend(
            "mongodb",
            format!("$count answered {other:?}, not a whole number"),
        ))),
    }
}

fn cluster_filter(filter: &ClusterFilter) -> Document {
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
    query
}

// ---------------------------------------------------------------------------------
// The Store

#[async_trait]
impl Store for MongoStore {
    async fn insert_host(&self, host: &Host) -> Result<()> {
        run(
            "insert host",
            self.insert(&self.hosts, &documents::HOST, host, &host.name),
        )
        .await
    }

    async fn get_host(&self, id: &str) -> Result<Option<Host>> {
        run("get host", self.get(&self.hosts, &documents::HOST, id)).await
    }

    async fn list_hosts(&self) -> Result<Vec<Host>> {
        run(
            "list hosts",
            find_all(&self.hosts, &documents::HOST, doc! {}, Some(doc! {"name": 1})),
        )
        .await
    }

    async fn update_host(&self, host: &Host) -> Result<()> {
        run("update host", async {
            let doc = encode(&documents::HOST, host)?;
            let replaced = self
                .hosts
                .replace_one(doc! {"_id": &host.id}, doc)
                .await
                .map_err(|e| conflict_on_duplicate(e, || format!("host {:?} exists", host.name)))?;
            if replaced.matched_count == 0 {
                return Err(Error::not_found("host", &host.id).into());
            }
            Ok(())
        })
        .await
    }

    async fn delete_host(&self, id: &str) -> Result<bool> {
        run("delete host", self.delete(&self.hosts, id)).await
    }

    async fn insert_blueprint(&self, blueprint: &Blueprint) -> Result<()> {
        run(
            "insert blueprint",
            self.insert(
                &self.blueprints,
                &documents::BLUEPRINT,
                blueprint,
                &blueprint.name,
            ),
        )
        .await
    }

    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>> {
        run(
            "get blueprint",
            self.get(&self.blueprints, &documents::BLUEPRINT, name),
        )
        .await
    }

    async fn list_blueprints(&self) -> Result<Vec<Blueprint>> {
        run(
            "list blueprints",
            find_all(
                &self.blueprints,
                &documents::BLUEPRINT,
                doc! {},
                Some(doc! {"_id": 1}),
            ),
        )
        .await
    }

    async fn delete_blueprint(&self, name: &str) -> Result<bool> {
        run("delete blueprint", self.delete(&self.blueprints, name)).await
    }

    async fn insert_cluster(&self, cluster: &Cluster) -> Result<()> {
        run(
            "insert cluster",
            self.insert(&self.clusters, &documents::CLUSTER, cluster, &cluster.name),
        )
        .await
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        run("get cluster", self.get(&self.clusters, &documents::CLUSTER, id)).await
    }

    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        run(
            "list clusters",
            list_page(
                &self.clusters,
                &documents::CLUSTER,
                cluster_filter(filter),
                doc! {"name": 1, "_id": 1},
                page,
            ),
        )
        .await
    }

    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        run("update cluster", async {
            let next = Cluster {
                version: cluster.version + 1,
                updated_at: Utc::now(),
                ..cluster.clone()
            };
            let mut fields = encode(&documents::CLUSTER, &next)?;
            fields.remove("_id");
            let written = self
                .clusters
                .find_one_and_update(
                    doc! {"_id": &cluster.id, "version": version(cluster.version)?},
                    doc! {"$set": fields},
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| conflict_on_duplicate(e, || format!("cluster {:?} exists", cluster.name)))?;
            match written {
                Some(doc) => Ok(decode(&documents::CLUSTER, doc)?),
                None => match self.stored_version(&cluster.id).await? {
                    Some(stored) => Err(changed_meanwhile(&cluster.id, cluster.version, stored)),
                    None => Err(Error::not_found("cluster", &cluster.id).into()),
                },
            }
        })
        .await
    }

    async fn delete_cluster(&self, id: &str, version_read: u64) -> Result<bool> {
        run("delete cluster", async {
            let filter = doc! {"_id": id, "version": version(version_read)?};
            if self.clusters.delete_one(filter).await?.deleted_count > 0 {
                return Ok(true);
            }
            match self.stored_version(id).await? {
                None => Ok(false),
                Some(stored) => Err(changed_meanwhile(id, version_read, stored)),
            }
        })
        .await
    }

    async fn claim_cluster(&self, claim: &Claim) -> Result<Option<Cluster>> {
        run("claim cluster", async {
            let filter = doc! {
                "status": ClusterStatus::Ready.as_str(),
                "health": Health::Ok.as_str(),
                "blueprint": {"$in": &claim.blueprints},
                "host_id": {"$in": &claim.hosts},
            };
            let update = doc! {
                "$set": {
                    "status": ClusterStatus::Applied.as_str(),
                    "user_id": &claim.user_id,
                    "applied_at": date(claim.now),
                    "expires_at": opt_date(claim.expires_at),
                    "metadata": documents::field("cluster", &claim.metadata)?,
                    "lease_id": &claim.lease_id,
                    "updated_at": date(claim.now),
                },
                "$inc": {"version": 1_i64},
            };
            let Some(doc) = self
                .clusters
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After)
                .await?
            else {
                return Ok(None);
            };
            let claimed: Cluster = decode(&documents::CLUSTER, doc)?;
            // The lease is built from the stored cluster, as the lease repair builds it,
            // so that both write the same record.
            let lease = open_lease_of(&claimed).ok_or_else(|| {
                Error::backend(
                    "mongodb",
                    format!("claimed cluster {} lacks its lease fields", claimed.id),
                )
            })?;
            if let Err(e) = self.insert_lease(&lease).await {
                self.undo_claim(&claimed).await;
                return Err(e);
            }
            Ok(Some(claimed))
        })
        .await
    }

    async fn release_cluster(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Cluster>> {
        run("release cluster", async {
            for _ in 0..RELEASE_TRIES {
                let Some(applied) = self
                    .get::<Cluster>(&self.clusters, &documents::CLUSTER, id)
                    .await?
                    .filter(Cluster::is_applied)
                else {
                    return Ok(None);
                };
                let closed = open_lease_of(&applied).map(|lease| LeaseRecord {
                    released_at: Some(now),
                    ..lease
                });
                let mut released = applied.clone();
                // The model decides what a release changes, the version bump included.
                released.release(now);
                let mut fields = encode(&documents::CLUSTER, &released)?;
                fields.remove("_id");
                if let Some(lease) = &closed {
                    fields.insert(LAST_RELEASE, encode(&documents::LEASE, lease)?);
                }
                let filter = doc! {
                    "_id": id,
                    "version": version(applied.version)?,
                    "status": ClusterStatus::Applied.as_str(),
                };
                let written = self
                    .clusters
                    .find_one_and_update(filter, doc! {"$set": fields})
                    .return_document(ReturnDocument::After)
                    .await?;
                // None: it changed since it was read; read it again.
                if let Some(doc) = written {
                    if let Some(lease) = &closed {
                        // The cluster is released whatever happens to its lease record:
                        // `last_release` holds it for the lease repair.
                        if let Err(e) = self.close_lease(lease).await {
                            warn!(
                                cluster_id = %id,
                                lease_id = %lease.id,
                                error = %e,
                                "lease not closed; the lease repair closes it"
                            );
                        }
                    }
                    return Ok(Some(decode(&documents::CLUSTER, doc)?));
                }
            }
            Err(Error::conflict(format!(
                "cluster {id} changed {RELEASE_TRIES} times while being released; try again"
            ))
            .into())
        })
        .await
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
        run("get lease", self.get(&self.leases, &documents::LEASE, id)).await
    }

    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        let filter = match user_id {
            Some(user_id) => doc! {"user_id": user_id},
            None => doc! {},
        };
        run(
            "list leases",
            list_page(
                &self.leases,
                &documents::LEASE,
                filter,
                // The index gives this order; leases applied within one millisecond
                // keep the index's order among themselves.
                doc! {"applied_at": -1},
                page,
            ),
        )
        .await
    }

    async fn put_operation(&self, op: &Operation) -> Result<()> {
        run("put operation", async {
            let doc = encode(&documents::OPERATION, op)?;
            self.operations
                .replace_one(doc! {"_id": &op.id}, doc)
                .upsert(true)
                .await?;
            Ok(())
        })
        .await
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        run(
            "get operation",
            self.get(&self.operations, &documents::OPERATION, id),
        )
        .await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        run("acquire lock", async {
            // Matches only a lock this holder may take; when none matches, the upsert
            // inserts one, which the unique _id refuses if another holder has it. The
            // explicit $and is what MongoDB reads anyway; nx-27017 (the test server)
            // needs it to keep the _id condition.
            let takeable = doc! {"$or": [{"holder": holder}, {"until": {"$lt": date(now)}}]};
            let filter = doc! {"$and": [{"_id": name}, takeable]};
            let lock = doc! {"_id": name, "holder": holder, "until": date(until)};
            match self.locks.replace_one(filter, lock).upsert(true).await {
                Ok(taken) => Ok(taken.matched_count > 0 || taken.upserted_id.is_some()),
                Err(e) if is_duplicate_key(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn release_lock(&self, name: &str, holder: &str) -> Result<()> {
        run("release lock", async {
            self.locks
                .delete_one(doc! {"_id": name, "holder": holder})
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use poolcore::ClusterStatus;

    use super::*;

    #[test]
    fn cluster_filters_become_queries() {
        assert_eq!(cluster_filter(&ClusterFilter::default()), doc! {});
        let filter = ClusterFilter {
            status: Some(ClusterStatus::Ready),
            host_id: Some("h".into()),
            user_id: Some("u".into()),
            blueprints: Some(vec!["a".into(), "b".into()]),
        };
        assert_eq!(
            cluster_filter(&filter),
            doc! {"status": "ready", "host_id": "h", "user_id": "u", "blueprint": {"$in": ["a", "b"]}}
        );
    }

    #[test]
    fn versions_beyond_i64_are_refused() {
        assert_eq!(version(7).ok(), Some(7));
        assert!(version(u64::MAX).is_err());
    }

    #[test]
    fn a_lease_is_rebuilt_from_its_claimed_cluster() {
        let mut cluster = Cluster::new("c", "bp", "h");
        assert!(open_lease_of(&cluster).is_none(), "a free cluster has no lease");
        cluster.status = ClusterStatus::Applied;
        cluster.lease_id = Some("lease-1".into());
        cluster.user_id = Some("alice".into());
        cluster.applied_at = Some(Utc::now());
        cluster.metadata.insert("ticket".into(), "42".into());
        let lease = open_lease_of(&cluster).expect("a lease");
        assert_eq!(
            (
                lease.id.as_str(),
                lease.user_id.as_str(),
                lease.cluster_id.as_str()
            ),
            ("lease-1", "alice", cluster.id.as_str())
        );
        assert_eq!(lease.metadata, cluster.metadata);
        assert_eq!(Some(lease.applied_at), cluster.applied_at);
        assert!(lease.released_at.is_none());
    }
}
