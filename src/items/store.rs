//! What calendar and contact stores share: the outcome of a write, content digests, resource names
//! derived from UIDs, and a folder of one file per item written atomically.
//!
//! Nothing here knows iCalendar or vCard beyond "a text of content lines with a UID"; it never
//! decides whether an item should be written. Every name it derives from a UID is one plain
//! file name ([`resource_name`]), and every file it writes is checked to be directly inside its
//! folder ([`FileCollection`]), so no UID can place an item anywhere else.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

/// What one `put` did at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PutOutcome {
    /// The item did not exist and now does.
    Created,
    /// The item existed with the expected ETag and now has the new content.
    Updated,
    /// The destination already holds this content: nothing was written.
    Unchanged,
    /// The destination's copy is not the one the caller expected: changed or deleted since the
    /// caller listed it (an update), or, for a create, the destination holds an item with this
    /// UID already, with other content (created there meanwhile by someone else). A store
    /// answers this for a create only once it has found that UID at the destination; a refusal
    /// it cannot explain so is an error instead. Nothing was written.
    ChangedAtDestination,
}

/// Lowercase hex SHA-256: the digests of items and the ETags of folder stores.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Characters a UID keeps in its resource name: ones that no server or file system reads as
/// anything but themselves (no path separator, no escape, no query, no `+` that some servers
/// read as a space). `@` stays because most UIDs are `something@domain` (RFC 5545 3.8.4.7).
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')
}

/// Longest UID used as its resource name as it is: file systems allow 255 bytes per name, and
/// some servers limit URL lengths.
const MAX_NAME: usize = 200;

/// How much of an unusual UID is kept, made plain, before the hash in its resource name.
const READABLE: usize = 40;

/// The resource or file name for a UID, the same on every run, for CalDAV and CardDAV resources
/// and for the files of ICS and vCard folders alike: `<uid>.<ext>` when the UID is made of
/// [`plain`] characters only, does not start with a dot and is not too long; otherwise a readable
/// part of it and the SHA-256 of the whole UID (`a_b-<64 hex>.<ext>`). Such a name is one path
/// segment that no server decodes into a path (a percent-encoded `/` is decoded by some, and
/// `../` then leaves the collection), and one plain file name.
pub fn resource_name(uid: &str, ext: &str) -> String {
    if !uid.is_empty() && uid.len() <= MAX_NAME && !uid.starts_with('.') && uid.chars().all(plain) {
        return format!("{uid}.{ext}");
    }
    let mut readable = String::new();
    for c in uid.chars() {
        if readable.len() >= READABLE {
            break;
        }
        if plain(c) {
            readable.push(c);
        } else if !readable.ends_with('_') {
            readable.push('_');
        }
    }
    let readable = readable
        .trim_start_matches(['.', '_'])
        .trim_end_matches('_');
    let hash = sha256_hex(uid.as_bytes());
    if readable.is_empty() {
        format!("{hash}.{ext}")
    } else {
        format!("{readable}-{hash}.{ext}")
    }
}

