//! Calendars and contacts from files: ICS splitting and grouping, Zimbra CSV reading, vCard
//! writing, bad items, and the folder destinations (no server needed).

use std::path::PathBuf;

use mailplan::items::calendar::{self, CalendarStore, IcsFolder, PutOutcome, ics::parse_ics};
use mailplan::items::contacts::{
    self, ContactStore, VcardFolder, VcardObject, VcardVersion, csv::parse_csv,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/items")
        .join(name)
}

const RECURRING: &str = "7B7E43F1A1C9D2E2C1258A9A003D4F5A-Lotus_Notes_Generated";

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn notes_export_gives_one_object_per_uid() {
    let (objects, bad) = calendar::read_ics(&fixture("notes-export.ics")).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let uids: Vec<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(
        uids,
        [
            RECURRING,
            "A0F3B2C4D5E6F708C1258A9A00411111-Lotus_Notes_Generated",
            "B1C2D3E4F5A6B7C8C1258A9A00422222-Lotus_Notes_Generated",
            "C9D8E7F6A5B4C3D2C1258A9A00433333-Lotus_Notes_Generated",
        ]
    );
    for o in &objects {
        assert!(o.ics.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(o.ics.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(count(&o.ics, "\n"), count(&o.ics, "\r\n"), "CRLF only");
        // CalDAV forbids METHOD in stored objects; the other calendar properties stay.
        assert!(!o.ics.contains("METHOD:"));
        assert!(o.ics.contains("\r\nVERSION:2.0\r\n"));
        assert!(o.ics.contains("\r\nX-LOTUS-CHARSET:UTF-8\r\n"));
        assert!(o.ics.contains("PRODID:-//Lotus Development Corporation"));
        assert_eq!(
            o.digest,
            mailplan::items::store::sha256_hex(o.ics.as_bytes())
        );
        // The unused VTIMEZONE goes nowhere.
        assert!(!o.ics.contains("TZID:Tokyo"));
    }
}

#[test]
fn recurring_event_keeps_its_exceptions_and_timezone_together() {
    let (objects, _) = calendar::read_ics(&fixture("notes-export.ics")).unwrap();
    let o = objects.iter().find(|o| o.uid == RECURRING).unwrap();
    assert_eq!(
        count(&o.ics, "BEGIN:VEVENT\r\n"),
        3,
        "master + 2 exceptions"
    );
    assert_eq!(count(&o.ics, "RECURRENCE-ID"), 2);
    // The master comes first: no RECURRENCE-ID before its END.
    let first_end = o.ics.find("END:VEVENT").unwrap();
    assert!(!o.ics[..first_end].contains("RECURRENCE-ID"));
    assert!(o.ics[..first_end].contains("RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO"));
    // The timezone it uses, whole, once, before the events; not the one it does not use.
    assert_eq!(count(&o.ics, "BEGIN:VTIMEZONE"), 1);
    assert!(o.ics.contains("TZID:W. Europe\r\nBEGIN:STANDARD"));
    assert!(o.ics.contains("BEGIN:DAYLIGHT"));
    assert!(o.ics.find("END:VTIMEZONE").unwrap() < o.ics.find("BEGIN:VEVENT").unwrap());
    assert!(!o.ics.contains("TZID:Eastern"));
    // Original text kept: folded lines as exported, X- properties, the nested alarm, non-ASCII.
    assert!(
        o.ics
            .contains("CN=\"Jane Doe/Sales/Acme\"\r\n ;RSVP=FALSE:mailto:jane.doe@acme.com")
    );
    assert!(o.ics.contains("\\nDial-in \r\n details are in"));
    assert!(o.ics.contains("X-LOTUS-NOTEID:NT00012A46\r\n"));
    assert!(o.ics.contains("BEGIN:VALARM\r\nACTION:DISPLAY"));
    assert!(o.ics.contains("LOCATION:Room Zürich 3.14"));
    assert!(o.ics.contains("Q1 kick-off"));

    let boston = objects.iter().find(|o| o.uid.starts_with("B1C2")).unwrap();
    assert!(boston.ics.contains("TZID:Eastern\r\n"));
    assert!(!boston.ics.contains("TZID:W. Europe"));
    let all_day = objects.iter().find(|o| o.uid.starts_with("A0F3")).unwrap();
    assert!(!all_day.ics.contains("VTIMEZONE"));
    let todo = objects.iter().find(|o| o.uid.starts_with("C9D8")).unwrap();
    assert!(todo.ics.contains("BEGIN:VTODO"));
}

#[test]
fn same_file_same_digests() {
    let a = calendar::read_ics(&fixture("notes-export.ics")).unwrap().0;
    let b = calendar::read_ics(&fixture("notes-export.ics")).unwrap().0;
    assert_eq!(a, b);
    // LF-only files give the same objects (output is always CRLF).
    let lf = std::fs::read_to_string(fixture("notes-export.ics"))
        .unwrap()
        .replace("\r\n", "\n");
    let (c, bad) = parse_ics(lf.as_bytes(), "lf.ics");
    assert!(bad.is_empty());
    assert_eq!(a, c);
}

#[test]
fn broken_events_are_reported_with_their_line_and_the_rest_goes_on() {
    let path = fixture("broken.ics");
    let (objects, bad) = calendar::read_ics(&path).unwrap();
    let uids: Vec<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids, ["good-1@acme.com", "good-2@acme.com"]);
    let p = path.display().to_string();
    let got: Vec<(String, String)> = bad
        .iter()
        .map(|b| (b.location.clone(), b.message.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (format!("{p}:4"), "VEVENT: no UID".to_string()),
            (
                format!("{p}:15"),
                "VEVENT UID bad-date@acme.com: DTSTART `2024-13-45 09:00` at line 17 is not a date or date-time".to_string()
            ),
            (
                format!("{p}:21"),
                "VEVENT UID unterminated@acme.com: BEGIN:VEVENT at line 21 has no END:VEVENT (BEGIN:VEVENT at line 25)".to_string()
            ),
        ]
    );
}

#[test]
fn odd_ics_input_is_reported_never_panics() {
    // Not UTF-8 inside one event: that event is bad, the other is kept.
    let mut bytes =
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101\r\nSUMMARY:Caf".to_vec();
    bytes.extend_from_slice(b"\xe9\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240102\r\n");
    bytes.extend_from_slice(b"END:VEVENT\r\nEND:VCALENDAR\r\n");
    let (objects, bad) = parse_ics(&bytes, "f.ics");
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].uid, "b");
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].location, "f.ics:2");
    assert!(
        bad[0].message.contains("line 5 is not UTF-8"),
        "{}",
        bad[0].message
    );

    // Not a calendar at all.
    let (objects, bad) = parse_ics(b"firstName,lastName\nJohn,Smith\n", "x.ics");
    assert!(objects.is_empty());
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].message, "content outside BEGIN:VCALENDAR");

    // Empty, and a second master with the same UID.
    assert_eq!(parse_ics(b"", "e.ics"), (vec![], vec![]));
    let dup = b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20240101\nEND:VEVENT\nBEGIN:VEVENT\nUID:a\nDTSTART:20240102\nEND:VEVENT\nEND:VCALENDAR\n";
    let (objects, bad) = parse_ics(dup, "d.ics");
    assert_eq!(objects.len(), 1);
    assert!(objects[0].ics.contains("DTSTART:20240101"));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].location, "d.ics:6");

    // Every truncation of a real export: no panic, and what is complete is still found.
    let full = std::fs::read(fixture("notes-export.ics")).unwrap();
    for n in 0..full.len() {
        let (objects, _) = parse_ics(&full[..n], "t.ics");
        assert!(objects.len() <= 4);
    }
}

