//! Nobody is left out silently. A person whose mailbox cannot be opened (it does not exist, the
//! admin password is wrong, the server's port is closed) makes `plan` print the whole plan and
//! exit 1, and `apply` apply everything that does not depend on that person's mail, name the
//! person with the reason and exit 1. A secret the plan file names that cannot be read stops
//! `plan` and `apply` before anything connects or is written: one error, at its place in the
//! plan file, naming the variable once.

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;

use std::net::TcpListener;
use std::path::Path;

use assert_cmd::Command;
use dovecot::Dovecot;
use mailplan::items::mail::MessageMeta;
use mailplan::items::mail::maildir::Maildir;

/// Three persons of a Domino source, none of them at the destination (scenario 1 each).
const SOURCE: &str = "version: 1

dn: CN=Ann Archer,OU=Sales,O=Acme
objectClass: dominoPerson
cn: Ann Archer
uid: aarcher
mail: ann.archer@acme.com

dn: CN=Bob Baker,OU=Sales,O=Acme
objectClass: dominoPerson
cn: Bob Baker
uid: bbaker
mail: bob.baker@acme.com

dn: CN=Cid Cole,OU=Sales,O=Acme
objectClass: dominoPerson
cn: Cid Cole
uid: ccole
mail: cid.cole@acme.com
";

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A wave copying each person's mail from the IMAP server at `url` (logged in as `admin`
    /// with `password`, a secret as the plan file writes it) into a Maildir folder.
    fn new(url: &str, password: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("source.ldif"), SOURCE).unwrap();
        std::fs::copy(
            common::root().join("tests/fixtures/scenario1_new/destination.ldif"),
            dir.path().join("destination.ldif"),
        )
        .unwrap();
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
  domains: [acme.com]
  exchange_org: Acme
items:
  mail:
    source:
      imap:
        url: "{url}"
        tls: none
        user: "{{uid}}"
        login: admin
        password: {password}
        auth: master
    destination:
      maildir: "out/{{uid}}"
"#
        );
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Case { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    /// Runs mailplan here; its exit code, stdout and stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::cargo_bin("mailplan")
            .unwrap()
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("MAILPLAN_TEST_NEVER_SET")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn destination(&self) -> String {
        std::fs::read_to_string(self.path("destination.ldif")).unwrap()
    }
}

/// Puts one message into a user's inbox on the server's disk.
fn seed(d: &Dovecot, user: &str) {
    let md = Maildir::new(d.maildir(user));
    md.ensure_folder("INBOX").unwrap();
    let meta = MessageMeta {
        key: String::new(),
        identity: String::new(),
        size: 0,
        flags: Vec::new(),
        internal_date: 1_700_000_000,
    };
    let data = format!("Message-ID: <{user}@example.test>\r\nSubject: hello {user}\r\n\r\nhi\r\n");
    md.append("INBOX", &meta, data.as_bytes()).unwrap();
}

fn file_secret(path: &Path) -> String {
    format!("{{ file: \"{}\" }}", path.display())
}

#[test]
fn a_mailbox_that_cannot_be_opened_fails_plan_and_apply_after_the_rest_is_done() {
    // Ann and Bob have mailboxes on the source server; Cid's does not exist there.
    let d = Dovecot::start(&[("aarcher", "x"), ("bbaker", "x")]);
    seed(&d, "aarcher");
    seed(&d, "bbaker");
    d.fix_owner();
    let case = Case::new(&d.url(), &file_secret(&d.admin_password_file()));

    // The whole plan is printed, then plan exits 1.
    let (code, out, err) = case.run(&["plan", "plan.yaml"]);
    assert_eq!(code, Some(1), "{out}{err}");
    for name in ["Ann Archer", "Bob Baker", "Cid Cole"] {
        assert!(out.contains(&format!("# {name} — scenario 1")), "{out}");
    }
    assert_eq!(
        out.matches("<- import mail: 1 new message").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("error: Cid Cole: mail: cannot take the inventory, nothing planned"),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("Not migrated: 1 person (1 error)."),
        "{out}"
    );
    assert!(
        err.contains("error: 1 person could not be planned, in whole or in part"),
        "{err}"
    );
    // --detailed-exitcode does not hide it behind "changes present".
    let (code, _, _) = case.run(&["plan", "plan.yaml", "--detailed-exitcode"]);
    assert_eq!(code, Some(1));
    let (code, json, _) = case.run(&["plan", "plan.yaml", "--json"]);
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["summary"]["not_migrated"]["error"], 1, "{json}");

    // Apply does everything else (Cid's mailbox too: nothing of it depends on his mail), names
    // Cid and why, and exits 1.
    let (code, _, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("Apply complete"), "{err}");
    assert!(
        err.contains("Apply finished with errors. 5 applied, 0 failed"),
        "{err}"
    );
    assert!(
        err.contains("not migrated (error): Cid Cole (CN=Cid Cole,OU=Sales,O=Acme): mail: cannot take the inventory"),
        "{err}"
    );
    assert!(err.contains("Not migrated: 1 person (1 error)."), "{err}");
    let dest = case.destination();
    for cn in ["Ann Archer", "Bob Baker", "Cid Cole"] {
        assert!(
            dest.contains(&format!("dn: CN={cn},OU=Migrated,DC=acme,DC=test")),
            "{dest}"
        );
    }
    for uid in ["aarcher", "bbaker"] {
        let copied = Maildir::new(case.path(&format!("out/{uid}")))
            .list()
            .unwrap();
        assert_eq!(copied[0].messages.len(), 1, "{uid}: {copied:?}");
    }
    assert!(!case.path("out/ccole").exists());

    // The rerun has nothing to change, and still says Cid is missing.
    let (code, out, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("No changes."), "{out}");
    assert!(
        !out.contains("the destination matches the plan file"),
        "{out}"
    );
    assert!(err.contains("not migrated (error): Cid Cole"), "{err}");
}

