//! The state database: what `apply` did, and what it must never lose.
//!
//! One SQLite file (`state.db`, in a directory next to the plan) holds
//! - the runs of `apply` and the outcome of every action in them,
//! - a backup of every directory entry taken before an action modifies or deletes it, so that
//!   nothing is ever lost and `mailplan state restore DN` can put an entry back,
//! - the ledger of items (mail, events, contacts) copied, so each is copied once ever,
//! - the lock that keeps two applies of one state apart.
//!
//! This module stores and reports. It never decides what to apply: the planner decides, the
//! executor acts, and both only read answers such as [`StateDb::applied_actions`] from here. It takes
//! no secrets and must never be given any: the state outlives the run and is read by people.
//!
//! Durability comes before speed: every write is committed (in its own transaction, in one
//! transaction with the writes that belong with it, or in one shared by writes that were waiting
//! at the same moment: see [`StateDb::write_together`] and [`journal`]) in WAL mode with
//! `synchronous=FULL` before the call that made it returns, so a record that a call has returned
//! survives a crash or power loss. That is what lets the executor write a backup, await it, and
//! only then touch the directory.

mod backend;
pub mod caps;
pub(crate) mod host;
pub mod journal;
pub mod postgres;
mod schema;
pub mod time;
pub mod units;

use backend::HeldLock;
pub use backend::{Location, LockGuard, StateDb};

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

/// The name of the database file inside the state directory.
pub const STATE_FILE: &str = "state.db";

/// How long a call waits for another connection's write transaction before giving up. Writes
/// here are small, so a few seconds only runs out when something is really stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub type RunId = i64;

/// What became of one action in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    Applied,
    Failed,
    Skipped,
    /// The live object no longer looked as it did at plan time, so the action was not written.
    /// Counted among the failures of its run.
    Stale,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Applied => "applied",
            ActionStatus::Failed => "failed",
            ActionStatus::Skipped => "skipped",
            ActionStatus::Stale => "stale",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "applied" => ActionStatus::Applied,
            "failed" => ActionStatus::Failed,
            "skipped" => ActionStatus::Skipped,
            "stale" => ActionStatus::Stale,
            _ => return None,
        })
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended, or that it has not (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Running,
    Succeeded,
    Failed,
    /// Stopped before the end: by a signal, or found still "running" when a later apply took the
    /// lock (its process was gone).
    Interrupted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunOutcome::Running,
            "succeeded" => RunOutcome::Succeeded,
            "failed" => RunOutcome::Failed,
            "interrupted" => RunOutcome::Interrupted,
            _ => return None,
        })
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! text_enum_sql {
    ($t:ty, $what:literal) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                <$t>::parse(s)
                    .ok_or_else(|| FromSqlError::Other(format!("unknown {} `{s}`", $what).into()))
            }
        }
    };
}
text_enum_sql!(ActionStatus, "action status");
text_enum_sql!(RunOutcome, "run outcome");

/// One run of `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: RunId,
    pub plan_file: String,
    pub plan_fingerprint: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: RunOutcome,
    /// Counts of the run's recorded actions, set by [`StateDb::finish_run`]; zero until then.
    pub applied: u64,
    /// Failed and stale actions.
    pub failed: u64,
    pub skipped: u64,
}

/// The outcome of one action in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub run: RunId,
    pub action_id: String,
    pub kind: String,
    pub target: String,
    pub status: ActionStatus,
    pub error: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
}

/// A directory entry as it was before an action modified or deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub id: i64,
    pub run: RunId,
    pub action_id: String,
    pub dn: String,
    pub ldif: String,
    pub taken_at: String,
}

/// What one action left of a directory entry once its write was confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterImage {
    pub run: RunId,
    pub action_id: String,
    pub dn: String,
    /// The entry as LDIF; `None`: the action deleted it.
    pub ldif: Option<String>,
}

/// Who holds the apply lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

/// One item copied into a mailbox. `mailbox`, `kind` and `identity` are compared exactly, so
/// the caller normalises them (for example lower-cases the address) before recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerItem {
    pub run: RunId,
    pub mailbox: String,
    /// "mail", "event" or "contact".
    pub kind: String,
    pub folder: Option<String>,
    /// What makes the item itself, stable across runs (a Message-ID or content hash, a UID).
    pub identity: String,
    pub size: Option<u64>,
}

