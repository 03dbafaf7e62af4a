//! The write side of a destination directory, and its LDIF-file implementation.
//!
//! `DirectoryWriter` is what the executor needs from a directory: read one live entry, add,
//! modify, delete, with LDAP's semantics (adding an existing entry or value fails, deleting a
//! missing one fails), so that the LDAP backend can implement the same trait. `LdifDirectory`
//! keeps the file's entries in memory and makes every change durable before reporting success:
//! the whole file is written to a temporary file, synced and renamed over the original, so a kill
//! at any instant leaves either the old or the new file, never half of one. Concurrent writers
//! share one such write (group commit). This module must not decide what to change.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::directory::ldif::{self, ModOp, Modification};
use crate::directory::{Dn, Entry, Snapshot};
use crate::plan::Precondition;

/// Why a directory write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("`{0}` does not exist")]
    NoSuchObject(Dn),
    #[error("`{0}` already exists")]
    AlreadyExists(Dn),
    #[error("`{dn}` has no value `{value}` in `{attribute}` to remove")]
    NoSuchValue {
        dn: Dn,
        attribute: String,
        value: String,
    },
    #[error("`{dn}` already has `{value}` in `{attribute}`")]
    ValueExists {
        dn: Dn,
        attribute: String,
        value: String,
    },
    #[error("cannot write `{path}`: {message}")]
    Io { path: PathBuf, message: String },
    /// A directory server refused or could not carry out the operation.
    #[error("`{dn}`: {message}")]
    Server { dn: Dn, message: String },
    /// A directory server refused a modify because a value it removes is missing or a value it
    /// adds is there already (LDAP's noSuchAttribute and attributeOrValueExists).
    #[error("`{dn}`: {message}")]
    Conflict { dn: Dn, message: String },
    /// The server checked the action's preconditions with the write and they no longer held.
    #[error("`{dn}`: {message}")]
    Stale { dn: Dn, message: String },
}

impl WriteError {
    /// True when the write was refused because the object changed since it was planned.
    pub fn is_stale(&self) -> bool {
        matches!(self, WriteError::Stale { .. })
    }

    /// True when the write was refused because of the values it names (or the preconditions
    /// guarding them): something a different set of values, written alone, could avoid.
    pub fn is_about_values(&self) -> bool {
        matches!(
            self,
            WriteError::Stale { .. }
                | WriteError::Conflict { .. }
                | WriteError::NoSuchValue { .. }
                | WriteError::ValueExists { .. }
        )
    }
}

/// What the executor needs from a destination directory.
pub trait DirectoryWriter: Send + Sync + 'static {
    /// The live entry, or `None` when it does not exist.
    fn get(&self, dn: &Dn) -> impl Future<Output = Result<Option<Entry>, WriteError>> + Send;
    fn add(&self, entry: Entry) -> impl Future<Output = Result<(), WriteError>> + Send;
    fn modify(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    fn delete(&self, dn: &Dn) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// `modify`, with the action's preconditions for a directory that can check them in the
    /// same operation (LDAP's Assertion control); the executor has checked them before.
    fn modify_guarded(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
        guard: &[Precondition],
    ) -> impl Future<Output = Result<(), WriteError>> + Send {
        let _ = guard;
        self.modify(dn, mods)
    }
    /// True when `add` itself refuses, atomically, an entry that exists
    /// ([`WriteError::AlreadyExists`]) or whose parent does not ([`WriteError::NoSuchObject`]),
    /// as directory servers do: a create then needs no read before it.
    fn add_checks_existence(&self) -> bool {
        false
    }
    /// For a directory where something else creates mailboxes (Carbonio's Accounts Auto
    /// Provisioning): waits, bounded, until `dn` exists; `Some(Ok(false))` when it did not
    /// appear in time. `None`: nothing creates entries here by itself, so there is nothing to
    /// wait for and the caller goes on as it would.
    fn wait_for(&self, dn: &Dn) -> impl Future<Output = Option<Result<bool, WriteError>>> + Send {
        let _ = dn;
        std::future::ready(None)
    }
    /// How long [`DirectoryWriter::wait_for`] waits at most, for messages.
    fn waits_for(&self) -> Option<std::time::Duration> {
        None
    }
    /// `delete`, with the action's preconditions (see `modify_guarded`).
    fn delete_guarded(
        &self,
        dn: &Dn,
        guard: &[Precondition],
    ) -> impl Future<Output = Result<(), WriteError>> + Send {
        let _ = guard;
        self.delete(dn)
    }
}

/// An LDIF file used as a directory.
pub struct LdifDirectory {
    path: PathBuf,
    state: Mutex<Contents>,
    /// The generation last made durable; holding this lock is holding the right to write.
    flushed: tokio::sync::Mutex<u64>,
}

struct Contents {
    entries: BTreeMap<Dn, Entry>,
    /// Bumped by every change, so a flush knows which changes it covers.
    generation: u64,
    /// Set when a write of the file failed. The entries in memory then hold changes the file
    /// does not, and a later successful write would make a failed action's change durable
    /// behind its back: so from then on nothing is changed or written, and every call fails
    /// with the first error. The file keeps its last good contents for the rerun.
    broken: Option<WriteError>,
}

