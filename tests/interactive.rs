//! `plan --interactive` end to end: the real binary at a real pseudo-terminal (util-linux
//! `script`), answers typed on its input, the plan file checked byte for byte afterwards, and
//! the refusals without a terminal and for a saved plan.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const JOHN: &str = "CN=John Smith,OU=Sales,O=Acme";
const JANE: &str = "CN=Jane Doe,OU=Sales,O=Acme";
const JSMITH: &str = "CN=jsmith,CN=Users,DC=acme,DC=test";
const JDOE: &str = "CN=jdoe,CN=Users,DC=acme,DC=test";

/// The plan file the tests edit: comments, a blank line and a key after `matching`.
const PLAN: &str = "# Wave 3: sales.\n\
version: 1\n\
source:\n\
\x20 profile: domino   # Lotus\n\
\x20 notes_domain: ACME\n\
\x20 directory:\n\
\x20   ldif: source.ldif\n\
destination:\n\
\x20 flavor: active-directory\n\
\x20 directory:\n\
\x20   ldif: destination.ldif\n\
\x20 container: \"OU=Migrated,DC=acme,DC=test\"\n\
\n\
matching:\n\
\x20 # proposals are confirmed here\n\
\x20 mode: interactive\n\
\n\
# the end\n";

/// A wave of two persons, each with one soft candidate (an NT account with its short name).
fn wave() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let case = root().join("tests/fixtures/interactive_needs_confirmation");
    std::fs::copy(case.join("source.ldif"), dir.path().join("source.ldif")).unwrap();
    let mut destination = std::fs::read_to_string(case.join("destination.ldif")).unwrap();
    destination.push_str(
        "\ndn: CN=jdoe,CN=Users,DC=acme,DC=test\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\ncn: jdoe\nsAMAccountName: jdoe\n\
         department: Finance\nlastLogonTimestamp: 133540128000000000\n",
    );
    std::fs::write(dir.path().join("destination.ldif"), destination).unwrap();
    std::fs::write(dir.path().join("plan.yaml"), PLAN).unwrap();
    dir
}

fn binary() -> String {
    assert_cmd::cargo::cargo_bin("mailplan")
        .to_str()
        .unwrap()
        .to_string()
}

/// Runs `mailplan ARGS` at a pseudo-terminal with `input` typed at it; its exit status and
/// everything it wrote to the terminal.
fn at_terminal(dir: &Path, args: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("script")
        .args(["-qec", &format!("{} {args}", binary()), "/dev/null"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the binary at a pseudo-terminal: install util-linux");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

fn plan_json(dir: &Path) -> serde_json::Value {
    let out = Command::new(binary())
        .args(["plan", "plan.yaml", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn subject_of<'a>(plan: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    plan["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == source)
        .unwrap_or_else(|| panic!("no subject {source}"))
}

#[test]
fn answers_at_a_terminal_are_written_into_the_plan_file_and_the_plan_follows_them() {
    let dir = wave();
    let before = plan_json(dir.path());
    assert_eq!(subject_of(&before, JOHN)["status"], "needs_confirmation");
    assert_eq!(subject_of(&before, JANE)["status"], "needs_confirmation");

    // Jane Doe comes first (the plan's order): ignore her candidate, confirm John's; a wrong
    // answer is asked again.
    let (ok, screen) = at_terminal(dir.path(), "plan plan.yaml --interactive", "x\ni\nc\n");
    assert!(ok, "{screen}");
    assert!(screen.contains("Soft candidate 1 of 2"), "{screen}");
    assert!(screen.contains("Answer c, i, s or q."), "{screen}");
    assert!(
        screen.contains("last logon  -") && screen.contains("2024-03-04T08:00:00Z"),
        "{screen}"
    );
    assert!(screen.contains("department  -"), "{screen}");
    assert!(
        screen.contains("Wrote 1 confirmed and 1 ignored to plan.yaml."),
        "{screen}"
    );

    let after = std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap();
    let inserted = format!(
        "  confirmed:\n    - source: \"{JOHN}\"\n      destination: \"{JSMITH}\"\n  \
         ignore:\n    - destination: \"{JDOE}\"\n"
    );
    // Byte for byte the old file, with the new lines after `mode: interactive`.
    let at = PLAN.find("  mode: interactive\n").unwrap() + "  mode: interactive\n".len();
    assert_eq!(after, format!("{}{inserted}{}", &PLAN[..at], &PLAN[at..]));

    // The plan shown after the answers, and the next plan: John matched by the confirmed pin,
    // Jane's candidate no longer a candidate.
    assert!(screen.contains("Plan:"), "{screen}");
    let next = plan_json(dir.path());
    let john = subject_of(&next, JOHN);
    assert_eq!(john["status"], "planned");
    assert_eq!(john["match"]["object"], JSMITH);
    assert_eq!(john["match"]["via"], "confirmed");
    let jane = subject_of(&next, JANE);
    assert_eq!(jane["status"], "planned");
    assert_eq!(jane["candidates"], serde_json::json!([]));
    assert!(jane["match"].is_null());

    // Asked again, there is nothing left to ask, and the file stays as it is.
    let (ok, screen) = at_terminal(dir.path(), "plan plan.yaml --interactive", "");
    assert!(ok, "{screen}");
    assert!(
        screen.contains("No soft candidates to ask about."),
        "{screen}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap(),
        after
    );
}

#[test]
fn quit_keeps_the_answers_given_and_names_the_rest() {
    let dir = wave();
    let (ok, screen) = at_terminal(dir.path(), "plan plan.yaml --interactive", "s\nq\n");
    assert!(ok, "{screen}");
    assert!(
        screen.contains("Nothing was answered; the plan file is unchanged."),
        "{screen}"
    );
    assert!(
        screen.contains("2 soft candidates left unanswered:"),
        "{screen}"
    );
    assert!(screen.contains(&format!("{JANE}  ?  {JDOE}")), "{screen}");
    assert!(screen.contains(&format!("{JOHN}  ?  {JSMITH}")), "{screen}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap(),
        PLAN
    );
}

#[test]
fn without_a_terminal_nothing_is_asked_and_nothing_written() {
    let dir = wave();
    let out = Command::new(binary())
        .args(["plan", "plan.yaml", "--interactive"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plan --interactive asks at a terminal, and there is none"),
        "{stderr}"
    );
    assert!(stderr.contains("by hand"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap(),
        PLAN
    );
}

#[test]
fn a_saved_plan_is_refused_with_the_way_to_do_it() {
    let dir = wave();
    let saved = Command::new(binary())
        .args(["plan", "plan.yaml", "--out", "saved.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(saved.status.success());
    let (ok, screen) = at_terminal(dir.path(), "plan saved.json --interactive", "c\n");
    assert!(!ok, "{screen}");
    assert!(screen.contains("is a saved plan"), "{screen}");
    assert!(
        screen.contains("mailplan plan PLAN.yaml --interactive"),
        "{screen}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap(),
        PLAN
    );
}
