//! Rows and columns: how each record of the model is written to and read from its
//! table.
//!
//! Timestamps are RFC 3339 text in UTC with nine fractional digits, so that text order
//! is time order; enums are their lowercase names; structured fields are JSON text.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use poolcore::{
    Blueprint, Cluster, Error, Host, LeaseRecord, Listing, Operation, Page, Placement, ReadyBuffer, Rollout,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{conflict_on_constraint, SqliteError};

// ---------------------------------------------------------------------------------
// Column codecs

/// A timestamp as stored: fixed width, so text order is time order.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn opt_time(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(time)
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, SqliteError> {
    Ok(serde_json::to_string(value)?)
}

fn opt_json<T: Serialize>(value: &Option<T>) -> Result<Option<String>, SqliteError> {
    value.as_ref().map(json).transpose()
}

/// A timestamp column.
struct Time(DateTime<Utc>);

impl FromSql for Time {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        DateTime::parse_from_rfc3339(value.as_str()?)
            .map(|t| Time(t.with_timezone(&Utc)))
            .map_err(FromSqlError::other)
    }
}

/// A JSON text column.
struct Json<T>(T);

impl<T: DeserializeOwned> FromSql for Json<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?)
            .map(Json)
            .map_err(FromSqlError::other)
    }
}

/// A column holding one of poolcore's lowercase enum names (`ready`, `ok`, ...), or
/// another value parsed from text (`vp0.rest`).
struct Parsed<T>(T);

impl<T: FromStr<Err = Error>> FromSql for Parsed<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map(Parsed).map_err(FromSqlError::other)
    }
}

fn get_time(row: &Row<'_>, column: &str) -> rusqlite::Result<DateTime<Utc>> {
    Ok(row.get::<_, Time>(column)?.0)
}

fn get_opt_time(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(row.get::<_, Option<Time>>(column)?.map(|t| t.0))
}

fn get_json<T: DeserializeOwned>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    Ok(row.get::<_, Json<T>>(column)?.0)
}

fn get_opt_json<T: DeserializeOwned>(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<T>> {
    Ok(row.get::<_, Option<Json<T>>>(column)?.map(|j| j.0))
}

fn get_parsed<T: FromStr<Err = Error>>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    Ok(row.get::<_, Parsed<T>>(column)?.0)
}