#[test]
fn zimbra_csv_reads_every_contact() {
    let (list, bad) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let ids: Vec<&str> = list.iter().map(|c| c.identity.as_str()).collect();
    assert_eq!(
        ids,
        [
            "email:john.smith@acme.com",
            "email:juergen@baeckerei-mueller.example",
            "email:taro.yamada@sample.example.jp",
            "name:;company:facilities helpdesk",
            "name:no email;company:consulting partners",
        ]
    );
    let john = &list[0];
    assert_eq!(john.line, 2);
    assert_eq!(john.fields["company"], "Acme, Inc.");
    assert_eq!(john.fields["workStreet"], "Bahnhofstrasse 1\nBuilding C");
    assert!(
        !john.fields.contains_key("homePhone"),
        "empty values are left out"
    );
    // The quoted newline in John's row makes the next row start on line 5.
    assert_eq!(list[1].line, 5);
}

#[test]
fn bad_csv_rows_are_reported_with_their_line_and_the_rest_goes_on() {
    let path = fixture("contacts-bad.csv");
    let (list, bad) = contacts::read_csv(&path).unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c.identity.as_str()).collect();
    assert_eq!(ids, ["email:anna@acme.com", "email:bob@acme.com"]);
    let p = path.display().to_string();
    let got: Vec<(String, &str)> = bad
        .iter()
        .map(|b| (b.location.clone(), b.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (format!("{p}:3"), "3 fields, but the header has 4; skipped"),
            (format!("{p}:4"), "5 fields, but the header has 4; skipped"),
            (
                format!("{p}:5"),
                "field `firstName` (column 1) is not UTF-8 (byte 0xE9); save the file as UTF-8; skipped"
            ),
            (
                format!("{p}:7"),
                "no name, email or company to identify the contact; skipped"
            ),
            (
                format!("{p}:8"),
                "the same contact as line 2 (email:anna@acme.com); skipped"
            ),
        ]
    );
}

