//! The database schema and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`: the number of entries of
//! [`MIGRATIONS`] applied so far. Opening a store applies the missing ones, in order,
//! in one `BEGIN IMMEDIATE` transaction, so that several processes opening one file
//! at once migrate it exactly once. A database whose version is higher than this
//! code knows was written by a newer PoolManager and is refused rather than misread.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::SqliteError;

/// Migration `i` takes the schema from version `i` to version `i + 1`. Append only:
/// never edit an entry that has been released.
///
/// Timestamps are RFC 3339 text in UTC with nine fractional digits, so that text
/// order is time order. Structured fields are JSON text. There are no foreign keys
/// between the tables: the [`Store`](poolcore::Store) contract lets each record stand
/// alone (lease records outlive their clusters), and the pool keeps references right.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE hosts (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    public_address TEXT NOT NULL,
    capacity       INTEGER NOT NULL,
    autofill       INTEGER NOT NULL,
    schedulable    INTEGER NOT NULL,
    labels         TEXT NOT NULL,
    log            TEXT,
    status         TEXT NOT NULL,
    last_seen      TEXT,
    last_error     TEXT,
    facts          TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;

CREATE TABLE blueprints (
    name       TEXT PRIMARY KEY NOT NULL,
    labels     TEXT NOT NULL,
    nodes      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE clusters (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    blueprint     TEXT NOT NULL,
    host_id       TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    health        TEXT NOT NULL,
    health_reason TEXT,
    user_id       TEXT,
    applied_at    TEXT,
    expires_at    TEXT,
    metadata      TEXT NOT NULL,
    lease_id      TEXT,
    deployment    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL
) STRICT;
CREATE INDEX clusters_host ON clusters (host_id);
CREATE INDEX clusters_user ON clusters (user_id) WHERE user_id IS NOT NULL;
-- claim_cluster walks the ready, healthy clusters in id order and stops at the first match.
CREATE INDEX clusters_status ON clusters (status, health, id);
CREATE INDEX clusters_blueprint ON clusters (blueprint);

CREATE TABLE leases (
    id           TEXT PRIMARY KEY NOT NULL,
    cluster_id   TEXT NOT NULL,
    cluster_name TEXT NOT NULL,
    blueprint    TEXT NOT NULL,
    host_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    applied_at   TEXT NOT NULL,
    released_at  TEXT
) STRICT;
CREATE INDEX leases_applied ON leases (applied_at DESC, id);
CREATE INDEX leases_user_applied ON leases (user_id, applied_at DESC, id);
CREATE INDEX leases_cluster ON leases (cluster_id);

CREATE TABLE operations (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    host_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    done        INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    error       TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
) STRICT;
CREATE INDEX operations_host ON operations (host_id);
"#,
    r#"
-- Named locks with an expiry, such as the one the reconciler runs under.
CREATE TABLE locks (
    name   TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
) STRICT;
"#,
];

/// The schema version this code writes and reads.
pub(crate) fn current_version() -> u32 {
    // MIGRATIONS is a short constant list: its length always fits.
    MIGRATIONS.len() as u32
}

/// Brings the database on `conn` up to [`current_version`]; returns the version it
/// found.
///
/// # Errors
/// `SqliteError::SchemaTooNew` when the database is newer than this code.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, SqliteError> {
    let path = match conn.path() {
        Some(path) if !path.is_empty() => path.to_owned(),
        _ => crate::config::MEMORY.to_owned(),
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > current_version() {
        return Err(SqliteError::SchemaTooNew {
            path,
            found,
            supported: current_version(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tracing::info!(path, version = version + 1, "applied sqlite schema migration");
    }
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_once() {
        let mut conn = Connection::open_in_memory().expect("open in-memory database");
        assert_eq!(migrate(&mut conn).expect("first migration"), 0);
        assert_eq!(migrate(&mut conn).expect("second migration"), current_version());
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' \
                 AND name IN ('hosts', 'blueprints', 'clusters', 'leases', 'operations', 'locks')",
                [],
                |row| row.get(0),
            )
            .expect("count tables");
        assert_eq!(tables, 6);
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().expect("open in-memory database");
        conn.pragma_update(None, "user_version", current_version() + 1)
            .expect("set user_version");
        let err = migrate(&mut conn).expect_err("a newer schema must be refused");
        assert!(matches!(err, SqliteError::SchemaTooNew { .. }), "{err}");
    }
}
