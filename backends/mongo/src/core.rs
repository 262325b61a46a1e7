//! The client, the collections and their indexes, what a store does when it connects
//! (migrating documents of an earlier version, repairing lease records), and the
//! queries the [`Store`](poolcore::Store) implementation is made of.
//!
//! # Collections and indexes
//!
//! Every record is one document, its id in `_id`. Indexes are created when a store
//! connects; creating one that exists is a no-op, so several servers starting at
//! once need no coordination. Unique indexes make names unique (a write that would
//! break one fails with MongoDB's duplicate-key error, reported as a conflict), keep
//! hosts within their capacity (`clusters_slot`) and users to one single-claimed
//! cluster (`clusters_single`).
//!
//! # Migration of an earlier version's database
//!
//! Documents written before hosts had versions and clusters had slots read with
//! defaults (see [`documents`](crate::documents)). Two fields are written at connect,
//! because conditional writes and unique indexes need them stored: hosts without a
//! `version` get version 0, and clusters without a `slot` get the lowest free slots
//! of their hosts. Both steps only touch documents that lack the field, so they run
//! at every connect, from any number of servers at once, and do nothing once done.
//! An insert also moves a cluster it finds without a slot (written by a server of
//! the earlier version meanwhile) into a free one; servers of both versions should
//! still not share a database for long, since the earlier one does not keep hosts
//! within capacity.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use poolcore::{
    Claim, ClaimOutcome, Cluster, ClusterStatus, Error, LeaseRecord, Listing, Page, ReleaseReason, Result,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn};

use crate::config::MongoConfig;
use crate::documents::{
    self, cluster_update, decode, encode, new_cluster, open_lease_of, version, Shape, BLUEPRINT_SLOT,
    LAST_RELEASE, SLOT, USER_SLOT,
};
use crate::error::{conflict_on_duplicate, is_duplicate_key, run, MongoError};
use crate::summary::{add_events, events_of, LeaseEvent, LEASE_MINUTES};

/// Hosts, `_id` = host id.
const HOSTS: &str = "hosts";
/// Blueprints, `_id` = blueprint name.
const BLUEPRINTS: &str = "blueprints";
/// Clusters, `_id` = cluster id.
const CLUSTERS: &str = "clusters";
/// Lease records, `_id` = lease id.
const LEASES: &str = "leases";
/// Long-running operations, `_id` = operation id.
const OPERATIONS: &str = "operations";
/// Named locks, `_id` = lock name.
const LOCKS: &str = "locks";

/// How often an insert reads a host's slots again after others took the free ones,
/// and how often a release reads a cluster again that changed between its read and
/// its write.
pub(crate) const TRIES: usize = 32;

/// A [`Store`](poolcore::Store) in one MongoDB database, shared by any number of
/// PoolManager servers.
///
/// Open it with [`MongoStore::from_url`] or [`MongoStore::with_config`]; both check
/// that the server answers, create the indexes, migrate documents of an earlier
/// version and repair the lease records. Timestamps are kept as BSON dates, to the
/// millisecond.
///
/// # Atomicity without transactions
///
/// Every change is one single-document write whose filter carries the condition,
/// which MongoDB applies atomically; no multi-document transaction is used.
///
/// - A claim is one `findOneAndUpdate` on the ready-cluster filter. Every other change
///   of a host or a cluster filters on `{_id, version}` (compare-and-set).
/// - Capacity: each cluster document holds a `slot`, unique per host. An insert reads
///   the host's slots and inserts at the lowest free one below the capacity, trying
///   the next on a duplicate key; with none free the host is full. Slots at or above
///   the capacity (left by a lowered capacity) are moved into free ones below it
///   first, so that a host never holds more clusters than free slots allow. A
///   recycled cluster keeps its document and slot; a deleted one frees it.
/// - Single claims: an applied cluster of a claim without `allow_multiple` holds its
///   user in `single_holder`, under a unique index: of concurrent single claims by one
///   user, every write but the first fails (MongoDB answers a duplicate key,
///   nx-27017 no document); those claims then find the cluster the user holds.
/// - Quotas: an applied cluster claimed under a quota holds a quota slot, `owner#k`
///   with `k` below the limit, in `quota_user` (the user's) and `quota_blueprint`
///   (the blueprint's), each under a unique index, and gives them up on release. A
///   claim counts what the user (or the blueprint) holds, refuses at the limit, and
///   takes the lowest free slot with the cluster in one write; of concurrent claims
///   for one slot one wins and the others count again. So no more than the limit
///   are ever applied under it; clusters applied before a limit was set hold no
///   slot but are counted.
///
/// # Leases: two writes, and why none is lost
///
/// A claim writes the cluster first and the lease record second; a release writes
/// the cluster first and closes the lease second. A crash between the two writes
/// must not lose or duplicate a lease, so:
///
/// - the claimed cluster carries every field of its lease (lease id, user,
///   metadata, applied_at): the lease record can always be rebuilt from it;
/// - the released cluster keeps the closed lease record, with its release reason, in
///   an extra field, `last_release`, written by the same write that releases it;
/// - the lease record's `_id` is the lease id, so writing it twice is harmless;
/// - [`MongoStore::repair_leases`], run whenever a store connects, writes the lease
///   records a crash left missing or open.
///
/// A claim does not wait for its lease record: the record is queued and written
/// behind the answer, many claims' records in one `insertMany` (see `LeaseQueue`),
/// so that a claim costs one round trip (two for a single claim, which first looks
/// for what the user holds). Reads of lease records through the same store write the
/// queue first, so a server always reads its own claims' leases; another server sees
/// them once the batch is written, a few milliseconds later. A record that is never
/// written (a crash, a failed batch) is rebuilt from the claimed cluster by the
/// repair. A release whose lease write fails still succeeds: the cluster is released,
/// and its `last_release` closes the lease at the next repair.
pub struct MongoStore {
    config: MongoConfig,
    db: Database,
    pub(crate) hosts: Collection<Document>,
    pub(crate) blueprints: Collection<Document>,
    pub(crate) clusters: Collection<Document>,
    pub(crate) leases: Collection<Document>,
    pub(crate) operations: Collection<Document>,
    pub(crate) locks: Collection<Document>,
    /// Applies and releases per minute (see `summary`).
    pub(crate) lease_minutes: Collection<Document>,
    /// Lease records of claims, not yet written.
    lease_queue: Arc<LeaseQueue>,
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
    /// the missing indexes, migrates documents of an earlier version and repairs the
    /// lease records.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad config; [`Error::Unavailable`] when no server
    /// answers within the driver's server selection timeout (30 s unless the URL sets
    /// `serverSelectionTimeoutMS`); [`Error::Backend`] when the server refuses.
    pub async fn with_config(config: MongoConfig) -> Result<Self> {
        Self::with_client_options(config, |_| {}).await
    }

