//! One interface, two backends: [`StateDb`] is what the rest of mailplan holds, and it passes
//! every call to the backend the plan file chose (as Terraform's state backends sit behind one
//! interface): the SQLite file beside the plan (the default), or a PostgreSQL database that
//! many machines share (`state: postgres:`).
//!
//! This module only dispatches. It must not hold SQL of either backend, nor decide anything
//! that differs between them: what a call promises (durable when it returns, one ledger row per
//! item, the lock) is documented here once, and each backend keeps it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::postgres::{Postgres, Target};
use super::{
    ActionRecord, AfterImage, Backup, History, ItemVersion, LedgerItem, LockHolder, Run, RunId,
    RunOutcome, Sqlite, StateError,
};

/// Where a plan's state is kept.
#[derive(Debug, Clone)]
pub enum Location {
    /// A folder (`.mailplan` beside the plan, or `--state-dir`) holding the SQLite file.
    Dir(PathBuf),
    /// A PostgreSQL database, shared by every machine that works on the wave.
    Postgres(Arc<Target>),
}

impl From<PathBuf> for Location {
    fn from(dir: PathBuf) -> Self {
        Location::Dir(dir)
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Self {
        Location::Dir(dir.to_path_buf())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(target) => f.write_str(target.shown()),
        }
    }
}

/// One step of the transaction around a group of writes (see [`StateDb::write_together`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupStep {
    Begin,
    Savepoint,
    RollbackToSavepoint,
    ReleaseSavepoint,
    Commit,
    Rollback,
}

/// A held apply lock, as a backend keeps it.
pub(crate) trait HeldLock: Send {
    fn release(self: Box<Self>) -> Result<(), StateError>;
}

/// Declares the calls every backend answers: the trait, the SQLite backend's implementation
/// (its inherent methods of the same names), and [`StateDb`]'s public method passing each on.
macro_rules! backend_calls {
    ($(
        $(#[$doc:meta])*
        fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;
    )*) => {
        /// What a state backend answers; see [`StateDb`] for what each call promises.
        pub(crate) trait Backend: Send {
            /// Where the state is, for messages (a file, or a URL without its password).
            fn path(&self) -> &Path;
            fn lock(&self) -> Result<Box<dyn HeldLock>, StateError>;
            fn group(&self, step: GroupStep) -> Result<(), StateError>;
            /// The work units, for a backend that machines share.
            fn units(&self) -> Option<&dyn super::units::WorkUnits> {
                None
            }
            /// The connection caps, for a backend that machines share.
            fn caps(&self) -> Option<&dyn super::caps::SharedCaps> {
                None
            }
            #[cfg(test)]
            fn as_sqlite(&self) -> Option<&Sqlite> {
                None
            }
            $( fn $name(&self $(, $arg: $ty)*) -> $ret; )*
        }

        impl Backend for Sqlite {
            fn path(&self) -> &Path {
                Sqlite::path(self)
            }
            fn lock(&self) -> Result<Box<dyn HeldLock>, StateError> {
                Ok(Box::new(Sqlite::lock(self)?))
            }
            fn group(&self, step: GroupStep) -> Result<(), StateError> {
                Sqlite::group(self, step)
            }
            #[cfg(test)]
            fn as_sqlite(&self) -> Option<&Sqlite> {
                Some(self)
            }
            $( fn $name(&self $(, $arg: $ty)*) -> $ret { Sqlite::$name(self $(, $arg)*) } )*
        }

        impl StateDb {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret { self.backend.$name($($arg),*) }
            )*
        }
    };
}

