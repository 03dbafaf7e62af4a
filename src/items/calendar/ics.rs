//! Splits an exported ICS file into one calendar object per UID, keeping the original text.
//!
//! This is a line-level reader, not an iCalendar model: it unfolds lines only to look at them
//! (BEGIN/END, UID, RECURRENCE-ID, TZID parameters, dates) and writes every component back with
//! its original physical lines, so VTIMEZONE rules, X- properties, parameters and folding reach the
//! destination exactly as exported. A model round trip (parse into types, serialise again) would
//! drop or reorder what the model does not know. It never fixes content: a component it cannot
//! trust is reported as a bad item and left out; the others go on.

use std::collections::BTreeMap;

use super::CalendarObject;
use crate::items::BadItem;
use crate::items::store::{line_name, line_param, line_value, sha256_hex};

/// Components that become calendar objects (one CalDAV resource per UID).
const ITEM_KINDS: [&str; 3] = ["VEVENT", "VTODO", "VJOURNAL"];

/// Components that RFC 5545 allows only directly inside a VCALENDAR.
const TOP_LEVEL: [&str; 5] = ["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VTIMEZONE"];

/// One logical (unfolded) line with the physical lines it came from.
struct Logical {
    line: usize,
    text: String,
    raw: Vec<String>,
    utf8: bool,
}

/// A component being read: its own properties, its whole raw text (nested components included),
/// and what makes it untrustworthy.
struct Comp {
    name: String,
    begin: usize,
    props: Vec<(usize, String)>,
    raw: Vec<String>,
    tzids: Vec<String>,
    problems: Vec<String>,
}

