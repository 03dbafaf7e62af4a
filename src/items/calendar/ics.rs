//! Splits an exported ICS file into one calendar object per UID, keeping the original text.
//!
//! This is a line-level reader, not an iCalendar model: it unfolds lines only to look at them
//! (BEGIN/END, UID, RECURRENCE-ID, TZID parameters, dates) and writes every component back with
//! its original physical lines, so VTIMEZONE rules, X- properties, parameters and folding reach the
//! destination exactly as exported. A model round trip (parse into types, serialise again) would
//! drop or reorder what the model does not know. It never fixes content: a component it cannot
//! trust is reported as a bad item and left out; the others go on.
//!
//! A file may hold several VCALENDARs (exports concatenated), and each keeps its own: an item
//! gets the calendar properties and the VTIMEZONEs of the VCALENDAR it is in. When two
//! VCALENDARs define one TZID differently, the later definition is written under another name
//! (`<TZID>-<hex of its digest>`), in its VTIMEZONE and in the TZID parameters of its own
//! calendar's items only, so that no calendar's events move in time; a TZID defined the same way
//! twice stays one. An item whose VCALENDAR does not define a TZID it uses takes the file's
//! definition when every VCALENDAR that defines it agrees, and is a bad item when they do not.
//!
//! Structure is never guessed. An END that closes nothing open (`END:VEVNT`, `END:VCALENDA`) is a
//! located problem: inside an item it makes that item bad, at the calendar's level it is a bad
//! item of its own, and it closes nothing. The reader finds its place again at the next
//! unambiguous boundary: the BEGIN of a component that only a VCALENDAR holds closes what is open
//! inside the calendar, and a BEGIN:VCALENDAR closes everything, so a calendar is never nested
//! into the one before it. One pass: a component is a range of the file's lines, never copied
//! into its parent, so the work is linear in the size of the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::CalendarObject;
use crate::items::BadItem;
use crate::items::store::{
    content_key, fold, line_name, line_param, line_value, sha256_hex, with_param,
};

/// Components that become calendar objects (one CalDAV resource per UID).
const ITEM_KINDS: [&str; 3] = ["VEVENT", "VTODO", "VJOURNAL"];

/// Components that RFC 5545 allows only directly inside a VCALENDAR.
const TOP_LEVEL: [&str; 5] = ["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VTIMEZONE"];

/// One logical (unfolded) line with the physical lines it came from.
struct Logical {
    line: usize,
    text: String,
    /// The physical lines when the line was folded; empty when it is `text` itself.
    folded: Vec<String>,
    utf8: bool,
}

impl Logical {
    /// Appends the line as it was in the file.
    fn push_raw(&self, out: &mut Vec<String>) {
        if self.folded.is_empty() {
            out.push(self.text.clone());
        } else {
            out.extend(self.folded.iter().cloned());
        }
    }
}

/// A component: the range of the file's logical lines it spans (its BEGIN and END and nested
/// components included), its own property lines, and the first thing that makes it
/// untrustworthy.
struct Comp {
    name: String,
    /// The line number of its BEGIN.
    begin: usize,
    /// Index of its BEGIN in the logical lines.
    first: usize,
    /// Index just past its END (set when it closes).
    end: usize,
    /// Indexes of its own property lines.
    props: Vec<usize>,
    problem: Option<String>,
    /// The VCALENDAR it is in (an index into the calendars read), `None` outside any.
    calendar: Option<usize>,
}

impl Comp {
    fn new(name: String, begin: usize, first: usize, calendar: Option<usize>) -> Self {
        Comp {
            name,
            begin,
            first,
            end: first + 1,
            props: Vec::new(),
            problem: None,
            calendar,
        }
    }

    fn prop<'a>(&self, lines: &'a [Logical], name: &str) -> Option<&'a Logical> {
        self.props
            .iter()
            .filter_map(|&i| lines.get(i))
            .find(|l| line_name(&l.text) == name)
    }

    fn value(&self, lines: &[Logical], name: &str) -> Option<String> {
        self.prop(lines, name)
            .and_then(|l| line_value(&l.text))
            .map(|v| v.trim().to_string())
    }
}

