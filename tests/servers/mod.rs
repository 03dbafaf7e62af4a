//! Throwaway directory servers for the integration tests: OpenLDAP (slapd) and Samba as an
//! Active Directory domain controller, each built in a temporary folder, listening on 127.0.0.1
//! only, and stopped by PID when the guard is dropped (also when a test fails).
//!
//! A missing server binary fails the test with the command that installs it; nothing is ever
//! skipped. `scripts/test.sh` installs the packages when it runs as root.
//! This module must not touch anything outside its temporary folders and the processes it
//! started.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const APT: &str = "apt-get install -y --no-install-recommends slapd ldap-utils samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind";

/// The password of every harness administrator and of the read-only user.
pub const ADMIN_PASSWORD: &str = "Adm1n-secret!";
pub const READER_DN: &str = "cn=reader,o=harness";
pub const READER_PASSWORD: &str = "reader-secret";

/// Fails (never skips) when a server binary is missing, saying how to install it.
pub fn require(binary: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{binary}` (Debian package `{package}`) is not installed; these tests need a real server.\n\
         Install the test servers with:\n    sudo {APT}\n(or run `bash scripts/test.sh` as root, which installs them)"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

fn wait_for_port(port: u16, log: &Path, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server exited ({status}) before listening on {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the server did not listen on {port} within 20 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// SIGTERM, a grace period, then SIGKILL; always reaped.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Test TLS material: a CA and a server certificate for 127.0.0.1/localhost signed by it.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    require("openssl", "openssl");
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "3", "-subj", "/CN=mailplan test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "3", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    Certs {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, made as an administrator makes one for
/// a server with `openssl req -x509` (which marks it a CA: basicConstraints CA:TRUE). It is its
/// own CA: `ca` and `cert` are the same file.
pub fn make_self_signed(dir: &Path) -> Certs {
    require("openssl", "openssl");
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "3"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(p("self-signed.key"))
        .arg("-out")
        .arg(p("self-signed.pem")));
    Certs {
        ca: p("self-signed.pem"),
        cert: p("self-signed.pem"),
        key: p("self-signed.key"),
    }
}

/// A throwaway slapd: one MDB database per suffix (admin `cn=admin,<suffix>`), plus `o=harness`
/// holding a read-only user, on a plain and a TLS port.
pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    pub certs: Certs,
    pub suffixes: Vec<String>,
    /// The LDIF files as loaded (see `loadable`), in the order given to `start`: planning
    /// against these offline and against the server must agree.
    pub loaded: Vec<PathBuf>,
    child: Option<Child>,
}

/// An LDIF file as slapadd takes it: entry records only (no `version:` line, no comments),
/// and every `person` given an `sn`. OpenLDAP's core schema requires `sn` on `person`, Active
/// Directory does not, so AD-shaped data lacks it on NT accounts and computers; the surname is
/// taken from `cn`, which changes no plan (matching does not read `sn` of destination objects).
pub fn loadable(text: &str) -> String {
    let mut out = String::new();
    let mut record: Vec<&str> = Vec::new();
    let flush = |record: &mut Vec<&str>, out: &mut String| {
        if record.is_empty() {
            return;
        }
        let person = record
            .iter()
            .any(|l| l.eq_ignore_ascii_case("objectClass: person"));
        let has_sn = record
            .iter()
            .any(|l| l.starts_with("sn:") || l.starts_with("sn::"));
        for l in record.iter() {
            out.push_str(l);
            out.push('\n');
        }
        if person
            && !has_sn
            && let Some(cn) = record.iter().find(|l| l.starts_with("cn:"))
        {
            out.push_str("sn");
            out.push_str(&cn[2..]);
            out.push('\n');
        }
        out.push('\n');
        record.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("version:") {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut record, &mut out);
        } else {
            record.push(line);
        }
    }
    flush(&mut record, &mut out);
    out
}

impl Slapd {
    /// Builds the configuration, loads `data` (suffix, LDIF file) offline, and starts slapd.
    pub fn start(suffixes: &[&str], data: &[(&str, &Path)]) -> Slapd {
        Self::start_with(suffixes, data, false)
    }

    /// [`Slapd::start`], with a self-signed certificate on its TLS port ([`make_self_signed`]).
    pub fn start_self_signed(suffixes: &[&str], data: &[(&str, &Path)]) -> Slapd {
        Self::start_with(suffixes, data, true)
    }

    fn start_with(suffixes: &[&str], data: &[(&str, &Path)], self_signed: bool) -> Slapd {
        let slapd = require("slapd", "slapd");
        require("slapadd", "slapd");
        require("ldapsearch", "ldap-utils");
        let dir = tempfile::Builder::new()
            .prefix("mailplan-slapd-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        let certs = if self_signed {
            make_self_signed(root)
        } else {
            make_certs(root)
        };
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/schema.ldif");
        let carbonio = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/carbonio-schema/carbonio.ldif");
        let mut config = format!(
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {r}/slapd.pid\nolcArgsFile: {r}/slapd.args\nolcLogLevel: none\nolcTLSCACertificateFile: {ca}\nolcTLSCertificateFile: {cert}\nolcTLSCertificateKeyFile: {key}\n\n\
             dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\nolcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
             dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
             include: file:///etc/ldap/schema/core.ldif\n\n\
             include: file:///etc/ldap/schema/cosine.ldif\n\n\
             include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
             include: file://{schema}\n\n\
             include: file://{carbonio}\n\n\
             dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\nolcSizeLimit: size.soft=500 size.hard=500 size.pr=unlimited size.prtotal=unlimited\n\n\
             dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {{0}}config\nolcRootDN: cn=admin,cn=config\n\n",
            r = root.display(),
            ca = certs.ca.display(),
            cert = certs.cert.display(),
            key = certs.key.display(),
            schema = schema.display(),
            carbonio = carbonio.display(),
        );
        let mut all: Vec<String> = suffixes.iter().map(|s| s.to_string()).collect();
        all.push("o=harness".into());
        for (i, suffix) in all.iter().enumerate() {
            let db = root.join(format!("db{i}"));
            std::fs::create_dir_all(&db).expect("db dir");
            config.push_str(&format!(
                "dn: olcDatabase={{{n}}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\nolcDatabase: {{{n}}}mdb\nolcSuffix: {suffix}\nolcRootDN: cn=admin,{suffix}\nolcRootPW: {ADMIN_PASSWORD}\nolcDbDirectory: {db}\nolcDbMaxSize: 4294967296\nolcDbNoSync: TRUE\nolcDbIndex: objectClass eq\nolcDbIndex: cn,uid,mail,sAMAccountName,proxyAddresses eq\nolcDbIndex: zimbraId,zimbraMailDeliveryAddress,zimbraMailAlias eq\nolcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none\nolcAccess: {{1}}to * by * read\n\n",
                n = i + 1,
                db = db.display(),
            ));
        }
        let conf_dir = root.join("slapd.d");
        std::fs::create_dir_all(&conf_dir).expect("slapd.d");
        std::fs::write(root.join("config.ldif"), config).expect("config.ldif");
        run(Command::new("slapadd")
            .arg("-n0")
            .arg("-F")
            .arg(&conf_dir)
            .arg("-l")
            .arg(root.join("config.ldif")));
        let harness = root.join("harness.ldif");
        std::fs::write(
            &harness,
            format!(
                "dn: o=harness\nobjectClass: organization\no: harness\n\ndn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: {READER_PASSWORD}\n"
            ),
        )
        .expect("harness.ldif");
        let mut loaded = Vec::new();
        let mut loads: Vec<(&str, &Path)> = data.to_vec();
        loads.push(("o=harness", &harness));
        for (i, (suffix, file)) in loads.into_iter().enumerate() {
            // slapadd reads plain entry records only: no `version:` line, no comments.
            let text = std::fs::read_to_string(file).expect("read LDIF to load");
            let file = root.join(format!("load{i}.ldif"));
            std::fs::write(&file, loadable(&text)).expect("write LDIF to load");
            loaded.push(file.clone());
            run(Command::new("slapadd")
                .arg("-q")
                .arg("-F")
                .arg(&conf_dir)
                .arg("-b")
                .arg(suffix)
                .arg("-l")
                .arg(&file));
        }
        let _ = slapd;
        let mut s = Slapd {
            dir,
            port: free_port(),
            tls_port: free_port(),
            certs,
            suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
            loaded,
            child: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let root = self.dir.path();
        let log = root.join("slapd.log");
        let out = std::fs::File::create(&log).expect("slapd.log");
        // `-d 0` keeps slapd in the foreground, so the PID is the one spawned here.
        let mut child = Command::new(require("slapd", "slapd"))
            .arg("-F")
            .arg(root.join("slapd.d"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/ {}",
                self.port,
                self.tls_port,
                self.ldapi_url()
            ))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start slapd");
        wait_for_port(self.port, &log, &mut child);
        wait_for_port(self.tls_port, &log, &mut child);
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// The local socket, URL-encoded as ldapi:// wants it.
    pub fn ldapi_url(&self) -> String {
        let path = self.dir.path().join("ldapi").display().to_string();
        format!("ldapi://{}", path.replace('/', "%2F"))
    }

    pub fn admin(&self, suffix: &str) -> String {
        format!("cn=admin,{suffix}")
    }

    /// Stops slapd cleanly.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }

    /// Kills slapd at once (a crash, for the convergence test).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Runs `ldapmodify` as the suffix's administrator.
    pub fn ldapmodify(&self, suffix: &str, ldif: &str) {
        ldapmodify(&self.url(), &self.admin(suffix), ADMIN_PASSWORD, ldif);
    }

    /// `ldapsearch` as the suffix's administrator, LDIF without wrapping.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        ldapsearch(
            &self.url(),
            &self.admin(&self.suffix_of(base)),
            ADMIN_PASSWORD,
            base,
            filter,
            attrs,
        )
    }

    fn suffix_of(&self, base: &str) -> String {
        let b = base.to_ascii_lowercase();
        self.suffixes
            .iter()
            .find(|s| b.ends_with(&s.to_ascii_lowercase()))
            .cloned()
            .unwrap_or_else(|| self.suffixes[0].clone())
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn ldapmodify(url: &str, who: &str, password: &str, ldif: &str) {
    // Through a file, not a pipe: ldapmodify answers every record on stdout, and a large input
    // written to its stdin while nobody reads its stdout would block both sides.
    let mut file = tempfile::NamedTempFile::new().expect("temp LDIF");
    file.write_all(ldif.as_bytes()).expect("write temp LDIF");
    let out = Command::new(require("ldapmodify", "ldap-utils"))
        .args(["-x", "-H", url, "-D", who, "-w", password, "-f"])
        .arg(file.path())
        .output()
        .expect("run ldapmodify");
    assert!(
        out.status.success(),
        "ldapmodify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ldapsearch(
    url: &str,
    who: &str,
    password: &str,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> String {
    let mut cmd = Command::new(require("ldapsearch", "ldap-utils"));
    cmd.args([
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-x",
        "-H",
        url,
        "-D",
        who,
        "-w",
        password,
    ])
    .args(["-b", base, filter])
    .args(attrs);
    let out = cmd.output().expect("run ldapsearch");
    // 32 (no such object) is an answer too: the entry is gone.
    assert!(
        out.status.success() || out.status.code() == Some(32),
        "ldapsearch failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A password as a plan gives it from a file, in `dir`. Tests read secrets from files rather
/// than setting environment variables: other threads of the test process start programs, and
/// changing the environment under them is not safe.
/// Starts `mailplan apply PLAN --auto-approve --parallelism 4` without waiting for it, the
/// directory password in the environment variable `password_env`: for a test that kills a
/// server under a running apply. Its standard error is kept for the test to read.
pub fn apply_in_background(plan: &Path, password_env: &str, password: &str) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("mailplan"))
        .env(password_env, password)
        .arg("apply")
        .arg(plan)
        .args(["--auto-approve", "--parallelism", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailplan starts")
}

pub fn secret_file(dir: &Path, name: &str, value: &str) -> mailplan::spec::Secret {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write secret file");
    mailplan::spec::Secret::File(path)
}

/// The DNs in an `ldapsearch -LLL` answer, lower-cased.
pub fn dns(ldif: &str) -> Vec<String> {
    use base64::Engine as _;
    ldif.lines()
        .filter_map(|l| {
            if let Some(d) = l.strip_prefix("dn: ") {
                Some(d.to_string())
            } else {
                let b = l.strip_prefix("dn:: ")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()?;
                String::from_utf8(bytes).ok()
            }
        })
        .map(|d| d.to_lowercase())
        .collect()
}

/// A Samba Active Directory domain controller for realm TEST.LOCAL, with an Exchange-like schema
/// extension. Samba's ports are fixed (389, 636, 3268), so only one runs at a time: one test
/// binary (`tests/ldap_samba.rs`) owns it and runs its steps in one test.
pub struct Samba {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

pub const SAMBA_BASE: &str = "DC=test,DC=local";
pub const SAMBA_ADMIN: &str = "Administrator@test.local";
pub const SAMBA_URL: &str = "ldap://127.0.0.1:389";

impl Samba {
    pub fn start() -> Samba {
        let tool = require("samba-tool", "samba");
        require("samba", "samba-ad-dc");
        require("ldapmodify", "ldap-utils");
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/samba/ldb/samba_dsdb.so").exists()
                || Path::new("/usr/share/samba/setup").exists()
                || Command::new("dpkg")
                    .args(["-s", "samba-ad-provision"])
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "Samba's provisioning files are missing: sudo {APT}"
        );
        assert!(
            TcpStream::connect(("127.0.0.1", 389)).is_err(),
            "something already listens on 127.0.0.1:389; the Samba tests need that port (stop the other directory server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mailplan-samba-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_path_buf();
        for sub in ["etc", "log", "run", "cache"] {
            std::fs::create_dir_all(d.join(sub)).expect("samba dirs");
        }
        run(Command::new(&tool)
            .current_dir("/")
            .args(["domain", "provision"])
            .arg(format!("--targetdir={}", d.display()))
            .args([
                "--realm=TEST.LOCAL",
                "--domain=TEST",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--host-name=dc1",
            ])
            .arg(format!("--adminpass={ADMIN_PASSWORD}")));
        let conf = d.join("etc/smb.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\n\tnetbios name = DC1\n\tworkgroup = TEST\n\trealm = TEST.LOCAL\n\tserver role = active directory domain controller\n\
                 \tprivate dir = {d}/private\n\tlock directory = {d}\n\tstate directory = {d}/state\n\tcache directory = {d}/cache\n\
                 \tbinddns dir = {d}/bind-dns\n\tpid directory = {d}/run\n\tncalrpc dir = {d}/run/ncalrpc\n\twinbindd socket directory = {d}/run/winbindd\n\
                 \tlog file = {d}/log/log.%m\n\tinterfaces = lo\n\tbind interfaces only = yes\n\tserver services = ldap cldap kdc\n\
                 \tldap server require strong auth = no\n\tdsdb:schema update allowed = true\n\
                 [sysvol]\n\tpath = {d}/state/sysvol\n\tread only = no\n[netlogon]\n\tpath = {d}/state/sysvol/test.local/scripts\n\tread only = no\n",
                d = d.display()
            ),
        )
        .expect("smb.conf");
        let mut s = Samba { dir, child: None };
        s.launch();
        let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ldap/samba-exchange-schema.ldif");
        s.ldapmodify(&std::fs::read_to_string(schema).expect("schema ldif"));
        s
    }

    /// Starts the provisioned domain controller and waits until it answers LDAP. It runs in a
    /// process group of its own, so that `kill` can crash it with all its worker processes.
    fn launch(&mut self) {
        use std::os::unix::process::CommandExt;
        let samba = require("samba", "samba-ad-dc");
        let d = self.dir.path();
        let log = d.join("log/samba.out");
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("samba log");
        let mut child = Command::new(samba)
            .arg("-s")
            .arg(d.join("etc/smb.conf"))
            .args(["-F", "--debug-stdout", "-d", "1"])
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start samba");
        wait_for_port(389, &log, &mut child);
        self.child = Some(child);
        // The LDAP server answers a little after the port opens.
        let start = Instant::now();
        loop {
            let ok = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-H",
                    SAMBA_URL,
                    "-D",
                    SAMBA_ADMIN,
                    "-w",
                    ADMIN_PASSWORD,
                ])
                .args(["-b", "", "-s", "base", "dn"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                self.stop();
                panic!("Samba did not answer LDAP within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Crashes the domain controller: SIGKILL to its whole process group (the root process
    /// and the workers it forked, all started here), then waits until port 389 is free.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", 389)).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "port 389 still answers 20 s after Samba was killed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same domain controller again, with everything it had committed.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn ldapmodify(&self, ldif: &str) {
        ldapmodify(SAMBA_URL, SAMBA_ADMIN, ADMIN_PASSWORD, ldif);
    }

    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        ldapsearch(SAMBA_URL, SAMBA_ADMIN, ADMIN_PASSWORD, base, filter, attrs)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        self.stop();
        // Samba's worker processes end a moment after its root process and can still create
        // files (msg.sock) while the folder is being removed: remove it until it stays gone.
        for _ in 0..30 {
            let _ = std::fs::remove_dir_all(self.dir.path());
            std::thread::sleep(Duration::from_millis(100));
            if !self.dir.path().exists() {
                break;
            }
        }
    }
}
