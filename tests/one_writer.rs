//! One destination, one writer: two waves of different plan files, each with its own state
//! folder, applied at the same moment to one LDIF file, or copying into one Maildir. Either both
//! finish one after the other, or the second is refused naming the first; after a rerun of the
//! refused one the file holds every mailbox of both waves, and the Maildir every message once.
//! Before destinations were locked, both reported success and the second rewrite of the file
//! lost the first wave's mailboxes; both copied every message.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const PERSONS: usize = 40;
const ROUNDS: usize = 6;

/// A Domino source of `PERSONS` new persons named `{prefix} N`.
fn source(prefix: &str) -> String {
    let mut out = String::from("version: 1\n");
    for i in 0..PERSONS {
        out.push_str(&format!(
            "\ndn: CN={prefix} {i},OU=Sales,O=Acme\nobjectClass: dominoPerson\ncn: {prefix} {i}\nuid: {}{i}\nmail: {}.{i}@acme.com\n",
            prefix.to_lowercase(),
            prefix.to_lowercase()
        ));
    }
    out
}

/// A wave in its own folder (so with its own `.mailplan` state) over the shared destination.
fn wave(root: &Path, name: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("source.ldif"), source(name)).unwrap();
    std::fs::write(
        dir.join("plan.yaml"),
        r#"version: 1
source:
  profile: domino
  directory:
    ldif: source.ldif
destination:
  flavor: active-directory
  directory:
    ldif: ../destination.ldif
  container: "OU=Migrated,DC=acme,DC=test"
  domains: [acme.com]
  exchange_org: Acme
"#,
    )
    .unwrap();
}

fn apply(root: &Path, name: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mailplan"))
        .args(["apply", "plan.yaml", "--auto-approve"])
        .current_dir(root.join(name))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn mailboxes(root: &Path, prefix: &str) -> usize {
    let text = std::fs::read_to_string(root.join("destination.ldif")).unwrap();
    (0..PERSONS)
        .filter(|i| {
            text.contains(&format!(
                "dn: CN={prefix} {i},OU=Migrated,DC=acme,DC=test\n"
            ))
        })
        .count()
}

#[test]
fn two_waves_racing_on_one_ldif_file_lose_nothing() {
    let mut refused = 0;
    for round in 0..ROUNDS {
        let root = tempfile::tempdir().unwrap();
        std::fs::copy(
            common::root().join("tests/fixtures/scenario1_new/destination.ldif"),
            root.path().join("destination.ldif"),
        )
        .unwrap();
        wave(root.path(), "Alpha");
        wave(root.path(), "Beta");
        let (a, b) = (apply(root.path(), "Alpha"), apply(root.path(), "Beta"));
        let outputs: Vec<(&str, Output)> = vec![
            ("Alpha", a.wait_with_output().unwrap()),
            ("Beta", b.wait_with_output().unwrap()),
        ];
        for (name, out) in outputs {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                assert!(err.contains("Apply complete!"), "{name}: {err}");
                continue;
            }
            // Refused before it wrote anything, naming who holds the destination.
            assert_eq!(out.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains("destination.ldif` is being written by another apply (pid "),
                "round {round}, {name}: {err}"
            );
            assert!(err.contains("plan.yaml"), "{name}: {err}");
            refused += 1;
            let again = apply(root.path(), name).wait_with_output().unwrap();
            assert!(
                again.status.success(),
                "{name} again: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
        assert_eq!(mailboxes(root.path(), "Alpha"), PERSONS, "round {round}");
        assert_eq!(mailboxes(root.path(), "Beta"), PERSONS, "round {round}");
        // Both waves converge: planning either again changes nothing.
        for name in ["Alpha", "Beta"] {
            let out = Command::new(env!("CARGO_BIN_EXE_mailplan"))
                .args(["plan", "plan.yaml", "--detailed-exitcode"])
                .current_dir(root.path().join(name))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "round {round}, {name}");
        }
    }
    eprintln!(
        "{refused} of {} applies were refused and run again",
        2 * ROUNDS
    );
}

/// Two waves, each with its own plan file, LDIF copy and state folder, copying John Smith's
/// mail from one Maildir into one destination Maildir at the same moment: one waits its turn
/// (its import fails naming the other, and a rerun finishes), and every message is there once.
#[test]
fn two_waves_racing_into_one_maildir_copy_every_message_once() {
    const MESSAGES: usize = 300;
    for round in 0..3 {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("export/jsmith");
        let md = mailplan::items::mail::maildir::Maildir::new(source.clone());
        md.ensure_folder("INBOX").unwrap();
        for i in 0..MESSAGES {
            let meta = mailplan::items::mail::MessageMeta {
                key: String::new(),
                identity: String::new(),
                size: 0,
                flags: Vec::new(),
                internal_date: 1_700_000_000 + i as i64,
            };
            let data = format!("Message-ID: <m{i}@example.test>\nSubject: {i}\n\nbody {i}\n");
            md.append("INBOX", &meta, data.as_bytes()).unwrap();
        }
        let out = root.path().join("out/jsmith");
        for name in ["Alpha", "Beta"] {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let six = common::root().join("tests/fixtures/scenario6_mailbox");
            for f in ["source.ldif", "destination.ldif"] {
                std::fs::copy(six.join(f), dir.join(f)).unwrap();
            }
            std::fs::write(
                dir.join("plan.yaml"),
                format!(
                    "version: 1\nsource:\n  profile: domino\n  directory: {{ ldif: source.ldif }}\ndestination:\n  flavor: active-directory\n  directory: {{ ldif: destination.ldif }}\n  container: \"OU=Migrated,DC=acme,DC=test\"\nitems:\n  mail:\n    source: {{ maildir: \"{}\" }}\n    destination: {{ maildir: \"{}\" }}\n",
                    source.display(),
                    out.display()
                ),
            )
            .unwrap();
        }
        let (a, b) = (apply(root.path(), "Alpha"), apply(root.path(), "Beta"));
        let done = [
            ("Alpha", a.wait_with_output().unwrap()),
            ("Beta", b.wait_with_output().unwrap()),
        ];
        for (name, done) in done {
            if done.status.success() {
                continue;
            }
            let err = String::from_utf8_lossy(&done.stderr);
            assert!(
                err.contains("is being written by another apply (pid "),
                "round {round}, {name}: {err}"
            );
            let again = apply(root.path(), name).wait_with_output().unwrap();
            assert!(
                again.status.success(),
                "{name} again: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
        let listing = mailplan::items::mail::maildir::Maildir::new(out.clone())
            .list()
            .unwrap();
        let ids: Vec<&str> = listing[0]
            .messages
            .iter()
            .map(|m| m.identity.as_str())
            .collect();
        let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(ids.len(), MESSAGES, "round {round}: {} copies", ids.len());
        assert_eq!(unique.len(), MESSAGES, "round {round}");
        assert!(!out.join(".mailplan-lock").exists());
    }
}
