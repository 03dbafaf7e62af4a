//! Mail through a real Dovecot: one user's mailbox into another's through the master login,
//! with folders (non-ASCII ones in modified UTF-7), flags, internal dates and a 10 MiB message;
//! reruns copy nothing; new source messages are planned and copied exactly; a message deleted
//! at the destination by its owner is not copied back; an apply killed with SIGKILL halfway and
//! run again leaves every message exactly once; a message the destination refuses is reported
//! and skipped while the rest is copied; a password with 8-bit characters, quotes and
//! backslashes (sent as a literal) and folder names with quotes and backslashes work. The IMAP
//! fuzz target's corpus is recorded here from Dovecot's answers (an ignored test, run by hand).

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use dovecot::Dovecot;
use mailplan::items::identity::base;
use mailplan::items::mail::maildir::Maildir;
use mailplan::items::mail::{ANSWERED, DRAFT, FLAGGED, FolderListing, MessageMeta, SEEN};
use mailplan::spec::{ImapAuth, ImapSecurity, ImapStore, Secret, Template};

const SOURCE: &str = "jsmith";
const TARGET: &str = "new-jsmith";

/// A migration folder: the scenario-6 directories (John Smith already has a mailbox) and a plan
/// that copies his mail from `jsmith` to `new-jsmith` on one Dovecot.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(d: &Dovecot, dest_auth: &str) -> Case {
        Self::for_fixture(d, dest_auth, "scenario6_mailbox", "")
    }

    fn for_fixture(d: &Dovecot, dest_auth: &str, fixture: &str, extra: &str) -> Case {
        Self::build(d, dest_auth, fixture, extra, "")
    }

    /// The scenario-6 case with these keys added under `items.mail` (folder mapping, say).
    fn with_mail(d: &Dovecot, mail_extra: &str) -> Case {
        Self::build(d, "master", "scenario6_mailbox", "", mail_extra)
    }

    fn build(d: &Dovecot, dest_auth: &str, fixture: &str, extra: &str, mail_extra: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = common::root().join("tests/fixtures").join(fixture);
        for f in ["source.ldif", "destination.ldif"] {
            std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
        }
        let pass = d.admin_password_file();
        let plan = format!(
            r#"version: 1
source:
  profile: domino
  directory:
    ldif: source.ldif
destination:
  flavor: active-directory
  directory:
    ldif: destination.ldif
  container: "OU=Migrated,DC=acme,DC=test"
{extra}items:
  mail:
    source:
      imap:
        url: "{url}"
        tls: none
        user: "{{uid}}"
        login: admin
        password: {{ file: "{pass}" }}
        auth: master
    destination:
      imap:
        url: "{url}"
        tls: none
        user: "new-{{uid}}"
        login: admin
        password: {{ file: "{pass}" }}
        auth: {dest_auth}
{mail_extra}"#,
            url = d.url(),
            pass = pass.display()
        );
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Case { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("mailplan").unwrap();
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }

    fn plan(&self) -> String {
        let out = self.cmd().args(["plan", "plan.yaml"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "plan failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// An apply that leaves something out (a bad item): it names it and exits 1.
    fn apply_leaving_out(&self) -> String {
        let out = self
            .cmd()
            .args(["apply", "plan.yaml", "--auto-approve"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("Apply finished with errors."), "{err}");
        err
    }

    fn apply(&self) -> String {
        let out = self
            .cmd()
            .args(["apply", "plan.yaml", "--auto-approve"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "apply failed: {}{err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err
    }
}

fn message(id: Option<&str>, subject: &str, body_len: usize) -> Vec<u8> {
    let mut m = String::new();
    if let Some(id) = id {
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    m.push_str(&format!(
        "From: Sender <sender@example.test>\r\nTo: John Smith <john.smith@acme.com>\r\nSubject: {subject}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while out.len() < body_len {
        out.extend_from_slice(line);
    }
    out
}

fn meta(flags: &[&str], date: i64) -> MessageMeta {
    MessageMeta {
        key: String::new(),
        identity: String::new(),
        size: 0,
        flags: flags.iter().map(|f| f.to_string()).collect(),
        internal_date: date,
    }
}

/// Puts a message into a user's Maildir on the server's disk.
fn seed(d: &Dovecot, user: &str, folder: &str, flags: &[&str], date: i64, data: &[u8]) {
    let md = Maildir::new(d.maildir(user));
    md.ensure_folder(folder).unwrap();
    md.append(folder, &meta(flags, date), data).unwrap();
}

fn store(d: &Dovecot, user: &str) -> (ImapStore, String) {
    (
        ImapStore {
            host: "127.0.0.1".into(),
            port: d.port,
            security: ImapSecurity::None,
            user: Template::parse("x").unwrap(),
            login: Some("admin".into()),
            password: Secret::File(d.admin_password_file()),
            auth: ImapAuth::Master,
            ca_file: None,
            insecure: false,
            timeout: Duration::from_secs(30),
        },
        user.to_string(),
    )
}

/// A user's mailbox as IMAP shows it: folder → messages (in UID order).
fn listing(d: &Dovecot, user: &str) -> BTreeMap<String, Vec<MessageMeta>> {
    let (s, u) = store(d, user);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let folders: Vec<FolderListing> = rt.block_on(async {
        let mut session = mailplan::items::mail::imap::Session::connect(&s, &u)
            .await
            .unwrap();
        let l = session.list().await.unwrap();
        session.logout().await;
        l
    });
    folders.into_iter().map(|f| (f.name, f.messages)).collect()
}

/// The body of the inbox message with this identity, as IMAP gives it.
fn body(d: &Dovecot, user: &str, identity: &str) -> Vec<u8> {
    let (s, u) = store(d, user);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut session = mailplan::items::mail::imap::Session::connect(&s, &u)
            .await
            .unwrap();
        let folders = session.list().await.unwrap();
        let m = folders
            .iter()
            .find(|f| f.name == "INBOX")
            .and_then(|f| f.messages.iter().find(|m| base(&m.identity) == identity))
            .unwrap()
            .clone();
        let data = session.fetch("INBOX", &m).await.unwrap();
        session.logout().await;
        data
    })
}

fn by_identity(
    l: &BTreeMap<String, Vec<MessageMeta>>,
) -> BTreeMap<(String, String), (Vec<String>, i64, u64)> {
    let mut out = BTreeMap::new();
    for (folder, msgs) in l {
        for m in msgs {
            let prev = out.insert(
                (folder.clone(), base(&m.identity).to_string()),
                (m.flags.clone(), m.internal_date, m.size),
            );
            assert!(prev.is_none(), "{} twice in {folder}", m.identity);
        }
    }
    out
}

const DAY: i64 = 86_400;
const T0: i64 = 1_700_000_000;

#[test]
fn mail_moves_with_folders_flags_dates_and_reruns_copy_only_what_is_new() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("m1@example.test"), "one", 2_000),
    );
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN, ANSWERED],
        T0 + DAY,
        &message(Some("m2@example.test"), "two", 30_000),
    );
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[FLAGGED],
        T0 + 2 * DAY,
        &message(None, "no message id", 500),
    );
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[],
        T0 + 3 * DAY,
        &message(Some("big@example.test"), "ten MiB", 10 << 20),
    );
    seed(
        &d,
        SOURCE,
        "Sent",
        &[SEEN],
        T0 + 4 * DAY,
        &message(Some("s1@example.test"), "sent", 1_000),
    );
    seed(
        &d,
        SOURCE,
        "Entwürfe/Übersicht",
        &[DRAFT],
        T0 + 5 * DAY,
        &message(Some("d1@example.test"), "draft", 1_000),
    );
    seed(
        &d,
        SOURCE,
        "Entwürfe/Übersicht",
        &[SEEN, "$Forwarded"],
        T0 + 6 * DAY,
        &message(Some("d2@example.test"), "draft 2", 1_000),
    );
    d.fix_owner();

    let case = Case::new(&d, "plain");
    let plan = case.plan();
    assert!(
        plan.contains("<- import mail: 7 new messages in 3 folders (10.0 MiB) of 7"),
        "{plan}"
    );
    assert!(
        plan.contains("1 imports (7 messages, 0 events, 0 contacts)"),
        "{plan}"
    );
    let err = case.apply();
    assert!(err.contains("copied 7 messages"), "{err}");

    // Everything arrived once, in the right folder, with its flags and internal date.
    let source = by_identity(&listing(&d, SOURCE));
    let target = by_identity(&listing(&d, TARGET));
    assert_eq!(source, target);
    assert!(target.contains_key(&(
        "Entwürfe/Übersicht".to_string(),
        "mid:d2@example.test".to_string()
    )));
    let big = &target[&("INBOX".to_string(), "mid:big@example.test".to_string())];
    assert!(big.2 >= 10 << 20, "{big:?}");
    // The 10 MiB message (streamed from server to server) arrived byte for byte.
    assert_eq!(
        body(&d, SOURCE, "mid:big@example.test"),
        body(&d, TARGET, "mid:big@example.test")
    );
    // Dovecot names the folder in modified UTF-7 on disk.
    assert!(
        d.maildir(TARGET)
            .join(".Entw&APw-rfe.&ANw-bersicht")
            .is_dir()
    );

    // A rerun copies nothing.
    let again = case.plan();
    assert!(again.contains("No changes."), "{again}");

    // Three new messages at the source: planned and copied exactly.
    for i in 0..3 {
        seed(
            &d,
            SOURCE,
            "Sent",
            &[SEEN],
            T0 + 10 * DAY,
            &message(Some(&format!("new{i}@example.test")), "new", 3_000),
        );
    }
    d.fix_owner();
    let plan = case.plan();
    assert!(
        plan.contains("<- import mail: 3 new messages in 1 folder"),
        "{plan}"
    );
    let err = case.apply();
    assert!(err.contains("copied 3 messages"), "{err}");
    assert_eq!(
        by_identity(&listing(&d, SOURCE)),
        by_identity(&listing(&d, TARGET))
    );

    // The owner deletes a copied message at the destination: it is not copied back.
    let cur = d.maildir(TARGET).join(".Sent/cur");
    let victim = std::fs::read_dir(&cur)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(victim).unwrap();
    let plan = case.plan();
    assert!(plan.contains("No changes."), "{plan}");
}

