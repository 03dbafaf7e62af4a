//! Diagnostics for plan files: one `PlanFileError` that carries every problem found, each problem
//! a miette diagnostic with a code, a message, labelled spans into the file and a help text.
//!
//! Problems are sorted by where they are in the file, so the report reads top-down and is the same
//! on every run. This module only describes problems; finding them is `load`'s job.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, LabeledSpan, SourceSpan};

use crate::snippet::Snippet;

/// Stable codes, one per kind of problem (shown by miette, and matched on in tests).
pub mod codes {
    pub const UNREADABLE: &str = "mailplan::spec::unreadable";
    pub const NOT_UTF8: &str = "mailplan::spec::not_utf8";
    pub const INVALID_PLAN: &str = "mailplan::spec::invalid_plan";
    pub const SYNTAX: &str = "mailplan::spec::syntax";
    pub const EMPTY: &str = "mailplan::spec::empty";
    pub const NOT_A_MAPPING: &str = "mailplan::spec::not_a_mapping";
    pub const UNKNOWN_KEY: &str = "mailplan::spec::unknown_key";
    pub const DUPLICATE_KEY: &str = "mailplan::spec::duplicate_key";
    pub const MISSING_KEY: &str = "mailplan::spec::missing_key";
    pub const WRONG_TYPE: &str = "mailplan::spec::wrong_type";
    pub const UNKNOWN_VALUE: &str = "mailplan::spec::unknown_value";
    pub const PLAIN_SECRET: &str = "mailplan::spec::plain_secret";
    pub const UNSUPPORTED_VERSION: &str = "mailplan::spec::unsupported_version";
    pub const INVALID_DN: &str = "mailplan::spec::invalid_dn";
    pub const ROOT_CONTAINER: &str = "mailplan::spec::root_container";
    pub const INVALID_FILTER: &str = "mailplan::spec::invalid_filter";
    pub const INVALID_ATTRIBUTE: &str = "mailplan::spec::invalid_attribute";
    pub const DUPLICATE_ATTRIBUTE: &str = "mailplan::spec::duplicate_attribute";
    pub const INVALID_TEMPLATE: &str = "mailplan::spec::invalid_template";
    pub const INVALID_DOMAIN: &str = "mailplan::spec::invalid_domain";
    pub const DUPLICATE_DOMAIN: &str = "mailplan::spec::duplicate_domain";
    pub const INVALID_DIRECTORY: &str = "mailplan::spec::invalid_directory";
    pub const INVALID_URL: &str = "mailplan::spec::invalid_url";
    pub const EMPTY_VALUE: &str = "mailplan::spec::empty_value";
    pub const INVALID_IGNORE: &str = "mailplan::spec::invalid_ignore";
    pub const CONFLICTING_PINS: &str = "mailplan::spec::conflicting_pins";
    pub const CONFLICTING_KEYS: &str = "mailplan::spec::conflicting_keys";
    pub const WRONG_FLAVOR: &str = "mailplan::spec::wrong_flavor";
    pub const INCLUDED_AND_EXCLUDED: &str = "mailplan::spec::included_and_excluded";
    pub const NOT_IN_DIRECTORY: &str = "mailplan::spec::not_in_directory";
    pub const SECRET_UNAVAILABLE: &str = "mailplan::spec::secret_unavailable";
    pub const UNKNOWN_PLACEHOLDER: &str = "mailplan::spec::unknown_placeholder";
    pub const NOT_MIGRATABLE: &str = "mailplan::spec::not_migratable";
    /// Not a problem of its own: how many problems past the first ones shown are not shown.
    pub const MORE_PROBLEMS: &str = "mailplan::spec::more_problems";
    /// A check failed without saying why: a bug, reported rather than hidden.
    pub const INCOMPLETE: &str = "mailplan::spec::incomplete";
}

/// How many problems a report shows; the rest are counted. (`PlanFileError::problems` has them
/// all.)
pub const SHOWN: usize = 100;

