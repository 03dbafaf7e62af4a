//! Reading a plan file: YAML text → raw types → validated `Spec`, collecting every problem.
//!
//! The passes, each collecting problems instead of stopping:
//! 1. syntax: serde_yaml reads the whole text once; a syntax error ends here (nothing after it can
//!    be trusted);
//! 2. shape: each top-level section is deserialized on its own, through `serde_ignored` so every
//!    unknown key is seen; a wrong value is reported and masked out and the section read again,
//!    so one wrong value hides nothing else; required keys are checked against the schema;
//! 3. meaning: DNs, filters, attribute names, templates, domains and the rules that tie keys
//!    together are checked on the raw values, each problem pointing at its value through the span
//!    index.
//!
//! `check_against` is a fourth pass that needs the directories. Nothing here does I/O except
//! `load` reading the file; everything that reads serde_yaml stays in this module tree.
//!
//! This file holds the shared machinery: the entry points, the `Checker` that collects problems,
//! the order of the passes and the spans values are located by. `sections` does pass 2,
//! `problems` words what the passes find, `values` and `connection` check the leaves every
//! section shares, and each plan-file section has its own file (`source`, `destination`,
//! `matching`, `merge`, `distribution_lists`, `items`); `against` holds the checks that need the
//! directories. A new key belongs in its section's file, not here; no file here decides how the
//! plan is made from the `Spec`.

mod against;
mod connection;
mod destination;
mod distribution_lists;
mod items;
mod matching;
mod merge;
mod problems;
mod safety;
mod sections;
mod source;
mod state;
mod values;

pub use against::{check_against, check_secrets, missing_placeholders};
pub use distribution_lists::DEFAULT_GROUP_FILTER;
pub use merge::DEFAULT_MERGE_ATTRIBUTES;

use connection::file_urls;
use problems::{SKELETON_HELP, closest, join_or, within};
use sections::{Nested, Shape, ShapeVisitor, read_sections};
use values::ATTR_HELP;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor,
};

use super::error::{PlanFileError, Problem, codes};
use super::model::*;
use super::raw;
use super::schema;
use super::span::{
    MAX_EXPANDED_NODES, MAX_FLOW_DEPTH, Node, NodeKind, Seg, SpanIndex, Style, YamlPath,
    alias_blowup, flow_too_deep, offset_in_scalar, second_document,
};
use crate::directory::dn::DnError;
use crate::directory::{AttrName, Dn, Filter, Snapshot};

/// How many values of the wrong type one section reports before the rest of it is left
/// unchecked.
const MAX_SHAPE_PROBLEMS: usize = 20;

/// Reads and validates a plan file.
pub fn load(path: &Path) -> Result<Spec, PlanFileError> {
    let bytes = std::fs::read(path).map_err(|e| PlanFileError::unreadable(path, &e))?;
    parse_bytes(path, &bytes)
}

/// Validates a plan file's bytes: [`parse`], once they are known to be UTF-8 (a byte that is
/// not is a problem at its line and column).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Spec, PlanFileError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(_) => Err(PlanFileError::not_utf8(path, bytes)),
    }
}

/// Validates a plan file's text. `path` names the file in diagnostics and anchors the relative
/// paths in it; nothing is read from disk.
pub fn parse(path: &Path, text: &str) -> Result<Spec, PlanFileError> {
    let mut cx = Checker::new(path, text);
    let spec = cx.run();
    match spec {
        Some(spec) if cx.problems.is_empty() => Ok(spec),
        _ => Err(PlanFileError::new(path, text, cx.problems)),
    }
}

/// A pass failed; its problem is already recorded.
struct Failed;

struct Checker<'t> {
    path: &'t Path,
    text: &'t str,
    index: SpanIndex,
    problems: Vec<Problem>,
    unknown: BTreeSet<YamlPath>,
    /// Every secret named so far, for `check_secrets`.
    secrets: Vec<SecretUse>,
    /// Every attribute placeholder so far, for `check_against`.
    placeholders: Vec<Placeholder>,
    /// For a Carbonio destination (known once `destination` is read), its `url` if written:
    /// where item destinations get their defaults.
    carbonio: Option<Option<String>>,
}