#[test]
fn a_lost_ledger_makes_no_duplicates() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    for i in 0..20 {
        seed(
            &d,
            SOURCE,
            "INBOX",
            &[SEEN],
            T0 + i,
            &message(Some(&format!("l{i}@example.test")), "l", 1_000),
        );
    }
    d.fix_owner();
    let case = Case::new(&d, "master");
    case.apply();
    std::fs::remove_dir_all(case.dir.path().join(".mailplan")).unwrap();
    // Without its ledger the plan still sees every message at the destination.
    let plan = case.plan();
    assert!(plan.contains("No changes."), "{plan}");
}

#[test]
fn an_apply_killed_halfway_and_rerun_copies_every_message_exactly_once() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let n = 3_000;
    for i in 0..n {
        let size = if i % 500 == 0 { 1 << 20 } else { 4_000 };
        seed(
            &d,
            SOURCE,
            if i % 3 == 0 { "Archive" } else { "INBOX" },
            &[SEEN],
            T0 + i as i64,
            &message(Some(&format!("k{i}@example.test")), "k", size),
        );
    }
    d.fix_owner();
    let case = Case::new(&d, "master");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mailplan"))
        .args(["apply", "plan.yaml", "--auto-approve"])
        .current_dir(case.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let copied = d.count_files(TARGET);
        if copied >= 300 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("apply ended ({status}) before it could be killed; {copied} copied");
        }
        assert!(Instant::now() < deadline, "the import did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The server may still be storing APPENDs the killed client had already sent: a rerun
    // comes after that (an operator restarts a crashed run, not during its last milliseconds).
    let mut partial = d.count_files(TARGET);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = d.count_files(TARGET);
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(
        partial < n,
        "the kill came too late to test anything ({partial} copied)"
    );

    let err = case.apply();
    assert!(err.contains("Apply complete!"), "{err}");
    let target = listing(&d, TARGET);
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for msgs in target.values() {
        for m in msgs {
            *count.entry(m.identity.clone()).or_default() += 1;
        }
    }
    assert_eq!(count.len(), n, "every message arrived");
    assert!(
        count.values().all(|&c| c == 1),
        "a message was copied twice"
    );
}