fn get_opt_parsed<T: FromStr<Err = Error>>(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<T>> {
    Ok(row.get::<_, Option<Parsed<T>>>(column)?.map(|p| p.0))
}

/// A version as SQLite stores it (i64).
fn version(kind: &'static str, version: u64) -> Result<i64, SqliteError> {
    i64::try_from(version).map_err(|_| {
        Error::invalid(
            "version",
            format!("{kind} version {version} is too large to store"),
        )
        .into()
    })
}

/// `LIMIT` and `OFFSET` of a page; SQLite counts in i64, and [`Page::ALL`] asks for
/// `u64::MAX`.
pub(crate) fn page_bounds(page: Page) -> (i64, i64) {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (clamp(page.limit), clamp(page.offset))
}

/// Named parameters for `execute`/`query_row` from `(name, value)` pairs.
pub(crate) fn named<'a>(values: &'a [(&'static str, Value)]) -> Vec<(&'a str, &'a dyn ToSql)> {
    values
        .iter()
        .map(|(name, value)| (*name, value as &dyn ToSql))
        .collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn opt_text(s: Option<String>) -> Value {
    s.map_or(Value::Null, Value::Text)
}

/// One page of `SELECT columns FROM from_where ORDER BY order_by`, and `total`.
pub(crate) fn select_page<T>(
    conn: &Connection,
    columns: &str,
    from_where: &str,
    order_by: &str,
    values: Vec<Value>,
    page: Page,
    decode: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, SqliteError> {
    let (limit, offset) = page_bounds(page);
    let sql = format!("SELECT {columns} FROM {from_where} ORDER BY {order_by} LIMIT ? OFFSET ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let params = values
        .into_iter()
        .chain([Value::Integer(limit), Value::Integer(offset)]);
    let items = stmt
        .query_map(params_from_iter(params), decode)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(items)
}

/// A count from a query returning one integer (or NULL for none).
pub(crate) fn count(conn: &Connection, sql: &str, values: &[Value]) -> Result<u64, SqliteError> {
    // A counts table has no row for a key nothing was counted under (a user without
    // leases): that is 0.
    let n: Option<Option<i64>> = conn
        .prepare_cached(sql)?
        .query_row(params_from_iter(values.iter()), |row| row.get(0))
        .optional()?;
    Ok(u64::try_from(n.flatten().unwrap_or(0)).unwrap_or(0))
}

/// [`select_page`] with the total from `SELECT COUNT(*)` over the same rows.
pub(crate) fn list_page<T>(
    conn: &Connection,
    columns: &str,
    from_where: &str,
    order_by: &str,
    values: Vec<Value>,
    page: Page,
    decode: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Listing<T>, SqliteError> {
    let total = count(conn, &format!("SELECT COUNT(*) FROM {from_where}"), &values)?;
    let items = select_page(conn, columns, from_where, order_by, values, page, decode)?;
    Ok(Listing { items, total })
}

// ---------------------------------------------------------------------------------
// Hosts

pub(crate) const HOST_COLUMNS: &str = "id, name, kind, endpoint, public_address, capacity, autofill, \
     schedulable, labels, log, tls, status, last_seen, last_error, facts, created_at, version";

pub(crate) const INSERT_HOST: &str =
    "INSERT INTO hosts (id, name, kind, endpoint, public_address, capacity, \
     autofill, schedulable, labels, log, tls, status, last_seen, last_error, facts, created_at, version) \
     VALUES (:id, :name, :kind, :endpoint, :public_address, :capacity, :autofill, :schedulable, :labels, \
     :log, :tls, :status, :last_seen, :last_error, :facts, :created_at, :version)";

/// Replaces every field but the id when the stored version is still `:version`.
pub(crate) const UPDATE_HOST: &str = "UPDATE hosts SET name = :name, kind = :kind, endpoint = :endpoint, \
     public_address = :public_address, capacity = :capacity, autofill = :autofill, \
     schedulable = :schedulable, labels = :labels, log = :log, tls = :tls, status = :status, \
     last_seen = :last_seen, last_error = :last_error, facts = :facts, created_at = :created_at, \
     version = version + 1 WHERE id = :id AND version = :version";

pub(crate) fn host_from_row(row: &Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: row.get("id")?,
        name: row.get("name")?,
        kind: get_parsed(row, "kind")?,
        endpoint: row.get("endpoint")?,
        public_address: row.get("public_address")?,
        capacity: row.get("capacity")?,
        autofill: row.get("autofill")?,
        schedulable: row.get("schedulable")?,
        labels: get_json(row, "labels")?,
        log: get_opt_json(row, "log")?,
        tls: get_opt_json(row, "tls")?,
        status: get_parsed(row, "status")?,
        last_seen: get_opt_time(row, "last_seen")?,
        last_error: row.get("last_error")?,
        facts: get_json(row, "facts")?,
        created_at: get_time(row, "created_at")?,
        version: row.get("version")?,
    })
}

/// The named parameters of every column of `h`, for [`INSERT_HOST`] and [`UPDATE_HOST`].
pub(crate) fn host_values(h: &Host) -> Result<Vec<(&'static str, Value)>, SqliteError> {
    Ok(vec![
        (":id", text(&h.id)),
        (":name", text(&h.name)),
        (":kind", text(h.kind.as_str())),
        (":endpoint", text(&h.endpoint)),
        (":public_address", text(&h.public_address)),
        (":capacity", Value::Integer(h.capacity.into())),
        (":autofill", Value::Integer(h.autofill.into())),
        (":schedulable", Value::Integer(h.schedulable.into())),
        (":labels", Value::Text(json(&h.labels)?)),
        (":log", opt_text(opt_json(&h.log)?)),
        (":tls", opt_text(opt_json(&h.tls)?)),
        (":status", text(h.status.as_str())),
        (":last_seen", opt_text(opt_time(&h.last_seen))),
        (":last_error", opt_text(h.last_error.clone())),
        (":facts", Value::Text(json(&h.facts)?)),
        (":created_at", Value::Text(time(&h.created_at))),
        (":version", Value::Integer(version("host", h.version)?)),
    ])
}

pub(crate) fn host_version(conn: &Connection, id: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT version FROM hosts WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()
}

// ---------------------------------------------------------------------------------
// Blueprints

pub(crate) const BLUEPRINT_COLUMNS: &str =
    "name, labels, nodes, api_port, max_applied, min_ready, min_ready_percent, max_total, \
     buffer_windows, host_selector, placement, release_mode, rollout, rollout_per_minute, version, \
     version_created_at, earlier_versions, created_at";

pub(crate) fn blueprint_from_row(row: &Row<'_>) -> rusqlite::Result<Blueprint> {
    let created_at = get_time(row, "created_at")?;
    Ok(Blueprint {
        name: row.get("name")?,
        labels: get_json(row, "labels")?,
        nodes: get_json(row, "nodes")?,
        api_port: get_opt_parsed(row, "api_port")?,
        max_applied: row.get("max_applied")?,
        buffer: ReadyBuffer {
            min_ready: row.get("min_ready")?,
            min_ready_percent: row.get("min_ready_percent")?,
            max_total: row.get("max_total")?,
        },
        buffer_windows: get_json(row, "buffer_windows")?,
        placement: Placement {
            host_selector: get_json(row, "host_selector")?,
            strategy: get_parsed(row, "placement")?,
        },
        release_mode: get_parsed(row, "release_mode")?,
        rollout: Rollout {
            strategy: get_parsed(row, "rollout")?,
            max_per_minute: row.get("rollout_per_minute")?,
        },
        version: row.get("version")?,
        // Written with every new version; a blueprint of version 1 has its own time.
        version_created_at: match get_opt_time(row, "version_created_at")? {
            Some(at) => at,
            None => created_at,
        },
        earlier_versions: get_json(row, "earlier_versions")?,
        created_at,
    })
}

pub(crate) fn insert_blueprint(conn: &Connection, bp: &Blueprint) -> Result<(), SqliteError> {
    conn.prepare_cached(
        "INSERT INTO blueprints \
         (name, labels, nodes, api_port, max_applied, min_ready, min_ready_percent, max_total, \
          buffer_windows, host_selector, placement, release_mode, rollout, rollout_per_minute, version, \
          version_created_at, earlier_versions, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        bp.name,
        json(&bp.labels)?,
        json(&bp.nodes)?,
        bp.api_port.as_ref().map(ToString::to_string),
        bp.max_applied,
        bp.buffer.min_ready,
        bp.buffer.min_ready_percent,
        bp.buffer.max_total,
        json(&bp.buffer_windows)?,
        json(&bp.placement.host_selector)?,
        bp.placement.strategy.as_str(),
        bp.release_mode.as_str(),
        bp.rollout.strategy.as_str(),
        bp.rollout.max_per_minute,
        bp.version,
        time(&bp.version_created_at),
        json(&bp.earlier_versions)?,
        time(&bp.created_at)
    ])
    .map_err(|e| conflict_on_constraint(e, || format!("blueprint {:?} exists", bp.name)))?;
    Ok(())
}

/// Writes the policies of `bp` over the stored blueprint's; whether there was one.
pub(crate) fn update_blueprint_policies(conn: &Connection, bp: &Blueprint) -> Result<bool, SqliteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE blueprints SET max_applied = ?2, min_ready = ?3, min_ready_percent = ?4, max_total = ?5, \
             host_selector = ?6, placement = ?7, release_mode = ?8, buffer_windows = ?9, rollout = ?10, \
             rollout_per_minute = ?11 WHERE name = ?1",
        )?
        .execute(params![
            bp.name,
            bp.max_applied,
            bp.buffer.min_ready,
            bp.buffer.min_ready_percent,
            bp.buffer.max_total,
            json(&bp.placement.host_selector)?,
            bp.placement.strategy.as_str(),
            bp.release_mode.as_str(),
            json(&bp.buffer_windows)?,
            bp.rollout.strategy.as_str(),
            bp.rollout.max_per_minute
        ])?;
    Ok(changed > 0)
}

/// Writes the version of `bp` over the stored blueprint's if that is still at
/// `previous`; whether there was one.
pub(crate) fn update_blueprint_version(
    conn: &Connection,
    bp: &Blueprint,
    previous: u32,
) -> Result<bool, SqliteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE blueprints SET nodes = ?2, api_port = ?3, version = ?4, version_created_at = ?5, \
             earlier_versions = ?6 WHERE name = ?1 AND version = ?7",
        )?
        .execute(params![
            bp.name,
            json(&bp.nodes)?,
            bp.api_port.as_ref().map(ToString::to_string),
            bp.version,
            time(&bp.version_created_at),
            json(&bp.earlier_versions)?,
            previous
        ])?;
    if changed > 0 {
        return Ok(true);
    }
    let stored: Option<u32> = conn
        .prepare_cached("SELECT version FROM blueprints WHERE name = ?1")?
        .query_row([&bp.name], |row| row.get(0))
        .optional()?;
    match stored {
        None => Ok(false),
        Some(stored) => Err(Error::stale("blueprint", &bp.name, previous.into(), stored.into()).into()),
    }
}

