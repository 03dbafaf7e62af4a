//! Calendars and contacts into a real Radicale: objects and vCards are created once, a rerun
//! creates nothing, updates go by ETag, and a change made at the destination meanwhile is never
//! overwritten.

#[path = "servers/radicale.rs"]
mod radicale;

use std::path::PathBuf;

use mailplan::items::calendar::{
    self, CalDav, CalendarObject, CalendarStore, DavConfig, PutOutcome,
};
use mailplan::items::contacts::{self, CardDav, ContactStore, VcardObject, VcardVersion};
use mailplan::items::dav::{CollectionKind, DavCollection};
use mailplan::items::store::sha256_hex;
use radicale::Radicale;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/items")
        .join(name)
}

fn config(url: &str, user: &str, password: &str) -> DavConfig {
    DavConfig {
        url: url.to_string(),
        user: Some(user.to_string()),
        password: Some(password.to_string()),
        ..Default::default()
    }
}

fn events() -> Vec<CalendarObject> {
    let (objects, bad) = calendar::read_ics(&fixture("notes-export.ics")).unwrap();
    assert!(bad.is_empty());
    objects
}

fn cards(version: VcardVersion) -> Vec<VcardObject> {
    let (list, bad) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    assert!(bad.is_empty());
    list.iter().map(|c| VcardObject::new(c, version)).collect()
}

/// A raw request as another client (the owner, another tool) would make it.
async fn raw(method: &str, url: &str, user: (&str, &str), body: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut rb = client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .basic_auth(user.0, Some(user.1));
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(b.to_string());
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn changed(obj: &CalendarObject, from: &str, to: &str) -> CalendarObject {
    let ics = obj.ics.replace(from, to);
    assert_ne!(ics, obj.ics);
    CalendarObject {
        uid: obj.uid.clone(),
        digest: sha256_hex(ics.as_bytes()),
        ics,
    }
}

#[tokio::test]
async fn calendar_is_created_and_a_rerun_creates_nothing() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    // Listing a calendar that does not exist yet is empty and creates nothing.
    assert!(store.list().await.unwrap().is_empty());
    assert_eq!(raw("GET", &url, ("alice", "alicepass"), None).await.0, 404);

    let objects = events();
    for o in &objects {
        assert_eq!(
            store.put(o, None).await.unwrap(),
            PutOutcome::Created,
            "{}",
            o.uid
        );
    }
    let listed = store.list().await.unwrap();
    let uids: Vec<&String> = listed.keys().collect();
    let expected: Vec<&String> = objects.iter().map(|o| &o.uid).collect();
    assert_eq!(uids, expected);

    // The recurring event is one resource holding the master, both exceptions and its timezone.
    let recurring = &objects[0];
    let href = format!(
        "{url}{}",
        mailplan::items::store::resource_name(&recurring.uid, "ics")
    );
    let (status, body) = raw("GET", &href, ("alice", "alicepass"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.matches("BEGIN:VEVENT").count(), 3);
    assert_eq!(body.matches("RECURRENCE-ID").count(), 2);
    assert!(body.contains("TZID:W. Europe"));
    assert!(body.contains("X-LOTUS-NOTEID:NT00012A46"));

    // Rerun, with the ETags listed (the normal case) and without (a lost ledger): nothing new.
    for o in &objects {
        assert_eq!(
            store.put(o, Some(&listed[&o.uid])).await.unwrap(),
            PutOutcome::Unchanged,
            "{}",
            o.uid
        );
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Unchanged);
    }
    let again = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    assert_eq!(
        again.list().await.unwrap(),
        listed,
        "no resource was rewritten"
    );
}

