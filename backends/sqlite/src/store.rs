//! [`SqliteStore`]: the [`Store`] on SQLite, its connections and its queries.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use poolcore::{
    Blueprint, Claim, Cluster, ClusterFilter, Error, Host, LeaseRecord, Listing, Operation, Page, Result,
    Store,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::{
    named_params, params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, ToSql,
    TransactionBehavior,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::SqliteConfig;
use crate::schema;

/// A [`Store`] in one SQLite database: a file shared by any number of processes, or
/// a private in-memory database.
///
/// Statements run on tokio's blocking threads, never on the async executor. One
/// connection writes, in `BEGIN IMMEDIATE` transactions; the others
/// ([`SqliteConfig::pool_size`] in all) read beside it, which WAL mode allows. Across
/// processes SQLite's file locks order the writers, and a writer that waits longer
/// than the busy timeout fails with [`Error::Unavailable`].
///
/// Open it with [`SqliteStore::open`], [`SqliteStore::memory`],
/// [`SqliteStore::from_url`] or [`SqliteStore::with_config`].
pub struct SqliteStore {
    config: SqliteConfig,
    writer: Arc<Connections>,
    /// `None` when reads share the writer (in memory, or a pool of one).
    readers: Option<Arc<Connections>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.config.path)
            .field("pool_size", &self.config.pool_size)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path` with default
    /// options, and brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Backend`] when the file cannot be opened or its schema is newer than
    /// this code.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::with_config(SqliteConfig::new(path)).await
    }

    /// A new, empty, private database in memory: gone when the store is dropped.
    pub async fn memory() -> Result<Self> {
        Self::with_config(SqliteConfig::memory()).await
    }

    /// Opens the database a store URL names; see [`SqliteConfig::from_url`] for the
    /// forms (`sqlite://./poolmanager.db`, `sqlite:///abs/path.db`, `sqlite::memory:`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not a SQLite one, else as [`SqliteStore::open`].
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::with_config(SqliteConfig::from_url(url)?).await
    }

    /// Opens the database `config` describes and brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad config, else as [`SqliteStore::open`].
    pub async fn with_config(config: SqliteConfig) -> Result<Self> {
        config.validate()?;
        let opening = config.clone();
        let (writer, readers) = tokio::task::spawn_blocking(move || open_connections(&opening))
            .await
            .map_err(join_error)?
            .map_err(|e| e.into_error("open database"))?;
        let readers = (!readers.is_empty()).then(|| Connections::new(readers));
        Ok(SqliteStore {
            config,
            writer: Connections::new(vec![writer]),
            readers,
        })
    }

    /// The config the store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer connection and
    /// commits if it succeeds; `op` names the operation in errors.
    async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        self.writer
            .run(op, move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            })
            .await
    }

    /// Runs `f` in a read transaction (one snapshot) on a reader connection.
    async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        let connections = self.readers.as_ref().unwrap_or(&self.writer);
        connections
            .run(op, move |conn| {
                let tx = conn.transaction()?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            })
            .await
    }
}

// ---------------------------------------------------------------------------------
// Connections

/// A few open connections to one database, each used by one blocking thread at a
/// time. The semaphore holds one permit per idle connection.
struct Connections {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Connections {
    fn new(connections: Vec<Connection>) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(connections.len()));
        Arc::new(Connections {
            idle: Mutex::new(connections),
            permits,
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The vector is consistent whatever a panicking holder did; keep using it.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for an idle connection and runs `f` with it on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("sqlite store", "it is closed"))?;
        let conn = self.idle().pop().ok_or_else(|| {
            Error::backend(
                "sqlite",
                format!("{op}: no idle connection although a permit was free"),
            )
        })?;
        let mut checkout = Checkout {
            conn: Some(conn),
            home: Arc::clone(self),
            _permit: permit,
        };
        // Created here, the span is a child of the caller's (the pool operation's).
        let span = tracing::debug_span!("sqlite", op);
        tokio::task::spawn_blocking(move || {
            let _entered = span.entered();
            match checkout.conn.as_mut() {
                Some(conn) => f(conn).map_err(|e| e.into_error(op)),
                None => Err(Error::backend("sqlite", format!("{op}: connection missing"))),
            }
        })
        .await
        .map_err(join_error)?
    }
}