/// Which version of a copied event or contact the ledger knows: the digest of its content at
/// the source, and the destination's ETag (for a folder, the digest of the file) once the
/// destination confirmed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemVersion {
    pub digest: Option<String>,
    pub etag: Option<String>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    #[error("cannot create or open the state database `{}`: {source}", path.display())]
    #[diagnostic(
        code(mailplan::state::open),
        help(
            "the state directory must be writable by this user and its disk must have free \
             space; check the path, its permissions and `df`"
        )
    )]
    Open { path: PathBuf, source: io::Error },

    #[error(
        "the state `{}` is locked by process {} on {} since {}: another apply is running; \
         wait for it to finish",
        path.display(), holder.pid, holder.host, holder.started_at
    )]
    #[diagnostic(
        code(mailplan::state::locked),
        help(
            "only one apply may run against a state at a time; a lock left behind by a process \
             that has exited is taken over automatically"
        )
    )]
    Locked { path: PathBuf, holder: LockHolder },

    #[error(
        "the state `{}` is locked by process {} on host {} since {}; a lock held on another \
         host is never taken over automatically",
        path.display(), holder.pid, holder.host, holder.started_at
    )]
    #[diagnostic(
        code(mailplan::state::locked_elsewhere),
        help(
            "if no apply is running on that host any more, remove the lock with \
             `mailplan state unlock`"
        )
    )]
    LockedElsewhere { path: PathBuf, holder: LockHolder },

    #[error("state database `{}`: {context}: {source}", path.display())]
    #[diagnostic(
        code(mailplan::state::sqlite),
        help("if the disk is full or the file was changed by another program, fix that and retry")
    )]
    Sqlite {
        path: PathBuf,
        context: &'static str,
        source: rusqlite::Error,
    },

    #[error(
        "the state database `{}` can no longer be written: its writer thread has stopped",
        path.display()
    )]
    #[diagnostic(
        code(mailplan::state::writer_stopped),
        help(
            "this is a bug in mailplan; what was recorded before it is kept, and a rerun of \
             the same plan picks up where this one stopped"
        )
    )]
    WriterStopped { path: PathBuf },

    #[error("PostgreSQL state `{}`: {context}: {source}", path.display())]
    #[diagnostic(
        code(mailplan::state::postgres),
        help(
            "check that the database server is reachable from this machine, that the user in \
             `state.postgres.url` may log in with the password given, and that it owns the \
             database (mailplan creates its tables there)"
        )
    )]
    Postgres {
        path: PathBuf,
        context: &'static str,
        source: tokio_postgres::Error,
    },

    #[error(
        "PostgreSQL state `{}`: {context}: no answer within {} s",
        path.display(), after.as_secs()
    )]
    #[diagnostic(
        code(mailplan::state::postgres_timeout),
        help(
            "the database server or the network to it is not answering; what was recorded \
             before is kept, and a rerun picks up where this one stopped"
        )
    )]
    PostgresTimeout {
        path: PathBuf,
        context: &'static str,
        after: Duration,
    },

    #[error("`{}` is not a usable mailplan state database: {reason}", path.display())]
    #[diagnostic(
        code(mailplan::state::corrupt),
        help(
            "point mailplan at the right state directory; a state written by a newer mailplan \
             needs that version, and a damaged file must be restored from a copy, not deleted: \
             it holds the backups of changed entries"
        )
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// What earlier runs did, as stored: see [`StateDb::history`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// (source person DN, destination DN), by source.
    pub links: Vec<(String, String)>,
    pub pending: Vec<PendingMerge>,
}

/// A contact deleted for a person whose data has not been merged into their mailbox yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMerge {
    pub source: String,
    pub contact: String,
    /// The contact as it was before the delete.
    pub ldif: String,
}

/// The SQLite backend: one file beside the plan. Not `Sync`: give each thread its own (opening
/// is cheap, and SQLite serialises the writers).
pub(crate) struct Sqlite {
    conn: Connection,
    path: PathBuf,
}

impl fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}

