//! LDIF (RFC 2849): read directory exports into entries, write entries and change records back.
//!
//! The reader is strict about structure and precise about where it fails (the 1-based line where
//! the offending logical line starts); the writer produces output the reader reads back
//! identically, so `parse(write(x)) == x`. The reader is lenient only where the input is
//! unambiguous: raw UTF-8 in plain values, a plain value that starts with `:` or `<` after the
//! separating space, a missing final `-` in a modify record, unpadded base64, a UTF-8 byte-order
//! mark. Content and change records may be mixed in one file.
//!
//! Exports reach hundreds of thousands of entries, so the reader works on slices of the input and
//! allocates per value (and per folded line), never per physical line, and runs in linear time.
//! This module must not interpret attributes, and does no I/O beyond reading the files that
//! `:< file:` URLs name, and those only when the caller allows it for the file being read: a
//! URL names a regular file in the LDIF's folder (or below it) of at most
//! [`MAX_FILE_URL_BYTES`]; anything else (`file:///dev/zero`, `file:///etc/shadow`, a link out of
//! the folder) is an error at its line. An export is data, and data must not pull local files
//! into a destination directory.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::attr::{AttrName, Value, ValueSet};
use super::dn::Dn;
use super::entry::{Attrs, Entry};

/// A malformed LDIF file, with the line where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LdifError {
    pub line: usize,
    pub message: String,
    /// The 1-based byte column, when one byte is at fault (one that is not UTF-8).
    pub column: Option<usize>,
}

/// The largest file a `:< file:` URL may name.
pub const MAX_FILE_URL_BYTES: u64 = 16 << 20;

/// Attributes whose values are secrets (password hashes and the like): an error shown near one
/// must not print it.
const SECRET_ATTRIBUTES: [&str; 6] = [
    "userpassword",
    "unicodepwd",
    "sambantpassword",
    "sambalmpassword",
    "authpassword",
    "dbcspwd",
];

/// Where the text holds the value of a secret attribute (`userPassword: {SSHA}…`, with its
/// folded lines), for diagnostics to mask.
pub fn secret_values(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut masking = false;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if masking && content.starts_with(' ') {
            out.push(start + 1..start + content.len());
            continue;
        }
        masking = false;
        let Some((name, _)) = content.split_once(':') else {
            continue;
        };
        let base = name
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if SECRET_ATTRIBUTES.contains(&base.as_str()) {
            out.push(start + name.len() + 1..start + content.len());
            masking = true;
        }
    }
    out
}

/// An LDIF file's bytes as text: an error at the line and column of the first byte that is not
/// UTF-8 otherwise. (Values that are not UTF-8 text are written `attr:: <base64>`.)
pub fn text_of(bytes: &[u8]) -> Result<&str, LdifError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let byte = bytes.get(at).copied().unwrap_or(0);
        LdifError {
            line,
            message: format!(
                "byte 0x{byte:02X} at column {} is not UTF-8: write a value that is not UTF-8 \
                 text as base64 (`attr:: <base64>`), or save the file as UTF-8 (it may be \
                 Latin-1 or Windows-1252)",
                at - line_start + 1
            ),
            column: Some(at - line_start + 1),
        }
    })
}

/// One LDIF record: an entry as it is, or a change to apply to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Content(Entry),
    Change(ChangeRecord),
}

/// A change record (`changetype:`). Controls are parsed but not kept: nothing here applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub dn: Dn,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `changetype: add` with the new entry's attributes.
    Add(Attrs),
    /// `changetype: delete`.
    Delete,
    /// `changetype: modify`: modifications in file order (order matters when applying them).
    Modify(Vec<Modification>),
    /// `changetype: modrdn` / `moddn`.
    ModDn {
        /// The new leaf RDN, as written (`CN=New Name`).
        new_rdn: String,
        delete_old_rdn: bool,
        new_superior: Option<Dn>,
    },
}

/// One `add:`/`delete:`/`replace:`/`increment:` block of a modify record. Values keep file order
/// and duplicates, because a modification is an instruction, not a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    pub op: ModOp,
    pub attr: AttrName,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModOp {
    Add,
    Delete,
    Replace,
    /// RFC 4525 `increment:`; takes exactly one value.
    Increment,
}

impl ModOp {
    /// The LDIF keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            ModOp::Add => "add",
            ModOp::Delete => "delete",
            ModOp::Replace => "replace",
            ModOp::Increment => "increment",
        }
    }
}

/// Parses LDIF text into its entries: content records, and `changetype: add` records taken as
/// the entries they create. Any other change record is an error naming its `changetype:` line.
/// `file_urls` is the LDIF's folder when `:< file:` URLs may be read (from it and below it);
/// `None` refuses them.
pub fn parse_entries(text: &str, base_dir: Option<&Path>) -> Result<Vec<Entry>, LdifError> {
    let mut entries = Vec::new();
    for_each_record(text, base_dir, |record, line| match record {
        Record::Content(entry) => {
            entries.push(entry);
            Ok(())
        }
        Record::Change(ChangeRecord {
            dn,
            change: Change::Add(attrs),
        }) => {
            entries.push(Entry { dn, attrs });
            Ok(())
        }
        Record::Change(ChangeRecord { dn, change }) => {
            let kind = match change {
                Change::Add(_) => "add",
                Change::Delete => "delete",
                Change::Modify(_) => "modify",
                Change::ModDn { .. } => "modrdn",
            };
            Err(err(
                line,
                format!(
                    "`changetype: {kind}` record for `{dn}` in a file of entries; only entries \
                     and `changetype: add` records belong here"
                ),
            ))
        }
    })?;
    Ok(entries)
}

/// Parses LDIF text into its records, content and change records alike, in file order.
pub fn parse_records(text: &str, base_dir: Option<&Path>) -> Result<Vec<Record>, LdifError> {
    let mut records = Vec::new();
    for_each_record(text, base_dir, |record, _| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Writes entries as LDIF content records, with a `version: 1` header.
pub fn write_entries(entries: &[Entry], out: &mut impl Write) -> io::Result<()> {
    let mut w = LdifWriter::default();
    w.buf.push_str("version: 1\n");
    for entry in entries {
        w.entry(entry);
        out.write_all(w.buf.as_bytes())?;
        w.buf.clear();
    }
    out.write_all(w.buf.as_bytes())
}

/// Streams entries as LDIF content records, one at a time, for outputs too large to hold as a
/// slice (the generator writes hundreds of thousands of entries this way).
pub struct EntryWriter<W: Write> {
    out: W,
    w: LdifWriter,
}

impl<W: Write> EntryWriter<W> {
    /// Starts the stream with the `version: 1` header.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(b"version: 1\n")?;
        Ok(EntryWriter {
            out,
            w: LdifWriter::default(),
        })
    }

    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        self.w.entry(entry);
        self.out.write_all(self.w.buf.as_bytes())?;
        self.w.buf.clear();
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes records (content and change) as LDIF, with a `version: 1` header.
pub fn write_records(records: &[Record], out: &mut impl Write) -> io::Result<()> {
    let mut w = LdifWriter::default();
    w.buf.push_str("version: 1\n");
    for record in records {
        w.record(record);
        out.write_all(w.buf.as_bytes())?;
        w.buf.clear();
    }
    out.write_all(w.buf.as_bytes())
}

/// The LDIF `write_entries` produces, as a string.
pub fn entries_to_string(entries: &[Entry]) -> String {
    let mut w = LdifWriter::default();
    w.buf.push_str("version: 1\n");
    for entry in entries {
        w.entry(entry);
    }
    w.buf
}

/// The LDIF `write_records` produces, as a string.
pub fn records_to_string(records: &[Record]) -> String {
    let mut w = LdifWriter::default();
    w.buf.push_str("version: 1\n");
    for record in records {
        w.record(record);
    }
    w.buf
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// Base64 as found in the wild: padding optional, non-canonical trailing bits accepted.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn err(line: usize, message: impl Into<String>) -> LdifError {
    LdifError {
        line,
        message: message.into(),
        column: None,
    }
}

/// A line after unfolding, with the physical line it started on.
struct LogicalLine<'a> {
    line: usize,
    /// Borrowed unless continuation lines had to be joined.
    text: Cow<'a, str>,
}

enum Next<'a> {
    Line(LogicalLine<'a>),
    Blank,
    End,
}

/// Physical lines joined into logical ones (RFC 2849 folding).
struct LineReader<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::Split<'a, char>>>,
}

fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

impl<'a> LineReader<'a> {
    fn new(text: &'a str) -> Self {
        LineReader {
            lines: text.split('\n').enumerate().peekable(),
        }
    }

    fn next(&mut self) -> Result<Next<'a>, LdifError> {
        let Some((index, raw)) = self.lines.next() else {
            return Ok(Next::End);
        };
        let line = index + 1;
        let first = strip_cr(raw);
        if first.trim().is_empty() {
            // Includes a lone space: with no line before it in this record there is nothing to
            // continue, and whitespace cannot start anything else.
            return Ok(Next::Blank);
        }
        if first.starts_with(' ') {
            return Err(err(
                line,
                "line starts with a space but there is no line before it to continue \
                 (a folded line must follow the line it continues)",
            ));
        }
        let mut text = Cow::Borrowed(first);
        while let Some((_, next)) = self.lines.peek() {
            let Some(rest) = strip_cr(next).strip_prefix(' ') else {
                break;
            };
            text.to_mut().push_str(rest);
            self.lines.next();
        }
        Ok(Next::Line(LogicalLine { line, text }))
    }
}

/// Calls `f` with each record and the line that identifies it (the `changetype:` line of a change
/// record, the `dn:` line of a content record).
fn for_each_record(
    text: &str,
    base_dir: Option<&Path>,
    mut f: impl FnMut(Record, usize) -> Result<(), LdifError>,
) -> Result<(), LdifError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = LineReader::new(text);
    // Reused for every record: one allocation for the whole file, not one per record.
    let mut record: Vec<LogicalLine<'_>> = Vec::new();
    let mut seen_first = false;
    loop {
        let next = reader.next()?;
        match next {
            Next::Line(line) => {
                if !line.text.starts_with('#') {
                    record.push(line);
                }
                continue;
            }
            Next::Blank | Next::End => {}
        }
        if !record.is_empty() {
            let mut lines = &record[..];
            if !seen_first {
                seen_first = true;
                if let Some((first, rest)) = lines.split_first()
                    && name_is(&first.text, "version")
                {
                    check_version(first)?;
                    lines = rest;
                }
            }
            if let Some((dn_line, rest)) = lines.split_first() {
                let (parsed, line) = parse_record(dn_line, rest, base_dir)?;
                f(parsed, line)?;
            }
            record.clear();
        }
        if matches!(next, Next::End) {
            return Ok(());
        }
    }
}

