//! `mailplan apply` end to end, on copies of the embedded example: apply then rerun shows no
//! changes; saved plans apply as reviewed and are refused when their plan file changed; an
//! action made stale by a change at the destination fails alone while the rest applies; nothing
//! is written without confirmation.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

/// A copy of `examples/` in a temporary folder, so apply can change it.
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
}

/// Copies a folder with everything below it (the example's Maildir folders included).
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

fn no_changes(ex: &Example) {
    ex.cmd()
        .args(["plan", PLAN, "--detailed-exitcode"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes."));
}

#[test]
fn apply_then_rerun_shows_no_changes() {
    let ex = Example::new();
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success()
        // Henry Hill is ambiguous in the example: a decision, named, not an error.
        .stderr(predicate::str::contains(
            "Apply finished; some persons await a decision. 20 applied, 0 failed, 0 skipped",
        ))
        .stderr(predicate::str::contains(
            "not migrated (ambiguous): Henry Hill (CN=Henry Hill,OU=Support,O=Acme): 2 users hold",
        ))
        .stderr(predicate::str::contains(
            "Not migrated: 1 person (1 ambiguous).",
        ));
    no_changes(&ex);
    // The items arrived in the example's output folders, folder names mapped.
    let alice = ex.path("examples/out/mail/alice.archer@acme.com");
    for folder in [
        "cur",
        ".Sent Items/cur",
        ".Projects.2024/cur",
        ".Kunden &ANw-bersicht/cur",
    ] {
        assert!(
            std::fs::read_dir(alice.join(folder))
                .map(|d| d.count())
                .unwrap_or(0)
                > 0,
            "{folder}"
        );
    }
    assert!(
        ex.path("examples/out/calendars/alice.archer@acme.com/85257A1B0012ABCD-weekly-sales.ics")
            .is_file()
    );
    assert_eq!(
        std::fs::read_dir(ex.path("examples/out/contacts/alice.archer@acme.com"))
            .unwrap()
            .count(),
        2
    );
    // Applying again finds nothing to do and changes nothing.
    let before = ex.destination();
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
    assert_eq!(ex.destination(), before);
}

#[test]
fn apply_without_a_terminal_needs_auto_approve_and_writes_nothing() {
    let ex = Example::new();
    let before = ex.destination();
    ex.cmd()
        .args(["apply", PLAN])
        .write_stdin("yes\n")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("apply needs your confirmation")
                .and(predicate::str::contains("--auto-approve")),
        );
    assert_eq!(ex.destination(), before);
}

#[test]
fn a_saved_plan_applies_as_reviewed() {
    let ex = Example::new();
    ex.cmd()
        .args(["plan", PLAN, "--out", "wave1.json"])
        .assert()
        .success();
    ex.cmd().args(["apply", "wave1.json"]).assert().success();
    no_changes(&ex);
    // Applying the same saved plan again writes nothing: its earlier run did it all.
    let before = ex.destination();
    ex.cmd()
        .args(["apply", "wave1.json"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "some persons await a decision. 0 applied (20 more by an earlier run)",
        ));
    assert_eq!(ex.destination(), before);
}

#[test]
fn a_saved_plan_is_refused_when_its_plan_file_changed() {
    let ex = Example::new();
    ex.cmd()
        .args(["plan", PLAN, "--out", "wave1.json"])
        .assert()
        .success();
    let plan = ex.path(PLAN);
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str("# edited after review\n");
    std::fs::write(&plan, text).unwrap();
    let before = ex.destination();
    ex.cmd()
        .args(["apply", "wave1.json"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "changed since `wave1.json` was made from it",
        ));
    assert_eq!(ex.destination(), before);
}

#[test]
fn an_action_made_stale_fails_alone() {
    let ex = Example::new();
    ex.cmd()
        .args(["plan", PLAN, "--out", "wave1.json"])
        .assert()
        .success();
    // Someone edits Carol's contact after the review.
    let ldif = ex
        .destination()
        .replace("title: Marketing Lead\n", "title: Marketing Director\n");
    std::fs::write(ex.path("examples/data/ad.ldif"), ldif).unwrap();
    let out = ex.cmd().args(["apply", "wave1.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale:  move_memberships:CN=Carol Chen,OU=Contacts,DC=acme,DC=test"),
        "{err}"
    );
    assert!(err.contains("skipped  delete_contact:CN=Carol Chen,OU=Contacts,DC=acme,DC=test (because move_memberships"), "{err}");
    assert!(err.contains("17 applied, 1 failed, 2 skipped"), "{err}");
    // The contact is still there, everything independent of it was applied.
    let dest = ex.destination();
    assert!(dest.contains("dn: CN=Carol Chen,OU=Contacts,DC=acme,DC=test"));
    assert!(dest.contains("dn: CN=Alice Archer,OU=Migrated,DC=acme,DC=test"));
    assert!(!dest.contains("dn: CN=Dan Dorsey,OU=Contacts,DC=acme,DC=test"));
    // Planning again picks up where it stopped, from the directory as it is now.
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
    no_changes(&ex);
}

#[test]
fn runs_are_recorded_and_state_restore_brings_a_deleted_contact_back() {
    let ex = Example::new();
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
    ex.cmd()
        .args(["state", "list", PLAN])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "succeeded    20 applied, 0 failed, 0 skipped",
        ));
    ex.cmd()
        .args([
            "state",
            "backups",
            PLAN,
            "--dn",
            "cn=carol chen,ou=contacts,dc=acme,dc=test",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "(before delete_contact:CN=Carol Chen,OU=Contacts,DC=acme,DC=test)",
        ));
    assert!(
        !ex.destination()
            .contains("dn: CN=Carol Chen,OU=Contacts,DC=acme,DC=test")
    );
    ex.cmd()
        .args([
            "state",
            "restore",
            PLAN,
            "CN=Carol Chen,OU=Contacts,DC=acme,DC=test",
            "--auto-approve",
        ])
        .assert()
        .success()
        // The contact, and its membership the apply moved to her mailbox.
        .stderr(predicate::str::contains("2 applied, 0 failed"))
        // Her address went to the mailbox that replaced the contact: the restore says so.
        .stdout(predicate::str::contains(
            "address carol.chen@acme.com of this entry is now held by `CN=Carol Chen,OU=Migrated,DC=acme,DC=test`",
        ))
        .stdout(predicate::str::contains(
            "put the entry back into `CN=Marketing Team,OU=Groups,DC=acme,DC=test` as a member",
        ));
    let dest = ex.destination();
    assert!(
        dest.contains("dn: CN=Carol Chen,OU=Contacts,DC=acme,DC=test\n"),
        "{dest}"
    );
    assert!(dest.contains("title: Marketing Lead"));
    let group = dest
        .split("\n\n")
        .find(|e| e.contains("dn: CN=Marketing Team,OU=Groups,DC=acme,DC=test\n"))
        .unwrap();
    assert!(
        group.contains("member: CN=Carol Chen,OU=Contacts,DC=acme,DC=test"),
        "{group}"
    );
    // The next plan deletes the restored contact again, and says why.
    ex.cmd()
        .args(["plan", PLAN])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "contact CN=Carol Chen,OU=Contacts,DC=acme,DC=test was restored by `state restore` on ",
        ))
        .stdout(predicate::str::contains(
            "it will be deleted again unless the person is excluded",
        ))
        .stdout(predicate::str::contains(
            "  note:   delete_contact CN=Carol Chen,OU=Contacts,DC=acme,DC=test deletes a contact `state restore` put back on ",
        ));
    // Restoring what is already as backed up changes nothing.
    ex.cmd()
        .args([
            "state",
            "restore",
            PLAN,
            "CN=Carol Chen,OU=Contacts,DC=acme,DC=test",
            "--auto-approve",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("No changes."));
    ex.cmd()
        .args([
            "state",
            "restore",
            PLAN,
            "CN=Nobody,DC=acme,DC=test",
            "--auto-approve",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no backup of `CN=Nobody,DC=acme,DC=test`",
        ));
}

