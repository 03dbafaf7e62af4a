//! The schema and its migrations.
//!
//! The file is marked as ours with `PRAGMA application_id`, and its schema version is
//! `PRAGMA user_version`. Migrations only ever add: a state holds backups that may be needed
//! years later, so nothing here drops or rewrites data.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{StateError, sql_error};

/// "mpln": marks a SQLite file as a mailplan state database.
const APPLICATION_ID: i32 = 0x6d70_6c6e;

/// The migrations, in order; the schema version is how many of them have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: runs, actions, backups, the item ledger, the lock.
    "
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        plan_file        TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL,
        started_at       TEXT NOT NULL,
        ended_at         TEXT,
        outcome          TEXT NOT NULL
            CHECK (outcome IN ('running', 'succeeded', 'failed', 'interrupted')),
        applied          INTEGER NOT NULL DEFAULT 0,
        failed           INTEGER NOT NULL DEFAULT 0,
        skipped          INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE actions (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        run         INTEGER NOT NULL REFERENCES runs (id),
        action_id   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        target      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('applied', 'failed', 'skipped', 'stale')),
        error       TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX actions_by_run ON actions (run, seq);
    CREATE INDEX actions_by_action_id ON actions (action_id, status);
    CREATE TABLE backups (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        run       INTEGER NOT NULL REFERENCES runs (id),
        action_id TEXT NOT NULL,
        dn        TEXT NOT NULL,
        dn_key    TEXT NOT NULL,
        ldif      TEXT NOT NULL,
        taken_at  TEXT NOT NULL
    );
    CREATE INDEX backups_by_dn ON backups (dn_key, id);
    CREATE TABLE ledger (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run         INTEGER NOT NULL REFERENCES runs (id),
        mailbox     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        folder      TEXT,
        identity    TEXT NOT NULL,
        size        INTEGER,
        recorded_at TEXT NOT NULL,
        UNIQUE (mailbox, kind, identity)
    );
    CREATE TABLE lock (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        pid        INTEGER NOT NULL,
        host       TEXT NOT NULL,
        started_at TEXT NOT NULL,
        token      TEXT NOT NULL
    );
    ",
    // 2: what earlier applies did that the directories alone do not show: which destination
    // object a person was created or converted into (until its addresses move over, nothing
    // else links them), and contacts deleted whose data still awaits its merge.
    "
    CREATE TABLE links (
        source_key  TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        destination TEXT NOT NULL,
        run         INTEGER NOT NULL REFERENCES runs (id),
        action_id   TEXT NOT NULL,
        linked_at   TEXT NOT NULL
    );
    CREATE TABLE pending_merges (
        contact_key TEXT PRIMARY KEY,
        contact     TEXT NOT NULL,
        source_key  TEXT NOT NULL,
        source      TEXT NOT NULL,
        backup      INTEGER NOT NULL REFERENCES backups (id),
        merged_run  INTEGER REFERENCES runs (id)
    );
    CREATE INDEX pending_merges_by_source ON pending_merges (source_key);
    ",
    // 3: which version of an event or contact was copied: the source content's digest and the
    // destination's ETag right after the copy. A later run updates an item whose source digest
    // changed only while the destination still has that ETag, so an edit the owner made at the
    // destination is never overwritten. NULL (rows from before, or not yet confirmed): unknown,
    // and such an item is never updated.
    "
    ALTER TABLE ledger ADD COLUMN digest TEXT;
    ALTER TABLE ledger ADD COLUMN etag TEXT;
    ",
    // 4: what each write left (the after-image: the entry as the action left it, NULL for an
    // entry it deleted), recorded once the write is confirmed, and which run undid which
    // (`state undo`).
    "
    CREATE TABLE after_images (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        run       INTEGER NOT NULL REFERENCES runs (id),
        action_id TEXT NOT NULL,
        dn        TEXT NOT NULL,
        dn_key    TEXT NOT NULL,
        ldif      TEXT,
        taken_at  TEXT NOT NULL
    );
    CREATE INDEX after_images_by_run ON after_images (run, id);
    CREATE TABLE undos (
        run        INTEGER PRIMARY KEY REFERENCES runs (id),
        undone_run INTEGER NOT NULL REFERENCES runs (id)
    );
    CREATE INDEX undos_by_undone_run ON undos (undone_run);
    ",
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that the file is a mailplan state (or empty), switches it to WAL and applies the
/// migrations it lacks.
pub fn check_and_migrate(conn: &Connection, path: &Path) -> Result<(), StateError> {
    // The first read of the header: a file that is not SQLite fails here, as Corrupt.
    check(conn, path)?;

    // WAL: readers (`mailplan state` while an apply runs) do not block the writer, and a commit
    // is one append plus fsync. Setting it is persistent and cannot happen inside a transaction.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| sql_error(path, "switching to WAL journal mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StateError::Open {
            path: path.to_owned(),
            source: std::io::Error::other(format!(
                "the file system does not support SQLite's WAL mode (journal mode stayed `{mode}`)"
            )),
        });
    }

    // IMMEDIATE so that two mailplans opening a new state at once do not both migrate: the
    // second waits, then finds the work done when it checks again inside the transaction.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(|e| sql_error(path, "starting the schema migration", e))?;
    let version = check(&tx, path)?;
    let from = usize::try_from(version).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql)
            .map_err(|e| sql_error(path, "migrating the schema", e))?;
        // PRAGMAs take no parameters; both values are our own integers.
        tx.execute_batch(&format!(
            "PRAGMA user_version = {}; PRAGMA application_id = {APPLICATION_ID};",
            i + 1
        ))
        .map_err(|e| sql_error(path, "recording the schema version", e))?;
    }
    tx.commit()
        .map_err(|e| sql_error(path, "committing the schema migration", e))
}

/// Returns the schema version, after checking the file is ours (or new) and not from a newer
/// mailplan.
fn check(conn: &Connection, path: &Path) -> Result<i64, StateError> {
    let read = |pragma: &str| -> Result<i64, StateError> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .map_err(|e| sql_error(path, "reading the database header", e))
    };
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let app_id = read("application_id")?;
    let version = read("user_version")?;
    if app_id != i64::from(APPLICATION_ID) {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| sql_error(path, "reading the database header", e))?;
        if app_id != 0 || version != 0 || objects != 0 {
            return Err(corrupt(
                "it is a SQLite database, but not one that mailplan wrote".to_owned(),
            ));
        }
        return Ok(0);
    }
    if version > SCHEMA_VERSION {
        return Err(corrupt(format!(
            "it has schema version {version}, newer than the {SCHEMA_VERSION} this mailplan \
             knows; use a newer mailplan"
        )));
    }
    if version < 0 {
        return Err(corrupt(format!(
            "it has an invalid schema version {version}"
        )));
    }
    Ok(version)
}
