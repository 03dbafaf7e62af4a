//! Where each value of the plan file is written: a map from a YAML path
//! (`matching.confirmed[0].destination`) to the byte spans of that value and of its key.
//!
//! serde_yaml tells where a *type* error is, but gives no span for a value that deserialized
//! fine, and the semantic checks (a DN that does not parse, a filter with a typo) happen after
//! deserialization. So the text is read a second time with an event parser that reports
//! positions, and every node is indexed by its path. The index is best effort: on a syntax error it
//! keeps what it saw up to there (serde_yaml reports the syntax error itself).
//!
//! saphyr's markers count characters, not bytes; miette wants byte offsets, so every marker is
//! converted here, once, and nothing outside this module sees a character index.
//! This module must not know what any key means.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the top of the document to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct YamlPath(Vec<Seg>);

impl YamlPath {
    pub(crate) fn root() -> Self {
        YamlPath(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        YamlPath(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        YamlPath(segs)
    }

    pub(crate) fn from_segs(segs: Vec<Seg>) -> Self {
        YamlPath(segs)
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn parent(&self) -> YamlPath {
        let mut segs = self.0.clone();
        segs.pop();
        YamlPath(segs)
    }

    /// The last key of the path, when it ends in a key.
    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    pub(crate) fn starts_with(&self, prefix: &YamlPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The path as serde_yaml prints it in front of its messages (`a.b[0].c`), unquoted.
    pub(crate) fn serde_yaml_form(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push_str(&format!("[{i}]"));
                }
            }
        }
        out
    }
}

/// For messages: `matching.confirmed[0].source`, with keys that are not plain words quoted, and
/// `the top level` for the root.
impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the top level");
        }
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ';');
                    if plain {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// How a scalar was written; needed to find a column inside the scalar's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Scalar { style: Style },
    Mapping,
    Sequence,
    Alias,
}

/// One indexed node: where its value is and, for a mapping entry, where its key is.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) key: Option<Range<usize>>,
    pub(crate) value: Range<usize>,
    pub(crate) kind: NodeKind,
    /// False for a mapping or sequence the event parser stopped inside of: its children may be
    /// missing from the index, so it cannot tell that a key is absent.
    pub(crate) complete: bool,
}

/// A key written twice in one mapping.
#[derive(Debug, Clone)]
pub(crate) struct Duplicate {
    pub(crate) path: YamlPath,
    pub(crate) first: Range<usize>,
    pub(crate) second: Range<usize>,
}

/// Every node of the first YAML document, by path.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    nodes: BTreeMap<YamlPath, Node>,
    duplicates: Vec<Duplicate>,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    text_len: usize,
}

impl SpanIndex {
    /// Only the line index, for locating serde_yaml's errors before the text is known to be
    /// YAML of a sane depth (the event parser slows down badly on input nested thousands deep,
    /// which serde_yaml rejects at once).
    pub(crate) fn lines(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SpanIndex {
            line_starts,
            text_len: text.len(),
            ..SpanIndex::default()
        }
    }

