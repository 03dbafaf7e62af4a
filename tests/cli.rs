//! The CLI end to end: validate, plan, show, graph, generate; exit codes; determinism; the
//! output schema; bad input. Runs the real `mailplan` binary.

mod common;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

fn mailplan() -> Command {
    let mut c = Command::cargo_bin("mailplan").unwrap();
    c.current_dir(root()).env("NO_COLOR", "1");
    c
}

const QUICKSTART: &str = "examples/plans/quickstart.yaml";

/// Writes a minimal plan file into `dir` over `source`/`destination` LDIF files there, with
/// `container` and any extra destination lines; returns its path.
fn write_plan(
    dir: &std::path::Path,
    source: &str,
    destination: &str,
    container: &str,
    extra: &str,
) -> String {
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nsource:\n  profile: domino\n  directory:\n    ldif: {source}\ndestination:\n  flavor: active-directory\n  directory:\n    ldif: {destination}\n  container: \"{container}\"\n{extra}"
        ),
    )
    .unwrap();
    plan.to_str().unwrap().to_string()
}

fn stdout_of(args: &[&str]) -> String {
    let out = mailplan().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "mailplan {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn validate_accepts_the_examples() {
    for plan in ["quickstart", "interactive", "remigration", "carbonio"] {
        mailplan()
            .args(["validate", &format!("examples/plans/{plan}.yaml")])
            .assert()
            .success()
            .stdout(predicate::str::contains("is a valid plan file"))
            .stderr("");
    }
}

#[test]
fn every_example_plans() {
    for entry in std::fs::read_dir(root().join("examples/plans")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = stdout_of(&["plan", path.to_str().unwrap()]);
            assert!(
                out.contains("Plan:") || out.contains("No changes."),
                "{out}"
            );
        }
    }
}

