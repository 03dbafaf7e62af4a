//! `mailplan verify` after an apply, as a user runs it: into Maildir, ICS and vCard folders,
//! through a real Dovecot, and into a real Radicale. Right after the apply every folder, the
//! calendar and the address book hold what the source holds and verify exits 0; then a message
//! is deleted at the destination (its owner's doing, explained, not a failure) and one is added
//! at the source (missing: verify names that person's folder and exits 1).

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;
#[path = "servers/radicale.rs"]
mod radicale;

use std::path::Path;

use assert_cmd::Command;
use mailplan::items::mail::MessageMeta;
use mailplan::items::mail::maildir::Maildir;

const JOHN: &str = "CN=John Smith,OU=Sales,O=Acme";

/// Runs mailplan in `dir`; its exit code, stdout and stderr.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn apply(dir: &Path) {
    let (code, o, e) = run(dir, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{o}{e}");
}

/// `verify`, which must exit with `code`; its stdout.
fn verify(dir: &Path, code: i32) -> String {
    let (got, o, e) = run(dir, &["verify", "plan.yaml"]);
    assert_eq!(got, code, "{o}{e}");
    o
}

/// The line of the verify table for this kind and folder, squeezed to single spaces.
fn row(out: &str, kind: &str, folder: &str) -> String {
    let squeeze = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let prefix = format!("{kind} {folder} ");
    out.lines()
        .map(squeeze)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {kind} {folder}:\n{out}"))
}

fn message(id: &str, subject: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: a@example.test\r\nSubject: {subject}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n"
    )
    .into_bytes()
}

fn put(maildir: &Path, folder: &str, id: &str) {
    let md = Maildir::new(maildir.to_path_buf());
    md.ensure_folder(folder).unwrap();
    let meta = MessageMeta {
        key: String::new(),
        identity: String::new(),
        size: 0,
        flags: vec!["\\Seen".into()],
        internal_date: 1_700_000_000,
    };
    md.append(folder, &meta, &message(id, id)).unwrap();
}

/// Removes one message file from a Maildir folder directory (`""` for the inbox).
fn delete_one(maildir: &Path, dir_name: &str) {
    let cur = maildir.join(dir_name).join("cur");
    let victim = std::fs::read_dir(&cur)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(victim).unwrap();
}

/// John Smith's wave (scenario 6) in a fresh folder, with these `items`.
fn project(items: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let six = root.join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(six.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("export")).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/items/notes-export.ics"),
        dir.path().join("export/jsmith.ics"),
    )
    .unwrap();
    std::fs::copy(
        root.join("tests/fixtures/items/contacts.csv"),
        dir.path().join("export/jsmith.csv"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            r#"version: 1
source:
  profile: domino
  directory: {{ ldif: source.ldif }}
destination:
  flavor: active-directory
  directory: {{ ldif: destination.ldif }}
  container: "OU=Migrated,DC=acme,DC=test"
items:
{items}"#
        ),
    )
    .unwrap();
    dir
}

/// An extra event at the end of an ICS export.
fn add_event(ics: &Path, uid: &str) {
    let text = std::fs::read_to_string(ics).unwrap();
    let event = format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240301T090000Z\r\nDTEND:20240301T100000Z\r\nSUMMARY:Added later\r\nEND:VEVENT\r\nEND:VCALENDAR"
    );
    let at = text.rfind("END:VCALENDAR").unwrap();
    std::fs::write(ics, format!("{}{event}{}", &text[..at], &text[at + 13..])).unwrap();
}

