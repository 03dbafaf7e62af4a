//! The verdicts over fixtures: every bucket of the mail and the calendar/contacts verdicts, and
//! how persons and the wave add up.

use std::collections::BTreeSet;

use super::*;
use crate::items::mail::{FolderListing, MessageMeta, ledger_identity};

fn msg(id: &str, key: &str, date: i64) -> MessageMeta {
    MessageMeta {
        key: key.into(),
        identity: format!("mid:{id}"),
        size: 10,
        flags: Vec::new(),
        internal_date: date,
    }
}

fn folder(name: &str, messages: Vec<MessageMeta>) -> FolderListing {
    FolderListing {
        name: name.into(),
        messages,
        ..Default::default()
    }
}

fn bad(location: &str) -> BadItem {
    BadItem {
        location: location.into(),
        message: "cannot be read".into(),
    }
}

/// A mailbox with one of everything: the source's `($Inbox)` maps to INBOX, `Junk` is
/// excluded, `since` is 50.
fn mailbox() -> (MailInventory, FolderMapping) {
    let mut inbox = folder(
        "($Inbox)",
        vec![
            msg("copied", "1", 100),
            msg("deleted", "2", 100),
            msg("there", "3", 100),
            msg("missing", "4", 100),
            msg("missing", "5", 100),
            msg("refused", "6", 100),
            msg("old", "7", 1),
        ],
    );
    inbox.bad.push(bad("($Inbox)/8"));
    let source = vec![
        inbox,
        folder("Junk", vec![msg("junk", "9", 100)]),
        folder("Sent", vec![msg("sent", "10", 100)]),
        folder("a\u{1}b", vec![msg("control", "11", 100)]),
    ];
    let destination = vec![
        folder(
            "INBOX",
            vec![
                msg("copied", "d1", 100),
                msg("there", "d2", 100),
                msg("new-at-destination", "d3", 100),
            ],
        ),
        folder("Sent", vec![msg("sent", "d4", 100)]),
        folder("Trash", Vec::new()),
    ];
    let ledger = Ledger {
        messages: [
            ledger_identity("INBOX", "mid:copied"),
            ledger_identity("INBOX", "mid:deleted"),
            ledger_identity("Sent", "mid:sent"),
        ]
        .into(),
        folders: BTreeSet::new(),
    };
    let refused: BTreeSet<String> =
        ["($Inbox)/6: the destination refused it: too large".to_string()].into();
    let mut mapping = FolderMapping::default();
    mapping.map.insert("($Inbox)".into(), "INBOX".into());
    mapping.exclude.push("Junk".into());
    (
        MailInventory {
            source,
            destination,
            delimiter: Some('.'),
            ledger,
            refused,
        },
        mapping,
    )
}

#[test]
fn every_mail_difference_is_explained_per_folder() {
    let (inv, mapping) = mailbox();
    let rows = verify_mail(&inv, &mapping, Some(50));
    let names: Vec<&str> = rows.iter().filter_map(|r| r.folder.as_deref()).collect();
    assert_eq!(names, ["INBOX", "Junk", "Sent", "Trash", "a\u{1}b"]);

    let inbox = &rows[0];
    assert_eq!(inbox.source_folders, ["($Inbox)"]);
    assert_eq!((inbox.source, inbox.destination, inbox.ledger), (8, 3, 2));
    assert_eq!(
        inbox.counts,
        Counts {
            copied: 1,
            already_there: 1,
            deleted_at_destination: 1,
            bad: 2,
            before_since: 1,
            duplicates: 1,
            missing: 1,
            only_at_destination: 1,
            excluded: 0,
        }
    );
    assert_eq!(inbox.missing, ["($Inbox)/4"]);
    assert_eq!(
        inbox.bad,
        [
            "($Inbox)/8: cannot be read",
            "($Inbox)/6: refused by the destination"
        ]
    );
    assert!(!inbox.complete());

    let junk = &rows[1];
    assert_eq!((junk.source, junk.counts.excluded), (1, 1));
    assert!(junk.complete());

    let sent = &rows[2];
    assert_eq!((sent.source, sent.destination, sent.ledger), (1, 1, 1));
    assert_eq!(sent.counts.copied, 1);
    assert!(sent.complete());

    // A folder only at the destination is listed, and fine.
    let trash = &rows[3];
    assert_eq!((trash.source, trash.destination), (0, 0));
    assert!(trash.complete());

    // A folder whose name the destination cannot store: its messages are bad items.
    let control = &rows[4];
    assert_eq!(control.counts.bad, 1);
    assert!(control.bad[0].contains("cannot be stored safely"));
}

