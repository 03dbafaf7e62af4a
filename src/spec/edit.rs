//! Writing an administrator's answers about soft candidates into the plan file's text:
//! `matching.confirmed` pins and `matching.ignore` destinations.
//!
//! The file is reviewed in git, so it is edited, not re-serialised: new entries are inserted at
//! the positions the loader's span index knows (after the last item of a block list, before the
//! closing bracket of a flow list, a new key under `matching:`, or a new `matching:` section at
//! the end), indented like the file and with its line breaks. Every other byte stays as it was:
//! comments, order, quoting, blank lines. A pure function of the text and the answers; it never
//! reads or writes a file and never decides what the answers are.

use std::ops::Range;

use super::span::{NodeKind, SpanIndex, YamlPath};

/// What to write into the plan file: DNs as the plan shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// (source person, destination object) pairs for `matching.confirmed`.
    pub confirmed: Vec<(String, String)>,
    /// Destination objects for `matching.ignore` (`- destination: DN`): never a match candidate.
    pub ignore: Vec<String>,
}

impl Answers {
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty() && self.ignore.is_empty()
    }
}

/// A plan file whose layout the edit cannot extend safely: nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot add the answers to the plan file: {0}")]
pub struct EditError(pub String);

/// The plan file's text with the answers added (see the module documentation).
pub fn record_answers(text: &str, answers: &Answers) -> Result<String, EditError> {
    let mut text = text.to_string();
    if !answers.confirmed.is_empty() {
        let items: Vec<Item> = answers
            .confirmed
            .iter()
            .map(|(s, d)| vec![("source", s.as_str()), ("destination", d.as_str())])
            .collect();
        text = add_items(&text, "confirmed", &items)?;
    }
    if !answers.ignore.is_empty() {
        let items: Vec<Item> = answers
            .ignore
            .iter()
            .map(|d| vec![("destination", d.as_str())])
            .collect();
        text = add_items(&text, "ignore", &items)?;
    }
    Ok(text)
}

/// One list item: a mapping of keys to string values, in order.
type Item<'a> = Vec<(&'static str, &'a str)>;

/// Where the file's line breaks and indentation come from.
struct Layout<'t> {
    text: &'t str,
    nl: &'static str,
    /// One level of indentation.
    step: usize,
}

impl<'t> Layout<'t> {
    fn of(text: &'t str, index: &SpanIndex) -> Self {
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        // The indentation of the first key nested one level under a top-level key.
        let step = index
            .paths()
            .filter(|p| p.segs().len() == 2 && p.last_key().is_some())
            .filter_map(|p| index.key_span(p))
            .map(|k| column(text, k.start))
            .filter(|&c| c > 0 && c <= 8)
            .min()
            .unwrap_or(2);
        Layout { text, nl, step }
    }

    /// Block lines for `items`, each item's `- ` at column `indent`.
    fn block_items(&self, items: &[Item], indent: usize) -> String {
        let mut out = String::new();
        for item in items {
            for (i, (key, value)) in item.iter().enumerate() {
                let lead = if i == 0 { "- " } else { "  " };
                out.push_str(&" ".repeat(indent));
                out.push_str(lead);
                out.push_str(key);
                out.push_str(": ");
                out.push_str(&quote(value));
                out.push_str(self.nl);
            }
        }
        out
    }

