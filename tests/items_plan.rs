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

/// Replaces `from` by `to` in a file, which must hold it (bytes: the fixtures are not all UTF-8).
fn edit(path: &std::path::Path, from: &str, to: &str) {
    let bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` is not in {}", path.display()));
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&bytes[at + from.len()..]);
    std::fs::write(path, out).unwrap();
}

/// The one file of a folder that holds `needle`.
fn file_with(dir: &std::path::Path, needle: &str) -> std::path::PathBuf {
    let hits: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).unwrap().contains(needle))
        .collect();
    assert_eq!(hits.len(), 1, "{needle} in {hits:?}");
    hits[0].clone()
}

#[test]
fn items_changed_at_the_source_are_updated_unless_edited_at_the_destination() {
    let case = Case::new();
    case.run(&["apply", "plan.yaml", "--auto-approve"]);
    let export = case.dir.path().join("export");
    let calendars = case.dir.path().join("out/calendars/jsmith");
    let contacts = case.dir.path().join("out/contacts/jsmith");

    edit(
        &export.join("jsmith.ics"),
        "SUMMARY:A good event between broken ones",
        "SUMMARY:A good event, moved",
    );
    edit(
        &export.join("jsmith.csv"),
        "bob@acme.com,Acme",
        "bob@acme.com,Acme Corp",
    );
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import calendar: 0 new events, 1 changed"),
        "{plan}"
    );
    assert!(
        plan.contains("<- import contacts: 0 new contacts, 1 changed"),
        "{plan}"
    );
    let (json, _) = case.run(&["plan", "plan.yaml", "--json"]);
    assert!(json.contains("\"changed\": 1"), "{json}");

    let (_, err) = case.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(
        err.matches("copied 0 events, updated 1 changed at the source")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("copied 0 contacts, updated 1 changed at the source"),
        "{err}"
    );
    // Updated in place: still one file each, with the new content.
    assert_eq!(std::fs::read_dir(&calendars).unwrap().count(), 2);
    assert_eq!(std::fs::read_dir(&contacts).unwrap().count(), 2);
    let event = file_with(&calendars, "SUMMARY:A good event, moved");
    let bob = file_with(&contacts, "bob@acme.com");
    assert!(
        std::fs::read_to_string(&bob).unwrap().contains("Acme Corp"),
        "{}",
        std::fs::read_to_string(&bob).unwrap()
    );
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(!plan.contains("<- import"), "{plan}");

    // The owner edits the event at the destination, and it changes at the source too: the
    // owner's version stays, and the plan and the apply say so.
    edit(&event, "SUMMARY:A good event, moved", "SUMMARY:Mine now");
    edit(
        &export.join("jsmith.ics"),
        "SUMMARY:A good event, moved",
        "SUMMARY:A good event, moved again",
    );
    edit(&export.join("jsmith.csv"), "Acme Corp", "Acme Group");
    let (plan, _) = case.run(&["plan", "plan.yaml", "--out", "reviewed.plan"]);
    assert!(!plan.contains("<- import calendar"), "{plan}");
    assert!(
        plan.contains(
            "calendar: 1 items changed at the source were also edited at the destination"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("<- import contacts: 0 new contacts, 1 changed"),
        "{plan}"
    );
    // Edited between the reviewed plan and its apply (a 412 from a server): not overwritten
    // either.
    edit(&bob, "Acme Corp", "Acme (mine)");
    let (_, err) = case.run(&["apply", "reviewed.plan"]);
    assert!(
        err.contains("copied 0 contacts (0 B)")
            && err.contains("1 changed at the source but edited at the destination skipped"),
        "{err}"
    );
    let text = std::fs::read_to_string(&event).unwrap();
    assert!(text.contains("SUMMARY:Mine now"), "{text}");
    let text = std::fs::read_to_string(&bob).unwrap();
    assert!(text.contains("Acme (mine)"), "{text}");
}

/// A Maildir-to-Maildir mail case: `export/mail/jsmith` into `out/mail/jsmith`, with these
/// extra keys under `items.mail` (folder mapping, say).
struct MailCase {
    dir: tempfile::TempDir,
}

impl MailCase {
    fn new(mail_extra: &str) -> MailCase {
        let dir = tempfile::tempdir().unwrap();
        let six = common::root().join("tests/fixtures/scenario6_mailbox");
        for f in ["source.ldif", "destination.ldif"] {
            std::fs::copy(six.join(f), dir.path().join(f)).unwrap();
        }
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
  mail:
    source: {{ maildir: "export/mail/{{uid}}" }}
    destination: {{ maildir: "out/mail/{{uid}}" }}
{mail_extra}"#
            ),
        )
        .unwrap();
        MailCase { dir }
    }

    fn source(&self) -> std::path::PathBuf {
        self.dir.path().join("export/mail/jsmith")
    }

    fn destination(&self) -> std::path::PathBuf {
        self.dir.path().join("out/mail/jsmith")
    }

    /// Writes a message file into a folder directory of the source (`""`: the inbox), made as
    /// it is on disk (the name is not checked, as another tool might have written it).
    fn put(&self, dir_name: &str, file: &str, data: &str) {
        let dir = self.source().join(dir_name);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("cur").join(file), data).unwrap();
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

/// Every entry below a directory, as paths relative to it, sorted.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mail(id: &str, subject: &str) -> String {
    format!(
        "Message-ID: <{id}>\nFrom: a@example.test\nSubject: {subject}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nbody of {id}\n"
    )
}

#[test]
fn hostile_folder_names_are_reported_and_nothing_is_written_outside_the_mailbox() {
    // Notes' separator is `\`: a folder named `\` maps to `/`, which on disk would be `..`.
    let case = MailCase::new("    folders: { separator: \"\\\\\" }\n");
    case.put("", "1.M1P1.a:2,S", &mail("in@x", "inbox"));
    case.put(".\\", "2.M1P1.a:2,S", &mail("s1@x", "separator 1"));
    case.put(".\\", "3.M1P1.a:2,S", &mail("s2@x", "separator 2"));
    // Modified UTF-7 spellings of `/` and `..`, which a strict reading refuses.
    case.put(".&AC8-", "4.M1P1.a:2,S", &mail("u1@x", "slash"));
    case.put(".&AC4-&AC4-", "5.M1P1.a:2,S", &mail("u2@x", "dots"));
    // A folder with the separator inside a name is an ordinary nested folder.
    case.put(".Projects\\2024", "6.M1P1.a:2,S", &mail("p@x", "project"));

    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(
        plan.contains(
            "mail: bad item skipped: folder `\\`: its destination name `/` cannot be stored safely"
        ),
        "{plan}"
    );
    assert!(plan.contains("its 2 messages are not copied"), "{plan}");
    assert!(
        plan.contains(".&AC8-: the folder name cannot be read"),
        "{plan}"
    );
    assert!(
        plan.contains(".&AC4-&AC4-: the folder name cannot be read"),
        "{plan}"
    );
    assert!(
        plan.contains("<- import mail: 2 new messages in 2 folders"),
        "{plan}"
    );
    assert!(plan.contains("; 3 bad items skipped)."), "{plan}");

    case.run(&["apply", "plan.yaml", "--auto-approve"]);
    // Nothing beside the person's mailbox, and in it only the inbox and Projects/2024.
    let outside: Vec<String> = std::fs::read_dir(case.dir.path().join("out/mail"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outside, ["jsmith"]);
    let folders: Vec<String> = std::fs::read_dir(case.destination())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(folders, [".Projects.2024"]);
    let copied = tree(&case.destination())
        .into_iter()
        .filter(|p| p.contains("/cur/") || p.starts_with("cur/"))
        .count();
    assert_eq!(copied, 2);

    // A rerun plans nothing and still names the problems.
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
    assert!(plan.contains("folder `\\`"), "{plan}");
}

/// One post as two paths deliver it: `list` adds the list server's `Received:` and a footer.
fn post(list: bool) -> String {
    let mut m = String::new();
    if list {
        m.push_str(
            "Received: from lists.example.org by mail.acme.com; Mon, 1 Jan 2024 10:00:09 +0000\n",
        );
    }
    m.push_str("Received: from mx.example.org by example.org; Mon, 1 Jan 2024 10:00:01 +0000\n");
    m.push_str("Message-ID: <release-1.0@lists.example.org>\nFrom: Ann <ann@example.org>\nSubject: Release 1.0\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nThe release is out.\n");
    if list {
        m.push_str("-- \ndev mailing list\n");
    }
    m
}

#[test]
fn a_ledger_from_before_variants_stands_for_one_message_of_its_message_id() {
    let case = MailCase::new("");
    case.put("", "1.M1P1.a:2,S", &post(true));
    case.put("", "2.M1P1.a:2,S", &post(false));
    case.put("", "3.M1P1.a:2,S", &mail("dup@x", "twice"));
    case.put("", "4.M1P1.a:2,S", &mail("dup@x", "twice"));
    // The earlier version copied the first message with that Message-ID (the list copy) and
    // recorded it by its Message-ID alone; its owner has deleted it at the destination since.
    let root = case.dir.path().canonicalize().unwrap();
    let db = mailplan::state::StateDb::open(&root.join(".mailplan")).unwrap();
    let run = db.begin_run("plan.yaml", "x").unwrap();
    db.ledger_record(&mailplan::state::LedgerItem {
        run,
        mailbox: format!("maildir:{}", root.join("out/mail/jsmith").display()),
        kind: "mail".into(),
        folder: Some("INBOX".into()),
        identity: "INBOX\tmid:release-1.0@lists.example.org".into(),
        size: Some(300),
    })
    .unwrap();
    drop(db);

    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    // The direct copy, never copied, and the duplicate once; the deleted list copy stays deleted.
    assert!(
        plan.contains("<- import mail: 2 new messages in 1 folder"),
        "{plan}"
    );
    assert!(plan.contains("of 4"), "{plan}");
    assert!(
        plan.contains("mail: 1 items copied earlier were deleted at the destination since"),
        "{plan}"
    );
    assert!(plan.contains("mail: 1 duplicate folded"), "{plan}");
    case.run(&["apply", "plan.yaml", "--auto-approve"]);
    let stored: Vec<String> = std::fs::read_dir(case.destination().join("cur"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&post(false)));
    assert!(stored.contains(&mail("dup@x", "twice")));
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
}

#[test]
fn a_maildir_folder_tree_arrives_whole_with_its_subscriptions() {
    let case = MailCase::new("    since: 2020-01-01\n");
    case.put("", "1.M1P1.a:2,S", &mail("in@x", "inbox"));
    for dir in [".Empty", ".Empty.Nested", ".Old"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(case.source().join(dir).join(sub)).unwrap();
        }
    }
    // A message older than `since`: not copied, but its folder is part of the tree.
    case.put(".Old", "2.M1P1.a:2,S", &mail("old@x", "old"));
    let old = case.source().join(".Old/cur/2.M1P1.a:2,S");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    // The subscriptions file in the older form (Maildir++ names, no header).
    std::fs::write(case.source().join("subscriptions"), "INBOX\nEmpty.Nested\n").unwrap();

    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import mail: 1 new message in 1 folder (106 B) of 1, 3 folders to create, 2 to subscribe"),
        "{plan}"
    );
    case.run(&["apply", "plan.yaml", "--auto-approve"]);
    for dir in [".Empty", ".Empty.Nested", ".Old"] {
        for sub in ["cur", "new", "tmp"] {
            assert!(
                case.destination().join(dir).join(sub).is_dir(),
                "{dir}/{sub}"
            );
        }
        assert!(case.destination().join(dir).join("maildirfolder").is_file());
    }
    // Written as Dovecot 2.3 writes it: a version line, an empty line, levels split by tabs.
    assert_eq!(
        std::fs::read_to_string(case.destination().join("subscriptions")).unwrap(),
        "V\t2\n\nINBOX\nEmpty\tNested\n"
    );
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
}
