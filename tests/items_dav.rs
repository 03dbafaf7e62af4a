//! Calendars and contacts through `plan` and `apply` into a real Radicale (CalDAV/CardDAV) with
//! an admin credential: the plan counts what apply creates, and a rerun creates nothing.

mod common;
#[path = "servers/radicale.rs"]
mod radicale;

use assert_cmd::Command;
use mailplan::items::calendar::{CalDav, CalendarStore, DavConfig};
use mailplan::items::contacts::{CardDav, ContactStore, VcardVersion};
use radicale::Radicale;

fn run(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .args(args)
        .current_dir(dir)
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

#[test]
fn calendars_and_contacts_go_into_radicale_once() {
    let server = Radicale::start();
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