#[tokio::test]
async fn updates_go_by_etag_and_never_overwrite_a_change_at_the_destination() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let objects = events();
    let o = &objects[1];
    assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Created);
    let etag = store.list().await.unwrap()[&o.uid].clone();

    // The source changed: update from the version we saw.
    let v2 = changed(o, "SUMMARY:Labour Day", "SUMMARY:Labour Day holiday");
    assert_eq!(
        store.put(&v2, Some(&etag)).await.unwrap(),
        PutOutcome::Updated
    );
    let etag2 = store.list().await.unwrap()[&o.uid].clone();
    assert_ne!(etag, etag2);
    // A stale ETag does not overwrite.
    let v3 = changed(o, "SUMMARY:Labour Day", "SUMMARY:Labour Day v3");
    assert_eq!(
        store.put(&v3, Some(&etag)).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );

    // The owner edits the event at the destination: our next update is refused, theirs kept.
    let href = format!(
        "{url}{}",
        mailplan::items::store::resource_name(&o.uid, "ics")
    );
    let owner = changed(o, "SUMMARY:Labour Day", "SUMMARY:Owner's own title");
    let (status, _) = raw("PUT", &href, ("alice", "alicepass"), Some(&owner.ics)).await;
    assert!(status == 201 || status == 204, "{status}");
    assert_eq!(
        store.put(&v3, Some(&etag2)).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );
    // Creating over an existing resource is refused too.
    assert_eq!(
        store.put(&v3, None).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );
    let (_, body) = raw("GET", &href, ("alice", "alicepass"), None).await;
    assert!(body.contains("Owner's own title"));

    // The owner deletes it: an update does not bring it back.
    let etag3 = store.list().await.unwrap()[&o.uid].clone();
    assert_eq!(
        raw("DELETE", &href, ("alice", "alicepass"), None).await.0,
        200
    );
    assert_eq!(
        store.put(&v3, Some(&etag3)).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );
    assert_eq!(raw("GET", &href, ("alice", "alicepass"), None).await.0, 404);
}

#[tokio::test]
async fn resources_made_by_another_tool_are_found_by_uid_and_not_duplicated() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let objects = events();
    // Create the calendar through the store, then an earlier tool's copy under another name.
    assert_eq!(
        store.put(&objects[3], None).await.unwrap(),
        PutOutcome::Created
    );
    let o = &objects[2];
    let (status, _) = raw(
        "PUT",
        &format!("{url}imported-by-other-tool.ics"),
        ("alice", "alicepass"),
        Some(&o.ics),
    )
    .await;
    assert_eq!(status, 201);
    // A store that did not list first: the server refuses the UID twice (409); the copy under
    // the other name is found and recognised as the same.
    let fresh = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    assert_eq!(fresh.put(o, None).await.unwrap(), PutOutcome::Unchanged);
    let elsewhere = changed(o, "Call with Boston office", "Call with Boston");
    assert_eq!(
        fresh.put(&elsewhere, None).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        store.put(o, Some(&listed[&o.uid])).await.unwrap(),
        PutOutcome::Unchanged
    );
    let v2 = changed(o, "Call with Boston office", "Call with the Boston office");
    assert_eq!(
        store.put(&v2, Some(&listed[&o.uid])).await.unwrap(),
        PutOutcome::Updated
    );
    let after = store.list().await.unwrap();
    assert_eq!(after.len(), 2, "updated in place, not duplicated");
    let (_, body) = raw(
        "GET",
        &format!("{url}imported-by-other-tool.ics"),
        ("alice", "alicepass"),
        None,
    )
    .await;
    assert!(body.contains("Call with the Boston office"));
}

#[tokio::test]
async fn admin_credential_creates_a_calendar_in_an_account_never_used() {
    let server = Radicale::start();
    // bob has never logged in: his principal collection does not exist yet.
    let url = server.collection("bob", "migrated");
    let store = CalDav::new(&config(&url, "admin", "adminpass")).unwrap();
    for o in &events() {
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Created);
    }
    // bob sees them with his own login.
    let bob = CalDav::new(&config(&url, "bob", "bobpass")).unwrap();
    assert_eq!(bob.list().await.unwrap().len(), 4);
}

