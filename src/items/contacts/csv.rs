//! Reads a Zimbra/Carbonio contacts CSV: a header row of Zimbra field names (`firstName`,
//! `lastName`, `email`, `company`, …), then one contact per row.
//!
//! Rows are read as bytes and checked one by one, so a bad row (wrong number of fields, bytes that
//! are not UTF-8, nothing to identify the contact by, the same contact twice) is reported with its
//! line and skipped while the other rows go on. A column whose values cannot be copied (its header
//! is empty, or repeats an earlier column's) is reported once, at the header, with how many rows
//! had a value in it; the rows themselves are copied without it. The file is not transcoded: Zimbra writes UTF-8,
//! and guessing a legacy code page would silently corrupt names; the report says to save the file
//! as UTF-8 instead. A UTF-8 byte order mark (as spreadsheet programs write) is accepted.

use std::collections::{BTreeMap, HashMap};

use super::Contact;
use crate::items::BadItem;

/// Parses the bytes of a contacts CSV. `name` is how locations name the file (its path).
pub fn parse_csv(bytes: &[u8], name: &str) -> (Vec<Contact>, Vec<BadItem>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut bad = Vec::new();
    let at = |line: u64, message: String| BadItem {
        location: format!("{name}:{line}"),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    // Line numbers are counted from byte offsets: a quoted field may span lines. A record's
    // offset may point at the end of the line before it, so line ends there are skipped. Records
    // come in file order: each count goes on from the one before, so the file is counted once.
    let mut counted = (0usize, 1u64);
    let mut line_of = |pos: Option<&csv::Position>| -> u64 {
        let mut offset = pos.map(|p| p.byte() as usize).unwrap_or(0).min(bytes.len());
        while offset < bytes.len() && matches!(bytes[offset], b'\r' | b'\n') {
            offset += 1;
        }
        if offset < counted.0 {
            counted = (0, 1);
        }
        let newlines = bytes[counted.0..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted = (offset, counted.1 + newlines as u64);
        counted.1
    };

    // The header row.
    let header = loop {
        match records.next() {
            None => return (Vec::new(), bad),
            Some(Err(e)) => {
                bad.push(at(
                    line_of(e.position()),
                    format!("unreadable header row: {e}"),
                ));
                return (Vec::new(), bad);
            }
            Some(Ok(r)) if r.iter().all(|f| f.is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let header_line = line_of(header.position());
    let mut names: Vec<String> = Vec::new();
    for (i, field) in header.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok(s) => names.push(s.trim().to_string()),
            Err(e) => {
                bad.push(at(
                    header_line,
                    format!(
                        "the header row is not UTF-8 (column {}, byte {}); save the file as UTF-8",
                        i + 1,
                        e.valid_up_to() + 1
                    ),
                ));
                return (Vec::new(), bad);
            }
        }
    }

    // Columns whose values have nowhere to go, with why; then, per column, how many rows had a
    // value there and the first of them.
    let mut homeless: BTreeMap<usize, String> = BTreeMap::new();
    let mut first_column: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            homeless.insert(i, "has no name".into());
        } else if let Some(j) = first_column.get(n.as_str()) {
            homeless.insert(i, format!("repeats `{n}` of column {}", j + 1));
        } else {
            first_column.insert(n, i);
        }
    }
    let mut dropped: BTreeMap<usize, (u64, u64)> = BTreeMap::new();

    let mut contacts: Vec<Contact> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                if e.position().is_some() {
                    bad.push(at(line_of(e.position()), format!("unreadable row: {e}")));
                    continue;
                }
                bad.push(at(0, format!("unreadable: {e}")));
                break;
            }
        };
        let line = line_of(record.position());
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        if record.len() != names.len() {
            bad.push(at(
                line,
                format!(
                    "{} fields, but the header has {}; skipped",
                    record.len(),
                    names.len()
                ),
            ));
            continue;
        }
        let mut fields = BTreeMap::new();
        let mut problem = None;
        let mut row_dropped: Vec<usize> = Vec::new();
        for (i, (field, header)) in record.iter().zip(&names).enumerate() {
            match std::str::from_utf8(field) {
                Ok(v) => {
                    let v = v.trim();
                    if v.is_empty() {
                        continue;
                    }
                    if homeless.contains_key(&i) {
                        row_dropped.push(i);
                    } else {
                        fields.insert(header.clone(), v.to_string());
                    }
                }
                Err(e) => {
                    problem = Some(format!(
                        "field `{header}` (column {}) is not UTF-8 (byte 0x{:02X}); save the file as UTF-8; skipped",
                        i + 1,
                        field.get(e.valid_up_to()).copied().unwrap_or(0)
                    ));
                    break;
                }
            }
        }
        if let Some(p) = problem {
            bad.push(at(line, p));
            continue;
        }
        let line = line as usize;
        let Some(identity) = super::identity(&fields) else {
            bad.push(at(
                line as u64,
                "no name, email or company to identify the contact; skipped".into(),
            ));
            continue;
        };
        if let Some(first) = seen.get(&identity) {
            bad.push(at(
                line as u64,
                format!("the same contact as line {first} ({identity}); skipped"),
            ));
            continue;
        }
        seen.insert(identity.clone(), line);
        for i in row_dropped {
            dropped.entry(i).or_insert((0, line as u64)).0 += 1;
        }
        contacts.push(Contact {
            identity,
            fields,
            line,
        });
    }
    let mut columns: Vec<BadItem> = dropped
        .into_iter()
        .map(|(i, (rows, first))| {
            let why = homeless.get(&i).map(String::as_str).unwrap_or("");
            at(
                header_line,
                format!(
                    "column {} {why}: its values in {rows} row{} (the first on line {first}) are \
                     not copied; give the column a header of its own",
                    i + 1,
                    if rows == 1 { "" } else { "s" }
                ),
            )
        })
        .collect();
    columns.extend(bad);
    contacts.sort_by(|a, b| a.identity.cmp(&b.identity));
    (contacts, columns)
}