/// A connection taken from [`Connections`]; goes back, and frees its permit, when
/// dropped, also if the work on it panicked (its transaction has rolled back by then).
struct Checkout {
    conn: Option<Connection>,
    home: Arc<Connections>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.home.idle().push(conn);
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    match e.try_into_panic() {
        // A panic in a query is a bug: let it reach the caller as a panic.
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => Error::unavailable("sqlite store", format!("its worker thread stopped: {e}")),
    }
}

/// Opens the writer (setting WAL mode and migrating the schema) and then the readers.
fn open_connections(config: &SqliteConfig) -> Result<(Connection, Vec<Connection>), SqliteError> {
    let path = config.path.display().to_string();
    let open_failed = |source| SqliteError::Open {
        path: path.clone(),
        source,
    };
    if config.is_memory() {
        let mut conn = Connection::open_in_memory().map_err(open_failed)?;
        configure(&conn, config)?;
        schema::migrate(&mut conn)?;
        return Ok((conn, Vec::new()));
    }
    let write_flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut writer = Connection::open_with_flags(&config.path, write_flags).map_err(open_failed)?;
    configure(&writer, config)?;
    let mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path,
            mode,
            "sqlite refused WAL mode; readers will wait for writers"
        );
    }
    let found = schema::migrate(&mut writer)?;
    tracing::debug!(
        path,
        found,
        current = schema::current_version(),
        "opened sqlite store"
    );
    let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let readers = (1..config.pool_size)
        .map(|_| {
            let reader = Connection::open_with_flags(&config.path, read_flags).map_err(open_failed)?;
            configure(&reader, config)?;
            Ok(reader)
        })
        .collect::<Result<Vec<_>, SqliteError>>()?;
    Ok((writer, readers))
}

fn configure(conn: &Connection, config: &SqliteConfig) -> Result<(), SqliteError> {
    conn.busy_timeout(config.busy_timeout())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // With WAL, NORMAL loses at most the last commits on power loss, never consistency.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

// ---------------------------------------------------------------------------------
// Errors

/// What can go wrong inside the store; becomes an [`Error`] with the operation's name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    /// A statement failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A structured field could not be written as JSON.
    #[error("cannot encode as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database could not be opened.
    #[error("cannot open sqlite database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    /// The database was written by newer code.
    #[error(
        "database {path} has schema version {found}, newer than version {supported} that this \
         poolcore-sqlite knows; open it with a newer PoolManager"
    )]
    SchemaTooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    /// A pool error decided inside a transaction (conflict, not found).
    #[error(transparent)]
    Pool(#[from] Error),
}

/// A failed operation, for [`Error::Backend`]'s source.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
struct Failed {
    op: &'static str,
    cause: SqliteError,
}

impl SqliteError {
    /// The pool error for this failure of `op`: constraint violations are conflicts,
    /// a busy or locked database is unavailable (retrying may work), the rest is a
    /// backend failure.
    fn into_error(self, op: &'static str) -> Error {
        match self {
            SqliteError::Pool(e) => e,
            SqliteError::Sqlite(ref e) => match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => Error::conflict(format!("{op}: {e}")),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                    Error::unavailable("sqlite database", format!("{op}: {e}"))
                }
                _ => Error::backend("sqlite", Failed { op, cause: self }),
            },
            cause => Error::backend("sqlite", Failed { op, cause }),
        }
    }
}

/// `e`, or [`Error::Conflict`] with `message` when `e` is a constraint violation.
fn conflict_on_constraint(e: rusqlite::Error, message: impl FnOnce() -> String) -> SqliteError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => SqliteError::Pool(Error::conflict(message())),
        _ => SqliteError::Sqlite(e),
    }
}

// ---------------------------------------------------------------------------------
// Column codecs

/// Timestamps are RFC 3339 in UTC with nine fractional digits: fixed width, so text
/// order is time order.
fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(time)
}

fn json<T: Serialize>(value: &T) -> Result<String, SqliteError> {
    Ok(serde_json::to_string(value)?)
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

/// A column holding one of poolcore's lowercase enum names (`ready`, `ok`, ...).
struct Name<T>(T);

impl<T: FromStr<Err = Error>> FromSql for Name<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map(Name).map_err(FromSqlError::other)
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

fn get_name<T: FromStr<Err = Error>>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    Ok(row.get::<_, Name<T>>(column)?.0)
}

