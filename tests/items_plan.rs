//! Items through `plan` and `apply` without a server: Maildir, ICS and CSV sources into Maildir,
//! ICS and vCard folders. Bad items (a broken ICS event, CSV rows with the wrong number of fields
//! or bytes that are not UTF-8) are reported with their file and line in the plan and the apply,
//! skipped, recorded in the state, and the rest is copied; a rerun copies nothing.

mod common;

use assert_cmd::Command;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = common::root();
        let six = root.join("tests/fixtures/scenario6_mailbox");
        for f in ["source.ldif", "destination.ldif"] {
            std::fs::copy(six.join(f), dir.path().join(f)).unwrap();
        }
        let export = dir.path().join("export");
        std::fs::create_dir_all(&export).unwrap();
        std::fs::copy(
            root.join("tests/fixtures/items/broken.ics"),
            export.join("jsmith.ics"),
        )
        .unwrap();
        std::fs::copy(
            root.join("tests/fixtures/items/contacts-bad.csv"),
            export.join("jsmith.csv"),
        )
        .unwrap();
        let md = mailplan::items::mail::maildir::Maildir::new(export.join("mail/jsmith"));
        md.ensure_folder("INBOX").unwrap();
        let meta = mailplan::items::mail::MessageMeta {
            key: String::new(),
            identity: String::new(),
            size: 0,
            flags: vec!["\\Seen".into()],
            internal_date: 1_700_000_000,
        };
        md.append("INBOX", &meta, b"Message-ID: <x@y>\nSubject: hi\n\nhello\n")
            .unwrap();
        std::fs::write(
            dir.path().join("plan.yaml"),
            r#"version: 1
source:
  profile: domino
  directory: { ldif: source.ldif }
destination:
  flavor: active-directory
  directory: { ldif: destination.ldif }
  container: "OU=Migrated,DC=acme,DC=test"
items:
  mail:
    source: { maildir: "export/mail/{uid}" }
    destination: { maildir: "out/mail/{uid}" }
  calendars:
    source: { ics: "export/{uid}.ics" }
    destination: { ics_folder: "out/calendars/{uid}" }
  contacts:
    source: { csv: "export/{uid}.csv" }
    destination: { vcard_folder: "out/contacts/{uid}" }
"#,
        )
        .unwrap();
        Case { dir }
    }

    fn run(&self, args: &[&str]) -> (String, String) {
        let out = Command::cargo_bin("mailplan")
            .unwrap()
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{o}{e}");
        (o, e)
    }
}

#[test]
fn bad_items_are_reported_skipped_and_the_rest_is_copied_once() {
    let case = Case::new();
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    // Each bad item with its file and line.
    assert!(plan.contains("calendar: bad item skipped:"), "{plan}");
    assert!(plan.contains("jsmith.ics:"), "{plan}");
    assert!(plan.contains("contacts: bad item skipped:"), "{plan}");
    assert!(plan.contains("jsmith.csv:3"), "{plan}");
    assert!(plan.contains("jsmith.csv:4"), "{plan}");
    assert!(plan.contains("not UTF-8"), "{plan}");
    assert!(
        plan.contains("<- import mail: 1 new message in 1 folder"),
        "{plan}"
    );
    assert!(plan.contains("<- import calendar: 2 new events"), "{plan}");
    assert!(
        plan.contains("<- import contacts: 2 new contacts"),
        "{plan}"
    );

    let (_, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("copied 2 events"), "{err}");
    assert!(err.contains("copied 2 contacts"), "{err}");
    assert!(err.contains("bad items skipped"), "{err}");
    assert!(err.contains("  bad item: "), "{err}");
    let calendars = case.dir.path().join("out/calendars/jsmith");
    assert_eq!(std::fs::read_dir(&calendars).unwrap().count(), 2);
    let contacts = case.dir.path().join("out/contacts/jsmith");
    assert_eq!(std::fs::read_dir(&contacts).unwrap().count(), 2);

    // Bad items are in the state too.
    let db = mailplan::state::StateDb::open(&case.dir.path().join(".mailplan")).unwrap();
    let bad = db
        .ledger_identities(
            &format!("ics:{}", calendars.canonicalize().unwrap().display()),
            "bad-event",
        )
        .unwrap();
    assert!(!bad.is_empty());

    // `mailplan state items` says what was copied and what was skipped.
    let (items, _) = case.run(&["state", "items", "plan.yaml", "--bad"]);
    assert!(items.contains("2 events copied"), "{items}");
    assert!(items.contains("2 contacts copied"), "{items}");
    assert!(items.contains("1 message copied"), "{items}");
    assert!(items.contains("bad items skipped (contact)"), "{items}");
    assert!(items.contains("jsmith.csv:3"), "{items}");

    // A rerun copies nothing (bad items are still reported, never copied).
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(!plan.contains("<- import"), "{plan}");
    assert!(plan.contains("bad item skipped"), "{plan}");
}

#[test]
fn an_item_deleted_at_the_destination_is_not_copied_back() {
    let case = Case::new();
    case.run(&["apply", "plan.yaml", "--auto-approve"]);
    let calendars = case.dir.path().join("out/calendars/jsmith");
    let first = std::fs::read_dir(&calendars)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let contacts = case.dir.path().join("out/contacts/jsmith");
    let first = std::fs::read_dir(&contacts)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let (plan, _) = case.run(&["plan", "plan.yaml", "--json"]);
    assert!(!plan.contains("\"import_"), "{plan}");
    assert!(
        plan.contains("calendar: 1 items copied earlier were deleted at the destination since"),
        "{plan}"
    );
}
