//! [`SqliteStore`]: the connections to one database, and how statements run on them.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use poolcore::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::config::SqliteConfig;
use crate::error::{join_error, SqliteError};
use crate::schema;
use crate::writer::{Checkpointer, LogRestart, Writer, RESTART_PAGES, WRITER_CHECKPOINT_PAGES};

/// A [`Store`](poolcore::Store) in one SQLite database: a file shared by any number of processes, or
/// a private in-memory database.
///
/// Statements never run on the async executor. One connection writes, on a thread of
/// its own that commits the writes waiting for it together (each in a savepoint of
/// one `BEGIN IMMEDIATE` transaction; see `Writer`); the others
/// ([`SqliteConfig::pool_size`] in all) read beside it on tokio's blocking threads,
/// which WAL mode allows. Another thread copies the write-ahead log into the database
/// file, so that writes seldom wait for a checkpoint. Across processes SQLite's file
/// locks order the writers, and a writer that waits longer than the busy timeout
/// fails with [`Error::Unavailable`].
///
/// Open it with [`SqliteStore::open`], [`SqliteStore::memory`],
/// [`SqliteStore::from_url`] or [`SqliteStore::with_config`].
pub struct SqliteStore {
    config: SqliteConfig,
    writer: Writer,
    /// `None` when reads share the writer (in memory, or a pool of one).
    readers: Option<Arc<Connections>>,
    /// `None` in memory, where there is no log to copy.
    _checkpointer: Option<Checkpointer>,
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
        let opened = tokio::task::spawn_blocking(move || open_connections(&opening))
            .await
            .map_err(join_error)?
            .map_err(|e| e.into_error("open database"))?;
        let name = config.path.display().to_string();
        let thread_failed =
            |e: std::io::Error| Error::unavailable("sqlite store", format!("cannot start a thread: {e}"));
        let readers = (!opened.readers.is_empty()).then(|| Connections::new(opened.readers));
        let restart = Arc::new(LogRestart::default());
        let checkpointer = opened
            .checkpointer
            .map(|conn| Checkpointer::start(conn, &name, Arc::clone(&restart)))
            .transpose()
            .map_err(thread_failed)?;
        Ok(SqliteStore {
            writer: Writer::start(opened.writer, &name, config.busy_timeout(), restart)
                .map_err(thread_failed)?,
            readers,
            _checkpointer: checkpointer,
            config,
        })
    }

    /// Adds `clusters` and `leases` as they are, in one transaction: for seeding a
    /// database (benchmarks, imports), where one transaction per record is too slow.
    /// Capacities are not checked.
    ///
    /// # Errors
    /// [`Error::Conflict`] when an id or name is taken; nothing is written then.
    pub async fn import(
        &self,
        clusters: Vec<poolcore::Cluster>,
        leases: Vec<poolcore::LeaseRecord>,
    ) -> Result<()> {
        self.write("import", move |conn| {
            for cluster in &clusters {
                crate::rows::insert_cluster(conn, cluster)?;
            }
            for lease in &leases {
                crate::rows::insert_lease(conn, lease)?;
            }
            Ok(())
        })
        .await
    }

    /// The config the store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// Runs `f` on the writer connection, inside a write transaction, and returns once
    /// that is committed; if `f` fails, nothing it wrote is kept. `op` names the
    /// operation in errors.
    pub(crate) async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        self.writer.run(op, f).await
    }

    /// Runs `f` in a read transaction (one snapshot) on a reader connection.
    pub(crate) async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            // One connection: reads take their turn among the writes.
            return self.writer.run(op, f).await;
        };
        readers
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

/// The connections of a store, open.
struct Opened {
    writer: Connection,
    readers: Vec<Connection>,
    checkpointer: Option<Connection>,
}

/// Opens the writer (setting WAL mode and migrating the schema), then the readers and
/// the checkpointer's connection.
fn open_connections(config: &SqliteConfig) -> Result<Opened, SqliteError> {
    let path = config.path.display().to_string();
    let open_failed = |source| SqliteError::Open {
        path: path.clone(),
        source,
    };
    if config.is_memory() {
        let mut conn = Connection::open_in_memory().map_err(open_failed)?;
        configure(&conn, config)?;
        schema::migrate(&mut conn)?;
        return Ok(Opened {
            writer: conn,
            readers: Vec::new(),
            checkpointer: None,
        });
    }
    let write_flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut writer = Connection::open_with_flags(&config.path, write_flags).map_err(open_failed)?;
    configure(&writer, config)?;
    // The writer touches every index of the clusters and leases: keep them in memory
    // rather than read them back from the file at every claim (the default is 2 MiB).
    writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    // Each write runs in a savepoint, whose journal of the pages it changes spilled to
    // a temporary file past 64 KiB: a claim changes more. Kept in memory instead.
    writer.pragma_update(None, "temp_store", "MEMORY")?;
    let mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path,
            mode,
            "sqlite refused WAL mode; readers will wait for writers"
        );
    }
    // The checkpointer copies the log and starts it again, on its own connection and
    // thread (see `LogRestart`); the writer only when another process keeps it long.
    writer.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    // A log that grew past its usual length is cut back when it starts again.
    writer.pragma_update(None, "journal_size_limit", RESTART_PAGES * 4096)?;
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
    let checkpointer = Connection::open_with_flags(&config.path, write_flags).map_err(open_failed)?;
    configure(&checkpointer, config)?;
    Ok(Opened {
        writer,
        readers,
        checkpointer: Some(checkpointer),
    })
}

/// The writer's page cache, in KiB as `PRAGMA cache_size` takes it (negative).
const WRITER_CACHE_KIB: i64 = -65_536;

fn configure(conn: &Connection, config: &SqliteConfig) -> Result<(), SqliteError> {
    conn.busy_timeout(config.busy_timeout())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // With WAL, NORMAL loses at most the last commits on power loss, never consistency.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}
