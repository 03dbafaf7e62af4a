//! Advisory file locks that keep one writer per destination, whichever state folder an apply
//! uses: an LDIF file, a Maildir.
//!
//! A lock is an exclusive `flock` on a small file beside (or inside) what it guards, taken
//! without waiting; the holder writes who it is into the file, so a second writer is refused
//! with a message naming the holder. The operating system releases the lock when its process
//! ends, however it ends, so a killed apply never leaves a stale lock behind. This module only
//! locks: it never decides what is guarded.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` is what it wrote about itself.
    #[error("`{}` is being written by another apply ({holder})", guarded.display())]
    Held { guarded: PathBuf, holder: String },
    #[error("cannot lock `{}` (through `{}`): {source}", guarded.display(), lock.display())]
    Io {
        guarded: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// A lock held; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Held {
    // Closing the file releases the lock.
    _file: File,
}

/// Takes the exclusive lock `lock` that guards `guarded`, without waiting, and records `holder`
/// (who is writing, for the message another writer gets) in it.
pub fn try_lock(guarded: &Path, lock: &Path, holder: &str) -> Result<Held, LockError> {
    let io = |source| LockError::Io {
        guarded: guarded.to_path_buf(),
        lock: lock.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                guarded: guarded.to_path_buf(),
                holder: read_holder(&mut file),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(holder.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Held { _file: file })
}

/// What the holder wrote about itself (the first 1 KiB), or a placeholder when it has not yet.
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.take(1024).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "a process that has not said who it is yet".to_string()
    } else {
        text.to_string()
    }
}

/// `pid 4242 on host-a since 2026-12-06T11:00:00Z, applying plans/wave1.yaml`: who is writing.
pub fn holder_description(plan_file: &Path) -> String {
    format!(
        "pid {} on {} since {}, applying {}",
        std::process::id(),
        crate::state::host::hostname(),
        crate::state::time::now(),
        plan_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let guarded = dir.path().join("ad.ldif");
        let lock = dir.path().join(".ad.ldif.mailplan-lock");
        let first = try_lock(&guarded, &lock, "pid 1 on a, applying one.yaml").unwrap();
        match try_lock(&guarded, &lock, "pid 2 on a, applying two.yaml") {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, "pid 1 on a, applying one.yaml")
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let second = try_lock(&guarded, &lock, "pid 2 on a, applying two.yaml").unwrap();
        drop(second);
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            "pid 2 on a, applying two.yaml"
        );
    }
}
