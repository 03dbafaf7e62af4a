//! Apply: carry out a plan against the destination, exactly as planned, safely.
//!
//! `executor` walks the action graph (bounded parallelism, preconditions checked against live
//! entries, backups before every change, dependents of a failure skipped); `writer` is the write
//! side of a directory (LDIF file now; LDAP later); `reporter` shows progress. Apply never
//! re-plans: deciding is the planner's job.

pub mod executor;
pub mod ldap;
pub mod reporter;
pub mod writer;

pub use executor::{
    ActionResult, Importer, Journal, JournalFuture, MemoryJournal, Options, Recorded, Report,
    Reporter, execute, execute_with_importer,
};
pub use ldap::LdapDirectory;
pub use writer::{DirectoryWriter, LdifDirectory, WriteError};