#[test]
fn a_second_apply_is_refused_while_one_holds_the_lock() {
    let ex = Example::new();
    let db = mailplan::state::StateDb::open(&ex.path("examples/plans/.mailplan")).unwrap();
    let guard = db.lock().unwrap();
    let before = ex.destination();
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "locked by process {}",
            std::process::id()
        )));
    assert_eq!(ex.destination(), before);
    drop(guard);
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
}

#[test]
fn the_state_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let ex = Example::new();
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
    let dir = ex.path("examples/plans/.mailplan");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(dir.join("state.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn a_saved_plan_finds_its_plan_file_from_wherever_it_is_applied() {
    let ex = Example::new();
    std::fs::create_dir_all(ex.path("waves")).unwrap();
    ex.cmd()
        .args(["plan", PLAN, "--out", "waves/wave1.json"])
        .assert()
        .success();
    // Recorded relative to the saved plan, so the pair can move together.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ex.path("waves/wave1.json")).unwrap())
            .unwrap();
    assert_eq!(saved["plan_file"], "../examples/plans/quickstart.yaml");
    // Applied from the saved plan's own folder: the plan file and its state are found beside
    // each other, and nothing is left in the folder apply ran in.
    let mut c = Command::cargo_bin("mailplan").unwrap();
    c.current_dir(ex.path("waves"))
        .env("NO_COLOR", "1")
        .args(["apply", "wave1.json"])
        .assert()
        .success()
        .stderr(predicate::str::contains("20 applied, 0 failed"));
    assert!(!ex.path("waves/.mailplan").exists());
    assert!(ex.path("examples/plans/.mailplan/state.db").exists());
    no_changes(&ex);
}

#[test]
fn a_targeted_apply_does_only_those_persons_and_says_so() {
    let ex = Example::new();
    let carol = "CN=Carol Chen,OU=Marketing,O=Acme";
    let plan = ex
        .cmd()
        .args(["plan", PLAN, "--target", carol])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{out}");
    // Said first, before anything else.
    assert!(
        out.starts_with("Warnings and ambiguities:\n  warning: targeting is in effect: only the person given with --target is planned (CN=Carol Chen,OU=Marketing,O=Acme)"),
        "{out}"
    );
    // Carol's whole scenario 3, her contact's group membership move included; nobody else.
    assert!(out.contains("# Carol Chen — scenario 3"), "{out}");
    assert!(out.contains("~ move_memberships"), "{out}");
    assert_eq!(out.matches("\n# ").count(), 1, "{out}");
    assert!(!out.contains("Sales Team"), "{out}");

    ex.cmd()
        .args(["apply", PLAN, "--auto-approve", "--target", carol])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Apply complete! 4 applied, 0 failed",
        ));
    let dest = ex.destination();
    assert!(
        dest.contains("dn: CN=Carol Chen,OU=Migrated,DC=acme,DC=test"),
        "{dest}"
    );
    assert!(!dest.contains("dn: CN=Alice Archer,OU=Migrated"), "{dest}");
    // The rest of the wave is still to do.
    ex.cmd()
        .args(["plan", PLAN, "--detailed-exitcode"])
        .assert()
        .code(2)
        .stdout(
            predicate::str::contains("# Alice Archer")
                .and(predicate::str::contains("# Carol Chen").not()),
        );

    // A target that is no person of the wave, or a saved plan, is refused.
    ex.cmd()
        .args(["plan", PLAN, "--target", "CN=Nobody,O=Acme"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--target `CN=Nobody,O=Acme` is not a person of this wave",
        ));
    ex.cmd()
        .args(["plan", PLAN, "--out", "wave.json"])
        .assert()
        .success();
    ex.cmd()
        .args(["apply", "wave.json", "--target", carol])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--target cannot narrow a saved plan",
        ));
}