impl Comp {
    fn new(name: String, begin: usize, raw: &[String]) -> Self {
        Comp {
            name,
            begin,
            props: Vec::new(),
            raw: raw.to_vec(),
            tzids: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn prop(&self, name: &str) -> Option<&(usize, String)> {
        self.props.iter().find(|(_, l)| line_name(l) == name)
    }

    fn value(&self, name: &str) -> Option<String> {
        self.prop(name)
            .and_then(|(_, l)| line_value(l))
            .map(|v| v.trim().to_string())
    }
}

/// The calendar-level context of the components read from one VCALENDAR.
#[derive(Default)]
struct Calendar {
    props: Vec<(String, Vec<String>)>,
}

struct Item {
    comp: Comp,
    calendar: usize,
}

/// Splits the bytes of an ICS file. `name` is how locations name the file (its path).
pub fn parse_ics(bytes: &[u8], name: &str) -> (Vec<CalendarObject>, Vec<BadItem>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut bad: Vec<BadItem> = Vec::new();
    let at = |line: usize, message: String| BadItem {
        location: format!("{name}:{line}"),
        message,
    };

    // Physical lines → logical lines.
    let mut logical: Vec<Logical> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (text, utf8) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), true),
            Err(_) => (String::from_utf8_lossy(raw).into_owned(), false),
        };
        if let Some(rest) = text.strip_prefix([' ', '\t'])
            && let Some(last) = logical.last_mut()
        {
            last.text.push_str(rest);
            last.raw.push(text.clone());
            last.utf8 &= utf8;
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        logical.push(Logical {
            line: i + 1,
            text: text.clone(),
            raw: vec![text],
            utf8,
        });
    }

    let mut calendars: Vec<Calendar> = Vec::new();
    let mut timezones: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut items: Vec<Item> = Vec::new();
    let mut stack: Vec<Comp> = Vec::new();
    let mut outside_reported = false;

    // Closes the component on top of the stack: hands it to its parent, or files it.
    let finish = |comp: Comp,
                  stack: &mut Vec<Comp>,
                  calendars: &mut Vec<Calendar>,
                  timezones: &mut BTreeMap<String, Vec<String>>,
                  items: &mut Vec<Item>,
                  bad: &mut Vec<BadItem>| {
        match stack.last_mut() {
            // A whole VCALENDAR (its properties were kept line by line), or a stray top-level
            // component, already reported.
            None => {}
            Some(parent) if parent.name == "VCALENDAR" => {
                let calendar = calendars.len().saturating_sub(1);
                if comp.name == "VTIMEZONE" {
                    match (comp.value("TZID"), comp.problems.first()) {
                        (Some(tzid), None) => {
                            timezones.entry(tzid).or_insert(comp.raw);
                        }
                        (_, Some(p)) => bad.push(BadItem {
                            location: format!("{name}:{}", comp.begin),
                            message: format!("VTIMEZONE: {p}"),
                        }),
                        (None, None) => bad.push(BadItem {
                            location: format!("{name}:{}", comp.begin),
                            message: "VTIMEZONE without TZID".into(),
                        }),
                    }
                } else if ITEM_KINDS.contains(&comp.name.as_str()) {
                    items.push(Item { comp, calendar });
                }
                // Other components (VFREEBUSY, X- components) are not items: left out.
            }
            Some(parent) => {
                parent.raw.extend(comp.raw);
                parent.tzids.extend(comp.tzids);
                parent.problems.extend(
                    comp.problems
                        .into_iter()
                        .map(|p| format!("{}: {p}", comp.name)),
                );
            }
        }
    };

    for l in logical {
        let lname = line_name(&l.text);
        let value = line_value(&l.text).map(|v| v.trim().to_ascii_uppercase());
        match (lname.as_str(), value) {
            ("BEGIN", Some(what)) if !what.is_empty() => {
                if stack.is_empty() && what != "VCALENDAR" {
                    bad.push(at(l.line, format!("BEGIN:{what} outside BEGIN:VCALENDAR")));
                }
                if stack.is_empty() && what == "VCALENDAR" {
                    calendars.push(Calendar::default());
                }
                // These live only directly in a VCALENDAR: one beginning inside another
                // component means that component was never closed. Closing it here keeps the
                // components after it.
                if TOP_LEVEL.contains(&what.as_str()) {
                    while stack.len() > 1 && stack.last().is_some_and(|c| c.name != "VCALENDAR") {
                        let Some(top) = stack.pop() else { break };
                        let problem = format!(
                            "BEGIN:{} at line {} has no END:{} (BEGIN:{what} at line {})",
                            top.name, top.begin, top.name, l.line
                        );
                        report_unclosed(top, problem, &mut stack, &mut bad, name);
                    }
                }
                stack.push(Comp::new(what, l.line, &l.raw));
            }
            ("END", Some(what)) if !what.is_empty() => {
                if !stack.iter().any(|c| c.name == what) {
                    match stack.last_mut() {
                        Some(top) if top.name != "VCALENDAR" => top
                            .problems
                            .push(format!("END:{what} at line {} has no BEGIN:{what}", l.line)),
                        _ => bad.push(at(l.line, format!("END:{what} has no BEGIN:{what}"))),
                    }
                    continue;
                }
                // Close what was left open inside: those components are broken.
                while let Some(mut top) = stack.pop() {
                    if top.name == what {
                        top.raw.extend(l.raw.iter().cloned());
                        finish(
                            top,
                            &mut stack,
                            &mut calendars,
                            &mut timezones,
                            &mut items,
                            &mut bad,
                        );
                        break;
                    }
                    let problem = format!(
                        "BEGIN:{} at line {} has no END:{} (END:{what} at line {})",
                        top.name, top.begin, top.name, l.line
                    );
                    report_unclosed(top, problem, &mut stack, &mut bad, name);
                }
            }
            _ => {
                let Some(top) = stack.last_mut() else {
                    if !outside_reported {
                        bad.push(at(l.line, "content outside BEGIN:VCALENDAR".into()));
                        outside_reported = true;
                    }
                    continue;
                };
                let problem = if !l.utf8 {
                    Some(format!("line {} is not UTF-8", l.line))
                } else if line_value(&l.text).is_none() || lname.is_empty() {
                    Some(format!(
                        "line {} is not a `NAME:value` content line",
                        l.line
                    ))
                } else {
                    None
                };
                if top.name == "VCALENDAR" {
                    match problem {
                        Some(p) => bad.push(at(l.line, p)),
                        None => {
                            if let Some(cal) = calendars.last_mut() {
                                cal.props.push((lname, l.raw.clone()));
                            }
                        }
                    }
                    continue;
                }
                if let Some(p) = problem {
                    top.problems.push(p);
                }
                if let Some(tzid) = line_param(&l.text, "TZID") {
                    top.tzids.push(tzid);
                }
                top.props.push((l.line, l.text));
                top.raw.extend(l.raw);
            }
        }
    }
    // End of file with components still open.
    while let Some(top) = stack.pop() {
        if top.name == "VCALENDAR" && stack.is_empty() {
            // A missing END:VCALENDAR alone loses nothing: its complete components are kept.
            break;
        }
        let problem = format!(
            "BEGIN:{} at line {} has no END:{} (the file ends first)",
            top.name, top.begin, top.name
        );
        report_unclosed(top, problem, &mut stack, &mut bad, name);
    }

    let objects = group(items, &calendars, &timezones, &mut bad, name);
    bad.sort_by_key(|b| line_key(&b.location));
    (objects, bad)
}

/// Orders bad items by line number rather than as text (`f:10` after `f:9`).
fn line_key(location: &str) -> (usize, String) {
    let n = location
        .rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (n, location.to_string())
}

/// A component that never got its END: reported when it is an item (or a VTIMEZONE) directly in
/// the calendar; inside another component it makes that one broken too.
fn report_unclosed(
    top: Comp,
    problem: String,
    stack: &mut [Comp],
    bad: &mut Vec<BadItem>,
    name: &str,
) {
    match stack.last_mut() {
        Some(parent) if parent.name != "VCALENDAR" => parent.problems.push(problem),
        _ => {
            let uid = top
                .value("UID")
                .map(|u| format!(" UID {u}"))
                .unwrap_or_default();
            bad.push(BadItem {
                location: format!("{name}:{}", top.begin),
                message: format!("{}{uid}: {problem}", top.name),
            })
        }
    }
}