/// One labelled place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub text: Option<String>,
    /// Byte offsets into the plan file.
    pub span: Range<usize>,
}

/// One problem in a plan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    code: &'static str,
    message: String,
    /// The first label is the primary one: where the problem is.
    labels: Vec<Label>,
    help: Option<String>,
}

impl Problem {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds a label; the first one added is the primary one.
    pub(crate) fn label(mut self, span: Range<usize>, text: impl Into<String>) -> Self {
        let text = text.into();
        // A span is never reversed (miette would read a length that wrapped around).
        let span = span.start..span.end.max(span.start);
        self.labels.push(Label {
            text: (!text.is_empty()).then_some(text),
            span,
        });
        self
    }

    pub(crate) fn label_opt(self, span: Option<Range<usize>>, text: impl Into<String>) -> Self {
        match span {
            Some(span) => self.label(span, text),
            None => self,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        let help = help.into();
        self.help = (!help.is_empty()).then_some(help);
        self
    }

    pub(crate) fn help_opt(self, help: Option<String>) -> Self {
        match help {
            Some(h) => self.help(h),
            None => self,
        }
    }

    /// `mailplan::spec::...`
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the problem is, as byte offsets into the plan file (the primary label's span).
    pub fn span(&self) -> Option<Range<usize>> {
        self.labels.first().map(|l| l.span.clone())
    }

    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            let span = SourceSpan::from(l.span.clone());
            if i == 0 {
                LabeledSpan::new_primary_with_span(l.text.clone(), span)
            } else {
                LabeledSpan::new_with_span(l.text.clone(), span)
            }
        })))
    }
}

/// Everything wrong with one plan file: the file can't be read, or it has one or more problems,
/// each a related diagnostic pointing into the file.
///
/// Boxed so that a `Result<Spec, PlanFileError>` stays small on the happy path.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.headline)]
pub struct PlanFileError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: &'static str,
    headline: String,
    path: PathBuf,
    source_code: Snippet,
    problems: Vec<Problem>,
    /// Shown after the first [`SHOWN`] problems when there are more: how many are not shown.
    more: Option<Problem>,
    help: Option<String>,
}

impl PlanFileError {
    /// A plan file with these problems (at least one). Problems are sorted by position.
    pub(crate) fn new(path: &Path, text: &str, mut problems: Vec<Problem>) -> Self {
        // By position, then message, so a problem found by two passes sorts next to its twin
        // and is reported once.
        problems.sort_by(|a, b| {
            let key = |p: &Problem| p.span().map_or((usize::MAX, 0), |s| (s.start, s.end));
            key(a).cmp(&key(b)).then_with(|| a.message.cmp(&b.message))
        });
        problems.dedup();
        let n = problems.len();
        let more = (n > SHOWN).then(|| {
            Problem::new(
                codes::MORE_PROBLEMS,
                format!("… and {} more problems, not shown", n - SHOWN),
            )
            .help(format!(
                "the first {SHOWN} problems are shown, in file order; fix them and validate again"
            ))
        });
        PlanFileError(Box::new(Inner {
            code: codes::INVALID_PLAN,
            headline: format!(
                "plan file `{}` has {n} problem{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            ),
            path: path.to_path_buf(),
            source_code: Snippet::new(
                path.display().to_string(),
                "yaml",
                text,
                &secret_values(text),
            ),
            more,
            problems,
            help: None,
        }))
    }

    /// The plan file is not UTF-8: the first byte that is not, at its line and column, and how
    /// many places there are. The text is shown with each such byte as `?`, so that every offset
    /// is the file's.
    pub(crate) fn not_utf8(path: &Path, bytes: &[u8]) -> Self {
        let mut text = String::with_capacity(bytes.len());
        let mut first = None;
        let mut places = 0usize;
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if let Some(&byte) = invalid.first() {
                first.get_or_insert((text.len(), byte));
                places += 1;
                text.extend(std::iter::repeat_n('?', invalid.len()));
            }
        }
        let (at, byte) = first.unwrap_or((0, 0));
        let others = match places {
            0 | 1 => String::new(),
            2 => " (and 1 more place)".to_string(),
            n => format!(" (and {} more places)", n - 1),
        };
        let problem = Problem::new(
            codes::NOT_UTF8,
            format!("the plan file is not UTF-8: byte 0x{byte:02X} is not part of a UTF-8 character{others}"),
        )
        .label(at..at + 1, "not UTF-8")
        .help(
            "save the plan file as UTF-8 (a byte like this one is what Latin-1 or Windows-1252 \
             write for an accented letter)",
        );
        PlanFileError::new(path, &text, vec![problem])
    }