    pub(crate) fn build(text: &str) -> Self {
        let mut builder = Builder {
            text,
            char_to_byte: text
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .collect(),
            stack: Vec::new(),
            index: SpanIndex::lines(text),
            root_done: false,
            closing: false,
        };
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else {
                // serde_yaml reports syntax errors. This parser is stricter in a few corners that
                // libyaml accepts, so the file may still be read: close what is open, so the
                // index keeps every node seen so far, with its parents.
                builder.close_all();
                break;
            };
            let start = builder.byte(span.start.index());
            let end = builder.byte(span.end.index());
            if !builder.event(event, start..end) {
                break;
            }
        }
        builder.index
    }

    pub(crate) fn get(&self, path: &YamlPath) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub(crate) fn value_span(&self, path: &YamlPath) -> Option<Range<usize>> {
        self.nodes.get(path).map(|n| n.value.clone())
    }

    pub(crate) fn key_span(&self, path: &YamlPath) -> Option<Range<usize>> {
        self.nodes.get(path).and_then(|n| n.key.clone())
    }

    /// The direct children of a mapping or sequence, in the order they are written.
    #[cfg(test)]
    pub(crate) fn children(&self, path: &YamlPath) -> Vec<(&YamlPath, &Node)> {
        let depth = path.segs().len() + 1;
        let mut out: Vec<_> = self
            .nodes
            .range(path.clone()..)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, _)| p.segs().len() == depth)
            .collect();
        out.sort_by_key(|(_, n)| n.key.as_ref().map_or(n.value.start, |k| k.start));
        out
    }

    /// The deepest node whose value starts at `offset` (how a serde_yaml location is traced back
    /// to a path).
    pub(crate) fn node_starting_at(&self, offset: usize) -> Option<(&YamlPath, &Node)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.value.start == offset)
            .max_by_key(|(p, _)| p.segs().len())
    }

    /// Every indexed path.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &YamlPath> {
        self.nodes.keys()
    }

    /// Every indexed node below `path` (not `path` itself).
    pub(crate) fn descendants(&self, path: &YamlPath) -> Vec<(&YamlPath, &Node)> {
        self.nodes
            .range(path.clone()..)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, _)| *p != path)
            .collect()
    }

    pub(crate) fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Byte offset of a 1-based line and 0-based column counted in characters (libyaml's and
    /// serde_yaml's unit), clamped to the text.
    pub(crate) fn offset_of(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text_len;
        };
        let rest = text.get(line_start..).unwrap_or("");
        let line_text = rest.split('\n').next().unwrap_or("");
        line_text
            .char_indices()
            .nth(column)
            .map_or(line_start + line_text.len(), |(i, _)| line_start + i)
    }

    /// The first line of a span, without its line break (for labels on multi-line values).
    pub(crate) fn first_line(text: &str, span: Range<usize>) -> Range<usize> {
        let slice = text.get(span.clone()).unwrap_or("");
        match slice.find('\n') {
            Some(nl) => span.start..span.start + slice[..nl].trim_end().len(),
            None => span,
        }
    }
}

/// How deep nodes are indexed.
const MAX_DEPTH: usize = 32;

enum Frame {
    Mapping {
        path: YamlPath,
        key: Option<Range<usize>>,
        start: usize,
        last_end: usize,
        /// The key whose value comes next, or `None` when a key comes next.
        pending: Option<(String, Range<usize>)>,
        seen: HashMap<String, Range<usize>>,
    },
    Sequence {
        path: YamlPath,
        key: Option<Range<usize>>,
        start: usize,
        last_end: usize,
        next: usize,
    },
    /// Inside a mapping or sequence that is not indexed: one used as a key (`? [a, b]: c`),
    /// which has no path, or one nested deeper than `MAX_DEPTH`.
    Skip {
        depth: usize,
        start: usize,
        as_key: bool,
    },
}

/// Where the node that starts now goes.
enum Slot {
    Key,
    Value(YamlPath, Option<Range<usize>>),
    Skipped,
}

struct Builder<'t> {
    text: &'t str,
    char_to_byte: Vec<usize>,
    stack: Vec<Frame>,
    index: SpanIndex,
    root_done: bool,
    /// Set once the parser failed and open collections are being closed.
    closing: bool,
}