backend_calls! {
    /// Who holds the lock, if anyone.
    fn lock_holder(&self) -> Result<Option<LockHolder>, StateError>;
    /// Removes the lock whoever holds it: an explicit admin action (`mailplan state unlock`).
    fn force_unlock(&self) -> Result<(), StateError>;
    /// Records the start of a run.
    fn begin_run(&self, plan_file: &str, plan_fingerprint: &str) -> Result<RunId, StateError>;
    /// Records the end of a run, with its counts taken from its recorded actions.
    fn finish_run(&self, run: RunId, outcome: RunOutcome) -> Result<(), StateError>;
    /// Records the outcome of one action.
    fn record_action(&self, rec: &ActionRecord) -> Result<(), StateError>;
    /// Stores the entry `dn` as it was, before `action_id` modifies or deletes it. When this
    /// returns, the backup is committed and on disk.
    fn backup(&self, run: RunId, action_id: &str, dn: &str, ldif: &str) -> Result<i64, StateError>;
    /// Records, before the write, that `action_id` is about to create or convert `destination`
    /// for the source person `source`. Until the person's addresses reach that object, this is
    /// the only thing that ties them together, so a rerun finds it instead of creating another.
    fn link(&self, run: RunId, action_id: &str, source: &str, destination: &str) -> Result<(), StateError>;
    /// Forgets the link `action_id` recorded in `run`: its create was refused because another
    /// object stood at that DN.
    fn unlink(&self, run: RunId, action_id: &str) -> Result<(), StateError>;
    /// Backs up a contact about to be deleted for `source` and, in the same transaction, notes
    /// that its data awaits the merge into that person's mailbox.
    fn backup_contact(&self, run: RunId, action_id: &str, contact: &str, ldif: &str, source: &str) -> Result<i64, StateError>;
    /// The merges of `source`'s deleted contacts are done.
    fn merged(&self, run: RunId, source: &str) -> Result<(), StateError>;
    /// What earlier runs did that the directories do not show: every link, and every deleted
    /// contact whose merge has not happened, in a stable order.
    fn history(&self) -> Result<History, StateError>;
    /// All runs, newest first.
    fn runs(&self) -> Result<Vec<Run>, StateError>;
    /// One run.
    fn run(&self, run: RunId) -> Result<Option<Run>, StateError>;
    /// The actions of a run, in the order they were recorded.
    fn run_actions(&self, run: RunId) -> Result<Vec<ActionRecord>, StateError>;
    /// Backups, newest first: all of them, or those of one entry (its DN compared without
    /// regard to case).
    fn backups(&self, dn: Option<&str>) -> Result<Vec<Backup>, StateError>;
    /// Stores what `action_id` left of the entry `dn` once its write is confirmed: the entry
    /// as LDIF, or `None` for an entry it deleted. A write with no after-image is "unknown" to
    /// `state undo`.
    fn after_image(&self, run: RunId, action_id: &str, dn: &str, ldif: Option<&str>) -> Result<(), StateError>;
    /// The after-images of a run, in the order they were recorded.
    fn after_images(&self, run: RunId) -> Result<Vec<AfterImage>, StateError>;
    /// Records that `run` undoes `undone_run`.
    fn record_undo(&self, run: RunId, undone_run: RunId) -> Result<(), StateError>;
    /// The runs that undo `run`, oldest first.
    fn undone_by(&self, run: RunId) -> Result<Vec<RunId>, StateError>;
    /// The newest backup of the entry `dn` (compared without regard to case).
    fn latest_backup(&self, dn: &str) -> Result<Option<Backup>, StateError>;
    /// Whether any run of the plan with this fingerprint was recorded.
    fn has_runs_of(&self, plan_fingerprint: &str) -> Result<bool, StateError>;
    /// The actions applied in any run of the plan with this fingerprint.
    fn applied_actions(&self, plan_fingerprint: &str) -> Result<BTreeSet<String>, StateError>;
    /// Records that an item was copied. Returns false, changing nothing, when the same
    /// mailbox, kind and identity are already in the ledger.
    fn ledger_record(&self, item: &LedgerItem) -> Result<bool, StateError>;
    /// Whether the ledger holds this item.
    fn ledger_contains(&self, mailbox: &str, kind: &str, identity: &str) -> Result<bool, StateError>;
    /// Every identity the ledger holds for one mailbox and kind (what was copied there).
    fn ledger_identities(&self, mailbox: &str, kind: &str) -> Result<BTreeSet<String>, StateError>;
    /// Every identity the ledger holds for one mailbox and kind, with the version recorded for
    /// it (events and contacts; `None`s for mail and for rows whose version is unknown).
    fn ledger_versions(&self, mailbox: &str, kind: &str) -> Result<BTreeMap<String, ItemVersion>, StateError>;
    /// Sets the version recorded for one item already in the ledger (both fields, exactly as
    /// given: `None` makes it unknown). Returns false when the item is not in the ledger.
    fn ledger_set_version(&self, mailbox: &str, kind: &str, identity: &str, version: &ItemVersion) -> Result<bool, StateError>;
    /// Per mailbox and kind: how many items the ledger holds and their bytes, sorted.
    fn ledger_summary(&self) -> Result<Vec<(String, String, u64, u64)>, StateError>;
    /// Records many copied items in one transaction (one sync for a batch of messages).
    fn ledger_record_all(&self, items: &[LedgerItem]) -> Result<(), StateError>;
    /// How many items were copied: in all, or into one mailbox.
    fn ledger_count(&self, mailbox: Option<&str>) -> Result<u64, StateError>;
}

/// The state of one plan, in whichever backend holds it. Not `Sync`: give each thread its own
/// `StateDb` (opening is cheap).
pub struct StateDb {
    backend: Box<dyn Backend>,
    location: Location,
}

impl fmt::Debug for StateDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateDb")
            .field("path", &self.backend.path())
            .finish()
    }
}

