//! Calendars and contacts through `plan` and `apply` into a real Radicale (CalDAV/CardDAV) with
//! an admin credential: the plan counts what apply creates, and a rerun creates nothing.

mod common;
#[path = "servers/radicale.rs"]
mod radicale;

use assert_cmd::Command;
use mailplan::items::calendar::{CalDav, CalendarStore, DavConfig};
use mailplan::items::contacts::{CardDav, ContactStore, VcardVersion};
use mailplan::items::dav::{CollectionKind, DavCollection, Resource};
use radicale::Radicale;

fn run(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let (ok, o, e) = run_any(dir, args);
    assert!(ok, "{o}{e}");
    (o, e)
}

/// Runs mailplan and returns whether it succeeded with its output, for runs whose exit code is
/// not what the test is about.
fn run_any(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number in `<- import KIND: N new …`.
fn planned(plan: &str, kind: &str) -> usize {
    let marker = format!("<- import {kind}: ");
    let at = plan
        .find(&marker)
        .unwrap_or_else(|| panic!("no {kind} import:\n{plan}"));
    plan[at + marker.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap()
}

/// A plan folder copying jsmith's calendar and contacts into alice's collections on `server`;
/// returns it with the URLs of the calendar and the address book.
fn project(server: &Radicale) -> (tempfile::TempDir, String, String) {
    let ics = std::fs::read_to_string(common::root().join("tests/fixtures/items/notes-export.ics"))
        .unwrap();
    project_with(server, &ics)
}

/// [`project`] with this text as jsmith's exported calendar.
fn project_with(server: &Radicale, ics: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let six = root.join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(six.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("export")).unwrap();
    std::fs::write(dir.path().join("export/jsmith.ics"), ics).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/items/contacts.csv"),
        dir.path().join("export/jsmith.csv"),
    )
    .unwrap();
    std::fs::write(dir.path().join("admin.pass"), "adminpass\n").unwrap();
    let calendar = server.collection("alice", "migrated-jsmith");
    let book = server.collection("alice", "contacts-jsmith");
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
  calendars:
    source: {{ ics: "export/{{uid}}.ics" }}
    destination:
      caldav: {{ url: "{base}alice/migrated-{{uid}}/", login: admin, password: {{ file: admin.pass }} }}
  contacts:
    source: {{ csv: "export/{{uid}}.csv" }}
    destination:
      carddav: {{ url: "{base}alice/contacts-{{uid}}/", login: admin, password: {{ file: admin.pass }}, vcard_version: 3 }}
"#,
            base = server.base
        ),
    )
    .unwrap();

    (dir, calendar, book)
}

#[test]
fn calendars_and_contacts_go_into_radicale_once() {
    let server = Radicale::start();
    let (dir, calendar, book) = project(&server);
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    let events = planned(&plan, "calendar");
    let contacts = planned(&plan, "contacts");
    assert!(events > 0 && contacts > 0, "{plan}");
    let (_, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains(&format!("copied {events} events")), "{err}");
    assert!(
        err.contains(&format!("copied {contacts} contacts")),
        "{err}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = |url: &str| DavConfig {
        url: url.to_string(),
        user: Some("alice".into()),
        password: Some("alicepass".into()),
        ..Default::default()
    };
    let (held_events, held_cards) = rt.block_on(async {
        let c = CalDav::new(&cfg(&calendar)).unwrap().list().await.unwrap();
        let b = CardDav::new(&cfg(&book), VcardVersion::V3)
            .unwrap()
            .list()
            .await
            .unwrap();
        (c.len(), b.len())
    });
    assert_eq!(held_events, events);
    assert_eq!(held_cards, contacts);

    // A rerun creates nothing.
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
    // And without the ledger, the destination itself says what is there.
    std::fs::remove_dir_all(dir.path().join(".mailplan")).unwrap();
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
}