#[test]
fn a_wrong_admin_password_leaves_everyone_out_loudly() {
    let d = Dovecot::start(&[("aarcher", "x"), ("bbaker", "x"), ("ccole", "x")]);
    for u in ["aarcher", "bbaker", "ccole"] {
        seed(&d, u);
    }
    d.fix_owner();
    let wrong = d.dir.path().join("wrong.pass");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let case = Case::new(&d.url(), &file_secret(&wrong));
    let (code, out, err) = case.run(&["plan", "plan.yaml"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(
        out.matches("mail: cannot take the inventory, nothing planned")
            .count(),
        3,
        "{out}"
    );
    assert!(out.contains("Not migrated: 3 persons (3 errors)."), "{out}");
    // The password is never shown.
    assert!(!out.contains("not-the-password") && !err.contains("not-the-password"));
    let (code, _, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.matches("not migrated (error): ").count(), 3, "{err}");
}

#[test]
fn a_closed_port_leaves_everyone_out_loudly() {
    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("admin.pass");
    std::fs::write(&pass, "secret\n").unwrap();
    let case = Case::new(&format!("imap://127.0.0.1:{port}"), &file_secret(&pass));
    let (code, out, err) = case.run(&["plan", "plan.yaml"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out.matches("cannot connect").count(), 3, "{out}");
    assert!(out.contains("Not migrated: 3 persons (3 errors)."), "{out}");
    let (code, _, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Apply finished with errors."), "{err}");
}

#[test]
fn an_unset_secret_stops_everything_before_any_connection_said_once() {
    // Something that listens where the plan file points, to see that nobody connects.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let case = Case::new(
        &format!("imap://127.0.0.1:{port}"),
        "{ env: MAILPLAN_TEST_NEVER_SET }",
    );
    let text = std::fs::read_to_string(case.path("plan.yaml")).unwrap();
    let at = text.find("MAILPLAN_TEST_NEVER_SET").unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    let before = case.destination();

    for args in [
        &["plan", "plan.yaml"][..],
        &["apply", "plan.yaml", "--auto-approve"][..],
    ] {
        let (code, out, err) = case.run(args);
        assert_eq!(code, Some(1), "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: nothing is planned: {out}");
        // One error for the three persons, located, naming the variable and the key.
        assert_eq!(err.matches("is not set").count(), 1, "{err}");
        assert!(
            err.contains("environment variable `MAILPLAN_TEST_NEVER_SET` is not set"),
            "{err}"
        );
        assert!(err.contains("`items.mail.source.imap.password`"), "{err}");
        assert!(err.contains(&format!("plan.yaml:{line}:{column}")), "{err}");
        assert!(err.contains("nothing was connected"), "{err}");
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{args:?} connected to the server: {other:?}"),
        }
    }
    // Apply wrote nothing: no state, no destination change, no mail folder.
    assert!(!case.path(".mailplan").exists());
    assert!(!case.path("out").exists());
    assert_eq!(case.destination(), before);
}

#[test]
fn a_saved_plan_with_persons_in_error_is_applied_as_reviewed_and_still_fails() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("admin.pass");
    std::fs::write(&pass, "secret\n").unwrap();
    let case = Case::new(&format!("imap://127.0.0.1:{port}"), &file_secret(&pass));
    // Saved for review even so: the plan says who is left out, and why.
    let (code, _, err) = case.run(&["plan", "plan.yaml", "--out", "wave.json"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(case.path("wave.json").exists());
    let (code, shown, _) = case.run(&["show", "wave.json"]);
    assert_eq!(code, Some(0));
    assert!(
        shown.contains("Not migrated: 3 persons (3 errors)."),
        "{shown}"
    );
    // Applied exactly as reviewed: the mailboxes are made, the mail is not, and it says so.
    let (code, _, err) = case.run(&["apply", "wave.json"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Apply finished with errors. 3 applied, 0 failed"),
        "{err}"
    );
    assert_eq!(err.matches("not migrated (error): ").count(), 3, "{err}");
    let dest = case.destination();
    for cn in ["Ann Archer", "Bob Baker", "Cid Cole"] {
        assert!(
            dest.contains(&format!("dn: CN={cn},OU=Migrated,DC=acme,DC=test\n")),
            "{dest}"
        );
    }
}
