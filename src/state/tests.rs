use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::*;

/// Above the kernel's PID_MAX_LIMIT (2^22), so no process on any Linux host can have it.
const IMPOSSIBLE_PID: u32 = 4_194_305;

#[path = "../../tests/servers/postgres.rs"]
mod pg_server;

/// Runs `test` against each backend: a SQLite state in a temporary folder, then a PostgreSQL
/// state in a throwaway cluster. What it asserts holds for both.
fn both(test: impl Fn(&Location)) {
    let tmp = temp();
    test(&Location::Dir(tmp.path().to_owned()));
    let cluster = pg_server::Postgres::start();
    test(&postgres_at(&cluster, "test"));
}

/// The state in the `postgres` database of `cluster`, its lock scope `scope`.
fn postgres_at(cluster: &pg_server::Postgres, scope: &str) -> Location {
    let spec = crate::spec::PostgresState {
        url: cluster.url("postgres"),
        password: None,
        ca_file: None,
        insecure: false,
    };
    let target = postgres::Target::new(
        &spec,
        Some(pg_server::PG_PASSWORD.to_owned()),
        scope.to_owned(),
    )
    .unwrap();
    Location::Postgres(Arc::new(target))
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)) // the effective uid
        .is_some_and(|euid| euid == "0")
}

fn action(run: RunId, id: &str, status: ActionStatus) -> ActionRecord {
    ActionRecord {
        run,
        action_id: id.to_owned(),
        kind: "update".to_owned(),
        target: format!("cn={id},dc=example,dc=com"),
        status,
        error: (status == ActionStatus::Failed).then(|| "server said no".to_owned()),
        started_at: "2026-11-21T06:30:00Z".to_owned(),
        ended_at: "2026-11-21T06:30:01Z".to_owned(),
        duration_ms: 1042,
    }
}

fn set_holder(db: &StateDb, pid: u32, host: &str) {
    db.sqlite()
        .conn
        .execute(
            "INSERT OR REPLACE INTO lock (id, pid, host, started_at, token) \
             VALUES (1, ?1, ?2, '2026-01-02T03:04:05Z', 'planted')",
            params![pid, host],
        )
        .unwrap();
}

