//! Advisory file locks that keep one writer per destination, whichever state folder an apply
//! uses: an LDIF file, a Maildir.
//!
//! A lock is an exclusive `flock` on a small file beside (or inside) what it guards, taken
//! without waiting; the holder writes who it is into the file, so a second writer is refused
//! with a message naming the holder, and removes the file when it lets go. The operating system
//! releases the lock when its process ends, however it ends, so a killed apply never leaves a
//! stale lock behind (only the small file, which the next writer takes over). This module only
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

/// A lock held; released, and its file removed, when dropped (or released by the system when
/// the process ends, leaving only the small file behind).
#[derive(Debug)]
pub struct Held {
    file: Option<File>,
    path: PathBuf,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Removed while still locked: a writer that opened this file meanwhile finds, once it
        // gets the lock, that the path no longer leads to it, and starts again (see `try_lock`).
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
    }
}

/// Takes the exclusive lock `lock` that guards `guarded`, without waiting, and records `holder`
/// (who is writing, for the message another writer gets) in it.
pub fn try_lock(guarded: &Path, lock: &Path, holder: &str) -> Result<Held, LockError> {
    let io = |source| LockError::Io {
        guarded: guarded.to_path_buf(),
        lock: lock.to_path_buf(),
        source,
    };
    // A holder removes the file when it lets go; one opened just before that is a file nobody
    // else will ever lock, so it is given up and the path opened again.
    for _ in 0..16 {
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
        if !same_file(&file, lock) {
            continue;
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        return Ok(Held {
            file: Some(file),
            path: lock.to_path_buf(),
        });
    }
    Err(io(std::io::Error::other(
        "the lock file kept being replaced while it was taken",
    )))
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What the holder wrote about itself (the first 1 KiB). A holder writes it right after it
/// took the lock; a refusal in between waits a moment for it (at most a fifth of a second).
fn read_holder(file: &mut File) -> String {
    for _ in 0..20 {
        let mut text = String::new();
        let _ = file.rewind();
        let _ = Read::by_ref(file).take(1024).read_to_string(&mut text);
        let text = text.trim();
        if !text.is_empty() {
            return text.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "a process that has not said who it is yet".to_string()
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
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            "pid 2 on a, applying two.yaml"
        );
        // Nothing is left beside the guarded file once the lock is let go.
        drop(second);
        assert!(!lock.exists());
    }
}