// ---------------------------------------------------------------------------------
// Clusters

/// The columns of a cluster, as a literal for `concat!`.
macro_rules! cluster_columns {
    () => {
        "id, name, blueprint, host_id, status, status_reason, health, health_reason, user_id, \
         applied_at, expires_at, metadata, lease_id, single_apply, stopped_nodes, deployment, \
         created_at, updated_at, version, blueprint_version"
    };
}

pub(crate) const CLUSTER_COLUMNS: &str = cluster_columns!();

pub(crate) const INSERT_CLUSTER: &str = "INSERT INTO clusters (id, name, blueprint, host_id, status, \
     status_reason, health, health_reason, user_id, applied_at, expires_at, metadata, lease_id, single_apply, \
     stopped_nodes, deployment, created_at, updated_at, version, blueprint_version) VALUES (:id, :name, \
     :blueprint, :host_id, :status, :status_reason, :health, :health_reason, :user_id, :applied_at, :expires_at, \
     :metadata, :lease_id, :single_apply, :stopped_nodes, :deployment, :created_at, :updated_at, :version, \
     :blueprint_version)";

/// Replaces every field but the id when the stored version is still `:version`.
pub(crate) const UPDATE_CLUSTER: &str = "UPDATE clusters SET name = :name, blueprint = :blueprint, \
     host_id = :host_id, status = :status, status_reason = :status_reason, health = :health, \
     health_reason = :health_reason, user_id = :user_id, applied_at = :applied_at, expires_at = :expires_at, \
     metadata = :metadata, lease_id = :lease_id, single_apply = :single_apply, stopped_nodes = :stopped_nodes, \
     deployment = :deployment, created_at = :created_at, updated_at = :updated_at, \
     blueprint_version = :blueprint_version, version = version + 1 WHERE id = :id AND version = :version";