#[test]
fn csv_edge_cases() {
    // A Latin-1 header: the whole file is one bad item, nothing else is guessed.
    let (list, bad) = parse_csv(b"firstName,Stra\xdfe\nJohn,Main 1\n", "h.csv");
    assert!(list.is_empty());
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].location, "h.csv:1");
    assert!(bad[0].message.contains("header row is not UTF-8"));
    // A byte order mark is not part of the first field name.
    let (list, bad) = parse_csv(b"\xef\xbb\xbfemail,firstName\r\na@b.c,A\r\n", "bom.csv");
    assert!(bad.is_empty());
    assert_eq!(list[0].fields["email"], "a@b.c");
    // Empty file, header only.
    assert_eq!(parse_csv(b"", "e.csv"), (vec![], vec![]));
    assert_eq!(parse_csv(b"email\n", "e.csv"), (vec![], vec![]));
    // An unterminated quote runs to the end of the file: the rest is that one field, no panic.
    let (list, bad) = parse_csv(b"email,notes\na@b.c,\"open\nb@c.d,x\n", "q.csv");
    assert!(bad.is_empty());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].fields["notes"], "open\nb@c.d,x");
}

#[test]
fn damaged_csv_never_panics_and_every_contact_still_converts() {
    let full = std::fs::read(fixture("contacts.csv")).unwrap();
    for n in (0..full.len()).step_by(7) {
        // Truncated, and with one byte replaced by one that is never UTF-8.
        let mut damaged = full.clone();
        damaged[n] = 0xff;
        for bytes in [&full[..n], &damaged[..]] {
            let (list, bad) = parse_csv(bytes, "d.csv");
            assert!(list.len() + bad.len() <= 6);
            for c in &list {
                let vcf = contacts::to_vcard(c, VcardVersion::V4);
                assert!(vcf.split("\r\n").all(|l| l.len() <= 75));
            }
        }
    }
}