#[test]
fn files_verify_complete_after_apply_and_name_what_is_short() {
    let dir = project(
        r#"  mail:
    source: { maildir: "export/mail/{uid}" }
    destination: { maildir: "out/mail/{uid}" }
    folders: { exclude: ["Junk"] }
  calendars:
    source: { ics: "export/{uid}.ics" }
    destination: { ics_folder: "out/calendars/{uid}" }
  contacts:
    source: { csv: "export/{uid}.csv" }
    destination: { vcard_folder: "out/contacts/{uid}" }
"#,
    );
    let source = dir.path().join("export/mail/jsmith");
    let destination = dir.path().join("out/mail/jsmith");
    put(&source, "INBOX", "a@example.test");
    put(&source, "INBOX", "b@example.test");
    put(&source, "Sent", "s@example.test");
    put(&source, "Junk", "j@example.test");

    // Before anything was copied, everything is missing.
    let before = verify(dir.path(), 1);
    assert!(
        before.contains(&format!("{JOHN}: mail folder INBOX: 2 missing")),
        "{before}"
    );

    apply(dir.path());
    let out = verify(dir.path(), 0);
    assert!(out.starts_with(&format!("{JOHN}  complete\n")), "{out}");
    assert_eq!(row(&out, "mail", "INBOX"), "mail INBOX 2 2 2 ok: 2 copied");
    assert_eq!(row(&out, "mail", "Sent"), "mail Sent 1 1 1 ok: 1 copied");
    assert_eq!(
        row(&out, "mail", "Junk"),
        "mail Junk 1 0 0 ok: 1 excluded by `exclude`"
    );
    assert_eq!(row(&out, "calendar", "-"), "calendar - 4 4 4 ok: 4 copied");
    let contacts = row(&out, "contacts", "-");
    assert!(contacts.ends_with("copied"), "{out}");
    assert!(
        out.contains("Everything the plan meant to copy arrived."),
        "{out}"
    );

    // The owner deletes a message in the inbox; a new message arrives in Sent at the source,
    // and a new event in the export.
    delete_one(&destination, "");
    put(&source, "Sent", "s2@example.test");
    add_event(&dir.path().join("export/jsmith.ics"), "late@acme.com");
    let out = verify(dir.path(), 1);
    assert!(out.starts_with(&format!("{JOHN}  SHORT\n")), "{out}");
    assert_eq!(
        row(&out, "mail", "INBOX"),
        "mail INBOX 2 1 2 ok: 1 copied, 1 deleted at the destination after the copy"
    );
    assert_eq!(
        row(&out, "mail", "Sent"),
        "mail Sent 2 1 1 SHORT: 1 copied, 1 missing"
    );
    assert_eq!(
        row(&out, "calendar", "-"),
        "calendar - 5 4 4 SHORT: 4 copied, 1 missing"
    );
    assert!(out.contains("missing: Sent/"), "{out}");
    assert!(out.contains("jsmith.ics: UID late@acme.com"), "{out}");
    let short: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "Not everything arrived:")
        .skip(1)
        .collect();
    assert_eq!(
        short,
        [
            format!("  {JOHN}: mail folder Sent: 1 missing"),
            format!("  {JOHN}: calendar collection: 1 missing"),
        ]
    );

    // The JSON says the same, and matches its schema.
    let (code, json, e) = run(dir.path(), &["verify", "plan.yaml", "--json"]);
    assert_eq!(code, 1, "{e}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let schema_path = common::root().join("schemas/verify-output.schema.json");
    if std::env::var_os("MAILPLAN_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&schema_path, mailplan::render::verify::schema()).unwrap();
    }
    let schema_text = std::fs::read_to_string(&schema_path).unwrap_or_default();
    assert_eq!(
        schema_text,
        mailplan::render::verify::schema(),
        "schemas/verify-output.schema.json is out of date: run the tests with MAILPLAN_UPDATE_SCHEMAS=1"
    );
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&value), "{json}");
    assert_eq!(value["summary"]["short"], 1);
    assert_eq!(value["summary"]["items"]["missing"], 2);
    assert_eq!(value["persons"][0]["status"], "short");

    // Another apply copies what was missing; the deleted message stays deleted.
    apply(dir.path());
    let out = verify(dir.path(), 0);
    assert_eq!(
        row(&out, "mail", "INBOX"),
        "mail INBOX 2 1 2 ok: 1 copied, 1 deleted at the destination after the copy"
    );
    assert_eq!(row(&out, "mail", "Sent"), "mail Sent 2 2 2 ok: 2 copied");
}

