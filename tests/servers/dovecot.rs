//! A throwaway Dovecot IMAP server for tests: its own folder, a free loopback port, a master
//! user (`admin`) that logs into every mailbox as `user*admin` or with SASL PLAIN and an
//! authorization identity. Started from a temporary folder and stopped by its PID when the guard
//! is dropped, also when a test fails.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "adminpass";

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The implicit-TLS port, when started with TLS.
    pub tls_port: Option<u16>,
    pid: Option<u32>,
}

/// The `mail` system user Dovecot runs mailboxes as (Debian: uid/gid 8).
const MAIL_UID: u32 = 8;

fn binary() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "dovecot is not installed; these tests need a real IMAP server: \
         apt-get install dovecot-imapd (scripts/test.sh installs it when run as root)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl Dovecot {
    /// Starts Dovecot with these users (name, password).
    pub fn start(users: &[(&str, &str)]) -> Dovecot {
        Self::start_with(users, false, 200)
    }

    /// Starts Dovecot allowing each user at most `sessions` sessions at once from one address
    /// (`mail_max_userip_connections`): one more is refused at login.
    pub fn start_limited(users: &[(&str, &str)], sessions: u32) -> Dovecot {
        Self::start_with(users, false, sessions)
    }

    /// Starts Dovecot with TLS too: STARTTLS on `port`, implicit TLS on `tls_port`, with a
    /// certificate for 127.0.0.1 signed by a throwaway CA (`ca_file()`).
    pub fn start_tls(users: &[(&str, &str)]) -> Dovecot {
        Self::start_with(users, true, 200)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    fn start_with(users: &[(&str, &str)], tls: bool, sessions: u32) -> Dovecot {
        let bin = binary();
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path();
        // Dovecot's mail processes run as `mail`: they must reach the homes below.
        set_mode(root, 0o755);
        for sub in ["run", "state", "log", "mail"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        chown(&root.join("mail"));
        let port = free_port();
        let tls_port = tls.then(free_port);
        if tls {
            make_certificates(&root.join("tls"));
        }
        let ssl = if tls {
            format!(
                "ssl = yes\nssl_cert = <{r}/tls/server.pem\nssl_key = <{r}/tls/server.key\n",
                r = root.display()
            )
        } else {
            "ssl = no\n".to_string()
        };
        let imaps_port = tls_port.unwrap_or(0);
        let r = root.display();
        let conf = format!(
            r#"instance_name = mailplan-test-{port}
base_dir = {r}/run
state_dir = {r}/state
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {r}/log/dovecot.log
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_UID}
mail_location = maildir:~/Maildir
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {r}/master-users
  master = yes
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/users
  default_fields = uid=mail gid=mail home={r}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = {sessions}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"#
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap();
        std::fs::write(
            root.join("master-users"),
            format!("admin:{{PLAIN}}{ADMIN_PASSWORD}\n"),
        )
        .unwrap();
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n"))
            .collect();
        std::fs::write(root.join("users"), passwd).unwrap();
        std::fs::write(root.join("admin.pass"), ADMIN_PASSWORD).unwrap();
        let status = Command::new(&bin)
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .status()
            .expect("cannot run dovecot");
        assert!(status.success(), "dovecot did not start: {}", log(root));
        let mut d = Dovecot {
            dir,
            port,
            tls_port,
            pid: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if d.pid.is_none() {
                d.pid = std::fs::read_to_string(d.dir.path().join("run/master.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 4];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.read_exact(&mut buf).is_ok() && &buf == b"* OK" && d.pid.is_some() {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not come up: {}",
                log(d.dir.path())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("imap://127.0.0.1:{}", self.port)
    }

    /// A user's Maildir on disk (what Dovecot serves).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Makes everything under the mail folder Dovecot's again after a test wrote files there.
    pub fn fix_owner(&self) {
        chown_tree(&self.dir.path().join("mail"));
    }

    pub fn admin_password_file(&self) -> PathBuf {
        self.dir.path().join("admin.pass")
    }

    /// CPU seconds Dovecot has spent so far: its master process and every child it has reaped
    /// (each IMAP session runs in a process of its own that ends with its connection). Read it
    /// after the clients have disconnected; a long-lived child (auth) counts only once it ends.
    pub fn cpu_seconds(&self) -> f64 {
        // The sessions of a client that just left may take a moment to be reaped.
        std::thread::sleep(Duration::from_millis(500));
        let Some(pid) = self.pid else { return 0.0 };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime, stime, cutime, cstime are fields 14-17 of stat, 12-15 after the name and state.
        let ticks: u64 = (11..15)
            .filter_map(|i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // The kernel reports them in USER_HZ, 100 on Linux.
        ticks as f64 / 100.0
    }

    /// How many IMAP sessions are open at this moment, counted at the server: the master's
    /// `imap` child processes (one per logged-in session; each ends with its connection),
    /// leaving out those that already ended and wait to be reaped.
    pub fn imap_sessions(&self) -> usize {
        let Some(master) = self.pid else { return 0 };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(open), Some((head, rest))) = (stat.find('('), stat.rsplit_once(") ")) else {
                continue;
            };
            let comm = &head[open + 1..];
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (
                fields.next(),
                fields.next().and_then(|p| p.parse::<u32>().ok()),
            );
            if comm == "imap" && ppid == Some(master) && state != Some("Z") {
                n += 1;
            }
        }
        n
    }

    /// How many message files a folder of a user's Maildir holds (`""` for the inbox).
    pub fn count_files(&self, user: &str) -> usize {
        let mut n = 0;
        let root = self.maildir(user);
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if p.is_dir() && (name.starts_with('.') || name == "cur" || name == "new") {
                    dirs.push(p);
                } else if p.is_file()
                    && p.parent()
                        .and_then(|x| x.file_name())
                        .is_some_and(|x| x == "cur" || x == "new")
                {
                    n += 1;
                }
            }
        }
        n
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it, with openssl.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed to make test certificates: apt-get install openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mailplan test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    // Dovecot reads the key as root at start; the mail processes never need it.
}

fn log(root: &Path) -> String {
    std::fs::read_to_string(root.join("log/dovecot.log")).unwrap_or_default()
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path) {
    std::os::unix::fs::chown(p, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
}

fn chown_tree(p: &Path) {
    chown(p);
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path());
        }
    }
}