#[test]
fn open_creates_private_dir_and_file() {
    let tmp = temp();
    let dir = tmp.path().join("nested").join("state");
    let db = StateDb::open(&dir).unwrap();
    assert_eq!(db.path(), dir.join("state.db"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(db.path()), 0o600);
    // SQLite gives its side files the mode of the database file.
    db.begin_run("plan.yaml", "fp").unwrap();
    let wal = dir.join("state.db-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn reopening_keeps_data_and_schema() {
    let tmp = temp();
    let run = {
        let db = StateDb::open(tmp.path()).unwrap();
        let run = db.begin_run("plan.yaml", "fp1").unwrap();
        db.backup(run, "a1", "cn=X", "dn: cn=X\n").unwrap();
        run
    };
    let db = StateDb::open(tmp.path()).unwrap();
    assert_eq!(db.run(run).unwrap().unwrap().plan_fingerprint, "fp1");
    assert_eq!(db.backups(None).unwrap().len(), 1);
    let version: i64 = db
        .sqlite()
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
    let journal: String = db
        .sqlite()
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn a_file_that_is_not_sqlite_is_corrupt() {
    let tmp = temp();
    let file = tmp.path().join("state.db");
    std::fs::write(&file, "this is a plan, not a database\n".repeat(100)).unwrap();
    let err = StateDb::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(
        msg.contains("not a usable mailplan state database"),
        "{msg}"
    );
    assert!(msg.contains("the file is not a SQLite database"), "{msg}");
    // Left as it was: it may be something the user needs.
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("this is a plan")
    );
}

#[test]
fn a_foreign_sqlite_database_is_corrupt() {
    let tmp = temp();
    let file = tmp.path().join("state.db");
    Connection::open(&file)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = StateDb::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not one that mailplan wrote"),
        "{err}"
    );
}

#[test]
fn a_newer_schema_is_corrupt() {
    let tmp = temp();
    drop(StateDb::open(tmp.path()).unwrap());
    let file = tmp.path().join("state.db");
    Connection::open(&file)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = StateDb::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn an_unwritable_place_is_an_open_error_naming_the_path() {
    let tmp = temp();
    let (dir, named) = if running_as_root() {
        // Permission bits do not stop root; a path under a regular file fails for everyone.
        let file = tmp.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let dir = file.join("sub");
        (dir.clone(), dir)
    } else {
        let dir = tmp.path().join("readonly");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        (dir.clone(), dir.join("state.db"))
    };
    let err = StateDb::open(&dir).unwrap_err();
    assert!(matches!(err, StateError::Open { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&named.display().to_string()), "{msg}");
    // Let tempfile clean up.
    if !running_as_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

#[test]
fn runs_and_actions_round_trip_with_counts() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let r1 = db.begin_run("plans/a.yaml", "fp-a").unwrap();
        let r2 = db.begin_run("plans/b.yaml", "fp-b").unwrap();
        let recs = [
            action(r1, "a1", ActionStatus::Applied),
            action(r1, "a2", ActionStatus::Failed),
            action(r1, "a3", ActionStatus::Skipped),
            action(r1, "a4", ActionStatus::Stale),
            action(r1, "a0", ActionStatus::Applied),
        ];
        for r in &recs {
            db.record_action(r).unwrap();
        }
        db.record_action(&action(r2, "b1", ActionStatus::Applied))
            .unwrap();

        let before = db.run(r1).unwrap().unwrap();
        assert_eq!(before.outcome, RunOutcome::Running);
        assert_eq!(before.ended_at, None);
        assert_eq!((before.applied, before.failed, before.skipped), (0, 0, 0));

        db.finish_run(r1, RunOutcome::Failed).unwrap();
        let run = db.run(r1).unwrap().unwrap();
        assert_eq!(run.outcome, RunOutcome::Failed);
        assert_eq!(run.plan_file, "plans/a.yaml");
        assert!(run.ended_at.is_some());
        assert_eq!((run.applied, run.failed, run.skipped), (2, 2, 1));

        // In the order recorded, not sorted by id.
        assert_eq!(db.run_actions(r1).unwrap(), recs);
        assert_eq!(db.run_actions(r2).unwrap().len(), 1);

        let runs = db.runs().unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r2, r1]);
        assert_eq!(db.run(9999).unwrap(), None);
        assert!(db.finish_run(9999, RunOutcome::Succeeded).is_err());
        // An action must belong to a run.
        assert!(
            db.record_action(&action(9999, "x", ActionStatus::Applied))
                .is_err()
        );
    });
}

#[test]
fn backups_newest_first_and_dn_case_insensitive() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let b1 = db
            .backup(run, "a1", "CN=Jürgen Müller,O=Acme", "dn: v1\n")
            .unwrap();
        let other = db
            .backup(run, "a2", "cn=Other,o=Acme", "dn: other\n")
            .unwrap();
        let b2 = db
            .backup(run, "a3", "cn=jürgen müller,o=acme", "dn: v2\n")
            .unwrap();
        assert!(b1 < other && other < b2);

        let all = db.backups(None).unwrap();
        assert_eq!(
            all.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![b2, other, b1]
        );
        let mine = db.backups(Some("cn=JÜRGEN MÜLLER,o=ACME")).unwrap();
        assert_eq!(mine.iter().map(|b| b.id).collect::<Vec<_>>(), vec![b2, b1]);
        // The DN is kept as it was written.
        assert_eq!(mine[1].dn, "CN=Jürgen Müller,O=Acme");
        assert_eq!(mine[1].ldif, "dn: v1\n");
        assert_eq!(mine[1].action_id, "a1");
        assert_eq!(mine[1].run, run);

        let latest = db
            .latest_backup("CN=JÜRGEN MÜLLER,O=ACME")
            .unwrap()
            .unwrap();
        assert_eq!(latest.id, b2);
        assert_eq!(latest.ldif, "dn: v2\n");
        assert_eq!(db.latest_backup("cn=nobody").unwrap(), None);
        assert!(db.backups(Some("cn=nobody")).unwrap().is_empty());
    });
}