#[tokio::test]
async fn contacts_are_created_once_as_vcard4_and_vcard3() {
    let server = Radicale::start();
    for (book, version) in [
        ("contacts", VcardVersion::V4),
        ("contacts3", VcardVersion::V3),
    ] {
        let url = server.collection("alice", book);
        let mut store = CardDav::new(&config(&url, "alice", "alicepass"), version).unwrap();
        // Radicale does not say which versions it takes: the configured one stays.
        assert_eq!(store.negotiate_version().await.unwrap(), version);
        assert!(store.list().await.unwrap().is_empty());
        let cards = cards(version);
        for c in &cards {
            assert_eq!(
                store.put(c, None).await.unwrap(),
                PutOutcome::Created,
                "{}",
                c.vcf
            );
        }
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 5);
        for c in &cards {
            assert_eq!(
                store.put(c, Some(&listed[&c.uid])).await.unwrap(),
                PutOutcome::Unchanged,
                "{}",
                c.vcf
            );
            assert_eq!(store.put(c, None).await.unwrap(), PutOutcome::Unchanged);
        }
        assert_eq!(store.list().await.unwrap(), listed);
        assert_eq!(store.negotiate_version().await.unwrap(), version);
        // What the server parsed is what the person had: non-ASCII, escapes, folded lines.
        let (_, body) = raw(
            "REPORT",
            &url,
            ("alice", "alicepass"),
            Some(concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">"#,
                r#"<D:prop><CR:address-data/></D:prop></CR:addressbook-query>"#
            )),
        )
        .await;
        let unfolded = body.replace("\r\n ", "").replace("\n ", "");
        assert!(unfolded.contains("FN:山田 太郎"), "{unfolded}");
        assert!(
            unfolded.contains("Geschäftsführer und Inhaber der traditionsreichen Großbäckerei")
        );
        assert!(unfolded.contains(r"Met at the fair\, 2019\; likes \\ backslashes\nSecond line"));
    }
}

#[tokio::test]
async fn contacts_made_by_another_tool_are_known_by_identity() {
    let server = Radicale::start();
    let url = server.collection("alice", "contacts");
    let store = CardDav::new(&config(&url, "alice", "alicepass"), VcardVersion::V4).unwrap();
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    // The address book exists (made by a first put), then another tool adds John its own way.
    let taro = VcardObject::new(&list[2], VcardVersion::V4);
    assert_eq!(store.put(&taro, None).await.unwrap(), PutOutcome::Created);
    let other = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:other-tool-1\r\nFN:John Smith\r\n\
                 N:Smith;John;;;\r\nEMAIL;TYPE=INTERNET:JOHN.SMITH@ACME.COM\r\nEND:VCARD\r\n";
    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{url}other-tool-1.vcf"))
        .basic_auth("alice", Some("alicepass"))
        .header("Content-Type", "text/vcard; charset=utf-8")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let ids = store.identities().await.unwrap();
    assert_eq!(ids[&list[0].identity], "other-tool-1");
    assert_eq!(ids[&list[2].identity], taro.uid);
    assert!(!ids.contains_key(&list[1].identity));
}

#[tokio::test]
async fn many_events_go_in_once() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for i in 0..200 {
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:event-{i:03}@acme.com\r\nDTSTAMP:20240101T000000Z\r\n\
             DTSTART:2024{:02}{:02}T090000Z\r\nSUMMARY:Meeting {i}\r\nEND:VEVENT\r\n",
            1 + i % 12,
            1 + i % 28
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    let (objects, bad) = calendar::ics::parse_ics(ics.as_bytes(), "many.ics");
    assert!(bad.is_empty());
    assert_eq!(objects.len(), 200);
    for o in &objects {
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Created);
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 200);
    // A rerun after a lost ledger: nothing is created twice.
    let outcomes: Vec<PutOutcome> = {
        let mut v = Vec::new();
        for o in &objects {
            v.push(store.put(o, None).await.unwrap());
        }
        v
    };
    assert!(outcomes.iter().all(|o| *o == PutOutcome::Unchanged));
    assert_eq!(store.list().await.unwrap(), listed);
}