#[test]
fn quickstart_plan_shows_every_scenario() {
    let out = stdout_of(&["plan", QUICKSTART]);
    for n in 1..=5 {
        assert!(
            out.contains(&format!("— scenario {n}:")),
            "scenario {n} missing:\n{out}"
        );
    }
    assert!(
        out.contains("# Frank Fischer — scenario 6: existing mailbox, items only"),
        "{out}"
    );
    // Items: the Maildir folders under examples/data/mail, counted before anything is copied.
    assert!(
        out.contains("<- import mail: 2 new messages in 1 folder (528 B) of 2"),
        "{out}"
    );
    assert!(
        out.contains("<- import mail: 6 new messages in 4 folders (1.7 KiB) of 6"),
        "{out}"
    );
    assert!(
        out.contains("<- import calendar: 2 new events (1.3 KiB) of 2"),
        "{out}"
    );
    assert!(
        out.contains("<- import contacts: 2 new contacts (610 B) of 2"),
        "{out}"
    );
    assert!(out.contains("error: Henry Hill: ambiguous"), "{out}");
    assert!(
        out.contains("would duplicate NT account CN=ggomez,CN=Users,DC=acme,DC=test"),
        "{out}"
    );
    assert!(out.contains("# Sales Team — distribution list"), "{out}");
    assert!(
        out.contains("~ member of CN=Marketing Team,OU=Groups,DC=acme,DC=test"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("Plan: 4 to create, 3 to convert, 4 to update, 2 to delete, 7 imports (10 messages, 3 events, 3 contacts). Not migrated: 1 person (1 ambiguous).\nDeletions: 2 of at most 500 (safety.max_deletes)."), "{out}");
    insta::assert_snapshot!("quickstart_text", out);
}

#[test]
fn quickstart_json_and_dot_snapshots() {
    let json = stdout_of(&["plan", QUICKSTART, "--json"]);
    insta::assert_snapshot!("quickstart_json", json);
    let dot = stdout_of(&["graph", QUICKSTART]);
    insta::assert_snapshot!("quickstart_dot", dot);
    let mermaid = stdout_of(&["graph", QUICKSTART, "--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert!(mermaid.contains("-->"));
}

#[test]
fn plan_output_is_byte_identical_across_runs() {
    let a = stdout_of(&["plan", QUICKSTART]);
    let b = stdout_of(&["plan", QUICKSTART]);
    assert_eq!(a, b);
    let a = stdout_of(&["plan", QUICKSTART, "--json"]);
    let b = stdout_of(&["plan", QUICKSTART, "--json"]);
    assert_eq!(a, b);
}

#[test]
fn detailed_exitcode() {
    mailplan()
        .args(["plan", QUICKSTART, "--detailed-exitcode"])
        .assert()
        .code(2);
    mailplan()
        .args([
            "plan",
            "tests/fixtures/scenario6_mailbox/plan.yaml",
            "--detailed-exitcode",
        ])
        .assert()
        .code(0);
    mailplan().args(["plan", QUICKSTART]).assert().code(0);
}

#[test]
fn saved_plan_round_trips_through_show() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let saved = saved.to_str().unwrap();
    let text = stdout_of(&["plan", QUICKSTART, "--out", saved]);
    let bytes1 = std::fs::read(saved).unwrap();
    assert_eq!(stdout_of(&["show", saved]), text);
    assert_eq!(
        stdout_of(&["show", saved, "--json"]),
        stdout_of(&["plan", QUICKSTART, "--json"])
    );
    stdout_of(&["plan", QUICKSTART, "--out", saved]);
    assert_eq!(
        std::fs::read(saved).unwrap(),
        bytes1,
        "saved plans are deterministic"
    );
    let v: serde_json::Value = serde_json::from_slice(&bytes1).unwrap();
    assert_eq!(v["format"], "mailplan-plan/1");
    assert!(
        v["plan_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // Every destination entry an action depends on is fingerprinted; new objects as null.
    assert!(
        v["entries"]["CN=Carol Chen,OU=Contacts,DC=acme,DC=test"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(v["entries"]["CN=Alice Archer,OU=Migrated,DC=acme,DC=test"].is_null());
    assert_eq!(
        stdout_of(&["graph", saved]),
        stdout_of(&["graph", QUICKSTART])
    );
}

#[test]
fn corrupt_or_foreign_saved_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ \"format\": \"mailplan-plan/1\", \"plan\": ").unwrap();
    mailplan()
        .args(["show", bad.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a mailplan saved plan"));
    std::fs::write(&bad, "{ \"format\": \"mailplan-plan/99\" }").unwrap();
    mailplan()
        .args(["show", bad.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("format `mailplan-plan/99`"));
    mailplan()
        .args(["show", QUICKSTART])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a plan file, not a saved plan"));
}

#[test]
fn json_output_matches_its_schema() {
    let path = root().join("schemas/plan-output.schema.json");
    if std::env::var_os("MAILPLAN_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, mailplan::render::json::schema()).unwrap();
    }
    let schema_text = std::fs::read_to_string(&path).unwrap_or_default();
    {
        assert_eq!(
            schema_text,
            mailplan::render::json::schema(),
            "schemas/plan-output.schema.json is out of date: run the tests with MAILPLAN_UPDATE_SCHEMAS=1"
        );
    }
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for plan in [
        QUICKSTART,
        "tests/fixtures/distribution_lists/plan.yaml",
        "tests/fixtures/ambiguous_two_users/plan.yaml",
    ] {
        let out: serde_json::Value =
            serde_json::from_str(&stdout_of(&["plan", plan, "--json"])).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&out)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{plan}: {errors:#?}");
        assert_eq!(out["format_version"], "1");
    }
}

#[test]
fn missing_ldif_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), "nowhere.ldif", "ad.ldif", "OU=X,DC=acme", "");
    mailplan().args(["plan", &plan]).assert().code(1).stderr(
        predicate::str::contains("cannot read LDIF file")
            .and(predicate::str::contains("nowhere.ldif")),
    );
}

#[test]
fn malformed_ldif_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("src.ldif"),
        "version: 1\n\ndn: CN=a,O=x\ncn a\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("dst.ldif"), "version: 1\n").unwrap();
    let plan = write_plan(dir.path(), "src.ldif", "dst.ldif", "OU=X,DC=acme", "");
    mailplan()
        .args(["plan", &plan])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("src.ldif").and(predicate::str::contains("line 4")));
}

#[test]
fn missing_container_is_a_plan_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.ldif"), "version: 1\n").unwrap();
    std::fs::write(
        dir.path().join("dst.ldif"),
        "version: 1\n\ndn: DC=acme,DC=test\nobjectClass: domain\n\ndn: CN=acme.com,DC=acme,DC=test\nobjectClass: msExchAcceptedDomain\nmsExchAcceptedDomainName: acme.com\n",
    )
    .unwrap();
    let plan = write_plan(
        dir.path(),
        "src.ldif",
        "dst.ldif",
        "OU=Migrated,DC=acme,DC=test",
        "  domains: [acme.com, example.org]\n  mailbox_database: \"CN=DB9,DC=acme,DC=test\"\n",
    );
    mailplan().args(["plan", &plan]).assert().code(1).stderr(
        predicate::str::contains(
            "container `OU=Migrated,DC=acme,DC=test` (destination.container) does not exist",
        )
        .and(predicate::str::contains(
            "mailbox database `CN=DB9,DC=acme,DC=test`",
        ))
        .and(predicate::str::contains(
            "destination domain `example.org` does not exist",
        ))
        .and(predicate::str::contains("`acme.com`").not()),
    );
}

#[test]
fn a_pin_to_a_missing_entry_is_located_in_the_plan_file() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(root().join("examples/plans/quickstart.yaml"))
        .unwrap()
        .replace("../data/", &format!("{}/examples/data/", root().display()))
        .replace("CN=bbaker,CN=Users", "CN=nobody,CN=Users");
    std::fs::write(&plan, text).unwrap();
    mailplan()
        .args(["plan", plan.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("CN=nobody,CN=Users,DC=acme,DC=test")
                .and(predicate::str::contains("plan.yaml")),
        );
}

#[test]
fn generate_then_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    mailplan()
        .args([
            "generate",
            "--persons",
            "300",
            "--seed",
            "7",
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .success();
    let plan = plan_file(&out.join("plan.yaml"));
    assert_eq!(
        plan.subjects
            .iter()
            .filter(|s| s.kind == mailplan::plan::SubjectKind::Person)
            .count(),
        300
    );
    for n in 1..=6u8 {
        assert!(
            plan.subjects.iter().any(|s| s.scenario == Some(n)),
            "scenario {n} missing in generated data"
        );
    }
    assert!(
        plan.subjects
            .iter()
            .any(|s| s.status == mailplan::plan::Status::Ambiguous)
    );
}

#[test]
fn completions_and_help() {
    mailplan()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mailplan"));
    mailplan()
        .args(["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"));
    // Help is wrapped to the terminal's width: compare with the line breaks taken out.
    let words = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let long = words(stdout_of(&["--help"]));
    assert!(
        long.contains("copies each person's items (mail folders, calendars and contacts)"),
        "{long}"
    );
    let short = words(stdout_of(&["-h"]));
    assert!(short.contains("mail, calendars and contacts"), "{short}");
}

/// A plan over the scenario-1 fixture (John Smith is new) with `mapping` lines under
/// `destination.mapping`; returns the folder and the plan file's path.
fn mapping_plan(mapping: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/scenario1_new");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    let plan = write_plan(
        dir.path(),
        "source.ldif",
        "destination.ldif",
        "OU=Migrated,DC=acme,DC=test",
        &format!("  domains: [acme.com]\n  mapping:\n{mapping}"),
    );
    (dir, plan)
}

#[test]
fn a_misspelt_placeholder_is_a_located_error_with_the_name_meant() {
    let (_dir, plan) =
        mapping_plan("    displayName: \"{givenName} {surnam}\"\n    description: \"{titel}\"\n");
    let text = std::fs::read_to_string(&plan).unwrap();
    let at = |needle: &str| {
        let at = text.find(needle).unwrap();
        let line = text[..at].matches('\n').count() + 1;
        let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("plan.yaml:{line}:{col}")
    };
    mailplan()
        .args(["plan", &plan])
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::contains(
                "`{surnam}` is neither a role nor an attribute of any source entry",
            )
            .and(predicate::str::contains("did you mean `{surname}`?"))
            .and(predicate::str::contains(at("{surnam}")))
            .and(predicate::str::contains("`{titel}` is neither a role"))
            .and(predicate::str::contains("did you mean `{title}`?")),
        );
    // `validate` reads no directory, so it cannot tell; `plan` is where it is caught.
    mailplan().args(["validate", &plan]).assert().success();
}