/// `LIMIT` and `OFFSET` of a page; SQLite counts in i64, and [`Page::ALL`] asks for
/// `u64::MAX`.
fn page_bounds(page: Page) -> (i64, i64) {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (clamp(page.limit), clamp(page.offset))
}

// ---------------------------------------------------------------------------------
// Hosts

const HOST_COLUMNS: &str = "id, name, kind, endpoint, public_address, capacity, autofill, schedulable, \
     labels, log, status, last_seen, last_error, facts, created_at";

fn host_from_row(row: &Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: row.get("id")?,
        name: row.get("name")?,
        kind: get_name(row, "kind")?,
        endpoint: row.get("endpoint")?,
        public_address: row.get("public_address")?,
        capacity: row.get("capacity")?,
        autofill: row.get("autofill")?,
        schedulable: row.get("schedulable")?,
        labels: get_json(row, "labels")?,
        log: row.get::<_, Option<Json<_>>>("log")?.map(|j| j.0),
        status: get_name(row, "status")?,
        last_seen: get_opt_time(row, "last_seen")?,
        last_error: row.get("last_error")?,
        facts: get_json(row, "facts")?,
        created_at: get_time(row, "created_at")?,
    })
}

/// Writes every column of `host` with `sql`, whose parameters are `?1..?15` in
/// [`HOST_COLUMNS`] order; returns the rows changed.
fn write_host(conn: &Connection, sql: &str, host: &Host) -> Result<usize, rusqlite::Error> {
    let labels = serde_json::to_string(&host.labels).map_err(to_sql_error)?;
    let log = host
        .log
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(to_sql_error)?;
    let facts = serde_json::to_string(&host.facts).map_err(to_sql_error)?;
    conn.prepare_cached(sql)?.execute(params![
        host.id,
        host.name,
        host.kind.as_str(),
        host.endpoint,
        host.public_address,
        host.capacity,
        host.autofill,
        host.schedulable,
        labels,
        log,
        host.status.as_str(),
        opt_time(&host.last_seen),
        host.last_error,
        facts,
        time(&host.created_at),
    ])
}

