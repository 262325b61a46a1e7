//! The collections and their indexes.
//!
//! Every record is one document, its id in `_id`. Indexes are created when a store
//! connects; creating one that exists is a no-op, so several servers starting at
//! once, or a newer version adding an index, need no migration step. Unique
//! indexes are what make names unique: a write that would break one fails with
//! MongoDB's duplicate-key error, which the store reports as a conflict.

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

/// Hosts, `_id` = host id.
pub(crate) const HOSTS: &str = "hosts";
/// Blueprints, `_id` = blueprint name.
pub(crate) const BLUEPRINTS: &str = "blueprints";
/// Clusters, `_id` = cluster id.
pub(crate) const CLUSTERS: &str = "clusters";
/// Lease records, `_id` = lease id.
pub(crate) const LEASES: &str = "leases";
/// Long-running operations, `_id` = operation id.
pub(crate) const OPERATIONS: &str = "operations";
/// Named locks, `_id` = lock name.
pub(crate) const LOCKS: &str = "locks";

/// One index: collection, name, keys, unique or not.
struct Index {
    collection: &'static str,
    name: &'static str,
    keys: Document,
    unique: bool,
}

fn indexes() -> Vec<Index> {
    let index = |collection, name, keys, unique| Index {
        collection,
        name,
        keys,
        unique,
    };
    vec![
        index(HOSTS, "hosts_name", doc! {"name": 1}, true),
        index(CLUSTERS, "clusters_name", doc! {"name": 1}, true),
        // The claim's filter: ready, healthy, of a wanted blueprint, on a wanted host.
        index(
            CLUSTERS,
            "clusters_claim",
            doc! {"status": 1, "health": 1, "blueprint": 1, "host_id": 1},
            false,
        ),
        index(CLUSTERS, "clusters_host", doc! {"host_id": 1, "name": 1}, false),
        index(CLUSTERS, "clusters_user", doc! {"user_id": 1, "status": 1}, false),
        // Lease listings, newest first. `_id` is left out of compound keys: some
        // MongoDB-compatible servers (nx-27017, the test server) cannot index it there.
        index(LEASES, "leases_applied", doc! {"applied_at": -1}, false),
        index(
            LEASES,
            "leases_user",
            doc! {"user_id": 1, "applied_at": -1},
            false,
        ),
        // Open leases, for the lease repair when a store connects.
        index(LEASES, "leases_open", doc! {"released_at": 1}, false),
    ]
}

/// Creates every index that is missing.
pub(crate) async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    for index in indexes() {
        let options = IndexOptions::builder()
            .name(index.name.to_owned())
            .unique(index.unique.then_some(true))
            .build();
        let model = IndexModel::builder().keys(index.keys).options(options).build();
        db.collection::<Document>(index.collection)
            .create_index(model)
            .await?;
    }
    Ok(())
}
