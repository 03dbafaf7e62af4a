//! Items through `plan` and `apply` without a server: Maildir, ICS and CSV sources into Maildir,
//! ICS and vCard folders. Bad items (a broken ICS event, CSV rows with the wrong number of fields
//! or bytes that are not UTF-8) are reported with their file and line in the plan and the apply,
//! skipped, recorded in the state, and the rest is copied; a rerun copies nothing. An apply that
//! skipped a bad item exits 1 (it did not all arrive), also when it had nothing else to do.

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
        self.run_code(args, 0)
    }

    /// Runs mailplan, which must exit with `code`; its stdout and stderr.
    fn run_code(&self, args: &[&str], code: i32) -> (String, String) {
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
        assert_eq!(out.status.code(), Some(code), "{o}{e}");
        (o, e)
    }

    /// An apply of this case's wave, whose bad items make it exit 1.
    fn apply(&self) -> (String, String) {
        let (o, e) = self.run_code(&["apply", "plan.yaml", "--auto-approve"], 1);
        assert!(e.contains("Apply finished with errors."), "{e}");
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

    let (_, err) = case.apply();
    assert!(err.contains("copied 2 events"), "{err}");
    assert!(err.contains("copied 2 contacts"), "{err}");
    assert!(err.contains("bad items skipped"), "{err}");
    assert!(err.contains("  bad item: "), "{err}");
    // The summary names them too, and counts them: the run did not all arrive.
    assert!(
        err.contains("bad item skipped: CN=John Smith,OU=Sales,O=Acme contact: "),
        "{err}"
    );
    assert!(
        err.contains("0 failed, 0 skipped, 8 bad items skipped"),
        "{err}"
    );
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

    // A rerun copies nothing (bad items are still reported, never copied), and an apply with
    // nothing to change still says they are missing, and fails.
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(!plan.contains("<- import"), "{plan}");
    assert!(plan.contains("bad item skipped"), "{plan}");
    assert!(plan.contains("No changes."), "{plan}");
    assert!(
        !plan.contains("the destination matches the plan file"),
        "{plan}"
    );
    let (_, err) = case.apply();
    assert!(
        err.contains("0 applied, 0 failed, 0 skipped, 8 bad items skipped"),
        "{err}"
    );
}