/// Unfolds a vCard and splits it into (name with params, value) pairs.
fn unfolded(vcf: &str) -> Vec<(String, String)> {
    mailplan::items::store::unfold(vcf)
        .into_iter()
        .map(|(_, l)| {
            let v = mailplan::items::store::line_value(&l).unwrap().to_string();
            (l[..l.len() - v.len() - 1].to_string(), v)
        })
        .collect()
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn prop(vcf: &str, name: &str) -> Vec<String> {
    unfolded(vcf)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn vcard4_escapes_folds_and_keeps_everything() {
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    for c in &list {
        for v in [VcardVersion::V4, VcardVersion::V3] {
            let vcf = contacts::to_vcard(c, v);
            assert!(vcf.starts_with("BEGIN:VCARD\r\nVERSION:"));
            assert!(vcf.ends_with("END:VCARD\r\n"));
            for line in vcf.split("\r\n") {
                assert!(line.len() <= 75, "longer than 75 octets: {line:?}");
            }
            assert_eq!(count(&vcf, "\n"), count(&vcf, "\r\n"));
            assert_eq!(prop(&vcf, "FN").len(), 1);
            assert_eq!(prop(&vcf, "N").len(), 1);
        }
    }
    let john = contacts::to_vcard(&list[0], VcardVersion::V4);
    insta::assert_snapshot!("vcard4_john", john);
    // Values survive escaping and folding.
    assert_eq!(
        unescape(&prop(&john, "NOTE")[0]),
        "Met at the fair, 2019; likes \\ backslashes\nSecond line of notes"
    );
    assert_eq!(prop(&john, "ORG"), ["Acme\\, Inc.;Sales\\; EMEA"]);
    assert_eq!(prop(&john, "N"), ["Smith;John;B;Mr.;"]);
    assert_eq!(prop(&john, "FN"), ["Mr. John B Smith"]);
    assert_eq!(prop(&john, "EMAIL;PREF=1"), ["John.Smith@Acme.com"]);
    assert_eq!(prop(&john, "EMAIL"), ["jsmith@example.org"]);
    assert_eq!(prop(&john, "TEL;TYPE=cell"), ["+41 79 555 01 01"]);
    assert_eq!(
        prop(&john, "ADR;TYPE=work"),
        ["; ;Bahnhofstrasse 1\\nBuilding C;Zürich;ZH;8001;Switzerland".replace("; ;", ";;")]
    );
    assert_eq!(prop(&john, "BDAY"), ["19750412"]);
    assert_eq!(
        prop(&john, "URL;TYPE=work"),
        ["https://acme.example.com/sales?a=1%2Cb=2"]
    );
    assert_eq!(prop(&john, "X-ZIMBRA-IMADDRESS1"), ["xmpp://john@acme.com"]);

    // Non-ASCII folded on character boundaries only (the split would not be UTF-8 otherwise).
    let juergen = contacts::to_vcard(&list[1], VcardVersion::V4);
    assert!(juergen.contains("\r\n "), "the long title is folded");
    assert_eq!(
        prop(&juergen, "TITLE"),
        ["Geschäftsführer und Inhaber der traditionsreichen Großbäckerei in der Altstadt"]
    );
    let taro = contacts::to_vcard(&list[2], VcardVersion::V4);
    assert_eq!(prop(&taro, "FN"), ["山田 太郎"]);
    assert_eq!(
        prop(&taro, "ADR;TYPE=home"),
        [";;千代田区1-1;東京;;100-0001;日本"]
    );
}

#[test]
fn vcard3_uses_rfc2426_forms() {
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    let john = contacts::to_vcard(&list[0], VcardVersion::V3);
    insta::assert_snapshot!("vcard3_john", john);
    assert_eq!(prop(&john, "VERSION"), ["3.0"]);
    assert_eq!(
        prop(&john, "EMAIL;TYPE=INTERNET,PREF"),
        ["John.Smith@Acme.com"]
    );
    assert_eq!(prop(&john, "TEL;TYPE=CELL"), ["+41 79 555 01 01"]);
    assert_eq!(prop(&john, "BDAY"), ["1975-04-12"]);
    let uid = &prop(&john, "UID")[0];
    assert!(!uid.starts_with("urn:"));
    assert_eq!(*uid, contacts::contact_uid(&list[0]));
}

#[test]
fn contact_uid_depends_on_identity_only() {
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    let mut c = list[0].clone();
    let uid = contacts::contact_uid(&c);
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "5");
    c.fields.insert("jobTitle".into(), "CEO".into());
    assert_eq!(contacts::contact_uid(&c), uid);
    assert_ne!(contacts::contact_uid(&list[1]), uid);
}

#[tokio::test]
async fn ics_folder_creates_once_and_updates_by_etag() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcsFolder::new(dir.path().join("calendar"));
    let (objects, _) = calendar::read_ics(&fixture("notes-export.ics")).unwrap();
    assert!(store.list().await.unwrap().is_empty());
    for o in &objects {
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Created);
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 4);
    for o in &objects {
        assert_eq!(listed[&o.uid], o.digest);
        assert_eq!(store.put(o, None).await.unwrap(), PutOutcome::Unchanged);
        assert_eq!(
            store.put(o, Some(&o.digest)).await.unwrap(),
            PutOutcome::Unchanged
        );
    }
    // The file is the object's text, named by its UID.
    let file = dir.path().join("calendar").join(format!("{RECURRING}.ics"));
    assert_eq!(std::fs::read_to_string(file).unwrap(), objects[0].ics);
    // A changed object updates only from the version the caller saw.
    let mut changed = objects[0].clone();
    changed.ics = changed
        .ics
        .replace("Weekly sales stand-up", "Weekly sales sync");
    changed.digest = mailplan::items::store::sha256_hex(changed.ics.as_bytes());
    assert_eq!(
        store.put(&changed, None).await.unwrap(),
        PutOutcome::ChangedAtDestination
    );
    assert_eq!(
        store.put(&changed, Some(&objects[0].digest)).await.unwrap(),
        PutOutcome::Updated
    );
    assert_eq!(store.list().await.unwrap()[RECURRING], changed.digest);
}