/// Replaces `from` by `to` in a file, which must hold it.
fn edit(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` is not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Every resource of a collection, read as alice (the owner).
fn resources(rt: &tokio::runtime::Runtime, url: &str, kind: CollectionKind) -> Vec<Resource> {
    let cfg = DavConfig {
        url: url.to_string(),
        user: Some("alice".into()),
        password: Some("alicepass".into()),
        ..Default::default()
    };
    rt.block_on(DavCollection::new(&cfg, kind).unwrap().resources())
        .unwrap()
}

/// The one resource whose data holds `needle`.
fn holding<'a>(all: &'a [Resource], needle: &str) -> &'a Resource {
    let hits: Vec<&Resource> = all.iter().filter(|r| r.data.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "`{needle}` in {all:#?}");
    hits[0]
}

#[test]
fn changes_at_the_source_update_radicale_but_never_the_owners_edits() {
    let server = Radicale::start();
    let (dir, calendar, book) = project(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    let events = resources(&rt, &calendar, CollectionKind::Calendar).len();
    let cards = resources(&rt, &book, CollectionKind::AddressBook).len();

    // One event's title and one contact's job title change at the source.
    let ics = dir.path().join("export/jsmith.ics");
    let csv = dir.path().join("export/jsmith.csv");
    edit(
        &ics,
        "SUMMARY:Call with Boston office",
        "SUMMARY:Call with Boston office (moved)",
    );
    edit(&csv, "\"Head of Sales\"", "\"VP Sales\"");
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import calendar: 0 new events, 1 changed"),
        "{plan}"
    );
    assert!(
        plan.contains("<- import contacts: 0 new contacts, 1 changed"),
        "{plan}"
    );
    let (_, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(
        err.contains("copied 0 events, updated 1 changed at the source"),
        "{err}"
    );
    assert!(
        err.contains("copied 0 contacts, updated 1 changed at the source"),
        "{err}"
    );
    // Updated in place: the new content, still one resource each.
    let held = resources(&rt, &calendar, CollectionKind::Calendar);
    assert_eq!(held.len(), events);
    holding(&held, "SUMMARY:Call with Boston office (moved)");
    let held = resources(&rt, &book, CollectionKind::AddressBook);
    assert_eq!(held.len(), cards);
    holding(&held, "TITLE:VP Sales");
    assert!(!held.iter().any(|r| r.data.contains("Head of Sales")));
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");

    // The owner edits the event at the destination; it changes at the source too, and so does
    // another event.
    let held = resources(&rt, &calendar, CollectionKind::Calendar);
    let mine = holding(&held, "SUMMARY:Call with Boston office (moved)");
    let owner = DavCollection::new(
        &DavConfig {
            url: calendar.clone(),
            user: Some("alice".into()),
            password: Some("alicepass".into()),
            ..Default::default()
        },
        CollectionKind::Calendar,
    )
    .unwrap();
    let uid = "B1C2D3E4F5A6B7C8C1258A9A00422222-Lotus_Notes_Generated";
    let edited = mine
        .data
        .replace("Call with Boston office (moved)", "Call Boston (mine)");
    let put = rt
        .block_on(async {
            owner.list().await?;
            owner.put(uid, &edited, Some(&mine.etag)).await
        })
        .unwrap();
    assert_eq!(put, mailplan::items::store::PutOutcome::Updated);
    edit(
        &ics,
        "Call with Boston office (moved)",
        "Call with Boston office (moved again)",
    );
    edit(
        &ics,
        "SUMMARY:Send Q1 forecast",
        "SUMMARY:Send Q1 forecast (revised)",
    );
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(
        plan.contains("<- import calendar: 0 new events, 1 changed"),
        "{plan}"
    );
    assert!(
        plan.contains("calendar: 1 item changed at the source and also edited at the destination"),
        "{plan}"
    );
    let (_, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(
        err.contains("copied 0 events, updated 1 changed at the source"),
        "{err}"
    );
    assert!(
        err.contains("1 changed at the source but edited at the destination skipped"),
        "{err}"
    );
    let held = resources(&rt, &calendar, CollectionKind::Calendar);
    assert_eq!(held.len(), events);
    holding(&held, "Call Boston (mine)");
    holding(&held, "SUMMARY:Send Q1 forecast (revised)");
    assert!(!held.iter().any(|r| r.data.contains("(moved again)")));
    // Reported again on the next plan (with the subject's messages, which the text leaves out
    // for an unchanged subject), never overwritten.
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml", "--json"]);
    assert!(!plan.contains("\"import_"), "{plan}");
    assert!(
        plan.contains("calendar: 1 item changed at the source and also edited at the destination"),
        "{plan}"
    );
}

/// The UID of every resource of a collection, read as its owner, sorted.
fn uids(rt: &tokio::runtime::Runtime, url: &str, user: (&str, &str)) -> Vec<String> {
    let cfg = DavConfig {
        url: url.to_string(),
        user: Some(user.0.into()),
        password: Some(user.1.into()),
        ..Default::default()
    };
    let mut out: Vec<String> = rt
        .block_on(
            DavCollection::new(&cfg, CollectionKind::Calendar)
                .unwrap()
                .resources(),
        )
        .unwrap()
        .iter()
        .map(|r| mailplan::items::store::first_uid(&r.data).unwrap())
        .collect();
    out.sort();
    out
}

/// One VEVENT per UID, in one VCALENDAR.
fn calendar_of(uids: &[&str]) -> String {
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for (i, uid) in uids.iter().enumerate() {
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n\
             DTSTART:202402{:02}T090000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n",
            i + 1
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    ics
}

#[test]
fn any_uid_arrives_as_itself_and_only_in_its_own_calendar() {
    let server = Radicale::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Bob has a calendar of his own, which the migration credential may write to too.
    let bob = server.collection("bob", "calendar");
    let bobs = CalDav::new(&DavConfig {
        url: bob.clone(),
        user: Some("bob".into()),
        password: Some("bobpass".into()),
        ..Default::default()
    })
    .unwrap();
    let (own, _) = mailplan::items::calendar::ics::parse_ics(
        calendar_of(&["bobs-own@acme.com"]).as_bytes(),
        "bob.ics",
    );
    rt.block_on(bobs.put(&own[0], None)).unwrap();

    // UIDs that servers would read as paths if they went into a URL as they are (a slash
    // encoded as %2F is decoded by Radicale), or that are no file name at all.
    let odd = [
        "040000008200E00074C5B7101A82E008/2@acme.com",
        "../../bob/calendar/intruder",
        "100% sure?#x=y&a b",
        ".hidden",
        "plain-1@acme.com",
    ];
    let (dir, calendar, _) = project_with(&server, &calendar_of(&odd));
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert_eq!(planned(&plan, "calendar"), odd.len(), "{plan}");
    let (_, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("copied 5 events"), "{err}");
    assert!(!err.contains("bad item"), "{err}");

    // Each one is in the person's calendar under its own UID; nothing reached Bob's.
    let mut expected: Vec<String> = odd.iter().map(|u| u.to_string()).collect();
    expected.sort();
    assert_eq!(uids(&rt, &calendar, ("alice", "alicepass")), expected);
    assert_eq!(
        uids(&rt, &bob, ("bob", "bobpass")),
        ["bobs-own@acme.com"],
        "an event was written outside the person's calendar"
    );
    let (items, _) = run(dir.path(), &["state", "items", "plan.yaml"]);
    assert!(items.contains("5 events copied"), "{items}");

    // A rerun finds every one of them, and a change at the source updates it in place.
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(plan.contains("No changes."), "{plan}");
    let ics = dir.path().join("export/jsmith.ics");
    edit(&ics, "SUMMARY:Event 0", "SUMMARY:Event 0 (moved)");
    let (_, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(
        err.contains("copied 0 events, updated 1 changed at the source"),
        "{err}"
    );
    let held = resources(&rt, &calendar, CollectionKind::Calendar);
    assert_eq!(held.len(), odd.len());
    holding(&held, "SUMMARY:Event 0 (moved)");
}

#[test]
fn a_put_the_server_refuses_is_a_bad_item_without_a_ledger_row_and_is_tried_again() {
    // The calendar is deleted at the destination (by its owner, or an administrator) right
    // after the first event is stored: Radicale answers every later PUT with 409 Conflict, as
    // the collection it would go into is not there.
    let server = Radicale::start_with_hook(
        "d=collection-root/alice/migrated-jsmith; \
         if ls \"$d\" | grep -q ics; then rm -rf \"$d\"; fi",
    );
    let (dir, calendar, _) = project(&server);
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert_eq!(planned(&plan, "calendar"), 4, "{plan}");
    let (_, _, err) = run_any(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(err.contains("copied 1 event "), "{err}");
    // Each refused event is named by its file and UID, with the server's answer.
    let refused: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bad item: ") && l.contains("jsmith.ics: UID "))
        .collect();
    assert_eq!(refused.len(), 3, "{err}");
    assert!(refused.iter().all(|l| l.contains("409")), "{err}");

    // Only the event that arrived is in the ledger.
    let (items, _) = run(dir.path(), &["state", "items", "plan.yaml", "--bad"]);
    assert!(items.contains("1 event copied"), "{items}");
    assert!(items.contains("3 bad items skipped (event)"), "{items}");
    assert!(
        resources(
            &tokio::runtime::Runtime::new().unwrap(),
            &calendar,
            CollectionKind::Calendar
        )
        .is_empty()
    );

    // The next plan tries the refused ones again (the one that arrived and was deleted with
    // the calendar is its owner's business, and stays deleted).
    let (plan, _) = run(dir.path(), &["plan", "plan.yaml"]);
    assert!(plan.contains("<- import calendar: 3 new events"), "{plan}");
    assert!(
        plan.contains("calendar: 1 item copied earlier and deleted at the destination"),
        "{plan}"
    );
}
