//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder, the server on a
//! free 127.0.0.1 port, stopped by its PID when the guard is dropped (also when a test fails).
//!
//! A missing PostgreSQL fails the test with the command that installs it; nothing is skipped.
//! Started as root (as CI runs), the cluster runs as the `postgres` user the Debian package
//! creates, since the server refuses to run as root. This file stands alone (the state's unit
//! tests include it too) and must not touch anything outside its temporary folder and the
//! process it started.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const POSTGRES_APT: &str = "apt-get install -y --no-install-recommends postgresql";

/// The cluster's superuser and its password.
pub const PG_USER: &str = "mailplan";
pub const PG_PASSWORD: &str = "Pg-test-secret!";

/// The folder of the newest installed PostgreSQL's programs.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL (`initdb`, `postgres`) is not installed; these tests need a real server.\n\
             Install it with:\n    sudo {POSTGRES_APT}\n(or run `bash scripts/test.sh` as root, \
             which installs it)"
        ),
    }
}

/// The user and group the server runs as: ourselves, or `postgres` when we are root.
fn run_as() -> Option<(u32, u32)> {
    let id = |flag: &str, who: Option<&str>| -> Option<u32> {
        let out = Command::new("id").arg(flag).args(who).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u", None)? != 0 {
        return None;
    }
    match (id("-u", Some("postgres")), id("-g", Some("postgres"))) {
        (Some(u), Some(g)) => Some((u, g)),
        _ => panic!(
            "running as root, and there is no `postgres` user to run the test cluster as; \
             install PostgreSQL with:\n    sudo {POSTGRES_APT}"
        ),
    }
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin.join(name));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A running throwaway cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_with(&[])
    }

    /// Started with more server settings (`["log_statement=all"]`).
    pub fn start_with(settings: &[&str]) -> Postgres {
        let bin = bin_dir();
        let user = run_as();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).expect("write the password file");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let out = command(&bin, "initdb", user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let child = command(&bin, "postgres", user)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=16MB"])
            .args(settings.iter().flat_map(|s| ["-c", s]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut pg = Postgres { dir, child, port };
        pg.wait_ready(&bin, &log_path);
        pg
    }

    fn wait_ready(&mut self, bin: &Path, log: &Path) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "postgres exited ({status}) before accepting connections:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            let listening = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if listening
                && Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postgres did not accept connections within 30 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// The URL of a database of this cluster (without TLS: loopback only).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{PG_USER}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Stops the server by its PID: a fast shutdown, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs one SQL statement with `psql` as the superuser; its output, unaligned.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .args(["-d", database, "-Atc", sql])
            .env("PGPASSWORD", PG_PASSWORD)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The temporary folder the cluster lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