/// An optional value that was checked: absent is fine (`Some(None)`), present and valid is
/// `Some(Some(v))`, present and invalid (already reported) is `None`.
fn checked<T>(value: Option<Option<T>>) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(Some(v)) => Some(Some(v)),
        Some(None) => None,
    }
}

fn range(span: miette::SourceSpan) -> Range<usize> {
    span.offset()..span.offset() + span.len()
}

/// The DNs of a checked list, when every one of them is valid.
fn values(list: Vec<Option<Located<Dn>>>) -> Option<Vec<Dn>> {
    list.into_iter().map(|l| l.map(|l| l.value)).collect()
}

impl<'t> Checker<'t> {
    fn new(path: &'t Path, text: &'t str) -> Self {
        Checker {
            path,
            text,
            // The full index is built once the syntax pass has passed.
            index: SpanIndex::lines(text),
            problems: Vec::new(),
            unknown: BTreeSet::new(),
            secrets: Vec::new(),
            placeholders: Vec::new(),
            carbonio: None,
        }
    }

    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    fn run(&mut self) -> Option<Spec> {
        // The span index and the one-pass read of the sections are made side by side with the
        // syntax pass: each reads the whole file, and a plan file naming thousands of persons
        // is read before any directory is. Both are only used once the syntax is right.
        let text = self.text;
        // Flow collections nested thousands deep take both YAML parsers time quadratic in the
        // depth before they fail: refused here, in one pass, at the bracket.
        if let Some(at) = flow_too_deep(text) {
            let p = Problem::new(
                codes::SYNTAX,
                format!("invalid YAML: `[` or `{{` nested more than {MAX_FLOW_DEPTH} levels deep"),
            )
            .label(
                self.point(at),
                format!("level {} starts here", MAX_FLOW_DEPTH + 1),
            )
            .help("a plan file is only a few levels deep: check for unbalanced `[` or `{`");
            self.push(p);
            return None;
        }
        // Aliases that expand to millions of nodes take serde_yaml minutes to replay before it
        // gives up: refused here, at the alias. (Only a file with an anchor and an alias.)
        if text.contains('&')
            && text.contains('*')
            && let Some((at, n)) = alias_blowup(text)
        {
            let p = Problem::new(
                codes::SYNTAX,
                format!("invalid YAML: aliases expand to more than {MAX_EXPANDED_NODES} values"),
            )
            .label(at, format!("{n} values by here"))
            .help(
                "an alias (`*name`) repeats its anchor's whole value, aliases inside it \
                 included: write the values out instead of nesting aliases",
            );
            self.push(p);
            return None;
        }
        let (index, (syntax, sections)) = crate::parallel::join(
            || SpanIndex::build(text),
            || {
                let syntax = Nested::deserialize(serde_yaml::Deserializer::from_str(text));
                let sections = syntax.is_ok().then(|| read_sections(text));
                (syntax, sections)
            },
        );
        // Pass 1: syntax. Nothing later can be trusted after a syntax error.
        if let Err(e) = syntax {
            let p = self.syntax_problem(&e);
            self.push(p);
            return None;
        }
        self.index = index;
        if !self.check_document_shape() {
            return None;
        }
        for d in self.index.duplicates().to_vec() {
            self.push(
                Problem::new(
                    codes::DUPLICATE_KEY,
                    format!(
                        "`{}` is written twice {}",
                        d.path.last_key().unwrap_or("?"),
                        within(&d.path.parent())
                    ),
                )
                .label(d.second.clone(), "written again here")
                .label(d.first.clone(), "first written here")
                .help("keep one of them: YAML does not merge repeated keys"),
            );
        }

        // Pass 2: shape. A plan file with every value of the right type (nearly every one
        // checked) is read in one pass; otherwise one section at a time, so that each wrong
        // value is reported.
        let (version, source, destination, matching, merge, lists, items, safety, state) =
            match sections.flatten().map(|read| self.take_sections(read)) {
                Some(s) => (
                    Ok(s.version),
                    Ok(s.source),
                    Ok(s.destination),
                    Ok(s.matching),
                    Ok(s.merge),
                    Ok(s.distribution_lists),
                    Ok(s.items),
                    Ok(s.safety),
                    Ok(s.state),
                ),
                None => {
                    self.top_level_unknown_keys();
                    (
                        self.section::<Option<u32>>("version").map(Option::flatten),
                        self.section::<Option<raw::Source>>("source")
                            .map(Option::flatten),
                        self.section::<Option<raw::Destination>>("destination")
                            .map(Option::flatten),
                        self.section::<Option<raw::Matching>>("matching")
                            .map(Option::flatten),
                        self.section::<Option<raw::Merge>>("merge")
                            .map(Option::flatten),
                        self.section::<Option<raw::DistributionLists>>("distribution_lists")
                            .map(Option::flatten),
                        self.section::<Option<raw::Items>>("items")
                            .map(Option::flatten),
                        self.section::<Option<raw::Safety>>("safety")
                            .map(Option::flatten),
                        self.section::<Option<raw::State>>("state")
                            .map(Option::flatten),
                    )
                }
            };
        self.schema_unknown_keys();
        let unknown: Vec<YamlPath> = self.unknown.iter().cloned().collect();
        for path in unknown {
            let p = self
                .not_migratable(&path)
                .unwrap_or_else(|| self.unknown_key(&path));
            self.push(p);
        }
        self.required_keys();

        // Pass 3: meaning, for every section that has the right shape.
        let root = YamlPath::root();
        if let Some(v) = version
            .ok()
            .and_then(|v| self.required(v, &root, "version"))
        {
            self.version(v);
        }
        let source = match source {
            Ok(s) => self
                .required(s, &root, "source")
                .and_then(|s| self.source(s, &root.key("source"))),
            Err(Failed) => None,
        };
        let destination = match destination {
            Ok(d) => self
                .required(d, &root, "destination")
                .and_then(|d| self.destination(d, &root.key("destination"))),
            Err(Failed) => None,
        };
        let matching = match matching {
            Ok(m) => self.matching(m.unwrap_or_default(), &root.key("matching")),
            Err(Failed) => None,
        };
        let merge = match merge {
            Ok(m) => self.merge(m.unwrap_or_default(), &root.key("merge")),
            Err(Failed) => None,
        };
        let distribution_lists = match lists {
            Ok(Some(l)) => self
                .distribution_lists(l, &root.key("distribution_lists"))
                .map(Some),
            Ok(None) => Some(None),
            Err(Failed) => None,
        };
        let items = match items {
            Ok(Some(i)) => self.items(i, &root.key("items")),
            Ok(None) => Some(Items::default()),
            Err(Failed) => None,
        };
        let safety = safety.ok().map(|s| self.safety(s, &root.key("safety")));
        let state = match state {
            Ok(Some(s)) => self.state(s, &root.key("state")).map(Some),
            Ok(None) => Some(None),
            Err(Failed) => None,
        };
        if self.problems.is_empty()
            && (source.is_none()
                || destination.is_none()
                || matching.is_none()
                || merge.is_none()
                || distribution_lists.is_none()
                || items.is_none()
                || safety.is_none()
                || state.is_none())
        {
            // Every check that fails reports why; this is only a guard against one that forgot.
            self.push(
                Problem::new(
                    codes::INCOMPLETE,
                    "the plan file could not be checked completely",
                )
                .help("this is a bug in mailplan: please report it with the plan file"),
            );
        }
        Some(Spec {
            path: self.path.to_path_buf(),
            text: self.text.to_string(),
            source: source?,
            destination: destination?,
            matching: matching?,
            merge: merge?,
            distribution_lists: distribution_lists?,
            items: items?,
            safety: safety?,
            state: state?,
            secrets: std::mem::take(&mut self.secrets),
            placeholders: std::mem::take(&mut self.placeholders),
        })
    }