pub(crate) fn cluster_from_row(row: &Row<'_>) -> rusqlite::Result<Cluster> {
    Ok(Cluster {
        id: row.get("id")?,
        name: row.get("name")?,
        blueprint: row.get("blueprint")?,
        blueprint_version: row.get("blueprint_version")?,
        host_id: row.get("host_id")?,
        status: get_parsed(row, "status")?,
        status_reason: row.get("status_reason")?,
        health: get_parsed(row, "health")?,
        health_reason: row.get("health_reason")?,
        user_id: row.get("user_id")?,
        applied_at: get_opt_time(row, "applied_at")?,
        expires_at: get_opt_time(row, "expires_at")?,
        metadata: get_json(row, "metadata")?,
        lease_id: row.get("lease_id")?,
        single_apply: row.get("single_apply")?,
        stopped_nodes: get_json(row, "stopped_nodes")?,
        deployment: get_json(row, "deployment")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        version: row.get("version")?,
    })
}

/// The named parameters of every column of `c`, for [`INSERT_CLUSTER`] and
/// [`UPDATE_CLUSTER`].
pub(crate) fn cluster_values(c: &Cluster) -> Result<Vec<(&'static str, Value)>, SqliteError> {
    Ok(vec![
        (":id", text(&c.id)),
        (":name", text(&c.name)),
        (":blueprint", text(&c.blueprint)),
        (":host_id", text(&c.host_id)),
        (":status", text(c.status.as_str())),
        (":status_reason", opt_text(c.status_reason.clone())),
        (":health", text(c.health.as_str())),
        (":health_reason", opt_text(c.health_reason.clone())),
        (":user_id", opt_text(c.user_id.clone())),
        (":applied_at", opt_text(opt_time(&c.applied_at))),
        (":expires_at", opt_text(opt_time(&c.expires_at))),
        (":metadata", Value::Text(json(&c.metadata)?)),
        (":lease_id", opt_text(c.lease_id.clone())),
        (":single_apply", Value::Integer(c.single_apply.into())),
        (":stopped_nodes", Value::Text(json(&c.stopped_nodes)?)),
        (":deployment", Value::Text(json(&c.deployment)?)),
        (":created_at", Value::Text(time(&c.created_at))),
        (":updated_at", Value::Text(time(&c.updated_at))),
        (":version", Value::Integer(version("cluster", c.version)?)),
        (":blueprint_version", Value::Integer(c.blueprint_version.into())),
    ])
}