#[test]
fn a_message_the_destination_refuses_is_reported_and_the_rest_goes_on() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("ok1@example.test"), "ok", 1_000),
    );
    // A zero-byte message: IMAP servers refuse to store it.
    seed(&d, SOURCE, "INBOX", &[SEEN], T0 + 1, b"");
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0 + 2,
        &message(Some("ok2@example.test"), "ok", 1_000),
    );
    d.fix_owner();
    let case = Case::new(&d, "master");
    let out = case
        .cmd()
        .args(["apply", "plan.yaml", "--auto-approve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // Not everything arrived: the run says which message, counts it, and fails.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("copied 2 messages"), "{err}");
    assert!(err.contains("1 bad item skipped"), "{err}");
    assert!(err.contains("the destination refused it"), "{err}");
    assert!(err.contains("Apply finished with errors."), "{err}");
    assert!(
        err.contains("0 failed, 0 skipped, 1 bad item skipped"),
        "{err}"
    );
    let target = by_identity(&listing(&d, TARGET));
    assert_eq!(target.len(), 2);
    // It is not in the ledger: the next run tries it again.
    let plan = case.plan();
    assert!(plan.contains("<- import mail: 1 new message"), "{plan}");
}

/// A plan whose source is `imap` (its `url` and extra keys given) and destination a Maildir.
fn tls_plan(dir: &std::path::Path, d: &Dovecot, url: &str, extra: &str) -> (bool, String) {
    let fixtures = common::root().join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("plan.yaml"),
        format!(
            "version: 1\nsource:\n  profile: domino\n  directory: {{ ldif: source.ldif }}\ndestination:\n  flavor: active-directory\n  directory: {{ ldif: destination.ldif }}\n  container: \"OU=Migrated,DC=acme,DC=test\"\nitems:\n  mail:\n    source:\n      imap: {{ url: \"{url}\", user: \"{{uid}}\", login: admin, password: {{ file: \"{p}\" }}{extra} }}\n    destination: {{ maildir: out }}\n",
            p = d.admin_password_file().display()
        ),
    )
    .unwrap();
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .args(["plan", "plan.yaml"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn imaps_and_starttls_verify_the_server_certificate() {
    let d = Dovecot::start_tls(&[(SOURCE, "x")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("tls@example.test"), "tls", 1_000),
    );
    d.fix_owner();
    let tls_port = d.tls_port.unwrap();
    let ca = format!(", ca_file: \"{}\"", d.ca_file().display());
    let work = tempfile::tempdir().unwrap();
    // Trusted through the plan's CA file: implicit TLS and STARTTLS both work.
    for url in [
        format!("imaps://127.0.0.1:{tls_port}"),
        format!("imap://127.0.0.1:{}", d.port),
    ] {
        let (ok, out) = tls_plan(work.path(), &d, &url, &ca);
        assert!(ok, "{out}");
        assert!(
            out.contains("<- import mail: 1 new message"),
            "{url}: {out}"
        );
    }
    // Not trusted by default: the certificate is refused and nothing is planned.
    let (_, out) = tls_plan(
        work.path(),
        &d,
        &format!("imaps://127.0.0.1:{tls_port}"),
        "",
    );
    assert!(!out.contains("<- import mail"), "{out}");
    assert!(out.contains("TLS handshake failed"), "{out}");
    assert!(out.contains("certificate"), "{out}");
    let (_, out) = tls_plan(work.path(), &d, &format!("imap://127.0.0.1:{}", d.port), "");
    assert!(out.contains("TLS handshake failed"), "{out}");
    // Only when the plan says so is the check skipped.
    let (ok, out) = tls_plan(
        work.path(),
        &d,
        &format!("imaps://127.0.0.1:{tls_port}"),
        ", insecure: true",
    );
    assert!(ok && out.contains("<- import mail: 1 new message"), "{out}");
}

#[test]
fn a_mailbox_this_plan_creates_is_counted_before_it_exists_and_filled_after() {
    // Only the source mailbox exists when planning: the new one appears when the directory
    // apply creates the person (here: added to Dovecot's users file, as provisioning would).
    let d = Dovecot::start(&[(SOURCE, "x")]);
    for i in 0..5 {
        seed(
            &d,
            SOURCE,
            "INBOX",
            &[SEEN],
            T0 + i,
            &message(Some(&format!("n{i}@example.test")), "n", 1_000),
        );
    }
    d.fix_owner();
    let case = Case::for_fixture(
        &d,
        "master",
        "scenario1_new",
        "  domains: [acme.com]\n  exchange_org: Acme\n",
    );
    let plan = case.plan();
    assert!(plan.contains("+ create_mailbox"), "{plan}");
    assert!(
        plan.contains("<- import mail: 5 new messages in 1 folder"),
        "{plan}"
    );
    assert!(
        plan.contains("cannot be opened before this plan makes it"),
        "{plan}"
    );
    let users = d.dir.path().join("users");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!("{TARGET}:{{PLAIN}}y::::::\n"));
    std::fs::write(&users, text).unwrap();
    let err = case.apply();
    assert!(err.contains("copied 5 messages"), "{err}");
    assert_eq!(listing(&d, TARGET)["INBOX"].len(), 5);
}

#[test]
fn an_existing_mailbox_that_cannot_be_opened_is_an_error_not_a_guess() {
    let d = Dovecot::start(&[(SOURCE, "x")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("e@example.test"), "e", 1_000),
    );
    d.fix_owner();
    let case = Case::new(&d, "master");
    // The person is left out: the plan says why, and exits 1.
    let out = case.cmd().args(["plan", "plan.yaml"]).output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{plan}");
    assert!(!plan.contains("<- import mail"), "{plan}");
    assert!(
        plan.contains("cannot open the destination mailbox, nothing planned"),
        "{plan}"
    );
    assert!(plan.contains("Not migrated: 1 person (1 error)."), "{plan}");
}

/// The plan of a case with its destination replaced by a Maildir (`out/{uid}`).
fn to_maildir(case: &Case) {
    to_maildir_at(case, "out/{uid}");
}

/// The plan of a case with its destination replaced by the Maildir at `path`.
fn to_maildir_at(case: &Case, path: &str) {
    let file = case.dir.path().join("plan.yaml");
    let plan = std::fs::read_to_string(&file).unwrap();
    let start = plan.find("    destination:\n").unwrap();
    let end = plan[start..]
        .find("    folders:")
        .map_or(plan.len(), |e| start + e);
    let plan = format!(
        "{}    destination: {{ maildir: \"{path}\" }}\n{}",
        &plan[..start],
        &plan[end..]
    );
    std::fs::write(file, plan).unwrap();
}

#[test]
fn hostile_folder_names_are_located_problems_into_imap_and_maildir() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("in@example.test"), "inbox", 1_000),
    );
    // Notes' separator alone: `\` maps to `/` (two empty levels; `..` in a Maildir++ store).
    for i in 0..2 {
        seed(
            &d,
            SOURCE,
            "\\",
            &[SEEN],
            T0 + 1 + i,
            &message(Some(&format!("sep{i}@example.test")), "separator", 1_000),
        );
    }
    seed(
        &d,
        SOURCE,
        "Projects\\2024",
        &[SEEN],
        T0 + 5,
        &message(Some("p@example.test"), "project", 1_000),
    );
    d.fix_owner();
    let separator = "    folders: { separator: \"\\\\\" }\n";

    // Into IMAP: the plan names the folder and counts it; the rest is copied.
    let case = Case::with_mail(&d, separator);
    let plan = case.plan();
    assert!(
        plan.contains(
            "mail: bad item skipped: folder `\\`: its destination name `/` cannot be stored safely"
        ),
        "{plan}"
    );
    assert!(plan.contains("its 2 messages are not copied"), "{plan}");
    assert!(
        plan.contains("<- import mail: 2 new messages in 2 folders"),
        "{plan}"
    );
    assert!(plan.contains("; 1 bad item skipped)."), "{plan}");
    let err = case.apply_leaving_out();
    assert!(err.contains("copied 2 messages"), "{err}");
    let target = listing(&d, TARGET);
    let folders: Vec<&str> = target.keys().map(String::as_str).collect();
    assert_eq!(folders, ["INBOX", "Projects/2024"]);

    // Into a Maildir: nothing is written beside the person's mailbox.
    let case = Case::with_mail(&d, separator);
    to_maildir(&case);
    let plan = case.plan();
    assert!(
        plan.contains("folder `\\`: its destination name `/`"),
        "{plan}"
    );
    case.apply_leaving_out();
    let out = case.dir.path().join("out");
    let beside: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, [SOURCE]);
    let stored: BTreeMap<String, usize> = Maildir::new(out.join(SOURCE))
        .list()
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.messages.len()))
        .collect();
    assert_eq!(
        stored,
        [("INBOX".to_string(), 1), ("Projects/2024".to_string(), 1)].into()
    );
}