/// Whether a DATE (`20240115`) or DATE-TIME (`20240115T090000`, `…Z`) value is well formed.
fn valid_date(value: &str) -> bool {
    let v = value.trim();
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (v, None),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().unwrap_or(99);
    let (month, day) = (num(&date[4..6]), num(&date[6..8]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    match time {
        None => true,
        Some(t) => {
            digits(t, 6) && num(&t[0..2]) <= 23 && num(&t[2..4]) <= 59 && num(&t[4..6]) <= 60
        }
    }
}

/// What is wrong with an item component, if anything.
fn check(comp: &Comp) -> Option<String> {
    if let Some(p) = comp.problems.first() {
        return Some(p.clone());
    }
    if comp.value("UID").is_none_or(|u| u.is_empty()) {
        return Some("no UID".into());
    }
    if comp.name == "VEVENT" && comp.prop("DTSTART").is_none() {
        return Some("no DTSTART".into());
    }
    for prop in ["DTSTART", "DTEND", "DUE", "RECURRENCE-ID"] {
        if let Some((line, l)) = comp.prop(prop) {
            let v = line_value(l).unwrap_or("");
            if !valid_date(v) {
                return Some(format!(
                    "{prop} `{v}` at line {line} is not a date or date-time"
                ));
            }
        }
    }
    None
}

/// Groups item components by UID (the master and its RECURRENCE-ID exceptions become one object)
/// and wraps each group in a VCALENDAR with the VTIMEZONEs it uses.
fn group(
    items: Vec<Item>,
    calendars: &[Calendar],
    timezones: &BTreeMap<String, Vec<String>>,
    bad: &mut Vec<BadItem>,
    name: &str,
) -> Vec<CalendarObject> {
    struct Group {
        kind: String,
        first_line: usize,
        calendar: usize,
        master: Option<Comp>,
        exceptions: Vec<(String, Comp)>,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for item in items {
        let comp = item.comp;
        let uid = comp.value("UID").unwrap_or_default();
        if let Some(problem) = check(&comp) {
            let uid = if uid.is_empty() {
                String::new()
            } else {
                format!(" UID {uid}")
            };
            bad.push(BadItem {
                location: format!("{name}:{}", comp.begin),
                message: format!("{}{uid}: {problem}", comp.name),
            });
            continue;
        }
        let g = groups.entry(uid.clone()).or_insert_with(|| Group {
            kind: comp.name.clone(),
            first_line: comp.begin,
            calendar: item.calendar,
            master: None,
            exceptions: Vec::new(),
        });
        let dup = |what: &str, line: usize| BadItem {
            location: format!("{name}:{}", comp.begin),
            message: format!("{} UID {uid}: {what} (line {line}); skipped", comp.name),
        };
        if g.kind != comp.name {
            bad.push(dup(
                &format!("the UID is already used by a {}", g.kind),
                g.first_line,
            ));
            continue;
        }
        match comp.value("RECURRENCE-ID") {
            None => match &g.master {
                Some(m) => bad.push(dup("a second master with the same UID", m.begin)),
                None => g.master = Some(comp),
            },
            Some(rid) => {
                let rid_key = rid.trim_end_matches('Z').to_string();
                if let Some((_, e)) = g.exceptions.iter().find(|(r, _)| *r == rid_key) {
                    bad.push(dup(
                        "a second exception for the same RECURRENCE-ID",
                        e.begin,
                    ));
                } else {
                    g.exceptions.push((rid_key, comp));
                }
            }
        }
    }

    let mut out = Vec::new();
    for (uid, g) in groups {
        let mut lines: Vec<String> = vec!["BEGIN:VCALENDAR".into()];
        let cal_props: &[(String, Vec<String>)] = calendars
            .get(g.calendar)
            .map(|c| c.props.as_slice())
            .unwrap_or(&[]);
        // METHOD is for scheduling messages; CalDAV forbids it in stored objects (RFC 4791 4.1).
        let kept: Vec<&(String, Vec<String>)> =
            cal_props.iter().filter(|(n, _)| n != "METHOD").collect();
        if !kept.iter().any(|(n, _)| n == "VERSION") {
            lines.push("VERSION:2.0".into());
        }
        if !kept.iter().any(|(n, _)| n == "PRODID") {
            lines.push("PRODID:-//mailplan//EN".into());
        }
        for (_, raw) in kept {
            lines.extend(raw.iter().cloned());
        }
        let comps: Vec<&Comp> = g
            .master
            .iter()
            .chain(g.exceptions.iter().map(|(_, c)| c))
            .collect();
        let mut used: Vec<&str> = Vec::new();
        for c in &comps {
            for t in &c.tzids {
                if !used.contains(&t.as_str()) {
                    used.push(t);
                }
            }
        }
        used.sort();
        for tzid in used {
            if let Some(raw) = timezones.get(tzid) {
                lines.extend(raw.iter().cloned());
            }
        }
        for c in comps {
            lines.extend(c.raw.iter().cloned());
        }
        lines.push("END:VCALENDAR".into());
        let mut ics = lines.join("\r\n");
        ics.push_str("\r\n");
        let digest = sha256_hex(ics.as_bytes());
        out.push(CalendarObject { uid, ics, digest });
    }
    out
}