/// Sets `safety: { max_deletes: N }` at the end of the example's plan file.
fn limit_deletes(ex: &Example, n: u64) {
    let plan = ex.path(PLAN);
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str(&format!("safety:\n  max_deletes: {n}\n"));
    std::fs::write(&plan, text).unwrap();
}

#[test]
fn an_apply_that_deletes_more_than_the_plan_file_allows_is_refused_before_any_write() {
    let ex = Example::new();
    // The default limit, shown against the example's two deletions.
    ex.cmd()
        .args(["plan", PLAN])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Deletions: 2 of at most 500 (safety.max_deletes).",
        ));
    limit_deletes(&ex, 1);
    ex.cmd()
        .args(["plan", PLAN, "--out", "wave1.json"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Deletions: 2, more than the 1 that safety.max_deletes allows: apply refuses this plan.",
        ));
    let before = ex.destination();
    for input in [PLAN, "wave1.json"] {
        let out = ex
            .cmd()
            .args(["apply", input, "--auto-approve"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(
                "this plan deletes 2 destination objects, more than the 1 that `safety.max_deletes`"
            ),
            "{err}"
        );
        // The plan file's line is shown, with the limit marked.
        assert!(err.contains("max_deletes: 1"), "{err}");
        assert!(err.contains("the limit"), "{err}");
        assert_eq!(ex.destination(), before);
    }
    ex.cmd()
        .args(["state", "list", PLAN])
        .assert()
        .success()
        .stdout("No runs yet.\n");

    // At the limit, it applies.
    let plan = ex.path(PLAN);
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("max_deletes: 1", "max_deletes: 2")).unwrap();
    ex.cmd()
        .args(["plan", PLAN])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Deletions: 2 of at most 2 (safety.max_deletes).",
        ));
    ex.cmd()
        .args(["apply", PLAN, "--auto-approve"])
        .assert()
        .success();
    no_changes(&ex);
}