/// A VTIMEZONE as one VCALENDAR defines it.
struct Zone {
    /// Its range of logical lines, and its BEGIN's line number.
    first: usize,
    end: usize,
    begin: usize,
    /// Equal for two definitions exactly when they define the same (see [`content_key`]).
    key: String,
}

/// What one VCALENDAR gives its items.
#[derive(Default)]
struct Calendar {
    /// Indexes of its own property lines.
    props: Vec<usize>,
    /// TZID → its definition here (the first, when it defines one twice).
    zones: BTreeMap<String, Zone>,
}

/// Splits the bytes of an ICS file. `name` is how locations name the file (its path).
pub fn parse_ics(bytes: &[u8], name: &str) -> (Vec<CalendarObject>, Vec<BadItem>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let lines = logical_lines(bytes);
    let mut reader = Reader {
        name,
        lines: &lines,
        bad: Vec::new(),
        calendars: Vec::new(),
        items: Vec::new(),
        stack: Vec::new(),
        open: HashMap::new(),
        outside_reported: false,
    };
    for idx in 0..lines.len() {
        reader.line(idx);
    }
    reader.end_of_file();
    let Reader {
        mut bad,
        calendars,
        items,
        ..
    } = reader;
    let zones = name_zones(&calendars, &lines);
    let objects = group(items, &lines, &calendars, &zones, &mut bad, name);
    bad.sort_by_key(|b| line_key(&b.location));
    (objects, bad)
}

/// Physical lines → logical lines; blank lines are dropped.
fn logical_lines(bytes: &[u8]) -> Vec<Logical> {
    let mut out: Vec<Logical> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (text, utf8) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), true),
            Err(_) => (String::from_utf8_lossy(raw).into_owned(), false),
        };
        if let Some(rest) = text.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            if last.folded.is_empty() {
                last.folded.push(last.text.clone());
            }
            last.text.push_str(rest);
            last.folded.push(text);
            last.utf8 &= utf8;
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        out.push(Logical {
            line: i + 1,
            text,
            folded: Vec::new(),
            utf8,
        });
    }
    out
}

/// The state of one pass over a file's logical lines.
struct Reader<'a> {
    name: &'a str,
    lines: &'a [Logical],
    bad: Vec<BadItem>,
    calendars: Vec<Calendar>,
    /// Item components read whole, directly inside a VCALENDAR, in file order.
    items: Vec<Comp>,
    stack: Vec<Comp>,
    /// How many components of each name are open, so an END is matched without a scan.
    open: HashMap<String, usize>,
    outside_reported: bool,
}