impl LdifDirectory {
    /// Takes over the entries of an already-read snapshot of the file at `path`.
    pub fn new(path: &Path, snapshot: &Snapshot) -> Self {
        remove_abandoned_temporaries(path);
        let entries = snapshot
            .entries()
            .iter()
            .map(|e| (e.dn.clone(), e.clone()))
            .collect();
        LdifDirectory {
            path: path.to_path_buf(),
            state: Mutex::new(Contents {
                entries,
                generation: 0,
                broken: None,
            }),
            flushed: tokio::sync::Mutex::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Contents> {
        // A panic while holding the lock cannot leave the map half-changed: every mutation is a
        // single insert/remove/replace, so the contents are still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` in memory, then waits until a write of the file includes it.
    async fn change(
        &self,
        change: impl FnOnce(&mut BTreeMap<Dn, Entry>) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        let generation = {
            let mut s = self.lock();
            if let Some(e) = &s.broken {
                return Err(e.clone());
            }
            change(&mut s.entries)?;
            s.generation += 1;
            s.generation
        };
        self.sync(generation).await
    }

    async fn sync(&self, generation: u64) -> Result<(), WriteError> {
        let mut flushed = self.flushed.lock().await;
        if *flushed >= generation {
            return Ok(()); // Another writer's flush already covered this change.
        }
        let (bytes, covers) = {
            let s = self.lock();
            if let Some(e) = &s.broken {
                return Err(e.clone());
            }
            let mut out = Vec::new();
            let mut w = ldif::EntryWriter::new(&mut out).map_err(|e| self.io(e))?;
            for e in s.entries.values() {
                w.write(e).map_err(|e| self.io(e))?;
            }
            w.finish().map_err(|e| self.io(e))?;
            (out, s.generation)
        };
        let path = self.path.clone();
        let result =
            tokio::task::spawn_blocking(move || crate::atomic_file::write_atomic(&path, &bytes))
                .await
                .map_err(|e| WriteError::Io {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
        if let Err(e) = result {
            let e = self.io(e);
            self.lock().broken = Some(e.clone());
            return Err(e);
        }
        *flushed = covers;
        Ok(())
    }

    fn io(&self, e: std::io::Error) -> WriteError {
        WriteError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// Removes temporary files that killed runs left beside `path` (their process is gone; the
/// rename never happened, so they hold nothing the file needs). Best effort: a file that cannot
/// be removed is only clutter.
fn remove_abandoned_temporaries(path: &Path) {
    let dir = crate::atomic_file::folder_of(path);
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for f in listing.flatten() {
        let file = f.file_name().to_string_lossy().into_owned();
        if let Some(pid) = crate::atomic_file::temporary_owner(&file, &name)
            && pid != std::process::id()
            && !crate::state::host::process_alive(pid)
        {
            let _ = std::fs::remove_file(f.path());
        }
    }
}

/// Applies LDAP modify semantics to an entry in memory.
pub fn apply_modifications(entry: &mut Entry, mods: &[Modification]) -> Result<(), WriteError> {
    // All-or-nothing, as an LDAP modify is: work on a copy.
    let mut next = entry.clone();
    for m in mods {
        let values = next.attrs.entry(m.attr.clone()).or_default();
        match m.op {
            ModOp::Add => {
                for v in &m.values {
                    if !values.insert(v.clone()) {
                        return Err(WriteError::ValueExists {
                            dn: entry.dn.clone(),
                            attribute: m.attr.to_string(),
                            value: v.display(),
                        });
                    }
                }
            }
            ModOp::Delete if m.values.is_empty() => {
                if values.is_empty() {
                    return Err(WriteError::NoSuchValue {
                        dn: entry.dn.clone(),
                        attribute: m.attr.to_string(),
                        value: String::new(),
                    });
                }
                *values = Default::default();
            }
            ModOp::Delete => {
                for v in &m.values {
                    if !values.remove(v) {
                        return Err(WriteError::NoSuchValue {
                            dn: entry.dn.clone(),
                            attribute: m.attr.to_string(),
                            value: v.display(),
                        });
                    }
                }
            }
            ModOp::Replace => *values = m.values.iter().cloned().collect(),
            ModOp::Increment => {
                let by: i64 = m
                    .values
                    .first()
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let current: Vec<_> = values.iter().cloned().collect();
                *values = current
                    .iter()
                    .map(|v| {
                        let n: i64 = v.as_str().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                        crate::directory::Value::text((n + by).to_string())
                    })
                    .collect();
            }
        }
        if values.is_empty() {
            next.attrs.remove(&m.attr);
        }
    }
    *entry = next;
    Ok(())
}

impl DirectoryWriter for LdifDirectory {
    async fn get(&self, dn: &Dn) -> Result<Option<Entry>, WriteError> {
        Ok(self.lock().entries.get(dn).cloned())
    }

    async fn add(&self, entry: Entry) -> Result<(), WriteError> {
        self.change(|entries| {
            if entries.contains_key(&entry.dn) {
                return Err(WriteError::AlreadyExists(entry.dn.clone()));
            }
            entries.insert(entry.dn.clone(), entry);
            Ok(())
        })
        .await
    }

    async fn modify(&self, dn: &Dn, mods: Vec<Modification>) -> Result<(), WriteError> {
        self.change(|entries| {
            let entry = entries
                .get_mut(dn)
                .ok_or_else(|| WriteError::NoSuchObject(dn.clone()))?;
            apply_modifications(entry, &mods)
        })
        .await
    }

    async fn delete(&self, dn: &Dn) -> Result<(), WriteError> {
        self.change(|entries| {
            entries
                .remove(dn)
                .map(|_| ())
                .ok_or_else(|| WriteError::NoSuchObject(dn.clone()))
        })
        .await
    }
}