/// Wraps a SQLite error with what was being done; a file that turns out not to be a database is
/// reported as [`StateError::Corrupt`], and a failure to open or create a file as
/// [`StateError::Open`], since those have other remedies than a failed query.
fn sql_error(path: &Path, context: &'static str, e: rusqlite::Error) -> StateError {
    let code = e.sqlite_error_code();
    match code {
        Some(ErrorCode::NotADatabase) => StateError::Corrupt {
            path: path.to_owned(),
            reason: format!("the file is not a SQLite database ({e})"),
        },
        Some(ErrorCode::DatabaseCorrupt) => StateError::Corrupt {
            path: path.to_owned(),
            reason: format!("the database is damaged ({context}: {e})"),
        },
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull,
        ) => StateError::Open {
            path: path.to_owned(),
            source: io::Error::other(format!("{context}: {e}")),
        },
        _ => StateError::Sqlite {
            path: path.to_owned(),
            context,
            source: e,
        },
    }
}

/// SQLite integers are signed; counts and sizes here never come near 2^63, and saturating keeps
/// a nonsense value from failing a write.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Opens a connection to an existing database file with the settings every connection needs.
fn connect(path: &Path) -> Result<Connection, StateError> {
    // No SQLITE_OPEN_CREATE: the file is created by `open` with the right mode first.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| sql_error(path, "opening the database", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(path, "setting the busy timeout", e))?;
    // synchronous=FULL: a commit is on disk (WAL fsynced) before it returns. NORMAL would be
    // faster in WAL mode but could lose the last commits on power loss, and those may be the
    // backup of an entry the directory write has already changed.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_error(path, "setting synchronous=FULL", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| sql_error(path, "enabling foreign keys", e))?;
    Ok(conn)
}

/// Creates `dir` (mode 0700) if it is missing.
fn create_dir(dir: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: dir.to_owned(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(open_err)?;
    // The umask may have taken bits away, never added; set the mode exactly anyway so that the
    // state (backups of directory entries) is private to its owner whatever the umask.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(open_err)
}

/// Creates the database file with mode 0600 before SQLite writes anything into it, so there is
/// no moment at which the data is readable by others.
fn create_file(path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: path.to_owned(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(open_err),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Open it for writing ourselves too: an unwritable file gives a plain OS error here
            // rather than a less clear one from SQLite later.
            OpenOptions::new()
                .write(true)
                .open(path)
                .map(drop)
                .map_err(open_err)
        }
        Err(e) => Err(open_err(e)),
    }
}

/// Makes lock tokens unique between guards of one process (the pid alone is shared by threads).
static LOCK_SEQ: AtomicU64 = AtomicU64::new(0);