impl Reader<'_> {
    fn at(&self, line: usize, message: String) -> BadItem {
        BadItem {
            location: format!("{}:{line}", self.name),
            message,
        }
    }

    fn push(&mut self, comp: Comp) {
        *self.open.entry(comp.name.clone()).or_default() += 1;
        self.stack.push(comp);
    }

    fn pop(&mut self) -> Option<Comp> {
        let comp = self.stack.pop()?;
        if let Some(n) = self.open.get_mut(&comp.name) {
            *n = n.saturating_sub(1);
        }
        Some(comp)
    }

    fn line(&mut self, idx: usize) {
        let lines = self.lines;
        let l = &lines[idx];
        let lname = line_name(&l.text);
        let value = line_value(&l.text).map(|v| v.trim().to_ascii_uppercase());
        match (lname.as_str(), value) {
            ("BEGIN", Some(what)) if !what.is_empty() => self.begin(idx, what),
            ("END", Some(what)) if !what.is_empty() => self.end(idx, what),
            _ => self.property(idx, &lname),
        }
    }

    fn begin(&mut self, idx: usize, what: String) {
        let line = self.lines[idx].line;
        if what == "VCALENDAR" {
            // A VCALENDAR never nests: what is still open ends here. A VCALENDAR without its END
            // loses nothing (its complete components are kept); what is open inside it is broken.
            while let Some(top) = self.pop() {
                if top.name != "VCALENDAR" {
                    let problem = format!(
                        "BEGIN:{} at line {} has no END:{} (BEGIN:VCALENDAR at line {line})",
                        top.name, top.begin, top.name
                    );
                    self.unclosed(top, problem);
                }
            }
            self.calendars.push(Calendar::default());
            let calendar = Some(self.calendars.len() - 1);
            self.push(Comp::new(what, line, idx, calendar));
            return;
        }
        if self.stack.is_empty() {
            let b = self.at(line, format!("BEGIN:{what} outside BEGIN:VCALENDAR"));
            self.bad.push(b);
        }
        // These live only directly in a VCALENDAR: one beginning inside another component means
        // that component was never closed. Closing it here keeps the components after it.
        if TOP_LEVEL.contains(&what.as_str()) {
            while self
                .stack
                .last()
                .is_some_and(|c| c.name != "VCALENDAR" && c.calendar.is_some())
            {
                let Some(top) = self.pop() else { break };
                let problem = format!(
                    "BEGIN:{} at line {} has no END:{} (BEGIN:{what} at line {line})",
                    top.name, top.begin, top.name
                );
                self.unclosed(top, problem);
            }
        }
        let calendar = self.stack.first().and_then(|c| c.calendar);
        self.push(Comp::new(what, line, idx, calendar));
    }

    fn end(&mut self, idx: usize, what: String) {
        let line = self.lines[idx].line;
        if self.open.get(&what).copied().unwrap_or(0) == 0 {
            // It closes nothing: never guess what it meant.
            let problem = format!("END:{what} at line {line} closes nothing that is open");
            match self.stack.last_mut() {
                Some(top) if top.name != "VCALENDAR" => {
                    top.problem.get_or_insert(problem);
                }
                Some(cal) => {
                    let message = format!(
                        "{problem}; the VCALENDAR of line {} is read on to the next \
                         BEGIN:VCALENDAR",
                        cal.begin
                    );
                    let b = self.at(line, message);
                    self.bad.push(b);
                }
                None => {
                    let b = self.at(line, format!("END:{what} has no BEGIN:{what}"));
                    self.bad.push(b);
                }
            }
            return;
        }
        // Close what was left open inside: those components are broken.
        while let Some(top) = self.pop() {
            if top.name == what {
                self.finish(top, idx + 1);
                break;
            }
            let problem = format!(
                "BEGIN:{} at line {} has no END:{} (END:{what} at line {line})",
                top.name, top.begin, top.name
            );
            self.unclosed(top, problem);
        }
    }

    fn property(&mut self, idx: usize, lname: &str) {
        let lines = self.lines;
        let l = &lines[idx];
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
        let Some(top) = self.stack.last_mut() else {
            if !self.outside_reported {
                self.outside_reported = true;
                let b = self.at(l.line, "content outside BEGIN:VCALENDAR".into());
                self.bad.push(b);
            }
            return;
        };
        if top.name == "VCALENDAR" {
            let calendar = top.calendar;
            match problem {
                Some(p) => {
                    let b = self.at(l.line, p);
                    self.bad.push(b);
                }
                None => {
                    if let Some(cal) = calendar.and_then(|c| self.calendars.get_mut(c)) {
                        cal.props.push(idx);
                    }
                }
            }
            return;
        }
        if let Some(p) = problem {
            top.problem.get_or_insert(p);
        }
        top.props.push(idx);
    }

    /// Files a component that got its END: an item or a VTIMEZONE of its VCALENDAR, or a part
    /// of the component it is in.
    fn finish(&mut self, mut comp: Comp, end: usize) {
        comp.end = end;
        match self.stack.last_mut() {
            // A whole VCALENDAR (its properties were filed line by line), or a stray component
            // outside one, already reported.
            None => {}
            Some(parent) if parent.name == "VCALENDAR" => {
                if comp.name == "VTIMEZONE" {
                    self.zone(comp);
                } else if ITEM_KINDS.contains(&comp.name.as_str()) {
                    self.items.push(comp);
                }
                // Other components (VFREEBUSY, X- components) are not items: left out.
            }
            Some(parent) if parent.problem.is_none() => {
                parent.problem = comp.problem.map(|p| format!("{}: {p}", comp.name));
            }
            // The component it is in is broken already; its first problem is the one told.
            Some(_) => {}
        }
    }

    /// Files a VTIMEZONE with its VCALENDAR.
    fn zone(&mut self, comp: Comp) {
        let tzid = comp.value(self.lines, "TZID");
        let (tzid, problem) = match (tzid, comp.problem) {
            (_, Some(p)) => (None, format!("VTIMEZONE: {p}")),
            (None, None) => (None, "VTIMEZONE without TZID".to_string()),
            (Some(tzid), None) => (Some(tzid), String::new()),
        };
        let Some(tzid) = tzid else {
            let b = self.at(comp.begin, problem);
            self.bad.push(b);
            return;
        };
        let lines = self.lines;
        let mut text = Vec::new();
        for l in &lines[comp.first..comp.end] {
            l.push_raw(&mut text);
        }
        let key = content_key(&text.join("\n"));
        let Some(cal) = comp.calendar.and_then(|c| self.calendars.get_mut(c)) else {
            return;
        };
        match cal.zones.get(&tzid) {
            Some(z) if z.key != key => {
                let message = format!(
                    "VTIMEZONE {tzid} is defined a second time in its VCALENDAR, otherwise \
                     than at line {}; its events use the first",
                    z.begin
                );
                let b = self.at(comp.begin, message);
                self.bad.push(b);
            }
            Some(_) => {}
            None => {
                cal.zones.insert(
                    tzid,
                    Zone {
                        first: comp.first,
                        end: comp.end,
                        begin: comp.begin,
                        key,
                    },
                );
            }
        }
    }

    /// A component that never got its END: reported when it is an item (or a VTIMEZONE) directly
    /// in the calendar, with its own problem first; inside another component it makes that one
    /// broken too. One outside any VCALENDAR was reported at its BEGIN already.
    fn unclosed(&mut self, top: Comp, problem: String) {
        if top.calendar.is_none() {
            return;
        }
        match self.stack.last_mut() {
            Some(parent) if parent.name != "VCALENDAR" => {
                parent.problem.get_or_insert(problem);
            }
            _ => {
                let uid = top
                    .value(self.lines, "UID")
                    .map(|u| format!(" UID {u}"))
                    .unwrap_or_default();
                let problem = match &top.problem {
                    Some(own) => format!("{own}; {problem}"),
                    None => problem,
                };
                let b = self.at(top.begin, format!("{}{uid}: {problem}", top.name));
                self.bad.push(b);
            }
        }
    }

    fn end_of_file(&mut self) {
        while let Some(top) = self.pop() {
            // A missing END:VCALENDAR alone loses nothing: its complete components are kept.
            if top.name == "VCALENDAR" {
                continue;
            }
            let problem = format!(
                "BEGIN:{} at line {} has no END:{} (the file ends first)",
                top.name, top.begin, top.name
            );
            self.unclosed(top, problem);
        }
    }
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

