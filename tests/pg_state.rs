//! The state in PostgreSQL, end to end: a plan file with `state: postgres:` applied into a real
//! Dovecot and an LDIF destination keeps its runs, backups and ledger in a throwaway PostgreSQL
//! (nothing beside the plan file); a rerun plans nothing and copies nothing; the `state`
//! commands read the runs back from the database; an apply killed with SIGKILL and run again
//! leaves every message exactly once; copying does not open a connection or commit a
//! transaction per message.

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;
#[path = "servers/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use dovecot::Dovecot;
use mailplan::items::mail::maildir::Maildir;
use mailplan::items::mail::{MessageMeta, SEEN};

const SOURCE: &str = "jsmith";
const TARGET: &str = "new-jsmith";
const T0: i64 = 1_700_000_000;
/// The variable the plan file names for the database password.
const PASSWORD_ENV: &str = "MAILPLAN_DB_PASSWORD";

fn message(id: &str, body_len: usize) -> Vec<u8> {
    let mut m = format!(
        "Message-ID: <{id}>\r\nFrom: a@example.test\r\nSubject: pg\r\n\
         Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    m.resize(m.len() + body_len, b'x');
    m.extend_from_slice(b"\r\n");
    m
}

fn seed(d: &Dovecot, folder: &str, i: usize, size: usize) {
    seed_user(d, SOURCE, folder, i, size);
}

fn seed_user(d: &Dovecot, user: &str, folder: &str, i: usize, size: usize) {
    let md = Maildir::new(d.maildir(user));
    md.ensure_folder(folder).unwrap();
    let meta = MessageMeta {
        key: String::new(),
        identity: String::new(),
        flags: vec![SEEN.to_string()],
        internal_date: T0 + i as i64,
        size: 0,
    };
    md.append(
        folder,
        &meta,
        &message(&format!("{user}-{i}@example.test"), size),
    )
    .unwrap();
}

/// A migration folder whose plan keeps its state in `pg`: John Smith (scenario 6, an LDIF
/// destination) and his mail from `jsmith` to `new-jsmith`.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(d: &Dovecot, pg: &postgres::Postgres) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = common::root().join("tests/fixtures/scenario6_mailbox");
        for f in ["source.ldif", "destination.ldif"] {
            std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
        }
        Self::in_dir(dir, d, pg)
    }

    /// A wave of the persons `uids`, each of whom already has a mailbox at the destination
    /// (scenario 6): their mail goes from the Dovecot user `uid` to `new-uid`.
    fn wave(d: &Dovecot, pg: &postgres::Postgres, uids: &[&str]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let mut source = String::from("version: 1\n");
        let mut destination = String::from(
            "version: 1\n\ndn: DC=acme,DC=test\nobjectClass: top\nobjectClass: domain\ndc: acme\n\n\
             dn: OU=Migrated,DC=acme,DC=test\nobjectClass: organizationalUnit\nou: Migrated\n\n\
             dn: CN=Users,DC=acme,DC=test\nobjectClass: container\ncn: Users\n\n\
             dn: CN=acme.com,CN=Users,DC=acme,DC=test\nobjectClass: msExchAcceptedDomain\n\
             cn: acme.com\nmsExchAcceptedDomainName: acme.com\n",
        );
        for uid in uids {
            source.push_str(&format!(
                "\ndn: CN=Person {uid},OU=Sales,O=Acme\nobjectClass: top\nobjectClass: dominoPerson\n\
                 cn: Person {uid}\nuid: {uid}\nmail: {uid}@acme.com\ngivenName: Person\nsn: {uid}\n"
            ));
            destination.push_str(&format!(
                "\ndn: CN=Person {uid},CN=Users,DC=acme,DC=test\nobjectClass: top\nobjectClass: person\n\
                 objectClass: organizationalPerson\nobjectClass: user\ncn: Person {uid}\n\
                 sAMAccountName: {uid}\nproxyAddresses: SMTP:{uid}@acme.com\n\
                 homeMDB: CN=DB01,DC=acme,DC=test\nmsExchRecipientTypeDetails: 1\n"
            ));
        }
        std::fs::write(dir.path().join("source.ldif"), source).unwrap();
        std::fs::write(dir.path().join("destination.ldif"), destination).unwrap();
        Self::in_dir(dir, d, pg)
    }

    fn in_dir(dir: tempfile::TempDir, d: &Dovecot, pg: &postgres::Postgres) -> Case {
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
state:
  postgres:
    url: "{db}"
    password: {{ env: {PASSWORD_ENV} }}
items:
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
        auth: master
"#,
            db = pg.url("postgres"),
            url = d.url(),
            pass = pass.display()
        );
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Case { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("mailplan").unwrap();
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env(PASSWORD_ENV, postgres::PG_PASSWORD);
        c
    }

    /// Runs a command that must succeed; its standard output and error.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.cmd().args(args).output().unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{args:?} failed: {o}{e}");
        (o, e)
    }

    fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mailplan"));
        c.args(args)
            .current_dir(self.dir.path())
            .env(PASSWORD_ENV, postgres::PG_PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }
}