/// True when the logical line is `name:…`, ignoring case (RFC 2849 keywords are ABNF literals,
/// which are case-insensitive).
fn name_is(text: &str, name: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.get(name.len()) == Some(&b':')
        && bytes
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

fn check_version(line: &LogicalLine<'_>) -> Result<(), LdifError> {
    match split_line(line)?.spec {
        ValueSpec::Plain(v) if v.trim() == "1" => Ok(()),
        ValueSpec::Plain(v) => Err(err(
            line.line,
            format!(
                "unsupported LDIF version `{}` (only `version: 1` is supported)",
                excerpt(v.trim())
            ),
        )),
        _ => Err(err(line.line, "expected `version: 1`")),
    }
}

enum ValueSpec<'l> {
    /// `attr: value`, leading spaces already stripped.
    Plain(&'l str),
    /// `attr:: base64`.
    Base64(&'l str),
    /// `attr:< url`.
    Url(&'l str),
}

struct AttrLine<'l> {
    name: &'l str,
    spec: ValueSpec<'l>,
}

/// A short, single-line rendering of input for error messages.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn split_line<'l>(line: &'l LogicalLine<'_>) -> Result<AttrLine<'l>, LdifError> {
    let text: &'l str = &line.text;
    let Some((name, rest)) = text.split_once(':') else {
        return Err(err(
            line.line,
            format!("expected `attr: value`, found `{}`", excerpt(text)),
        ));
    };
    let spec = if let Some(b64) = rest.strip_prefix(':') {
        ValueSpec::Base64(b64.trim())
    } else if let Some(url) = rest.strip_prefix('<') {
        ValueSpec::Url(url.trim())
    } else {
        // RFC 2849 FILL is spaces only. Whatever follows the first space is the value, even a
        // leading `:` or `<` (not SAFE-STRING, but unambiguous once the space is there).
        ValueSpec::Plain(rest.trim_start_matches(' '))
    };
    Ok(AttrLine { name, spec })
}

fn attr_name(name: &str, line: usize) -> Result<AttrName, LdifError> {
    AttrName::new(name).map_err(|e| err(line, e.to_string()))
}

fn decode_base64(b64: &str, line: usize) -> Result<Vec<u8>, LdifError> {
    LENIENT_BASE64
        .decode(b64)
        .map_err(|e| err(line, format!("invalid base64 ({e}) in `{}`", excerpt(b64))))
}

fn decode_value(
    spec: &ValueSpec<'_>,
    line: usize,
    base_dir: Option<&Path>,
) -> Result<Value, LdifError> {
    match *spec {
        ValueSpec::Plain(s) => Ok(Value::text(s)),
        ValueSpec::Base64(b64) => decode_base64(b64, line).map(Value::bytes),
        ValueSpec::Url(url) => read_url(url, base_dir, line).map(Value::bytes),
    }
}

/// A text field (DN, new RDN) given plain or as base64.
fn decode_text(spec: &ValueSpec<'_>, line: usize, what: &str) -> Result<String, LdifError> {
    match *spec {
        ValueSpec::Plain(s) => Ok(s.to_string()),
        ValueSpec::Base64(b64) => String::from_utf8(decode_base64(b64, line)?)
            .map_err(|_| err(line, format!("the base64 {what} is not valid UTF-8 text"))),
        ValueSpec::Url(_) => Err(err(
            line,
            format!("a {what} cannot be given as a URL (`:<`)"),
        )),
    }
}

fn read_url(url: &str, base_dir: Option<&Path>, line: usize) -> Result<Vec<u8>, LdifError> {
    let Some(base) = base_dir else {
        return Err(err(
            line,
            format!(
                "`{}`: values are not read from files named in this LDIF; if the export needs \
                 them, write `allow_file_urls: true` beside its `ldif:` in the plan file",
                excerpt(url)
            ),
        ));
    };
    let path = file_url_path(url, Some(base)).map_err(|m| err(line, m))?;
    read_local_file(&path, base).map_err(|m| {
        err(
            line,
            format!(
                "cannot read `{}` (named by `{}`): {m}",
                path.display(),
                excerpt(url)
            ),
        )
    })
}

/// Reads a file a URL names, if it is a regular file inside `base` of at most
/// [`MAX_FILE_URL_BYTES`] (read through a bound, in case it grows meanwhile).
fn read_local_file(path: &Path, base: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let real = path.canonicalize().map_err(|e| e.to_string())?;
    let folder = base.canonicalize().map_err(|e| e.to_string())?;
    if !real.starts_with(&folder) {
        return Err(format!(
            "it is not in the LDIF's folder `{}` or below it",
            folder.display()
        ));
    }
    let file = std::fs::File::open(&real).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    let too_large = || format!("it is larger than {} MiB", MAX_FILE_URL_BYTES >> 20);
    if meta.len() > MAX_FILE_URL_BYTES {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_URL_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_FILE_URL_BYTES {
        return Err(too_large());
    }
    Ok(out)
}

/// The local path a `file:` URL names; relative paths resolve against `base_dir`.
fn file_url_path(url: &str, base_dir: Option<&Path>) -> Result<PathBuf, String> {
    let scheme_end = url.find(':').filter(|&i| {
        let scheme = &url[..i];
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let Some(scheme_end) = scheme_end else {
        return Err(format!(
            "expected a `file:` URL after `:<`, found `{}`",
            excerpt(url)
        ));
    };
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(format!(
            "only `file:` URLs are supported after `:<`, not `{scheme}:`"
        ));
    }
    let rest = &url[scheme_end + 1..];
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let host = &authority_and_path[..slash];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(format!(
                    "`{}` names host `{host}`; only local files can be read",
                    excerpt(url)
                ));
            }
            &authority_and_path[slash..]
        }
        None => rest,
    };
    let path =
        percent_decode(path).ok_or_else(|| format!("bad `%` escape in URL `{}`", excerpt(url)))?;
    if path.is_empty() {
        return Err(format!("URL `{}` names no file", excerpt(url)));
    }
    // `file:///C:/dir/x` names `C:/dir/x` on Windows.
    #[cfg(windows)]
    let path = match path.strip_prefix('/') {
        Some(p) if p.as_bytes().get(1) == Some(&b':') => p.to_string(),
        _ => path,
    };
    let path = PathBuf::from(path);
    Ok(match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses one record (comments removed); returns it and its identifying line.
fn parse_record(
    dn_line: &LogicalLine<'_>,
    rest: &[LogicalLine<'_>],
    base_dir: Option<&Path>,
) -> Result<(Record, usize), LdifError> {
    let dn = parse_dn_line(dn_line)?;
    let controls = rest
        .iter()
        .take_while(|l| name_is(&l.text, "control"))
        .count();
    // Controls belong to change records only; without a `changetype:` after them, `control` is
    // just an attribute of a content record.
    if let Some(ct) = rest
        .get(controls)
        .filter(|l| name_is(&l.text, "changetype"))
    {
        for control in &rest[..controls] {
            check_control(control)?;
        }
        let change = parse_change(ct, &rest[controls + 1..], base_dir)?;
        return Ok((Record::Change(ChangeRecord { dn, change }), ct.line));
    }
    let attrs = parse_attrs(rest, base_dir)?;
    Ok((Record::Content(Entry { dn, attrs }), dn_line.line))
}

fn parse_dn_line(line: &LogicalLine<'_>) -> Result<Dn, LdifError> {
    if !name_is(&line.text, "dn") {
        return Err(err(
            line.line,
            format!(
                "expected `dn:` to start a record, found `{}`",
                excerpt(&line.text)
            ),
        ));
    }
    let spec = split_line(line)?.spec;
    let text = decode_text(&spec, line.line, "DN")?;
    Dn::parse(&text).map_err(|e| err(line.line, format!("bad DN: {e}")))
}

/// `control: <oid> [true|false] [value-spec]`: checked, then dropped.
fn check_control(line: &LogicalLine<'_>) -> Result<(), LdifError> {
    let bad = || {
        err(
            line.line,
            format!(
                "expected `control: <numeric OID> [true|false] [: value]`, found `{}`",
                excerpt(&line.text)
            ),
        )
    };
    let ValueSpec::Plain(spec) = split_line(line)?.spec else {
        return Err(bad());
    };
    let oid_end = spec
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(spec.len());
    let oid = &spec[..oid_end];
    if oid.is_empty() || oid.split('.').any(str::is_empty) {
        return Err(bad());
    }
    let mut rest = spec[oid_end..].trim_start_matches(' ');
    for criticality in ["true", "false"] {
        let matched = rest
            .get(..criticality.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(criticality));
        if matched {
            rest = rest[criticality.len()..].trim_start_matches(' ');
            break;
        }
    }
    match rest.as_bytes().first() {
        None => Ok(()),
        Some(b':') => match rest.get(1..2) {
            Some(":") => decode_base64(rest[2..].trim(), line.line).map(|_| ()),
            _ => Ok(()),
        },
        Some(_) => Err(bad()),
    }
}

/// Attribute lines of a content record or `changetype: add` body. Consecutive lines of one
/// attribute (the usual layout) share one `AttrName`.
fn parse_attrs(lines: &[LogicalLine<'_>], base_dir: Option<&Path>) -> Result<Attrs, LdifError> {
    let mut attrs = Attrs::new();
    let mut run: Option<(&str, AttrName, ValueSet)> = None;
    for line in lines {
        let AttrLine { name, spec } = split_line(line)?;
        match &mut run {
            Some((raw, _, values)) if *raw == name => {
                values.insert(decode_value(&spec, line.line, base_dir)?);
            }
            _ => {
                // No schema has a `dn` attribute: a second `dn:` means a missing blank line, and
                // reading on would merge two entries into one.
                if name.eq_ignore_ascii_case("dn") {
                    return Err(err(
                        line.line,
                        "`dn:` inside a record: records must be separated by a blank line",
                    ));
                }
                let attr = attr_name(name, line.line)?;
                let value = decode_value(&spec, line.line, base_dir)?;
                if let Some((_, attr, values)) = run.take() {
                    merge_values(&mut attrs, attr, values);
                }
                run = Some((name, attr, ValueSet::from([value])));
            }
        }
    }
    if let Some((_, attr, values)) = run {
        merge_values(&mut attrs, attr, values);
    }
    Ok(attrs)
}

fn merge_values(attrs: &mut Attrs, attr: AttrName, values: ValueSet) {
    let slot = attrs.entry(attr).or_default();
    if slot.is_empty() {
        *slot = values;
    } else {
        slot.extend(values);
    }
}

fn parse_change(
    ct: &LogicalLine<'_>,
    body: &[LogicalLine<'_>],
    base_dir: Option<&Path>,
) -> Result<Change, LdifError> {
    let kind = match split_line(ct)?.spec {
        ValueSpec::Plain(kind) => kind.trim(),
        _ => "",
    };
    if kind.eq_ignore_ascii_case("add") {
        Ok(Change::Add(parse_attrs(body, base_dir)?))
    } else if kind.eq_ignore_ascii_case("delete") {
        match body.first() {
            Some(extra) => Err(err(
                extra.line,
                format!(
                    "unexpected `{}` in a `changetype: delete` record (it takes no other lines)",
                    excerpt(&extra.text)
                ),
            )),
            None => Ok(Change::Delete),
        }
    } else if kind.eq_ignore_ascii_case("modify") {
        parse_modify(body, base_dir).map(Change::Modify)
    } else if kind.eq_ignore_ascii_case("modrdn") || kind.eq_ignore_ascii_case("moddn") {
        parse_moddn(ct.line, body)
    } else {
        Err(err(
            ct.line,
            format!(
                "unknown changetype `{}` (expected add, delete, modify, modrdn or moddn)",
                excerpt(kind)
            ),
        ))
    }
}

fn parse_modify(
    body: &[LogicalLine<'_>],
    base_dir: Option<&Path>,
) -> Result<Vec<Modification>, LdifError> {
    let mut mods = Vec::new();
    let mut lines = body.iter().peekable();
    while let Some(line) = lines.next() {
        let expected = || {
            err(
                line.line,
                format!(
                    "expected `add:`, `delete:`, `replace:` or `increment:` to start a \
                     modification, found `{}`",
                    excerpt(&line.text)
                ),
            )
        };
        if is_dash(line) {
            return Err(expected());
        }
        let AttrLine { name, spec } = split_line(line)?;
        let op = [ModOp::Add, ModOp::Delete, ModOp::Replace, ModOp::Increment]
            .into_iter()
            .find(|op| name.eq_ignore_ascii_case(op.as_str()))
            .ok_or_else(expected)?;
        let ValueSpec::Plain(attr_text) = spec else {
            return Err(err(
                line.line,
                format!("expected an attribute name after `{}:`", op.as_str()),
            ));
        };
        let attr = attr_name(attr_text.trim(), line.line)?;
        let mut values = Vec::new();
        // The closing `-` is required by RFC 2849 but often missing after the last block; the end
        // of the record closes it just as clearly.
        while let Some(value_line) = lines.next_if(|l| !is_dash(l)) {
            let AttrLine { name, spec } = split_line(value_line)?;
            if !name.eq_ignore_ascii_case(attr.as_str()) {
                return Err(err(
                    value_line.line,
                    format!(
                        "expected a `{attr}` value or `-` to end the `{}: {attr}` \
                         modification, found `{}`",
                        op.as_str(),
                        excerpt(&value_line.text)
                    ),
                ));
            }
            values.push(decode_value(&spec, value_line.line, base_dir)?);
        }
        lines.next_if(|l| is_dash(l));
        if op == ModOp::Increment && values.len() != 1 {
            return Err(err(
                line.line,
                format!(
                    "`increment: {attr}` takes exactly one value, found {}",
                    values.len()
                ),
            ));
        }
        mods.push(Modification { op, attr, values });
    }
    Ok(mods)
}

fn is_dash(line: &LogicalLine<'_>) -> bool {
    line.text.trim_end() == "-"
}

fn parse_moddn(ct_line: usize, body: &[LogicalLine<'_>]) -> Result<Change, LdifError> {
    let mut lines = body.iter();
    let new_rdn_line = lines
        .next()
        .filter(|l| name_is(&l.text, "newrdn"))
        .ok_or_else(|| {
            err(
                body.first().map_or(ct_line, |l| l.line),
                "expected `newrdn:` after `changetype: modrdn`",
            )
        })?;
    let new_rdn = decode_text(&split_line(new_rdn_line)?.spec, new_rdn_line.line, "RDN")?;
    match Dn::parse(&new_rdn) {
        Ok(rdn) if rdn.rdns().len() == 1 => {}
        Ok(_) => {
            return Err(err(
                new_rdn_line.line,
                format!(
                    "bad new RDN `{}`: expected exactly one RDN such as `CN=New Name`",
                    excerpt(&new_rdn)
                ),
            ));
        }
        Err(e) => return Err(err(new_rdn_line.line, format!("bad new RDN: {e}"))),
    }

    let delete_line = lines
        .next()
        .filter(|l| name_is(&l.text, "deleteoldrdn"))
        .ok_or_else(|| {
            err(
                body.get(1).map_or(new_rdn_line.line, |l| l.line),
                "expected `deleteoldrdn: 0` or `deleteoldrdn: 1` after `newrdn:`",
            )
        })?;
    let delete_old_rdn = match split_line(delete_line)?.spec {
        ValueSpec::Plain(v) if v.trim() == "0" => false,
        ValueSpec::Plain(v) if v.trim() == "1" => true,
        _ => {
            return Err(err(
                delete_line.line,
                "expected `deleteoldrdn: 0` or `deleteoldrdn: 1`",
            ));
        }
    };

    let mut new_superior = None;
    if let Some(line) = lines.next() {
        if !name_is(&line.text, "newsuperior") {
            return Err(err(
                line.line,
                format!(
                    "expected `newsuperior:` or the end of the modrdn record, found `{}`",
                    excerpt(&line.text)
                ),
            ));
        }
        let text = decode_text(&split_line(line)?.spec, line.line, "DN")?;
        new_superior = Some(
            Dn::parse(&text).map_err(|e| err(line.line, format!("bad new superior DN: {e}")))?,
        );
    }
    if let Some(extra) = lines.next() {
        return Err(err(
            extra.line,
            format!(
                "unexpected `{}` after the modrdn fields",
                excerpt(&extra.text)
            ),
        ));
    }
    Ok(Change::ModDn {
        new_rdn,
        delete_old_rdn,
        new_superior,
    })
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// RFC 2849 suggests folding so no line exceeds 76 columns.
const FOLD_WIDTH: usize = 76;

#[derive(Default)]
struct LdifWriter {
    buf: String,
    /// One logical line before folding; reused so writing allocates per output chunk only.
    scratch: String,
}

/// RFC 2849 SAFE-STRING, plus its advice to base64 values that end with a space (a reader may
/// strip trailing spaces).
fn is_safe_string(value: &[u8]) -> bool {
    let safe_char = |b: &u8| matches!(b, 0x01..=0x09 | 0x0B..=0x0C | 0x0E..=0x7F);
    match (value.first(), value.last()) {
        (None, _) => true,
        (Some(b' ' | b':' | b'<'), _) | (_, Some(b' ')) => false,
        _ => value.iter().all(safe_char),
    }
}

impl LdifWriter {
    fn record(&mut self, record: &Record) {
        match record {
            Record::Content(entry) => self.entry(entry),
            Record::Change(change) => self.change(change),
        }
    }

    fn entry(&mut self, entry: &Entry) {
        self.buf.push('\n');
        self.dn("dn", &entry.dn);
        // An entry's first attribute line must not read as the start of a change record, so
        // attributes that share a name with the change-record keywords go last.
        let keyword = |a: &AttrName| matches!(a.folded(), "changetype" | "control");
        for (attr, values) in entry.attrs.iter().filter(|(a, _)| !keyword(a)) {
            self.values(attr, values);
        }
        for (attr, values) in entry.attrs.iter().filter(|(a, _)| keyword(a)) {
            self.values(attr, values);
        }
    }

    fn change(&mut self, record: &ChangeRecord) {
        self.buf.push('\n');
        self.dn("dn", &record.dn);
        match &record.change {
            Change::Add(attrs) => {
                self.line("changetype: add");
                for (attr, values) in attrs {
                    self.values(attr, values);
                }
            }
            Change::Delete => self.line("changetype: delete"),
            Change::Modify(mods) => {
                self.line("changetype: modify");
                for m in mods {
                    self.scratch.clear();
                    self.scratch.push_str(m.op.as_str());
                    self.scratch.push_str(": ");
                    self.scratch.push_str(m.attr.as_str());
                    self.flush_scratch();
                    for value in &m.values {
                        self.value(m.attr.as_str(), value.as_bytes());
                    }
                    self.line("-");
                }
            }
            Change::ModDn {
                new_rdn,
                delete_old_rdn,
                new_superior,
            } => {
                self.line("changetype: modrdn");
                self.value("newrdn", new_rdn.as_bytes());
                self.line(if *delete_old_rdn {
                    "deleteoldrdn: 1"
                } else {
                    "deleteoldrdn: 0"
                });
                if let Some(superior) = new_superior {
                    self.dn("newsuperior", superior);
                }
            }
        }
    }

    fn dn(&mut self, name: &str, dn: &Dn) {
        let text = dn.to_string();
        self.value(name, text.as_bytes());
    }

    fn values<'v>(&mut self, attr: &AttrName, values: impl IntoIterator<Item = &'v Value>) {
        for value in values {
            self.value(attr.as_str(), value.as_bytes());
        }
    }

    fn value(&mut self, name: &str, value: &[u8]) {
        self.scratch.clear();
        self.scratch.push_str(name);
        if value.is_empty() {
            self.scratch.push(':');
        } else if let Some(text) = std::str::from_utf8(value)
            .ok()
            .filter(|_| is_safe_string(value))
        {
            self.scratch.push_str(": ");
            self.scratch.push_str(text);
        } else {
            self.scratch.push_str(":: ");
            STANDARD.encode_string(value, &mut self.scratch);
        }
        self.flush_scratch();
    }

    fn line(&mut self, text: &str) {
        self.scratch.clear();
        self.scratch.push_str(text);
        self.flush_scratch();
    }

    /// Appends `scratch` to the output, folded at `FOLD_WIDTH` columns on char boundaries.
    fn flush_scratch(&mut self) {
        let mut rest = self.scratch.as_str();
        let mut width = FOLD_WIDTH;
        let mut first = true;
        loop {
            let mut cut = rest.len().min(width);
            while cut > 0 && !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if !first {
                self.buf.push(' ');
            }
            self.buf.push_str(&rest[..cut]);
            self.buf.push('\n');
            rest = &rest[cut..];
            if rest.is_empty() || cut == 0 {
                break;
            }
            // Continuation lines spend one column on the leading space.
            width = FOLD_WIDTH - 1;
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn name(s: &str) -> AttrName {
        AttrName::new(s).unwrap()
    }

    fn entries(text: &str) -> Vec<Entry> {
        parse_entries(text, None).unwrap()
    }

    fn records(text: &str) -> Vec<Record> {
        parse_records(text, None).unwrap()
    }

    fn error(text: &str) -> LdifError {
        parse_records(text, None).unwrap_err()
    }

    fn texts(e: &Entry, attr: &str) -> Vec<String> {
        e.texts(attr).map(str::to_string).collect()
    }

    // ---- reader -------------------------------------------------------------------------------

    #[test]
    fn reads_plain_entries() {
        let text = "version: 1\n\
                    # exported from names.nsf\n\
                    dn: CN=John Smith,OU=Sales,O=Acme\n\
                    objectClass: top\n\
                    objectClass: person\n\
                    cn: John Smith\n\
                    mail:   john@acme.com\n\
                    \n\
                    \n\
                    dn: CN=Jane Doe,O=Acme\n\
                    cn: Jane Doe\n";
        let es = entries(text);
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].dn, dn("cn=john smith,ou=sales,o=acme"));
        assert_eq!(texts(&es[0], "objectclass"), ["person", "top"]);
        assert_eq!(es[0].text("mail"), Some("john@acme.com"));
        assert_eq!(es[1].text("cn"), Some("Jane Doe"));
    }

    #[test]
    fn version_is_optional_and_may_share_the_first_block() {
        let a = entries("dn: CN=a\ncn: a\n");
        let b = entries("version: 1\ndn: CN=a\ncn: a\n");
        let c = entries("# header\nversion: 1\n\n\ndn: CN=a\ncn: a\n\n");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(entries("version: 1\n"), []);
        assert_eq!(entries(""), []);
        assert_eq!(entries("\n\n# only a comment\n"), []);
    }

    #[test]
    fn other_versions_are_rejected() {
        let e = error("# c\nversion: 2\n\ndn: CN=a\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("version `2`"), "{e}");
    }

    #[test]
    fn version_is_only_special_at_the_start() {
        let es = entries("dn: CN=a\nversion: 7\n");
        assert_eq!(es[0].text("version"), Some("7"));
        let e = error("dn: CN=a\n\nversion: 1\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("expected `dn:`"), "{e}");
    }

    #[test]
    fn unfolds_dns_values_and_comments() {
        let text = "version: 1\n\
                    # a comment that is\n \
                    folded: not an attribute\n\
                    dn: CN=A Very Long Name,OU=Some Organisational Unit,\n \
                    O=Acme\n\
                    description: first part\n  \
                    second part (note the kept space)\n\
                    cn: x\n";
        let es = entries(text);
        assert_eq!(es.len(), 1);
        assert_eq!(
            es[0].dn,
            dn("CN=A Very Long Name,OU=Some Organisational Unit,O=Acme")
        );
        assert_eq!(
            es[0].text("description"),
            Some("first part second part (note the kept space)")
        );
        assert!(!es[0].has("folded"));
        assert_eq!(es[0].attrs.len(), 2);
    }

    #[test]
    fn reads_crlf_line_endings() {
        let text = "version: 1\r\ndn: CN=a,O=x\r\ncn: a\r\ndescription: long\r\n  value\r\n\r\ndn: CN=b,O=x\r\ncn: b\r\n";
        let es = entries(text);
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].text("description"), Some("long value"));
        assert_eq!(es[1].text("cn"), Some("b"));
        assert_eq!(entries(&text.replace("\r\n", "\n")), es);
    }

    #[test]
    fn skips_a_byte_order_mark() {
        assert_eq!(entries("\u{feff}version: 1\ndn: CN=a\n").len(), 1);
    }

    #[test]
    fn reads_base64_values_and_dns() {
        let text = "dn:: Q049SsO8cmdlbiBNw7xsbGVyLE89QWNtZQ==\n\
                    cn:: SsO8cmdlbiBNw7xsbGVy\n\
                    objectGUID:: 3q0A7w==\n\
                    sn:: TcO8bGxlcg\n";
        let es = entries(text);
        assert_eq!(es[0].dn, dn("CN=Jürgen Müller,O=Acme"));
        assert_eq!(es[0].text("cn"), Some("Jürgen Müller"));
        assert_eq!(
            es[0].text("sn"),
            Some("Müller"),
            "unpadded base64 is accepted"
        );
        let guid = es[0].get("objectguid").unwrap().iter().next().unwrap();
        assert_eq!(guid.as_bytes(), [0xde, 0xad, 0x00, 0xef]);
    }

    #[test]
    fn folded_base64_is_joined_before_decoding() {
        let es = entries("dn: CN=a\ndescription:: SsO8cmdl\n biBNw7xsbGVy\n");
        assert_eq!(es[0].text("description"), Some("Jürgen Müller"));
    }

    #[test]
    fn invalid_base64_names_its_line() {
        let e = error("dn: CN=a\ncn: ok\njpegPhoto:: not*base64\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("invalid base64"), "{e}");
        let e = error("dn:: !!!\n");
        assert_eq!(e.line, 1);
        let e = error("dn:: /w==\n");
        assert!(e.message.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn keeps_options_empty_values_and_collapses_duplicates() {
        let text = "dn: CN=a\n\
                    cn;lang-de: Anna\n\
                    cn: Anna\n\
                    description:\n\
                    mail: a@x.com\n\
                    MAIL: a@x.com\n\
                    mail: b@x.com\n\
                    cn: Anna\n";
        let e = &entries(text)[0];
        assert_eq!(texts(e, "cn;LANG-DE"), ["Anna"]);
        assert_eq!(texts(e, "cn"), ["Anna"]);
        assert_eq!(texts(e, "description"), [""]);
        assert!(e.has("description"));
        assert_eq!(texts(e, "mail"), ["a@x.com", "b@x.com"]);
        assert_eq!(e.attrs.len(), 4);
    }

    #[test]
    fn spaces_are_handled_as_the_rfc_says() {
        let text = "dn: CN=a\ncn:    lead stripped\nsn: trail kept  \ngivenName:no space\n";
        let e = &entries(text)[0];
        assert_eq!(e.text("cn"), Some("lead stripped"));
        assert_eq!(e.text("sn"), Some("trail kept  "));
        assert_eq!(e.text("givenName"), Some("no space"));
    }

    #[test]
    fn unsafe_initial_characters_are_read_leniently_when_unambiguous() {
        let e = &entries("dn: CN=a\ndescription: :colon\ninfo: <angle\n")[0];
        assert_eq!(e.text("description"), Some(":colon"));
        assert_eq!(e.text("info"), Some("<angle"));
    }

    #[test]
    fn raw_utf8_values_are_accepted() {
        let e = &entries("dn: CN=Jürgen,O=Acme\ncn: Jürgen\n")[0];
        assert_eq!(e.text("cn"), Some("Jürgen"));
        assert_eq!(e.dn, dn("CN=jürgen,O=acme"));
    }

    #[test]
    fn reads_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let photo = [0xffu8, 0xd8, 0xff, 0x00, 0x10];
        std::fs::write(dir.path().join("photo one.jpg"), photo).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("note.txt"), "hello").unwrap();
        let abs = dir.path().join("photo one.jpg");
        let abs = abs.to_str().unwrap().replace(' ', "%20");
        let text = format!(
            "dn: CN=a\njpegPhoto:< file://{abs}\ninfo:<file:sub/note.txt\nphoto:< file:photo%20one.jpg\n"
        );
        let e = &parse_entries(&text, Some(dir.path())).unwrap()[0];
        // (An absolute URL is read too, when it names a file in the folder.)
        assert_eq!(
            e.get("jpegPhoto")
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .as_bytes(),
            photo
        );
        assert_eq!(e.text("info"), Some("hello"));
        assert_eq!(e.get("photo"), e.get("jpegphoto"));
    }

    #[test]
    fn bad_urls_are_errors_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse_entries(
            "dn: CN=a\ncn: a\nphoto:< file:missing.jpg\n",
            Some(dir.path()),
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("cannot read"), "{e}");
        let url_error = |text: &str| parse_entries(text, Some(dir.path())).unwrap_err();
        let e = url_error("dn: CN=a\nphoto:< http://example.com/a.jpg\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("only `file:` URLs"), "{e}");
        let e = url_error("dn: CN=a\nphoto:< /no/scheme\n");
        assert!(e.message.contains("expected a `file:` URL"), "{e}");
        let e = url_error("dn: CN=a\nphoto:< file://server/share/a.jpg\n");
        assert!(e.message.contains("host `server`"), "{e}");
        let e = url_error("dn: CN=a\nphoto:< file:///a%zz\n");
        assert!(e.message.contains("bad `%` escape"), "{e}");
    }

    #[test]
    fn file_urls_are_read_only_when_allowed_and_only_small_regular_files_in_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ldif = dir.path().join("export");
        std::fs::create_dir(&ldif).unwrap();
        std::fs::write(ldif.join("note.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        // Not allowed: refused, whatever the URL names, with the key that allows it.
        let e = error("dn: CN=a\ninfo:< file:note.txt\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("allow_file_urls: true"), "{e}");
        let e = error("dn: CN=a\ninfo:< file:///etc/passwd\n");
        assert!(e.message.contains("allow_file_urls"), "{e}");
        // Allowed: a file in the folder is read; nothing outside it, and no device.
        let read = |text: &str| parse_entries(text, Some(&ldif));
        let e = &read("dn: CN=a\ninfo:< file:note.txt\n").unwrap()[0];
        assert_eq!(e.text("info"), Some("hello"));
        for url in [
            "file:///dev/zero",
            "file:///etc/passwd",
            "file:../outside.txt",
            &format!("file://{}", dir.path().join("outside.txt").display()),
        ] {
            let e = read(&format!("dn: CN=a\ninfo:< {url}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{url}");
            assert!(e.message.contains("not in the LDIF's folder"), "{url}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", ldif.join("zero")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("outside.txt"), ldif.join("out")).unwrap();
            let e = read("dn: CN=a\ninfo:< file:zero\n").unwrap_err();
            assert!(e.message.contains("not in the LDIF's folder"), "{e}");
            let e = read("dn: CN=a\ninfo:< file:out\n").unwrap_err();
            assert!(e.message.contains("not in the LDIF's folder"), "{e}");
            std::fs::create_dir(ldif.join("sub")).unwrap();
            let e = read("dn: CN=a\ninfo:< file:sub\n").unwrap_err();
            assert!(e.message.contains("not a regular file"), "{e}");
        }
        let big = std::fs::File::create(ldif.join("big")).unwrap();
        big.set_len(MAX_FILE_URL_BYTES + 1).unwrap();
        let e = read("dn: CN=a\ninfo:< file:big\n").unwrap_err();
        assert!(e.message.contains("larger than 16 MiB"), "{e}");
    }

    #[test]
    fn secret_values_are_found_with_their_folded_lines() {
        let text = "dn: CN=a\nuserPassword: {SSHA}abc\n def\ncn: a\nunicodePwd;binary:: AAAA\n";
        let masked: Vec<&str> = secret_values(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(masked, [" {SSHA}abc", "def", ": AAAA"]);
    }

    #[test]
    fn a_byte_that_is_not_utf8_is_refused_at_its_line_and_column() {
        let bytes = b"dn: CN=a\ncn: J\xfcrgen\n";
        let e = text_of(bytes).unwrap_err();
        assert_eq!((e.line, e.column), (2, Some(6)));
        assert!(
            e.message.contains("0xFC") && e.message.contains("base64"),
            "{e}"
        );
        assert_eq!(text_of(b"dn: CN=a\n"), Ok("dn: CN=a\n"));
    }

    #[test]
    fn errors_carry_the_line_and_a_readable_message() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "dn: CN=a\ncn: a\nno colon here\n",
                3,
                "expected `attr: value`",
            ),
            ("dn: CN=a\nc n: a\n", 2, "attribute name"),
            ("dn: CN=a\n-cn: a\n", 2, "attribute name"),
            ("cn: a\ndn: CN=a\n", 1, "expected `dn:`"),
            ("dn: CN=a\n\ncn: orphan\n", 3, "expected `dn:`"),
            ("dn: CN=a,Sales\n", 1, "bad DN"),
            (
                "dn: CN=a\ncn: a\ndn: CN=b\ncn: b\n",
                3,
                "separated by a blank line",
            ),
            (
                "dn: CN=a\nchangetype: add\ncn: a\nDN: CN=b\n",
                4,
                "separated by a blank line",
            ),
            ("dn: CN=a\n\n continued\n", 3, "no line before it"),
            (" dn: CN=a\n", 1, "no line before it"),
            (
                "dn: CN=a\ncn: a\ndescription: long\n  folded\n value\nbad\n",
                6,
                "expected",
            ),
        ];
        for (text, line, message) in cases {
            let e = error(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")));
        }
    }

    #[test]
    fn folded_line_errors_point_at_the_start() {
        let e = error("dn: CN=a\ncn: a\nphoto:: AAA\n *\n B\n");
        assert_eq!(e.line, 3);
        let e = error("dn: CN=a,\n Sales\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("bad DN"));
    }

    #[test]
    fn whitespace_only_lines_separate_records() {
        let es = entries("dn: CN=a\ncn: a\n\t\ndn: CN=b\ncn: b\n");
        assert_eq!(es.len(), 2);
        let es = entries("dn: CN=a\ncn: a\n\n \ndn: CN=b\n");
        assert_eq!(es.len(), 2);
    }

    #[test]
    fn entry_without_attributes_is_read() {
        let es = entries("dn: O=Acme\n\ndn:\n");
        assert_eq!(es.len(), 2);
        assert!(es[0].attrs.is_empty());
        assert!(es[1].dn.is_root());
    }

    // ---- change records -----------------------------------------------------------------------

    #[test]
    fn reads_change_records() {
        let text = "version: 1\n\
                    \n\
                    dn: CN=New,O=Acme\n\
                    changetype: add\n\
                    objectClass: person\n\
                    cn: New\n\
                    \n\
                    dn: CN=Old,O=Acme\n\
                    control: 1.2.840.113556.1.4.805 true\n\
                    changetype: delete\n\
                    \n\
                    dn: CN=Mod,O=Acme\n\
                    changetype: modify\n\
                    add: proxyAddresses\n\
                    proxyAddresses: smtp:a@x.com\n\
                    proxyAddresses: SMTP:b@x.com\n\
                    -\n\
                    delete: description\n\
                    -\n\
                    replace: mail\n\
                    mail: b@x.com\n\
                    -\n\
                    increment: uidNumber\n\
                    uidNumber: 1\n\
                    -\n\
                    \n\
                    dn: CN=Mod,O=Acme\n\
                    changetype: modrdn\n\
                    newrdn: CN=Renamed\n\
                    deleteoldrdn: 1\n\
                    newsuperior: OU=Moved,O=Acme\n\
                    \n\
                    dn: CN=Renamed,OU=Moved,O=Acme\n\
                    changetype: moddn\n\
                    newrdn: CN=Again\n\
                    deleteoldrdn: 0\n";
        let rs = records(text);
        assert_eq!(rs.len(), 5);
        let Record::Change(add) = &rs[0] else {
            panic!("{:?}", rs[0])
        };
        let Change::Add(attrs) = &add.change else {
            panic!()
        };
        assert_eq!(attrs.len(), 2);
        assert_eq!(
            rs[1],
            Record::Change(ChangeRecord {
                dn: dn("CN=Old,O=Acme"),
                change: Change::Delete
            })
        );
        let Record::Change(ChangeRecord {
            change: Change::Modify(mods),
            ..
        }) = &rs[2]
        else {
            panic!()
        };
        assert_eq!(
            mods,
            &vec![
                Modification {
                    op: ModOp::Add,
                    attr: name("proxyAddresses"),
                    values: vec!["smtp:a@x.com".into(), "SMTP:b@x.com".into()],
                },
                Modification {
                    op: ModOp::Delete,
                    attr: name("description"),
                    values: vec![],
                },
                Modification {
                    op: ModOp::Replace,
                    attr: name("mail"),
                    values: vec!["b@x.com".into()],
                },
                Modification {
                    op: ModOp::Increment,
                    attr: name("uidNumber"),
                    values: vec!["1".into()],
                },
            ]
        );
        assert_eq!(
            rs[3],
            Record::Change(ChangeRecord {
                dn: dn("CN=Mod,O=Acme"),
                change: Change::ModDn {
                    new_rdn: "CN=Renamed".into(),
                    delete_old_rdn: true,
                    new_superior: Some(dn("OU=Moved,O=Acme")),
                }
            })
        );
        assert!(matches!(
            &rs[4],
            Record::Change(ChangeRecord {
                change: Change::ModDn {
                    delete_old_rdn: false,
                    new_superior: None,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn keywords_are_case_insensitive_and_final_dash_optional() {
        let rs = records("DN: CN=a\nChangeType: Modify\nREPLACE: cn\nCN: b\n");
        let Record::Change(ChangeRecord {
            change: Change::Modify(mods),
            ..
        }) = &rs[0]
        else {
            panic!("{rs:?}")
        };
        assert_eq!(mods.len(), 1);
        assert_eq!(mods[0].values, vec![Value::text("b")]);
    }

    #[test]
    fn controls_are_parsed_and_ignored() {
        let text = "dn: CN=a\n\
                    control: 1.2.840.113556.1.4.417\n\
                    control: 1.2.3.4 false: some value\n\
                    control: 1.2.3.5 TRUE:: AAEC\n\
                    control: 1.2.3.6:< file:///nowhere\n\
                    changetype: delete\n";
        assert_eq!(
            records(text),
            [Record::Change(ChangeRecord {
                dn: dn("CN=a"),
                change: Change::Delete
            })]
        );
        let e = error("dn: CN=a\ncontrol: not-an-oid\nchangetype: delete\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("control"), "{e}");
        let e = error("dn: CN=a\ncontrol: 1.2.3 true:: ***\nchangetype: delete\n");
        assert!(e.message.contains("invalid base64"), "{e}");
    }

    #[test]
    fn control_without_changetype_is_an_attribute() {
        let e = &entries("dn: CN=a\ncontrol: 1.2.3\ncn: a\n")[0];
        assert_eq!(e.text("control"), Some("1.2.3"));
    }

    #[test]
    fn change_record_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("dn: CN=a\nchangetype: rename\n", 2, "unknown changetype"),
            (
                "dn: CN=a\nchangetype: delete\ncn: a\n",
                3,
                "takes no other lines",
            ),
            (
                "dn: CN=a\nchangetype: modify\nadd: mail\nmail: a\ncn: b\n-\n",
                5,
                "expected a `mail` value or `-`",
            ),
            (
                "dn: CN=a\nchangetype: modify\nmail: a\n",
                3,
                "expected `add:`",
            ),
            ("dn: CN=a\nchangetype: modify\n-\n", 3, "expected `add:`"),
            (
                "dn: CN=a\nchangetype: modify\nincrement: n\nn: 1\nn: 2\n-\n",
                3,
                "exactly one value",
            ),
            (
                "dn: CN=a\nchangetype: modify\nadd:: bWFpbA==\n",
                3,
                "attribute name",
            ),
            ("dn: CN=a\nchangetype: modrdn\n", 2, "expected `newrdn:`"),
            (
                "dn: CN=a\nchangetype: modrdn\nnewrdn: CN=b\n",
                3,
                "deleteoldrdn",
            ),
            (
                "dn: CN=a\nchangetype: modrdn\nnewrdn: CN=b\ndeleteoldrdn: yes\n",
                4,
                "deleteoldrdn",
            ),
            (
                "dn: CN=a\nchangetype: modrdn\nnewrdn: CN=b,O=x\ndeleteoldrdn: 1\n",
                3,
                "exactly one RDN",
            ),
            (
                "dn: CN=a\nchangetype: modrdn\nnewrdn: CN=b\ndeleteoldrdn: 1\nnewsuperior: x\n",
                5,
                "bad new superior",
            ),
            (
                "dn: CN=a\nchangetype: modrdn\nnewrdn: CN=b\ndeleteoldrdn: 1\ncn: b\n",
                5,
                "newsuperior",
            ),
        ];
        for (text, line, message) in cases {
            let e = error(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
        }
    }

    #[test]
    fn entries_file_takes_add_records_and_rejects_other_changes() {
        let es = entries("dn: CN=a\ncn: a\n\ndn: CN=b\nchangetype: add\ncn: b\n");
        assert_eq!(es.len(), 2);
        assert_eq!(es[1], Entry::new(dn("CN=b")).with("cn", "b"));
        let e = parse_entries(
            "dn: CN=a\ncn: a\n\ndn: CN=b\ncontrol: 1.2.3\nchangetype: modify\nreplace: cn\ncn: c\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.line, 6);
        assert!(
            e.message.contains("`changetype: modify` record for `CN=b`"),
            "{e}"
        );
    }

    // ---- writer -------------------------------------------------------------------------------

    #[test]
    fn writes_the_expected_text() {
        let e = Entry::new(dn("CN=Jürgen Müller,O=Acme"))
            .with("objectClass", "person")
            .with("objectClass", "top")
            .with("cn", "Jürgen Müller")
            .with("description", "")
            .with("info", " padded ")
            .with("sn", "Mueller");
        let plain = Entry::new(dn("CN=Plain,O=Acme")).with("cn", "Plain");
        let text = entries_to_string(&[e, plain]);
        assert_eq!(
            text,
            "version: 1\n\
             \n\
             dn:: Q049SsO8cmdlbiBNw7xsbGVyLE89QWNtZQ==\n\
             cn:: SsO8cmdlbiBNw7xsbGVy\n\
             description:\n\
             info:: IHBhZGRlZCA=\n\
             objectClass: person\n\
             objectClass: top\n\
             sn: Mueller\n\
             \n\
             dn: CN=Plain,O=Acme\n\
             cn: Plain\n"
        );
        let mut out = Vec::new();
        write_entries(&[], &mut out).unwrap();
        assert_eq!(out, b"version: 1\n");
    }

    #[test]
    fn writes_change_records() {
        let rs = vec![
            Record::Change(ChangeRecord {
                dn: dn("CN=a,O=x"),
                change: Change::Modify(vec![
                    Modification {
                        op: ModOp::Replace,
                        attr: name("mail"),
                        values: vec!["a@x.com".into()],
                    },
                    Modification {
                        op: ModOp::Delete,
                        attr: name("info"),
                        values: vec![],
                    },
                ]),
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=a,O=x"),
                change: Change::ModDn {
                    new_rdn: "CN=b".into(),
                    delete_old_rdn: true,
                    new_superior: Some(dn("OU=y,O=x")),
                },
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=b,OU=y,O=x"),
                change: Change::Delete,
            }),
        ];
        let mut out = Vec::new();
        write_records(&rs, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "version: 1\n\
             \n\
             dn: CN=a,O=x\n\
             changetype: modify\n\
             replace: mail\n\
             mail: a@x.com\n\
             -\n\
             delete: info\n\
             -\n\
             \n\
             dn: CN=a,O=x\n\
             changetype: modrdn\n\
             newrdn: CN=b\n\
             deleteoldrdn: 1\n\
             newsuperior: OU=y,O=x\n\
             \n\
             dn: CN=b,OU=y,O=x\n\
             changetype: delete\n"
        );
        assert_eq!(records_to_string(&rs), text);
        assert_eq!(records(&text), rs);
    }

    #[test]
    fn base64_is_used_exactly_when_needed() {
        assert!(is_safe_string(b""));
        assert!(is_safe_string(b"plain text: with colon <and> angle"));
        assert!(is_safe_string(b"tab\tinside"));
        for unsafe_value in [
            &b" lead"[..],
            b":colon",
            b"<angle",
            b"trail ",
            b"nul\0",
            b"line\nbreak",
            b"cr\r",
            "Müller".as_bytes(),
            &[0xff, 0xfe],
        ] {
            assert!(!is_safe_string(unsafe_value), "{unsafe_value:?}");
        }
    }

    #[test]
    fn long_lines_fold_at_76_columns() {
        let long = "x".repeat(500);
        let e = Entry::new(dn("CN=a"))
            .with("description", &long)
            .with("info", &"ü".repeat(200));
        let text = entries_to_string(std::slice::from_ref(&e));
        for line in text.lines() {
            assert!(line.len() <= 76, "{} columns: {line}", line.len());
        }
        assert!(text.contains("\n xxx"));
        assert_eq!(entries(&text), [e]);
    }

    #[test]
    fn output_is_deterministic() {
        let a = Entry::new(dn("CN=a"))
            .with("mail", "b@x")
            .with("cn", "a")
            .with("mail", "a@x");
        let b = Entry::new(dn("CN=a"))
            .with("mail", "a@x")
            .with("mail", "b@x")
            .with("cn", "a");
        assert_eq!(entries_to_string(&[a]), entries_to_string(&[b]));
    }

    #[test]
    fn keyword_named_attributes_survive_a_round_trip() {
        let e = Entry::new(dn("CN=a"))
            .with("changetype", "modify")
            .with("control", "1.2.3")
            .with("cn", "a");
        assert_eq!(entries(&entries_to_string(std::slice::from_ref(&e))), [e]);
    }

    // ---- round trips ----------------------------------------------------------------------------

    fn tricky_entries() -> Vec<Entry> {
        let mut binary = Entry::new(dn("CN=Binary,OU=Users,DC=acme,DC=com"))
            .with("objectClass", "user")
            .with("cn", "Binary");
        binary.add(
            name("objectGUID"),
            Value::bytes(vec![0x00, 0x12, 0xff, 0x0a, 0x0d, 0x20]),
        );
        binary.add(
            name("objectSid"),
            Value::bytes((0..=255u8).collect::<Vec<_>>()),
        );
        binary.add(name("jpegPhoto"), Value::bytes(vec![]));
        vec![
            Entry::new(dn("CN=Jürgen Müller,OU=Vertrieb,O=Acme"))
                .with("cn", "Jürgen Müller")
                .with("cn;lang-ja", "ユルゲン")
                .with("sn", "Müller")
                .with("displayName", "Müller, Jürgen"),
            Entry::new(dn(r"CN=Smith\, John,OU=Sales\+Marketing,O=Acme"))
                .with("description", &"long value with words ".repeat(40))
                .with("info", "")
                .with("postalAddress", "line one\nline two\r\nline three")
                .with("title", "  leading")
                .with("department", "trailing  ")
                .with("comment", ":starts with colon")
                .with("notes", "<starts with angle")
                .with("mail", "john@acme.com"),
            Entry::new(dn(r"CN=\ padded\ ,O=Acme")).with("cn", " padded "),
            Entry::new(Dn::root()).with("namingContexts", "DC=acme,DC=com"),
            Entry::new(dn("OU=Empty,O=Acme")),
            binary,
        ]
    }

    #[test]
    fn entries_round_trip() {
        let es = tricky_entries();
        let text = entries_to_string(&es);
        assert_eq!(parse_entries(&text, None).unwrap(), es);
        let mut out = Vec::new();
        write_entries(&es, &mut out).unwrap();
        assert_eq!(out, text.as_bytes());
    }

    #[test]
    fn records_round_trip() {
        let mut rs: Vec<Record> = tricky_entries().into_iter().map(Record::Content).collect();
        let attrs = tricky_entries().swap_remove(1).attrs;
        rs.extend([
            Record::Change(ChangeRecord {
                dn: dn("CN=Née,O=Acme"),
                change: Change::Add(attrs),
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=x,O=Acme"),
                change: Change::Add(Attrs::new()),
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=Gone,O=Acme"),
                change: Change::Delete,
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=Mod,O=Acme"),
                change: Change::Modify(vec![
                    Modification {
                        op: ModOp::Add,
                        attr: name("proxyAddresses"),
                        values: vec![
                            "smtp:b@x".into(),
                            "SMTP:a@x".into(),
                            "smtp:b@x".into(),
                            " spaced ".into(),
                            Value::bytes(vec![0, 1, 2]),
                            "x".repeat(300).into(),
                        ],
                    },
                    Modification {
                        op: ModOp::Delete,
                        attr: name("description"),
                        values: vec![],
                    },
                    Modification {
                        op: ModOp::Replace,
                        attr: name("cn;lang-de"),
                        values: vec!["Müller".into(), "".into()],
                    },
                    Modification {
                        op: ModOp::Replace,
                        attr: name("info"),
                        values: vec![],
                    },
                    Modification {
                        op: ModOp::Increment,
                        attr: name("uidNumber"),
                        values: vec!["-1".into()],
                    },
                ]),
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=Mod,O=Acme"),
                change: Change::Modify(vec![]),
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=Old,O=Acme"),
                change: Change::ModDn {
                    new_rdn: "CN=Jürgen Müller".into(),
                    delete_old_rdn: false,
                    new_superior: Some(dn("OU=Straße,O=Acme")),
                },
            }),
            Record::Change(ChangeRecord {
                dn: dn("CN=Old,O=Acme"),
                change: Change::ModDn {
                    new_rdn: r"CN=Smith\, John".into(),
                    delete_old_rdn: true,
                    new_superior: Some(Dn::root()),
                },
            }),
            Record::Content(Entry::new(dn("CN=after,O=Acme")).with("cn", "after")),
        ]);
        let text = records_to_string(&rs);
        assert_eq!(parse_records(&text, None).unwrap(), rs);
    }

    fn random_value(rng: &mut ChaCha8Rng) -> Value {
        let len = match rng.random_range(0..10) {
            0 => 0,
            1..=6 => rng.random_range(1..20),
            _ => rng.random_range(20..400),
        };
        match rng.random_range(0..4) {
            0 => Value::bytes((0..len).map(|_| rng.random::<u8>()).collect::<Vec<_>>()),
            1 => {
                let alphabet = [
                    ' ', ':', '<', 'a', 'Z', '0', '\n', '\r', '\t', 'ü', 'ß', '€', '#', '-', '=',
                ];
                Value::text(
                    (0..len)
                        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                        .collect::<String>(),
                )
            }
            _ => Value::text(
                (0..len)
                    .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                    .collect::<String>(),
            ),
        }
    }

    #[test]
    fn random_entries_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(2849);
        let attrs = [
            "cn",
            "mail",
            "description",
            "cn;lang-de",
            "objectGUID",
            "x-1.2",
        ];
        let mut es = Vec::new();
        for i in 0..300 {
            let mut e = Entry::new(dn(&format!("CN=user {i},OU=R\\+D,O=Acme")));
            for _ in 0..rng.random_range(0..8) {
                let attr = attrs[rng.random_range(0..attrs.len())];
                e.add(name(attr), random_value(&mut rng));
            }
            es.push(e);
        }
        let text = entries_to_string(&es);
        assert!(text.lines().all(|l| l.len() <= 76));
        assert_eq!(parse_entries(&text, None).unwrap(), es);
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut rs: Vec<Record> = tricky_entries().into_iter().map(Record::Content).collect();
        rs.push(Record::Change(ChangeRecord {
            dn: dn("CN=m"),
            change: Change::Modify(vec![Modification {
                op: ModOp::Add,
                attr: name("mail"),
                values: vec!["a".into()],
            }]),
        }));
        let base: Vec<char> = records_to_string(&rs).chars().collect();
        let noise = [
            ' ', ':', '<', '\n', '\r', '-', '#', '=', 'ü', '%', '\\', 'A',
        ];
        for _ in 0..2000 {
            let mut text = base.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..text.len());
                match rng.random_range(0..3) {
                    0 => text[at] = noise[rng.random_range(0..noise.len())],
                    1 => {
                        text.remove(at);
                    }
                    _ => text.insert(at, noise[rng.random_range(0..noise.len())]),
                }
            }
            let text: String = text.into_iter().collect();
            let _ = parse_records(&text, None);
            let _ = parse_entries(&text, None);
        }
    }
}