#[test]
fn a_mapped_attribute_no_source_entry_has_is_a_warning_with_the_count() {
    let (_dir, plan) = mapping_plan("    extensionAttribute1: \"{employeeNumber}\"\n");
    let out = stdout_of(&["plan", &plan]);
    assert!(
        out.contains("warning: plan file: `destination.mapping.extensionAttribute1` takes `{employeeNumber}`, which no source entry has: 1 mailbox this plan creates or converts gets no value from it"),
        "{out}"
    );
    let json = stdout_of(&["plan", &plan, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["messages"][0]["level"], "warning", "{json}");
    assert_eq!(json["summary"]["warnings"], 1, "{json}");
}

/// A plan file that keeps its state in PostgreSQL is never quietly given a SQLite state
/// instead: `--state-dir` beside it is refused, and a database that cannot be reached stops
/// the command before anything is written. (tests/pg_state.rs applies into a real database.)
#[test]
fn a_postgres_state_is_used_never_replaced_by_a_sqlite_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join(QUICKSTART)).unwrap();
    // The quickstart's data through a link, so its relative paths resolve from a folder of
    // the test's own.
    std::os::unix::fs::symlink(root().join("examples/data"), dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/wave.yaml");
    std::fs::write(
        &plan,
        format!(
            "{text}\nstate:\n  postgres:\n    url: postgres://mailplan@127.0.0.1:9/m?sslmode=disable\n"
        ),
    )
    .unwrap();
    for cmd in ["plan", "apply"] {
        let out = mailplan()
            .args([cmd, plan.to_str().unwrap(), "--state-dir"])
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains(
                "--state-dir names a folder, but the plan file keeps its state in PostgreSQL"
            ),
            "{cmd}: {err}"
        );
        assert!(!dir.path().join("state").exists(), "{cmd} made a state");
        assert!(!dir.path().join("out").exists(), "{cmd} wrote items");
    }
    for args in [
        &["apply", "--auto-approve"][..],
        &["state", "list"][..],
        &["verify"][..],
    ] {
        let out = mailplan().args(args).arg(&plan).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("postgres://mailplan@127.0.0.1:9/m"),
            "{args:?} names the database: {err}"
        );
        assert!(
            !dir.path().join("plans/.mailplan").exists(),
            "{args:?} made a SQLite state"
        );
        assert!(!dir.path().join("out").exists(), "{args:?} wrote items");
    }
}