impl Builder<'_> {
    fn byte(&self, char_index: usize) -> usize {
        self.char_to_byte
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The span without trailing white space (block scalars include their line break).
    fn trimmed(&self, span: Range<usize>) -> Range<usize> {
        let slice = self.text.get(span.clone()).unwrap_or("");
        span.start..span.start + slice.trim_end().len()
    }

    /// A quoted scalar's span ends at its closing quote. (saphyr's runs on over the white space and
    /// comment that follow it.) Whatever precedes the opening quote (an anchor, a tag) is kept.
    fn quoted(&self, span: Range<usize>, quote: char) -> Range<usize> {
        let slice = self.text.get(span.clone()).unwrap_or("");
        let Some(open) = slice.find(quote) else {
            return self.trimmed(span);
        };
        let mut chars = slice[open + 1..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let at = open + 1 + i;
            match c {
                '\\' if quote == '"' => {
                    chars.next();
                }
                '\'' if quote == '\'' && chars.peek().map(|p| p.1) == Some('\'') => {
                    chars.next();
                }
                c if c == quote => return span.start..span.start + at + 1,
                _ => {}
            }
        }
        self.trimmed(span)
    }

    /// An alias (`*name`) ends at the first white space or flow indicator.
    fn word(&self, span: Range<usize>) -> Range<usize> {
        let slice = self.text.get(span.clone()).unwrap_or("");
        let len = slice
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
            .unwrap_or(slice.len());
        span.start..span.start + len
    }

    fn slot(&mut self) -> Slot {
        // A plan file is a few levels deep; a path costs its depth to build, so a pathological
        // file nested thousands deep would take quadratic time to index. Deeper nodes are not
        // indexed (their diagnostics point at the nearest indexed parent).
        if self.stack.len() >= MAX_DEPTH {
            return Slot::Skipped;
        }
        match self.stack.last_mut() {
            None if self.root_done => Slot::Skipped,
            None => Slot::Value(YamlPath::root(), None),
            Some(Frame::Skip { .. }) => Slot::Skipped,
            Some(Frame::Mapping { pending: None, .. }) => Slot::Key,
            Some(Frame::Mapping {
                path,
                pending: Some((key, key_span)),
                ..
            }) => Slot::Value(path.key(key), Some(key_span.clone())),
            Some(Frame::Sequence { path, next, .. }) => {
                let p = path.index(*next);
                *next += 1;
                Slot::Value(p, None)
            }
        }
    }

    /// A value ended at `end`: the parent moves on to its next key or item.
    fn value_done(&mut self, end: usize) {
        match self.stack.last_mut() {
            None => self.root_done = true,
            Some(Frame::Mapping {
                last_end, pending, ..
            }) => {
                *last_end = (*last_end).max(end);
                *pending = None;
            }
            Some(Frame::Sequence { last_end, .. }) => *last_end = (*last_end).max(end),
            Some(Frame::Skip { .. }) => {}
        }
    }

    fn key_done(&mut self, key: String, span: Range<usize>) {
        if let Some(Frame::Mapping {
            path,
            pending,
            seen,
            last_end,
            ..
        }) = self.stack.last_mut()
        {
            if let Some(first) = seen.get(&key) {
                self.index.duplicates.push(Duplicate {
                    path: path.key(&key),
                    first: first.clone(),
                    second: span.clone(),
                });
            } else {
                seen.insert(key.clone(), span.clone());
            }
            *last_end = (*last_end).max(span.end);
            *pending = Some((key, span));
        }
    }

    fn record(&mut self, path: YamlPath, node: Node) {
        // The first of two duplicate keys wins; the duplicate is reported on its own.
        self.index.nodes.entry(path).or_insert(node);
    }

    /// Ends every open mapping and sequence where its last child ends.
    fn close_all(&mut self) {
        self.closing = true;
        while let Some(frame) = self.stack.last() {
            let end_event = match frame {
                Frame::Sequence { .. } => Event::SequenceEnd,
                _ => Event::MappingEnd,
            };
            let depth = self.stack.len();
            self.event(end_event, 0..0);
            if self.stack.len() >= depth {
                // A skipped complex key pops one level at a time; make sure it does not stall.
                self.stack.pop();
            }
        }
    }

    /// Handles one event; returns false when the first document is complete.
    fn event(&mut self, event: Event<'_>, span: Range<usize>) -> bool {
        match event {
            Event::Scalar(value, style, _, _) => {
                let span = match style {
                    ScalarStyle::SingleQuoted => self.quoted(span, '\''),
                    ScalarStyle::DoubleQuoted => self.quoted(span, '"'),
                    _ => self.trimmed(span),
                };
                match self.slot() {
                    Slot::Key => self.key_done(value.into_owned(), span),
                    Slot::Value(path, key) => {
                        let style = match style {
                            ScalarStyle::Plain => Style::Plain,
                            ScalarStyle::SingleQuoted => Style::SingleQuoted,
                            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                            ScalarStyle::Literal => Style::Literal,
                            ScalarStyle::Folded => Style::Folded,
                        };
                        self.record(
                            path,
                            Node {
                                key,
                                value: span.clone(),
                                kind: NodeKind::Scalar { style },
                                complete: true,
                            },
                        );
                        self.value_done(span.end);
                    }
                    Slot::Skipped => {}
                }
            }
            Event::Alias(_) => {
                let span = self.word(span);
                match self.slot() {
                    Slot::Key => self.key_done("*".to_string(), span),
                    Slot::Value(path, key) => {
                        self.record(
                            path,
                            Node {
                                key,
                                value: span.clone(),
                                kind: NodeKind::Alias,
                                complete: true,
                            },
                        );
                        self.value_done(span.end);
                    }
                    Slot::Skipped => {}
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                match self.slot() {
                    Slot::Key => self.stack.push(Frame::Skip {
                        depth: 1,
                        start: span.start,
                        as_key: true,
                    }),
                    Slot::Skipped => match self.stack.last_mut() {
                        Some(Frame::Skip { depth, .. }) => *depth += 1,
                        _ => self.stack.push(Frame::Skip {
                            depth: 1,
                            start: span.start,
                            as_key: false,
                        }),
                    },
                    Slot::Value(path, key) if is_map => self.stack.push(Frame::Mapping {
                        path,
                        key,
                        start: span.start,
                        last_end: span.end,
                        pending: None,
                        seen: HashMap::new(),
                    }),
                    Slot::Value(path, key) => self.stack.push(Frame::Sequence {
                        path,
                        key,
                        start: span.start,
                        last_end: span.end,
                        next: 0,
                    }),
                }
            }
            Event::MappingEnd | Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Skip {
                    depth,
                    start,
                    as_key,
                }) if depth > 1 => {
                    self.stack.push(Frame::Skip {
                        depth: depth - 1,
                        start,
                        as_key,
                    });
                }
                Some(Frame::Skip {
                    start,
                    as_key: true,
                    ..
                }) => {
                    // A complex key: its value gets a placeholder key. (Closed by `close_all`,
                    // its end is not known: it ends where it starts.)
                    self.key_done("?".to_string(), start..span.end.max(start));
                }
                Some(Frame::Skip { as_key: false, .. }) => {}
                Some(Frame::Mapping {
                    path,
                    key,
                    start,
                    last_end,
                    ..
                })
                | Some(Frame::Sequence {
                    path,
                    key,
                    start,
                    last_end,
                    ..
                }) => {
                    // A flow collection ends at its bracket; a block one at its last child (its
                    // end event sits on the next line).
                    let end = if span.is_empty() { last_end } else { span.end };
                    let kind = if matches!(event, Event::MappingEnd) {
                        NodeKind::Mapping
                    } else {
                        NodeKind::Sequence
                    };
                    self.record(
                        path,
                        Node {
                            key,
                            value: start..end.max(start),
                            kind,
                            complete: !self.closing,
                        },
                    );
                    self.value_done(end);
                }
                None => {}
            },
            Event::DocumentEnd => return false,
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {}
        }
        true
    }
}