/// Runs `sql` in the `postgres` database of `pg` and returns the first column of each row as
/// text.
fn sql(pg: &postgres::Postgres, sql: &str) -> Vec<String> {
    let url = pg.url("postgres");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.password(postgres::PG_PASSWORD);
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let rows = client.simple_query(sql).await.unwrap();
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    })
}

/// Transactions committed and sessions opened in the database so far (the statistics are
/// flushed first, so they include every session that has ended).
fn activity(pg: &postgres::Postgres) -> (u64, u64) {
    sql(pg, "SELECT pg_stat_force_next_flush()");
    std::thread::sleep(Duration::from_millis(1_100));
    let row = sql(
        pg,
        "SELECT xact_commit::text || ' ' || sessions::text FROM pg_stat_database \
         WHERE datname = 'postgres'",
    );
    let mut parts = row[0].split(' ').map(|p| p.parse::<u64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// How many times each message identity is at the destination.
fn copies(d: &Dovecot) -> BTreeMap<String, usize> {
    copies_of(d, TARGET)
}

fn copies_of(d: &Dovecot, user: &str) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for entry in walk(&d.maildir(user)) {
        let text = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&text);
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .map(str::to_owned)
        {
            *count.entry(id).or_default() += 1;
        }
    }
    count
}

/// Every message file under a Maildir (its `cur` and `new` folders, at any depth).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "cur" || n == "new")
        {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_apply_keeps_its_state_in_postgres_and_a_rerun_changes_nothing() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let n = 600;
    for i in 0..n {
        seed(&d, if i % 2 == 0 { "INBOX" } else { "Archive" }, i, 2_000);
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::new(&d, &pg);

    let before = {
        // The schema is made by the first command; count from an empty database.
        activity(&pg)
    };
    let (_, err) = case.ok(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("Apply complete!"), "{err}");
    let after = activity(&pg);
    let copied = copies(&d);
    assert_eq!(copied.len(), n, "every message arrived");
    assert!(copied.values().all(|&c| c == 1), "a message arrived twice");

    // Nothing beside the plan file: the state is in the database.
    assert!(
        !case.dir.path().join(".mailplan").exists(),
        "a SQLite state was made beside the plan"
    );
    let ledger = sql(&pg, "SELECT count(*) FROM ledger WHERE kind = 'mail'");
    assert_eq!(ledger, [n.to_string()]);
    let runs = sql(&pg, "SELECT outcome FROM runs ORDER BY id");
    assert_eq!(runs, ["succeeded"]);
    let actions = sql(&pg, "SELECT kind || ' ' || status FROM actions");
    assert_eq!(actions, ["import_mail applied"]);

    // Copying costs neither a connection nor a commit per message.
    let (commits, sessions) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "apply of {n} messages: {commits} transactions committed, {sessions} sessions opened"
    );
    assert!(
        commits < n as u64 / 4,
        "{commits} transactions for {n} messages"
    );
    assert!(sessions < 30, "{sessions} sessions for one mailbox");

    // A rerun finds everything done.
    let (out, _) = case.ok(&["plan", "plan.yaml"]);
    assert!(out.contains("No changes."), "{out}");
    let (out, err) = case.ok(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(
        out.contains("No changes.") || err.contains("No changes."),
        "{out}{err}"
    );
    assert_eq!(copies(&d), copied, "the rerun copied something");

    // The state commands read the database the plan file names.
    let (list, _) = case.ok(&["state", "list", "plan.yaml"]);
    assert!(list.contains("run    1"), "{list}");
    assert!(list.contains("succeeded"), "{list}");
    let (show, _) = case.ok(&["state", "show", "plan.yaml", "1"]);
    assert!(show.contains("applied"), "{show}");
    let (items, _) = case.ok(&["state", "items", "plan.yaml"]);
    assert!(items.contains(&format!("{n} messages copied")), "{items}");
    let (show, _) = case.ok(&["state", "backups", "plan.yaml"]);
    assert!(show.contains("No backups."), "{show}");
}

#[test]
fn an_apply_killed_halfway_and_rerun_on_postgres_copies_every_message_exactly_once() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let n = 3_000;
    for i in 0..n {
        let size = if i % 500 == 0 { 1 << 20 } else { 4_000 };
        seed(&d, if i % 3 == 0 { "Archive" } else { "INBOX" }, i, size);
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::new(&d, &pg);
    let mut child = case
        .std_command(&["apply", "plan.yaml", "--auto-approve"])
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
    // Let the server finish the APPENDs the killed client had already sent.
    let mut partial = d.count_files(TARGET);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = d.count_files(TARGET);
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(partial < n, "the kill came too late ({partial} copied)");

    // The killed apply's lock went with its connection: the rerun takes it at once.
    let (_, err) = case.ok(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("Apply complete!"), "{err}");
    let copied = copies(&d);
    assert_eq!(copied.len(), n, "every message arrived");
    assert!(copied.values().all(|&c| c == 1), "a message arrived twice");
    let runs = sql(&pg, "SELECT outcome FROM runs ORDER BY id");
    assert_eq!(runs, ["interrupted", "succeeded"]);
    let (out, _) = case.ok(&["plan", "plan.yaml"]);
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn two_applies_of_one_plan_exclude_each_other_through_the_database() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    for i in 0..2_000 {
        seed(&d, "INBOX", i, 20_000);
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::new(&d, &pg);
    let mut first = case
        .std_command(&["apply", "plan.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.count_files(TARGET) == 0 {
        assert!(first.try_wait().unwrap().is_none(), "the first apply ended");
        assert!(Instant::now() < deadline, "the import did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = case
        .cmd()
        .args(["apply", "plan.yaml", "--auto-approve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locked"), "{err}");
    assert!(err.contains(&format!("process {}", first.id())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// Starts a worker of the case's plan in the background.
fn spawn_worker(case: &Case, extra: &[&str]) -> std::process::Child {
    let mut args = vec!["worker", "plan.yaml"];
    args.extend_from_slice(extra);
    case.std_command(&args).spawn().unwrap()
}

/// Starts a worker and kills it with SIGKILL once `user`'s Maildir holds `files` messages, in the
/// middle of its unit; its process id.
fn worker_killed_after(case: &Case, d: &Dovecot, user: &str, files: usize, extra: &[&str]) -> u32 {
    let mut worker = spawn_worker(case, extra);
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.count_files(user) < files {
        if let Some(status) = worker.try_wait().unwrap() {
            panic!("the worker ended ({status}) before it could be killed");
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not start copying"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    worker.id()
}

fn progress(case: &Case) -> String {
    let out = case
        .cmd()
        .args(["state", "progress", "plan.yaml"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every source message of `uids` is at its destination exactly once.
fn exactly_once(d: &Dovecot, uids: &[&str], per_user: usize) {
    for uid in uids {
        let got = copies_of(d, &format!("new-{uid}"));
        assert_eq!(got.len(), per_user, "{uid}: every message arrived");
        assert!(
            got.values().all(|&c| c == 1),
            "{uid}: a message arrived twice"
        );
    }
}

#[test]
fn three_workers_share_a_queued_wave_and_copy_every_message_exactly_once() {
    let uids = ["p1", "p2", "p3", "p4", "p5", "p6"];
    let mut users = Vec::new();
    for u in uids {
        users.push((u.to_string(), "x".to_string()));
        users.push((format!("new-{u}"), "y".to_string()));
    }
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = Dovecot::start(&users);
    let per_user = 300;
    for u in uids {
        for i in 0..per_user {
            seed_user(
                &d,
                u,
                if i % 2 == 0 { "INBOX" } else { "Archive" },
                i,
                3_000,
            );
        }
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &uids);

    // The directory phase, and the item work queued: nothing copied yet.
    let (_, err) = case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    // Queued is not done: the summary says so, imports are not counted as applied.
    assert!(err.contains("queued   import_mail:"), "{err}");
    assert!(
        err.contains("6 imports queued for `mailplan worker`: nothing of them is copied yet"),
        "{err}"
    );
    assert!(!err.contains("Apply complete!"), "{err}");
    assert!(
        err.contains("Apply finished; the item work is queued.") && err.contains(", 6 queued, "),
        "{err}"
    );
    for u in uids {
        assert!(
            copies_of(&d, &format!("new-{u}")).is_empty(),
            "{u} copied by apply"
        );
    }
    let before = progress(&case);
    assert!(
        before.contains("6 units: 0 done, 0 running, 6 queued, 0 failed"),
        "{before}"
    );

    let started = Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|_| spawn_worker(&case, &["--concurrency", "1"]))
        .collect();
    for mut w in workers {
        let status = w.wait().unwrap();
        assert!(status.success(), "a worker failed: {status}");
    }
    eprintln!(
        "3 workers copied {} messages in {:.1} s",
        uids.len() * per_user,
        started.elapsed().as_secs_f64()
    );
    exactly_once(&d, &uids, per_user);
    let after = progress(&case);
    assert!(
        after.starts_with("Wave: plan plan.yaml -> destination "),
        "{after}"
    );
    let (all, _) = case.ok(&["state", "progress", "plan.yaml", "--all"]);
    assert!(
        all.contains(" (this plan): 6 units: 6 done, 0 running, 0 queued, 0 failed; 1,800 items"),
        "{all}"
    );
    assert!(
        after.contains("6 units: 6 done, 0 running, 0 queued, 0 failed"),
        "{after}"
    );
    assert!(after.contains("Copied 1,800 items"), "{after}");
    let (out, _) = case.ok(&["plan", "plan.yaml"]);
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn a_worker_killed_mid_unit_loses_its_lease_and_another_finishes_it_exactly_once() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let n = 3_000;
    for i in 0..n {
        seed(&d, if i % 3 == 0 { "Archive" } else { "INBOX" }, i, 4_000);
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::new(&d, &pg);
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    let first = worker_killed_after(&case, &d, TARGET, 300, &["--lease", "3"]);
    let held = progress(&case);
    assert!(held.contains("1 running"), "{held}");
    assert!(held.contains(&format!(":{}#", first)), "{held}");

    let out = case
        .cmd()
        .args(["worker", "plan.yaml", "--lease", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let copied = copies(&d);
    assert_eq!(copied.len(), n, "every message arrived");
    assert!(copied.values().all(|&c| c == 1), "a message arrived twice");
    let done = progress(&case);
    assert!(done.contains("1 units: 1 done"), "{done}");
    let attempts = sql(&pg, "SELECT attempts FROM units");
    assert_eq!(attempts, ["2"], "taken over once");
}

/// A wave of `big` (6 messages of 3 kB in each of INBOX, Archive, Projects and
/// Projects/2024, and an empty folder; some subscribed) and `small` (3 messages of 1 kB), whose
/// plan copies a mailbox with more than 10 KiB of new mail as one unit per folder.
fn large_and_small(d: &Dovecot, pg: &postgres::Postgres) -> Case {
    let mut i = 0;
    for folder in ["INBOX", "Archive", "Projects", "Projects/2024"] {
        for _ in 0..6 {
            seed_user(d, "big", folder, i, 3_000);
            i += 1;
        }
    }
    let source = Maildir::new(d.maildir("big"));
    source.ensure_folder("Empty").unwrap();
    for folder in ["Archive", "Projects/2024", "Empty"] {
        source.subscribe(folder).unwrap();
    }
    for i in 0..3 {
        seed_user(d, "small", "INBOX", 100 + i, 1_000);
    }
    d.fix_owner();
    let case = Case::wave(d, pg, &["big", "small"]);
    let plan = case.dir.path().join("plan.yaml");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str("    unit_per_folder_above: 10 KiB\n");
    std::fs::write(&plan, text).unwrap();
    case
}

/// Each folder of a Dovecot user's mailbox, and whether it is subscribed.
fn folders_of(d: &Dovecot, user: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Maildir::new(d.maildir(user))
        .list()
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.subscribed))
        .collect();
    out.sort();
    out
}

fn large_and_small_users() -> Dovecot {
    Dovecot::start(&[
        ("big", "x"),
        ("new-big", "y"),
        ("small", "x"),
        ("new-small", "y"),
    ])
}

#[test]
fn a_large_mailbox_is_queued_as_one_unit_per_folder_and_workers_copy_it_exactly_once() {
    let d = large_and_small_users();
    let pg = postgres::Postgres::start();
    let case = large_and_small(&d, &pg);

    let (_, err) = case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    assert!(
        err.contains(": queued as 4 units, one per folder")
            && err.contains("2 imports queued for `mailplan worker`"),
        "{err}"
    );
    let queued = progress(&case);
    assert!(
        queued.contains("5 units: 0 done, 0 running, 5 queued, 0 failed"),
        "{queued}"
    );
    assert!(
        queued.contains("into 4 folder units: 0 done, 0 running, 4 queued, 0 failed"),
        "{queued}"
    );
    assert_eq!(
        sql(
            &pg,
            "SELECT folder FROM units WHERE folder IS NOT NULL ORDER BY unit"
        ),
        ["Archive", "INBOX", "Projects", "Projects/2024"]
    );

    let workers: Vec<_> = (0..3)
        .map(|_| spawn_worker(&case, &["--concurrency", "1"]))
        .collect();
    for mut w in workers {
        let status = w.wait().unwrap();
        assert!(status.success(), "a worker failed: {status}");
    }
    exactly_once(&d, &["big"], 24);
    exactly_once(&d, &["small"], 3);
    assert_eq!(folders_of(&d, "new-big"), folders_of(&d, "big"));
    assert!(
        folders_of(&d, "new-big").contains(&("Empty".to_string(), true)),
        "the empty folder is made and subscribed too"
    );
    let done = progress(&case);
    assert!(
        done.contains("5 units: 5 done, 0 running, 0 queued, 0 failed"),
        "{done}"
    );
    assert!(
        done.contains("into 4 folder units: 4 done, 0 running, 0 queued, 0 failed"),
        "{done}"
    );
    assert!(done.contains("Copied 27 items"), "{done}");
    let (out, _) = case.ok(&["plan", "plan.yaml"]);
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn apply_copies_a_large_mailbox_folder_by_folder_itself() {
    let d = large_and_small_users();
    let pg = postgres::Postgres::start();
    let case = large_and_small(&d, &pg);
    let (_, err) = case.ok(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("#Projects/2024: copied 6 messages"), "{err}");
    exactly_once(&d, &["big"], 24);
    exactly_once(&d, &["small"], 3);
    assert_eq!(folders_of(&d, "new-big"), folders_of(&d, "big"));
    let done = progress(&case);
    assert!(
        done.contains("into 4 folder units: 4 done, 0 running, 0 queued, 0 failed"),
        "{done}"
    );
    let (out, _) = case.ok(&["plan", "plan.yaml"]);
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn a_worker_killed_mid_folder_unit_is_taken_over_and_the_folder_copied_exactly_once() {
    let d = Dovecot::start(&[("big", "x"), ("new-big", "y")]);
    let per_folder = 600;
    let mut i = 0;
    for folder in ["Archive", "INBOX", "Projects/2024"] {
        for _ in 0..per_folder {
            seed_user(&d, "big", folder, i, 4_000);
            i += 1;
        }
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &["big"]);
    let plan = case.dir.path().join("plan.yaml");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str("    unit_per_folder_above: 1 MiB\n");
    std::fs::write(&plan, text).unwrap();
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);

    // The first folder unit (Archive) is killed halfway.
    worker_killed_after(
        &case,
        &d,
        "new-big",
        100,
        &["--lease", "3", "--concurrency", "1"],
    );
    let held = progress(&case);
    assert!(held.contains("folder `Archive`  held by"), "{held}");

    let out = case
        .cmd()
        .args(["worker", "plan.yaml", "--lease", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    exactly_once(&d, &["big"], 3 * per_folder);
    let done = progress(&case);
    assert!(
        done.contains("into 3 folder units: 3 done, 0 running, 0 queued, 0 failed"),
        "{done}"
    );
    let attempts = sql(&pg, "SELECT attempts::text FROM units ORDER BY unit");
    assert_eq!(attempts, ["2", "1", "1"], "Archive taken over once");
}

#[test]
fn a_unit_that_always_fails_ends_failed_after_its_retries_and_the_rest_completes() {
    let d = Dovecot::start(&[("p1", "x"), ("new-p1", "y"), ("p2", "x"), ("new-p2", "y")]);
    for u in ["p1", "p2"] {
        for i in 0..50 {
            seed_user(&d, u, "INBOX", i, 2_000);
        }
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &["p1", "p2"]);
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    // From now on the server cannot read `p2`'s mailbox: every attempt at that unit fails.
    use std::os::unix::fs::PermissionsExt as _;
    let p2 = d.maildir("p2");
    std::fs::set_permissions(&p2, std::fs::Permissions::from_mode(0o000)).unwrap();
    let retries = ["--max-attempts", "3", "--backoff", "1"];
    let out = case
        .cmd()
        .args(["worker", "plan.yaml"])
        .args(retries)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed unit: import_mail"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    exactly_once(&d, &["p1"], 50);
    let shown = progress(&case);
    assert!(
        shown.contains("2 units: 1 done, 0 running, 0 queued, 1 failed"),
        "{shown}"
    );
    assert!(shown.contains("failed   import_mail"), "{shown}");

    // Taken again on request, with its attempts counted afresh.
    let out = case
        .cmd()
        .args(["worker", "plan.yaml", "--retry-failed"])
        .args(retries)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Queued 1 failed units again."), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
}

/// Benchmark (ignored; run by hand): one wave of `BENCH_MAILBOXES` mailboxes (200) of
/// `BENCH_MESSAGES` messages (100 of 4 KB, half in the inbox, half in a folder) between users of
/// one Dovecot, copied by one `apply` on the SQLite state, then on PostgreSQL by `apply
/// --no-items` and 1, 2 and 4 workers (`BENCH_WORKERS`, default concurrency each). For each: the
/// rate, Dovecot's CPU seconds per 1,000 messages, and the database's side: statements and
/// commits per copied message, most sessions open at once, and its size at the end.
/// `cargo test --release --test pg_state -- --ignored --nocapture workers_scale`
#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn workers_scale() {
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (mailboxes, per_user) = (
        number("BENCH_MAILBOXES", 200),
        number("BENCH_MESSAGES", 100),
    );
    let workers: Vec<usize> = std::env::var("BENCH_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    let names: Vec<String> = (0..mailboxes).map(|i| format!("w{i:04}")).collect();
    let uids: Vec<&str> = names.iter().map(String::as_str).collect();
    let n = uids.len() * per_user;
    eprintln!("{mailboxes} mailboxes x {per_user} messages = {n} messages");
    // 0 workers: one apply on the SQLite state.
    for run in std::iter::once(0).chain(workers) {
        let users: Vec<(String, String)> = uids
            .iter()
            .flat_map(|u| {
                [
                    (u.to_string(), "x".to_string()),
                    (format!("new-{u}"), "y".to_string()),
                ]
            })
            .collect();
        let users: Vec<(&str, &str)> = users
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let d = Dovecot::start(&users);
        for u in &uids {
            for i in 0..per_user {
                seed_user(
                    &d,
                    u,
                    if i % 2 == 0 { "INBOX" } else { "Archive" },
                    i,
                    4_000,
                );
            }
        }
        d.fix_owner();
        let pg = postgres::Postgres::start_with(&["log_statement=all"]);
        let case = Case::wave(&d, &pg, &uids);
        let statements = || {
            pg.log()
                .lines()
                .filter(|l| l.contains("LOG:  execute ") || l.contains("LOG:  statement: "))
                // Not the benchmark's own samples.
                .filter(|l| !l.contains("pg_stat_") && !l.contains("pg_database_size"))
                .count()
        };
        let commits = || -> u64 {
            pg.psql(
                "postgres",
                "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
            )
            .parse()
            .unwrap_or(0)
        };
        if run == 0 {
            let plan = std::fs::read_to_string(case.dir.path().join("plan.yaml")).unwrap();
            let (head, tail) = plan.split_once("state:\n").unwrap();
            let tail = tail.split_once("items:\n").unwrap().1;
            std::fs::write(
                case.dir.path().join("plan.yaml"),
                format!("{head}items:\n{tail}"),
            )
            .unwrap();
            let (cpu, started) = (d.cpu_seconds(), Instant::now());
            case.ok(&["apply", "plan.yaml", "--auto-approve"]);
            let secs = started.elapsed().as_secs_f64();
            exactly_once(&d, &uids, per_user);
            let state = case.dir.path().join(".mailplan/state.db");
            eprintln!(
                "one apply, SQLite: {n} messages in {secs:.1} s: {:.0} messages/s; Dovecot {:.2} CPU s per 1,000; state file {} KiB",
                n as f64 / secs,
                (d.cpu_seconds() - cpu) * 1000.0 / n as f64,
                std::fs::metadata(state)
                    .map(|m| m.len() / 1024)
                    .unwrap_or(0)
            );
            continue;
        }
        let (s0, c0) = (statements(), commits());
        case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
        let (s1, c1, cpu) = (statements(), commits(), d.cpu_seconds());
        // Less the one that read `c0`.
        let c1_apply = c1.saturating_sub(c0 + 1);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let samples = std::sync::atomic::AtomicU64::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let started = Instant::now();
        let secs = std::thread::scope(|scope| {
            scope.spawn(|| {
                // A psql session samples the others, itself excluded.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let open = pg.psql(
                        "postgres",
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    );
                    most.fetch_max(
                        open.parse().unwrap_or(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    samples.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let children: Vec<_> = (0..run).map(|_| spawn_worker(&case, &[])).collect();
            for mut c in children {
                assert!(c.wait().unwrap().success());
            }
            let secs = started.elapsed().as_secs_f64();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            secs
        });
        let (s2, c2) = (statements(), commits());
        let cpu = d.cpu_seconds() - cpu;
        exactly_once(&d, &uids, per_user);
        let size: u64 = pg
            .psql("postgres", "SELECT pg_database_size('postgres')")
            .parse()
            .unwrap_or(0);
        let ledger: u64 = pg
            .psql("postgres", "SELECT count(*) FROM ledger")
            .parse()
            .unwrap_or(0);
        eprintln!(
            "{run} workers, PostgreSQL: {n} messages in {secs:.1} s: {:.0} messages/s; Dovecot {:.2} CPU s per 1,000; \
             apply --no-items {} statements, {} commits; workers {:.2} statements and {:.3} commits per message, \
             at most {} database sessions; database {} MiB, {ledger} ledger rows",
            n as f64 / secs,
            cpu * 1000.0 / n as f64,
            s1 - s0,
            c1_apply,
            (s2 - s1) as f64 / n as f64,
            // Less the samples' own commits, and the one that read `c1`.
            c2.saturating_sub(c1 + 1 + samples.load(std::sync::atomic::Ordering::Relaxed)) as f64
                / n as f64,
            most.load(std::sync::atomic::Ordering::Relaxed),
            size >> 20,
        );
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn one_large_mailbox_by_folder_scales() {
    let folders = ["INBOX", "Archive", "Projects", "Projects/2024"];
    let per_folder = 500;
    for above in ["1 GiB", "1 MiB"] {
        let d = Dovecot::start(&[("big", "x"), ("new-big", "y")]);
        let mut i = 0;
        for folder in folders {
            for _ in 0..per_folder {
                seed_user(&d, "big", folder, i, 4_000);
                i += 1;
            }
        }
        d.fix_owner();
        let pg = postgres::Postgres::start();
        let case = Case::wave(&d, &pg, &["big"]);
        let plan = case.dir.path().join("plan.yaml");
        let mut text = std::fs::read_to_string(&plan).unwrap();
        text.push_str(&format!("    unit_per_folder_above: {above}\n"));
        std::fs::write(&plan, text).unwrap();
        case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
        let started = Instant::now();
        let children: Vec<_> = (0..3)
            .map(|_| spawn_worker(&case, &["--concurrency", "1"]))
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let secs = started.elapsed().as_secs_f64();
        let n = folders.len() * per_folder;
        exactly_once(&d, &["big"], n);
        let units = sql(&pg, "SELECT count(*)::text FROM units");
        eprintln!(
            "unit_per_folder_above {above}: {} units, 3 workers: {n} messages in {secs:.1} s: \
             {:.0} messages/s",
            units[0],
            n as f64 / secs
        );
    }
}

/// The Dovecot endpoint as `items.connections` names it.
fn endpoint(d: &Dovecot) -> String {
    d.url().trim_start_matches("imap://").to_owned()
}

/// Caps the plan file's connections to the Dovecot of `d` at `n`.
fn cap_connections(case: &Case, d: &Dovecot, n: u32) {
    let plan = case.dir.path().join("plan.yaml");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str(&format!("  connections:\n    \"{}\": {n}\n", endpoint(d)));
    std::fs::write(plan, text).unwrap();
}

/// A Dovecot with the mailboxes `uids` (each with `per_user` messages) and their empty
/// destinations `new-uid`.
fn mailboxes(uids: &[&str], per_user: usize, size: usize) -> Dovecot {
    let mut users = Vec::new();
    for u in uids {
        users.push((u.to_string(), "x".to_string()));
        users.push((format!("new-{u}"), "y".to_string()));
    }
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = Dovecot::start(&users);
    for u in uids {
        for i in 0..per_user {
            seed_user(&d, u, if i % 2 == 0 { "INBOX" } else { "Archive" }, i, size);
        }
    }
    d.fix_owner();
    d
}

#[test]
fn a_cap_of_two_connections_is_never_exceeded_by_three_workers() {
    let uids = ["c1", "c2", "c3", "c4", "c5", "c6"];
    let per_user = 250;
    let d = mailboxes(&uids, per_user, 2_000);
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &uids);
    // Source and destination are the same server: one pair of sessions at a time, for all.
    cap_connections(&case, &d, 2);
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let most = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                most.fetch_max(d.imap_sessions(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let log =
                    std::fs::File::create(case.dir.path().join(format!("worker{i}.log"))).unwrap();
                case.std_command(&["worker", "plan.yaml", "--concurrency", "2"])
                    .stderr(log)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut w in workers {
            let status = w.wait().unwrap();
            assert!(status.success(), "a worker failed: {status}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Six tasks and room for one pair: the others said what they waited for.
    let logs: String = (0..3)
        .map(|i| std::fs::read_to_string(case.dir.path().join(format!("worker{i}.log"))).unwrap())
        .collect();
    assert!(
        logs.contains(&format!(
            "waiting for the cap of {} (2 connections, all in use)",
            endpoint(&d)
        )),
        "{logs}"
    );
    let most = most.into_inner();
    assert!(most > 0, "no IMAP session was ever seen at the server");
    assert!(most <= 2, "{most} IMAP sessions at once under a cap of 2");
    exactly_once(&d, &uids, per_user);
    let shown = progress(&case);
    assert!(
        shown.contains("6 units: 6 done, 0 running, 0 queued, 0 failed"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "cap      {}  0 of 2 connections in use",
            endpoint(&d)
        )),
        "{shown}"
    );
}

#[test]
fn a_cap_changed_with_set_cap_while_workers_run_is_followed_within_one_lease() {
    let uids = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let per_user = 3_000;
    let d = mailboxes(&uids, per_user, 1_000);
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &uids);
    cap_connections(&case, &d, 2);
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    let lease = Duration::from_secs(3);
    // A renewal every third of the lease, then the batch in flight.
    let within = lease + Duration::from_secs(2);
    let at = endpoint(&d);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let samples = std::sync::Mutex::new(Vec::<(Instant, usize)>::new());
    let seen_after = |since: Instant, pred: &dyn Fn(usize) -> bool| {
        samples
            .lock()
            .unwrap()
            .iter()
            .any(|(t, n)| *t >= since && pred(*n))
    };
    let (raised, lowered, finished) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = d.imap_sessions();
                samples.lock().unwrap().push((Instant::now(), n));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut workers: Vec<_> = (0..3)
            .map(|_| spawn_worker(&case, &["--concurrency", "2", "--lease", "3"]))
            .collect();
        let wait_for = |since: Instant, pred: &dyn Fn(usize) -> bool, limit: Duration| {
            let deadline = since + limit;
            while Instant::now() < deadline {
                if seen_after(since, pred) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        let start = Instant::now();
        assert!(
            wait_for(start, &|n| n > 0, Duration::from_secs(60)),
            "the workers never opened a session"
        );
        // A while under the first cap, then raised: more pairs start within a lease.
        std::thread::sleep(Duration::from_secs(2));
        let raised = Instant::now();
        case.ok(&["state", "set-cap", "plan.yaml", &at, "4"]);
        let shown = progress(&case);
        assert!(shown.contains(&format!("cap      {at}  ")), "{shown}");
        assert!(
            shown.contains("of 4 connections in use (set by state set-cap"),
            "{shown}"
        );
        assert!(
            wait_for(raised, &|n| n > 2, within),
            "the raised cap was not used within a lease"
        );
        // Lowered: the newest pairs close after their batch and give their room back.
        let lowered = Instant::now();
        case.ok(&["state", "set-cap", "plan.yaml", &at, "2"]);
        for w in &mut workers {
            let status = w.wait().unwrap();
            assert!(status.success(), "a worker failed: {status}");
        }
        let finished = Instant::now();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (raised, lowered, finished)
    });
    let samples = samples.into_inner().unwrap();
    let peak = |from: Instant, to: Instant| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    };
    eprintln!(
        "sessions at most: {} under 2, {} under 4 ({:.1} s), {} in the lease after lowering to 2, \
         {} from then on ({:.1} s)",
        peak(samples[0].0, raised),
        peak(raised, lowered),
        (lowered - raised).as_secs_f64(),
        peak(lowered, lowered + within),
        peak(lowered + within, finished),
        (finished - lowered).as_secs_f64()
    );
    let before = samples
        .iter()
        .filter(|(t, _)| *t < raised)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    assert!(before <= 2, "{before} sessions under the first cap of 2");
    let settled = lowered + within;
    assert!(
        finished > settled + Duration::from_secs(1),
        "the wave ended {:.1} s after the cap was lowered: too soon to tell",
        (finished - lowered).as_secs_f64()
    );
    let after: Vec<usize> = samples
        .iter()
        .filter(|(t, _)| *t >= settled)
        .map(|(_, n)| *n)
        .collect();
    let most = after.iter().copied().max().unwrap_or(0);
    assert!(
        most <= 2,
        "{most} sessions at once more than a lease after the cap was lowered to 2"
    );
    assert!(most > 0, "nothing was copied after the cap was lowered");
    exactly_once(&d, &uids, per_user);
    let shown = progress(&case);
    assert!(
        shown.contains("6 units: 6 done, 0 running, 0 queued, 0 failed"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("cap      {at}  0 of 2 connections")),
        "{shown}"
    );
    // A worker started with the plan file as it was leaves a cap set with set-cap alone; an
    // edit of the plan file's cap is picked up.
    case.ok(&["state", "set-cap", "plan.yaml", &at, "3"]);
    case.ok(&["worker", "plan.yaml"]);
    assert_eq!(sql(&pg, "SELECT connections FROM caps"), ["3"]);
    let plan = case.dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text.replace(&format!("\"{at}\": 2"), &format!("\"{at}\": 5")),
    )
    .unwrap();
    let (_, err) = case.ok(&["worker", "plan.yaml"]);
    assert!(
        err.contains(&format!("{at}: at most 5 connections (from the plan file)")),
        "{err}"
    );
    assert_eq!(sql(&pg, "SELECT connections FROM caps"), ["5"]);
}

/// The same cap without PostgreSQL: with the state in SQLite beside the plan file, the one apply
/// copies the items itself, its imports side by side, and the plan file's cap holds across them.
#[test]
fn on_a_sqlite_state_the_plan_file_cap_holds_across_the_parallel_imports_of_one_apply() {
    let uids = ["q1", "q2", "q3", "q4", "q5", "q6"];
    let per_user = 250;
    let d = mailboxes(&uids, per_user, 2_000);
    let pg = postgres::Postgres::start();
    let case = Case::wave(&d, &pg, &uids);
    let plan = case.dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap();
    let start = text.find("state:\n").unwrap();
    let end = text.find("items:\n").unwrap();
    std::fs::write(&plan, format!("{}{}", &text[..start], &text[end..])).unwrap();
    cap_connections(&case, &d, 2);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let most = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // `plan` lists every mailbox first, outside the caps: counted from the first
            // message copied on.
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && uids.iter().all(|u| d.count_files(&format!("new-{u}")) == 0)
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                most.fetch_max(d.imap_sessions(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        case.ok(&["apply", "plan.yaml", "--auto-approve"]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(
        case.dir.path().join(".mailplan").exists(),
        "the state is in SQLite"
    );
    let most = most.into_inner();
    assert!(most > 0, "no IMAP session was ever seen at the server");
    assert!(most <= 2, "{most} IMAP sessions at once under a cap of 2");
    exactly_once(&d, &uids, per_user);
}

#[test]
fn the_slots_of_a_worker_killed_with_sigkill_come_free_after_its_lease() {
    let d = Dovecot::start(&[(SOURCE, "x"), (TARGET, "y")]);
    let n = 3_000;
    for i in 0..n {
        seed(&d, if i % 3 == 0 { "Archive" } else { "INBOX" }, i, 4_000);
    }
    d.fix_owner();
    let pg = postgres::Postgres::start();
    let case = Case::new(&d, &pg);
    cap_connections(&case, &d, 2);
    case.ok(&["apply", "plan.yaml", "--auto-approve", "--no-items"]);
    worker_killed_after(&case, &d, TARGET, 300, &["--lease", "3"]);
    let at = endpoint(&d);
    let held = progress(&case);
    assert!(
        held.contains(&format!("cap      {at}  2 of 2 connections in use")),
        "{held}"
    );

    // The dead worker's slots end with its unit's lease: the next worker takes the unit over
    // and finds the room free.
    let out = case
        .cmd()
        .args(["worker", "plan.yaml", "--lease", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let copied = copies(&d);
    assert_eq!(copied.len(), n, "every message arrived");
    assert!(copied.values().all(|&c| c == 1), "a message arrived twice");
    let done = progress(&case);
    assert!(done.contains("1 units: 1 done"), "{done}");
    assert!(
        done.contains(&format!("cap      {at}  0 of 2 connections in use")),
        "{done}"
    );
}