#[tokio::test]
async fn a_contact_changed_at_the_source_is_updated_by_etag() {
    let server = Radicale::start();
    let url = server.collection("alice", "contacts");
    let store = CardDav::new(&config(&url, "alice", "alicepass"), VcardVersion::V4).unwrap();
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    let card = VcardObject::new(&list[0], VcardVersion::V4);
    assert_eq!(store.put(&card, None).await.unwrap(), PutOutcome::Created);
    let etag = store.list().await.unwrap()[&card.uid].clone();
    let mut c2 = list[0].clone();
    c2.fields
        .insert("jobTitle".into(), "Chief Revenue Officer".into());
    let card2 = VcardObject::new(&c2, VcardVersion::V4);
    assert_eq!(card2.uid, card.uid, "same identity, same resource");
    assert_eq!(
        store.put(&card2, Some(&etag)).await.unwrap(),
        PutOutcome::Updated
    );
    assert_eq!(
        store.put(&card2, Some(&etag)).await.unwrap(),
        PutOutcome::Unchanged,
        "already there, even with a stale ETag"
    );
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn rejected_objects_and_wrong_passwords_are_errors_that_name_the_resource() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let garbage = CalendarObject {
        uid: "garbage".into(),
        ics: "BEGIN:VCALENDAR\r\nthis is not icalendar\r\nEND:VCALENDAR\r\n".into(),
        digest: "x".into(),
    };
    let err = store.put(&garbage, None).await.unwrap_err();
    assert!(err.is_item_rejected(), "{err}");
    let err = err.to_string();
    assert!(err.contains("garbage.ics") && err.contains("400"), "{err}");
    // The good ones still go in after a rejected one.
    assert_eq!(
        store.put(&events()[0], None).await.unwrap(),
        PutOutcome::Created
    );

    let wrong = CalDav::new(&config(&url, "alice", "not-the-password")).unwrap();
    let err = wrong.put(&events()[1], None).await.unwrap_err();
    assert!(
        !err.is_item_rejected(),
        "a wrong password stops the whole store: {err}"
    );
    let err = wrong.list().await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("not-the-password"));
}

#[tokio::test]
async fn https_certificates_are_verified_unless_the_plan_says_otherwise() {
    let server = Radicale::start_tls();
    let url = server.collection("alice", "calendar");
    assert!(url.starts_with("https://"));
    let objects = events();

    // Default: an unknown issuer is refused, and the error says why.
    let strict = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let err = strict.list().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(strict.put(&objects[0], None).await.is_err());

    // The CA named by ca_file is trusted.
    let mut with_ca = config(&url, "alice", "alicepass");
    with_ca.ca_file = server.ca_file.clone();
    let store = CalDav::new(&with_ca).unwrap();
    assert_eq!(
        store.put(&objects[0], None).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(store.list().await.unwrap().len(), 1);

    // insecure, only when asked for.
    let mut insecure = config(&url, "alice", "alicepass");
    insecure.insecure = true;
    let store = CalDav::new(&insecure).unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);

    // A ca_file that is not there is a setup error, before any request.
    let mut missing = config(&url, "alice", "alicepass");
    missing.ca_file = Some(PathBuf::from("no-such-ca.pem"));
    let err = CalDav::new(&missing).unwrap_err().to_string();
    assert!(err.contains("no-such-ca.pem"), "{err}");
}

