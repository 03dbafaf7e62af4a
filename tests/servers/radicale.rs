//! A throwaway Radicale (CalDAV/CardDAV) for tests: started from a temporary folder on a free
//! loopback port, with plain-text htpasswd users (alice, bob, and admin who may write into every
//! user's collections, as a migration tool's credential does), stopped by PID when dropped, also
//! when a test fails.
//!
//! When the `radicale` binary is missing the harness fails with how to install it: a test that
//! needs a server never passes without one.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USERS: [(&str, &str); 3] = [
    ("alice", "alicepass"),
    ("bob", "bobpass"),
    ("admin", "adminpass"),
];

pub struct Radicale {
    /// `http://127.0.0.1:PORT/` (`https://` when started with TLS)
    pub base: String,
    /// With TLS: the PEM of the test CA that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    child: Child,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("radicale");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the Radicale tests need the `radicale` binary, which is not installed: \
         run `apt-get install radicale` (scripts/test.sh does it when run as root)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Whether the server answers HTTP on the port.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /.web/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 8 && buf.starts_with(b"HTTP/1."))
}

/// Which certificate a Radicale serves https with, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    None,
    /// Signed by a test CA (`make_certificates`).
    CaSigned,
    /// Self-signed (`make_self_signed`).
    SelfSigned,
}

/// A self-signed certificate for 127.0.0.1 as `openssl req -x509` makes it (basicConstraints
/// CA:TRUE). Returns (ca, cert, key) paths, the first two the same file.
fn make_self_signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", "self.key", "-out", "self.pem"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the TLS tests need `openssl` ({e}): run `apt-get install openssl`")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        dir.join("self.pem"),
        dir.join("self.pem"),
        dir.join("self.key"),
    )
}

/// Makes a test CA and a server certificate for 127.0.0.1 signed by it (rustls refuses a
/// self-signed CA certificate used as the server's own). Returns (ca, cert, key) paths.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("the TLS tests need `openssl` ({e}): run `apt-get install openssl`")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

impl Radicale {
    pub fn start() -> Radicale {
        Self::start_with(Tls::None, None)
    }

    /// Radicale over https with a self-signed certificate, as `openssl req -x509` makes one
    /// (marked a CA); `ca_file` is that certificate itself.
    pub fn start_self_signed() -> Radicale {
        Self::start_with(Tls::SelfSigned, None)
    }

    /// Radicale over https, with a certificate from a test CA (see `ca_file`).
    pub fn start_tls() -> Radicale {
        Self::start_with(Tls::CaSigned, None)
    }

    /// Radicale with a storage hook: a shell command Radicale runs in its collections folder
    /// after every write, still holding its storage lock (so the next request sees what it did).
    /// Tests use it to change the storage at an exact moment, as another user or an
    /// administrator could. The command must not contain `%`.
    pub fn start_with_hook(hook: &str) -> Radicale {
        assert!(!hook.contains('%'), "Radicale formats the hook with %");
        Self::start_with(Tls::None, Some(hook))
    }

    fn start_with(certificate: Tls, hook: Option<&str>) -> Radicale {
        let tls = certificate != Tls::None;
        let bin = binary();
        let mut last_log = String::new();
        // A port picked as free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temporary folder");
            let root = dir.path();
            let port = free_port();
            std::fs::create_dir_all(root.join("collections")).unwrap();
            let (ca_file, ssl) = if tls {
                let (ca, cert, key) = if certificate == Tls::SelfSigned {
                    make_self_signed(root)
                } else {
                    make_certificates(root)
                };
                (
                    Some(ca),
                    format!(
                        "ssl = True\ncertificate = {}\nkey = {}\n",
                        cert.display(),
                        key.display()
                    ),
                )
            } else {
                (None, String::new())
            };
            let users: String = USERS.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
            std::fs::write(root.join("users"), users).unwrap();
            std::fs::write(
                root.join("rights"),
                "# admin may read and write every user's collections (a migration credential)\n\
                 [admin]\nuser: admin\ncollection: .*\npermissions: RrWw\n\n\
                 [root]\nuser: .+\ncollection:\npermissions: R\n\n\
                 [principal]\nuser: .+\ncollection: {user}\npermissions: RW\n\n\
                 [collections]\nuser: .+\ncollection: {user}/[^/]+\npermissions: rw\n",
            )
            .unwrap();
            std::fs::write(
                root.join("config"),
                format!(
                    "[server]\nhosts = 127.0.0.1:{port}\n{ssl}\n\
                     [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\n\
                     htpasswd_encryption = plain\ndelay = 0\n\n\
                     [rights]\ntype = from_file\nfile = {rights}\n\n\
                     [storage]\nfilesystem_folder = {collections}\n{hook}\n\
                     [logging]\nlevel = info\nmask_passwords = True\n",
                    users = root.join("users").display(),
                    rights = root.join("rights").display(),
                    collections = root.join("collections").display(),
                    hook = hook.map(|h| format!("hook = {h}\n")).unwrap_or_default(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(root.join("radicale.log")).unwrap();
            let child = Command::new(&bin)
                .arg("--config")
                .arg(root.join("config"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut server = Radicale {
                base: format!("{}://127.0.0.1:{port}/", if tls { "https" } else { "http" }),
                ca_file,
                child,
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                // Over TLS a plain HTTP probe is refused: an accepted connection will do.
                let up = if tls {
                    TcpStream::connect(("127.0.0.1", port)).is_ok()
                } else {
                    answers(port)
                };
                if up {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_log = server.log();
            drop(server);
        }
        panic!("radicale did not come up; its log:\n{last_log}");
    }

    /// The URL of a collection of a user (`alice`, `calendar` → `http://…/alice/calendar/`).
    pub fn collection(&self, user: &str, name: &str) -> String {
        format!("{}{user}/{name}/", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        // Stops exactly the process this harness started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