/// A post as it arrives by one path: the `Received:` trail first, then one set of headers, and
/// a body (a list adds its footer).
fn post(received: &[&str], body: &str) -> Vec<u8> {
    let mut m = String::new();
    for r in received {
        m.push_str(&format!("Received: {r}\r\n"));
    }
    m.push_str(
        "Message-ID: <release-1.0@lists.example.org>\r\nFrom: Ann <ann@example.org>\r\nTo: dev@lists.example.org\r\nSubject: Release 1.0\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n",
    );
    m.push_str(body);
    m.into_bytes()
}

#[test]
fn two_messages_sharing_a_message_id_both_arrive_and_a_true_duplicate_once() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let direct = post(
        &["from mx.example.org by mail.acme.com; Mon, 01 Jan 2024 10:00:02 +0000"],
        "Hello John, the release is out.\r\n",
    );
    let list = post(
        &[
            "from lists.example.org by mail.acme.com; Mon, 01 Jan 2024 10:00:09 +0000",
            "from mx.example.org by lists.example.org; Mon, 01 Jan 2024 10:00:03 +0000",
        ],
        "Hello John, the release is out.\r\n-- \r\ndev mailing list footer\r\n",
    );
    let twice = message(Some("twice@example.test"), "stored twice", 1_000);
    for (i, data) in [&list, &direct, &twice, &twice].into_iter().enumerate() {
        seed(&d, SOURCE, "INBOX", &[SEEN], T0 + i as i64, data);
    }
    d.fix_owner();
    let case = Case::new(&d, "master");
    let plan = case.plan();
    assert!(
        plan.contains("<- import mail: 3 new messages in 1 folder"),
        "{plan}"
    );
    assert!(plan.contains("of 4"), "{plan}");
    assert!(
        plan.contains("mail: 1 duplicate folded: the same message"),
        "{plan}"
    );
    assert!(plan.contains("(INBOX: 1)"), "{plan}");
    let err = case.apply();
    assert!(err.contains("copied 3 messages"), "{err}");

    // Both copies of the post arrived, each whole; the duplicate once.
    let target = listing(&d, TARGET);
    let inbox = &target["INBOX"];
    assert_eq!(inbox.len(), 3);
    let (s, u) = store(&d, TARGET);
    let bodies: Vec<Vec<u8>> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut session = mailplan::items::mail::imap::Session::connect(&s, &u)
            .await
            .unwrap();
        let mut out = Vec::new();
        for m in inbox {
            out.push(session.fetch("INBOX", m).await.unwrap());
        }
        session.logout().await;
        out
    });
    assert!(bodies.contains(&list), "the list copy is missing");
    assert!(bodies.contains(&direct), "the direct copy is missing");
    assert!(bodies.contains(&twice));

    // Nothing new on a rerun, nor without the ledger.
    let again = case.plan();
    assert!(again.contains("No changes."), "{again}");
    std::fs::remove_dir_all(case.dir.path().join(".mailplan")).unwrap();
    let lost = case.plan();
    assert!(lost.contains("No changes."), "{lost}");
}