/// `dir/name`, when `name` is one plain file name: the check every item file passes before it is
/// written, so that whatever a name was made from, the file lands directly in its folder.
pub fn file_in(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if n == name && !name.starts_with('.') => {
            Ok(dir.join(name))
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{name}` is not a file name inside `{}`", dir.display()),
        )),
    }
}

/// Splits a content line into physical lines of at most 75 octets (RFC 5545 3.1, RFC 6350 3.2),
/// never inside a UTF-8 character; continuations start with a space. No line endings.
pub fn fold(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut octets = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if octets + n > 75 {
            out.push(std::mem::replace(&mut current, String::from(" ")));
            octets = 1;
        }
        current.push(c);
        octets += n;
    }
    out.push(current);
    out
}

/// Unfolds content lines (RFC 5545 3.1 / RFC 6350 3.2): a line that starts with a space or a tab
/// continues the previous one. Returns each logical line with the 1-based number of its first
/// physical line.
pub fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push_str(rest);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// The name of a content line (`DTSTART` of `DTSTART;TZID=X:2024…`), uppercased.
pub fn line_name(line: &str) -> String {
    let end = line.find([';', ':']).unwrap_or(line.len());
    line[..end].to_ascii_uppercase()
}

/// The value of a content line: what follows the first colon that is not inside a quoted
/// parameter value.
pub fn line_value(line: &str) -> Option<&str> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(&line[i + 1..]),
            _ => {}
        }
    }
    None
}

/// The value of parameter `name` of a content line, unquoted (`TZID` of
/// `DTSTART;TZID="W. Europe":…` is `W. Europe`).
pub fn line_param(line: &str, name: &str) -> Option<String> {
    let params = split_params(line);
    params.into_iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case(name)
            .then(|| v.trim_matches('"').to_string())
    })
}

/// The content line with parameter `name` set to `value` (quoted when it holds `;`, `:` or `,`),
/// every other part as it was: how a renamed time zone is written into the lines that use it.
pub fn with_param(line: &str, name: &str, value: &str) -> String {
    let rest = line_value(line).unwrap_or("");
    let head = &line[..line.len() - line_value(line).map(|v| v.len() + 1).unwrap_or(0)];
    let prop = &head[..head.find(';').unwrap_or(head.len())];
    let value: String = value.chars().filter(|c| *c != '"').collect();
    let value = if value.contains([';', ':', ',']) {
        format!("\"{value}\"")
    } else {
        value
    };
    let mut out = prop.to_string();
    let mut found = false;
    for p in split_params(line) {
        out.push(';');
        match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case(name) && !found => {
                found = true;
                out.push_str(k);
                out.push('=');
                out.push_str(&value);
            }
            _ => out.push_str(p),
        }
    }
    if !found {
        out.push_str(&format!(";{name}={value}"));
    }
    out.push(':');
    out.push_str(rest);
    out
}

/// The UID of the first item in a text of content lines (an iCalendar object or a vCard). A
/// vCard's `urn:uuid:` prefix is removed, so that vCard 3.0 and 4.0 forms of the same UID compare
/// equal; an event's UID is taken as it is, as it is the UID the event was read with. Only a UID
/// of the item itself counts, not one of a nested component (RFC 9074 gives alarms UIDs).
pub fn first_uid(text: &str) -> Option<String> {
    let mut stack: Vec<String> = Vec::new();
    for (_, line) in unfold(text) {
        let value = line_value(&line).unwrap_or("").trim();
        match line_name(&line).as_str() {
            "BEGIN" => stack.push(value.to_ascii_uppercase()),
            "END" => {
                stack.pop();
            }
            "UID" => match stack.last().map(String::as_str) {
                Some("VCARD") => {
                    return Some(value.strip_prefix("urn:uuid:").unwrap_or(value).to_string());
                }
                Some("VEVENT" | "VTODO" | "VJOURNAL") => return Some(value.to_string()),
                _ => {}
            },
            _ => {}
        }
    }
    None
}

/// Whether two texts hold the same content, as far as a server's re-serialisation goes: servers
/// store what they parsed and give back their own text (Radicale reorders properties and
/// parameters, drops quotes, folds differently). So each component is compared as the sorted
/// list of its properties (name, sorted unquoted parameters, value) and of its nested
/// components; PRODID is ignored (servers stamp their own).
pub fn same_content(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// A key equal for two texts exactly when [`same_content`] holds for them: how definitions that
/// differ only in their serialisation (VTIMEZONEs of two exports) are recognised as one.
pub fn content_key(text: &str) -> String {
    canonical(text).join("\n")
}

fn canonical(text: &str) -> Vec<String> {
    // (name, properties, children) of each open component.
    let mut stack: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut done = Vec::new();
    for (_, line) in unfold(text) {
        let name = line_name(&line);
        let value = line_value(&line).unwrap_or("").trim_end();
        match name.as_str() {
            "BEGIN" => stack.push((value.to_ascii_uppercase(), Vec::new(), Vec::new())),
            "END" => {
                let Some((comp, mut props, mut children)) = stack.pop() else {
                    continue;
                };
                props.sort();
                children.sort();
                let mut out = format!("BEGIN:{comp}\n");
                for p in props.iter().chain(&children) {
                    out.push_str(p);
                    out.push('\n');
                }
                out.push_str(&format!("END:{comp}"));
                match stack.last_mut() {
                    Some(parent) => parent.2.push(out),
                    None => done.push(out),
                }
            }
            "PRODID" => {}
            _ => {
                let Some(top) = stack.last_mut() else {
                    continue;
                };
                let mut params: Vec<String> = split_params(&line)
                    .into_iter()
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => {
                            format!("{}={}", k.to_ascii_uppercase(), v.replace('"', ""))
                        }
                        None => p.to_ascii_uppercase(),
                    })
                    .collect();
                params.sort();
                top.1.push(format!("{name};{}:{value}", params.join(";")));
            }
        }
    }
    done
}

/// The parameters of a content line (`TZID="A; B"`, `VALUE=DATE`), quotes kept.
fn split_params(line: &str) -> Vec<&str> {
    let value_start = line.len() - line_value(line).map(|v| v.len() + 1).unwrap_or(0);
    let head = &line[..value_start];
    let mut params = Vec::new();
    let mut quoted = false;
    let mut start = None;
    for (i, c) in head.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                if let Some(s) = start {
                    params.push(&head[s..i]);
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        params.push(&head[s..]);
    }
    params
}

/// A folder holding one file per item (named by [`resource_name`]), the destination when there
/// is no server. Files are written to a temporary file and renamed, so a file is always whole.
///
/// Items are found by the UID inside each file, not by file name, so files written under
/// another name (by another tool, or by an older mailplan that named them otherwise) are updated
/// in place and never duplicated: [`FileCollection::list`] remembers which file holds which UID,
/// and a `put` before any listing lists first.
#[derive(Debug, Clone)]
pub struct FileCollection {
    dir: PathBuf,
    ext: &'static str,
    /// UID → the file that holds it, from the last listing (`None`: not listed yet). Shared by
    /// clones, as each write runs on a clone.
    known: Arc<Mutex<Option<BTreeMap<String, PathBuf>>>>,
}

/// The UID a file holds: from its content, else from its name (an older mailplan named files by
/// the percent-encoded UID).
fn uid_of(path: &Path, text: &str) -> String {
    first_uid(text).unwrap_or_else(|| {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        percent_decode_str(stem).decode_utf8_lossy().into_owned()
    })
}

impl FileCollection {
    pub fn new(dir: impl Into<PathBuf>, ext: &'static str) -> Self {
        FileCollection {
            dir: dir.into(),
            ext,
            known: Arc::new(Mutex::new(None)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// UID → digest of the file's bytes, for every `*.<ext>` file (a missing folder is empty).
    /// The UID is read from the file, so files named by another tool are recognised too; of two
    /// files with one UID, the first by name counts.
    pub fn list(&self) -> std::io::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut known = BTreeMap::new();
        for (path, digest, text) in self.files()? {
            let uid = uid_of(&path, &text);
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry(uid.clone()) {
                e.insert(digest);
                known.insert(uid, path);
            }
        }
        if let Ok(mut k) = self.known.lock() {
            *k = Some(known);
        }
        Ok(out)
    }

    /// Every `*.<ext>` file with the digest of its bytes and its text, sorted by path.
    pub fn files(&self) -> std::io::Result<Vec<(PathBuf, String, String)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with('.') && path.extension().and_then(|e| e.to_str()) == Some(self.ext)
            {
                paths.push(path);
            }
        }
        paths.sort();
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path)?;
            let digest = sha256_hex(&bytes);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            out.push((path, digest, text));
        }
        Ok(out)
    }

    /// The file that holds `uid`, or the one it is to be written to: always directly in the
    /// folder.
    fn path_for(&self, uid: &str) -> std::io::Result<PathBuf> {
        let listed = self.known.lock().map(|k| k.is_some()).unwrap_or(false);
        if !listed {
            self.list()?;
        }
        let known = self
            .known
            .lock()
            .ok()
            .and_then(|k| k.as_ref().and_then(|m| m.get(uid).cloned()));
        let name = match &known {
            Some(path) => path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .unwrap_or_default(),
            None => resource_name(uid, self.ext),
        };
        file_in(&self.dir, &name)
    }

    /// Writes one item, with the same preconditions as a WebDAV PUT: `existing` `None` creates
    /// only, `Some(digest)` updates only the file that still has that digest
    /// ([`PutOutcome::ChangedAtDestination`] otherwise). A create whose file holds another item
    /// (another UID: a name another tool chose) is refused with an error of kind
    /// `AlreadyExists`, never overwritten.
    pub fn put(
        &self,
        uid: &str,
        text: &str,
        existing: Option<&str>,
    ) -> std::io::Result<PutOutcome> {
        let path = self.path_for(uid)?;
        let current = match std::fs::read(&path) {
            Ok(bytes) => Some((
                sha256_hex(&bytes),
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let new = sha256_hex(text.as_bytes());
        let digest = current.as_ref().map(|(d, _)| d.as_str());
        if digest == Some(new.as_str()) {
            return Ok(PutOutcome::Unchanged);
        }
        if digest != existing {
            return match (&current, existing) {
                (Some((_, held)), None) if uid_of(&path, held) != uid => Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "`{}` holds another item (UID {}); not overwritten",
                        path.display(),
                        uid_of(&path, held)
                    ),
                )),
                _ => Ok(PutOutcome::ChangedAtDestination),
            };
        }
        std::fs::create_dir_all(&self.dir)?;
        crate::atomic_file::write_atomic(&path, text.as_bytes())?;
        if let Ok(mut k) = self.known.lock()
            && let Some(m) = k.as_mut()
        {
            m.insert(uid.to_string(), path);
        }
        Ok(if existing.is_some() {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_one_plain_file_name_for_any_uid() {
        // Plain UIDs are their own name, as before.
        assert_eq!(resource_name("abc-1_2.x", "ics"), "abc-1_2.x.ics");
        assert_eq!(
            resource_name("7B7E43F1-Lotus_Notes_Generated", "ics"),
            "7B7E43F1-Lotus_Notes_Generated.ics"
        );
        assert_eq!(
            resource_name("event-1@acme.com", "ics"),
            "event-1@acme.com.ics"
        );
        // Anything else: a readable part and the hash of the whole UID, never a `/`, `%`, `..`
        // or leading dot that a server or a file system could read as a path.
        let hash = sha256_hex(b"a/b@c d%\xc3\xa9".as_slice());
        assert_eq!(
            resource_name("a/b@c d%é", "ics"),
            format!("a_b@c_d-{hash}.ics")
        );
        for uid in [
            "../../bob/calendar/x",
            "..",
            ".",
            ".hidden",
            "a%2Fb",
            "a\\b",
            "C:x",
            "é",
            "",
            &"x".repeat(300),
            "a\nb",
        ] {
            let name = resource_name(uid, "vcf");
            assert!(name.ends_with(".vcf"), "{name}");
            assert!(
                !name.starts_with('.') && !name.starts_with('_'),
                "{uid:?}: {name}"
            );
            assert!(
                name.chars().all(plain) && name.len() <= 255,
                "{uid:?}: {name}"
            );
            assert!(
                file_in(Path::new("/dest"), &name).is_ok(),
                "{uid:?}: {name}"
            );
            // The same name on every run, and another UID another name.
            assert_eq!(resource_name(uid, "vcf"), name);
            assert_ne!(resource_name(&format!("{uid}!"), "vcf"), name);
        }
    }

    #[test]
    fn only_plain_file_names_are_inside_a_folder() {
        let dir = Path::new("/dest/alice");
        assert_eq!(file_in(dir, "a.ics").unwrap(), dir.join("a.ics"));
        for bad in [
            "",
            ".",
            "..",
            "../a.ics",
            "a/b.ics",
            "/etc/passwd",
            ".hidden.ics",
            "a/",
        ] {
            assert!(file_in(dir, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fold_and_with_param_write_content_lines() {
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let lines = fold(&long);
        assert!(lines.iter().all(|l| l.len() <= 75));
        assert!(lines[1..].iter().all(|l| l.starts_with(' ')));
        assert_eq!(unfold(&lines.join("\r\n"))[0].1, long);
        assert_eq!(fold("A:1"), ["A:1"]);

        assert_eq!(
            with_param(
                "DTSTART;TZID=Office;VALUE=DATE-TIME:20240101T090000",
                "TZID",
                "Office-2"
            ),
            "DTSTART;TZID=Office-2;VALUE=DATE-TIME:20240101T090000"
        );
        assert_eq!(
            with_param(
                r#"DTEND;tzid="W. Europe: Berlin":20240101T090000"#,
                "TZID",
                "W; 2"
            ),
            r#"DTEND;tzid="W; 2":20240101T090000"#
        );
        assert_eq!(
            with_param("EXDATE:20240101T090000", "TZID", "X"),
            "EXDATE;TZID=X:20240101T090000"
        );
    }

    #[test]
    fn params_and_values_respect_quotes() {
        let l = r#"DTSTART;TZID="W. Europe: Berlin";VALUE=DATE-TIME:20240101T090000"#;
        assert_eq!(line_name(l), "DTSTART");
        assert_eq!(line_value(l), Some("20240101T090000"));
        assert_eq!(line_param(l, "tzid").as_deref(), Some("W. Europe: Berlin"));
        assert_eq!(line_param(l, "VALUE").as_deref(), Some("DATE-TIME"));
        assert_eq!(line_param("UID:x", "TZID"), None);
    }

    #[test]
    fn same_content_ignores_how_a_server_reserialises() {
        let ours = "BEGIN:VCALENDAR\r\nPRODID:-//Lotus//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n\
                    DTSTART;TZID=\"W. Europe\";VALUE=DATE-TIME:20240101T090000\r\nSUMMARY:long \r\n \
                    title\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let theirs = "BEGIN:VCALENDAR\nPRODID:-//Radicale//EN\nBEGIN:VEVENT\nSUMMARY:long title\n\
                      DTSTART;VALUE=DATE-TIME;TZID=W. Europe:20240101T090000\nUID:a\nEND:VEVENT\n\
                      END:VCALENDAR\n";
        assert!(same_content(ours, theirs));
        assert!(!same_content(
            ours,
            &theirs.replace("long title", "long  title")
        ));
        // A property moved from one component to another is a change.
        let two = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSUMMARY:x\nEND:VEVENT\n\
                   BEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20240101\nEND:VEVENT\nEND:VCALENDAR\n";
        let moved = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VEVENT\n\
                     BEGIN:VEVENT\nUID:a\nSUMMARY:x\nRECURRENCE-ID:20240101\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(!same_content(two, moved));
    }

    #[test]
    fn first_uid_is_the_items_own() {
        let t = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nBEGIN:VALARM\nUID:alarm\nEND:VALARM\n\
                 UID:event\nEND:VEVENT\nEND:VCALENDAR\n";
        assert_eq!(first_uid(t).as_deref(), Some("event"));
        let v = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:1234\r\nEND:VCARD\r\n";
        assert_eq!(first_uid(v).as_deref(), Some("1234"));
        // An event's UID is the one it was read with: an event `urn:uuid:1234` and an event
        // `1234` are two events.
        let e = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:urn:uuid:1234\nEND:VEVENT\nEND:VCALENDAR\n";
        assert_eq!(first_uid(e).as_deref(), Some("urn:uuid:1234"));
        assert_eq!(first_uid("UID:loose"), None);
    }

    #[test]
    fn unfold_joins_continuations() {
        let t = "A:1\r\nB:lo\r\n ng\r\n\ter\r\n\r\nC:3";
        assert_eq!(
            unfold(t),
            vec![
                (1, "A:1".to_string()),
                (2, "B:longer".to_string()),
                (6, "C:3".to_string())
            ]
        );
    }

    #[test]
    fn folder_put_follows_webdav_preconditions() {
        let dir = tempfile::tempdir().unwrap();
        let f = FileCollection::new(dir.path().join("sub"), "ics");
        assert!(f.list().unwrap().is_empty());
        let a = "BEGIN:VEVENT\r\nUID:u/1\r\nEND:VEVENT\r\n";
        let b = "BEGIN:VEVENT\r\nUID:u/1\r\nSUMMARY:b\r\nEND:VEVENT\r\n";
        assert_eq!(f.put("u/1", a, None).unwrap(), PutOutcome::Created);
        assert_eq!(f.put("u/1", a, None).unwrap(), PutOutcome::Unchanged);
        assert_eq!(
            f.put("u/1", b, None).unwrap(),
            PutOutcome::ChangedAtDestination
        );
        let listed = f.list().unwrap();
        let etag = listed.get("u/1").unwrap().clone();
        assert_eq!(etag, sha256_hex(a.as_bytes()));
        assert_eq!(
            f.put("u/1", b, Some("stale")).unwrap(),
            PutOutcome::ChangedAtDestination
        );
        assert_eq!(f.put("u/1", b, Some(&etag)).unwrap(), PutOutcome::Updated);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub").join(resource_name("u/1", "ics")))
                .unwrap(),
            b
        );
        // No temporary files are left behind, and nothing went into a subfolder `u`.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn files_named_by_an_older_mailplan_or_another_tool_are_found_by_uid() {
        let dir = tempfile::tempdir().unwrap();
        // An older mailplan percent-encoded the UID into the name.
        let a = "BEGIN:VEVENT\r\nUID:u/1\r\nEND:VEVENT\r\n";
        std::fs::write(dir.path().join("u%2F1.ics"), a).unwrap();
        let f = FileCollection::new(dir.path(), "ics");
        // A create before any listing finds it by its UID: not written twice.
        assert_eq!(f.put("u/1", a, None).unwrap(), PutOutcome::Unchanged);
        let b = "BEGIN:VEVENT\r\nUID:u/1\r\nSUMMARY:b\r\nEND:VEVENT\r\n";
        let etag = f.list().unwrap()["u/1"].clone();
        assert_eq!(f.put("u/1", b, Some(&etag)).unwrap(), PutOutcome::Updated);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("u%2F1.ics")).unwrap(),
            b,
            "updated in place"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A file under the name a UID would get, holding another item: refused, not
        // overwritten, and not taken for that UID.
        let other = "BEGIN:VEVENT\r\nUID:someone-else\r\nEND:VEVENT\r\n";
        std::fs::write(dir.path().join("mine.ics"), other).unwrap();
        let f = FileCollection::new(dir.path(), "ics");
        let err = f
            .put("mine", "BEGIN:VEVENT\r\nUID:mine\r\nEND:VEVENT\r\n", None)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("UID someone-else"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("mine.ics")).unwrap(),
            other
        );
    }
}