    /// A required value: when serde found none and the key is not in the file either, it is
    /// reported missing. (`required_keys` reports it too, from the span index, unless the index
    /// stopped early; the two reports are the same problem and are merged. A key that is in the
    /// file but has no value, or had a wrong one, is reported elsewhere.)
    fn required<T>(&mut self, value: Option<T>, parent: &YamlPath, key: &str) -> Option<T> {
        if value.is_none()
            && self.index.get(&parent.key(key)).is_none()
            && !self.misspelt(parent, key)
        {
            let p = self.missing_key(parent, key);
            self.push(p);
        }
        // A key required by one flavor only is not required by the schema, so `required_keys`
        // does not see it written without a value.
        if value.is_none()
            && !schema::required_at(parent).contains(&key)
            && let Some(node) = self.index.get(&parent.key(key))
            && self.is_null(node)
        {
            let p = self.no_value(&parent.key(key), key);
            self.push(p);
        }
        value
    }

    /// `contaner:` is reported as an unknown key with "did you mean `container`?"; saying that
    /// `container` is missing too would only repeat it.
    fn misspelt(&self, parent: &YamlPath, key: &str) -> bool {
        let valid = schema::keys_at(parent).unwrap_or_default();
        let depth = parent.segs().len() + 1;
        // Only the unknown keys under `parent` are looked at (they sort together): asked for
        // every item of a long list, a scan of all unknown keys was quadratic.
        self.unknown
            .range(parent.clone()..)
            .take_while(|u| u.starts_with(parent))
            .filter(|u| u.segs().len() == depth)
            .any(|u| u.last_key().and_then(|k| closest(k, &valid)) == Some(key))
    }