/// A user's folders as IMAP lists them: name → subscribed.
fn folders(d: &Dovecot, user: &str) -> BTreeMap<String, bool> {
    let (s, u) = store(d, user);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut session = mailplan::items::mail::imap::Session::connect(&s, &u)
            .await
            .unwrap();
        let l = session.list().await.unwrap();
        session.logout().await;
        l.into_iter().map(|f| (f.name, f.subscribed)).collect()
    })
}

#[test]
fn empty_folders_and_subscriptions_arrive_and_a_rerun_plans_nothing() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y"), ("md-jsmith", "z")]);
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("i@example.test"), "inbox", 1_000),
    );
    seed(
        &d,
        SOURCE,
        "Projects",
        &[SEEN],
        T0 + 1,
        &message(Some("p@example.test"), "project", 1_000),
    );
    // Two empty folders, one inside the other, and Dovecot's own subscriptions file.
    let md = Maildir::new(d.maildir(SOURCE));
    md.ensure_folder("Empty/Nested").unwrap();
    md.ensure_folder("Empty").unwrap();
    std::fs::write(
        d.maildir(SOURCE).join("subscriptions"),
        "V\t2\n\nINBOX\nEmpty\nProjects\n",
    )
    .unwrap();
    d.fix_owner();
    let expected: BTreeMap<String, bool> = [
        ("INBOX".to_string(), true),
        ("Empty".to_string(), true),
        ("Empty/Nested".to_string(), false),
        ("Projects".to_string(), true),
    ]
    .into();
    assert_eq!(folders(&d, SOURCE), expected);

    let case = Case::new(&d, "master");
    let plan = case.plan();
    assert!(
        plan.contains(
            "<- import mail: 2 new messages in 2 folders (2.0 KiB) of 2, 3 folders to create, 3 to subscribe"
        ),
        "{plan}"
    );
    case.apply();
    assert_eq!(folders(&d, TARGET), expected);
    let again = case.plan();
    assert!(again.contains("No changes."), "{again}");

    // A new empty folder alone is an import of its own, and then nothing again.
    md.ensure_folder("Later").unwrap();
    d.fix_owner();
    let plan = case.plan();
    assert!(
        plan.contains("<- import mail: 0 new messages (0 B) of 2, 1 folder to create"),
        "{plan}"
    );
    case.apply();
    assert!(folders(&d, TARGET).contains_key("Later"));
    let again = case.plan();
    assert!(again.contains("No changes."), "{again}");

    // Into a Maildir that Dovecot serves: Dovecot reads the folders and subscriptions written.
    let case = Case::with_mail(&d, "");
    let path = d.maildir("md-jsmith");
    to_maildir_at(&case, &path.display().to_string());
    case.apply();
    d.fix_owner();
    let mut with_later = expected.clone();
    with_later.insert("Later".into(), false);
    assert_eq!(folders(&d, "md-jsmith"), with_later);
    let again = case.plan();
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn a_folder_arrives_in_the_source_order_over_parallel_sessions() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y"), ("md-jsmith", "z")]);
    let n = 500;
    for i in 0..n {
        // Two large messages go from server to server on their own, between the batches.
        let size = if i == 150 || i == 333 { 5 << 20 } else { 2_000 };
        seed(
            &d,
            SOURCE,
            "INBOX",
            &[SEEN],
            T0 + i as i64,
            &message(Some(&format!("o{i}@example.test")), "order", size),
        );
    }
    seed(
        &d,
        SOURCE,
        "Other",
        &[SEEN],
        T0,
        &message(Some("other@example.test"), "other", 2_000),
    );
    d.fix_owner();
    let order = |user: &str| -> Vec<String> {
        listing(&d, user)["INBOX"]
            .iter()
            .map(|m| base(&m.identity).to_string())
            .collect()
    };
    let source = order(SOURCE);
    let expected: Vec<String> = (0..n).map(|i| format!("mid:o{i}@example.test")).collect();
    assert_eq!(source, expected, "the source's own UID order");

    // IMAP to IMAP: the destination's UIDs follow the source's.
    let case = Case::new(&d, "master");
    let err = case.apply();
    assert!(err.contains(&format!("copied {} messages", n + 1)), "{err}");
    same_order(&order(TARGET), &source);

    // IMAP to a Maildir that Dovecot serves: Dovecot's UIDs follow the source's too.
    let case = Case::with_mail(&d, "");
    to_maildir_at(&case, &d.maildir("md-jsmith").display().to_string());
    case.apply();
    d.fix_owner();
    same_order(&order("md-jsmith"), &source);
}