impl Sqlite {
    /// Opens (creating if needed) `dir/state.db`, creating `dir` with mode 0700 and the file with
    /// mode 0600, and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Sqlite, StateError> {
        create_dir(dir)?;
        let path = dir.join(STATE_FILE);
        create_file(&path)?;
        let conn = connect(&path)?;
        schema::check_and_migrate(&conn, &path)?;
        Ok(Sqlite { conn, path })
    }

    /// Opens `dir/state.db` when it exists, for commands that only read what earlier applies
    /// did (`plan`): a plan file that was never applied has no state, and gets none created.
    pub fn open_existing(dir: &Path) -> Result<Option<Sqlite>, StateError> {
        let path = dir.join(STATE_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        match Sqlite::open(dir) {
            Err(StateError::Open { .. }) => Sqlite::open_read_only(&path).map(Some),
            other => other.map(Some),
        }
    }

    /// Opens a state on read-only storage (or one we may not write) for reading: SQLite's
    /// `immutable` mode needs no lock files or journal beside it. Its schema must be current,
    /// since it cannot be migrated.
    fn open_read_only(path: &Path) -> Result<Sqlite, StateError> {
        let uri = format!(
            "file:{}?immutable=1",
            path.display()
                .to_string()
                .replace('%', "%25")
                .replace('?', "%3f")
                .replace('#', "%23")
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags)
            .map_err(|e| sql_error(path, "opening the database read-only", e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sql_error(path, "reading the database header", e))?;
        if version != schema::SCHEMA_VERSION {
            return Err(StateError::Open {
                path: path.to_owned(),
                source: io::Error::other(format!(
                    "it cannot be written, and its schema (version {version}) needs updating to                      version {} first",
                    schema::SCHEMA_VERSION
                )),
            });
        }
        Ok(Sqlite {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, context: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |e| sql_error(&self.path, context, e)
    }

    /// Takes the apply lock, or says who holds it.
    ///
    /// A holder on this host whose process is gone is stale, and its lock is taken over. The
    /// check and the write happen in one `BEGIN IMMEDIATE` transaction, so of two racing takers
    /// exactly one wins. Runs still marked running when the lock is taken belong to an apply
    /// that no longer holds it (runs are only begun under the lock), and are marked interrupted.
    pub fn lock(&self) -> Result<SqliteLock, StateError> {
        let me_pid = std::process::id();
        let me_host = host::hostname();
        let started_at = time::now();
        let token = format!(
            "{me_pid}@{me_host}#{}#{}",
            LOCK_SEQ.fetch_add(1, Ordering::Relaxed),
            time::unix_seconds(std::time::SystemTime::now())
        );
        // The guard gets its own connection so that it can release the lock on drop without
        // borrowing this `StateDb`, and can be moved to another thread or task.
        let guard_conn = connect(&self.path)?;

        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(self.err("starting the lock transaction"))?;
        if let Some(holder) = read_holder(&tx).map_err(self.err("reading the lock"))? {
            if holder.host != me_host {
                return Err(StateError::LockedElsewhere {
                    path: self.path.clone(),
                    holder,
                });
            }
            if host::process_alive(holder.pid) {
                return Err(StateError::Locked {
                    path: self.path.clone(),
                    holder,
                });
            }
            // Stale: its process is gone. Taken over below, in this same transaction.
        }
        tx.execute(
            "INSERT OR REPLACE INTO lock (id, pid, host, started_at, token) VALUES (1, ?1, ?2, ?3, ?4)",
            params![me_pid, me_host, started_at, token],
        )
        .map_err(self.err("taking the lock"))?;
        tx.execute(
            &format!(
                "UPDATE runs SET outcome = 'interrupted', ended_at = ?1, {COUNTS} \
                 WHERE outcome = 'running'"
            ),
            params![started_at],
        )
        .map_err(self.err("closing the runs of an earlier, interrupted apply"))?;
        tx.commit().map_err(self.err("committing the lock"))?;

        Ok(SqliteLock {
            conn: guard_conn,
            path: self.path.clone(),
            token,
            released: false,
        })
    }

    /// Who holds the lock, if anyone.
    pub fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        read_holder(&self.conn).map_err(self.err("reading the lock"))
    }

    /// Removes the lock whoever holds it: an explicit admin action (`mailplan state unlock`).
    pub fn force_unlock(&self) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM lock", [])
            .map(drop)
            .map_err(self.err("removing the lock"))
    }

    /// Records the start of a run.
    pub fn begin_run(&self, plan_file: &str, plan_fingerprint: &str) -> Result<RunId, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (plan_file, plan_fingerprint, started_at, outcome) \
                 VALUES (?1, ?2, ?3, 'running')",
                params![plan_file, plan_fingerprint, time::now()],
            )
            .map_err(self.err("recording the start of a run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a run, with its counts taken from its recorded actions.
    pub fn finish_run(&self, run: RunId, outcome: RunOutcome) -> Result<(), StateError> {
        let changed = self
            .conn
            .execute(
                &format!("UPDATE runs SET outcome = ?2, ended_at = ?3, {COUNTS} WHERE id = ?1"),
                params![run, outcome, time::now()],
            )
            .map_err(self.err("recording the end of a run"))?;
        if changed == 0 {
            return Err(StateError::Sqlite {
                path: self.path.clone(),
                context: "recording the end of a run",
                source: rusqlite::Error::QueryReturnedNoRows,
            });
        }
        Ok(())
    }

    /// Records the outcome of one action.
    pub fn record_action(&self, rec: &ActionRecord) -> Result<(), StateError> {
        self.cached(
            "INSERT INTO actions (run, action_id, kind, target, status, error, started_at, \
                 ended_at, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                rec.run,
                rec.action_id,
                rec.kind,
                rec.target,
                rec.status,
                rec.error,
                rec.started_at,
                rec.ended_at,
                to_i64(rec.duration_ms)
            ],
        )
        .map(drop)
        .map_err(self.err("recording an action"))
    }

    /// Stores the entry `dn` as it was, before `action_id` modifies or deletes it. When this
    /// returns, the backup is committed and synced to disk.
    pub fn backup(
        &self,
        run: RunId,
        action_id: &str,
        dn: &str,
        ldif: &str,
    ) -> Result<i64, StateError> {
        self.cached(
            "INSERT INTO backups (run, action_id, dn, dn_key, ldif, taken_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, action_id, dn, dn_key(dn), ldif, time::now()],
        )
        .map_err(self.err("storing a backup"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records, before the write, that `action_id` is about to create or convert `destination`
    /// for the source person `source`. Until the person's addresses reach that object, this is
    /// the only thing that ties them together, so a rerun finds it instead of creating another.
    pub fn link(
        &self,
        run: RunId,
        action_id: &str,
        source: &str,
        destination: &str,
    ) -> Result<(), StateError> {
        self.cached(
                "INSERT INTO links (source_key, source, destination, run, action_id, linked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (source_key) DO UPDATE SET destination = excluded.destination, \
                 run = excluded.run, action_id = excluded.action_id, linked_at = excluded.linked_at",
                params![dn_key(source), source, destination, run, action_id, time::now()],
            )
            .map(drop)
            .map_err(self.err("recording a link"))
    }

    /// Forgets the link `action_id` recorded in `run`: its create was refused because another
    /// object stood at that DN, and the person must not be tied to an object this tool never
    /// made.
    pub fn unlink(&self, run: RunId, action_id: &str) -> Result<(), StateError> {
        self.cached(
            "DELETE FROM links WHERE run = ?1 AND action_id = ?2",
            params![run, action_id],
        )
        .map(drop)
        .map_err(self.err("forgetting a link"))
    }

    /// Backs up a contact about to be deleted for `source` and, in the same transaction, notes
    /// that its data awaits the merge into that person's mailbox. A run killed between the
    /// delete and the merge leaves the data only here, and the next plan merges it from here.
    pub fn backup_contact(
        &self,
        run: RunId,
        action_id: &str,
        contact: &str,
        ldif: &str,
        source: &str,
    ) -> Result<i64, StateError> {
        // Inside a caller's transaction (see `write_together`) that transaction, and the
        // savepoint around this write, keep the two rows together; SQLite cannot nest BEGINs.
        let tx = if self.conn.is_autocommit() {
            Some(
                rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                    .map_err(self.err("backing up a contact"))?,
            )
        } else {
            None
        };
        let id = self.backup(run, action_id, contact, ldif)?;
        self.cached(
            "INSERT INTO pending_merges (contact_key, contact, source_key, source, backup) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (contact_key) DO UPDATE SET source_key = excluded.source_key, \
                 source = excluded.source, backup = excluded.backup, merged_run = NULL",
            params![dn_key(contact), contact, dn_key(source), source, id],
        )
        .map_err(self.err("noting a pending merge"))?;
        if let Some(tx) = tx {
            tx.commit().map_err(self.err("backing up a contact"))?;
        }
        Ok(id)
    }

    /// Runs one statement through the connection's statement cache: the journal repeats the same
    /// few inserts for every action, and parsing them again each time showed up in profiles.
    fn cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// The transaction of a group of writes ([`StateDb::write_together`]): `BEGIN IMMEDIATE`,
    /// so that the group waits for other writers once, at its start.
    fn group(&self, step: backend::GroupStep) -> Result<(), StateError> {
        const CONTEXT: &str = "writing a group of records in one transaction";
        let sql = match step {
            backend::GroupStep::Begin => "BEGIN IMMEDIATE",
            backend::GroupStep::Savepoint => "SAVEPOINT one_write",
            backend::GroupStep::RollbackToSavepoint => "ROLLBACK TO one_write",
            backend::GroupStep::ReleaseSavepoint => "RELEASE one_write",
            backend::GroupStep::Commit => "COMMIT",
            backend::GroupStep::Rollback => {
                if self.conn.is_autocommit() {
                    return Ok(());
                }
                "ROLLBACK"
            }
        };
        self.cached(sql, []).map(drop).map_err(self.err(CONTEXT))
    }

    /// The merges of `source`'s deleted contacts are done.
    pub fn merged(&self, run: RunId, source: &str) -> Result<(), StateError> {
        self.cached(
            "UPDATE pending_merges SET merged_run = ?1 \
                 WHERE source_key = ?2 AND merged_run IS NULL",
            params![run, dn_key(source)],
        )
        .map(drop)
        .map_err(self.err("recording a finished merge"))
    }

    /// What earlier runs did that the directories do not show: every link, and every deleted
    /// contact whose merge has not happened, in a stable order.
    pub fn history(&self) -> Result<History, StateError> {
        let mut links = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT source, destination FROM links ORDER BY source_key")
            .map_err(self.err("reading links"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err("reading links"))?;
        for row in rows {
            links.push(row.map_err(self.err("reading links"))?);
        }
        let mut pending = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.source, p.contact, b.ldif FROM pending_merges p \
                 JOIN backups b ON b.id = p.backup \
                 WHERE p.merged_run IS NULL ORDER BY p.source_key, p.contact_key",
            )
            .map_err(self.err("reading pending merges"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PendingMerge {
                    source: r.get(0)?,
                    contact: r.get(1)?,
                    ldif: r.get(2)?,
                })
            })
            .map_err(self.err("reading pending merges"))?;
        for row in rows {
            pending.push(row.map_err(self.err("reading pending merges"))?);
        }
        Ok(History { links, pending })
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<Run>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC"))
            .map_err(self.err("listing runs"))?;
        let rows = stmt
            .query_map([], run_from_row)
            .map_err(self.err("listing runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing runs"))
    }

    pub fn run(&self, run: RunId) -> Result<Option<Run>, StateError> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [run],
                run_from_row,
            )
            .optional()
            .map_err(self.err("reading a run"))
    }

    /// The actions of a run, in the order they were recorded.
    pub fn run_actions(&self, run: RunId) -> Result<Vec<ActionRecord>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run, action_id, kind, target, status, error, started_at, ended_at, \
                 duration_ms FROM actions WHERE run = ?1 ORDER BY seq",
            )
            .map_err(self.err("listing the actions of a run"))?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(ActionRecord {
                    run: r.get(0)?,
                    action_id: r.get(1)?,
                    kind: r.get(2)?,
                    target: r.get(3)?,
                    status: r.get(4)?,
                    error: r.get(5)?,
                    started_at: r.get(6)?,
                    ended_at: r.get(7)?,
                    duration_ms: to_u64(r.get(8)?),
                })
            })
            .map_err(self.err("listing the actions of a run"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing the actions of a run"))
    }

    /// Backups, newest first: all of them, or those of one entry (its DN compared without
    /// regard to case).
    pub fn backups(&self, dn: Option<&str>) -> Result<Vec<Backup>, StateError> {
        let key = dn.map(dn_key);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {BACKUP_COLUMNS} FROM backups WHERE ?1 IS NULL OR dn_key = ?1 \
                 ORDER BY id DESC"
            ))
            .map_err(self.err("listing backups"))?;
        let rows = stmt
            .query_map([key], backup_from_row)
            .map_err(self.err("listing backups"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing backups"))
    }

    /// Stores what `action_id` left of the entry `dn` (`None`: it deleted it).
    pub fn after_image(
        &self,
        run: RunId,
        action_id: &str,
        dn: &str,
        ldif: Option<&str>,
    ) -> Result<(), StateError> {
        self.cached(
            "INSERT INTO after_images (run, action_id, dn, dn_key, ldif, taken_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, action_id, dn, dn_key(dn), ldif, time::now()],
        )
        .map(drop)
        .map_err(self.err("storing an after-image"))
    }

    /// The after-images of a run, in the order they were recorded.
    pub fn after_images(&self, run: RunId) -> Result<Vec<AfterImage>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run, action_id, dn, ldif FROM after_images WHERE run = ?1 ORDER BY id")
            .map_err(self.err("listing after-images"))?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(AfterImage {
                    run: r.get(0)?,
                    action_id: r.get(1)?,
                    dn: r.get(2)?,
                    ldif: r.get(3)?,
                })
            })
            .map_err(self.err("listing after-images"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing after-images"))
    }

    /// Records that `run` undoes `undone_run`.
    pub fn record_undo(&self, run: RunId, undone_run: RunId) -> Result<(), StateError> {
        self.cached(
            "INSERT INTO undos (run, undone_run) VALUES (?1, ?2)",
            params![run, undone_run],
        )
        .map(drop)
        .map_err(self.err("recording an undo"))
    }

    /// The runs that undo `run`, oldest first.
    pub fn undone_by(&self, run: RunId) -> Result<Vec<RunId>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run FROM undos WHERE undone_run = ?1 ORDER BY run")
            .map_err(self.err("listing the undos of a run"))?;
        let rows = stmt
            .query_map([run], |r| r.get(0))
            .map_err(self.err("listing the undos of a run"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing the undos of a run"))
    }

    /// The newest backup of the entry `dn` (compared without regard to case).
    pub fn latest_backup(&self, dn: &str) -> Result<Option<Backup>, StateError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {BACKUP_COLUMNS} FROM backups WHERE dn_key = ?1 \
                     ORDER BY id DESC LIMIT 1"
                ),
                [dn_key(dn)],
                backup_from_row,
            )
            .optional()
            .map_err(self.err("reading a backup"))
    }

    /// Whether any run of the plan with this fingerprint was recorded.
    pub fn has_runs_of(&self, plan_fingerprint: &str) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE plan_fingerprint = ?1)",
                [plan_fingerprint],
                |r| r.get(0),
            )
            .map_err(self.err("looking up earlier runs"))
    }

    /// The actions applied in any run of the plan with this fingerprint: one query, where a
    /// question per action cost seconds on a plan of a hundred thousand actions.
    pub fn applied_actions(&self, plan_fingerprint: &str) -> Result<BTreeSet<String>, StateError> {
        let context = "looking up applied actions";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT a.action_id FROM actions a JOIN runs r ON r.id = a.run \
                 WHERE a.status = 'applied' AND r.plan_fingerprint = ?1",
            )
            .map_err(self.err(context))?;
        let rows = stmt
            .query_map([plan_fingerprint], |r| r.get(0))
            .map_err(self.err(context))?;
        rows.collect::<Result<_, _>>().map_err(self.err(context))
    }

    /// Records that an item was copied. Returns false, changing nothing, when the same
    /// mailbox, kind and identity are already in the ledger.
    pub fn ledger_record(&self, item: &LedgerItem) -> Result<bool, StateError> {
        self.conn
            .execute(
                "INSERT INTO ledger (run, mailbox, kind, folder, identity, size, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (mailbox, kind, identity) DO NOTHING",
                params![
                    item.run,
                    item.mailbox,
                    item.kind,
                    item.folder,
                    item.identity,
                    item.size.map(to_i64),
                    time::now()
                ],
            )
            .map(|n| n == 1)
            .map_err(self.err("recording a copied item"))
    }

    pub fn ledger_contains(
        &self,
        mailbox: &str,
        kind: &str,
        identity: &str,
    ) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM ledger \
                 WHERE mailbox = ?1 AND kind = ?2 AND identity = ?3)",
                params![mailbox, kind, identity],
                |r| r.get(0),
            )
            .map_err(self.err("looking up a copied item"))
    }

    /// Every identity the ledger holds for one mailbox and kind (what was copied there).
    pub fn ledger_identities(
        &self,
        mailbox: &str,
        kind: &str,
    ) -> Result<std::collections::BTreeSet<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT identity FROM ledger WHERE mailbox = ?1 AND kind = ?2")
            .map_err(self.err("listing copied items"))?;
        let rows = stmt
            .query_map(params![mailbox, kind], |r| r.get::<_, String>(0))
            .map_err(self.err("listing copied items"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing copied items"))
    }

    /// Every identity the ledger holds for one mailbox and kind, with the version recorded for
    /// it (events and contacts; `None`s for mail and for rows whose version is unknown).
    pub fn ledger_versions(
        &self,
        mailbox: &str,
        kind: &str,
    ) -> Result<std::collections::BTreeMap<String, ItemVersion>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT identity, digest, etag FROM ledger WHERE mailbox = ?1 AND kind = ?2",
            )
            .map_err(self.err("listing copied items"))?;
        let rows = stmt
            .query_map(params![mailbox, kind], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ItemVersion {
                        digest: r.get(1)?,
                        etag: r.get(2)?,
                    },
                ))
            })
            .map_err(self.err("listing copied items"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing copied items"))
    }

    /// Sets the version recorded for one item already in the ledger (both fields, exactly as
    /// given: `None` makes it unknown). Returns false when the item is not in the ledger.
    pub fn ledger_set_version(
        &self,
        mailbox: &str,
        kind: &str,
        identity: &str,
        version: &ItemVersion,
    ) -> Result<bool, StateError> {
        self.conn
            .execute(
                "UPDATE ledger SET digest = ?4, etag = ?5 \
                 WHERE mailbox = ?1 AND kind = ?2 AND identity = ?3",
                params![mailbox, kind, identity, version.digest, version.etag],
            )
            .map(|n| n == 1)
            .map_err(self.err("recording the version of a copied item"))
    }

    /// Per mailbox and kind: how many items the ledger holds and their bytes, sorted.
    pub fn ledger_summary(&self) -> Result<Vec<(String, String, u64, u64)>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT mailbox, kind, count(*), coalesce(sum(size), 0) FROM ledger \
                 GROUP BY mailbox, kind ORDER BY mailbox, kind",
            )
            .map_err(self.err("summarising the ledger"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    to_u64(r.get(2)?),
                    to_u64(r.get(3)?),
                ))
            })
            .map_err(self.err("summarising the ledger"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("summarising the ledger"))
    }

    /// Records many copied items in one transaction (one fsync for a batch of messages).
    pub fn ledger_record_all(&self, items: &[LedgerItem]) -> Result<(), StateError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("recording copied items"))?;
        for item in items {
            self.ledger_record(item)?;
        }
        tx.commit().map_err(self.err("recording copied items"))
    }

    /// How many items were copied: in all, or into one mailbox.
    pub fn ledger_count(&self, mailbox: Option<&str>) -> Result<u64, StateError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM ledger WHERE ?1 IS NULL OR mailbox = ?1",
                [mailbox],
                |r| r.get::<_, i64>(0),
            )
            .map(to_u64)
            .map_err(self.err("counting copied items"))
    }
}