/// Under which name each VCALENDAR's time zones are written.
struct Zones {
    /// Per calendar: TZID → the name its VTIMEZONE and its items' TZID parameters get.
    names: Vec<BTreeMap<String, String>>,
    /// Name → the VTIMEZONE's physical lines, its TZID set to that name.
    text: BTreeMap<String, Vec<String>>,
    /// TZID → its name for an item whose own VCALENDAR does not define it: `None` when the
    /// VCALENDARs that define it do not agree.
    fallback: BTreeMap<String, Option<String>>,
}

/// Names every distinct definition of a TZID: the first (in file order) keeps the TZID, one
/// that differs from it gets `<TZID>-<hex of its digest>`, a name no VCALENDAR of the file uses.
fn name_zones(calendars: &[Calendar], lines: &[Logical]) -> Zones {
    let defined: BTreeSet<&str> = calendars
        .iter()
        .flat_map(|c| c.zones.keys().map(String::as_str))
        .collect();
    let mut named: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut zones = Zones {
        names: Vec::with_capacity(calendars.len()),
        text: BTreeMap::new(),
        fallback: BTreeMap::new(),
    };
    for cal in calendars {
        let mut names = BTreeMap::new();
        for (tzid, z) in &cal.zones {
            let name = match named.get(&(tzid.as_str(), z.key.as_str())) {
                Some(n) => n.clone(),
                None => {
                    let n = if taken.contains(tzid) {
                        unused_name(tzid, &z.key, &defined, &taken)
                    } else {
                        tzid.clone()
                    };
                    taken.insert(n.clone());
                    named.insert((tzid.as_str(), z.key.as_str()), n.clone());
                    zones.text.insert(n.clone(), zone_lines(lines, z, &n));
                    n
                }
            };
            let agreed = zones
                .fallback
                .entry(tzid.clone())
                .or_insert_with(|| Some(name.clone()));
            if agreed.as_ref() != Some(&name) {
                *agreed = None;
            }
            names.insert(tzid.clone(), name);
        }
        zones.names.push(names);
    }
    zones
}