/// How deep flow collections (`[`, `{`) may nest: serde_yaml refuses more than 128 levels of
/// any nesting, and both YAML parsers take time quadratic in the depth of flow nesting before
/// they get that far (100,000 brackets: most of a minute).
pub(crate) const MAX_FLOW_DEPTH: usize = 128;

/// The byte offset of the `[` or `{` that opens a flow collection nested deeper than
/// [`MAX_FLOW_DEPTH`], if one does: one linear pass that knows just enough YAML (comments,
/// quoted scalars, block scalars, where a value starts) never to count a bracket that is text.
/// It may miss a deep nesting in a file that is odd in other ways (then the parser is slow and
/// refuses it itself), but never reports one that is not there.
pub(crate) fn flow_too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    // At the start of a line (block context): skipping a block scalar's lines indented further
    // than this.
    let mut block_scalar: Option<usize> = None;
    let mut line_indent = 0;
    let mut value_start = true;
    let mut line_start = true;
    // Only indentation and `- ` or `? ` so far on this line.
    let mut head = true;
    while let Some(&c) = b.get(i) {
        if line_start {
            line_start = false;
            let indent = b[i..].iter().take_while(|&&c| c == b' ').count();
            let rest = &b[i + indent..];
            let blank = rest
                .first()
                .is_none_or(|c| matches!(c, b'\n' | b'\r' | b'#'));
            if let Some(parent) = block_scalar {
                if depth == 0 && (blank || indent > parent) {
                    i += rest
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(rest.len(), |p| p + 1)
                        + indent;
                    line_start = true;
                    continue;
                }
                block_scalar = None;
            }
            if depth == 0 {
                line_indent = indent;
                value_start = true;
            }
            head = true;
            i += indent;
            continue;
        }
        if !matches!(c, b' ' | b'\t' | b'-' | b'?') {
            head = false;
        }
        match c {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                i += b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(b.len() - i);
                continue;
            }
            b' ' | b'\t' | b'\r' => {}
            b'\'' | b'"' if value_start => {
                // A quoted scalar, to its closing quote (`''` and `\"` do not close it).
                let mut j = i + 1;
                while let Some(&q) = b.get(j) {
                    if q == b'\\' && c == b'"' {
                        j += 2;
                        continue;
                    }
                    if q == c {
                        if c == b'\'' && b.get(j + 1) == Some(&b'\'') {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
                value_start = false;
                continue;
            }
            b'[' | b'{' if depth > 0 || value_start => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(i);
                }
                value_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                value_start = false;
            }
            b',' if depth > 0 => value_start = true,
            b'|' | b'>' if depth == 0 && value_start => {
                block_scalar = Some(line_indent);
                value_start = false;
            }
            b'&' | b'!' if value_start => {
                // An anchor or a tag in front of a value: the value starts after it.
                while b
                    .get(i)
                    .is_some_and(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                {
                    i += 1;
                }
                continue;
            }
            // `- ` and `? ` start a value at the head of a line (or in a flow collection), `: `
            // anywhere: inside a plain scalar in a block they would be text.
            b'-' | b'?' | b':'
                if (c == b':' || depth > 0 || head)
                    && b.get(i + 1)
                        .is_none_or(|n| matches!(n, b' ' | b'\t' | b'\n' | b'\r')) =>
            {
                value_start = true;
                i += 1;
                continue;
            }
            b':' if depth > 0 => value_start = true,
            _ => value_start = false,
        }
        i += 1;
    }
    None
}