    /// As [`MongoStore::with_config`], with the driver's options adjusted by `adjust`
    /// after they are read from the URL: to watch the commands the store sends
    /// (`command_event_handler`), or to set what the URL cannot say.
    ///
    /// # Errors
    /// As [`MongoStore::with_config`].
    pub async fn with_client_options(
        config: MongoConfig,
        adjust: impl FnOnce(&mut ClientOptions),
    ) -> Result<Self> {
        config.validate()?;
        let db = client(&config, adjust).await?.database(&config.database_name());
        let collection = |name| db.collection::<Document>(name);
        let store = MongoStore {
            hosts: collection(HOSTS),
            blueprints: collection(BLUEPRINTS),
            clusters: collection(CLUSTERS),
            leases: collection(LEASES),
            operations: collection(OPERATIONS),
            locks: collection(LOCKS),
            lease_minutes: collection(LEASE_MINUTES),
            lease_queue: Arc::default(),
            db,
            config,
        };
        let slotted = run("connect", async {
            store.db.run_command(doc! {"ping": 1}).await?;
            create_indexes(&store.db).await?;
            let slotted = store.migrate().await?;
            store.summarise_leases().await?;
            Ok(slotted)
        })
        .await?;
        let repaired = store.repair_leases().await?;
        info!(
            url = %store.config.redacted_url(),
            database = store.db.name(),
            clusters_slotted = slotted,
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

    /// The database handle, for what the [`Store`](poolcore::Store) trait does not
    /// cover (backups, dropping a test database).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Writes what an earlier version's documents lack and the indexes need (see the
    /// module docs); returns how many clusters got a slot.
    async fn migrate(&self) -> Result<u64, MongoError> {
        self.hosts
            .update_many(
                doc! {"version": {"$exists": false}},
                doc! {"$set": {"version": 0_i64}},
            )
            .await?;
        let unslotted = self
            .clusters
            .find(doc! {SLOT: {"$exists": false}})
            .projection(doc! {"host_id": 1})
            .await?
            .try_collect::<Vec<Document>>()
            .await?;
        let hosts: BTreeSet<&str> = unslotted
            .iter()
            .filter_map(|d| d.get_str("host_id").ok())
            .collect();
        for host_id in hosts {
            self.settled_slots(host_id, i64::MAX).await?;
        }
        Ok(unslotted.len() as u64)
    }
}

/// A client for `config`'s deployment.
async fn client(config: &MongoConfig, adjust: impl FnOnce(&mut ClientOptions)) -> Result<Client> {
    let mut options = ClientOptions::parse(&config.url).await.map_err(|e| {
        if matches!(*e.kind, ErrorKind::InvalidArgument { .. }) {
            Error::invalid("mongodb url", format!("{}: {e}", config.redacted_url()))
        } else {
            MongoError::from(e).into_error("read the connection string")
        }
    })?;
    options.app_name.get_or_insert_with(|| "poolmanager".to_owned());
    adjust(&mut options);
    Client::with_options(options).map_err(|e| MongoError::from(e).into_error("connect"))
}

// ---------------------------------------------------------------------------------
// Indexes

/// One index: collection, name, keys, unique or not, and the documents it covers
/// (all when `None`).
struct Index {
    collection: &'static str,
    name: &'static str,
    keys: Document,
    unique: bool,
    partial: Option<Document>,
}

fn index(collection: &'static str, name: &'static str, keys: Document) -> Index {
    Index {
        collection,
        name,
        keys,
        unique: false,
        partial: None,
    }
}

/// `index` unique, over the documents where `field` has `bson_type`. A partial
/// index rather than a sparse one: sparse would still index an explicit null.
/// (nx-27017 accepts the filter and ignores it; its indexes never hold a missing
/// field, which is the same here.)
fn unique(mut index: Index, field: &str, bson_type: &str) -> Index {
    index.unique = true;
    index.partial = Some(doc! {field: {"$type": bson_type}});
    index
}

fn indexes() -> Vec<Index> {
    let unique_name = |collection, name| Index {
        unique: true,
        ..index(collection, name, doc! {"name": 1})
    };
    vec![
        unique_name(HOSTS, "hosts_name"),
        unique_name(CLUSTERS, "clusters_name"),
        // The claim's filter: ready, healthy, of a wanted blueprint, on a wanted host.
        index(
            CLUSTERS,
            "clusters_claim",
            doc! {"status": 1, "health": 1, "blueprint": 1, "host_id": 1},
        ),
        index(CLUSTERS, "clusters_host", doc! {"host_id": 1, "name": 1}),
        index(CLUSTERS, "clusters_user", doc! {"user_id": 1, "status": 1}),
        unique(
            index(CLUSTERS, "clusters_slot", doc! {"host_id": 1, SLOT: 1}),
            SLOT,
            "number",
        ),
        unique(
            index(CLUSTERS, "clusters_single", doc! {documents::SINGLE_HOLDER: 1}),
            documents::SINGLE_HOLDER,
            "string",
        ),
        unique(
            index(CLUSTERS, "clusters_quota_user", doc! {documents::USER_SLOT: 1}),
            documents::USER_SLOT,
            "string",
        ),
        unique(
            index(
                CLUSTERS,
                "clusters_quota_blueprint",
                doc! {documents::BLUEPRINT_SLOT: 1},
            ),
            documents::BLUEPRINT_SLOT,
            "string",
        ),
        // Lease listings, newest first. `_id` is left out of compound keys: some
        // MongoDB-compatible servers (nx-27017, the test server) cannot index it there.
        index(LEASES, "leases_applied", doc! {"applied_at": -1}),
        index(LEASES, "leases_user", doc! {"user_id": 1, "applied_at": -1}),
        // Open leases (the lease repair) and recent releases (lease activity).
        index(LEASES, "leases_released", doc! {"released_at": 1}),
        index(OPERATIONS, "operations_created", doc! {"created_at": -1}),
        index(
            OPERATIONS,
            "operations_host",
            doc! {"host_id": 1, "created_at": -1},
        ),
    ]
}

/// Creates every index that is missing.
async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    for index in indexes() {
        let options = IndexOptions::builder()
            .name(index.name.to_owned())
            .unique(index.unique.then_some(true))
            .partial_filter_expression(index.partial)
            .build();
        let model = IndexModel::builder().keys(index.keys).options(options).build();
        db.collection::<Document>(index.collection)
            .create_index(model)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Records of any kind

impl MongoStore {
    /// Adds `record`; a taken `_id` or unique name is a conflict naming `name`.
    pub(crate) async fn insert<T: Serialize>(
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

    /// The record with `id`, or `None`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        collection: &Collection<Document>,
        shape: &Shape,
        id: &str,
    ) -> Result<Option<T>, MongoError> {
        let found = collection.find_one(doc! {"_id": id}).await?;
        Ok(found.map(|doc| decode(shape, doc)).transpose()?)
    }

    /// Removes the document with `id`; returns whether it existed.
    pub(crate) async fn delete(
        &self,
        collection: &Collection<Document>,
        id: &str,
    ) -> Result<bool, MongoError> {
        Ok(collection.delete_one(doc! {"_id": id}).await?.deleted_count > 0)
    }

    /// The version stored for `id`, or `None` when there is no such document. A
    /// document without one (an earlier version's) is at version 0.
    pub(crate) async fn stored_version(
        &self,
        collection: &Collection<Document>,
        id: &str,
    ) -> Result<Option<u64>, MongoError> {
        let found = collection
            .find_one(doc! {"_id": id})
            .projection(doc! {"version": 1})
            .await?;
        Ok(found.map(|doc| documents::whole_number(doc.get("version")).unwrap_or(0)))
    }
}

/// Every document of `collection` matching `filter`, as records.
pub(crate) async fn find_all<T: DeserializeOwned>(
    collection: &Collection<Document>,
    shape: &Shape,
    filter: Document,
) -> Result<Vec<T>, MongoError> {
    let docs: Vec<Document> = collection.find(filter).await?.try_collect().await?;
    Ok(decode_all(shape, docs)?)
}

fn decode_all<T: DeserializeOwned>(
    shape: &Shape,
    docs: Vec<Document>,
) -> Result<Vec<T>, documents::CodecError> {
    docs.into_iter().map(|doc| decode(shape, doc)).collect()
}

/// One page of the documents matching `filter`, ordered by `sort`, and their total.
pub(crate) async fn list_page<T: DeserializeOwned>(
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
    documents::whole_number(doc.get("n")).ok_or_else(|| {
        MongoError::Pool(Error::backend(
            "mongodb",
            format!("$count answered {:?}, not a whole number", doc.get("n")),
        ))
    })
}

// ---------------------------------------------------------------------------------
// Clusters: slots, claims, conditional writes

/// Where the clusters of one host sit, as read at one moment.
#[derive(Debug, Default)]
struct Slots {
    /// Slots in use below the bound the slots were read for.
    taken: BTreeSet<i64>,
    /// Clusters on no slot below that bound: their id and slot (`None` for documents
    /// of an earlier version).
    unplaced: Vec<(String, Option<i64>)>,
}

impl Slots {
    /// The free slots below `bound`, lowest first.
    fn free(&self, bound: i64) -> impl Iterator<Item = i64> + '_ {
        (0..bound).filter(|slot| !self.taken.contains(slot))
    }
}

/// The clusters under one quota, as read at one moment.
#[derive(Debug)]
struct HeldSlots {
    /// How many there are.
    count: u64,
    /// The quota slots they hold.
    slots: HashSet<String>,
}

impl HeldSlots {
    /// The lowest slot of `owner` below `limit` that no cluster holds.
    fn lowest_free(&self, owner: &str, limit: u32) -> Option<String> {
        (0..limit)
            .map(|k| documents::quota_slot(owner, k))
            .find(|slot| !self.slots.contains(slot))
    }
}

/// Why a write of `cluster` over the stored one broke a unique index.
pub(crate) fn clash(cluster: &Cluster) -> String {
    format!(
        "cluster {:?}: its name is taken, or its user holds another single-claimed cluster",
        cluster.name
    )
}

impl MongoStore {
    /// Inserts `cluster` at a free slot of its host below `capacity`; `false` when
    /// there is none. See [`MongoStore`] for why this never exceeds the capacity.
    pub(crate) async fn insert_in_slot(&self, cluster: &Cluster, capacity: u32) -> Result<bool, MongoError> {
        // Whether a duplicate key may be the name or id rather than the slot.
        let mut maybe_named = true;
        for _ in 0..TRIES {
            // Settled: every cluster of the host sits below the capacity, or none is free.
            let slots = self.settled_slots(&cluster.host_id, i64::from(capacity)).await?;
            if slots.free(i64::from(capacity)).next().is_none() {
                return Ok(false);
            }
            for slot in slots.free(i64::from(capacity)) {
                match self.clusters.insert_one(new_cluster(cluster, slot)?).await {
                    Ok(_) => return Ok(true),
                    Err(e) if !is_duplicate_key(&e) => return Err(e.into()),
                    Err(_) if maybe_named && self.name_or_id_taken(cluster).await? => {
                        return Err(Error::conflict(format!("cluster {:?} exists", cluster.name)).into())
                    }
                    // Another insert took the slot: try the next.
                    Err(_) => maybe_named = false,
                }
            }
        }
        Err(Error::conflict(format!(
            "the clusters of host {} changed {TRIES} times while one was being added; try again",
            cluster.host_id
        ))
        .into())
    }

    /// The slots of `host_id`, after moving its clusters on no slot below `bound` into
    /// free ones there, as long as there are free ones.
    async fn settled_slots(&self, host_id: &str, bound: i64) -> Result<Slots, MongoError> {
        for _ in 0..TRIES {
            let slots = self.slots(host_id, bound).await?;
            let moves: Vec<_> = slots.unplaced.iter().zip(slots.free(bound)).collect();
            if moves.is_empty() {
                return Ok(slots);
            }
            for ((id, from), to) in moves {
                self.move_to_slot(id, *from, to).await?;
            }
        }
        Err(Error::conflict(format!(
            "the clusters of host {host_id} changed {TRIES} times while their slots were read; try again"
        ))
        .into())
    }

    async fn slots(&self, host_id: &str, bound: i64) -> Result<Slots, MongoError> {
        let docs: Vec<Document> = self
            .clusters
            .find(doc! {"host_id": host_id})
            .projection(doc! {SLOT: 1})
            .await?
            .try_collect()
            .await?;
        let mut slots = Slots::default();
        for doc in docs {
            let slot = documents::whole_number(doc.get(SLOT)).and_then(|s| i64::try_from(s).ok());
            match slot {
                Some(slot) if slot < bound => {
                    slots.taken.insert(slot);
                }
                _ => slots
                    .unplaced
                    .push((doc.get_str("_id").unwrap_or_default().to_owned(), slot)),
            }
        }
        Ok(slots)
    }

    /// Moves cluster `id` from slot `from` to `to`, unless it moved meanwhile or
    /// another cluster took `to` (the caller reads the slots again either way).
    async fn move_to_slot(&self, id: &str, from: Option<i64>, to: i64) -> Result<(), MongoError> {
        let at = from.map_or_else(|| Bson::Document(doc! {"$exists": false}), Bson::Int64);
        match self
            .clusters
            .update_one(doc! {"_id": id, SLOT: at}, doc! {"$set": {SLOT: to}})
            .await
        {
            Err(e) if !is_duplicate_key(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn name_or_id_taken(&self, cluster: &Cluster) -> Result<bool, MongoError> {
        for taken in [doc! {"_id": &cluster.id}, doc! {"name": &cluster.name}] {
            if self.clusters.find_one(taken).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What a single claim gets without taking a cluster: a cluster the user holds of
    /// a wanted blueprint (`Held`), else the single-claimed one they hold
    /// (`HoldsOther`), else `None`.
    pub(crate) async fn holding(&self, claim: &Claim) -> Result<Option<ClaimOutcome>, MongoError> {
        let found: Vec<Document> = self
            .clusters
            .find(documents::holdings(claim))
            .await?
            .try_collect()
            .await?;
        let found: Vec<Cluster> = decode_all(&documents::CLUSTER, found)?;
        let (held, other): (Vec<Cluster>, Vec<Cluster>) = found
            .into_iter()
            .filter(|c| c.held_by(&claim.user_id, &claim.blueprints) || c.single_apply)
            .partition(|c| c.held_by(&claim.user_id, &claim.blueprints));
        Ok(held
            .into_iter()
            .next()
            .map(ClaimOutcome::Held)
            .or_else(|| other.into_iter().next().map(ClaimOutcome::HoldsOther)))
    }

    /// Takes one ready cluster for `claim` and queues its lease record; `None` when
    /// there is none, or when the user holds a single-claimed cluster already (the unique
    /// index refused the write).
    pub(crate) async fn take_ready(&self, claim: &Claim) -> Result<Option<Cluster>, MongoError> {
        let taken = self
            .clusters
            .find_one_and_update(documents::claimable(claim), documents::claim_update(claim)?)
            .return_document(ReturnDocument::After)
            .await;
        let doc = match taken {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(None),
            Err(e) if is_duplicate_key(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let claimed: Cluster = decode(&documents::CLUSTER, doc)?;
        self.queue_lease(LeaseRecord::opened(&claimed, claim));
        Ok(Some(claimed))
    }

    /// Takes one ready cluster for a claim with quotas (see [`MongoStore`]), and
    /// queues its lease record.
    pub(crate) async fn claim_within_quotas(&self, claim: &Claim) -> Result<ClaimOutcome, MongoError> {
        for _ in 0..TRIES {
            let user_slot = match claim.max_held {
                None => None,
                Some(limit) => {
                    let held = self.slots_held(documents::holdings(claim), USER_SLOT).await?;
                    if let Some(quota) = claim.user_quota(held.count) {
                        return Ok(ClaimOutcome::QuotaExceeded(quota));
                    }
                    held.lowest_free(&claim.user_id, limit)
                }
            };
            let mut held_of = HashMap::new();
            for name in claim.blueprint_quotas.keys() {
                let held = self
                    .slots_held(documents::applied_of(name), BLUEPRINT_SLOT)
                    .await?;
                held_of.insert(name.as_str(), held);
            }
            let below = match claim.blueprints_below_quota(|name| held_of.get(name).map_or(0, |h| h.count)) {
                Ok(below) => below,
                Err(quota) => return Ok(ClaimOutcome::QuotaExceeded(quota)),
            };
            // The blueprints without a quota in one write; each one with a quota at
            // its lowest free slot.
            let (limited, unlimited): (Vec<String>, Vec<String>) = below
                .into_iter()
                .partition(|b| claim.blueprint_quotas.contains_key(b));
            let mut tries: Vec<(Vec<String>, Option<String>)> = Vec::new();
            if !unlimited.is_empty() {
                tries.push((unlimited, None));
            }
            for name in limited {
                let slot = held_of
                    .get(name.as_str())
                    .and_then(|h| h.lowest_free(&name, claim.blueprint_quotas[&name]));
                tries.push((vec![name], slot));
            }
            let mut raced = false;
            for (blueprints, blueprint_slot) in &tries {
                let update =
                    documents::claim_update_in_slots(claim, user_slot.as_deref(), blueprint_slot.as_deref())?;
                match self
                    .clusters
                    .find_one_and_update(documents::claimable_of(claim, blueprints), update)
                    .return_document(ReturnDocument::After)
                    .await
                {
                    Ok(Some(doc)) => {
                        let claimed: Cluster = decode(&documents::CLUSTER, doc)?;
                        self.queue_lease(LeaseRecord::opened(&claimed, claim));
                        return Ok(ClaimOutcome::Claimed(claimed));
                    }
                    Ok(None) => {}
                    Err(e) if is_duplicate_key(&e) => {
                        // A slot, or the single hold of a concurrent single claim.
                        if !claim.allow_multiple {
                            if let Some(held) = self.holding(claim).await? {
                                return Ok(held);
                            }
                        }
                        raced = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // nx-27017 answers a clash on a slot with no document: a slot tried and
            // taken since means another claim won it; count again.
            if !raced && !self.slot_taken(user_slot.as_deref(), &tries).await? {
                return Ok(ClaimOutcome::Exhausted);
            }
        }
        Err(Error::conflict(format!(
            "the quotas of user {:?} changed {TRIES} times during one apply; try again",
            claim.user_id
        ))
        .into())
    }

    /// How many clusters `filter` matches, and the quota slots in `field` they hold.
    async fn slots_held(&self, filter: Document, field: &str) -> Result<HeldSlots, MongoError> {
        let docs: Vec<Document> = self
            .clusters
            .find(filter)
            .projection(doc! {field: 1})
            .await?
            .try_collect()
            .await?;
        Ok(HeldSlots {
            count: docs.len() as u64,
            slots: docs
                .iter()
                .filter_map(|d| d.get_str(field).ok().map(str::to_owned))
                .collect(),
        })
    }

    /// Whether a cluster holds one of the slots a claim tried.
    async fn slot_taken(
        &self,
        user_slot: Option<&str>,
        tries: &[(Vec<String>, Option<String>)],
    ) -> Result<bool, MongoError> {
        let mut any = Vec::new();
        if let Some(slot) = user_slot {
            any.push(doc! {USER_SLOT: slot});
        }
        any.extend(
            tries
                .iter()
                .filter_map(|(_, slot)| Some(doc! {BLUEPRINT_SLOT: slot.as_deref()?})),
        );
        if any.is_empty() {
            return Ok(false);
        }
        Ok(self.clusters.find_one(doc! {"$or": any}).await?.is_some())
    }

    /// Writes `next` over cluster `next.id` if it is still at version `read`, with
    /// `extra` fields beside the record's; returns the document as written, or `None`
    /// when the write matched nothing.
    pub(crate) async fn write_cluster(
        &self,
        read: u64,
        next: &Cluster,
        extra: Option<(&str, Bson)>,
    ) -> Result<Option<Document>, MongoError> {
        let mut update = cluster_update(next)?;
        if let (Some((field, value)), Ok(set)) = (extra, update.get_document_mut("$set")) {
            set.insert(field, value);
        }
        let written = self
            .clusters
            .find_one_and_update(doc! {"_id": &next.id, "version": version(read)?}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| conflict_on_duplicate(e, || clash(next)))?;
        Ok(written)
    }

    /// Releases `applied` at `now` for `reason` if it is unchanged since it was read:
    /// the cluster as written, or `None` when it changed meanwhile. The closed lease
    /// goes into the cluster's `last_release` in the same write, then into its record.
    pub(crate) async fn release_read(
        &self,
        applied: &Cluster,
        now: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<Option<Cluster>, MongoError> {
        let closed = open_lease_of(applied).map(|mut lease| {
            lease.close(now, reason);
            lease
        });
        let mut released = applied.clone();
        released.release(now);
        let last_release = match &closed {
            Some(lease) => Some((LAST_RELEASE, Bson::Document(encode(&documents::LEASE, lease)?))),
            None => None,
        };
        let Some(doc) = self
            .write_cluster(applied.version, &released, last_release)
            .await?
        else {
            return Ok(None);
        };
        if let Some(lease) = &closed {
            // The cluster is released whatever happens to its lease record:
            // `last_release` holds it for the lease repair.
            if let Err(e) = self.close_lease(lease).await {
                warn!(
                    cluster_id = %applied.id,
                    lease_id = %lease.id,
                    error = %e,
                    "lease not closed; the lease repair closes it"
                );
            }
        }
        Ok(Some(decode(&documents::CLUSTER, doc)?))
    }
}

// ---------------------------------------------------------------------------------
// Lease records, and their repair at connect

impl MongoStore {
    /// Writes the lease records that a crash between a claim's or a release's two
    /// writes left missing or open:
    ///
    /// - an applied cluster whose lease record is missing gets it, open;
    /// - a released cluster whose last lease record is missing or still open gets it
    ///   closed at the time, and for the reason, of the release;
    /// - an open lease record whose cluster is gone is closed now as `deleted`; one
    ///   whose cluster is no longer applied under it, now as `release`.
    ///
    /// Runs whenever a store connects; safe to run at any time, from any number of
    /// servers at once: every write is idempotent.
    ///
    /// # Errors
    /// As any store operation: [`Error::Unavailable`] or [`Error::Backend`].
    pub async fn repair_leases(&self) -> Result<LeaseRepair> {
        self.flush_leases().await;
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
        let clusters: Vec<Cluster> = find_all(&self.clusters, &documents::CLUSTER, applied).await?;
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
        let closed_leases = self.last_releases().await?;
        let ids: Vec<&str> = closed_leases.iter().map(|l| l.id.as_str()).collect();
        let open = self.open_leases_among(&ids).await?;
        let existing = self.existing_leases(ids.iter().copied()).await?;
        let (mut written, mut closed) = (0, 0);
        for lease in &closed_leases {
            if !existing.contains(&lease.id) {
                written += u64::from(self.insert_lease(lease).await?);
            } else if open.contains(&lease.id) {
                let released_at = lease.released_at.unwrap_or_else(Utc::now);
                // A release by an earlier version recorded no reason.
                let reason = lease.release_reason.unwrap_or(ReleaseReason::Release);
                closed += self.close_if_open(&lease.id, released_at, reason).await?;
            }
        }
        Ok((written, closed))
    }

    /// The lease records that released clusters keep in `last_release`.
    async fn last_releases(&self) -> Result<Vec<LeaseRecord>, MongoError> {
        let released = self
            .clusters
            .find(doc! {LAST_RELEASE: {"$type": "object"}})
            .projection(doc! {LAST_RELEASE: 1})
            .await?
            .try_collect::<Vec<Document>>()
            .await?;
        let leases = released
            .into_iter()
            .filter_map(|mut doc| match doc.remove(LAST_RELEASE) {
                Some(Bson::Document(lease)) => Some(decode(&documents::LEASE, lease)),
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        Ok(leases)
    }

    async fn close_orphaned_leases(&self, now: DateTime<Utc>) -> Result<u64, MongoError> {
        // Read the leases before their clusters: a claim writes its cluster before
        // its lease, so a cluster read afterwards is at least as new as the claim.
        let open: Vec<LeaseRecord> =
            find_all(&self.leases, &documents::LEASE, doc! {"released_at": Bson::Null}).await?;
        let cluster_ids: BTreeSet<&str> = open.iter().map(|l| l.cluster_id.as_str()).collect();
        let clusters: Vec<Cluster> = find_all(
            &self.clusters,
            &documents::CLUSTER,
            doc! {"_id": {"$in": cluster_ids.into_iter().collect::<Vec<_>>()}},
        )
        .await?;
        let lease_of: HashMap<&str, Option<&str>> = clusters
            .iter()
            .map(|c| (c.id.as_str(), c.lease_id.as_deref().filter(|_| c.is_applied())))
            .collect();
        let mut closed = 0;
        for lease in &open {
            let reason = match lease_of.get(lease.cluster_id.as_str()) {
                None => ReleaseReason::Deleted,
                Some(held) if *held != Some(lease.id.as_str()) => ReleaseReason::Release,
                Some(_) => continue,
            };
            closed += self.close_if_open(&lease.id, now, reason).await?;
        }
        Ok(closed)
    }

    /// The ids among `ids` of lease records still open.
    async fn open_leases_among(&self, ids: &[&str]) -> Result<HashSet<String>, MongoError> {
        self.lease_ids(doc! {"_id": {"$in": ids}, "released_at": Bson::Null})
            .await
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
        self.lease_ids(doc! {"_id": {"$in": ids}}).await
    }

    async fn lease_ids(&self, filter: Document) -> Result<HashSet<String>, MongoError> {
        let found = self
            .leases
            .find(filter)
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
            Ok(_) => {
                self.count_events(events_of(lease)).await;
                Ok(true)
            }
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes an open lease record at `released_at` for `reason`; returns how many it
    /// closed.
    async fn close_if_open(
        &self,
        id: &str,
        released_at: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<u64, MongoError> {
        let closed = self
            .leases
            .update_one(
                doc! {"_id": id, "released_at": Bson::Null},
                doc! {"$set": {"released_at": documents::date(released_at), "release_reason": reason.as_str()}},
            )
            .await?;
        if closed.modified_count > 0 {
            self.count_events([LeaseEvent::Released(released_at)]).await;
        }
        Ok(closed.modified_count)
    }

    /// Writes the closed `lease`: closes its record, or writes it whole if missing.
    /// Each write is conditional, so that whichever first writes the record or
    /// closes it counts it in the lease activity, once.
    async fn close_lease(&self, lease: &LeaseRecord) -> Result<(), MongoError> {
        let released_at = lease.released_at.unwrap_or_else(Utc::now);
        let reason = lease.release_reason.unwrap_or(ReleaseReason::Release);
        if self.close_if_open(&lease.id, released_at, reason).await? > 0 {
            return Ok(());
        }
        // Missing (its claim's batch is not written yet), or closed already.
        if !self.insert_lease(lease).await? {
            // The batch was written in between.
            self.close_if_open(&lease.id, released_at, reason).await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Lease records written behind the claims

/// The lease records of claims that are not written yet, and whether a task is
/// writing them.
///
/// A claim queues its record and, if no task is writing, starts one; the task writes
/// everything queued in one `insertMany`, then what was queued meanwhile, until the
/// queue is empty. Under load a batch holds the records of many claims, so the
/// records cost far less than a round trip per claim.
#[derive(Debug, Default)]
struct LeaseQueue {
    pending: Mutex<Pending>,
    /// Held while a batch is written: whoever takes it next finds every record
    /// queued before in the collection or in the queue.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Pending {
    leases: Vec<LeaseRecord>,
    writer_running: bool,
}

impl LeaseQueue {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A vector and a flag stay consistent whatever a panicking holder did.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what is queued now; returns once it is written (or has failed, which
    /// is logged: the repair writes those records).
    async fn write_queued(&self, collections: &LeaseCollections) {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut self.pending().leases);
        if batch.is_empty() {
            return;
        }
        match insert_leases(&collections.leases, &batch).await {
            Ok(inserted) => add_events(&collections.minutes, inserted.into_iter().flat_map(events_of)).await,
            Err(e) => warn!(
                leases = batch.len(),
                error = %e,
                "lease records not written; the lease repair writes them"
            ),
        }
    }

    /// Writes batches until the queue is empty; the task a claim starts.
    async fn drain(&self, collections: &LeaseCollections) {
        loop {
            self.write_queued(collections).await;
            let mut pending = self.pending();
            if pending.leases.is_empty() {
                pending.writer_running = false;
                return;
            }
        }
    }
}

/// The collections a batch of lease records is written to.
#[derive(Debug, Clone)]
struct LeaseCollections {
    leases: Collection<Document>,
    minutes: Collection<Document>,
}

/// Inserts `leases`, skipping those whose record exists (written by the repair, or
/// closed by a release that came first); returns those it inserted.
async fn insert_leases<'a>(
    collection: &Collection<Document>,
    leases: &'a [LeaseRecord],
) -> Result<Vec<&'a LeaseRecord>, MongoError> {
    let documents = leases
        .iter()
        .map(|lease| encode(&documents::LEASE, lease))
        .collect::<Result<Vec<_>, _>>()?;
    let skipped = match collection.insert_many(documents).ordered(false).await {
        Ok(_) => HashSet::new(),
        Err(e) => match duplicate_keys(&e) {
            Some(skipped) => skipped,
            None => return Err(e.into()),
        },
    };
    Ok(leases
        .iter()
        .enumerate()
        .filter(|(i, _)| !skipped.contains(i))
        .map(|(_, lease)| lease)
        .collect())
}

/// The positions of the documents an unordered `insertMany` skipped when every write
/// error is a duplicate key; `None` for any other error.
fn duplicate_keys(e: &mongodb::error::Error) -> Option<HashSet<usize>> {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let errors = failure.write_errors.as_ref()?;
            errors
                .iter()
                .map(|w| (w.code == crate::error::DUPLICATE_KEY).then_some(w.index))
                .collect()
        }
        _ => None,
    }
}

impl MongoStore {
    /// Queues the record of a lease a claim opened, and starts writing the queue if
    /// nobody is.
    fn queue_lease(&self, lease: LeaseRecord) {
        let start = {
            let mut pending = self.lease_queue.pending();
            pending.leases.push(lease);
            !std::mem::replace(&mut pending.writer_running, true)
        };
        if start {
            let (queue, collections) = (Arc::clone(&self.lease_queue), self.lease_collections());
            tokio::spawn(async move { queue.drain(&collections).await });
        }
    }

    /// Waits until the lease records of every claim this store has answered are
    /// written. Reads of lease records do this first; call it before a planned stop
    /// so that other servers see the last claims' records at once.
    pub async fn flush_leases(&self) {
        self.lease_queue.write_queued(&self.lease_collections()).await;
    }

    fn lease_collections(&self) -> LeaseCollections {
        LeaseCollections {
            leases: self.leases.clone(),
            minutes: self.lease_minutes.clone(),
        }
    }
}