    /// A scalar written as nothing, `~` or `null`.
    fn is_null(&self, node: &Node) -> bool {
        matches!(
            node.kind,
            NodeKind::Scalar {
                style: Style::Plain
            }
        ) && matches!(
            self.text.get(node.value.clone()).unwrap_or(""),
            "" | "~" | "null" | "Null" | "NULL"
        )
    }

    /// Every mapping written in the file must have the keys the schema requires there. Checked
    /// here, over the span index, rather than by serde: a missing key then costs one problem, not
    /// the checks of everything else in its section.
    fn required_keys(&mut self) {
        let mut found = Vec::new();
        for path in self.index.paths() {
            match self.index.get(path) {
                Some(n) if n.kind == NodeKind::Mapping && n.complete => {}
                _ => continue,
            }
            for key in schema::required_at(path) {
                let child = path.key(key);
                match self.index.get(&child) {
                    None if self.misspelt(path, key) => {}
                    None => found.push(self.missing_key(path, key)),
                    Some(node) if self.is_null(node) => found.push(self.no_value(&child, key)),
                    Some(_) => {}
                }
            }
        }
        self.problems.extend(found);
    }

    /// A required key written without a value.
    fn no_value(&self, child: &YamlPath, key: &str) -> Problem {
        let span = self.key_span(child);
        Problem::new(codes::EMPTY_VALUE, format!("`{child}` has no value"))
            .label(span, "no value")
            .help(format!(
                "`{key}` is required{}",
                schema::description(child)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ))
    }

    /// An empty file, or one whose top level is not a mapping, gets one clear problem instead of
    /// a "missing key" for every section.
    fn check_document_shape(&mut self) -> bool {
        // Asked of serde_yaml, which reads the file, rather than of the span index, which may
        // have stopped early.
        let shape = serde_yaml::Deserializer::from_str(self.text)
            .deserialize_any(ShapeVisitor)
            .unwrap_or(Shape::Other);
        match shape {
            Shape::Null => {}
            Shape::Mapping => return true,
            Shape::Other => {
                let span = self
                    .index
                    .value_span(&YamlPath::root())
                    .map(|s| SpanIndex::first_line(self.text, s));
                self.push(
                    Problem::new(
                        codes::NOT_A_MAPPING,
                        "the plan file must be a mapping of sections (`version`, `source`, \
                         `destination`, ...)",
                    )
                    .label_opt(span, "expected `key: value` lines here")
                    .help(SKELETON_HELP),
                );
                return false;
            }
        }
        self.push(Problem::new(codes::EMPTY, "the plan file is empty").help(SKELETON_HELP));
        false
    }

    /// One character at `offset`, or an empty span at the end of a line or the file.
    fn point(&self, offset: usize) -> Range<usize> {
        match self.text.get(offset..).and_then(|t| t.chars().next()) {
            Some(c) if c != '\n' && c != '\r' => offset..offset + c.len_utf8(),
            _ => offset..offset,
        }
    }