#[test]
fn apply_counts_one_action_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/scenario1_new");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    let plan = write_plan(
        dir.path(),
        "source.ldif",
        "destination.ldif",
        "OU=Migrated,DC=acme,DC=test",
        "",
    );
    mailplan()
        .args(["apply", &plan, "--auto-approve"])
        .assert()
        .success()
        .stderr(predicate::str::contains("applying 1 action\n"));
}

/// A Carbonio plan plans through the CLI with no server (ambiguous persons are decisions, not
/// errors), and `apply` of a plan whose destination is an LDIF export refuses before anything
/// is opened: an export cannot show what changed in Carbonio since.
#[test]
fn carbonio_plans_and_apply_refuses_an_export() {
    let plan = "tests/fixtures/carbonio/plan.yaml";
    mailplan()
        .args(["plan", plan, "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"kind\": \"create_account\""));
    let dir = tempfile::tempdir().unwrap();
    mailplan()
        .args(["apply", plan, "--auto-approve", "--state-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "apply into Carbonio needs its live directory",
        ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn set_cap_needs_a_postgres_state_and_an_endpoint_of_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(
        dir.path(),
        "source.ldif",
        "destination.ldif",
        "OU=Migrated,DC=acme,DC=test",
        "items:\n  mail:\n    source:\n      imap: { url: \"imaps://notes.acme.test\", user: \"{uid}\", login: admin, password: { env: CAP_TEST_PASSWORD } }\n    destination:\n      maildir: \"out/{uid}\"\n  connections:\n    \"notes.acme.test:993\": 4\n",
    );
    let run = |args: &[&str]| {
        let out = mailplan()
            .env("CAP_TEST_PASSWORD", "x")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["state", "set-cap", &plan, "notes.acme.test:993", "2"]);
    assert!(
        err.contains("`state set-cap` needs a PostgreSQL state"),
        "{err}"
    );
    assert!(
        err.contains("`items.connections` caps hold within it"),
        "{err}"
    );
    let err = run(&["state", "set-cap", &plan, "mail.acme.test:993", "2"]);
    assert!(
        err.contains("`mail.acme.test:993` is not an endpoint this plan file's stores connect to"),
        "{err}"
    );
    assert!(
        err.contains("the plan file's stores connect to `notes.acme.test:993`"),
        "{err}"
    );
    let err = run(&["state", "set-cap", &plan, "notes.acme.test:993", "0"]);
    assert!(err.contains("a connection cap must be at least 1"), "{err}");
}
