//! Faults of the machine under `mailplan apply`: a full disk, a read-only destination, a
//! read-only state folder. Each must end in a clear error and exit 1, with the destination file
//! as it was before the failed write (never half-written) and a rerun, once the fault is gone,
//! finishing the job.
//!
//! The faults are real file systems: small tmpfs mounts, remounted read-only or too small. That
//! needs root (CI runs as root); elsewhere these tests fail saying so.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use predicates::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tmpfs mounted on a folder, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}; install util-linux's mount"));
        assert!(
            out.status.success(),
            "these tests simulate a full or read-only disk with a small tmpfs, which needs root \
             (CI runs the suite as root): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        let out = Process::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A copy of `examples/`, with `examples/data` on its own (not yet mounted) folder.
struct Example {
    dir: tempfile::TempDir,
}

impl Example {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plans = dir.path().join("examples/plans");
        std::fs::create_dir_all(&plans).unwrap();
        copy_files(&root().join("examples/plans"), &plans);
        Example { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn fill_data(&self) {
        copy_files(&root().join("examples/data"), &self.path("examples/data"));
    }
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("mailplan").unwrap();
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }
    fn apply(&self) -> assert_cmd::assert::Assert {
        self.cmd().args(["apply", PLAN, "--auto-approve"]).assert()
    }
    fn destination(&self) -> Vec<u8> {
        std::fs::read(self.path("examples/data/ad.ldif")).unwrap()
    }
    /// Files in the data folder besides the two LDIF files (left-over temporaries).
    fn strays(&self) -> Vec<String> {
        std::fs::read_dir(self.path("examples/data"))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "ad.ldif" && n != "domino.ldif")
            .collect()
    }
    fn converges(&self) {
        self.apply()
            .success()
            .stderr(predicate::str::contains("0 failed, 0 skipped"))
            .stderr(predicate::str::contains("Apply finished with errors").not());
        self.cmd()
            .args(["plan", PLAN, "--detailed-exitcode"])
            .assert()
            .code(0)
            .stdout(predicate::str::contains("No changes."));
    }
}

fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

const PLAN: &str = "examples/plans/quickstart.yaml";

#[test]
fn a_full_disk_fails_the_writes_and_keeps_the_file_whole() {
    let ex = Example::new();
    // The example's files take three 4 KiB pages; one more is too few for the rewritten file.
    let fs = Tmpfs::mount(&ex.path("examples/data"), "16k");
    ex.fill_data();
    let before = ex.destination();
    ex.apply()
        .code(1)
        .stderr(predicate::str::contains("No space left on device"))
        .stderr(predicate::str::contains("Apply finished with errors."));
    assert_eq!(ex.destination(), before, "the destination was half-written");
    assert_eq!(ex.strays(), Vec::<String>::new());
    ex.cmd()
        .args(["state", "list", PLAN])
        .assert()
        .success()
        .stdout(predicate::str::contains("failed"));

    fs.remount("size=1m");
    ex.converges();
}

#[test]
fn a_read_only_destination_fails_the_writes_and_a_rerun_finishes() {
    let ex = Example::new();
    let fs = Tmpfs::mount(&ex.path("examples/data"), "1m");
    ex.fill_data();
    fs.remount("ro");
    let before = ex.destination();
    ex.apply()
        .code(1)
        .stderr(predicate::str::contains("Read-only file system"));
    assert_eq!(ex.destination(), before);

    fs.remount("rw");
    ex.converges();
}

#[test]
fn a_read_only_state_folder_stops_apply_before_any_write() {
    let ex = Example::new();
    ex.fill_data();
    let state = ex.path("examples/plans/.mailplan");
    let fs = Tmpfs::mount(&state, "1m");
    fs.remount("ro");
    let before = ex.destination();
    ex.apply()
        .code(1)
        .stderr(predicate::str::contains(".mailplan"))
        .stderr(predicate::str::contains("Read-only file system"));
    assert_eq!(ex.destination(), before, "apply wrote without its state");

    // Planning only reads the state, so it works on a read-only one, with or without a database.
    ex.cmd()
        .args(["plan", PLAN, "--detailed-exitcode"])
        .assert()
        .code(2);
    fs.remount("rw");
    ex.converges();
    fs.remount("ro");
    ex.cmd()
        .args(["plan", PLAN, "--detailed-exitcode"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes."));
}