/// Panics, naming the first place where they part, unless both lists are in the same order.
fn same_order(got: &[String], want: &[String]) {
    let at = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        at.is_none() && got.len() == want.len(),
        "{} messages in UID order, {} expected; first out of order at position {at:?}: {:?}",
        got.len(),
        want.len(),
        at.map(|i| (&got[i], &want[i]))
    );
}

/// A plan copying `jsmith`'s mail, logged in as jsmith with `auth: login` and the password in
/// `password_file`, into `new-jsmith`'s through the master login.
fn own_login_plan(d: &Dovecot, dir: &std::path::Path, password_file: &std::path::Path) {
    let fixtures = common::root().join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("plan.yaml"),
        format!(
            "version: 1\nsource:\n  profile: domino\n  directory: {{ ldif: source.ldif }}\ndestination:\n  flavor: active-directory\n  directory: {{ ldif: destination.ldif }}\n  container: \"OU=Migrated,DC=acme,DC=test\"\nitems:\n  mail:\n    source:\n      imap: {{ url: \"{url}\", tls: none, user: \"{{uid}}\", password: {{ file: \"{own}\" }}, auth: login }}\n    destination:\n      imap: {{ url: \"{url}\", tls: none, user: \"new-{{uid}}\", login: admin, password: {{ file: \"{admin}\" }} }}\n",
            url = d.url(),
            own = password_file.display(),
            admin = d.admin_password_file().display()
        ),
    )
    .unwrap();
}

