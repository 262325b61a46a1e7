//! The [`Store`] on SQLite: every operation is one transaction on one connection.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions, which SQLite orders across threads and
//! processes: a claim reads what the user holds, picks a cluster and takes it in one
//! such transaction, and an insert counts the host's clusters and adds one in another,
//! so neither can be raced.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use poolcore::{
    Blueprint, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, ClusterSort, ClusterSortKey,
    ClusterStatus, Error, Host, LeaseActivity, LeaseRecord, Listing, MinuteSummary, Operation,
    OperationFilter, Page, ReleaseReason, Result, Store,
};
use rusqlite::types::Value;
use rusqlite::{named_params, params, Connection, OptionalExtension};

use crate::core::SqliteStore;
use crate::error::{conflict_on_constraint, SqliteError};
use crate::rows::{
    blueprint_from_row, cluster_from_row, count, host_from_row, host_values, host_version, insert_blueprint,
    insert_lease, json, lease_field_values, lease_from_row, list_page, named, operation_from_row,
    put_operation, select_cluster, select_page, time, update_blueprint_policies, update_blueprint_version,
    write_cluster, BLUEPRINT_COLUMNS, CLAIM_CLUSTER, CLUSTER_COLUMNS, HOST_COLUMNS, INSERT_HOST,
    LEASE_COLUMNS, OPERATION_COLUMNS, RELEASE_CLUSTER, UPDATE_HOST,
};

/// The clusters a new claim may take, in the order it takes them: ready and healthy,
/// the first in row order, which the `clusters_status_health` index keeps (see
/// migration 11). The claim's blueprints and hosts are checked on each row by
/// [`pick_claimable`]: an `IN (json_each(…))` of a pool's hosts built a table of
/// them at every claim, which cost the writer more than the claim's own writes.
const CLAIMABLE: &str = "SELECT id, blueprint, host_id FROM clusters INDEXED BY clusters_status_health \
     WHERE status = 'ready' AND health = 'ok' ORDER BY rowid";

/// An applied cluster of the user of one of the blueprints, for a single claim.
const HELD: &str = "SELECT id FROM clusters \
     WHERE user_id = :user_id AND status = 'applied' \
       AND blueprint IN (SELECT value FROM json_each(:blueprints)) \
     ORDER BY id LIMIT 1";

/// How many clusters the user holds, for the user quota.
const HELD_COUNT: &str = "SELECT COUNT(*) FROM clusters WHERE user_id = ? AND status = 'applied'";

/// How many clusters of a blueprint are applied, from the counts the triggers keep.
const APPLIED_OF_BLUEPRINT: &str =
    "SELECT SUM(n) FROM cluster_counts WHERE blueprint = ? AND status = 'applied'";

/// The user's single-applied cluster, if any.
const SINGLE_HELD: &str = "SELECT id FROM clusters WHERE user_id = ?1 AND single_apply = 1";

/// `WHERE` clause over `clusters` and its parameters for a filter.
fn cluster_where(filter: &ClusterFilter) -> Result<(String, Vec<Value>), SqliteError> {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if let Some(status) = filter.status {
        clauses.push("status = ?");
        values.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(host_id) = &filter.host_id {
        clauses.push("host_id = ?");
        values.push(Value::Text(host_id.clone()));
    }
    if let Some(user_id) = &filter.user_id {
        clauses.push("user_id = ?");
        values.push(Value::Text(user_id.clone()));
    }
    if let Some(blueprints) = &filter.blueprints {
        clauses.push("blueprint IN (SELECT value FROM json_each(?))");
        values.push(Value::Text(json(blueprints)?));
    }
    if let Some(health) = filter.health {
        // Any status, said so that the (status, health) index answers: one seek per
        // status instead of a walk over the whole index.
        if filter.status.is_none() {
            clauses.push(ANY_STATUS.as_str());
        }
        clauses.push("health = ?");
        values.push(Value::Text(health.as_str().to_owned()));
    }
    Ok((where_clause(&clauses), values))
}

/// `status IN (…)` with every status.
static ANY_STATUS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let statuses: Vec<String> = ClusterStatus::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("status IN ({})", statuses.join(", "))
});