fn to_sql_error(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

// ---------------------------------------------------------------------------------
// Blueprints

fn blueprint_from_row(row: &Row<'_>) -> rusqlite::Result<Blueprint> {
    Ok(Blueprint {
        name: row.get("name")?,
        labels: get_json(row, "labels")?,
        nodes: get_json(row, "nodes")?,
        created_at: get_time(row, "created_at")?,
    })
}

// ---------------------------------------------------------------------------------
// Clusters

const CLUSTER_COLUMNS: &str = "id, name, blueprint, host_id, status, status_reason, health, health_reason, \
     user_id, applied_at, expires_at, metadata, lease_id, deployment, created_at, updated_at, version";

const INSERT_CLUSTER: &str = "INSERT INTO clusters (id, name, blueprint, host_id, status, status_reason, \
     health, health_reason, user_id, applied_at, expires_at, metadata, lease_id, deployment, created_at, \
     updated_at, version) VALUES (:id, :name, :blueprint, :host_id, :status, :status_reason, :health, \
     :health_reason, :user_id, :applied_at, :expires_at, :metadata, :lease_id, :deployment, :created_at, \
     :updated_at, :version)";

/// Replaces every field but the id when the stored version is still `:version`.
const UPDATE_CLUSTER: &str = "UPDATE clusters SET name = :name, blueprint = :blueprint, host_id = :host_id, \
     status = :status, status_reason = :status_reason, health = :health, health_reason = :health_reason, \
     user_id = :user_id, applied_at = :applied_at, expires_at = :expires_at, metadata = :metadata, \
     lease_id = :lease_id, deployment = :deployment, created_at = :created_at, updated_at = :updated_at, \
     version = version + 1 \
     WHERE id = :id AND version = :version \
     RETURNING id, name, blueprint, host_id, status, status_reason, health, health_reason, user_id, \
     applied_at, expires_at, metadata, lease_id, deployment, created_at, updated_at, version";

/// The claim: one statement picks a claimable cluster and takes it, so no two claims,
/// in any process, can pick the same one. The order is the same as `MemStore`'s: by id.
const CLAIM_CLUSTER: &str = "UPDATE clusters SET status = 'applied', user_id = :user_id, \
     applied_at = :now, expires_at = :expires_at, metadata = :metadata, lease_id = :lease_id, \
     updated_at = :now, version = version + 1 \
     WHERE status = 'ready' AND id = ( \
         SELECT id FROM clusters \
         WHERE status = 'ready' AND health = 'ok' \
           AND blueprint IN (SELECT value FROM json_each(:blueprints)) \
           AND host_id IN (SELECT value FROM json_each(:hosts)) \
         ORDER BY id LIMIT 1) \
     RETURNING id, name, blueprint, host_id, status, status_reason, health, health_reason, user_id, \
     applied_at, expires_at, metadata, lease_id, deployment, created_at, updated_at, version";

fn cluster_from_row(row: &Row<'_>) -> rusqlite::Result<Cluster> {
    Ok(Cluster {
        id: row.get("id")?,
        name: row.get("name")?,
        blueprint: row.get("blueprint")?,
        host_id: row.get("host_id")?,
        status: get_name(row, "status")?,
        status_reason: row.get("status_reason")?,
        health: get_name(row, "health")?,
        health_reason: row.get("health_reason")?,
        user_id: row.get("user_id")?,
        applied_at: get_opt_time(row, "applied_at")?,
        expires_at: get_opt_time(row, "expires_at")?,
        metadata: get_json(row, "metadata")?,
        lease_id: row.get("lease_id")?,
        deployment: get_json(row, "deployment")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        version: row.get("version")?,
    })
}

/// The named parameters of every column of `c`, for [`INSERT_CLUSTER`] and
/// [`UPDATE_CLUSTER`].
fn cluster_values(c: &Cluster) -> Result<Vec<(&'static str, Value)>, SqliteError> {
    let text = |s: &str| Value::Text(s.to_owned());
    let opt_text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
    let version = i64::try_from(c.version)
        .map_err(|_| Error::invalid("version", format!("{} is too large to store", c.version)))?;
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
        (":deployment", Value::Text(json(&c.deployment)?)),
        (":created_at", Value::Text(time(&c.created_at))),
        (":updated_at", Value::Text(time(&c.updated_at))),
        (":version", Value::Integer(version)),
    ])
}

fn named<'a>(values: &'a [(&'static str, Value)]) -> Vec<(&'a str, &'a dyn ToSql)> {
    values
        .iter()
        .map(|(name, value)| (*name, value as &dyn ToSql))
        .collect()
}

fn cluster_version(conn: &Connection, id: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT version FROM clusters WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()
}

fn changed_meanwhile(id: &str, version: u64, stored: u64) -> SqliteError {
    SqliteError::Pool(Error::conflict(format!(
        "cluster {id} changed meanwhile (version {version} is now {stored})"
    )))
}

/// `WHERE` clause and parameters of a cluster filter.
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
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    Ok((clause, values))
}

/// Runs `SELECT COUNT(*)` and one page of `SELECT columns` over `from_where`, in the
/// caller's read transaction.
fn list_page<T>(
    conn: &Connection,
    columns: &str,
    from_where: &str,
    order_by: &str,
    values: Vec<Value>,
    page: Page,
    decode: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Listing<T>, SqliteError> {
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM {from_where}"))?
        .query_row(params_from_iter(values.iter()), |row| row.get(0))?;
    let (limit, offset) = page_bounds(page);
    let sql = format!("SELECT {columns} FROM {from_where} ORDER BY {order_by} LIMIT ? OFFSET ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let params = values
        .into_iter()
        .chain([Value::Integer(limit), Value::Integer(offset)]);
    let items = stmt
        .query_map(params_from_iter(params), decode)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Listing {
        items,
        total: u64::try_from(total).unwrap_or(0),
    })
}

// ---------------------------------------------------------------------------------
// Leases and operations

const LEASE_COLUMNS: &str =
    "id, cluster_id, cluster_name, blueprint, host_id, user_id, metadata, applied_at, released_at";

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<LeaseRecord> {
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
    })
}