    /// The plan file could not be read at all.
    pub(crate) fn unreadable(path: &Path, error: &std::io::Error) -> Self {
        let (reason, help) = match error.kind() {
            std::io::ErrorKind::NotFound => (
                "no such file".to_string(),
                "check the path; a relative path starts at the current folder",
            ),
            std::io::ErrorKind::PermissionDenied => (
                "permission denied".to_string(),
                "the plan file must be readable by the user running mailplan",
            ),
            std::io::ErrorKind::InvalidData => (
                "it is not UTF-8 text".to_string(),
                "save the plan file as UTF-8",
            ),
            std::io::ErrorKind::IsADirectory => (
                "it is a folder".to_string(),
                "give the path of the plan file itself",
            ),
            _ => (
                error.to_string(),
                "check the path and the file's permissions",
            ),
        };
        PlanFileError(Box::new(Inner {
            code: codes::UNREADABLE,
            headline: format!("cannot read plan file `{}`: {reason}", path.display()),
            path: path.to_path_buf(),
            source_code: Snippet::new(path.display().to_string(), "yaml", "", &[]),
            problems: Vec::new(),
            more: None,
            help: Some(help.to_string()),
        }))
    }

    /// The plan file as given.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Every problem found, in file order (empty when the file could not be read).
    pub fn problems(&self) -> &[Problem] {
        &self.0.problems
    }
}

impl Diagnostic for PlanFileError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.0.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.source_code)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.0.problems.is_empty() {
            return None;
        }
        Some(Box::new(
            self.0
                .problems
                .iter()
                .take(SHOWN)
                .chain(self.0.more.as_ref())
                .map(|p| p as &dyn Diagnostic),
        ))
    }
}

/// The keys whose values are secrets: a value written under one of them is never shown.
const SECRET_KEYS: [&str; 1] = ["password"];

/// Where the plan file's text holds the value of a secret-bearing key (`password: hunter2`), so
/// that no diagnostic shows it, whatever else is wrong with the file (even a syntax error on that
/// line). Read from the text line by line, not from the parsed file, which may not parse: a key
/// `password` (any case, plain or quoted, in a block or a flow mapping) masks the rest of its
/// line, and the lines after it indented further (a multi-line value). A value that is itself a
/// mapping naming where the secret is (`{ env: NAME }`, `{ file: PATH }`, or on the next lines)
/// is left as it is: it is no secret, and the hint to use it must stay readable.
pub(crate) fn secret_values(text: &str) -> Vec<Range<usize>> {
    let mut masks = Vec::new();
    let mut offset = 0;
    // The indentation of the key whose value goes on over the next lines, and whether those
    // lines are masked.
    let mut open: Option<(usize, bool)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches([' ', '\t']).len();
        let blank = content.trim().is_empty() || content.trim_start().starts_with('#');
        if let Some((key_indent, mask)) = open {
            if blank || indent > key_indent {
                if mask && !blank {
                    masks.push(start + indent..start + content.len());
                }
                continue;
            }
            open = None;
        }
        let Some(value_at) = secret_value_start(content) else {
            continue;
        };
        let value = &content[value_at..];
        let names_a_place = |v: &str| {
            let v = v.trim_start_matches(['{', ' ', '\t']);
            ["env", "file"].iter().any(|k| {
                v.strip_prefix(k).is_some_and(|r| {
                    r.trim_start_matches(['"', '\''])
                        .trim_start()
                        .starts_with(':')
                })
            })
        };
        let trimmed = value.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            // The value is on the next lines: masked unless it is a mapping naming a place.
            let next = text[offset..]
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            open = Some((indent, !next.is_some_and(names_a_place)));
            continue;
        }
        if trimmed.starts_with('{') && names_a_place(trimmed) {
            continue;
        }
        masks.push(start + value_at..start + content.len());
        open = Some((indent, true));
    }
    masks.extend(url_passwords(text));
    masks.sort_by_key(|r| (r.start, r.end));
    masks
}