#[test]
fn bad_items_of_a_person_with_nothing_else_to_copy_are_recorded() {
    let case = Case::new();
    let export = case.dir.path().join("export");
    // Only broken events in the calendar, only bad rows in the contacts: no import of either.
    std::fs::write(
        export.join("jsmith.ics"),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:no UID, no start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    std::fs::write(
        export.join("jsmith.csv"),
        "firstName,lastName,email\nOnly,Two\n",
    )
    .unwrap();
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(!plan.contains("<- import calendar"), "{plan}");
    assert!(!plan.contains("<- import contacts"), "{plan}");
    assert!(plan.contains("calendar: bad item skipped"), "{plan}");
    assert!(plan.contains("contacts: bad item skipped: "), "{plan}");
    let (_, err) = case.apply();
    assert!(err.contains("2 bad items skipped"), "{err}");
    assert!(err.contains("event: "), "{err}");
    let (items, _) = case.run(&["state", "items", "plan.yaml", "--bad"]);
    assert!(items.contains("bad item skipped (event)"), "{items}");
    assert!(items.contains("bad item skipped (contact)"), "{items}");
    assert!(items.contains("jsmith.csv:2"), "{items}");
}

#[test]
fn an_item_deleted_at_the_destination_is_not_copied_back() {
    let case = Case::new();
    case.apply();
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
        plan.contains("calendar: 1 item copied earlier and deleted at the destination since"),
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
    case.apply();
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

    let (_, err) = case.apply();
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
        plan.contains("calendar: 1 item changed at the source and also edited at the destination"),
        "{plan}"
    );
    assert!(
        plan.contains("<- import contacts: 0 new contacts, 1 changed"),
        "{plan}"
    );
    // Edited between the reviewed plan and its apply (a 412 from a server): not overwritten
    // either.
    edit(&bob, "Acme Corp", "Acme (mine)");
    let (_, err) = case.run_code(&["apply", "reviewed.plan"], 1);
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

/// Two exports concatenated into one file, each with its own `Office` time zone (Zurich, then
/// Boston), the first one's END misspelt; then a third export defining `Office` as the first
/// does.
const CONCATENATED: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Lotus Development Corporation//NONSGML Notes 9.0.1//EN_C\r
X-WR-CALNAME:Zurich\r
BEGIN:VTIMEZONE\r
TZID:Office\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0100\r
TZNAME:CET\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:zurich-standup@acme.com\r
DTSTAMP:20240101T000000Z\r
DTSTART;TZID=Office:20240115T090000\r
DTEND;TZID=Office:20240115T093000\r
SUMMARY:Stand-up in Zurich\r
END:VEVENT\r
END:VCALENDA\r
BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Lotus Development Corporation//NONSGML Notes 9.0.1//EN_C\r
X-WR-CALNAME:Boston\r
BEGIN:VTIMEZONE\r
TZID:Office\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0500\r
TZNAME:EST\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:boston-review@acme.com\r
DTSTAMP:20240101T000000Z\r
DTSTART;TZID=Office:20240116T090000\r
DTEND;TZID=Office:20240116T100000\r
SUMMARY:Review in Boston\r
END:VEVENT\r
END:VCALENDAR\r
BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Lotus Development Corporation//NONSGML Notes 9.0.1//EN_C\r
X-WR-CALNAME:Zurich again\r
BEGIN:VTIMEZONE\r
TZID:Office\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0100\r
TZNAME:CET\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:zurich-lunch@acme.com\r
DTSTAMP:20240101T000000Z\r
DTSTART;TZID=Office:20240117T120000\r
SUMMARY:Lunch in Zurich\r
END:VEVENT\r
END:VCALENDAR\r
";

/// The instant an event written to a file starts at, in UTC (`HH:MM` on its day), read as a
/// calendar program would: the TZID of its DTSTART, looked up among the VTIMEZONEs of the same
/// file (whose zones here have one fixed offset).
fn utc_start(ics: &str) -> String {
    let lines: Vec<&str> = ics.lines().collect();
    let start = lines
        .iter()
        .find(|l| l.starts_with("DTSTART;TZID="))
        .unwrap_or_else(|| panic!("no DTSTART with a TZID in {ics}"));
    let (tzid, local) = start["DTSTART;TZID=".len()..].split_once(':').unwrap();
    let zone = lines
        .iter()
        .position(|l| *l == format!("TZID:{tzid}"))
        .unwrap_or_else(|| panic!("no VTIMEZONE `{tzid}` in {ics}"));
    let offset = lines[zone..]
        .iter()
        .find_map(|l| l.strip_prefix("TZOFFSETTO:"))
        .unwrap();
    let sign: i32 = if offset.starts_with('-') { -1 } else { 1 };
    let off =
        sign * (offset[1..3].parse::<i32>().unwrap() * 60 + offset[3..5].parse::<i32>().unwrap());
    let minutes =
        local[9..11].parse::<i32>().unwrap() * 60 + local[11..13].parse::<i32>().unwrap() - off;
    format!("{}T{:02}:{:02}Z", &local[..8], minutes / 60, minutes % 60)
}

#[test]
fn each_calendar_of_a_concatenated_export_keeps_its_own_time_zones() {
    let case = Case::new();
    std::fs::write(case.dir.path().join("export/jsmith.ics"), CONCATENATED).unwrap();
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(plan.contains("<- import calendar: 3 new events"), "{plan}");
    // The misspelt END is named where it is; nothing is lost for it.
    assert!(plan.contains("jsmith.ics:21"), "{plan}");
    // The misspelt END and the case's bad contacts make the run fail, named.
    let (_, err) = case.apply();
    assert!(err.contains("copied 3 events"), "{err}");

    let out = case.dir.path().join("out/calendars/jsmith");
    let read = |needle: &str| std::fs::read_to_string(file_with(&out, needle)).unwrap();
    // Each event starts at the instant its own calendar said.
    let zurich = read("UID:zurich-standup@acme.com");
    assert_eq!(utc_start(&zurich), "20240115T08:00Z", "{zurich}");
    let boston = read("UID:boston-review@acme.com");
    assert_eq!(utc_start(&boston), "20240116T14:00Z", "{boston}");
    let lunch = read("UID:zurich-lunch@acme.com");
    assert_eq!(utc_start(&lunch), "20240117T11:00Z", "{lunch}");
    // With its own calendar's properties, and one VTIMEZONE each.
    assert!(boston.contains("X-WR-CALNAME:Boston\r\n"), "{boston}");
    assert!(zurich.contains("X-WR-CALNAME:Zurich\r\n"), "{zurich}");
    for ics in [&zurich, &boston, &lunch] {
        assert_eq!(ics.matches("BEGIN:VTIMEZONE").count(), 1, "{ics}");
    }
    // The zone defined the same way twice keeps its name; the one defined otherwise is renamed.
    assert!(
        zurich.contains("DTSTART;TZID=Office:20240115T090000"),
        "{zurich}"
    );
    assert!(
        lunch.contains("DTSTART;TZID=Office:20240117T120000"),
        "{lunch}"
    );
    assert!(!boston.contains("TZID=Office:"), "{boston}");

    // A rerun copies nothing.
    let (plan, _) = case.run(&["plan", "plan.yaml"]);
    assert!(!plan.contains("<- import calendar"), "{plan}");
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

    /// An apply that leaves something out (a bad item): it names it and exits 1.
    fn apply_leaving_out(&self) -> String {
        let out = Command::cargo_bin("mailplan")
            .unwrap()
            .args(["apply", "plan.yaml", "--auto-approve"])
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("Apply finished with errors."), "{err}");
        err
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

    case.apply_leaving_out();
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
        plan.contains("mail: 1 item copied earlier and deleted at the destination since"),
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