fn insert_lease(conn: &Connection, lease: &LeaseRecord) -> Result<(), SqliteError> {
    conn.prepare_cached(
        "INSERT INTO leases (id, cluster_id, cluster_name, blueprint, host_id, user_id, metadata, \
         applied_at, released_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    ])
    .map_err(|e| conflict_on_constraint(e, || format!("lease {:?} exists", lease.id)))?;
    Ok(())
}

const OPERATION_COLUMNS: &str = "id, kind, host_id, status, done, total, error, created_at, finished_at";

fn operation_from_row(row: &Row<'_>) -> rusqlite::Result<Operation> {
    Ok(Operation {
        id: row.get("id")?,
        kind: get_name(row, "kind")?,
        host_id: row.get("host_id")?,
        status: get_name(row, "status")?,
        done: row.get("done")?,
        total: row.get("total")?,
        error: row.get("error")?,
        created_at: get_time(row, "created_at")?,
        finished_at: get_opt_time(row, "finished_at")?,
    })
}

// ---------------------------------------------------------------------------------
// The Store

#[async_trait]
impl Store for SqliteStore {
    async fn insert_host(&self, host: &Host) -> Result<()> {
        let host = host.clone();
        self.write("insert host", move |conn| {
            let sql = format!(
                "INSERT INTO hosts ({HOST_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            );
            write_host(conn, &sql, &host)
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

    async fn list_hosts(&self) -> Result<Vec<Host>> {
        self.read("list hosts", |conn| {
            let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name");
            let mut stmt = conn.prepare_cached(&sql)?;
            let hosts = stmt
                .query_map([], host_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(hosts)
        })
        .await
    }

    async fn update_host(&self, host: &Host) -> Result<()> {
        let host = host.clone();
        self.write("update host", move |conn| {
            let sql = "UPDATE hosts SET name = ?2, kind = ?3, endpoint = ?4, public_address = ?5, \
                       capacity = ?6, autofill = ?7, schedulable = ?8, labels = ?9, log = ?10, status = ?11, \
                       last_seen = ?12, last_error = ?13, facts = ?14, created_at = ?15 WHERE id = ?1";
            let changed = write_host(conn, sql, &host)
                .map_err(|e| conflict_on_constraint(e, || format!("host {:?} exists", host.name)))?;
            if changed == 0 {
                return Err(Error::not_found("host", &host.id).into());
            }
            Ok(())
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
        self.write("insert blueprint", move |conn| {
            conn.prepare_cached(
                "INSERT INTO blueprints (name, labels, nodes, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                bp.name,
                json(&bp.labels)?,
                json(&bp.nodes)?,
                time(&bp.created_at)
            ])
            .map_err(|e| conflict_on_constraint(e, || format!("blueprint {:?} exists", bp.name)))?;
            Ok(())
        })
        .await
    }

    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>> {
        let name = name.to_owned();
        self.read("get blueprint", move |conn| {
            Ok(conn
                .prepare_cached("SELECT name, labels, nodes, created_at FROM blueprints WHERE name = ?1")?
                .query_row([&name], blueprint_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_blueprints(&self) -> Result<Vec<Blueprint>> {
        self.read("list blueprints", |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, labels, nodes, created_at FROM blueprints ORDER BY name")?;
            let blueprints = stmt
                .query_map([], blueprint_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(blueprints)
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

    async fn insert_cluster(&self, cluster: &Cluster) -> Result<()> {
        let cluster = cluster.clone();
        self.write("insert cluster", move |conn| {
            let values = cluster_values(&cluster)?;
            conn.prepare_cached(INSERT_CLUSTER)?
                .execute(named(&values).as_slice())
                .map_err(|e| conflict_on_constraint(e, || format!("cluster {:?} exists", cluster.name)))?;
            Ok(())
        })
        .await
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        let id = id.to_owned();
        self.read("get cluster", move |conn| {
            let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([&id], cluster_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        let filter = filter.clone();
        self.read("list clusters", move |conn| {
            let (clause, values) = cluster_where(&filter)?;
            let from_where = format!("clusters{clause}");
            list_page(
                conn,
                CLUSTER_COLUMNS,
                &from_where,
                "name, id",
                values,
                page,
                cluster_from_row,
            )
        })
        .await
    }

    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        let mut cluster = cluster.clone();
        cluster.updated_at = Utc::now();
        self.write("update cluster", move |conn| {
            let values = cluster_values(&cluster)?;
            let written = conn
                .prepare_cached(UPDATE_CLUSTER)?
                .query_row(named(&values).as_slice(), cluster_from_row)
                .optional()
                .map_err(|e| conflict_on_constraint(e, || format!("cluster {:?} exists", cluster.name)))?;
            match written {
                Some(written) => Ok(written),
                None => match cluster_version(conn, &cluster.id)? {
                    Some(stored) => Err(changed_meanwhile(&cluster.id, cluster.version, stored)),
                    None => Err(Error::not_found("cluster", &cluster.id).into()),
                },
            }
        })
        .await
    }

    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool> {
        let id = id.to_owned();
        self.write("delete cluster", move |conn| {
            let Some(stored) = cluster_version(conn, &id)? else {
                return Ok(false);
            };
            if stored != version {
                return Err(changed_meanwhile(&id, version, stored));
            }
            Ok(conn
                .prepare_cached("DELETE FROM clusters WHERE id = ?1")?
                .execute([&id])?
                > 0)
        })
        .await
    }

    async fn claim_cluster(&self, claim: &Claim) -> Result<Option<Cluster>> {
        let claim = claim.clone();
        self.write("claim cluster", move |conn| {
            let claimed = conn
                .prepare_cached(CLAIM_CLUSTER)?
                .query_row(
                    named_params! {
                        ":user_id": claim.user_id,
                        ":now": time(&claim.now),
                        ":expires_at": opt_time(&claim.expires_at),
                        ":metadata": json(&claim.metadata)?,
                        ":lease_id": claim.lease_id,
                        ":blueprints": json(&claim.blueprints)?,
                        ":hosts": json(&claim.hosts)?,
                    },
                    cluster_from_row,
                )
                .optional()?;
            let Some(cluster) = claimed else {
                return Ok(None);
            };
            insert_lease(conn, &LeaseRecord::opened(&cluster, &claim))?;
            Ok(Some(cluster))
        })
        .await
    }

    async fn release_cluster(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Cluster>> {
        let id = id.to_owned();
        self.write("release cluster", move |conn| {
            let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?1 AND status = 'applied'");
            let Some(mut cluster) = conn
                .prepare_cached(&sql)?
                .query_row([&id], cluster_from_row)
                .optional()?
            else {
                return Ok(None);
            };
            // The write lock is held since BEGIN IMMEDIATE: nobody changes it between the
            // read and the write. The model decides what a release changes.
            let lease_id = cluster.lease_id.take();
            let read_version = cluster.version;
            cluster.release(now);
            // UPDATE_CLUSTER checks the version read and bumps it itself, as release did.
            cluster.version = read_version;
            let values = cluster_values(&cluster)?;
            let released = conn
                .prepare_cached(UPDATE_CLUSTER)?
                .query_row(named(&values).as_slice(), cluster_from_row)?;
            if let Some(lease_id) = lease_id {
                conn.prepare_cached("UPDATE leases SET released_at = ?2 WHERE id = ?1")?
                    .execute(params![lease_id, time(&now)])?;
            }
            Ok(Some(released))
        })
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
            let (from_where, values) = match user_id {
                Some(user_id) => ("leases WHERE user_id = ?", vec![Value::Text(user_id)]),
                None => ("leases", Vec::new()),
            };
            list_page(
                conn,
                LEASE_COLUMNS,
                from_where,
                "applied_at DESC, id",
                values,
                page,
                lease_from_row,
            )
        })
        .await
    }

    async fn put_operation(&self, op: &Operation) -> Result<()> {
        let op = op.clone();
        self.write("put operation", move |conn| {
            conn.prepare_cached(
                "INSERT INTO operations (id, kind, host_id, status, done, total, error, created_at, \
                 finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, host_id = excluded.host_id, \
                 status = excluded.status, done = excluded.done, total = excluded.total, \
                 error = excluded.error, created_at = excluded.created_at, finished_at = excluded.finished_at",
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
                opt_time(&op.finished_at),
            ])?;
            Ok(())
        })
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

    use super::*;

    #[test]
    fn sql_status_literals_match_the_model() {
        // CLAIM_CLUSTER and release_cluster spell these in SQL.
        assert_eq!(ClusterStatus::Ready.as_str(), "ready");
        assert_eq!(ClusterStatus::Applied.as_str(), "applied");
        assert_eq!(Health::Ok.as_str(), "ok");
    }

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