    /// Where a value is written. When the span index lost it (its event parser is stricter
    /// than libyaml in a few corners and may have stopped early), the nearest enclosing key.
    fn span(&self, path: &YamlPath) -> Range<usize> {
        self.index
            .value_span(path)
            .unwrap_or_else(|| self.nearest(path))
    }

    /// Where a key is written, or the nearest enclosing key.
    fn key_span(&self, path: &YamlPath) -> Range<usize> {
        self.index
            .key_span(path)
            .unwrap_or_else(|| self.nearest(path))
    }

    fn nearest(&self, path: &YamlPath) -> Range<usize> {
        let mut p = path.parent();
        loop {
            if let Some(k) = self.index.key_span(&p) {
                return k;
            }
            if p.is_root() {
                return self
                    .index
                    .value_span(&p)
                    .map_or(0..0, |s| SpanIndex::first_line(self.text, s));
            }
            p = p.parent();
        }
    }

    fn located(&self, dn: Dn, path: &YamlPath) -> Located<Dn> {
        Located {
            value: dn,
            span: self.span(path).into(),
        }
    }

    fn version(&mut self, version: u32) {
        if version != 1 {
            let span = self.span(&YamlPath::root().key("version"));
            self.push(
                Problem::new(
                    codes::UNSUPPORTED_VERSION,
                    format!("plan-file version {version} is not supported"),
                )
                .label(span, "this mailplan reads version 1")
                .help("write `version: 1`, or use the mailplan release that wrote this file"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::destination::check_domain;
    use super::problems::{parse_trailing_location, split_location};
    use super::*;

    /// How the LDAP connection settings will hold a password, once they exist.
    #[derive(Debug, Deserialize)]
    struct Connection {
        #[allow(dead_code)]
        password: Option<raw::Secret>,
    }

    #[test]
    fn one_pass_reads_the_sections_and_unknown_keys_as_section_by_section() {
        let valid = include_str!("../../../tests/fixtures/spec/valid.yaml");
        for (i, text) in [
            valid.to_string(),
            format!("{valid}colour: blue\nsource: {{ profile: x }}\n"),
            valid.replacen("source:\n", "source:\n  notes-domain: X\n", 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut one = Checker::new(Path::new("plan.yaml"), &text);
            one.index = SpanIndex::build(&text);
            let sections = one.all_sections().expect("every value has the right shape");
            let mut each = Checker::new(Path::new("plan.yaml"), &text);
            each.index = SpanIndex::build(&text);
            each.top_level_unknown_keys();
            let debug = |v: &dyn std::fmt::Debug| format!("{v:?}");
            macro_rules! same {
                ($field:ident, $key:literal, $t:ty) => {
                    assert_eq!(
                        debug(&sections.$field),
                        debug(&each.section::<Option<$t>>($key).ok().flatten().flatten()),
                        "{}",
                        $key
                    )
                };
            }
            same!(version, "version", u32);
            same!(source, "source", raw::Source);
            same!(destination, "destination", raw::Destination);
            same!(matching, "matching", raw::Matching);
            same!(merge, "merge", raw::Merge);
            same!(
                distribution_lists,
                "distribution_lists",
                raw::DistributionLists
            );
            same!(items, "items", raw::Items);
            same!(safety, "safety", raw::Safety);
            same!(state, "state", raw::State);
            assert_eq!(one.unknown, each.unknown);
            assert_eq!(one.unknown.len(), [0, 1, 1][i], "{:?}", one.unknown);
            assert!(each.problems.is_empty(), "{:?}", each.problems);
        }
    }

    /// The one problem reading `ldap:` as a `Connection` gives.
    fn connection(text: &str) -> Result<(), Problem> {
        let mut cx = Checker::new(Path::new("plan.yaml"), text);
        cx.index = SpanIndex::build(text);
        let _ = cx.section::<Connection>("ldap");
        match cx.problems.len() {
            0 => Ok(()),
            1 => Err(cx.problems.remove(0)),
            _ => panic!("more than one problem: {:?}", cx.problems),
        }
    }

    #[test]
    fn a_plain_string_secret_is_rejected_without_echoing_it() {
        let text = "ldap:\n  password: hunter2\n";
        let p = connection(text).unwrap_err();
        assert_eq!(p.code(), codes::PLAIN_SECRET);
        assert_eq!(
            p.message(),
            "`ldap.password`: a secret cannot be written as a plain string"
        );
        assert_eq!(
            p.help_text(),
            Some(
                "secrets are never written in the plan file: use `{ env: NAME }` or \
                 `{ file: PATH }`"
            )
        );
        assert_eq!(&text[p.span().unwrap()], "hunter2");
        assert!(!p.message().contains("hunter2"));
        assert!(
            p.labels()
                .iter()
                .all(|l| !l.text.as_deref().unwrap_or("").contains("hunter2"))
        );
    }

    #[test]
    fn secrets_are_read_from_env_or_file_and_nothing_else() {
        let ok = |text: &str| {
            let mut cx = Checker::new(Path::new("plan.yaml"), text);
            cx.index = SpanIndex::build(text);
            cx.section::<raw::Secret>("password").ok().flatten()
        };
        assert_eq!(
            ok("password: { env: LDAP_PASSWORD }"),
            Some(raw::Secret::Env("LDAP_PASSWORD".into()))
        );
        assert_eq!(
            ok("password:\n  file: secrets/ldap\n"),
            Some(raw::Secret::File("secrets/ldap".into()))
        );
        for (text, message) in [
            (
                "ldap:\n  password: { env: A, file: b }\n",
                "`ldap.password`: a secret has both `env` and `file`",
            ),
            (
                "ldap:\n  password: { envv: A }\n",
                "`ldap.password`: unknown key `envv` in a secret",
            ),
            (
                "ldap:\n  password: {}\n",
                "`ldap.password`: a secret needs `env` or `file`",
            ),
            (
                "ldap:\n  password: 1234\n",
                "`ldap.password`: a secret cannot be written as a plain number",
            ),
        ] {
            let p = connection(text).unwrap_err();
            assert_eq!(p.message(), message);
            assert_eq!(
                SpanIndex::build(text).value_span(&YamlPath::root().key("ldap").key("password")),
                p.span()
            );
        }
    }

    #[test]
    fn close_words_are_suggested_and_far_ones_not() {
        let keys = ["container", "classify", "domains", "notes_domain"];
        assert_eq!(closest("contaner", &keys), Some("container"));
        assert_eq!(closest("Container", &keys), Some("container"));
        assert_eq!(closest("notes-domain", &keys), Some("notes_domain"));
        assert_eq!(closest("domain", &keys), Some("domains"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("x", &keys), None);
    }

    #[test]
    fn domains_are_checked_and_lower_cased() {
        assert_eq!(check_domain("Acme.COM"), Ok("acme.com".into()));
        assert_eq!(
            check_domain("mail.acme-corp.co.uk"),
            Ok("mail.acme-corp.co.uk".into())
        );
        assert_eq!(
            check_domain("xn--mnchen-3ya.de"),
            Ok("xn--mnchen-3ya.de".into())
        );
        for bad in [
            "",
            "acme",
            "@acme.com",
            "jane@acme.com",
            "acme.com.",
            "acme..com",
            "-acme.com",
            "acme-.com",
            "ac me.com",
            "münchen.de",
            "10.0.0.1",
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
        assert!(check_domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn the_default_group_filter_parses() {
        assert!(Filter::parse(DEFAULT_GROUP_FILTER).is_ok());
        assert!(
            DEFAULT_MERGE_ATTRIBUTES
                .iter()
                .all(|a| AttrName::new(a).is_ok())
        );
    }

    #[test]
    fn serde_yaml_messages_are_split_from_their_location() {
        let e = serde_yaml::from_str::<u32>("x: [").unwrap_err();
        let (head, _) = split_location(&e);
        assert!(!head.contains(" at line "), "{head}");
        assert_eq!(
            parse_trailing_location("while scanning a quoted scalar at line 3 column 9"),
            Some(("while scanning a quoted scalar", 3, 9))
        );
    }
}