/// The held apply lock. Dropping it releases the lock (best effort); call
/// [`LockGuard::release`] to learn whether that worked.
pub struct LockGuard {
    held: Box<dyn HeldLock>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl LockGuard {
    /// Releases the lock.
    pub fn release(self) -> Result<(), StateError> {
        self.held.release()
    }
}

impl StateDb {
    /// Opens (creating if needed) the SQLite state in `dir`: `dir/state.db`, with `dir` made
    /// mode 0700 and the file 0600, its schema brought up to date.
    pub fn open(dir: &Path) -> Result<StateDb, StateError> {
        Ok(StateDb {
            backend: Box::new(Sqlite::open(dir)?),
            location: Location::Dir(dir.to_path_buf()),
        })
    }

    /// Opens the SQLite state in `dir` when it exists, for commands that only read what earlier
    /// applies did (`plan`): a plan file that was never applied has no state, and gets none.
    pub fn open_existing(dir: &Path) -> Result<Option<StateDb>, StateError> {
        Ok(Sqlite::open_existing(dir)?.map(|db| StateDb {
            backend: Box::new(db),
            location: Location::Dir(dir.to_path_buf()),
        }))
    }

    /// Opens (creating the tables if needed) the state at `location`.
    pub fn open_at(location: &Location) -> Result<StateDb, StateError> {
        match location {
            Location::Dir(dir) => StateDb::open(dir),
            Location::Postgres(target) => Ok(StateDb {
                backend: Box::new(Postgres::open(target.clone())?),
                location: location.clone(),
            }),
        }
    }

    /// Opens the state at `location` when it holds one; see [`StateDb::open_existing`].
    pub fn open_existing_at(location: &Location) -> Result<Option<StateDb>, StateError> {
        match location {
            Location::Dir(dir) => StateDb::open_existing(dir),
            Location::Postgres(target) => {
                Ok(Postgres::open_existing(target.clone())?.map(|db| StateDb {
                    backend: Box::new(db),
                    location: location.clone(),
                }))
            }
        }
    }

    /// Where this state is kept: open it again there (another thread, another task).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The database file (SQLite), or the database's URL without its password (PostgreSQL):
    /// for messages.
    pub fn path(&self) -> &Path {
        self.backend.path()
    }

    /// Takes the apply lock, or says who holds it. SQLite: one lock per state file, a holder on
    /// this host whose process is gone is taken over. PostgreSQL: one lock per plan and
    /// destination (an advisory lock), released by the server when its holder's connection
    /// ends. Runs still marked running when the lock is taken belong to an apply that no longer
    /// holds it, and are marked interrupted.
    pub fn lock(&self) -> Result<LockGuard, StateError> {
        Ok(LockGuard {
            held: self.backend.lock()?,
        })
    }

    /// Runs every one of `writes` through `write`, all in one transaction: one commit, so one
    /// sync, for the lot. Each write runs inside its own savepoint, so one that fails is undone
    /// alone and reports its own error, while the others still commit.
    ///
    /// `Ok` comes only after the commit, so every `Ok` inside it is durable. `Err` means the
    /// transaction itself could not begin, keep its savepoints, or commit: then nothing of it
    /// was stored, and the caller must retry or fail each write on its own (never report them
    /// done). `write` must not begin a transaction of its own; the methods of this type that
    /// need one join the enclosing one instead.
    pub fn write_together<W, T>(
        &self,
        writes: &[W],
        mut write: impl FnMut(&StateDb, &W) -> Result<T, StateError>,
    ) -> Result<Vec<Result<T, StateError>>, StateError> {
        let group = |step| self.backend.group(step);
        group(GroupStep::Begin)?;
        let mut results = Vec::with_capacity(writes.len());
        let all = (|| {
            for w in writes {
                group(GroupStep::Savepoint)?;
                let result = write(self, w);
                if result.is_err() {
                    group(GroupStep::RollbackToSavepoint)?;
                }
                group(GroupStep::ReleaseSavepoint)?;
                results.push(result);
            }
            group(GroupStep::Commit)
        })();
        match all {
            Ok(()) => Ok(results),
            Err(e) => {
                // Nothing of the group stays; the error that stopped it is the one to report.
                let _ = group(GroupStep::Rollback);
                Err(e)
            }
        }
    }

    /// The work units of this state's wave, when its backend is one that machines share
    /// (PostgreSQL); `None` for SQLite, where one apply copies its items itself.
    pub fn units(&self) -> Option<&dyn super::units::WorkUnits> {
        self.backend.units()
    }

    /// The connection caps that every machine respects, when the backend is one that machines
    /// share (PostgreSQL); `None` for SQLite, where the plan file's caps hold within the
    /// process.
    pub fn caps(&self) -> Option<&dyn super::caps::SharedCaps> {
        self.backend.caps()
    }

    /// The SQLite backend, for tests that look into its file.
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> &Sqlite {
        self.backend
            .as_sqlite()
            .expect("a test of the SQLite backend opened another")
    }
}
