//! Items into Carbonio with the flavor's defaults: a plan gives the server's address once
//! (`destination.url`), and calendars and contacts go to Carbonio's `/dav/<account>/Calendar/`
//! and `/dav/<account>/Contacts/`, mail to its IMAP with the admin's SASL PLAIN login and the
//! account as authzid, with no per-person URL in the plan. Planned against a real Radicale
//! serving the same paths.

mod common;
#[path = "servers/radicale.rs"]
mod radicale;

use assert_cmd::Command;
use mailplan::items::calendar::{self, CalDav, CalendarStore, DavConfig, PutOutcome};
use mailplan::spec::{self, CalendarDestination, ContactDestination, ImapAuth, MailStore};
use radicale::Radicale;

const PLAN: &str = r#"version: 1
source:
  profile: ldap
  directory:
    ldif: source.ldif
destination:
  flavor: carbonio
  directory:
    ldif: destination.ldif
  domains: [acme.com]
  cos: default
  url: URL
matching:
  mode: batch
  ignore:
    - source: "uid=bbrown,ou=people,dc=old,dc=test"
    - source: "uid=cgreen,ou=people,dc=old,dc=test"
    - source: "uid=adoe,ou=people,dc=old,dc=test"
    - source: "uid=mlee,ou=people,dc=old,dc=test"
items:
  calendars:
    source:
      ics: "export/{uid}.ics"
    destination:
      caldav: { login: admin, password: { file: admin.pass } }
  contacts:
    source:
      csv: "export/{uid}.csv"
    destination:
      carddav: { login: admin, password: { file: admin.pass } }
"#;

fn text_of(t: &spec::Template) -> String {
    t.parts
        .iter()
        .map(|p| match p {
            spec::TemplatePart::Literal(s) => s.clone(),
            spec::TemplatePart::Attr(a) => format!("{{{a}}}"),
            spec::TemplatePart::Role(_) => "{role}".to_string(),
        })
        .collect()
}

#[test]
fn defaults_come_from_the_servers_address() {
    let text = PLAN.replace("URL", "https://mail.acme.com/")
        + "  mail:\n    source:\n      maildir: \"mail/{uid}\"\n    destination:\n      imap: { login: admin@acme.com, password: { env: CARBONIO_ADMIN_PASSWORD } }\n";
    let spec = spec::parse(std::path::Path::new("plan.yaml"), &text)
        .unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
    let Some(CalendarDestination::CalDav(cal)) = spec.items.calendars.map(|c| c.destination) else {
        panic!("no caldav")
    };
    assert_eq!(
        text_of(&cal.url),
        "https://mail.acme.com/dav/{role}/Calendar/"
    );
    assert!(matches!(
        cal.url.parts[1],
        spec::TemplatePart::Role(spec::Role::PrimarySmtp)
    ));
    let Some(ContactDestination::CardDav(book)) = spec.items.contacts.map(|c| c.destination) else {
        panic!("no carddav")
    };
    assert_eq!(
        text_of(&book.url),
        "https://mail.acme.com/dav/{role}/Contacts/"
    );
    let Some(MailStore::Imap(imap)) = spec.items.mail.map(|m| m.destination) else {
        panic!("no imap")
    };
    assert_eq!((imap.host.as_str(), imap.port), ("mail.acme.com", 993));
    assert_eq!(imap.auth, ImapAuth::Plain);
    assert_eq!(imap.login.as_deref(), Some("admin@acme.com"));
    assert!(matches!(
        imap.user.parts[..],
        [spec::TemplatePart::Role(spec::Role::PrimarySmtp)]
    ));
}

#[test]
fn without_the_servers_address_the_url_is_asked_for_at_its_place() {
    let text = PLAN.replace("  url: URL\n", "");
    let e = spec::parse(std::path::Path::new("plan.yaml"), &text).unwrap_err();
    let p = e
        .problems()
        .iter()
        .find(|p| p.code() == spec::codes::MISSING_KEY)
        .expect("a missing key");
    assert!(
        p.message().contains("`items.calendars.destination.caldav`"),
        "{}",
        p.message()
    );
    assert!(p.help_text().unwrap().contains("destination.url"));
    // Another flavor has no such key.
    let text = PLAN.replace("flavor: carbonio", "flavor: ldap").replace(
        "  cos: default\n",
        "  container: \"ou=people,dc=acme,dc=com\"\n",
    );
    let e = spec::parse(std::path::Path::new("plan.yaml"), &text).unwrap_err();
    assert!(
        e.problems()
            .iter()
            .any(|p| p.code() == spec::codes::WRONG_FLAVOR
                && p.message() == "`destination.url` is only for `flavor: carbonio`")
    );
}

/// `plan` takes each person's calendar inventory at `/dav/<account>/Calendar/` of the address the
/// plan gives once (Radicale serves any path its rights allow, so it stands in for Carbonio's
/// DAV), and a calendar copied there is what the next plan finds.
#[tokio::test]
async fn a_plan_with_no_per_person_urls_uses_carbonios_dav_paths() {
    let server = Radicale::start();
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let fixture = root.join("tests/fixtures/carbonio");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("export")).unwrap();
    let ics = root.join("tests/fixtures/items/notes-export.ics");
    std::fs::copy(&ics, dir.path().join("export/jsmith.ics")).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/items/contacts.csv"),
        dir.path().join("export/jsmith.csv"),
    )
    .unwrap();
    std::fs::write(dir.path().join("admin.pass"), "adminpass\n").unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        PLAN.replace("URL", server.base.trim_end_matches('/')),
    )
    .unwrap();
    let plan = || {
        let out = Command::cargo_bin("mailplan")
            .unwrap()
            .args(["plan", "plan.yaml"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = plan();
    assert!(
        first.contains("<- import calendar: 4 new"),
        "{first}\n{}",
        server.log()
    );
    assert!(first.contains("<- import contacts: "), "{first}");
    let log = server.log();
    assert!(
        log.contains("/dav/john.smith@acme.com/Calendar/"),
        "the inventory was not taken at Carbonio's path:\n{log}"
    );
    assert!(log.contains("/dav/john.smith@acme.com/Contacts/"), "{log}");

    // The calendar copied to that path (as apply's import does, one resource per UID, with the
    // admin's credential) is what the next plan finds: nothing left to import. Carbonio's `/dav/`
    // always exists; Radicale makes a collection only under an existing one, so it is made
    // first.
    let made = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"MKCOL").unwrap(),
            format!("{}dav/", server.base),
        )
        .basic_auth("admin", Some("adminpass"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    let url = format!("{}dav/john.smith@acme.com/Calendar/", server.base);
    let store = CalDav::new(&DavConfig {
        url: url.clone(),
        user: Some("admin".into()),
        password: Some("adminpass".into()),
        ..Default::default()
    })
    .unwrap();
    let (objects, bad) = calendar::read_ics(&ics).unwrap();
    assert!(bad.is_empty());
    for o in &objects {
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Created);
    }
    assert_eq!(store.list().await.unwrap().len(), objects.len());
    let second = plan();
    assert!(
        !second.contains("<- import calendar"),
        "the calendar at {url} was not found again:\n{second}"
    );
}