/// The columns a claim or a release changes ([`Cluster::claim`], [`Cluster::release`]):
/// writing only these leaves the indexes on the other columns untouched.
const LEASE_FIELDS: [&str; 9] = [
    ":status",
    ":user_id",
    ":applied_at",
    ":expires_at",
    ":metadata",
    ":lease_id",
    ":single_apply",
    ":stopped_nodes",
    ":updated_at",
];

/// `SET` of the columns a claim or a release changes, and the version bumped.
macro_rules! set_lease_fields {
    () => {
        "SET status = :status, user_id = :user_id, applied_at = :applied_at, \
         expires_at = :expires_at, metadata = :metadata, lease_id = :lease_id, \
         single_apply = :single_apply, stopped_nodes = :stopped_nodes, \
         updated_at = :updated_at, version = version + 1"
    };
}

/// Takes the cluster `:picked` names for a claim; the other lease fields as
/// [`lease_field_values`] gives them.
pub(crate) const CLAIM_CLUSTER: &str = concat!(
    "UPDATE clusters ",
    set_lease_fields!(),
    " WHERE id = :picked AND status = 'ready' RETURNING ",
    cluster_columns!()
);

/// Releases the applied cluster `:picked`.
pub(crate) const RELEASE_CLUSTER: &str = concat!(
    "UPDATE clusters ",
    set_lease_fields!(),
    " WHERE id = :picked AND status = 'applied' RETURNING ",
    cluster_columns!()
);

/// The values of the columns a claim or a release writes, taken from `changed`: a
/// cluster the model's [`Cluster::claim`] or [`Cluster::release`] changed.
pub(crate) fn lease_field_values(changed: &Cluster) -> Result<Vec<(&'static str, Value)>, SqliteError> {
    Ok(cluster_values(changed)?
        .into_iter()
        .filter(|(name, _)| LEASE_FIELDS.contains(name))
        .collect())
}

/// Inserts `cluster`, in the caller's transaction.
pub(crate) fn insert_cluster(conn: &Connection, cluster: &Cluster) -> Result<(), SqliteError> {
    let values = cluster_values(cluster)?;
    conn.prepare_cached(INSERT_CLUSTER)?
        .execute(named(&values).as_slice())
        .map_err(|e| conflict_on_constraint(e, || format!("cluster {:?} exists", cluster.name)))?;
    Ok(())
}

/// The cluster with `id`, in the caller's transaction.
pub(crate) fn select_cluster(conn: &Connection, id: &str) -> rusqlite::Result<Option<Cluster>> {
    let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], cluster_from_row)
        .optional()
}

pub(crate) fn cluster_version(conn: &Connection, id: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT version FROM clusters WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()
}