/// Passwords written into URLs (`postgres://user:PASSWORD@host`, `…?password=PASSWORD`), which
/// a plan file must not hold but may: masked wherever they are, whatever the key. One pass.
fn url_passwords(text: &str) -> Vec<Range<usize>> {
    let mut masks = Vec::new();
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ']' | '#');
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let authority_at = from + found + 3;
        let rest = &text[authority_at..];
        let url_len = rest.find(ends).unwrap_or(rest.len());
        let url = &rest[..url_len];
        // userinfo: up to the last `@` before the path.
        let authority = &url[..url.find(['/', '?']).unwrap_or(url.len())];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
        {
            masks.push(authority_at + colon + 1..authority_at + at);
        }
        if let Some(q) = url.find('?') {
            let mut i = q + 1;
            for pair in url[q + 1..].split('&') {
                if let Some(value) = pair.strip_prefix("password=")
                    && !value.is_empty()
                {
                    let v = authority_at + i + "password=".len();
                    masks.push(v..v + value.len());
                }
                i += pair.len() + 1;
            }
        }
        from = authority_at + url_len;
    }
    masks
}

/// Where the value starts on a line that holds a secret-bearing key, if it does.
fn secret_value_start(line: &str) -> Option<usize> {
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(key) {
            let at = from + found;
            from = at + key.len();
            // The key starts a mapping entry: after indentation, `- `, `{`, `,` or a quote.
            let before = lower[..at].trim_end_matches(['"', '\'']).trim_end();
            let starts_entry = before.is_empty() || before.ends_with(['{', ',', '-', '?']);
            if !starts_entry {
                continue;
            }
            let mut i = at + key.len();
            while matches!(bytes.get(i), Some(b'"' | b'\'')) {
                i += 1;
            }
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if bytes.get(i) != Some(&b':') {
                continue;
            }
            i += 1;
            if !matches!(bytes.get(i), None | Some(b' ' | b'\t')) {
                continue;
            }
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        Snippet::new("p", "yaml", text, &secret_values(text))
            .text()
            .to_string()
    }

    #[test]
    fn secret_values_are_masked_wherever_they_are_written() {
        for (text, shown) in [
            (
                "imap:\n  password: hunter2\n  auth: plain\n",
                "  auth: plain",
            ),
            ("imap:\n  \"password\" : 'hunter2' # x\n", "imap:"),
            (
                "imap: { url: x, password: hunter2, auth: plain }\n",
                "imap: { url: x, password: ",
            ),
            ("- Password: hunter2 ]]\n", "- Password: "),
            (
                "ldap:\n  password: |\n    hunter2\n    more\n  base: x\n",
                "  base: x",
            ),
            ("ldap:\n  password:\n    hunter2\n", "  password:"),
            ("ldap:\n  password: \"hun\n    ter2\"\nbase: 1\n", "base: 1"),
        ] {
            let out = masked(text);
            assert!(
                !out.contains("hunter2") && !out.contains("hun") && !out.contains("ter2"),
                "{out}"
            );
            assert!(out.contains(shown), "{out}");
            assert_eq!(out.len(), text.len());
        }
        for text in [
            "imap:\n  password: { env: IMAP }\n",
            "imap:\n  password:\n    file: secrets/imap\n",
            "imap:\n  password: {file: x}\n",
            "passwords_seen: 3\nnot_password: x\n",
        ] {
            assert_eq!(masked(text), text);
        }
    }
}