#[tokio::test]
async fn vcard_folder_creates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = VcardFolder::new(dir.path().join("contacts"));
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    let cards: Vec<VcardObject> = list
        .iter()
        .map(|c| VcardObject::new(c, VcardVersion::V4))
        .collect();
    for c in &cards {
        assert_eq!(store.put(c, None).await.unwrap(), PutOutcome::Created);
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 5);
    for c in &cards {
        assert_eq!(listed[&c.uid], c.digest);
        assert_eq!(store.put(c, None).await.unwrap(), PutOutcome::Unchanged);
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("contacts"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn every_vcard_stands_for_its_own_identity() {
    let (list, _) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    for c in &list {
        for v in [VcardVersion::V4, VcardVersion::V3] {
            let ids = contacts::vcard_identities(&contacts::to_vcard(c, v));
            assert!(ids.contains(&c.identity), "{} not in {ids:?}", c.identity);
        }
    }
    // A card another tool wrote: every address counts, case and folding do not.
    let other = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:other-1\r\nFN:Dr. John Smith\r\nN:Smith;John;;Dr.;\r\n\
                 EMAIL;TYPE=INTERNET:js@example.org\r\nEMAIL;TYPE=INTERNET:JOHN.SMITH@acme.co\r\n m\r\n\
                 ORG:Acme\\, Inc.\r\nEND:VCARD\r\n";
    assert_eq!(
        contacts::vcard_identities(other),
        [
            "email:john.smith@acme.com",
            "email:js@example.org",
            "name:dr. john smith;company:acme, inc.",
            "name:john smith;company:acme, inc.",
        ]
    );
}

#[tokio::test]
async fn vcard_folder_knows_contacts_written_by_another_tool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("from-elsewhere.vcf"),
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:elsewhere\r\nFN:J\r\nEMAIL:John.Smith@acme.com\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let store = VcardFolder::new(dir.path());
    let ids = store.identities().await.unwrap();
    assert_eq!(ids["email:john.smith@acme.com"], "elsewhere");
    assert_eq!(store.list().await.unwrap().len(), 1);
}

/// A VCALENDAR with `props`, one fixed-offset VTIMEZONE `tzid` per (tzid, offset), and one
/// event per (uid, tzid) at 09:00 on 15 January 2024.
fn vcalendar(props: &str, zones: &[(&str, &str)], events: &[(&str, &str)]) -> String {
    let mut ics = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{props}");
    for (tzid, offset) in zones {
        ics.push_str(&format!(
            "BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n\
             TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        ));
    }
    for (uid, tzid) in events {
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART;TZID={tzid}:20240115T090000\r\n\
             EXDATE;TZID={tzid}:20240122T090000,20240129T090000\r\nEND:VEVENT\r\n"
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    ics
}

/// The TZOFFSETTO of the VTIMEZONE an object's DTSTART names, with that name.
fn start_zone(ics: &str) -> (String, String) {
    let unfolded: Vec<String> = mailplan::items::store::unfold(ics)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let start = unfolded.iter().find(|l| l.starts_with("DTSTART;")).unwrap();
    let tzid = mailplan::items::store::line_param(start, "TZID").unwrap();
    let at = unfolded
        .iter()
        .position(|l| *l == format!("TZID:{tzid}"))
        .unwrap_or_else(|| panic!("no VTIMEZONE {tzid} in {ics}"));
    let offset = unfolded[at..]
        .iter()
        .find_map(|l| l.strip_prefix("TZOFFSETTO:"))
        .unwrap();
    (tzid, offset.to_string())
}

#[test]
fn each_vcalendar_of_a_file_keeps_its_own_time_zones() {
    let file = [
        vcalendar(
            "",
            &[("Office", "+0100"), ("Home", "+0000")],
            &[("a", "Office")],
        ),
        vcalendar("", &[("Office", "-0500")], &[("b", "Office")]),
        // Defined as the first calendar does: the same zone, one name.
        vcalendar("", &[("Office", "+0100")], &[("c", "Office")]),
        // Defined as the second does: the second's renamed zone.
        vcalendar("", &[("Office", "-0500")], &[("d", "Office")]),
        // Not defined here, and defined as the first does wherever it is defined.
        vcalendar("", &[], &[("e", "Home")]),
        // Not defined here, and defined two ways elsewhere: which one is meant is not known.
        vcalendar("", &[], &[("f", "Office")]),
        // Defined nowhere: left to the destination, by name (as before).
        vcalendar("", &[], &[("g", "Europe/Zurich")]),
    ]
    .concat();
    let (objects, bad) = parse_ics(file.as_bytes(), "c.ics");
    let zone = |uid: &str| {
        let o = objects.iter().find(|o| o.uid == uid).unwrap();
        assert_eq!(o.ics.matches("BEGIN:VTIMEZONE").count(), 1, "{}", o.ics);
        start_zone(&o.ics)
    };
    let (a, a_off) = zone("a");
    let (b, b_off) = zone("b");
    assert_eq!((a.as_str(), a_off.as_str()), ("Office", "+0100"));
    assert_eq!(b_off, "-0500");
    assert!(
        b.starts_with("Office-") && b.len() == "Office-".len() + 8,
        "{b}"
    );
    assert_eq!(zone("c"), (a.clone(), a_off.clone()));
    assert_eq!(zone("d"), (b.clone(), b_off.clone()));
    assert_eq!(zone("e"), ("Home".to_string(), "+0000".to_string()));
    // Every TZID parameter of the renamed calendar's event is renamed with it.
    let bobj = objects.iter().find(|o| o.uid == "b").unwrap();
    assert!(
        bobj.ics
            .contains(&format!("EXDATE;TZID={b}:20240122T090000,20240129T090000")),
        "{}",
        bobj.ics
    );
    assert!(!bobj.ics.contains("TZID=Office:"), "{}", bobj.ics);
    let g = objects.iter().find(|o| o.uid == "g").unwrap();
    assert!(g.ics.contains("DTSTART;TZID=Europe/Zurich:") && !g.ics.contains("VTIMEZONE"));
    // f is a bad item that says why, where.
    assert!(!objects.iter().any(|o| o.uid == "f"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].message.starts_with("VEVENT UID f: TZID `Office`")
            && bad[0].message.contains("define it differently"),
        "{bad:?}"
    );

    // The same file gives the same names (and bytes) on every run.
    assert_eq!(parse_ics(file.as_bytes(), "c.ics").0, objects);
    // A file of one calendar is written as before: nothing renamed.
    let one = vcalendar("", &[("Office", "+0100")], &[("a", "Office")]);
    let (o, _) = parse_ics(one.as_bytes(), "one.ics");
    assert!(o[0].ics.contains("DTSTART;TZID=Office:20240115T090000"));
}

#[test]
fn a_renamed_time_zone_is_written_into_folded_and_quoted_parameters() {
    let first = vcalendar("", &[("W. Europe: Berlin", "+0100")], &[]);
    let second = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe: Berlin\r\n\
                  BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0200\r\n\
                  TZOFFSETTO:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:x\r\n\
                  DTSTART;VALUE=DATE-TIME;TZID=\"W. Europe:\r\n  Berlin\":20240115T090000\r\n\
                  END:VEVENT\r\nEND:VCALENDAR\r\n";
    let (objects, bad) = parse_ics(format!("{first}{second}").as_bytes(), "q.ics");
    assert!(bad.is_empty(), "{bad:?}");
    let (tzid, offset) = start_zone(&objects[0].ics);
    assert_eq!(offset, "+0200");
    assert!(tzid.starts_with("W. Europe: Berlin-"), "{tzid}");
    let start = mailplan::items::store::unfold(&objects[0].ics)
        .into_iter()
        .find(|(_, l)| l.starts_with("DTSTART;"))
        .unwrap()
        .1;
    assert_eq!(
        start,
        format!("DTSTART;VALUE=DATE-TIME;TZID=\"{tzid}\":20240115T090000")
    );
    assert!(objects[0].ics.split("\r\n").all(|l| l.len() <= 75));
}

#[test]
fn a_misspelt_end_is_located_and_nests_nothing() {
    // A misspelt END:VCALENDAR between two exports: the second calendar is its own (its
    // properties and its zone), and the misspelling is a bad item at its line.
    let first = vcalendar(
        "X-WR-CALNAME:One\r\n",
        &[("Office", "+0100")],
        &[("a", "Office")],
    )
    .replace("END:VCALENDAR", "END:VCALENDA");
    let second = vcalendar(
        "X-WR-CALNAME:Two\r\n",
        &[("Office", "-0500")],
        &[("b", "Office")],
    );
    let file = format!("{first}{second}");
    let misspelt = 1 + file.lines().position(|l| l == "END:VCALENDA").unwrap();
    let (objects, bad) = parse_ics(file.as_bytes(), "m.ics");
    assert_eq!(objects.len(), 2);
    let b = objects.iter().find(|o| o.uid == "b").unwrap();
    assert!(b.ics.contains("X-WR-CALNAME:Two\r\n") && !b.ics.contains("X-WR-CALNAME:One"));
    assert_eq!(b.ics.matches("VERSION:").count(), 1, "{}", b.ics);
    assert_eq!(start_zone(&b.ics).1, "-0500");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].location, format!("m.ics:{misspelt}"));
    assert!(
        bad[0].message.contains("END:VCALENDA at line")
            && bad[0].message.contains("closes nothing"),
        "{bad:?}"
    );

    // A misspelt END:VEVENT: that event is bad (with where its END went wrong); the events
    // after it are read as they are, not nested into it.
    let file = "BEGIN:VCALENDAR\r\n\
                BEGIN:VEVENT\r\nUID:broken\r\nDTSTART:20240101T090000Z\r\nEND:VEVNT\r\n\
                BEGIN:VEVENT\r\nUID:next\r\nDTSTART:20240102T090000Z\r\nEND:VEVENT\r\n\
                END:VCALENDAR\r\n\
                BEGIN:VCALENDAR\r\n\
                BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20240103T090000Z\r\nEND:VEVNT\r\n\
                END:VCALENDAR\r\n\
                BEGIN:VCALENDAR\r\n\
                BEGIN:VEVENT\r\nUID:last\r\nDTSTART:20240104T090000Z\r\nEND:VEVENT\r\n\
                END:VCALENDAR\r\n";
    let (objects, bad) = parse_ics(file.as_bytes(), "v.ics");
    let uids: Vec<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids, ["last", "next"]);
    for o in &objects {
        assert_eq!(o.ics.matches("BEGIN:VEVENT").count(), 1, "{}", o.ics);
    }
    let got: Vec<(&str, &str)> = bad
        .iter()
        .map(|b| (b.location.as_str(), b.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "v.ics:2",
                "VEVENT UID broken: END:VEVNT at line 5 closes nothing that is open; \
                 BEGIN:VEVENT at line 2 has no END:VEVENT (BEGIN:VEVENT at line 6)"
            ),
            (
                "v.ics:12",
                "VEVENT UID other: END:VEVNT at line 15 closes nothing that is open; \
                 BEGIN:VEVENT at line 12 has no END:VEVENT (END:VCALENDAR at line 16)"
            ),
        ]
    );

    // A missing END:VCALENDAR: the next BEGIN:VCALENDAR starts a calendar of its own, and an
    // event left open there is bad.
    let file = "BEGIN:VCALENDAR\r\nX-WR-CALNAME:One\r\n\
                BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101T090000Z\r\nEND:VEVENT\r\n\
                BEGIN:VEVENT\r\nUID:open\r\nDTSTART:20240101T090000Z\r\n\
                BEGIN:VCALENDAR\r\nX-WR-CALNAME:Two\r\n\
                BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240102T090000Z\r\nEND:VEVENT\r\n\
                END:VCALENDAR\r\n";
    let (objects, bad) = parse_ics(file.as_bytes(), "n.ics");
    let uids: Vec<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids, ["a", "b"]);
    assert!(objects[1].ics.contains("X-WR-CALNAME:Two") && !objects[1].ics.contains("One"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].location, "n.ics:7");
    assert!(
        bad[0].message.contains("(BEGIN:VCALENDAR at line 10)"),
        "{bad:?}"
    );
}