#[test]
fn after_images_and_undos_round_trip() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let other = db.begin_run("plan.yaml", "fp").unwrap();
        db.after_image(run, "a1", "CN=Ann,O=Acme", Some("dn: CN=Ann,O=Acme\n"))
            .unwrap();
        db.after_image(other, "b1", "CN=Bob,O=Acme", None).unwrap();
        db.after_image(run, "a2", "CN=Cy,O=Acme", None).unwrap();
        let mine = db.after_images(run).unwrap();
        assert_eq!(
            mine,
            vec![
                AfterImage {
                    run,
                    action_id: "a1".into(),
                    dn: "CN=Ann,O=Acme".into(),
                    ldif: Some("dn: CN=Ann,O=Acme\n".into()),
                },
                AfterImage {
                    run,
                    action_id: "a2".into(),
                    dn: "CN=Cy,O=Acme".into(),
                    ldif: None,
                },
            ]
        );
        assert!(db.undone_by(run).unwrap().is_empty());
        let undo = db.begin_run("plan.yaml", "fp").unwrap();
        db.record_undo(undo, run).unwrap();
        assert_eq!(db.undone_by(run).unwrap(), vec![undo]);
        assert!(db.undone_by(other).unwrap().is_empty());
        // One run undoes one run.
        assert!(db.record_undo(undo, other).is_err());
    });
}

#[test]
fn second_lock_while_held_names_the_holder() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let _guard = db.lock().unwrap();
        let holder = db.lock_holder().unwrap().unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.host, host::hostname());

        let other = StateDb::open_at(at).unwrap();
        let err = other.lock().unwrap_err();
        let StateError::Locked { holder: h, .. } = &err else {
            panic!("expected Locked, got {err:?}");
        };
        assert_eq!(h, &holder);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&holder.host), "{msg}");
        assert!(msg.contains(&holder.started_at), "{msg}");
        assert!(msg.contains("wait for it to finish"), "{msg}");
    });
}

#[test]
fn a_stale_lock_is_taken_over_and_its_run_marked_interrupted() {
    let tmp = temp();
    let db = StateDb::open(tmp.path()).unwrap();
    let old_run = db.begin_run("plan.yaml", "fp").unwrap();
    db.record_action(&action(old_run, "a1", ActionStatus::Applied))
        .unwrap();
    set_holder(&db, IMPOSSIBLE_PID, &host::hostname());

    let guard = db.lock().unwrap();
    let holder = db.lock_holder().unwrap().unwrap();
    assert_eq!(holder.pid, std::process::id());
    let old = db.run(old_run).unwrap().unwrap();
    assert_eq!(old.outcome, RunOutcome::Interrupted);
    assert!(old.ended_at.is_some());
    assert_eq!(old.applied, 1);
    guard.release().unwrap();
    assert_eq!(db.lock_holder().unwrap(), None);
}

#[test]
fn a_lock_from_another_host_is_never_taken_over() {
    let tmp = temp();
    let db = StateDb::open(tmp.path()).unwrap();
    let other_host = format!("{}-elsewhere", host::hostname());
    // A pid that is dead here means nothing about the other host.
    set_holder(&db, IMPOSSIBLE_PID, &other_host);
    let err = db.lock().unwrap_err();
    let StateError::LockedElsewhere { holder, .. } = &err else {
        panic!("expected LockedElsewhere, got {err:?}");
    };
    assert_eq!(holder.host, other_host);
    let msg = err.to_string();
    assert!(msg.contains(&other_host), "{msg}");
    assert!(msg.contains("never taken over automatically"), "{msg}");
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains("mailplan state unlock"), "{help}");
    // Still theirs.
    assert_eq!(db.lock_holder().unwrap().unwrap().host, other_host);
}