#[tokio::test]
async fn a_self_signed_certificate_given_as_ca_file_is_trusted() {
    let server = Radicale::start_self_signed();
    let url = server.collection("alice", "calendar");
    let objects = events();
    // Without it: refused.
    let strict = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let err = strict.list().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The server's own certificate (made by `openssl req -x509`, so marked a CA) as ca_file.
    let mut pinned = config(&url, "alice", "alicepass");
    pinned.ca_file = server.ca_file.clone();
    let store = CalDav::new(&pinned).unwrap();
    assert_eq!(
        store.put(&objects[0], None).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(store.list().await.unwrap().len(), 1);
}

/// The name an older mailplan gave a UID's resource: every byte but RFC 3986 unreserved
/// characters percent-encoded.
fn old_name(uid: &str) -> String {
    let mut out = String::new();
    for b in uid.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{out}.ics")
}

#[tokio::test]
async fn a_calendar_written_with_the_old_names_is_neither_duplicated_nor_lost() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let uids = [
        "meeting-1@acme.com",
        "lunch with bob",
        "100%",
        "a+b",
        "café",
    ];
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for (i, uid) in uids.iter().enumerate() {
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n\
             DTSTART:202403{:02}T090000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n",
            i + 1
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    let (objects, bad) = calendar::ics::parse_ics(ics.as_bytes(), "old.ics");
    assert!(bad.is_empty());
    // Written as an older mailplan did.
    let alice = ("alice", "alicepass");
    assert_eq!(raw("MKCALENDAR", &url, alice, None).await.0, 201);
    for o in &objects {
        let (status, _) = raw(
            "PUT",
            &format!("{url}{}", old_name(&o.uid)),
            alice,
            Some(&o.ics),
        )
        .await;
        assert_eq!(status, 201, "{}", o.uid);
    }
    let before = CalDav::new(&config(&url, "alice", "alicepass"))
        .unwrap()
        .list()
        .await
        .unwrap();

    // A rerun without listing first (a lost ledger) and with: nothing is created again.
    let fresh = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    for o in &objects {
        assert_eq!(
            fresh.put(o, None).await.unwrap(),
            PutOutcome::Unchanged,
            "{}",
            o.uid
        );
    }
    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    let listed = store.list().await.unwrap();
    assert_eq!(listed, before);
    let mut expected: Vec<&str> = uids.to_vec();
    expected.sort();
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    for o in &objects {
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Unchanged);
    }
    // A change at the source updates each one where it is.
    for o in &objects {
        let v2 = changed(o, "SUMMARY:Event", "SUMMARY:Changed event");
        assert_eq!(
            store.put(&v2, Some(&listed[&o.uid])).await.unwrap(),
            PutOutcome::Updated,
            "{}",
            o.uid
        );
    }
    let after = DavCollection::new(
        &config(&url, "alice", "alicepass"),
        CollectionKind::Calendar,
    )
    .unwrap()
    .resources()
    .await
    .unwrap();
    assert_eq!(after.len(), uids.len(), "{after:#?}");
    assert!(
        after
            .iter()
            .all(|r| r.data.contains("SUMMARY:Changed event"))
    );
}

#[tokio::test]
async fn a_resource_name_taken_by_another_item_is_a_refusal_not_a_copy() {
    let server = Radicale::start();
    let url = server.collection("alice", "calendar");
    let alice = ("alice", "alicepass");
    assert_eq!(raw("MKCALENDAR", &url, alice, None).await.0, 201);
    let ours = &events()[1];
    // Another tool stored another event under the very name this UID's resource has.
    let theirs = ours
        .ics
        .replace(&ours.uid, "someone-elses-event@example.com");
    let href = format!(
        "{url}{}",
        mailplan::items::store::resource_name(&ours.uid, "ics")
    );
    assert_eq!(raw("PUT", &href, alice, Some(&theirs)).await.0, 201);

    let store = CalDav::new(&config(&url, "alice", "alicepass")).unwrap();
    assert!(!store.list().await.unwrap().contains_key(&ours.uid));
    let err = store.put(ours, None).await.unwrap_err();
    assert!(err.is_item_rejected(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("412") && message.contains("UID someone-elses-event@example.com"),
        "{message}"
    );
    // Theirs is untouched, and ours is not taken for being there.
    let (_, body) = raw("GET", &href, alice, None).await;
    assert!(body.contains("someone-elses-event@example.com"));
    assert!(!store.list().await.unwrap().contains_key(&ours.uid));
}
