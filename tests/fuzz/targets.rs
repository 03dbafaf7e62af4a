//! The fuzz targets: one function per parser, taking any bytes, that must never panic and must
//! keep the parser's own promises (a DN, a filter or an LDIF file written back reads back the
//! same; a folder name survives modified UTF-7). Shared by `tests/fuzz.rs` (a bounded run in
//! every `cargo test`) and the coverage-guided `fuzz/` crate (`cargo fuzz`, for long runs).
//!
//! Nothing here reads or writes a file: LDIF file URLs are refused (no folder is given), and
//! plan files are checked without their directories.

#![allow(dead_code)]

use std::path::Path;

use mailplan::directory::{Dn, Entry, Filter, ldif};
use mailplan::items::calendar::ics;
use mailplan::items::contacts::{self, VcardVersion};
use mailplan::items::mutf7;

/// A target: any bytes in, a panic when a promise is broken.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and its `cargo fuzz` target have.
pub const TARGETS: [(&str, Target); 10] = [
    ("plan_file", plan_file),
    ("ldif", ldif),
    ("dn", dn),
    ("filter", filter),
    ("ics", ics),
    ("csv", csv),
    ("vcard", vcard),
    ("mutf7", mutf7),
    ("ldap_ber", ldap_ber),
    ("imap", imap),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A plan file: checked, and every problem rendered as `mailplan validate` would.
pub fn plan_file(data: &[u8]) {
    let Err(e) = mailplan::spec::parse_bytes(Path::new("plan.yaml"), data) else {
        return;
    };
    for p in e.problems() {
        for l in p.labels() {
            assert!(
                l.span.start <= l.span.end && l.span.end <= data.len(),
                "a label outside the file: {:?} of {} bytes ({})",
                l.span,
                data.len(),
                p.message()
            );
        }
    }
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, &e)
        .unwrap_or_else(|err| panic!("the report does not render: {err}"));
}

/// An LDIF file: read (as `mailplan` reads one, with file URLs refused); what is read is
/// written back and reads back the same.
pub fn ldif(data: &[u8]) {
    let Ok(text) = ldif::text_of(data) else {
        return;
    };
    let Ok(records) = ldif::parse_records(text, None) else {
        return;
    };
    let written = ldif::records_to_string(&records);
    match ldif::parse_records(&written, None) {
        Ok(again) => assert_eq!(again, records, "written back as:\n{written}"),
        Err(e) => panic!("what was written does not read back ({e}):\n{written}"),
    }
    let _ = ldif::parse_entries(text, None);
}

/// A DN: parsed, printed and parsed again to the same DN; its parts and relatives.
pub fn dn(data: &[u8]) {
    let Some(s) = text(data) else {
        return;
    };
    let Ok(dn) = Dn::parse(s) else {
        return;
    };
    let printed = dn.to_string();
    match Dn::parse(&printed) {
        Ok(again) => assert_eq!(again, dn, "printed as {printed:?}"),
        Err(e) => panic!("{printed:?} (from {s:?}) does not parse: {e}"),
    }
    let _ = (
        dn.rdns(),
        dn.rdn_value(),
        dn.abbreviated(),
        dn.parent(),
        dn.key(),
    );
    let _ = dn.is_within(&dn.parent());
}

/// An RFC 4515 filter: parsed, printed and parsed again to the same filter, and evaluated.
pub fn filter(data: &[u8]) {
    let Some(s) = text(data) else {
        return;
    };
    let Ok(f) = Filter::parse(s) else {
        return;
    };
    let printed = f.to_string();
    match Filter::parse(&printed) {
        Ok(again) => assert_eq!(again.to_string(), printed, "from {s:?}"),
        Err(e) => panic!("{printed:?} (from {s:?}) does not parse: {e}"),
    }
    let entry = sample_entry();
    let _ = f.matches(&entry);
}

fn sample_entry() -> Entry {
    let mut e = Entry::new(Dn::parse("CN=Jo Doe,OU=Sales,O=Acme").unwrap_or_else(|_| Dn::root()));
    for (attr, value) in [
        ("objectClass", "dominoPerson"),
        ("objectClass", "person"),
        ("cn", "Jo Doe"),
        ("mail", "jo.doe@acme.com"),
        ("uid", "jdoe"),
        ("employeeNumber", "42"),
    ] {
        if let Ok(name) = mailplan::directory::AttrName::new(attr) {
            e.add(name, mailplan::directory::Value::text(value));
        }
    }
    e
}

/// An ICS export: split into calendar objects and bad items.
pub fn ics(data: &[u8]) {
    let (objects, bad) = ics::parse_ics(data, "c.ics");
    for b in &bad {
        assert!(b.location.starts_with("c.ics"), "{b:?}");
    }
    let _ = objects.len();
}

/// A contacts CSV: read; every contact becomes a vCard of both versions that stands for the
/// contact's identity.
pub fn csv(data: &[u8]) {
    let (read, _) = contacts::csv::parse_csv(data, "c.csv");
    for c in read.iter().take(50) {
        for version in [VcardVersion::V4, VcardVersion::V3] {
            let vcf = contacts::to_vcard(c, version);
            let _ = contacts::vcard_identities(&vcf);
        }
    }
}

/// A vCard from a destination: the identities it stands for, and its UID.
pub fn vcard(data: &[u8]) {
    let Some(s) = text(data) else {
        return;
    };
    let _ = contacts::vcard_identities(s);
    let _ = mailplan::items::store::first_uid(s);
}

/// Modified UTF-7: a folder name survives encoding and decoding; any name decodes or is refused.
pub fn mutf7(data: &[u8]) {
    if let Some(s) = text(data) {
        let encoded = mutf7::encode(s);
        assert_eq!(mutf7::decode(&encoded).as_deref(), Some(s), "{encoded:?}");
        if let Some(decoded) = mutf7::decode(s) {
            let _ = mutf7::encode(&decoded);
        }
    }
}

/// An LDAP server's bytes (BER framing, LDAP messages, search entries, paging cookies, ranged
/// attributes): whatever arrives, the reader returns, quickly, without panicking.
pub fn ldap_ber(data: &[u8]) {
    mailplan::directory::ldap::fuzz_reader(data);
}

/// An IMAP server's bytes (greeting, answers, literals, continuations) played to a session that
/// logs in, lists, fetches, streams a message to another server and appends, with its bounds
/// on lines and literals in place: whatever arrives, the session returns, quickly, without
/// panicking.
pub fn imap(data: &[u8]) {
    mailplan::items::mail::imap::fuzz_session(data);
}