#[test]
fn dropping_the_guard_releases_the_lock() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        {
            let _guard = db.lock().unwrap();
            assert!(db.lock_holder().unwrap().is_some());
        }
        assert_eq!(db.lock_holder().unwrap(), None);
        // And it can be taken again.
        db.lock().unwrap().release().unwrap();
    });
}

#[test]
fn force_unlock_removes_any_lock_and_an_old_guard_leaves_the_new_lock_alone() {
    let tmp = temp();
    let db = StateDb::open(tmp.path()).unwrap();
    set_holder(&db, 1, "some-other-host");
    db.force_unlock().unwrap();
    assert_eq!(db.lock_holder().unwrap(), None);

    let old_guard = db.lock().unwrap();
    db.force_unlock().unwrap();
    let new_guard = db.lock().unwrap();
    drop(old_guard);
    assert!(
        db.lock_holder().unwrap().is_some(),
        "the new lock must survive"
    );
    drop(new_guard);
    assert_eq!(db.lock_holder().unwrap(), None);
    // Unlocking an unlocked state is fine.
    db.force_unlock().unwrap();
}

#[test]
fn racing_lockers_exactly_one_wins() {
    both(|at| {
        drop(StateDb::open_at(at).unwrap());
        const N: usize = 8;
        let barrier = Arc::new(Barrier::new(N));
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let at = at.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let db = StateDb::open_at(&at).unwrap();
                    barrier.wait();
                    db.lock()
                })
            })
            .collect();
        // Keep every guard alive until all have tried, so a loser cannot win after a release.
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1);
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, StateError::Locked { .. }), "{e:?}");
            }
        }
    });
}

#[test]
fn ledger_records_each_item_once() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let item = LedgerItem {
            run,
            mailbox: "jane@example.com".to_owned(),
            kind: "mail".to_owned(),
            folder: Some("INBOX".to_owned()),
            identity: "<abc@example.com>".to_owned(),
            size: Some(2048),
        };
        assert!(db.ledger_record(&item).unwrap());
        assert!(!db.ledger_record(&item).unwrap());
        // Another folder does not make it another item.
        let moved = LedgerItem {
            folder: Some("Archive".to_owned()),
            ..item.clone()
        };
        assert!(!db.ledger_record(&moved).unwrap());
        // Same identity, other kind or mailbox: other items.
        let event = LedgerItem {
            kind: "event".to_owned(),
            folder: None,
            size: None,
            ..item.clone()
        };
        assert!(db.ledger_record(&event).unwrap());
        let other = LedgerItem {
            mailbox: "joe@example.com".to_owned(),
            ..item.clone()
        };
        assert!(db.ledger_record(&other).unwrap());

        assert!(
            db.ledger_contains("jane@example.com", "mail", "<abc@example.com>")
                .unwrap()
        );
        assert!(
            !db.ledger_contains("jane@example.com", "contact", "<abc@example.com>")
                .unwrap()
        );
        assert_eq!(db.ledger_count(None).unwrap(), 3);
        assert_eq!(db.ledger_count(Some("jane@example.com")).unwrap(), 2);
        assert_eq!(db.ledger_count(Some("nobody@example.com")).unwrap(), 0);

        // Survives reopening.
        drop(db);
        assert_eq!(StateDb::open_at(at).unwrap().ledger_count(None).unwrap(), 3);
    });
}

#[test]
fn applied_actions_are_those_applied_in_runs_of_the_same_plan() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let r1 = db.begin_run("plan.yaml", "fp-1").unwrap();
        db.record_action(&action(r1, "a1", ActionStatus::Applied))
            .unwrap();
        db.record_action(&action(r1, "a2", ActionStatus::Failed))
            .unwrap();
        db.record_action(&action(r1, "a3", ActionStatus::Skipped))
            .unwrap();
        db.finish_run(r1, RunOutcome::Failed).unwrap();
        let other = db.begin_run("plan.yaml", "fp-2").unwrap();
        db.record_action(&action(other, "a3", ActionStatus::Applied))
            .unwrap();

        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(db.applied_actions("fp-1").unwrap(), set(&["a1"]));
        assert_eq!(db.applied_actions("fp-3").unwrap(), set(&[]));

        // Failed once, applied on the resumed run; applied twice counts once.
        let r2 = db.begin_run("plan.yaml", "fp-1").unwrap();
        db.record_action(&action(r2, "a2", ActionStatus::Applied))
            .unwrap();
        db.record_action(&action(r2, "a1", ActionStatus::Applied))
            .unwrap();
        assert_eq!(db.applied_actions("fp-1").unwrap(), set(&["a1", "a2"]));
    });
}