/// `ORDER BY` for a listing of clusters, as [`ClusterSort::compare`] orders them.
/// Text columns compare as bytes and times are fixed-width RFC 3339, so SQLite's
/// order is the model's; NULL sorts first, as `None` does.
fn cluster_order(sort: ClusterSort) -> String {
    let column = match sort.key {
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
    let dir = if sort.descending { " DESC" } else { "" };
    column
        .into_iter()
        .chain(["name", "id"])
        .map(|c| format!("{c}{dir}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn where_clause(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// How many clusters match `filter`: from the counts the triggers keep, unless the
/// filter names a user or a health, which the counts do not key (a user's clusters
/// are few, and a status and health are counted from the `clusters_status_health` index).
fn count_clusters_matching(conn: &Connection, filter: &ClusterFilter) -> Result<u64, SqliteError> {
    let (clause, values) = cluster_where(filter)?;
    let sql = if filter.user_id.is_some() || filter.health.is_some() {
        format!("SELECT COUNT(*) FROM clusters{clause}")
    } else {
        format!("SELECT SUM(n) FROM cluster_counts{clause}")
    };
    count(conn, &sql, &values)
}

fn id_of(
    conn: &Connection,
    sql: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(sql)?
        .query_row(params, |row| row.get(0))
        .optional()
}

/// What a single claim gets without taking anything: a held cluster of a wanted
/// blueprint, else the user's single-applied cluster of another one.
fn held_by_user(conn: &Connection, claim: &Claim) -> Result<Option<ClaimOutcome>, SqliteError> {
    let blueprints = json(&claim.blueprints)?;
    let held = id_of(
        conn,
        HELD,
        named_params! { ":user_id": claim.user_id, ":blueprints": blueprints },
    )?;
    if let Some(cluster) = held.map(|id| select_cluster(conn, &id)).transpose()?.flatten() {
        return Ok(Some(ClaimOutcome::Held(cluster)));
    }
    let single = conn
        .prepare_cached(SINGLE_HELD)?
        .query_row([&claim.user_id], |row| row.get::<_, String>(0))
        .optional()?;
    Ok(single
        .map(|id| select_cluster(conn, &id))
        .transpose()?
        .flatten()
        .map(ClaimOutcome::HoldsOther))
}

/// The first of [`CLAIMABLE`] of one of `blueprints` on one of `hosts`.
fn pick_claimable(
    conn: &Connection,
    blueprints: &[String],
    hosts: &[String],
) -> rusqlite::Result<Option<String>> {
    let mut statement = conn.prepare_cached(CLAIMABLE)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let blueprint = row.get_ref(1)?.as_str()?;
        let host = row.get_ref(2)?.as_str()?;
        if blueprints.iter().any(|b| b == blueprint) && hosts.iter().any(|h| h == host) {
            return row.get(0).map(Some);
        }
    }
    Ok(None)
}

fn claim_in(conn: &Connection, claim: &Claim) -> Result<ClaimOutcome, SqliteError> {
    if !claim.allow_multiple {
        if let Some(outcome) = held_by_user(conn, claim)? {
            return Ok(outcome);
        }
    }
    if claim.max_held.is_some() {
        let held = count(conn, HELD_COUNT, &[Value::Text(claim.user_id.clone())])?;
        if let Some(quota) = claim.user_quota(held) {
            return Ok(ClaimOutcome::QuotaExceeded(quota));
        }
    }
    let blueprints = if claim.blueprint_quotas.is_empty() {
        claim.blueprints.clone()
    } else {
        // Counted before any is taken: the write lock holds them still.
        let mut applied = BTreeMap::new();
        for name in claim.blueprint_quotas.keys() {
            applied.insert(
                name.as_str(),
                count(conn, APPLIED_OF_BLUEPRINT, &[Value::Text(name.clone())])?,
            );
        }
        match claim.blueprints_below_quota(|name| applied.get(name).copied().unwrap_or(0)) {
            Ok(blueprints) => blueprints,
            Err(quota) => return Ok(ClaimOutcome::QuotaExceeded(quota)),
        }
    };
    let Some(picked) = pick_claimable(conn, &blueprints, &claim.hosts)? else {
        return Ok(ClaimOutcome::Exhausted);
    };
    // The write lock is held since the transaction began: nobody changes the cluster
    // between the pick and the take. The model decides what a claim changes; only
    // those columns are written.
    let mut claimed = Cluster::new("", "", "");
    claimed.claim(claim);
    let Some(cluster) = change_lease_fields(conn, CLAIM_CLUSTER, &picked, &claimed)? else {
        return Ok(ClaimOutcome::Exhausted);
    };
    insert_lease(conn, &LeaseRecord::opened(&cluster, claim))?;
    Ok(ClaimOutcome::Claimed(cluster))
}

/// Runs `sql` (a claim or a release of cluster `id`) with the lease fields of
/// `changed`; the cluster as written, if the statement matched it.
fn change_lease_fields(
    conn: &Connection,
    sql: &str,
    id: &str,
    changed: &Cluster,
) -> Result<Option<Cluster>, SqliteError> {
    let mut values = lease_field_values(changed)?;
    values.push((":picked", Value::Text(id.to_owned())));
    Ok(conn
        .prepare_cached(sql)?
        .query_row(named(&values).as_slice(), cluster_from_row)
        .optional()?)
}

fn release_in(
    conn: &Connection,
    id: &str,
    now: DateTime<Utc>,
    reason: ReleaseReason,
) -> Result<Option<Cluster>, SqliteError> {
    let lease_id: Option<Option<String>> = conn
        .prepare_cached("SELECT lease_id FROM clusters WHERE id = ?1 AND status = 'applied'")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let Some(lease_id) = lease_id else {
        return Ok(None);
    };
    let mut released = Cluster::new("", "", "");
    released.release(now);
    let Some(cluster) = change_lease_fields(conn, RELEASE_CLUSTER, id, &released)? else {
        return Ok(None);
    };
    if let Some(lease_id) = lease_id {
        conn.prepare_cached("UPDATE leases SET released_at = ?2, release_reason = ?3 WHERE id = ?1")?
            .execute(params![lease_id, time(&now), reason.as_str()])?;
    }
    Ok(Some(cluster))
}

fn lease_activity_in(
    conn: &Connection,
    since: DateTime<Utc>,
    bucket: chrono::Duration,
) -> Result<Vec<LeaseActivity>, SqliteError> {
    if let Some(summary) = MinuteSummary::new(since, bucket) {
        return summarised_activity(conn, &summary);
    }
    // Only what happened since `since` is read, through the two time indexes.
    let since_text = time(&since);
    let mut leases: Vec<LeaseRecord> = Vec::new();
    for sql in [
        format!("SELECT {LEASE_COLUMNS} FROM leases WHERE applied_at >= ?1"),
        format!("SELECT {LEASE_COLUMNS} FROM leases WHERE released_at >= ?1 AND applied_at < ?1"),
    ] {
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([&since_text], lease_from_row)?;
        for lease in rows {
            leases.push(lease?);
        }
    }
    Ok(LeaseActivity::tally(&leases, since, bucket))
}

/// Lease activity from the per-minute counts the triggers keep (migration 10), the
/// heads of the minutes that bucket boundaries cut counted through the time indexes.
fn summarised_activity(
    conn: &Connection,
    summary: &MinuteSummary,
) -> Result<Vec<LeaseActivity>, SqliteError> {
    let mut stmt = conn.prepare_cached(
        "SELECT minute, applied, released FROM lease_minutes \
          WHERE minute >= ?1 AND applied + released > 0 ORDER BY minute",
    )?;
    let minutes = stmt
        .query_map([summary.first_minute().timestamp()], |row| {
            let start: i64 = row.get(0)?;
            let count = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
            Ok(LeaseActivity {
                start: DateTime::from_timestamp(start, 0).unwrap_or_default(),
                applied: count(1)?,
                released: count(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut applied =
        conn.prepare_cached("SELECT COUNT(*) FROM leases WHERE applied_at >= ?1 AND applied_at < ?2")?;
    let mut released =
        conn.prepare_cached("SELECT COUNT(*) FROM leases WHERE released_at >= ?1 AND released_at < ?2")?;
    let mut heads = Vec::new();
    for (start, end) in summary.heads(&minutes) {
        let range = [time(&start), time(&end)];
        let count = |stmt: &mut rusqlite::CachedStatement<'_>| {
            stmt.query_row(params![range[0], range[1]], |row| row.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
        };
        heads.push(LeaseActivity {
            start,
            applied: count(&mut applied)?,
            released: count(&mut released)?,
        });
    }
    Ok(summary.buckets(minutes, &heads))
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_host(&self, host: &Host) -> Result<()> {
        let host = host.clone();
        self.write("insert host", move |conn| {
            let values = host_values(&host)?;
            conn.prepare_cached(INSERT_HOST)?
                .execute(named(&values).as_slice())
                .map_err(|e| conflict_on_constraint(e, || format!("host {:?} exists", host.name)))?;
            Ok(())
        })
        .await
    }

    async fn get_host(&self, id: &str) -> Result<Option<Host>> {
        let id = id.to_owned();
        self.read("get host", move |conn| {
            let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([&id], host_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_hosts(&self, page: Page) -> Result<Listing<Host>> {
        self.read("list hosts", move |conn| {
            list_page(
                conn,
                HOST_COLUMNS,
                "hosts",
                "name",
                Vec::new(),
                page,
                host_from_row,
            )
        })
        .await
    }

    async fn update_host(&self, host: &Host) -> Result<Host> {
        let host = host.clone();
        self.write("update host", move |conn| {
            let values = host_values(&host)?;
            let changed = conn
                .prepare_cached(UPDATE_HOST)?
                .execute(named(&values).as_slice())
                .map_err(|e| conflict_on_constraint(e, || format!("host {:?} exists", host.name)))?;
            if changed == 0 {
                return Err(match host_version(conn, &host.id)? {
                    Some(stored) => Error::stale("host", &host.id, host.version, stored),
                    None => Error::not_found("host", &host.id),
                }
                .into());
            }
            Ok(Host {
                version: host.version + 1,
                ..host
            })
        })
        .await
    }

    async fn delete_host(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write("delete host", move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM hosts WHERE id = ?1")?
                .execute([&id])?
                > 0)
        })
        .await
    }

    async fn insert_blueprint(&self, blueprint: &Blueprint) -> Result<()> {
        let bp = blueprint.clone();
        self.write("insert blueprint", move |conn| insert_blueprint(conn, &bp))
            .await
    }

    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>> {
        let name = name.to_owned();
        self.read("get blueprint", move |conn| {
            let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE name = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([&name], blueprint_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_blueprints(&self, page: Page) -> Result<Listing<Blueprint>> {
        self.read("list blueprints", move |conn| {
            list_page(
                conn,
                BLUEPRINT_COLUMNS,
                "blueprints",
                "name",
                Vec::new(),
                page,
                blueprint_from_row,
            )
        })
        .await
    }

    async fn update_blueprint_policies(&self, blueprint: &Blueprint) -> Result<bool> {
        let blueprint = blueprint.clone();
        self.write("update blueprint", move |conn| {
            update_blueprint_policies(conn, &blueprint)
        })
        .await
    }

    async fn update_blueprint_version(&self, blueprint: &Blueprint, previous: u32) -> Result<bool> {
        let blueprint = blueprint.clone();
        self.write("update blueprint version", move |conn| {
            update_blueprint_version(conn, &blueprint, previous)
        })
        .await
    }

    async fn delete_blueprint(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write("delete blueprint", move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM blueprints WHERE name = ?1")?
                .execute([&name])?
                > 0)
        })
        .await
    }

    async fn insert_cluster(&self, cluster: &Cluster, capacity: u32) -> Result<bool> {
        let cluster = cluster.clone();
        self.write("insert cluster", move |conn| {
            let on_host = count(
                conn,
                "SELECT SUM(n) FROM cluster_counts WHERE host_id = ?",
                &[Value::Text(cluster.host_id.clone())],
            )?;
            if on_host >= u64::from(capacity) {
                return Ok(false);
            }
            crate::rows::insert_cluster(conn, &cluster)?;
            Ok(true)
        })
        .await
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        let id = id.to_owned();
        self.read("get cluster", move |conn| Ok(select_cluster(conn, &id)?))
            .await
    }

    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        let filter = filter.clone();
        self.read("list clusters", move |conn| {
            let total = count_clusters_matching(conn, &filter)?;
            let (clause, values) = cluster_where(&filter)?;
            let items = select_page(
                conn,
                CLUSTER_COLUMNS,
                &format!("clusters{clause}"),
                &cluster_order(filter.sort),
                values,
                page,
                cluster_from_row,
            )?;
            Ok(Listing { items, total })
        })
        .await
    }

    async fn count_clusters(&self) -> Result<Vec<ClusterCount>> {
        self.read("count clusters", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT host_id, blueprint, blueprint_version, status, n FROM cluster_counts WHERE n > 0 \
                 ORDER BY host_id, blueprint, blueprint_version, status",
            )?;
            let counts = stmt
                .query_map([], |row| {
                    Ok(ClusterCount {
                        host_id: row.get(0)?,
                        blueprint: row.get(1)?,
                        blueprint_version: row.get(2)?,
                        status: row.get::<_, String>(3)?.parse().map_err(|e: Error| {
                            rusqlite::Error::FromSqlConversionFailure(
                                3,
                                rusqlite::types::Type::Text,
                                e.into(),
                            )
                        })?,
                        count: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(counts)
        })
        .await
    }

    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        let mut cluster = cluster.clone();
        cluster.updated_at = Utc::now();
        self.write("update cluster", move |conn| {
            write_cluster(conn, &cluster)?;
            Ok(Cluster {
                version: cluster.version + 1,
                ..cluster
            })
        })
        .await
    }

    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool> {
        let id = id.to_owned();
        self.write("delete cluster", move |conn| {
            let Some(stored) = crate::rows::cluster_version(conn, &id)? else {
                return Ok(false);
            };
            if stored != version {
                return Err(Error::stale("cluster", &id, version, stored).into());
            }
            Ok(conn
                .prepare_cached("DELETE FROM clusters WHERE id = ?1")?
                .execute([&id])?
                > 0)
        })
        .await
    }

    async fn claim_cluster(&self, claim: &Claim) -> Result<ClaimOutcome> {
        let claim = claim.clone();
        self.write("claim cluster", move |conn| claim_in(conn, &claim))
            .await
    }

    async fn release_cluster(
        &self,
        id: &str,
        now: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<Option<Cluster>> {
        let id = id.to_owned();
        self.write("release cluster", move |conn| release_in(conn, &id, now, reason))
            .await
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
        let id = id.to_owned();
        self.read("get lease", move |conn| {
            let sql = format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([&id], lease_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        let user_id = user_id.map(str::to_owned);
        self.read("list leases", move |conn| {
            // '' counts every lease: user ids are never empty.
            let key = Value::Text(user_id.clone().unwrap_or_default());
            let total = count(conn, "SELECT n FROM lease_counts WHERE user_id = ?", &[key])?;
            let (from_where, values) = match user_id {
                Some(user_id) => ("leases WHERE user_id = ?", vec![Value::Text(user_id)]),
                None => ("leases", Vec::new()),
            };
            let items = select_page(
                conn,
                LEASE_COLUMNS,
                from_where,
                "applied_at DESC, id",
                values,
                page,
                lease_from_row,
            )?;
            Ok(Listing { items, total })
        })
        .await
    }

    async fn lease_activity(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
    ) -> Result<Vec<LeaseActivity>> {
        self.read("lease activity", move |conn| {
            lease_activity_in(conn, since, bucket)
        })
        .await
    }

    async fn put_operation(&self, op: &Operation) -> Result<()> {
        let op = op.clone();
        self.write("put operation", move |conn| put_operation(conn, &op))
            .await
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        let id = id.to_owned();
        self.read("get operation", move |conn| {
            let sql = format!("SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([&id], operation_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_operations(&self, filter: &OperationFilter, page: Page) -> Result<Listing<Operation>> {
        let filter = filter.clone();
        self.read("list operations", move |conn| {
            let mut clauses = Vec::new();
            let mut values = Vec::new();
            if let Some(host_id) = filter.host_id {
                clauses.push("host_id = ?");
                values.push(Value::Text(host_id));
            }
            if let Some(kind) = filter.kind {
                clauses.push("kind = ?");
                values.push(Value::Text(kind.as_str().to_owned()));
            }
            if let Some(status) = filter.status {
                clauses.push("status = ?");
                values.push(Value::Text(status.as_str().to_owned()));
            }
            let from_where = format!("operations{}", where_clause(&clauses));
            list_page(
                conn,
                OPERATION_COLUMNS,
                &from_where,
                "created_at DESC, id",
                values,
                page,
                operation_from_row,
            )
        })
        .await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write("acquire lock", move |conn| {
            // One statement: the write lock makes the check and the take atomic.
            let changed = conn
                .prepare_cached(
                    "INSERT INTO locks (name, holder, until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE locks.holder = excluded.holder OR locks.until < ?4",
                )?
                .execute(params![name, holder, time(&until), time(&now)])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_lock(&self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write("release lock", move |conn| {
            conn.prepare_cached("DELETE FROM locks WHERE name = ?1 AND holder = ?2")?
                .execute(params![name, holder])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use poolcore::{ClusterStatus, Health};

    #[test]
    fn sql_status_literals_match_the_model() {
        // CLAIMABLE, HELD, and CLAIM_CLUSTER and RELEASE_CLUSTER in rows, spell these in SQL.
        assert_eq!(ClusterStatus::Ready.as_str(), "ready");
        assert_eq!(ClusterStatus::Applied.as_str(), "applied");
        assert_eq!(Health::Ok.as_str(), "ok");
    }
}
