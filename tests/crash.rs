//! Killing `mailplan apply` with SIGKILL at random instants, then running it again, must end in
//! exactly the destination an uninterrupted run produces: no duplicate objects, no lost contact
//! data, every deleted contact in the state's backups.
//!
//! One generated wave of 1,000 persons is applied once without interruption (the reference).
//! Each trial starts from a fresh copy, kills the apply at a seeded random instant (some trials
//! kill the rerun as well), runs it to the end, and compares. Half the trials apply a saved plan
//! (`plan --out`, then `apply FILE`, resumed after the kill), half the YAML plan file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mailplan::directory::{Entry, ldif};
use rand::{Rng, SeedableRng};

const PERSONS: usize = 1_000;
const TRIALS: u64 = 20;
const SEED: u64 = 20_261_121;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailplan"))
}

fn mailplan(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs to the end; returns stderr, panicking with it unless the exit code is `code`.
fn run(dir: &Path, args: &[&str], code: i32) -> String {
    let out = mailplan(dir, args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("applied ") && !l.starts_with("done "))
        .collect();
    assert_eq!(
        out.status.code(),
        Some(code),
        "mailplan {args:?} in {}:\n{}",
        dir.display(),
        problems.join("\n")
    );
    err
}

/// Starts the command and SIGKILLs it once it has reported `after` finished actions (0: as
/// soon as it starts applying), unless it ends first. Counting reported actions rather than
/// time puts the kills among the writes however fast or loaded the machine is.
fn kill_after(dir: &Path, args: &[&str], after: usize) -> bool {
    use std::io::BufRead;
    let mut child = mailplan(dir, args).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = 0usize;
    let mut killed = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("applying ") || line.starts_with("applied ") {
            if seen == after {
                child.kill().unwrap(); // SIGKILL on Unix
                killed = true;
                break;
            }
            seen += 1;
        }
    }
    child.wait().unwrap();
    killed
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn entries(path: &Path) -> Vec<Entry> {
    ldif::parse_entries(&std::fs::read_to_string(path).unwrap(), None).unwrap()
}

/// Values of `attr` held by more than one entry (case-insensitively): duplicates.
fn shared_values(entries: &[Entry], attr: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        for v in e.values(attr).iter() {
            *seen.entry(v.display().to_lowercase()).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(v, _)| v)
        .collect()
}

/// The generated destination has some shared addresses and names on purpose (the ambiguities
/// planning must report); applying must not add any: no object twice, no address on two.
fn no_new_duplicates(pristine: &Path, dir: &Path, what: &str) {
    let was = entries(&pristine.join("destination.ldif"));
    let now = entries(&dir.join("destination.ldif"));
    for attr in ["sAMAccountName", "proxyAddresses", "userPrincipalName"] {
        let old: BTreeSet<String> = shared_values(&was, attr).into_iter().collect();
        let new: Vec<String> = shared_values(&now, attr)
            .into_iter()
            .filter(|v| !old.contains(v))
            .collect();
        assert!(
            new.is_empty(),
            "{what}: {attr} values now held twice: {new:?}"
        );
    }
}

#[test]
fn killed_applies_converge_to_the_uninterrupted_result() {
    let work = tempfile::tempdir().unwrap();
    let pristine = work.path().join("pristine");
    mailplan::generate::generate_into(
        &pristine,
        &mailplan::generate::GenerateOptions {
            persons: PERSONS,
            destination_objects: 3 * PERSONS,
            seed: 5,
        },
    )
    .unwrap();

    // The reference: one uninterrupted apply.
    let reference = work.path().join("reference");
    copy_dir(&pristine, &reference);
    let log = run(&reference, &["apply", "plan.yaml", "--auto-approve"], 0);
    let total = log.lines().filter(|l| l.starts_with("applied ")).count();
    let expected = std::fs::read(reference.join("destination.ldif")).unwrap();
    let before: BTreeSet<_> = entries(&pristine.join("destination.ldif"))
        .into_iter()
        .map(|e| e.dn)
        .collect();
    let after: BTreeSet<_> = entries(&reference.join("destination.ldif"))
        .into_iter()
        .map(|e| e.dn)
        .collect();
    let deleted: Vec<_> = before.difference(&after).cloned().collect();
    no_new_duplicates(&pristine, &reference, "the uninterrupted run");
    assert!(
        deleted.len() > 50,
        "the wave should delete contacts; it deleted {}",
        deleted.len()
    );

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let mut kills = 0;
    let mut interrupted_merges = 0;
    for trial in 0..TRIALS {
        let dir = work.path().join(format!("trial-{trial}"));
        copy_dir(&pristine, &dir);
        let saved = trial % 2 == 1;
        let args: &[&str] = if saved {
            run(&dir, &["plan", "plan.yaml", "--out", "wave.plan"], 0);
            &["apply", "wave.plan"]
        } else {
            &["apply", "plan.yaml", "--auto-approve"]
        };
        let at = rng.random_range(0..total);
        kills += usize::from(kill_after(&dir, args, at));
        if trial % 4 < 2 {
            // The rerun has less left to do; a kill early in it.
            let again = rng.random_range(0..total / 4);
            kills += usize::from(kill_after(&dir, args, again));
        }
        if let Ok(Some(state)) = mailplan::state::StateDb::open_existing(&dir.join(".mailplan")) {
            // Contacts deleted whose merge had not happened when the process died: the window
            // in which their data exists only in the state. The test must hit it to prove much.
            interrupted_merges += state.history().unwrap().pending.len();
        }
        let err = run(&dir, args, 0);
        assert!(
            !err.contains("stale") && !err.contains("failed:"),
            "trial {trial}: the rerun reported problems:\n{err}"
        );

        let got = std::fs::read(dir.join("destination.ldif")).unwrap();
        if got != expected {
            let diff = similar::TextDiff::from_lines(
                std::str::from_utf8(&expected).unwrap(),
                std::str::from_utf8(&got).unwrap(),
            );
            panic!(
                "trial {trial} (killed after {at} actions, saved plan: {saved}) ended differently:\n{}",
                diff.unified_diff().context_radius(2)
            );
        }
        no_new_duplicates(&pristine, &dir, &format!("trial {trial}"));
        // A plan of the YAML file now has nothing left to do.
        run(&dir, &["plan", "plan.yaml", "--detailed-exitcode"], 0);
        let state = mailplan::state::StateDb::open(&dir.join(".mailplan")).unwrap();
        for dn in &deleted {
            assert!(
                state.latest_backup(&dn.to_string()).unwrap().is_some(),
                "trial {trial}: deleted contact {dn} has no backup"
            );
        }
    }
    assert!(
        interrupted_merges > 0,
        "no kill fell between a contact's delete and its merge; the trials prove little"
    );
    eprintln!("{kills} kills, {interrupted_merges} merges interrupted");
    assert!(
        kills >= TRIALS as usize,
        "only {kills} of the kills hit a running apply; the trials prove little"
    );
}

#[test]
fn ctrl_c_lets_running_actions_finish_records_the_run_and_exits_1() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    mailplan::generate::generate_into(
        dir,
        &mailplan::generate::GenerateOptions {
            persons: 300,
            destination_objects: 900,
            seed: 3,
        },
    )
    .unwrap();
    let mut child = mailplan(dir, &["apply", "plan.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut applied = 0;
    for line in lines.by_ref() {
        if line.unwrap().starts_with("applied ") {
            applied += 1;
            if applied == 20 {
                let sent = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
                break;
            }
        }
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{rest:#?}");
    let summary = rest.last().unwrap();
    assert!(
        rest.iter()
            .any(|l| l.starts_with("interrupted: finishing the running actions")),
        "{rest:#?}"
    );
    assert!(
        summary.contains("Apply interrupted.") && summary.contains("not started"),
        "{summary}"
    );
    let listing = Command::new(bin())
        .current_dir(dir)
        .args(["state", "list", "plan.yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("interrupted"));
    run(dir, &["apply", "plan.yaml", "--auto-approve"], 0);
    run(dir, &["plan", "plan.yaml", "--detailed-exitcode"], 0);
}
