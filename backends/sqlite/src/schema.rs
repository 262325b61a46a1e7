//! The database schema and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`: the number of entries of
//! [`MIGRATIONS`] applied so far. Opening a store applies the missing ones, in order,
//! in one `BEGIN IMMEDIATE` transaction, so that several processes opening one file
//! at once migrate it exactly once. A database whose version is higher than this
//! code knows was written by a newer PoolManager and is refused rather than misread.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::SqliteError;

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
    r#"
-- Every host write is a compare-and-set on its version; TLS settings for tcp:// engines.
ALTER TABLE hosts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN tls TEXT;

-- The port whose URL is a cluster's API URL: "node.port".
ALTER TABLE blueprints ADD COLUMN api_port TEXT;

-- Nodes stopped on purpose, as a JSON array of names. They were told by the health
-- reason before: carry those over.
ALTER TABLE clusters ADD COLUMN stopped_nodes TEXT NOT NULL DEFAULT '[]';
UPDATE clusters SET stopped_nodes = json_array(substr(health_reason, 21))
 WHERE health_reason LIKE 'stopped by request: %' AND health_reason != 'stopped by request: all nodes';
UPDATE clusters SET stopped_nodes = (
    SELECT json_group_array(json_extract(node.value, '$.name'))
      FROM blueprints, json_each(blueprints.nodes) AS node
     WHERE blueprints.name = clusters.blueprint)
 WHERE health_reason = 'stopped by request: all nodes';

-- A user holds at most one cluster from applies without allow_multiple.
ALTER TABLE clusters ADD COLUMN single_apply INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX clusters_single_holder ON clusters (user_id) WHERE single_apply = 1;

-- Why a lease ended; unknown (NULL) for leases closed before this version.
ALTER TABLE leases ADD COLUMN release_reason TEXT;
CREATE INDEX leases_released ON leases (released_at) WHERE released_at IS NOT NULL;

-- Last write of a running operation: its server's sign of life.
ALTER TABLE operations ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
UPDATE operations SET updated_at = COALESCE(finished_at, created_at);
CREATE INDEX operations_created ON operations (created_at DESC, id);
CREATE INDEX operations_status ON operations (status);