    /// The flow form of `items`, comma separated: `{source: "…", destination: "…"}, …`.
    fn flow_items(items: &[Item]) -> String {
        items
            .iter()
            .map(|item| {
                let pairs: Vec<String> = item
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", quote(v)))
                    .collect();
                format!("{{{}}}", pairs.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `block` (whole lines ending in a line break) inserted after the line holding `offset`.
    /// At the end of a file without a final line break, the break goes first and none after.
    fn after_line(&self, offset: usize, block: &str) -> String {
        let text = self.text;
        match text.get(offset..).and_then(|rest| rest.find('\n')) {
            Some(nl) => {
                let at = offset + nl + 1;
                format!("{}{}{}", &text[..at], block, &text[at..])
            }
            None => format!(
                "{}{}{}",
                text,
                self.nl,
                block.strip_suffix(self.nl).unwrap_or(block)
            ),
        }
    }

    fn insert_at(&self, at: usize, s: &str) -> String {
        format!("{}{}{}", &self.text[..at], s, &self.text[at..])
    }
}

/// Adds `items` to `matching.<key>`, creating the key or the section when absent.
fn add_items(text: &str, key: &str, items: &[Item]) -> Result<String, EditError> {
    let index = SpanIndex::build(text);
    let layout = Layout::of(text, &index);
    let root = YamlPath::root();
    let Some(top) = index.get(&root) else {
        return Err(EditError("the file holds no YAML document".into()));
    };
    if top.kind != NodeKind::Mapping || !top.complete || is_flow(text, &top.value, '{') {
        return Err(EditError(
            "its top level is not a complete block mapping".into(),
        ));
    }
    let step = layout.step;
    let matching = root.key("matching");
    let Some(section) = index.get(&matching) else {
        // A new section at the end of the file.
        let block = format!(
            "matching:{nl}{}{key}:{nl}{}",
            " ".repeat(step),
            layout.block_items(items, 2 * step),
            nl = layout.nl
        );
        return Ok(if text.is_empty() || text.ends_with('\n') {
            format!("{text}{block}")
        } else {
            layout.after_line(text.len(), &block)
        });
    };
    let section_key = index.key_span(&matching).unwrap_or(0..0);
    match &section.kind {
        NodeKind::Scalar { .. } if section.value.is_empty() => {
            // `matching:` with nothing under it.
            let indent = column(text, section_key.start) + step;
            let block = format!(
                "{}{key}:{}{}",
                " ".repeat(indent),
                layout.nl,
                layout.block_items(items, indent + step)
            );
            Ok(layout.after_line(section_key.end, &block))
        }
        NodeKind::Mapping if is_flow(text, &section.value, '{') => {
            let list = format!("{key}: [{}]", Layout::flow_items(items));
            add_to_flow(&layout, section, key, &index, &matching, items, &list)
        }
        NodeKind::Mapping => {
            let list = matching.key(key);
            match index.get(&list) {
                None => {
                    let indent = first_child_column(text, &index, &matching)
                        .unwrap_or(column(text, section_key.start) + step);
                    let block = format!(
                        "{}{key}:{}{}",
                        " ".repeat(indent),
                        layout.nl,
                        layout.block_items(items, indent + step)
                    );
                    Ok(layout.after_line(section.value.end, &block))
                }
                Some(node) => add_to_list(&layout, &index, &list, node, items),
            }
        }
        _ => Err(EditError(
            "`matching` is not a mapping; write it as `matching:` with keys under it".into(),
        )),
    }
}

/// Adds `items` to the existing list `matching.<key>` (`node`).
fn add_to_list(
    layout: &Layout<'_>,
    index: &SpanIndex,
    path: &YamlPath,
    node: &super::span::Node,
    items: &[Item],
) -> Result<String, EditError> {
    let text = layout.text;
    match &node.kind {
        NodeKind::Sequence if is_flow(text, &node.value, '[') => {
            add_to_flow_collection(layout, node.value.start, &Layout::flow_items(items))
        }
        NodeKind::Sequence if node.complete => {
            let indent = dash_column(text, node.value.start);
            Ok(layout.after_line(node.value.end, &layout.block_items(items, indent)))
        }
        NodeKind::Scalar { .. } if node.value.is_empty() => {
            let key = index.key_span(path).unwrap_or(0..0);
            let indent = column(text, key.start) + layout.step;
            Ok(layout.after_line(key.end, &layout.block_items(items, indent)))
        }
        _ => Err(EditError(format!(
            "`{path}` is not a list; write it as a list of entries"
        ))),
    }
}

/// Adds `key: [items]` (`entry`) to the flow mapping `matching: {…}`, or the items to its
/// existing list.
fn add_to_flow(
    layout: &Layout<'_>,
    section: &super::span::Node,
    key: &str,
    index: &SpanIndex,
    matching: &YamlPath,
    items: &[Item],
    entry: &str,
) -> Result<String, EditError> {
    let list = matching.key(key);
    if let Some(node) = index.get(&list) {
        return add_to_list(layout, index, &list, node, items);
    }
    add_to_flow_collection(layout, section.value.start, entry)
}

/// Whether a collection's span is written in flow style: it starts with `open`.
fn is_flow(text: &str, span: &Range<usize>, open: char) -> bool {
    text.get(span.start..).is_some_and(|s| s.starts_with(open))
}

/// The offset of the bracket that closes the flow collection opening at `start`, skipping
/// quoted scalars, comments and nested collections. (The parser's span of a flow collection
/// may run on over the white space and comment after it.)
fn flow_close(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'#' if i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `addition` (with a comma when the collection holds something) inserted after the last
/// thing in the flow collection opening at `start`.
fn add_to_flow_collection(
    layout: &Layout<'_>,
    start: usize,
    addition: &str,
) -> Result<String, EditError> {
    let text = layout.text;
    let close = flow_close(text, start)
        .ok_or_else(|| EditError("a flow collection in it is not closed".into()))?;
    let inner = text.get(start + 1..close).unwrap_or("");
    let sep = if inner.trim().is_empty() { "" } else { ", " };
    // After the last item, keeping any space or line break before the bracket.
    let at = start + 1 + inner.trim_end().len();
    Ok(layout.insert_at(at, &format!("{sep}{addition}")))
}

/// The column (in bytes, which is in characters for the spaces of an indentation) of `offset`.
fn column(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or("");
    offset - before.rfind('\n').map_or(0, |i| i + 1)
}

/// The column of the `-` of a block list whose span starts at `start`: the span of a list
/// indented under its key starts at its first `-`, that of one written at its key's own column
/// at the first item's content.
fn dash_column(text: &str, start: usize) -> usize {
    let line_start = text
        .get(..start)
        .and_then(|b| b.rfind('\n'))
        .map_or(0, |i| i + 1);
    let prefix = text.get(line_start..start).unwrap_or("");
    if text.get(start..).is_some_and(|s| s.starts_with('-')) {
        return start - line_start;
    }
    prefix.rfind('-').unwrap_or(prefix.len())
}

/// The column of the first key of the block mapping at `path`.
fn first_child_column(text: &str, index: &SpanIndex, path: &YamlPath) -> Option<usize> {
    let depth = path.segs().len() + 1;
    index
        .descendants(path)
        .into_iter()
        .filter(|(p, _)| p.segs().len() == depth)
        .filter_map(|(_, n)| n.key.as_ref().map(|k| k.start))
        .min()
        .map(|start| column(text, start))
}

/// A DN as a YAML double-quoted scalar.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const HEAD: &str = "version: 1\n\
        # where persons come from\n\
        source:\n  profile: domino\n  notes_domain: ACME\n  directory:\n    ldif: source.ldif\n\
        destination:\n  flavor: active-directory\n  directory:\n    ldif: destination.ldif   # the export\n\
        \x20 container: \"OU=Migrated,DC=acme,DC=test\"\n";

    fn answers() -> Answers {
        Answers {
            confirmed: vec![(
                "CN=John Smith,OU=Sales,O=Acme".into(),
                "CN=jsmith,CN=Users,DC=acme,DC=test".into(),
            )],
            ignore: vec!["CN=Jane \\\"JD\\\" Doe,CN=Users,DC=acme,DC=test".into()],
        }
    }

    /// What was inserted into `before` to make `after`; panics when any byte of `before` was
    /// changed or removed.
    fn inserted(before: &str, after: &str) -> String {
        let diff = similar::TextDiff::configure()
            .algorithm(similar::Algorithm::Myers)
            .diff_chars(before, after);
        let mut added = String::new();
        for change in diff.iter_all_changes() {
            match change.tag() {
                similar::ChangeTag::Delete => {
                    panic!(
                        "removed {:?} from\n{before}\ngiving\n{after}",
                        change.value()
                    )
                }
                similar::ChangeTag::Insert => added.push_str(change.value()),
                similar::ChangeTag::Equal => {}
            }
        }
        added
    }

    /// The confirmed pins and ignored destinations the loader reads from `text`.
    fn reloaded(text: &str) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
        let spec = crate::spec::parse(std::path::Path::new("plan.yaml"), text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        (
            spec.matching
                .confirmed
                .iter()
                .map(|p| (p.source.value.to_string(), p.destination.value.to_string()))
                .collect(),
            spec.matching
                .ignore_destinations
                .iter()
                .map(|d| d.value.to_string())
                .collect(),
        )
    }

    fn check(before: &str, extra_confirmed: &[(&str, &str)], extra_ignored: &[&str]) -> String {
        let after = record_answers(before, &answers()).unwrap();
        inserted(before, &after);
        let (confirmed, ignored) = reloaded(&after);
        let mut want_c: BTreeSet<(String, String)> = extra_confirmed
            .iter()
            .map(|(s, d)| (s.to_string(), d.to_string()))
            .collect();
        want_c.insert((
            "CN=John Smith,OU=Sales,O=Acme".into(),
            "CN=jsmith,CN=Users,DC=acme,DC=test".into(),
        ));
        let mut want_i: BTreeSet<String> = extra_ignored.iter().map(|s| s.to_string()).collect();
        want_i.insert(r#"CN=Jane \"JD\" Doe,CN=Users,DC=acme,DC=test"#.into());
        assert_eq!(confirmed, want_c, "{after}");
        assert_eq!(ignored, want_i, "{after}");
        after
    }

    #[test]
    fn a_missing_section_is_added_at_the_end() {
        let after = check(HEAD, &[], &[]);
        assert_eq!(
            inserted(HEAD, &after),
            "matching:\n  confirmed:\n    - source: \"CN=John Smith,OU=Sales,O=Acme\"\n      \
             destination: \"CN=jsmith,CN=Users,DC=acme,DC=test\"\n  ignore:\n    - destination: \
             \"CN=Jane \\\\\\\"JD\\\\\\\" Doe,CN=Users,DC=acme,DC=test\"\n"
        );
    }

    #[test]
    fn a_file_without_a_final_line_break_keeps_none() {
        let before = HEAD.trim_end();
        let after = check(before, &[], &[]);
        assert!(!after.ends_with('\n'));
        assert!(after.starts_with(before));
    }

    #[test]
    fn block_lists_get_items_after_their_last_one_at_their_indentation() {
        let before = format!(
            "{HEAD}matching:\n    mode: interactive  # ask\n    confirmed:\n    # reviewed in PR 12\n    - source: CN=Bob,O=Acme\n      destination: 'CN=bbaker,CN=Users,DC=acme,DC=test'\n    # ignored on purpose\n    ignore:\n        - destination: CN=old,DC=acme,DC=test\n\nsafety:\n  max_deletes: 3\n"
        );
        let after = check(
            &before,
            &[("CN=Bob,O=Acme", "CN=bbaker,CN=Users,DC=acme,DC=test")],
            &["CN=old,DC=acme,DC=test"],
        );
        assert!(after.contains(
            "      destination: 'CN=bbaker,CN=Users,DC=acme,DC=test'\n    - source: \"CN=John Smith,OU=Sales,O=Acme\"\n      destination: \"CN=jsmith,CN=Users,DC=acme,DC=test\"\n    # ignored on purpose\n"
        ), "{after}");
        assert!(
            after.contains(
                "        - destination: CN=old,DC=acme,DC=test\n        - destination: \"CN=Jane"
            ),
            "{after}"
        );
    }

    #[test]
    fn flow_lists_and_empty_lists_get_flow_items() {
        let before = format!(
            "{HEAD}matching:\n  mode: interactive\n  confirmed: []   # none yet\n  ignore: [ {{destination: \"CN=old,DC=acme,DC=test\"}} ]\n"
        );
        let after = check(&before, &[], &["CN=old,DC=acme,DC=test"]);
        assert!(after.contains("  confirmed: [{source: \"CN=John Smith,OU=Sales,O=Acme\", destination: \"CN=jsmith,CN=Users,DC=acme,DC=test\"}]   # none yet\n"), "{after}");
        assert!(
            after.contains(
                "ignore: [ {destination: \"CN=old,DC=acme,DC=test\"}, {destination: \"CN=Jane"
            ),
            "{after}"
        );
    }

    #[test]
    fn missing_keys_are_added_under_an_existing_section() {
        let before = format!("{HEAD}matching:\n  mode: interactive # proposals\n# the end\n");
        let after = check(&before, &[], &[]);
        assert!(
            after.contains("  mode: interactive # proposals\n  confirmed:\n    - source: "),
            "{after}"
        );
        assert!(after.ends_with("# the end\n"));
        let bare = format!("{HEAD}matching:\nsafety:\n  max_deletes: 3\n");
        let after = check(&bare, &[], &[]);
        assert!(
            after.contains("matching:\n  confirmed:\n    - source:"),
            "{after}"
        );
        let flow = format!("{HEAD}matching: {{mode: interactive}}\n");
        let after = check(&flow, &[], &[]);
        assert!(
            after.contains("matching: {mode: interactive, confirmed: [{source: "),
            "{after}"
        );
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let before = format!("{HEAD}matching:\n  mode: interactive\n  confirmed:\n  - source: CN=Bob,O=Acme\n    destination: CN=bbaker,CN=Users,DC=acme,DC=test\n")
            .replace('\n', "\r\n");
        let after = check(
            &before,
            &[("CN=Bob,O=Acme", "CN=bbaker,CN=Users,DC=acme,DC=test")],
            &[],
        );
        let added = inserted(&before, &after);
        assert!(added.contains("\r\n"));
        assert!(!added.replace("\r\n", "").contains('\n'), "{added:?}");
        assert!(
            after
                .contains("\r\n  - source: \"CN=John Smith,OU=Sales,O=Acme\"\r\n    destination: "),
            "{after}"
        );
    }

    #[test]
    fn a_flow_document_is_refused_unchanged() {
        let err = record_answers("{version: 1}\n", &answers()).unwrap_err();
        assert!(err.to_string().contains("block mapping"));
        let err = record_answers(&format!("{HEAD}matching: batch\n"), &answers()).unwrap_err();
        assert!(err.to_string().contains("not a mapping"));
    }
}
