//! The [`Store`] implementation of [`MongoStore`], made of the queries of
//! [`core`](crate::core). Round trips to the server are named on each method that
//! takes more than one.

use async_trait::async_trait;
use bson::{doc, Document};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use poolcore::{
    Blueprint, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, ClusterStatus, Error, Host,
    LeaseActivity, LeaseRecord, Listing, MinuteSummary, Operation, OperationFilter, Page, ReleaseReason,
    Result, Store,
};

use crate::core::{clash, find_all, list_page, MongoStore, TRIES};
use crate::documents::{self, decode, encode, version, whole_number};
use crate::error::{conflict_on_duplicate, is_duplicate_key, missed_write, run, MongoError};

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

    /// Two round trips, side by side: the page and the total.
    async fn list_hosts(&self, page: Page) -> Result<Listing<Host>> {
        run(
            "list hosts",
            list_page(&self.hosts, &documents::HOST, doc! {}, doc! {"name": 1}, page),
        )
        .await
    }

    /// One round trip; one more when nothing was written, to say why.
    async fn update_host(&self, host: &Host) -> Result<Host> {
        run("update host", async {
            let next = Host {
                version: host.version + 1,
                ..host.clone()
            };
            let taken = || format!("host {:?} exists", host.name);
            let written = self
                .hosts
                .find_one_and_replace(
                    doc! {"_id": &host.id, "version": version(host.version)?},
                    encode(&documents::HOST, &next)?,
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| conflict_on_duplicate(e, taken))?;
            match written {
                Some(doc) => Ok(decode(&documents::HOST, doc)?),
                None => {
                    let stored = self.stored_version(&self.hosts, &host.id).await?;
                    Err(missed_write("host", &host.id, host.version, stored, taken))
                }
            }
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
        let found: Option<Blueprint> = run(
            "get blueprint",
            self.get(&self.blueprints, &documents::BLUEPRINT, name),
        )
        .await?;
        Ok(found.map(versioned))
    }

    /// Two round trips, side by side: the page and the total.
    async fn list_blueprints(&self, page: Page) -> Result<Listing<Blueprint>> {
        run(
            "list blueprints",
            list_page(
                &self.blueprints,
                &documents::BLUEPRINT,
                doc! {},
                doc! {"_id": 1},
                page,
            ),
        )
        .await
        .map(|listing: Listing<Blueprint>| Listing {
            items: listing.items.into_iter().map(versioned).collect(),
            total: listing.total,
        })
    }

    /// One round trip.
    async fn update_blueprint_policies(&self, blueprint: &Blueprint) -> Result<bool> {
        run("update blueprint", async {
            // Encoded as a whole blueprint is, then only its policies kept.
            let policies = fields_of(&encode(&documents::BLUEPRINT, blueprint)?, POLICY_FIELDS);
            let updated = self
                .blueprints
                .update_one(doc! {"_id": &blueprint.name}, doc! {"$set": policies})
                .await?;
            Ok(updated.matched_count > 0)
        })
        .await
    }

    /// One round trip; one more when nothing was written, to say why.
    async fn update_blueprint_version(&self, blueprint: &Blueprint, previous: u32) -> Result<bool> {
        run("update blueprint version", async {
            let version = fields_of(&encode(&documents::BLUEPRINT, blueprint)?, VERSION_FIELDS);
            // Blueprints written before versions have none: they are at version 1.
            let at_previous = if previous == 1 {
                doc! {"$in": [1, null]}
            } else {
                doc! {"$eq": previous}
            };
            let updated = self
                .blueprints
                .update_one(
                    doc! {"_id": &blueprint.name, "version": at_previous},
                    doc! {"$set": version},
                )
                .await?;
            if updated.matched_count > 0 {
                return Ok(true);
            }
            match self.stored_version(&self.blueprints, &blueprint.name).await? {
                None => Ok(false),
                Some(stored) => {
                    Err(Error::stale("blueprint", &blueprint.name, previous.into(), stored.max(1)).into())
                }
            }
        })
        .await
    }

    async fn delete_blueprint(&self, name: &str) -> Result<bool> {
        run("delete blueprint", self.delete(&self.blueprints, name)).await
    }

    /// Two round trips: the host's slots, then the insert. More only under contention
    /// for the host's last free slots, or after its capacity was lowered.
    async fn insert_cluster(&self, cluster: &Cluster, capacity: u32) -> Result<bool> {
        if capacity == 0 {
            return Ok(false);
        }
        run("insert cluster", self.insert_in_slot(cluster, capacity)).await
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        run("get cluster", self.get(&self.clusters, &documents::CLUSTER, id)).await
    }

    /// Two round trips, side by side: the page and the total.
    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        run(
            "list clusters",
            list_page(
                &self.clusters,
                &documents::CLUSTER,
                documents::cluster_filter(filter),
                documents::cluster_sort(filter.sort),
                page,
            ),
        )
        .await
    }

    /// One aggregation. Its group key is the four fields joined by a separator that
    /// host ids (UUIDs) never hold: nx-27017 cannot group by a document of fields.
    async fn count_clusters(&self) -> Result<Vec<ClusterCount>> {
        run("count clusters", async {
            // Clusters written before versions have none: they run version 1.
            let version = doc! {"$ifNull": ["$blueprint_version", 1]};
            let group = doc! {"$group": {
                "_id": {"$concat": [
                    "$host_id", "\u{1f}", "$blueprint", "\u{1f}", {"$toString": &version}, "\u{1f}", "$status",
                ]},
                "host_id": {"$first": "$host_id"},
                "blueprint": {"$first": "$blueprint"},
                "blueprint_version": {"$first": &version},
                "status": {"$first": "$status"},
                "count": {"$sum": 1},
            }};
            let groups: Vec<Document> = self.clusters.aggregate([group]).await?.try_collect().await?;
            groups.iter().map(cluster_count).collect()
        })
        .await
    }

    /// One round trip; one more when nothing was written, to say why.
    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        run("update cluster", async {
            let next = Cluster {
                version: cluster.version + 1,
                updated_at: Utc::now(),
                ..cluster.clone()
            };
            match self.write_cluster(cluster.version, &next, None).await? {
                Some(doc) => Ok(decode(&documents::CLUSTER, doc)?),
                None => {
                    let stored = self.stored_version(&self.clusters, &cluster.id).await?;
                    let read = cluster.version;
                    Err(missed_write("cluster", &cluster.id, read, stored, || {
                        clash(cluster)
                    }))
                }
            }
        })
        .await
    }

    /// One round trip; one more when nothing was deleted, to say why.
    async fn delete_cluster(&self, id: &str, version_read: u64) -> Result<bool> {
        run("delete cluster", async {
            let filter = doc! {"_id": id, "version": version(version_read)?};
            if self.clusters.delete_one(filter).await?.deleted_count > 0 {
                return Ok(true);
            }
            match self.stored_version(&self.clusters, id).await? {
                None => Ok(false),
                Some(stored) => Err(Error::stale("cluster", id, version_read, stored).into()),
            }
        })
        .await
    }

    /// With `allow_multiple`: one round trip, the claim; its lease record is written
    /// behind it, in a batch with other claims' records. A single claim first looks
    /// for what the user holds (one more), and again when it takes nothing, to tell
    /// `Held` and `HoldsOther` from `Exhausted`.
    async fn claim_cluster(&self, claim: &Claim) -> Result<ClaimOutcome> {
        run("claim cluster", async {
            if !claim.allow_multiple {
                if let Some(held) = self.holding(claim).await? {
                    return Ok(held);
                }
            }
            if claim.max_held.is_some() || !claim.blueprint_quotas.is_empty() {
                let outcome = self.claim_within_quotas(claim).await?;
                return match outcome {
                    ClaimOutcome::Exhausted if !claim.allow_multiple => {
                        Ok(self.holding(claim).await?.unwrap_or(ClaimOutcome::Exhausted))
                    }
                    outcome => Ok(outcome),
                };
            }
            match self.take_ready(claim).await? {
                Some(cluster) => Ok(ClaimOutcome::Claimed(cluster)),
                None if claim.allow_multiple => Ok(ClaimOutcome::Exhausted),
                // A concurrent single claim of the user may have won.
                None => Ok(self.holding(claim).await?.unwrap_or(ClaimOutcome::Exhausted)),
            }
        })
        .await
    }

    /// Three round trips: read the cluster, release it (compare-and-set), close the
    /// lease record.
    async fn release_cluster(
        &self,
        id: &str,
        now: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<Option<Cluster>> {
        run("release cluster", async {
            for _ in 0..TRIES {
                let Some(applied) = self
                    .get::<Cluster>(&self.clusters, &documents::CLUSTER, id)
                    .await?
                    .filter(Cluster::is_applied)
                else {
                    return Ok(None);
                };
                // None: it changed since it was read; read it again.
                if let Some(released) = self.release_read(&applied, now, reason).await? {
                    return Ok(Some(released));
                }
            }
            Err(Error::conflict(format!(
                "cluster {id} changed {TRIES} times while being released; try again"
            ))
            .into())
        })
        .await
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
        self.flush_leases().await;
        run("get lease", self.get(&self.leases, &documents::LEASE, id)).await
    }

    /// Two round trips, side by side: the page and the total.
    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        let filter = match user_id {
            Some(user_id) => doc! {"user_id": user_id},
            None => doc! {},
        };
        self.flush_leases().await;
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

    /// From the per-minute counts for buckets of whole minutes; otherwise one query
    /// for the leases applied or released since `since` (by their indexes), counted
    /// here: nx-27017 cannot compute with dates in an aggregation.
    async fn lease_activity(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
    ) -> Result<Vec<LeaseActivity>> {
        self.flush_leases().await;
        run("lease activity", async {
            if let Some(summary) = MinuteSummary::new(since, bucket) {
                return self.summarised_activity(&summary).await;
            }
            let leases: Vec<LeaseRecord> =
                find_all(&self.leases, &documents::LEASE, documents::active_since(since)).await?;
            Ok(LeaseActivity::tally(&leases, since, bucket))
        })
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

    /// Two round trips, side by side: the page and the total.
    async fn list_operations(&self, filter: &OperationFilter, page: Page) -> Result<Listing<Operation>> {
        run(
            "list operations",
            list_page(
                &self.operations,
                &documents::OPERATION,
                documents::operation_filter(filter),
                doc! {"created_at": -1, "_id": 1},
                page,
            ),
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
            let takeable = doc! {"$or": [{"holder": holder}, {"until": {"$lt": documents::date(now)}}]};
            let filter = doc! {"$and": [{"_id": name}, takeable]};
            let lock = doc! {"_id": name, "holder": holder, "until": documents::date(until)};
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

/// `blueprint` as read: one written before versions was made at its own time.
fn versioned(mut blueprint: Blueprint) -> Blueprint {
    if blueprint.version_created_at == DateTime::<Utc>::UNIX_EPOCH {
        blueprint.version_created_at = blueprint.created_at;
    }
    blueprint
}

/// The fields of a blueprint record that [`Store::update_blueprint_policies`] writes.
const POLICY_FIELDS: &[&str] = &[
    "max_applied",
    "buffer",
    "buffer_windows",
    "placement",
    "release_mode",
    "rollout",
];

/// The fields of a blueprint record that [`Store::update_blueprint_version`] writes.
const VERSION_FIELDS: &[&str] = &[
    "nodes",
    "api_port",
    "version",
    "version_created_at",
    "earlier_versions",
];

/// The fields `keys` of `encoded` (a whole record, encoded), for a `$set` of them
/// alone; a field the record leaves out is set to null.
fn fields_of(encoded: &Document, keys: &[&str]) -> Document {
    keys.iter()
        .map(|&key| {
            (
                key.to_owned(),
                encoded.get(key).cloned().unwrap_or(bson::Bson::Null),
            )
        })
        .collect()
}

/// One group of [`Store::count_clusters`]'s aggregation.
fn cluster_count(group: &Document) -> Result<ClusterCount, MongoError> {
    let text = |field| group.get_str(field).unwrap_or_default().to_owned();
    let status: ClusterStatus = text("status").parse()?;
    let count = whole_number(group.get("count"))
        .ok_or_else(|| Error::backend("mongodb", format!("cluster count {group} is not a whole number")))?;
    let blueprint_version = whole_number(group.get("blueprint_version"))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(1);
    Ok(ClusterCount {
        host_id: text("host_id"),
        blueprint: text("blueprint"),
        blueprint_version,
        status,
        count,
    })
}