/// How many nodes a plan file's aliases may expand to: far more than any plan file needs (a
/// shared block used a few times), far less than what takes serde_yaml long to replay.
pub(crate) const MAX_EXPANDED_NODES: u64 = 1_000_000;

/// The alias at which the document's aliases, expanded, have made more than
/// [`MAX_EXPANDED_NODES`] nodes (and ten times the nodes written), with how many by then;
/// `None` when they never do. An alias stands for its anchored node with every alias inside it
/// expanded again, so a few lines of nested aliases stand for billions of nodes; serde_yaml
/// limits only the number of aliases followed, and a large anchored node followed that many
/// times took minutes. One pass of the event parser, counting, never expanding.
pub(crate) fn alias_blowup(text: &str) -> Option<(Range<usize>, u64)> {
    let char_to_byte: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let byte = |c: usize| char_to_byte.get(c).copied().unwrap_or(text.len());
    let mut events = 0u64;
    let mut expanded = 0u64;
    // The nodes each anchored node stands for, by anchor id.
    let mut size: HashMap<usize, u64> = HashMap::new();
    // Open collections: their anchor id and the count when they opened.
    let mut open: Vec<(usize, u64)> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            break;
        };
        events += 1;
        expanded = expanded.saturating_add(1);
        match event {
            Event::Alias(id) => {
                expanded = expanded.saturating_add(size.get(&id).copied().unwrap_or(0));
                if expanded > MAX_EXPANDED_NODES.max(events.saturating_mul(10)) {
                    let start = byte(span.start.index());
                    let end = text[start..]
                        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
                        .map_or(text.len(), |e| start + e);
                    return Some((start..end, expanded));
                }
            }
            Event::Scalar(_, _, anchor, _) if anchor > 0 => {
                size.insert(anchor, 1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, expanded));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, at_start)) = open.pop()
                    && anchor > 0
                {
                    size.insert(anchor, expanded - at_start + 1);
                }
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    None
}

/// Where the second YAML document of the text starts (its `---`, or its first node when it has
/// none), as the event parser sees it.
pub(crate) fn second_document(text: &str) -> Option<Range<usize>> {
    let mut started = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return None;
        };
        match event {
            Event::DocumentStart(_) => {
                started += 1;
                if started == 2 {
                    let start = text
                        .char_indices()
                        .nth(span.start.index())
                        .map_or(text.len(), |(i, _)| i);
                    let line = text[start..].lines().next().unwrap_or("");
                    return Some(start..start + line.trim_end().len());
                }
            }
            Event::StreamEnd => return None,
            _ => {}
        }
    }
    None
}