/// `<tzid>-<hex>` from the digest of the definition, as short as keeps it apart from every TZID
/// of the file and every name given already.
fn unused_name(
    tzid: &str,
    key: &str,
    defined: &BTreeSet<&str>,
    taken: &BTreeSet<String>,
) -> String {
    let digest = sha256_hex(key.as_bytes());
    let free = |n: &String| !defined.contains(n.as_str()) && !taken.contains(n);
    for len in [8, 16, 32, 64] {
        let n = format!("{tzid}-{}", &digest[..len]);
        if free(&n) {
            return n;
        }
    }
    (2..)
        .map(|i| format!("{tzid}-{digest}-{i}"))
        .find(free)
        .unwrap_or_default()
}

/// The physical lines of a VTIMEZONE, its TZID property set to `name`.
fn zone_lines(lines: &[Logical], z: &Zone, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in &lines[z.first..z.end] {
        match line_value(&l.text) {
            Some(v) if line_name(&l.text) == "TZID" && v.trim() != name => {
                let head = &l.text[..l.text.len() - v.len()];
                out.extend(fold(&format!("{head}{name}")));
            }
            _ => l.push_raw(&mut out),
        }
    }
    out
}

/// TZID → the name it is written under, for every TZID the lines of an item use and some
/// VCALENDAR of the file defines; an error when its own VCALENDAR does not define one and the
/// others disagree about it.
fn resolve_zones(
    comp: &Comp,
    lines: &[Logical],
    zones: &Zones,
) -> Result<BTreeMap<String, String>, String> {
    let own = comp.calendar.and_then(|c| zones.names.get(c));
    let mut out = BTreeMap::new();
    for l in &lines[comp.first..comp.end] {
        let Some(tzid) = line_param(&l.text, "TZID") else {
            continue;
        };
        if out.contains_key(&tzid) {
            continue;
        }
        match own.and_then(|m| m.get(&tzid)) {
            Some(name) => {
                out.insert(tzid, name.clone());
            }
            None => match zones.fallback.get(&tzid) {
                Some(Some(name)) => {
                    out.insert(tzid, name.clone());
                }
                Some(None) => {
                    return Err(format!(
                        "TZID `{tzid}` (line {}) is not defined in its VCALENDAR, and the \
                         file's VCALENDARs define it differently",
                        l.line
                    ));
                }
                // Defined nowhere: written as it is; the destination reads it by its name.
                None => {}
            },
        }
    }
    Ok(out)
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
fn check(comp: &Comp, lines: &[Logical]) -> Option<String> {
    if let Some(p) = &comp.problem {
        return Some(p.clone());
    }
    if comp.value(lines, "UID").is_none_or(|u| u.is_empty()) {
        return Some("no UID".into());
    }
    if comp.name == "VEVENT" && comp.prop(lines, "DTSTART").is_none() {
        return Some("no DTSTART".into());
    }
    for prop in ["DTSTART", "DTEND", "DUE", "RECURRENCE-ID"] {
        if let Some(l) = comp.prop(lines, prop) {
            let v = line_value(&l.text).unwrap_or("");
            if !valid_date(v) {
                return Some(format!(
                    "{prop} `{v}` at line {} is not a date or date-time",
                    l.line
                ));
            }
        }
    }
    None
}

/// One component of an object, with the names its TZIDs are written under.
struct Member {
    comp: Comp,
    zones: BTreeMap<String, String>,
}

/// Groups item components by UID (the master and its RECURRENCE-ID exceptions become one object)
/// and wraps each group in a VCALENDAR with its calendar's properties and the VTIMEZONEs it uses.
fn group(
    items: Vec<Comp>,
    lines: &[Logical],
    calendars: &[Calendar],
    zones: &Zones,
    bad: &mut Vec<BadItem>,
    name: &str,
) -> Vec<CalendarObject> {
    struct Group {
        kind: String,
        first_line: usize,
        calendar: Option<usize>,
        master: Option<Member>,
        exceptions: Vec<(String, Member)>,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for comp in items {
        let uid = comp.value(lines, "UID").unwrap_or_default();
        let checked = match check(&comp, lines) {
            Some(problem) => Err(problem),
            None => resolve_zones(&comp, lines, zones),
        };
        let member_zones = match checked {
            Ok(z) => z,
            Err(problem) => {
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
        };
        let g = groups.entry(uid.clone()).or_insert_with(|| Group {
            kind: comp.name.clone(),
            first_line: comp.begin,
            calendar: comp.calendar,
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
        match comp.value(lines, "RECURRENCE-ID") {
            None => match &g.master {
                Some(m) => bad.push(dup("a second master with the same UID", m.comp.begin)),
                None => {
                    g.master = Some(Member {
                        comp,
                        zones: member_zones,
                    })
                }
            },
            Some(rid) => {
                let rid_key = rid.trim_end_matches('Z').to_string();
                if let Some((_, e)) = g.exceptions.iter().find(|(r, _)| *r == rid_key) {
                    bad.push(dup(
                        "a second exception for the same RECURRENCE-ID",
                        e.comp.begin,
                    ));
                } else {
                    g.exceptions.push((
                        rid_key,
                        Member {
                            comp,
                            zones: member_zones,
                        },
                    ));
                }
            }
        }
    }

    let mut out = Vec::new();
    for (uid, g) in groups {
        let mut text: Vec<String> = vec!["BEGIN:VCALENDAR".into()];
        let cal_props: &[usize] = g
            .calendar
            .and_then(|c| calendars.get(c))
            .map(|c| c.props.as_slice())
            .unwrap_or(&[]);
        // METHOD is for scheduling messages; CalDAV forbids it in stored objects (RFC 4791 4.1).
        let kept: Vec<&Logical> = cal_props
            .iter()
            .filter_map(|&i| lines.get(i))
            .filter(|l| line_name(&l.text) != "METHOD")
            .collect();
        if !kept.iter().any(|l| line_name(&l.text) == "VERSION") {
            text.push("VERSION:2.0".into());
        }
        if !kept.iter().any(|l| line_name(&l.text) == "PRODID") {
            text.push("PRODID:-//mailplan//EN".into());
        }
        for l in kept {
            l.push_raw(&mut text);
        }
        let members: Vec<&Member> = g
            .master
            .iter()
            .chain(g.exceptions.iter().map(|(_, m)| m))
            .collect();
        let used: BTreeSet<&str> = members
            .iter()
            .flat_map(|m| m.zones.values().map(String::as_str))
            .collect();
        for zone in used {
            if let Some(zone_text) = zones.text.get(zone) {
                text.extend(zone_text.iter().cloned());
            }
        }
        for m in members {
            for l in &lines[m.comp.first..m.comp.end] {
                let renamed = line_param(&l.text, "TZID")
                    .and_then(|t| m.zones.get(&t).filter(|n| **n != t).cloned());
                match renamed {
                    Some(n) => text.extend(fold(&with_param(&l.text, "TZID", &n))),
                    None => l.push_raw(&mut text),
                }
            }
        }
        text.push("END:VCALENDAR".into());
        let mut ics = text.join("\r\n");
        ics.push_str("\r\n");
        let digest = sha256_hex(ics.as_bytes());
        out.push(CalendarObject { uid, ics, digest });
    }
    out
}