#[test]
fn an_events_urn_uuid_uid_is_listed_as_it_is() {
    // An event read as `urn:uuid:…` is listed back under that UID from an ICS folder, so a
    // rerun finds it there (an earlier listing dropped the prefix, and the event was then taken
    // for one deleted at the destination).
    let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:urn:uuid:0b5d6f1c-4f6e-4a43-9a1e-1f2a3b4c5d6e\r\n\
               DTSTART:20240101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let (objects, _) = parse_ics(ics.as_bytes(), "u.ics");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = IcsFolder::new(dir.path());
    assert_eq!(
        rt.block_on(store.put(&objects[0], None)).unwrap(),
        PutOutcome::Created
    );
    let listed = rt.block_on(store.list()).unwrap();
    assert_eq!(listed.keys().collect::<Vec<_>>(), [&objects[0].uid]);
}

#[test]
fn csv_columns_whose_values_cannot_be_copied_are_reported_at_the_header() {
    let csv = b"email,firstName,email,,lastName\n\
                a@b.c,Ann,a2@b.c,met at the fair,Lee\n\
                b@c.d,Bob,b2@c.d,,Bo\n\
                ,,x@y.z,,\n";
    let (list, bad) = parse_csv(csv, "h.csv");
    let ids: Vec<&str> = list.iter().map(|c| c.identity.as_str()).collect();
    assert_eq!(ids, ["email:a@b.c", "email:b@c.d"]);
    assert_eq!(list[0].fields["lastName"], "Lee");
    let got: Vec<(&str, &str)> = bad
        .iter()
        .map(|b| (b.location.as_str(), b.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "h.csv:1",
                "column 3 repeats `email` of column 1: its values in 2 rows (the first on line \
                 2) are not copied; give the column a header of its own"
            ),
            (
                "h.csv:1",
                "column 4 has no name: its values in 1 row (the first on line 2) are not \
                 copied; give the column a header of its own"
            ),
            (
                "h.csv:4",
                "no name, email or company to identify the contact; skipped"
            ),
        ]
    );
    // Empty trailing columns (as spreadsheets write them) hold nothing: nothing to report.
    let (list, bad) = parse_csv(b"email,firstName,,\na@b.c,Ann,,\n", "t.csv");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn a_vcard_without_uid_still_stands_for_its_contact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exported-without-uid.vcf"),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:John Smith\r\nEMAIL:john.smith@acme.com\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let store = VcardFolder::new(dir.path());
    let ids = store.identities().await.unwrap();
    assert!(ids.contains_key("email:john.smith@acme.com"), "{ids:?}");
}
