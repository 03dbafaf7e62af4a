//! What calendar and contact stores share: the outcome of a write, content digests, resource names
//! derived from UIDs, and a folder of one file per item written atomically.
//!
//! Nothing here knows iCalendar or vCard beyond "a text of content lines with a UID"; it never
//! decides whether an item should be written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
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
    /// The destination's copy is not the one the caller expected: it was created (by someone
    /// else) when the caller expected none, or changed or deleted since the caller listed it.
    /// Nothing was written; the caller reports it and lists again if it wants to retry.
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

/// Everything but RFC 3986 unreserved characters is escaped, so a UID (which may hold `/`, `@`,
/// `%`, spaces or non-ASCII) always gives one safe path segment, the same on every run.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest resource name derived from a UID before it is replaced by a hash: file systems allow
/// 255 bytes per name, and some servers limit URL lengths.
const MAX_NAME: usize = 200;

/// The resource or file name for a UID: `<uid, percent-encoded>.<ext>`, or a hash of the UID when
/// that would be too long (or would start with a dot and hide the file).
pub fn resource_name(uid: &str, ext: &str) -> String {
    let encoded = utf8_percent_encode(uid, SEGMENT).to_string();
    if encoded.is_empty() || encoded.len() > MAX_NAME || encoded.starts_with('.') {
        format!("{}.{ext}", sha256_hex(uid.as_bytes()))
    } else {
        format!("{encoded}.{ext}")
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
        if let Some(rest) = line.strip_prefix([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str(rest);
                continue;
            }
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

/// The UID of the first item in a text of content lines (an iCalendar object or a vCard), with a
/// `urn:uuid:` prefix removed so that vCard 3.0 and 4.0 forms of the same UID compare equal. Only
/// a UID of the item itself counts, not one of a nested component (RFC 9074 gives alarms UIDs).
pub fn first_uid(text: &str) -> Option<String> {
    let mut stack: Vec<String> = Vec::new();
    for (_, line) in unfold(text) {
        let value = line_value(&line).unwrap_or("").trim();
        match line_name(&line).as_str() {
            "BEGIN" => stack.push(value.to_ascii_uppercase()),
            "END" => {
                stack.pop();
            }
            "UID"
                if stack.last().is_some_and(|c| {
                    matches!(c.as_str(), "VEVENT" | "VTODO" | "VJOURNAL" | "VCARD")
                }) =>
            {
                return Some(value.strip_prefix("urn:uuid:").unwrap_or(value).to_string());
            }
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

/// A folder holding one file per item (`<uid>.<ext>`), the destination when there is no server.
/// Files are written to a temporary file and renamed, so a file is always whole.
#[derive(Debug, Clone)]
pub struct FileCollection {
    dir: PathBuf,
    ext: &'static str,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileCollection {
    pub fn new(dir: impl Into<PathBuf>, ext: &'static str) -> Self {
        FileCollection {
            dir: dir.into(),
            ext,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// UID → digest of the file's bytes, for every `*.<ext>` file (a missing folder is empty).
    /// The UID is read from the file, so files named by another tool are recognised too.
    pub fn list(&self) -> std::io::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (path, digest, text) in self.files()? {
            let uid = first_uid(&text).unwrap_or_else(|| {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                percent_decode_str(stem).decode_utf8_lossy().into_owned()
            });
            out.entry(uid).or_insert(digest);
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

    /// Writes one item, with the same preconditions as a WebDAV PUT: `existing` `None` creates
    /// only (an existing file with other content is [`PutOutcome::ChangedAtDestination`]);
    /// `Some(digest)` updates only the file that still has that digest.
    pub fn put(
        &self,
        uid: &str,
        text: &str,
        existing: Option<&str>,
    ) -> std::io::Result<PutOutcome> {
        let path = self.dir.join(resource_name(uid, self.ext));
        let current = match std::fs::read(&path) {
            Ok(bytes) => Some(sha256_hex(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let new = sha256_hex(text.as_bytes());
        if current.as_deref() == Some(new.as_str()) {
            return Ok(PutOutcome::Unchanged);
        }
        if current.as_deref() != existing {
            return Ok(PutOutcome::ChangedAtDestination);
        }
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&path, text.as_bytes())?;
        Ok(if existing.is_some() {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }
}

/// Temporary file beside the target, fsync, rename, fsync of the folder: after a crash the file is
/// either the old one or the new one, never half written.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.mailplan-{}-{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_safe_and_stable() {
        assert_eq!(resource_name("abc-1_2.x~", "ics"), "abc-1_2.x~.ics");
        assert_eq!(
            resource_name("a/b@c d%é", "ics"),
            "a%2Fb%40c%20d%25%C3%A9.ics"
        );
        let long = "x".repeat(300);
        assert_eq!(resource_name(&long, "vcf").len(), 64 + 4);
        assert!(!resource_name("..", "ics").starts_with('.'));
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
        let a = "BEGIN:X\r\nUID:u/1\r\nEND:X\r\n";
        let b = "BEGIN:X\r\nUID:u/1\r\nSUMMARY:b\r\nEND:X\r\n";
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
            std::fs::read_to_string(dir.path().join("sub/u%2F1.ics")).unwrap(),
            b
        );
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }
}