/// Writes `cluster` over the stored version `cluster.version`, in the caller's
/// transaction; `Error::Stale` or `Error::NotFound` otherwise.
pub(crate) fn write_cluster(conn: &Connection, cluster: &Cluster) -> Result<(), SqliteError> {
    let values = cluster_values(cluster)?;
    let changed = conn
        .prepare_cached(UPDATE_CLUSTER)?
        .execute(named(&values).as_slice())
        .map_err(|e| conflict_on_constraint(e, || format!("cluster {:?} exists", cluster.name)))?;
    if changed == 1 {
        return Ok(());
    }
    Err(match cluster_version(conn, &cluster.id)? {
        Some(stored) => Error::stale("cluster", &cluster.id, cluster.version, stored),
        None => Error::not_found("cluster", &cluster.id),
    }
    .into())
}

// ---------------------------------------------------------------------------------
// Leases

pub(crate) const LEASE_COLUMNS: &str =
    "id, cluster_id, cluster_name, blueprint, host_id, user_id, metadata, \
     applied_at, released_at, release_reason";

pub(crate) fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<LeaseRecord> {
    Ok(LeaseRecord {
        id: row.get("id")?,
        cluster_id: row.get("cluster_id")?,
        cluster_name: row.get("cluster_name")?,
        blueprint: row.get("blueprint")?,
        host_id: row.get("host_id")?,
        user_id: row.get("user_id")?,
        metadata: get_json(row, "metadata")?,
        applied_at: get_time(row, "applied_at")?,
        released_at: get_opt_time(row, "released_at")?,
        release_reason: get_opt_parsed(row, "release_reason")?,
    })
}

pub(crate) fn insert_lease(conn: &Connection, lease: &LeaseRecord) -> Result<(), SqliteError> {
    conn.prepare_cached(
        "INSERT INTO leases (id, cluster_id, cluster_name, blueprint, host_id, user_id, metadata, \
         applied_at, released_at, release_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        lease.id,
        lease.cluster_id,
        lease.cluster_name,
        lease.blueprint,
        lease.host_id,
        lease.user_id,
        json(&lease.metadata)?,
        time(&lease.applied_at),
        opt_time(&lease.released_at),
        lease.release_reason.map(|r| r.as_str()),
    ])
    .map_err(|e| conflict_on_constraint(e, || format!("lease {:?} exists", lease.id)))?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Operations

pub(crate) const OPERATION_COLUMNS: &str =
    "id, kind, host_id, status, done, total, error, created_at, updated_at, finished_at";

pub(crate) fn operation_from_row(row: &Row<'_>) -> rusqlite::Result<Operation> {
    Ok(Operation {
        id: row.get("id")?,
        kind: get_parsed(row, "kind")?,
        host_id: row.get("host_id")?,
        status: get_parsed(row, "status")?,
        done: row.get("done")?,
        total: row.get("total")?,
        error: row.get("error")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        finished_at: get_opt_time(row, "finished_at")?,
    })
}

pub(crate) fn put_operation(conn: &Connection, op: &Operation) -> Result<(), SqliteError> {
    conn.prepare_cached(
        "INSERT INTO operations (id, kind, host_id, status, done, total, error, created_at, updated_at, \
         finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, host_id = excluded.host_id, \
         status = excluded.status, done = excluded.done, total = excluded.total, error = excluded.error, \
         created_at = excluded.created_at, updated_at = excluded.updated_at, finished_at = excluded.finished_at",
    )?
    .execute(params![
        op.id,
        op.kind.as_str(),
        op.host_id,
        op.status.as_str(),
        op.done,
        op.total,
        op.error,
        time(&op.created_at),
        time(&op.updated_at),
        opt_time(&op.finished_at),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let early = DateTime::parse_from_rfc3339("2024-01-01T00:00:09.5Z").expect("valid time");
        let late = DateTime::parse_from_rfc3339("2024-01-01T00:00:10Z").expect("valid time");
        let (early, late) = (time(&early.with_timezone(&Utc)), time(&late.with_timezone(&Utc)));
        assert!(early < late, "{early} !< {late}");
        assert_eq!(early.len(), late.len());
    }

    #[test]
    fn page_all_is_clamped() {
        assert_eq!(page_bounds(Page::ALL), (i64::MAX, 0));
        assert_eq!(page_bounds(Page { offset: 5, limit: 10 }), (10, 5));
    }
}