/// Finds where byte `position` of a scalar's decoded value is in the file, so an error inside a
/// filter or template can point at its exact column. Returns `None` when the way the scalar is
/// written makes that unreliable (folded or multi-line flow scalars, anchors, tags); callers then
/// point at the whole value.
pub(crate) fn offset_in_scalar(
    text: &str,
    node: &Node,
    decoded: &str,
    position: usize,
) -> Option<usize> {
    let NodeKind::Scalar { style } = node.kind else {
        return None;
    };
    let source = text.get(node.value.clone())?;
    let prefix = decoded.get(..position)?;
    let start = node.value.start;
    let inner = match style {
        Style::Plain => {
            // A one-line plain scalar is its value verbatim; anything else (a multi-line scalar,
            // an anchor or tag in front) is not worth the risk of pointing at the wrong column.
            if source != decoded {
                return None;
            }
            position
        }
        Style::SingleQuoted => {
            let body = source.strip_prefix('\'')?;
            if body.contains('\n') {
                return None;
            }
            let mut offset = 1;
            for c in prefix.chars() {
                // `''` in the file is one `'` in the value.
                offset += if c == '\'' { 2 } else { c.len_utf8() };
            }
            offset
        }
        Style::DoubleQuoted => {
            let body = source.strip_prefix('"')?;
            if body.contains('\n') {
                return None;
            }
            let mut src = body.char_indices().peekable();
            for _ in prefix.chars() {
                let (_, c) = src.next()?;
                if c == '\\' {
                    let (_, e) = src.next()?;
                    let hex = match e {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        _ => 0,
                    };
                    for _ in 0..hex {
                        src.next()?;
                    }
                }
            }
            1 + src.peek().map_or(body.len(), |(i, _)| *i)
        }
        Style::Literal => {
            // The value is the lines of the block without their indentation (and with its final
            // line break chomped or kept): walk both in step, skipping the indentation in the
            // file after each line break.
            let indent = column_bytes(text, start);
            let mut src = 0;
            let bytes = source.as_bytes();
            for c in prefix.chars() {
                if c == '\n' {
                    src += 1;
                    let mut skipped = 0;
                    while skipped < indent && bytes.get(src) == Some(&b' ') {
                        src += 1;
                        skipped += 1;
                    }
                } else {
                    if !source.get(src..)?.starts_with(c) {
                        return None;
                    }
                    src += c.len_utf8();
                }
            }
            src
        }
        Style::Folded => return None,
    };
    let offset = start + inner;
    (offset <= node.value.end && text.is_char_boundary(offset)).then_some(offset)
}