#[test]
fn a_password_and_folder_names_with_8_bit_quotes_and_backslashes_arrive() {
    // 8-bit characters, a quote, a backslash and a space: the password can only travel as a
    // literal, and a quoted string could not carry it whole.
    let password = "pä\"ss \\wörd";
    let d = Dovecot::start(&[(SOURCE, password), (TARGET, "y")]);
    let quoted_folder = "Projekte \"2024\" \\ Übersicht";
    seed(
        &d,
        SOURCE,
        "INBOX",
        &[SEEN],
        T0,
        &message(Some("in@example.test"), "inbox", 1_000),
    );
    seed(
        &d,
        SOURCE,
        quoted_folder,
        &[FLAGGED],
        T0 + 1,
        &message(Some("q@example.test"), "quoted", 1_000),
    );
    d.fix_owner();
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("jsmith.pass");
    std::fs::write(&own, password).unwrap();
    own_login_plan(&d, dir.path(), &own);
    let run = |args: &[&str]| {
        let out = Command::cargo_bin("mailplan")
            .unwrap()
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(!text.contains("wörd"), "{text}");
        text
    };
    let plan = run(&["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import mail: 2 new messages in 2 folders"),
        "{plan}"
    );
    let applied = run(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(applied.contains("copied 2 messages"), "{applied}");
    let target = listing(&d, TARGET);
    let names: Vec<&str> = target.keys().map(String::as_str).collect();
    assert_eq!(names, ["INBOX", quoted_folder]);
    assert_eq!(target[quoted_folder].len(), 1);
    assert_eq!(target[quoted_folder][0].flags, [FLAGGED]);
    // Read back by its own name too: EXAMINE and FETCH with the quotes escaped.
    let folder = folders(&d, TARGET);
    assert!(folder.contains_key(quoted_folder), "{folder:?}");
    let plan = run(&["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import mail: 0 new messages") || !plan.contains("<- import mail"),
        "{plan}"
    );
    // A wrong password is refused, not sent differently.
    std::fs::write(&own, "pä\"ss \\word").unwrap();
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .args(["plan", "plan.yaml"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("login refused"), "{text}");
}

/// Listens on 127.0.0.1 for one connection, relays it to `upstream` and keeps every byte the
/// upstream server sends; the bytes, once the connection ended.
fn recording_proxy(upstream: u16) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let mut buf = [0u8; 16 << 10];
            while let Ok(n) = c2.read(&mut buf) {
                if n == 0 || s2.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let mut heard = Vec::new();
        let mut buf = [0u8; 16 << 10];
        while let Ok(n) = server.read(&mut buf) {
            if n == 0 || client.write_all(&buf[..n]).is_err() {
                break;
            }
            heard.extend_from_slice(&buf[..n]);
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = up.join();
        heard
    });
    (port, handle)
}

/// Records what Dovecot answers to the fuzzing script (`imap::fuzz_script`, logged in as
/// `imap::FUZZ_LOGIN`) as `tests/fuzz/corpus/imap/dovecot-session.txt`, the IMAP fuzz target's
/// main seed. Run by hand when the script or the commands mailplan sends change:
/// `cargo test --test imap record_the_imap_fuzz_corpus -- --ignored`.
#[test]
#[ignore = "a tool, not a check: rewrites the IMAP fuzz target's seed from a live Dovecot; run by hand"]
fn record_the_imap_fuzz_corpus() {
    use mailplan::items::mail::imap::{FUZZ_LOGIN, Session, fuzz_script};
    let (user, password) = FUZZ_LOGIN;
    let d = Dovecot::start(&[(user, password), ("sink", "x")]);
    for (i, (folder, flags)) in [
        ("INBOX", &[SEEN][..]),
        ("INBOX", &[SEEN, ANSWERED][..]),
        ("INBOX", &[][..]),
        ("Entwürfe/Übersicht", &[DRAFT][..]),
        ("Sent", &[SEEN, "$Forwarded"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("m{i}@example.test");
        seed(
            &d,
            user,
            folder,
            flags,
            T0 + i as i64,
            &message(Some(&id), "fuzz", 600),
        );
    }
    // Larger than the fuzz target's 16 KiB literals: a bad item there.
    seed(
        &d,
        user,
        "Sent",
        &[SEEN],
        T0 + 9,
        &message(Some("big@example.test"), "big", 20_000),
    );
    d.fix_owner();
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("fuzz.pass");
    std::fs::write(&pass, password).unwrap();
    let (port, heard) = recording_proxy(d.port);
    let (mut store, _) = store(&d, user);
    store.port = port;
    store.auth = ImapAuth::Login;
    store.login = None;
    store.password = Secret::File(pass);
    let (sink_store, sink_user) = self::store(&d, "sink");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = Session::connect(&store, user).await.unwrap();
        let mut sink = Session::connect(&sink_store, &sink_user).await.unwrap();
        fuzz_script(&mut s, &mut sink).await;
        s.logout().await;
        sink.logout().await;
    });
    let heard = heard.join().unwrap();
    let out = common::root().join("tests/fuzz/corpus/imap/dovecot-session.txt");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, &heard).unwrap();
    assert!(
        heard.starts_with(b"* OK"),
        "{}",
        String::from_utf8_lossy(&heard)
    );
}
