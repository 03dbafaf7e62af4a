//! `mailplan state undo` end to end, on copies of the embedded example (LDIF destination): an
//! apply undone leaves the destination as it was; an entry changed since the run is refused as
//! stale, named, while the rest is undone; nothing is written without confirmation; an unknown
//! run and a run already undone are refused.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use common::*;

struct Example {
    dir: tempfile::TempDir,
}

impl Example {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["plans", "data"] {
            copy_tree(
                &root().join("examples").join(sub),
                &dir.path().join("examples").join(sub),
            );
        }
        Example { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("mailplan").unwrap();
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }
    fn destination(&self) -> String {
        std::fs::read_to_string(self.path("examples/data/ad.ldif")).unwrap()
    }
    fn applied(self) -> Self {
        self.cmd()
            .args(["apply", PLAN, "--auto-approve"])
            .assert()
            .success();
        self
    }
    /// `state undo RUN --auto-approve`: exit code, stdout, stderr.
    fn undo(&self, run: &str) -> (Option<i32>, String, String) {
        let out = self
            .cmd()
            .args(["state", "undo", PLAN, run, "--auto-approve"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        let target = to.join(f.file_name().unwrap());
        if f.is_dir() {
            copy_tree(&f, &target);
        } else {
            std::fs::copy(&f, &target).unwrap();
        }
    }
}

const PLAN: &str = "examples/plans/quickstart.yaml";

/// The entries of an LDIF text, by DN.
fn entries(text: &str) -> std::collections::BTreeMap<String, mailplan::directory::Entry> {
    mailplan::directory::ldif::parse_entries(text, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.dn.to_string().to_lowercase(), e))
        .collect()
}

#[test]
fn undo_puts_the_destination_back_as_it_was_before_the_apply() {
    let ex = Example::new();
    let original = ex.destination();
    let ex = ex.applied();
    assert_ne!(ex.destination(), original);
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(0), "{out}\n{err}");
    // The item imports are not undone, and the plan says so.
    assert!(
        out.contains("imports of run 1 are not undone: messages stay at the destination"),
        "{out}"
    );
    assert_eq!(entries(&ex.destination()), entries(&original));
    // Not byte for byte: the LDIF writer rewrites the whole file in its own layout (the apply
    // already did), without the original's comments.
    // The undo is a run of its own.
    ex.cmd()
        .args(["state", "list", PLAN])
        .assert()
        .success()
        .stdout(predicates::str::contains("run    2"));
    // Undone once, refused the second time.
    let (code, _, err) = ex.undo("1");
    assert_eq!(code, Some(1));
    assert!(err.contains("run 1 was already undone by run 2"), "{err}");
    assert_eq!(entries(&ex.destination()), entries(&original));
}

#[test]
fn a_created_entry_changed_since_is_stale_and_the_rest_is_undone() {
    let ex = Example::new();
    let original = ex.destination();
    let ex = ex.applied();
    // Someone edits a mailbox the apply created.
    let alice = "dn: CN=Alice Archer,OU=Migrated,DC=acme,DC=test\n";
    let edited = ex
        .destination()
        .replace(alice, &format!("{alice}description: edited by hand\n"));
    std::fs::write(ex.path("examples/data/ad.ldif"), &edited).unwrap();
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("stale:  delete_entry:CN=Alice Archer,OU=Migrated,DC=acme,DC=test"),
        "{err}"
    );
    // Everything else is back; Alice's mailbox stays as edited.
    let now = entries(&ex.destination());
    let mut want = entries(&original);
    let key = "cn=alice archer,ou=migrated,dc=acme,dc=test".to_string();
    assert_eq!(now.get(&key), entries(&edited).get(&key));
    let mut now = now;
    now.remove(&key);
    want.remove(&key);
    let differ: Vec<&String> = now
        .keys()
        .chain(want.keys())
        .filter(|k| now.get(*k) != want.get(*k))
        .collect();
    assert!(differ.is_empty(), "{differ:?}");
    // A run that did not undo everything does not count as undone: it can be undone again
    // once the entry is back as the run left it.
    let back = ex
        .destination()
        .replace("description: edited by hand\n", "");
    std::fs::write(ex.path("examples/data/ad.ldif"), back).unwrap();
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(entries(&ex.destination()), entries(&original));
}

#[test]
fn undo_without_a_terminal_needs_auto_approve_and_writes_nothing() {
    let ex = Example::new().applied();
    let before = ex.destination();
    let out = ex
        .cmd()
        .args(["state", "undo", PLAN, "1"])
        .write_stdin("yes\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--auto-approve"), "{err}");
    assert_eq!(ex.destination(), before);
}