#[test]
fn a_mailbox_copied_whole_is_complete() {
    let source = vec![folder(
        "INBOX",
        vec![msg("a", "1", 100), msg("b", "2", 100)],
    )];
    let destination = vec![folder(
        "INBOX",
        vec![msg("a", "x", 100), msg("b", "y", 100)],
    )];
    let inv = MailInventory {
        source,
        destination,
        delimiter: Some('/'),
        ledger: Ledger {
            messages: [
                ledger_identity("INBOX", "mid:a"),
                ledger_identity("INBOX", "mid:b"),
            ]
            .into(),
            folders: BTreeSet::new(),
        },
        refused: BTreeSet::new(),
    };
    let rows = verify_mail(&inv, &FolderMapping::default(), None);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].source, rows[0].destination, rows[0].ledger),
        (2, 2, 2)
    );
    assert_eq!(rows[0].counts.copied, 2);
    assert!(rows[0].complete());
}

fn item(id: &str, line: usize) -> SourceItem {
    SourceItem {
        identity: id.into(),
        keys: vec![id.into()],
        location: format!("export/jsmith.csv:{line}"),
    }
}

#[test]
fn every_calendar_and_contact_difference_is_explained() {
    let source = vec![
        item("copied", 2),
        item("there", 3),
        item("deleted", 4),
        item("refused", 5),
        item("missing", 6),
        item("copied", 7),
    ];
    let destination = DestinationItems {
        count: 3,
        keys: ["copied", "there", "elsewhere"].map(String::from).into(),
    };
    let ledger: BTreeSet<String> = ["copied", "deleted"].map(String::from).into();
    let refused: BTreeSet<String> =
        ["export/jsmith.csv:5: the destination refused it: 403".to_string()].into();
    let c = verify_collection(
        ItemKind::Contacts,
        &source,
        &[bad("export/jsmith.csv:9")],
        &destination,
        &ledger,
        &refused,
    );
    assert_eq!((c.source, c.destination, c.ledger), (7, 3, 2));
    assert_eq!(
        c.counts,
        Counts {
            copied: 1,
            already_there: 1,
            deleted_at_destination: 1,
            bad: 2,
            duplicates: 1,
            missing: 1,
            only_at_destination: 1,
            excluded: 0,
            before_since: 0,
        }
    );
    assert_eq!(c.missing, ["export/jsmith.csv:6"]);
    assert!(!c.complete());
}

#[test]
fn persons_add_up_and_only_what_was_meant_to_be_copied_fails() {
    let (inv, mapping) = mailbox();
    let short = PersonInventory {
        mail: Some(("maildir:out/a".into(), Ok(inv))),
        ..Default::default()
    };
    let whole = PersonInventory {
        calendar: Some((
            "ics:out/b".into(),
            Ok(PimInventory {
                source: vec![item("e", 1)],
                destination: DestinationItems {
                    count: 1,
                    keys: ["e".to_string()].into(),
                },
                ledger: ["e".to_string()].into(),
                ..Default::default()
            }),
        )),
        ..Default::default()
    };
    let unreadable = PersonInventory {
        contacts: Some(("vcard:out/c".into(), Err("permission denied".into()))),
        ..Default::default()
    };
    let since = Some(50);
    let a = verify_person("CN=A", &short, &Decision::Migrate, &mapping, since);
    let b = verify_person("CN=B", &whole, &Decision::Migrate, &mapping, since);
    let c = verify_person("CN=C", &unreadable, &Decision::Migrate, &mapping, since);
    let d = verify_person(
        "CN=D",
        &PersonInventory::default(),
        &Decision::NotMigrated("ambiguous: two users".into()),
        &mapping,
        since,
    );
    assert_eq!(a.status, PersonStatus::Short);
    assert_eq!(b.status, PersonStatus::Complete);
    assert_eq!(c.status, PersonStatus::Error);
    assert_eq!(c.reasons, ["contacts: permission denied"]);
    assert_eq!(d.status, PersonStatus::NotMigrated);

    let v = Verification::new(vec![d.clone(), b.clone(), a.clone()]);
    let order: Vec<&str> = v.persons.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(order, ["CN=A", "CN=B", "CN=D"]);
    assert_eq!(
        (v.summary.complete, v.summary.short, v.summary.not_migrated),
        (1, 1, 1)
    );
    assert_eq!(v.summary.items.missing, 1);
    assert!(!v.complete());
    // A person left out by a decision does not make the wave incomplete; an error does.
    assert!(Verification::new(vec![b.clone(), d]).complete());
    assert!(!Verification::new(vec![b, c]).complete());
}
