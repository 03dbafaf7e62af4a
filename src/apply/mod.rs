//! Apply: carry out a plan against the destination, exactly as planned, safely.
//!
//! `executor` walks the action graph (bounded parallelism, preconditions checked against live
//! entries, backups before every change, dependents of a failure skipped); `writer` is the write
//! side of a directory (LDIF file, `ldap` for servers, `carbonio` through Carbonio's admin API); `reporter` shows progress; `outcome`
//! is what a run did as a whole, left-out persons and skipped items included. Apply never
//! re-plans: deciding is the planner's job.

pub mod carbonio;
pub mod executor;
pub mod guard;
pub mod ldap;
pub mod outcome;
pub mod reporter;
pub mod writer;

pub use carbonio::CarbonioDirectory;
pub use executor::{
    ActionResult, Imported, Importer, Journal, JournalFuture, MemoryJournal, Options, Recorded,
    Report, Reporter, execute, execute_with_importer,
};
pub use ldap::LdapDirectory;
pub use outcome::{Applied, SkippedItem};
pub use writer::{DirectoryWriter, LdifDirectory, WriteError};