#[test]
fn an_unknown_run_is_refused() {
    let ex = Example::new().applied();
    let before = ex.destination();
    let (code, _, err) = ex.undo("9");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("there is no run 9 in the state database"),
        "{err}"
    );
    assert!(err.contains("state list"), "{err}");
    assert_eq!(ex.destination(), before);
}

#[test]
fn an_entry_whose_after_image_was_lost_is_refused_as_stale_unless_it_is_as_before() {
    let ex = Example::new();
    let original = ex.destination();
    let ex = ex.applied();
    // As if the process had been killed after writing Alice's mailbox and Carol's contact
    // delete, before recording what they left.
    let db = rusqlite::Connection::open(ex.path("examples/plans/.mailplan/state.db")).unwrap();
    let gone = db
        .execute(
            "DELETE FROM after_images WHERE dn IN \
             ('CN=Alice Archer,OU=Migrated,DC=acme,DC=test', \
              'CN=Carol Chen,OU=Contacts,DC=acme,DC=test')",
            [],
        )
        .unwrap();
    assert!(gone >= 2, "{gone}");
    drop(db);
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(1), "{out}\n{err}");
    // Both are named as refused; nothing touches them.
    for dn in [
        "CN=Alice Archer,OU=Migrated,DC=acme,DC=test",
        "CN=Carol Chen,OU=Contacts,DC=acme,DC=test",
    ] {
        assert!(
            out.contains(&format!("{dn}\n")) || err.contains(dn),
            "{dn}\n{out}\n{err}"
        );
    }
    assert!(
        out.contains("stale: run 1 left no record of what it wrote here"),
        "{out}"
    );
    let now = entries(&ex.destination());
    assert!(now.contains_key("cn=alice archer,ou=migrated,dc=acme,dc=test"));
    assert!(!now.contains_key("cn=carol chen,ou=contacts,dc=acme,dc=test"));
    // The rest is undone: the other created mailbox is gone.
    assert!(!now.contains_key("cn=gina gómez,ou=migrated,dc=acme,dc=test"));
    assert!(entries(&original).contains_key("cn=dan dorsey,ou=contacts,dc=acme,dc=test"));
    assert!(now.contains_key("cn=dan dorsey,ou=contacts,dc=acme,dc=test"));
}

#[test]
fn a_later_run_that_changed_the_same_entries_makes_their_undo_stale() {
    let ex = Example::new().applied();
    // Run 2 puts Carol's contact back and into the Marketing Team group.
    ex.cmd()
        .args([
            "state",
            "restore",
            PLAN,
            "CN=Carol Chen,OU=Contacts,DC=acme,DC=test",
            "--auto-approve",
        ])
        .assert()
        .success();
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(1), "{out}\n{err}");
    // The contact is back as before run 1 already: nothing to do for it.
    assert!(
        !err.contains("restore_entry:CN=Carol Chen,OU=Contacts,DC=acme,DC=test"),
        "{err}"
    );
    // The group no longer holds what run 1 left (run 2 added the contact back): stale, and
    // the mailbox it names is not deleted.
    assert!(
        err.contains("stale:  restore_entry:CN=Marketing Team,OU=Groups,DC=acme,DC=test: `member` of `CN=Marketing Team,OU=Groups,DC=acme,DC=test` changed"),
        "{err}"
    );
    assert!(
        err.contains("skipped  delete_entry:CN=Carol Chen,OU=Migrated,DC=acme,DC=test (because restore_entry:CN=Marketing Team,OU=Groups,DC=acme,DC=test failed)"),
        "{err}"
    );
    assert!(entries(&ex.destination()).contains_key("cn=carol chen,ou=migrated,dc=acme,dc=test"));
}

#[test]
fn undoing_the_undo_brings_the_run_back_and_each_undo_is_taken_once() {
    let ex = Example::new().applied();
    let applied = ex.destination();
    let (code, out, err) = ex.undo("1");
    assert_eq!(code, Some(0), "{out}\n{err}");
    // Run 2 undid run 1; undoing run 2 puts back what run 1 did.
    let (code, out, err) = ex.undo("2");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(entries(&ex.destination()), entries(&applied));
    let (code, _, err) = ex.undo("2");
    assert_eq!(code, Some(1));
    assert!(err.contains("run 2 was already undone by run 3"), "{err}");
}
