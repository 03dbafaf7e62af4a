//! The one way mailplan replaces a file: whole or not at all, even across a crash or a power
//! cut. Saved plans, LDIF destinations, ICS and vCard folders all write through it.
//!
//! The new contents go to a temporary file beside the target (same folder, so the rename stays
//! on one file system), which is flushed and fsynced; it is then renamed over the target, and
//! the folder is fsynced so that the rename itself is on disk. A reader sees the old file or the
//! new one, never a mix; a failure at any step removes the temporary file and leaves the target
//! as it was. A bare file name (`plan.json`) is a file in the current folder. This module must
//! not decide what is written or where.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The part of every temporary file's name after `.{file name}`: `.mailplan-{pid}-{n}.tmp`.
pub const TEMPORARY_MARK: &str = ".mailplan-";

/// Replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Replaces `path` with what `write` writes, as it is made (a large saved plan is never whole
/// in memory).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    // Several writers of one process may write beside each other at once (the files of a
    // calendar folder): each temporary file has a name of its own.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = folder_of(path);
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` names no file", path.display()),
        ));
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{name}{TEMPORARY_MARK}{}-{n}.tmp",
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        write(&mut f)?;
        f.flush()?;
        f.get_ref().sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The folder `path` is in: `.` for a bare file name.
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The process that wrote a temporary file named `file` beside `name`, when it is one.
pub fn temporary_owner(file: &str, name: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix(TEMPORARY_MARK)?
        .strip_suffix(".tmp")?;
    // `{pid}-{n}`; files of older versions were `{pid}` alone.
    rest.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ldif");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.ldif"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_atomic(&path, b"old").unwrap();
        let e = write_atomic_with(&path, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_folder() {
        // The current folder is the process's: a child process keeps the test apart from the
        // others that run at the same time.
        if std::env::var_os("MAILPLAN_ATOMIC_BARE_NAME").is_some() {
            write_atomic(Path::new("bare.txt"), b"here").unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new(me)
            .args([
                "--exact",
                "atomic_file::tests::a_bare_file_name_is_written_in_the_current_folder",
            ])
            .env("MAILPLAN_ATOMIC_BARE_NAME", "1")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(std::fs::read(dir.path().join("bare.txt")).unwrap(), b"here");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_are_known_by_their_writer() {
        assert_eq!(
            temporary_owner(".a.ldif.mailplan-42-7.tmp", "a.ldif"),
            Some(42)
        );
        assert_eq!(
            temporary_owner(".a.ldif.mailplan-42.tmp", "a.ldif"),
            Some(42)
        );
        assert_eq!(temporary_owner(".b.ldif.mailplan-42-7.tmp", "a.ldif"), None);
        assert_eq!(temporary_owner("a.ldif", "a.ldif"), None);
    }
}