/// The `SET` part that recomputes a run's counts from its actions (`runs.id` in scope).
const COUNTS: &str = "\
    applied = (SELECT count(*) FROM actions WHERE run = runs.id AND status = 'applied'), \
    failed = (SELECT count(*) FROM actions WHERE run = runs.id AND status IN ('failed', 'stale')), \
    skipped = (SELECT count(*) FROM actions WHERE run = runs.id AND status = 'skipped')";

const RUN_COLUMNS: &str =
    "id, plan_file, plan_fingerprint, started_at, ended_at, outcome, applied, failed, skipped";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        plan_file: r.get(1)?,
        plan_fingerprint: r.get(2)?,
        started_at: r.get(3)?,
        ended_at: r.get(4)?,
        outcome: r.get(5)?,
        applied: to_u64(r.get(6)?),
        failed: to_u64(r.get(7)?),
        skipped: to_u64(r.get(8)?),
    })
}

const BACKUP_COLUMNS: &str = "id, run, action_id, dn, ldif, taken_at";

fn backup_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Backup> {
    Ok(Backup {
        id: r.get(0)?,
        run: r.get(1)?,
        action_id: r.get(2)?,
        dn: r.get(3)?,
        ldif: r.get(4)?,
        taken_at: r.get(5)?,
    })
}

