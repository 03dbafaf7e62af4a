//! Diagnostics for plan files: one `PlanFileError` that carries every problem found, each problem
//! a miette diagnostic with a code, a message, labelled spans into the file and a help text.
//!
//! Problems are sorted by where they are in the file, so the report reads top-down and is the same
//! on every run. This module only describes problems; finding them is `load`'s job.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{
    Diagnostic, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};

/// Stable codes, one per kind of problem (shown by miette, and matched on in tests).
pub mod codes {
    pub const UNREADABLE: &str = "mailplan::spec::unreadable";
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
    pub const INCLUDED_AND_EXCLUDED: &str = "mailplan::spec::included_and_excluded";
    pub const NOT_IN_DIRECTORY: &str = "mailplan::spec::not_in_directory";
    pub const SECRET_UNAVAILABLE: &str = "mailplan::spec::secret_unavailable";
    pub const UNKNOWN_PLACEHOLDER: &str = "mailplan::spec::unknown_placeholder";
    /// A check failed without saying why: a bug, reported rather than hidden.
    pub const INCOMPLETE: &str = "mailplan::spec::incomplete";
}

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
    source_code: PlanSource,
    problems: Vec<Problem>,
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
        PlanFileError(Box::new(Inner {
            code: codes::INVALID_PLAN,
            headline: format!(
                "plan file `{}` has {n} problem{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            ),
            path: path.to_path_buf(),
            source_code: PlanSource::new(path, text),
            problems,
            help: None,
        }))
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
            source_code: PlanSource::new(path, ""),
            problems: Vec::new(),
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
            self.0.problems.iter().map(|p| p as &dyn Diagnostic),
        ))
    }
}

/// The plan file's text as miette reads it, with where each line starts.
///
/// miette finds the lines around a span by reading the text from its first byte. One problem
/// costs nothing that way, but a plan file of a megabyte with thousands of problems (every DN of
/// a wave missing from a directory that returned nothing) took half a minute to print. Here the
/// lines are counted once, and miette reads only from a few lines before each span: the same
/// snippet, line and column it would have found.
#[derive(Debug)]
struct PlanSource {
    name: String,
    text: String,
    /// Byte offsets where a line starts, after `\n`, `\r\n` or a lone `\r` (as miette counts
    /// lines); the first line starts at 0.
    line_starts: Vec<usize>,
}

impl PlanSource {
    fn new(path: &Path, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends_line {
                line_starts.push(i + 1);
            }
        }
        PlanSource {
            name: path.display().to_string(),
            text: text.to_string(),
            line_starts,
        }
    }
}

impl SourceCode for PlanSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // The line the span starts on, and a line before its context: miette reads from there
        // and counts lines and columns from there, which are then made the file's own.
        let line = self
            .line_starts
            .partition_point(|&start| start <= span.offset())
            .saturating_sub(1);
        let first = line.saturating_sub(context_lines_before + 1);
        let base = self.line_starts.get(first).copied().unwrap_or(0);
        let tail = self.text.get(base..).unwrap_or_default();
        let relative = SourceSpan::new(span.offset().saturating_sub(base).into(), span.len());
        let found = tail.read_span(&relative, context_lines_before, context_lines_after)?;
        let contents = MietteSpanContents::new_named(
            self.name.clone(),
            found.data(),
            SourceSpan::new((found.span().offset() + base).into(), found.span().len()),
            found.line() + first,
            found.column(),
            found.line_count() + first,
        )
        .with_language("yaml");
        Ok(Box::new(contents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (String, SourceSpan, usize, usize, usize);

    /// What a source gives miette for a span: the snippet, its span, line, column and lines.
    fn reads(code: &dyn SourceCode, span: SourceSpan, before: usize, after: usize) -> Option<Read> {
        let c = code.read_span(&span, before, after).ok()?;
        Some((
            String::from_utf8_lossy(c.data()).into_owned(),
            *c.span(),
            c.line(),
            c.column(),
            c.line_count(),
        ))
    }

    #[test]
    fn the_indexed_source_reads_every_span_as_miette_does() {
        let texts = [
            "",
            "a",
            "version: 1\nsource:\n  ldif: s.ldif\n\ndestination:\n  ldif: d.ldif\n",
            "no newline at the end\nsecond: line",
            "crlf: 1\r\nnext: 2\r\n\r\nlast: 3\r\n",
            "lone\rcarriage\r\rreturns\r\n\nmixed\n",
            "\n\n\nstarts: blank\n  indented: [a, b]\n",
            "ünïcode: \"Grüße\"\nname: 名前\n",
        ];
        for text in texts {
            let source = PlanSource::new(Path::new("plan.yaml"), text);
            let named = source.read_span(&SourceSpan::new(0.into(), 0), 0, 0);
            let named = named.expect("an empty span at the start");
            assert_eq!(named.name(), Some("plan.yaml"));
            assert_eq!(named.language(), Some("yaml"));
            // Spans inside the text: problems point at what was parsed (miette itself panics
            // on a span past the end).
            for start in 0..=text.len() {
                for len in [0, 1, 2, 5, 12, 40]
                    .into_iter()
                    .filter(|l| start + l <= text.len())
                {
                    for (before, after) in [(0, 0), (1, 1), (2, 3), (5, 0)] {
                        let span = SourceSpan::new(start.into(), len);
                        let case = format!("{text:?} at {start}+{len}, {before}/{after} lines");
                        // miette's own reading, from the whole text.
                        let want = reads(&text, span, before, after);
                        assert!(want.is_some(), "miette cannot read {case}");
                        assert_eq!(reads(&source, span, before, after), want, "{case}");
                    }
                }
            }
        }
    }
}