#[test]
fn errors_carry_diagnostic_codes() {
    let tmp = temp();
    std::fs::write(
        tmp.path().join("state.db"),
        "not sqlite at all, sorry".repeat(50),
    )
    .unwrap();
    let err = StateDb::open(tmp.path()).unwrap_err();
    let code = miette::Diagnostic::code(&err).unwrap().to_string();
    assert_eq!(code, "mailplan::state::corrupt");
}

#[test]
fn ledger_remembers_the_version_of_copied_items() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let event = LedgerItem {
            run,
            mailbox: "jane@example.com".to_owned(),
            kind: "event".to_owned(),
            folder: None,
            identity: "uid-1".to_owned(),
            size: Some(10),
        };
        assert!(db.ledger_record(&event).unwrap());
        // A row recorded without a version has an unknown one.
        let versions = db.ledger_versions("jane@example.com", "event").unwrap();
        assert_eq!(versions["uid-1"], super::ItemVersion::default());
        let v = super::ItemVersion {
            digest: Some("d1".to_owned()),
            etag: Some("\"e1\"".to_owned()),
        };
        assert!(
            db.ledger_set_version("jane@example.com", "event", "uid-1", &v)
                .unwrap()
        );
        assert_eq!(
            db.ledger_versions("jane@example.com", "event").unwrap()["uid-1"],
            v
        );
        // Not in the ledger: nothing to set.
        assert!(
            !db.ledger_set_version("jane@example.com", "event", "uid-2", &v)
                .unwrap()
        );
        assert!(
            db.ledger_versions("jane@example.com", "contact")
                .unwrap()
                .is_empty()
        );
    });
}

/// PostgreSQL: the lock is per plan and destination. Two scopes are held at once; a second
/// taker of one scope is refused, naming the holder; once its connection is gone, it is free.
#[test]
fn postgres_locks_are_per_plan_and_destination() {
    let cluster = pg_server::Postgres::start();
    let wave1 = postgres_at(&cluster, "wave1.yaml -> ldap://dc1");
    let wave2 = postgres_at(&cluster, "wave2.yaml -> ldap://dc1");
    let one = StateDb::open_at(&wave1).unwrap();
    let two = StateDb::open_at(&wave2).unwrap();
    let held = one.lock().unwrap();
    let _other = two.lock().expect("another plan's lock is its own");
    let again = StateDb::open_at(&wave1).unwrap();
    let err = again.lock().unwrap_err();
    let StateError::Locked { holder, .. } = &err else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(again.lock_holder().unwrap().as_ref(), Some(holder));
    assert!(err.to_string().contains("wave1.yaml"), "{err}");
    drop(held);
    assert_eq!(again.lock_holder().unwrap(), None);
    again.lock().unwrap().release().unwrap();
}

/// In a shared transaction, a write that fails is undone alone, on either backend.
#[test]
fn a_failing_write_in_a_group_is_undone_alone_on_both_backends() {
    both(|at| {
        let db = StateDb::open_at(at).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let results = db
            .write_together(&[run, run + 1000, run], |db, &r| {
                db.backup_contact(r, "a", &format!("cn=c{r}"), "dn: x\n", "cn=s")
                    .map(drop)
            })
            .unwrap();
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert_eq!(db.backups(None).unwrap().len(), 2);
        assert_eq!(db.history().unwrap().pending.len(), 1);
    });
}