/// The lookup key of a DN. DNs compare case-insensitively; Unicode lower-casing covers the
/// non-ASCII names a Domino directory is full of, which SQLite's NOCASE would not.
fn dn_key(dn: &str) -> String {
    dn.trim().to_lowercase()
}

fn read_holder(conn: &Connection) -> rusqlite::Result<Option<LockHolder>> {
    conn.query_row(
        "SELECT pid, host, started_at FROM lock WHERE id = 1",
        [],
        |r| {
            Ok(LockHolder {
                pid: r.get(0)?,
                host: r.get(1)?,
                started_at: r.get(2)?,
            })
        },
    )
    .optional()
}

/// The held apply lock of a SQLite state. Dropping it releases the lock (best effort).
pub(crate) struct SqliteLock {
    conn: Connection,
    path: PathBuf,
    /// Identifies this taking of the lock, so that releasing never removes a lock that someone
    /// else took after a `force_unlock`.
    token: String,
    released: bool,
}

impl fmt::Debug for SqliteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLock")
            .field("path", &self.path)
            .field("released", &self.released)
            .finish()
    }
}

impl HeldLock for SqliteLock {
    fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.released = true;
        self.remove()
            .map_err(|e| sql_error(&self.path, "releasing the lock", e))
    }
}

impl SqliteLock {
    fn remove(&self) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM lock WHERE token = ?1", [&self.token])
            .map(drop)
    }
}

impl Drop for SqliteLock {
    fn drop(&mut self) {
        if !self.released {
            // Nowhere to report an error from here; a lock left behind is stale once this
            // process exits, and is then taken over.
            let _ = self.remove();
        }
    }
}

#[cfg(test)]
mod tests;
