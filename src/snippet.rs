//! Input text as diagnostics show it: where each line starts, long lines cut to a window around
//! the place shown, and secrets masked.
//!
//! miette finds the lines around a span by reading the text from its first byte, and draws a
//! label by padding to its column. Both go wrong on hostile input: a file of a megabyte with
//! thousands of problems took half a minute to print, and a label past column 65,535 (one very
//! long line) made miette panic. Here the lines are counted once, miette only ever sees a few
//! lines around a span, and a line longer than [`LONG_LINE`] bytes is shown as a window of it
//! around the span, with the file's own line and column in the header. Masked ranges (the values
//! of secret-bearing keys of a plan file) are shown as `*`, byte for byte, so every offset stays
//! the file's. This module only shows text; it finds no problems.

use std::ops::Range;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Lines longer than this many bytes are shown as a window around the span.
pub const LONG_LINE: usize = 400;

/// How many bytes of a long line are shown before and after the span.
const SIDE: usize = 80;

/// At most this many bytes of a span are shown on a long line.
const SPAN_SHOWN: usize = 160;

/// A span over more lines than this is shown by the start of its first line.
const MANY_LINES: usize = 200;

/// The text of one input file for miette.
#[derive(Debug, Clone)]
pub struct Snippet {
    name: String,
    language: &'static str,
    text: String,
    /// Byte offsets where a line starts, after `\n`, `\r\n` or a lone `\r` (as miette counts
    /// lines); the first line starts at 0.
    line_starts: Vec<usize>,
}

impl Snippet {
    /// `text` as shown under `name`, with the bytes of `masks` shown as `*` (line breaks kept).
    pub fn new(
        name: impl Into<String>,
        language: &'static str,
        text: &str,
        masks: &[Range<usize>],
    ) -> Self {
        let mut bytes = text.as_bytes().to_vec();
        for m in masks {
            let end = m.end.min(bytes.len());
            for b in bytes.get_mut(m.start.min(end)..end).unwrap_or_default() {
                if *b != b'\n' && *b != b'\r' {
                    *b = b'*';
                }
            }
        }
        // Every byte of a masked character became `*`, so the text stays UTF-8; lossy only as a
        // guard.
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let mut line_starts = vec![0];
        let b = text.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')) {
                line_starts.push(i + 1);
            }
        }
        Snippet {
            name: name.into(),
            language,
            text,
            line_starts,
        }
    }

    /// The text as shown (masked).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The 0-based line that byte `offset` is on.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// Where line `line`'s content ends (before its line break), clamped to the text.
    fn line_end(&self, line: usize) -> usize {
        let next = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let content = self.text.get(start..next).unwrap_or("");
        start + content.trim_end_matches(['\n', '\r']).len()
    }

    fn floor(&self, mut i: usize) -> usize {
        i = i.min(self.text.len());
        while !self.text.is_char_boundary(i) {
            i -= 1;
        }
        i
    }

    fn ceil(&self, mut i: usize) -> usize {
        i = i.min(self.text.len());
        while !self.text.is_char_boundary(i) {
            i += 1;
        }
        i
    }

    /// A window of the span's own line around the span: its line and column are the file's.
    fn window(&self, span: &SourceSpan) -> MietteSpanContents<'_> {
        let start = self.floor(span.offset());
        let line = self.line_of(start);
        let line_start = self.line_starts.get(line).copied().unwrap_or(0);
        let line_end = self.line_end(line).max(start);
        let from = self.floor(start.saturating_sub(SIDE).max(line_start));
        let span_end = (span.offset() + span.len()).min(start + SPAN_SHOWN);
        let to = self.ceil((span_end.max(start) + SIDE).min(line_end));
        MietteSpanContents::new_named(
            self.name.clone(),
            self.text.get(from..to).unwrap_or("").as_bytes(),
            SourceSpan::new(from.into(), to - from),
            line,
            start - line_start,
            line + 1,
        )
        .with_language(self.language)
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        if span.offset() > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        // The lines miette asks for: a line before the context (it reads from there, and counts
        // lines and columns from there) to the last line of context after the span.
        let line = self.line_of(span.offset());
        let last = self.line_of((span.offset() + span.len()).min(self.text.len()));
        let first = line.saturating_sub(context_lines_before + 1);
        let end_line = (last + context_lines_after).min(self.line_starts.len() - 1);
        let long = (first..=end_line).any(|l| {
            let start = self.line_starts.get(l).copied().unwrap_or(0);
            self.line_end(l) - start > LONG_LINE
        });
        if long || end_line - line > MANY_LINES {
            return Ok(Box::new(self.window(span)));
        }
        let base = self.line_starts.get(first).copied().unwrap_or(0);
        // One line past the context, so that miette sees where the last one ends.
        let stop = self
            .line_starts
            .get(end_line + 2)
            .copied()
            .unwrap_or(self.text.len());
        let tail = self.text.get(base..stop).unwrap_or_default();
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
        .with_language(self.language);
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
            let source = Snippet::new("plan.yaml", "yaml", text, &[]);
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

    #[test]
    fn a_long_line_is_shown_as_a_window_with_the_files_line_and_column() {
        let long = format!("first: 1\nx: \"{}\" ] :\nlast: 2\n", "é".repeat(40_000));
        let at = long.find(" ] :").unwrap_or(0) + 1;
        let source = Snippet::new("plan.yaml", "yaml", &long, &[]);
        for (before, after) in [(0, 0), (1, 1), (2, 2)] {
            let Some((data, span, line, column, _)) =
                reads(&source, SourceSpan::new(at.into(), 1), before, after)
            else {
                panic!("no window");
            };
            assert!(data.len() <= 2 * SIDE + SPAN_SHOWN + 8, "{}", data.len());
            assert!(data.contains("] :"), "{data}");
            assert_eq!((line, column), (1, at - 9));
            assert_eq!(
                long.get(span.offset()..span.offset() + span.len()),
                Some(&*data)
            );
        }
    }

    #[test]
    fn masked_bytes_are_stars_and_offsets_stay() {
        let text = "imap:\n  password: hünter2\n  auth: plain\n";
        let start = text.find("hünter2").unwrap_or(0);
        let masks: Vec<Range<usize>> = std::iter::once(start..start + "hünter2".len()).collect();
        let source = Snippet::new("p", "yaml", text, &masks);
        assert_eq!(source.text().len(), text.len());
        assert!(source.text().contains("password: ********\n"));
        assert!(!source.text().contains("nter"));
    }
}