/// How many bytes precede `offset` on its line.
fn column_bytes(text: &str, offset: usize) -> usize {
    let line_start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    offset - line_start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> YamlPath {
        let mut path = YamlPath::root();
        for part in s.split('.') {
            if let Some((k, rest)) = part.split_once('[') {
                path = path.key(k);
                let i: usize = rest.trim_end_matches(']').parse().unwrap();
                path = path.index(i);
            } else {
                path = path.key(part);
            }
        }
        path
    }

    fn value<'t>(ix: &SpanIndex, text: &'t str, path: &str) -> &'t str {
        &text[ix.value_span(&p(path)).unwrap()]
    }

    #[test]
    fn indexes_values_and_keys_by_path() {
        let text = "a:\n  b: 1\n  c:\n    - x\n    - {d: \"two\"}\ne: [1, 2]\nf:\ng: |\n  lit\n";
        let ix = SpanIndex::build(text);
        assert_eq!(value(&ix, text, "a.b"), "1");
        assert_eq!(&text[ix.key_span(&p("a.b")).unwrap()], "b");
        assert_eq!(value(&ix, text, "a.c[0]"), "x");
        assert_eq!(value(&ix, text, "a.c[1]"), "{d: \"two\"}");
        assert_eq!(value(&ix, text, "a.c[1].d"), "\"two\"");
        assert_eq!(value(&ix, text, "a.c"), "- x\n    - {d: \"two\"}");
        assert_eq!(value(&ix, text, "e"), "[1, 2]");
        assert_eq!(value(&ix, text, "e[1]"), "2");
        assert_eq!(value(&ix, text, "f"), "");
        assert_eq!(value(&ix, text, "g"), "lit");
        assert_eq!(
            value(&ix, text, "a"),
            "b: 1\n  c:\n    - x\n    - {d: \"two\"}"
        );
        let keys: Vec<String> = ix
            .children(&YamlPath::root())
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(keys, ["a", "e", "f", "g"]);
    }

    #[test]
    fn quoted_values_end_at_their_closing_quote() {
        let text =
            "a: \"x\\\"y\"   # note\nb: 'it''s'  # c\nc: &k v\nd: *k   # c\ne: [\"p\"  , *k ]\n";
        let ix = SpanIndex::build(text);
        assert_eq!(value(&ix, text, "a"), "\"x\\\"y\"");
        assert_eq!(value(&ix, text, "b"), "'it''s'");
        assert_eq!(value(&ix, text, "d"), "*k");
        assert_eq!(value(&ix, text, "e[0]"), "\"p\"");
        assert_eq!(value(&ix, text, "e[1]"), "*k");
    }

    #[test]
    fn spans_are_bytes_in_non_ascii_text() {
        let text = "é: 1\nnäme: \"Jürgen\"\n";
        let ix = SpanIndex::build(text);
        assert_eq!(value(&ix, text, "näme"), "\"Jürgen\"");
        assert_eq!(ix.offset_of(text, 2, 6), text.find('"').unwrap());
    }

    #[test]
    fn records_duplicate_keys() {
        let text = "a: 1\nb: 2\na: 3\n";
        let ix = SpanIndex::build(text);
        let d = &ix.duplicates()[0];
        assert_eq!((d.first.start, d.second.start), (0, 10));
        assert_eq!(value(&ix, text, "a"), "1");
    }

    #[test]
    fn a_parse_error_keeps_what_was_indexed_with_its_parents() {
        let text = "a: 1\nb:\n  c: x\n  d: \"open\n";
        let ix = SpanIndex::build(text);
        assert_eq!(value(&ix, text, "a"), "1");
        assert_eq!(value(&ix, text, "b.c"), "x");
        assert!(!ix.get(&p("b")).unwrap().complete);
        assert!(ix.get(&p("b.c")).unwrap().complete);
        assert!(ix.get(&YamlPath::root()).is_some());
    }

    #[test]
    fn deep_nesting_is_cut_off_and_the_rest_still_indexed() {
        let deep = format!("{}x{}", "[".repeat(100), "]".repeat(100));
        let text = format!("a: {deep}\nb: 2\n");
        let ix = SpanIndex::build(&text);
        assert_eq!(value(&ix, &text, "b"), "2");
        assert_eq!(value(&ix, &text, "a"), deep);
        assert!(ix.paths().all(|p| p.segs().len() <= MAX_DEPTH));
    }

    #[test]
    fn complex_keys_do_not_derail_the_index() {
        let text = "? [x, y]\n: 1\nb: 2\n";
        let ix = SpanIndex::build(text);
        assert_eq!(value(&ix, text, "b"), "2");
    }

    #[test]
    fn finds_positions_inside_scalars() {
        let cases = [
            ("f: (a=b)x\n", "(a=b)x", 5, "x"),
            ("f: '(a=''b'')x'\n", "(a='b')x", 7, "x"),
            ("f: \"(a=\\\"b\\u00e9)x\"\n", "(a=\"bé)x", 8, "x"),
            ("f: |\n  (a=b)\n  x\n", "(a=b)\nx\n", 6, "x"),
            ("f: 'é(x'\n", "é(x", 3, "x"),
        ];
        for (text, decoded, pos, expect) in cases {
            let ix = SpanIndex::build(text);
            let node = ix.get(&p("f")).unwrap();
            let at = offset_in_scalar(text, node, decoded, pos).unwrap();
            assert_eq!(&text[at..at + 1], expect, "{text:?}");
        }
        let text = "f: >\n  a\n  b\n";
        let ix = SpanIndex::build(text);
        assert_eq!(
            offset_in_scalar(text, ix.get(&p("f")).unwrap(), "a b\n", 2),
            None
        );
    }

    #[test]
    fn paths_print_for_people() {
        assert_eq!(
            p("matching.confirmed[0].source").to_string(),
            "matching.confirmed[0].source"
        );
        assert_eq!(YamlPath::root().key("a.b").to_string(), "\"a.b\"");
        assert_eq!(YamlPath::root().to_string(), "the top level");
        assert_eq!(p("a[2].b").serde_yaml_form(), "a[2].b");
    }
}