-- Cluster counts per host, blueprint and status, kept by triggers: stats and page
-- totals read them instead of counting the clusters.
CREATE TABLE cluster_counts (
    host_id   TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    status    TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (host_id, blueprint, status)
) STRICT, WITHOUT ROWID;
INSERT INTO cluster_counts SELECT host_id, blueprint, status, COUNT(*) FROM clusters GROUP BY 1, 2, 3;
CREATE TRIGGER clusters_count_insert AFTER INSERT ON clusters BEGIN
    INSERT INTO cluster_counts VALUES (NEW.host_id, NEW.blueprint, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER clusters_count_delete AFTER DELETE ON clusters BEGIN
    UPDATE cluster_counts SET n = n - 1
     WHERE host_id = OLD.host_id AND blueprint = OLD.blueprint AND status = OLD.status;
END;
CREATE TRIGGER clusters_count_update AFTER UPDATE OF host_id, blueprint, status ON clusters
    WHEN OLD.host_id IS NOT NEW.host_id OR OLD.blueprint IS NOT NEW.blueprint OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE cluster_counts SET n = n - 1
     WHERE host_id = OLD.host_id AND blueprint = OLD.blueprint AND status = OLD.status;
    INSERT INTO cluster_counts VALUES (NEW.host_id, NEW.blueprint, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Lease counts, in all ('') and per user, kept by triggers for page totals.
CREATE TABLE lease_counts (
    user_id TEXT PRIMARY KEY NOT NULL,
    n       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO lease_counts SELECT '', COUNT(*) FROM leases;
INSERT INTO lease_counts SELECT user_id, COUNT(*) FROM leases GROUP BY user_id;
CREATE TRIGGER leases_count_insert AFTER INSERT ON leases BEGIN
    INSERT INTO lease_counts VALUES ('', 1) ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO lease_counts VALUES (NEW.user_id, 1) ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER leases_count_delete AFTER DELETE ON leases BEGIN
    UPDATE lease_counts SET n = n - 1 WHERE user_id IN ('', OLD.user_id);
END;
"#,
    r#"
-- Pages of clusters in one status or on one host, in name order, read from an index
-- instead of sorting every matching cluster.
CREATE INDEX clusters_status_name ON clusters (status, name, id);
CREATE INDEX clusters_host_name ON clusters (host_id, name, id);
DROP INDEX clusters_host;
"#,
    r#"
-- Most clusters of a blueprint applied at once; NULL for no limit.
ALTER TABLE blueprints ADD COLUMN max_applied INTEGER;
"#,
    r#"
-- A blueprint's ready buffer: free clusters to keep (a number, a share of the applied
-- ones) and the most clusters in all; NULL for none.
ALTER TABLE blueprints ADD COLUMN min_ready INTEGER;
ALTER TABLE blueprints ADD COLUMN min_ready_percent INTEGER;
ALTER TABLE blueprints ADD COLUMN max_total INTEGER;
"#,
    r#"
-- A blueprint's placement (the labels a host must carry, as JSON, and the strategy)
-- and what a release does to its clusters.
ALTER TABLE blueprints ADD COLUMN host_selector TEXT NOT NULL DEFAULT '{}';
ALTER TABLE blueprints ADD COLUMN placement TEXT NOT NULL DEFAULT 'spread';
ALTER TABLE blueprints ADD COLUMN release_mode TEXT NOT NULL DEFAULT 'recreate';
"#,
    r#"
-- Time windows with other ready-buffer values, as JSON.
ALTER TABLE blueprints ADD COLUMN buffer_windows TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
-- Blueprint versions: the current one's number and time (NULL: the blueprint's own),
-- the earlier ones clusters may still run (JSON), how clusters move to a new one, and
-- the version each cluster runs, which the cluster counts now key on too.
ALTER TABLE blueprints ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE blueprints ADD COLUMN version_created_at TEXT;
ALTER TABLE blueprints ADD COLUMN earlier_versions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE blueprints ADD COLUMN rollout TEXT NOT NULL DEFAULT 'recreate';
ALTER TABLE blueprints ADD COLUMN rollout_per_minute INTEGER NOT NULL DEFAULT 30;
ALTER TABLE clusters ADD COLUMN blueprint_version INTEGER NOT NULL DEFAULT 1;
DROP TRIGGER clusters_count_insert;
DROP TRIGGER clusters_count_delete;
DROP TRIGGER clusters_count_update;
DROP TABLE cluster_counts;
CREATE TABLE cluster_counts (
    host_id           TEXT NOT NULL,
    blueprint         TEXT NOT NULL,
    blueprint_version INTEGER NOT NULL,
    status            TEXT NOT NULL,
    n                 INTEGER NOT NULL,
    PRIMARY KEY (host_id, blueprint, blueprint_version, status)
) STRICT, WITHOUT ROWID;
INSERT INTO cluster_counts
    SELECT host_id, blueprint, blueprint_version, status, COUNT(*) FROM clusters GROUP BY 1, 2, 3, 4;
CREATE TRIGGER clusters_count_insert AFTER INSERT ON clusters BEGIN
    INSERT INTO cluster_counts VALUES (NEW.host_id, NEW.blueprint, NEW.blueprint_version, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER clusters_count_delete AFTER DELETE ON clusters BEGIN
    UPDATE cluster_counts SET n = n - 1
     WHERE host_id = OLD.host_id AND blueprint = OLD.blueprint
       AND blueprint_version = OLD.blueprint_version AND status = OLD.status;
END;
CREATE TRIGGER clusters_count_update AFTER UPDATE OF host_id, blueprint, blueprint_version, status ON clusters
    WHEN OLD.host_id IS NOT NEW.host_id OR OLD.blueprint IS NOT NEW.blueprint
      OR OLD.blueprint_version IS NOT NEW.blueprint_version OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE cluster_counts SET n = n - 1
     WHERE host_id = OLD.host_id AND blueprint = OLD.blueprint
       AND blueprint_version = OLD.blueprint_version AND status = OLD.status;
    INSERT INTO cluster_counts VALUES (NEW.host_id, NEW.blueprint, NEW.blueprint_version, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
"#,
    r#"
-- Applies and releases per minute, kept by triggers: the lease history reads these
-- instead of every lease of the period. `minute` is the minute's start in Unix
-- seconds, from the text of the time (its first 16 characters name the minute).
CREATE TABLE lease_minutes (
    minute   INTEGER PRIMARY KEY NOT NULL,
    applied  INTEGER NOT NULL,
    released INTEGER NOT NULL
) STRICT;
INSERT INTO lease_minutes
SELECT minute, SUM(applied), SUM(released) FROM (
    SELECT unixepoch(substr(applied_at, 1, 16)) AS minute, 1 AS applied, 0 AS released FROM leases
    UNION ALL
    SELECT unixepoch(substr(released_at, 1, 16)), 0, 1 FROM leases WHERE released_at IS NOT NULL
) WHERE minute IS NOT NULL GROUP BY minute;
CREATE TRIGGER leases_minute_insert AFTER INSERT ON leases BEGIN
    INSERT INTO lease_minutes SELECT unixepoch(substr(NEW.applied_at, 1, 16)) AS m, 1, 0 WHERE m IS NOT NULL
        ON CONFLICT DO UPDATE SET applied = applied + 1;
    INSERT INTO lease_minutes SELECT unixepoch(substr(NEW.released_at, 1, 16)) AS m, 0, 1 WHERE m IS NOT NULL
        ON CONFLICT DO UPDATE SET released = released + 1;
END;
CREATE TRIGGER leases_minute_delete AFTER DELETE ON leases BEGIN
    UPDATE lease_minutes SET applied = applied - 1 WHERE minute = unixepoch(substr(OLD.applied_at, 1, 16));
    UPDATE lease_minutes SET released = released - 1 WHERE minute = unixepoch(substr(OLD.released_at, 1, 16));
END;
CREATE TRIGGER leases_minute_update AFTER UPDATE OF applied_at, released_at ON leases
    WHEN OLD.applied_at IS NOT NEW.applied_at OR OLD.released_at IS NOT NEW.released_at
BEGIN
    UPDATE lease_minutes SET applied = applied - 1 WHERE minute = unixepoch(substr(OLD.applied_at, 1, 16));
    UPDATE lease_minutes SET released = released - 1 WHERE minute = unixepoch(substr(OLD.released_at, 1, 16));
    INSERT INTO lease_minutes SELECT unixepoch(substr(NEW.applied_at, 1, 16)) AS m, 1, 0 WHERE m IS NOT NULL
        ON CONFLICT DO UPDATE SET applied = applied + 1;
    INSERT INTO lease_minutes SELECT unixepoch(substr(NEW.released_at, 1, 16)) AS m, 0, 1 WHERE m IS NOT NULL
        ON CONFLICT DO UPDATE SET released = released + 1;
END;
"#,
    r#"
-- A claim takes the ready cluster first in row order, so that claims one after the
-- other change the same few pages of the table and of this index, instead of a page
-- anywhere for each (the implicit rowid orders entries of one status and health).
CREATE INDEX clusters_status_health ON clusters (status, health);
DROP INDEX clusters_status;
-- With the status in it, a user's clusters in one status are read from this index,
-- not from the one above.
CREATE INDEX clusters_user_status ON clusters (user_id, status) WHERE user_id IS NOT NULL;
DROP INDEX clusters_user;
-- Nothing reads the leases of one cluster by its id.
DROP INDEX leases_cluster;
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
    fn upgrades_a_version_2_database() {
        let mut conn = Connection::open_in_memory().expect("open in-memory database");
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", 2)
            .expect("set user_version");
        conn.execute_batch(
            r#"
            INSERT INTO blueprints VALUES ('bp', '{}', '[{"name":"vp0","image":"i"},{"name":"vp1","image":"i"}]', 't');
            INSERT INTO clusters (id, name, blueprint, host_id, status, health, health_reason, metadata,
                deployment, created_at, updated_at, version) VALUES
              ('a', 'a', 'bp', 'h', 'applied', 'failing', 'stopped by request: vp1', '{}', '{}', 't', 't', 1),
              ('b', 'b', 'bp', 'h', 'stopped', 'failing', 'stopped by request: all nodes', '{}', '{}', 't', 't', 1),
              ('c', 'c', 'bp', 'h', 'ready', 'ok', NULL, '{}', '{}', 't', 't', 1);
            INSERT INTO leases VALUES ('l1', 'a', 'a', 'bp', 'h', 'alice', '{}', 't1', NULL),
                                      ('l2', 'c', 'c', 'bp', 'h', 'bob', '{}', 't0', 't2');
            INSERT INTO operations VALUES ('o', 'fill', 'h', 'succeeded', 1, 1, NULL, 't0', 't9');
            "#,
        )
        .expect("data of version 2");
        assert_eq!(migrate(&mut conn).expect("upgrade"), 2);
        let stopped = |id: &str| -> String {
            conn.query_row("SELECT stopped_nodes FROM clusters WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("stopped_nodes")
        };
        assert_eq!(stopped("a"), r#"["vp1"]"#);
        assert_eq!(stopped("b"), r#"["vp0","vp1"]"#);
        assert_eq!(stopped("c"), "[]");
        let counted: i64 = conn
            .query_row("SELECT SUM(n) FROM cluster_counts WHERE host_id = 'h'", [], |r| {
                r.get(0)
            })
            .expect("counts");
        assert_eq!(counted, 3);
        let leases: Vec<(String, i64)> = conn
            .prepare("SELECT user_id, n FROM lease_counts ORDER BY user_id")
            .and_then(|mut stmt| stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .expect("lease counts");
        assert_eq!(leases, [("".into(), 2), ("alice".into(), 1), ("bob".into(), 1)]);
        let updated: String = conn
            .query_row("SELECT updated_at FROM operations WHERE id = 'o'", [], |r| {
                r.get(0)
            })
            .expect("updated_at");
        assert_eq!(updated, "t9", "an old operation's last write is its end");
    }

    #[test]
    fn summarises_the_leases_of_an_older_database() {
        let mut conn = Connection::open_in_memory().expect("open in-memory database");
        let before = MIGRATIONS.len() - 2;
        for sql in &MIGRATIONS[..before] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", before)
            .expect("set user_version");
        conn.execute_batch(
            r#"
            INSERT INTO leases (id, cluster_id, cluster_name, blueprint, host_id, user_id, metadata, applied_at, released_at) VALUES
              ('l1', 'a', 'a', 'bp', 'h', 'alice', '{}', '2026-01-02T03:04:05.000000000Z', NULL),
              ('l2', 'b', 'b', 'bp', 'h', 'bob', '{}', '2026-01-02T03:04:59.999999999Z', '2026-01-02T03:05:00.000000000Z');
            "#,
        )
        .expect("leases of the older version");
        migrate(&mut conn).expect("upgrade");
        let minutes = |conn: &Connection| -> Vec<(i64, i64, i64)> {
            conn.prepare("SELECT minute, applied, released FROM lease_minutes ORDER BY minute")
                .and_then(|mut stmt| {
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .expect("lease minutes")
        };
        let at = 1_767_323_040;
        assert_eq!(minutes(&conn), [(at, 2, 0), (at + 60, 0, 1)]);
        conn.execute_batch(
            "UPDATE leases SET released_at = '2026-01-02T03:06:00.5Z' WHERE id = 'l1';
             UPDATE leases SET released_at = '2026-01-02T03:04:30Z' WHERE id = 'l2';
             DELETE FROM leases WHERE id = 'l2';",
        )
        .expect("lease writes");
        assert_eq!(minutes(&conn), [(at, 1, 0), (at + 60, 0, 0), (at + 120, 0, 1)]);
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