#[test]
fn dovecot_verifies_per_folder_and_names_the_short_one() {
    let d = dovecot::Dovecot::start(&[("jsmith", "x"), ("new-jsmith", "y")]);
    for (folder, id) in [
        ("INBOX", "m1@example.test"),
        ("INBOX", "m2@example.test"),
        ("Sent", "s1@example.test"),
        ("Entwürfe", "d1@example.test"),
    ] {
        put(&d.maildir("jsmith"), folder, id);
    }
    d.fix_owner();
    let pass = d.admin_password_file();
    let store = |user: &str| {
        format!(
            r#"      imap:
        url: "{url}"
        tls: none
        user: "{user}"
        login: admin
        password: {{ file: "{pass}" }}
        auth: master
"#,
            url = d.url(),
            pass = pass.display()
        )
    };
    let dir = project(&format!(
        "  mail:\n    source:\n{}    destination:\n{}",
        store("{uid}"),
        store("new-{uid}")
    ));
    apply(dir.path());
    let out = verify(dir.path(), 0);
    assert_eq!(row(&out, "mail", "INBOX"), "mail INBOX 2 2 2 ok: 2 copied");
    assert_eq!(row(&out, "mail", "Sent"), "mail Sent 1 1 1 ok: 1 copied");
    assert_eq!(
        row(&out, "mail", "Entwürfe"),
        "mail Entwürfe 1 1 1 ok: 1 copied"
    );

    delete_one(&d.maildir("new-jsmith"), "");
    put(&d.maildir("jsmith"), "Sent", "s2@example.test");
    d.fix_owner();
    let out = verify(dir.path(), 1);
    assert_eq!(
        row(&out, "mail", "INBOX"),
        "mail INBOX 2 1 2 ok: 1 copied, 1 deleted at the destination after the copy"
    );
    assert_eq!(
        row(&out, "mail", "Sent"),
        "mail Sent 2 1 1 SHORT: 1 copied, 1 missing"
    );
    assert!(
        out.contains(&format!("  {JOHN}: mail folder Sent: 1 missing")),
        "{out}"
    );
    assert!(
        !out.contains(&format!("{JOHN}: mail folder INBOX")),
        "{out}"
    );
}

#[test]
fn radicale_verifies_the_calendar_and_the_address_book() {
    let server = radicale::Radicale::start();
    let dir = project(&format!(
        r#"  calendars:
    source: {{ ics: "export/{{uid}}.ics" }}
    destination:
      caldav: {{ url: "{base}alice/migrated-{{uid}}/", login: admin, password: {{ file: admin.pass }} }}
  contacts:
    source: {{ csv: "export/{{uid}}.csv" }}
    destination:
      carddav: {{ url: "{base}alice/contacts-{{uid}}/", login: admin, password: {{ file: admin.pass }}, vcard_version: 3 }}
"#,
        base = server.base
    ));
    std::fs::write(dir.path().join("admin.pass"), "adminpass\n").unwrap();
    apply(dir.path());
    let out = verify(dir.path(), 0);
    assert_eq!(row(&out, "calendar", "-"), "calendar - 4 4 4 ok: 4 copied");
    let contacts = row(&out, "contacts", "-");
    assert!(contacts.contains(" ok: "), "{out}");

    // A contact added to the export is missing until the next apply.
    let csv = dir.path().join("export/jsmith.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let columns = text.lines().next().unwrap().split(',').count();
    let mut fields = vec!["\"\""; columns];
    fields[0] = "\"Late\"";
    fields[1] = "\"Comer\"";
    fields[10] = "\"late.comer@example.test\"";
    text.push_str(&fields.join(","));
    text.push('\n');
    std::fs::write(&csv, text).unwrap();
    let out = verify(dir.path(), 1);
    assert!(
        out.contains(&format!("  {JOHN}: contacts collection: 1 missing")),
        "{out}"
    );
    apply(dir.path());
    verify(dir.path(), 0);
}
