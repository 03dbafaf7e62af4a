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

/// Attributes merged from contacts when the plan file does not say.
pub const DEFAULT_MERGE_ATTRIBUTES: [&str; 14] = [
    "telephoneNumber",
    "mobile",
    "facsimileTelephoneNumber",
    "title",
    "department",
    "company",
    "physicalDeliveryOfficeName",
    "streetAddress",
    "l",
    "st",
    "postalCode",
    "c",
    "description",
    "info",
];

/// How many values of the wrong type one section reports before the rest of it is left
/// unchecked.
const MAX_SHAPE_PROBLEMS: usize = 20;

/// Which source entries are distribution lists when the plan file does not say.
pub const DEFAULT_GROUP_FILTER: &str = "(|(objectClass=dominoGroup)(objectClass=groupOfNames))";

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

/// Checks what only the directories can tell: every DN the plan file names must exist there.
/// Pins, `ignore`, and the `include`/`exclude` lists of `source` and `distribution_lists` are
/// checked; all missing entries are reported together.
pub fn check_against(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
) -> Result<(), PlanFileError> {
    let mut problems = Vec::new();
    let mut check = |dn: &Dn, span: Option<Range<usize>>, side: Side| {
        let snapshot = match side {
            Side::Source => source,
            Side::Destination => destination,
        };
        if !snapshot.contains(dn) {
            problems.push(not_in_directory(dn, span, side, snapshot));
        }
    };
    let m = &spec.matching;
    for pin in m.confirmed.iter().chain(&m.remigrate) {
        let (s, d) = (&pin.source, &pin.destination);
        check(&s.value, Some(range(s.span)), Side::Source);
        check(&d.value, Some(range(d.span)), Side::Destination);
    }
    for dn in &m.ignore_sources {
        check(&dn.value, Some(range(dn.span)), Side::Source);
    }
    for dn in &m.ignore_destinations {
        check(&dn.value, Some(range(dn.span)), Side::Destination);
    }
    // `include`/`exclude` hold plain DNs in the model: their spans come from the text again.
    let dl = spec.distribution_lists.as_ref();
    let lists: [(&str, &str, &[Dn]); 4] = [
        ("source", "include", &spec.source.include),
        ("source", "exclude", &spec.source.exclude),
        (
            "distribution_lists",
            "include",
            dl.map_or(&[], |d| &d.include),
        ),
        (
            "distribution_lists",
            "exclude",
            dl.map_or(&[], |d| &d.exclude),
        ),
    ];
    // Locating them means parsing the plan file's text again (a large plan file takes a good
    // part of a second): only done for a DN that is missing.
    let mut index = None;
    for (section, key, dns) in lists {
        for (i, dn) in dns.iter().enumerate() {
            if source.contains(dn) {
                continue;
            }
            let path = YamlPath::root().key(section).key(key).index(i);
            let span = index
                .get_or_insert_with(|| SpanIndex::build(&spec.text))
                .value_span(&path);
            check(dn, span, Side::Source);
        }
    }
    problems.extend(misspelt_placeholders(spec, source));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PlanFileError::new(&spec.path, &spec.text, problems))
    }
}

/// The attributes that templates name and no source entry carries, each with the places that
/// name it, in file order. One pass over the source for all of them.
pub fn missing_placeholders<'s>(
    spec: &'s Spec,
    source: &Snapshot,
) -> Vec<(&'s AttrName, Vec<&'s Placeholder>)> {
    let mut wanted: Vec<(&AttrName, Vec<&Placeholder>)> = Vec::new();
    for p in &spec.placeholders {
        match wanted.iter_mut().find(|(a, _)| **a == p.attribute) {
            Some((_, uses)) => uses.push(p),
            None => wanted.push((&p.attribute, vec![p])),
        }
    }
    for entry in source.entries() {
        if wanted.is_empty() {
            break;
        }
        wanted.retain(|(a, _)| !entry.has(a.as_str()));
    }
    wanted
}

/// A placeholder no source entry has a value for, that is close to a role or to an attribute
/// the source has, is a misspelling (`{surnam}` for `{surname}`): an error at each place it is
/// written, with the name meant. One close to nothing is left to the plan, which warns.
fn misspelt_placeholders(spec: &Spec, source: &Snapshot) -> Vec<Problem> {
    let missing = missing_placeholders(spec, source);
    if missing.is_empty() {
        return Vec::new();
    }
    let mut known: BTreeSet<&str> = Role::ALL.iter().map(|r| r.0).collect();
    for entry in source.entries() {
        known.extend(entry.attrs.keys().map(AttrName::as_str));
    }
    let known: Vec<&str> = known.into_iter().collect();
    let mut problems = Vec::new();
    for (attr, uses) in missing {
        let Some(meant) = closest(attr.as_str(), &known) else {
            continue;
        };
        let mut p = Problem::new(
            codes::UNKNOWN_PLACEHOLDER,
            format!(
                "`{{{attr}}}` is neither a role nor an attribute of any source entry, so it would always be empty"
            ),
        );
        for u in uses {
            p = p.label(range(u.span), format!("in `{}`", u.key));
        }
        problems.push(p.help(format!("did you mean `{{{meant}}}`?")));
    }
    problems
}

/// Reads every secret the plan file names, once each, before anything connects: a variable
/// that is not set or a file that cannot be read is one problem, at every place that names it,
/// reported together with the others. The values are not kept: each connection reads its
/// secret again when it opens (the same one, unless it changed meanwhile).
pub fn check_secrets(spec: &Spec) -> Result<(), PlanFileError> {
    let mut failures: Vec<(&Secret, SecretError, Vec<&SecretUse>)> = Vec::new();
    let mut checked: Vec<&Secret> = Vec::new();
    for used in &spec.secrets {
        if let Some(f) = failures.iter_mut().find(|f| *f.0 == used.secret) {
            f.2.push(used);
            continue;
        }
        if checked.contains(&&used.secret) {
            continue;
        }
        checked.push(&used.secret);
        if let Err(e) = used.secret.resolve() {
            failures.push((&used.secret, e, vec![used]));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let problems = failures
        .into_iter()
        .map(|(secret, error, uses)| {
            let keys: Vec<String> = uses.iter().map(|u| format!("`{}`", u.key)).collect();
            let help = match secret {
                Secret::Env(name) => format!(
                    "set it before running mailplan (`export {name}=…`, or from your secret store), or point the key at a file with `{{ file: PATH }}`"
                ),
                Secret::File(_) => "create the file with the secret as its only line, readable by the user that runs mailplan (paths are relative to the plan file)".to_string(),
            };
            let mut p = Problem::new(
                codes::SECRET_UNAVAILABLE,
                format!("{error} (needed by {}); nothing was connected", keys.join(", ")),
            );
            for u in uses {
                p = p.label(range(u.span), "named here");
            }
            p.help(help)
        })
        .collect();
    Err(PlanFileError::new(&spec.path, &spec.text, problems))
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

fn range(span: miette::SourceSpan) -> Range<usize> {
    span.offset()..span.offset() + span.len()
}

fn not_in_directory(
    dn: &Dn,
    span: Option<Range<usize>>,
    side: Side,
    snapshot: &Snapshot,
) -> Problem {
    // A DN that differs only in its parents (the person is in another OU) is the usual mistake:
    // offer the entries with the same leaf value.
    let leaf = dn.rdn().map(|r| r.first_value().to_lowercase());
    let similar: Vec<String> = snapshot
        .entries()
        .iter()
        .filter(|e| e.dn.rdn().map(|r| r.first_value().to_lowercase()) == leaf && leaf.is_some())
        .take(3)
        .map(|e| format!("`{}`", e.dn))
        .collect();
    let help = if similar.is_empty() {
        format!(
            "check the DN against the {side} directory; DNs compare without regard to case or \
             extra spaces"
        )
    } else {
        format!("did you mean {}?", join_or(&similar))
    };
    Problem::new(
        codes::NOT_IN_DIRECTORY,
        format!("`{dn}` is not in the {side} directory"),
    )
    .label_opt(span, format!("no such entry in the {side} directory"))
    .help(help)
}

/// Which top-level key a pass reads; the others are skipped.
struct Pick<T> {
    key: &'static str,
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Pick<T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Pick<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of plan-file sections")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(self.key) {
                first(&mut map, &mut found)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Reads a key's value into `slot` the first time the key is met; a repeated key's value is
/// skipped (the span index reports the repeat).
fn first<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
) -> Result<(), A::Error> {
    if slot.is_none() {
        *slot = Some(map.next_value::<T>()?);
    } else {
        map.next_value::<IgnoredAny>()?;
    }
    Ok(())
}

/// Every section of the plan file read in one pass, with the keys the pass went over (not in
/// the schema); none when some value has the wrong shape, and the sections are then read one
/// at a time, so that each wrong value is reported.
fn read_sections(text: &str) -> Option<(Sections, Vec<YamlPath>)> {
    let mut ignored = Vec::new();
    let mut record = |p: serde_ignored::Path| ignored.push(yaml_path(&p));
    let de = serde_yaml::Deserializer::from_str(text);
    let sections = serde_ignored::Deserializer::new(de, &mut record)
        .deserialize_map(SectionsVisitor)
        .ok()?
        .unwrap_or_default();
    Some((sections, ignored))
}

/// The plan file's sections, read in one pass (see `read_sections`).
#[derive(Default)]
struct Sections {
    version: Option<u32>,
    source: Option<raw::Source>,
    destination: Option<raw::Destination>,
    matching: Option<raw::Matching>,
    merge: Option<raw::Merge>,
    distribution_lists: Option<raw::DistributionLists>,
    items: Option<raw::Items>,
}

struct SectionsVisitor;

impl<'de> Visitor<'de> for SectionsVisitor {
    type Value = Option<Sections>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of plan-file sections")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Sections>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Sections>, A::Error> {
        // Each slot is `Some` once its key was met, whatever the value (`~` included).
        let (mut version, mut source, mut destination, mut matching) = (None, None, None, None);
        let (mut merge, mut lists, mut items) = (None, None, None);
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            match key.as_str() {
                Some("version") => first(&mut map, &mut version)?,
                Some("source") => first(&mut map, &mut source)?,
                Some("destination") => first(&mut map, &mut destination)?,
                Some("matching") => first(&mut map, &mut matching)?,
                Some("merge") => first(&mut map, &mut merge)?,
                Some("distribution_lists") => first(&mut map, &mut lists)?,
                Some("items") => first(&mut map, &mut items)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(Sections {
            version: version.flatten(),
            source: source.flatten(),
            destination: destination.flatten(),
            matching: matching.flatten(),
            merge: merge.flatten(),
            distribution_lists: lists.flatten(),
            items: items.flatten(),
        }))
    }
}

/// Reads a whole document, going into every mapping and sequence, so serde_yaml's recursion
/// limit applies (`IgnoredAny` skips nested values without it).
struct Nested;

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor)
    }
}

struct NestedVisitor;

impl<'de> Visitor<'de> for NestedVisitor {
    type Value = Nested;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_none<E: de::Error>(self) -> Result<Nested, E> {
        Ok(Nested)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Nested, D::Error> {
        Nested::deserialize(d)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested, A::Error> {
        while map.next_entry::<Nested, Nested>()?.is_some() {}
        Ok(Nested)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Nested, A::Error> {
        while seq.next_element::<Nested>()?.is_some() {}
        Ok(Nested)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Nested, A::Error> {
        // A tagged value (`!tag value`).
        use serde::de::VariantAccess as _;
        let (_, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<Nested>()
    }
}

/// What the document is, as far as its top level goes.
enum Shape {
    Null,
    Mapping,
    Other,
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Mapping)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Shape, A::Error> {
        Ok(Shape::Other)
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
}

/// A calendar or contacts destination before it is given its kind.
enum DavOrFolder {
    Dav(DavStore),
    Folder(PathTemplate),
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
        let (version, source, destination, matching, merge, lists, items) =
            match sections.flatten().map(|read| self.take_sections(read)) {
                Some(s) => (
                    Ok(s.version),
                    Ok(s.source),
                    Ok(s.destination),
                    Ok(s.matching),
                    Ok(s.merge),
                    Ok(s.distribution_lists),
                    Ok(s.items),
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
                    )
                }
            };
        self.schema_unknown_keys();
        let unknown: Vec<YamlPath> = self.unknown.iter().cloned().collect();
        for path in unknown {
            let p = self.unknown_key(&path);
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
        if self.problems.is_empty()
            && (source.is_none()
                || destination.is_none()
                || matching.is_none()
                || merge.is_none()
                || distribution_lists.is_none()
                || items.is_none())
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
                    Some(node) if self.is_null(node) => {
                        let span = self.key_span(&child);
                        found.push(
                            Problem::new(codes::EMPTY_VALUE, format!("`{child}` has no value"))
                                .label(span, "no value")
                                .help(format!(
                                    "`{key}` is required{}",
                                    schema::description(&child)
                                        .map(|d| format!(": {d}"))
                                        .unwrap_or_default()
                                )),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        self.problems.extend(found);
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

    /// Deserializes one top-level section on its own. `Ok(None)`: the key is absent.
    ///
    /// serde stops at the first wrong value, so each wrong value is reported and then masked out
    /// of the text (its `key: value` overwritten with spaces, which keeps every offset and line of
    /// the rest), and the section is read again. The result holds everything that was right, so
    /// its other values still get their checks; a masked key reads as absent, and the problem
    /// already reported keeps the plan from being accepted.
    fn section<T: DeserializeOwned>(&mut self, key: &'static str) -> Result<Option<T>, Failed> {
        let section = YamlPath::root().key(key);
        let mut text = self.text.to_string();
        let mut masked = BTreeSet::new();
        loop {
            let mut ignored = Vec::new();
            let mut record = |p: serde_ignored::Path| ignored.push(yaml_path(&p));
            let de = serde_yaml::Deserializer::from_str(&text);
            let result = Pick::<T> {
                key,
                _t: PhantomData,
            }
            .deserialize(serde_ignored::Deserializer::new(de, &mut record));
            // Other sections show up as ignored too: keep only what is inside this one.
            self.unknown.extend(
                ignored
                    .into_iter()
                    .filter(|p| p.starts_with(&section) && p != &section),
            );
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let (problem, path) = self.shape_problem(&error, &text);
            // No problem: a repeated key, already reported from the span index.
            if let Some(problem) = problem {
                self.push(problem);
            }
            // Mask the innermost `key: value` that holds the wrong value; give up when there is
            // none, or when it was masked already (no progress).
            let entry = path.and_then(|p| {
                let mut p = p;
                loop {
                    if !p.starts_with(&section) {
                        return None;
                    }
                    if self.index.key_span(&p).is_some() {
                        return Some(p);
                    }
                    p = p.parent();
                }
            });
            let Some(entry) = entry else {
                return Err(Failed);
            };
            if masked.len() >= MAX_SHAPE_PROBLEMS {
                // Each wrong value costs a read of the section: past this many, the rest of
                // the section is not read again.
                let span = self.key_span(&section);
                self.push(
                    Problem::new(
                        codes::WRONG_TYPE,
                        format!(
                            "`{section}` has more than {MAX_SHAPE_PROBLEMS} values of the wrong type; the rest of it is not checked"
                        ),
                    )
                    .label(span, "checked up to here")
                    .help("fix the values reported, then validate again"),
                );
                return Err(Failed);
            }
            if !masked.insert(entry.clone()) || !self.mask(&mut text, &entry) {
                return Err(Failed);
            }
        }
    }

    /// Every section in one pass over the text, with the unknown keys it met; `None` (and
    /// nothing recorded) when any value has the wrong shape. The sections are read as
    /// `section` reads them, one by one: the first of a repeated key counts, and a key that is
    /// no section is unknown.
    #[cfg(test)]
    fn all_sections(&mut self) -> Option<Sections> {
        read_sections(self.text).map(|read| self.take_sections(read))
    }

    /// The sections [`read_sections`] read, with the keys it passed over recorded as unknown
    /// where they are no section.
    fn take_sections(&mut self, (sections, ignored): (Sections, Vec<YamlPath>)) -> Sections {
        let names = schema::keys_at(&YamlPath::root()).unwrap_or_default();
        self.unknown
            .extend(ignored.into_iter().filter(|p| match p.segs().len() {
                0 => false,
                // A key that is no section; a repeated section is reported from the span index.
                1 => !p.last_key().is_some_and(|k| names.contains(&k)),
                _ => true,
            }));
        sections
    }

    /// Overwrites a `key: value` entry (and the comma after it in a flow mapping) with spaces.
    fn mask(&self, text: &mut String, entry: &YamlPath) -> bool {
        let (Some(key), Some(value)) = (self.index.key_span(entry), self.index.value_span(entry))
        else {
            return false;
        };
        let mut end = value.end.max(key.end);
        let rest = text.get(end..).unwrap_or("");
        let after = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest.get(after..).unwrap_or("").starts_with(',') {
            end += after + 1;
        }
        let start = key.start;
        if start > end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return false;
        }
        let blank: String = text[start..end]
            .chars()
            .flat_map(|c| {
                let keep = c == '\n' || c == '\r';
                std::iter::repeat_n(
                    if keep { c } else { ' ' },
                    if keep { 1 } else { c.len_utf8() },
                )
            })
            .collect();
        text.replace_range(start..end, &blank);
        true
    }

    /// Top-level keys that are not sections.
    fn top_level_unknown_keys(&mut self) {
        let sections = schema::keys_at(&YamlPath::root()).unwrap_or_default();
        let mut ignored = Vec::new();
        let mut record = |p: serde_ignored::Path| ignored.push(yaml_path(&p));
        let de = serde_yaml::Deserializer::from_str(self.text);
        // A key that is no section: every key is reported as ignored.
        let _ = Pick::<IgnoredAny> {
            key: "",
            _t: PhantomData,
        }
        .deserialize(serde_ignored::Deserializer::new(de, &mut record));
        self.unknown.extend(ignored.into_iter().filter(|p| {
            p.segs().len() == 1 && !p.last_key().is_some_and(|k| sections.contains(&k))
        }));
    }

    /// Unknown keys serde never reached because a section failed to deserialize before them:
    /// every written key is checked against the schema.
    fn schema_unknown_keys(&mut self) {
        let mut found = Vec::new();
        for (path, node) in self.index.descendants(&YamlPath::root()) {
            if node.key.is_none() || path.segs().len() < 2 {
                continue;
            }
            let (Some(key), Some(valid)) = (path.last_key(), schema::keys_at(&path.parent()))
            else {
                continue;
            };
            if !valid.contains(&key) {
                found.push(path.clone());
            }
        }
        self.unknown.extend(found);
    }

    fn unknown_key(&self, path: &YamlPath) -> Problem {
        let key = path.last_key().unwrap_or("?");
        let parent = path.parent();
        let valid = schema::keys_at(&parent).unwrap_or_default();
        let span = self.key_span(path);
        let elsewhere: Vec<String> = schema::paths_with_key(key)
            .into_iter()
            .filter(|p| *p != parent)
            .map(|p| format!("`{p}`"))
            .collect();
        let help = if let Some(close) = closest(key, &valid) {
            format!("did you mean `{close}`?")
        } else if !elsewhere.is_empty() {
            format!(
                "`{key}` belongs in {}, not in {}",
                join_or(&elsewhere),
                describe(&parent)
            )
        } else {
            format!(
                "valid keys {}: {}",
                within(&parent),
                valid
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Problem::new(
            codes::UNKNOWN_KEY,
            format!("unknown key `{key}` {}", within(&parent)),
        )
        .label(span, "unknown key")
        .help(help)
    }

    fn missing_key(&self, parent: &YamlPath, key: &str) -> Problem {
        // At the mapping's own key; a list item or the top level has none, so at its first key.
        // (Only the nodes under `parent` are looked at: asked for every item of a long list, a
        // scan of the whole index was quadratic.)
        let first_key = || {
            self.index
                .descendants(parent)
                .into_iter()
                .filter(|(p, _)| p.segs().len() == parent.segs().len() + 1)
                .filter_map(|(_, n)| n.key.clone())
                .min_by_key(|s| s.start)
        };
        let span = self
            .index
            .key_span(parent)
            .or_else(first_key)
            .unwrap_or_else(|| self.nearest(&parent.key(key)));
        let what = schema::description(&parent.key(key))
            .map(|d| format!(". {d}"))
            .unwrap_or_default();
        let place = if parent.is_root() {
            "at the top level".to_string()
        } else {
            format!("to `{parent}`")
        };
        let label = if parent.is_root() {
            format!("the top level has no `{key}`")
        } else if self.index.key_span(parent).is_none() {
            format!("this item has no `{key}`")
        } else {
            format!("`{key}` is missing here")
        };
        Problem::new(
            codes::MISSING_KEY,
            format!("missing key `{key}` {}", within(parent)),
        )
        .label(span, label)
        .help(format!("add `{key}:` {place}{what}"))
    }

    /// A syntax error, with where the construct it broke started when serde_yaml says.
    fn syntax_problem(&self, e: &serde_yaml::Error) -> Problem {
        let (head, context) = split_location(e);
        let at = e.location().map(|l| {
            self.point(
                self.index
                    .offset_of(self.text, l.line(), l.column().saturating_sub(1)),
            )
        });
        let (context_text, context_at) = match context.as_deref().and_then(parse_trailing_location)
        {
            Some((what, line, column)) => (
                Some(what.to_string()),
                Some(
                    self.point(
                        self.index
                            .offset_of(self.text, line, column.saturating_sub(1)),
                    ),
                ),
            ),
            None => (context.clone(), None),
        };
        let head = head.trim();
        let lower = head.to_lowercase();
        let started = context_text
            .as_deref()
            .map(|c| {
                c.trim_start_matches("while parsing ")
                    .trim_start_matches("while scanning ")
                    .to_string()
            })
            .unwrap_or_default();
        let at_tab = at
            .as_ref()
            .and_then(|r| self.text.get(r.clone()))
            .is_some_and(|t| t == "\t");
        let help = if lower.contains("tab character") || at_tab {
            "YAML indents with spaces only: replace the tab with spaces"
        } else if lower.contains("end of stream") && started.contains("quoted") {
            "a quoted value is never closed: add the closing quote"
        } else if lower.contains("more than one document") {
            "a plan file holds one YAML document: remove the `---` lines after the first"
        } else if lower.contains("repetition limit") {
            "an alias (`*name`) repeats its anchor's whole value, aliases inside it included: \
             write the values out instead of nesting aliases"
        } else if lower.contains("recursion limit") {
            "a plan file is only a few levels deep: check for unbalanced `[` or `{`"
        } else if lower.contains("cannot start any token") {
            "a value that starts with `@`, `` ` `` or `%` must be quoted"
        } else if lower.contains("expected key")
            || lower.contains("mapping values are not allowed")
            || lower.contains("indentation")
            || lower.contains("block")
        {
            "check the indentation: the keys of one mapping start in the same column, and the \
             keys under `key:` are indented further than `key`"
        } else {
            "the plan file must be valid YAML"
        };
        let message = match &context_text {
            _ if lower.contains("end of stream") && started.contains("quoted") => {
                "invalid YAML: a quoted value is never closed".to_string()
            }
            Some(c) if context_at.is_none() => format!("invalid YAML: {head} ({c})"),
            _ => format!("invalid YAML: {head}"),
        };
        let mut problem = Problem::new(codes::SYNTAX, message).help(help);
        if lower.contains("repetition limit") {
            // serde_yaml gives no location: the alias at which the expansions run over.
            return problem;
        }
        if lower.contains("more than one document") {
            if let Some(at) = second_document(self.text) {
                return problem.label(at, "a second document starts here");
            }
            // serde_yaml gives no location for this one: point at the second document's start.
            let mut offset = 0;
            let mut seen_content = false;
            for line in self.text.split_inclusive('\n') {
                let t = line.trim_end();
                if (t == "---" || t.starts_with("--- ") || t == "...") && seen_content {
                    return problem
                        .label(offset..offset + t.len(), "a second document starts here");
                }
                if !t.is_empty() && !t.starts_with('#') && t != "---" {
                    seen_content = true;
                }
                offset += line.len();
            }
            // No `---`: libyaml ended the first document where the indentation fell back.
            return problem.help("the top-level keys must all start in the first column");
        }
        // An unclosed quote is best shown where it opens; the end of the file says little.
        if lower.contains("end of stream") && context_at.is_some() {
            problem = problem
                .label_opt(
                    context_at,
                    format!("{started} starts here and is never closed"),
                )
                .label_opt(at, "the file ends before it is closed");
        } else {
            problem = problem.label_opt(at, head.to_string());
            if let Some(c) = context_at {
                problem = problem.label(c, format!("{started} starts here"));
            }
        }
        problem
    }

    /// One character at `offset`, or an empty span at the end of a line or the file.
    fn point(&self, offset: usize) -> Range<usize> {
        match self.text.get(offset..).and_then(|t| t.chars().next()) {
            Some(c) if c != '\n' && c != '\r' => offset..offset + c.len_utf8(),
            _ => offset..offset,
        }
    }

    /// A type error (or other shape error) from deserializing a section, and the path of the
    /// value it is about. `text` is what was deserialized (possibly with entries masked out; its
    /// offsets are the file's).
    fn shape_problem(
        &self,
        e: &serde_yaml::Error,
        text: &str,
    ) -> (Option<Problem>, Option<YamlPath>) {
        let (head, _) = split_location(e);
        // serde_yaml puts the path in front (`matching.mode: unknown variant ...`): find the
        // longest indexed path it starts with.
        let mut path = None;
        let mut body = head.as_str();
        for p in self.index.paths() {
            let form = p.serde_yaml_form();
            if form.is_empty() {
                continue;
            }
            if let Some(rest) = head
                .strip_prefix(form.as_str())
                .and_then(|r| r.strip_prefix(": "))
                && path
                    .as_ref()
                    .is_none_or(|q: &YamlPath| q.serde_yaml_form().len() < form.len())
            {
                path = Some(p.clone());
                body = rest;
            }
        }
        let location = e.location().map(|l| {
            self.index
                .offset_of(text, l.line(), l.column().saturating_sub(1))
        });
        let path = path.or_else(|| {
            self.index
                .node_starting_at(location?)
                .map(|(p, _)| p.clone())
        });
        let value_span = path
            .as_ref()
            .and_then(|p| self.index.value_span(p))
            .or_else(|| location.map(|o| self.point(o)));
        let problem = self.shape_problem_at(path.clone().unwrap_or_default(), body, value_span);
        // A repeated field is about the field, not the mapping serde names.
        let path = match (between(body, "duplicate field `", "`"), path) {
            (Some(field), Some(p)) => Some(p.key(field)),
            (_, p) => p,
        };
        (problem, path)
    }

    fn shape_problem_at(
        &self,
        path: YamlPath,
        body: &str,
        value_span: Option<Range<usize>>,
    ) -> Option<Problem> {
        if let Some(field) = between(body, "missing field `", "`") {
            return Some(self.missing_key(&path, field));
        }
        if body.starts_with("duplicate field") && !self.index.duplicates().is_empty() {
            // Already reported, with both places, from the span index.
            return None;
        }
        if let Some((message, help)) = body.split_once(raw::HELP_SEPARATOR) {
            let code = if help == raw::SECRET_HELP {
                codes::PLAIN_SECRET
            } else {
                codes::WRONG_TYPE
            };
            return Some(
                Problem::new(code, format!("`{path}`: {message}"))
                    .label_opt(value_span, message.to_string())
                    .help(help),
            );
        }
        if let Some(value) = between(body, "unknown variant `", "`") {
            return Some(self.unknown_value(&path, value, value_span));
        }
        let found = between(body, "invalid type: ", ", expected")
            .or_else(|| between(body, "invalid value: ", ", expected"));
        if let Some(found) = found {
            return Some(self.wrong_type(&path, found, value_span));
        }
        Some(
            Problem::new(codes::WRONG_TYPE, format!("{}: {body}", describe(&path)))
                .label_opt(value_span, body.to_string())
                .help_opt(schema::description(&path).map(str::to_string)),
        )
    }

    fn unknown_value(&self, path: &YamlPath, value: &str, span: Option<Range<usize>>) -> Problem {
        let allowed = schema::allowed_values(path);
        let names: Vec<&str> = allowed.iter().map(|a| a.0).collect();
        let help = match closest(value, &names) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("`{path}` is one of:\n{}", value_list(&allowed)),
        };
        Problem::new(
            codes::UNKNOWN_VALUE,
            format!("`{value}` is not a valid value for `{path}`"),
        )
        .label_opt(
            span,
            format!(
                "expected {}",
                join_or(&names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>())
            ),
        )
        .help(help)
    }

    fn wrong_type(&self, path: &YamlPath, found: &str, span: Option<Range<usize>>) -> Problem {
        let expected = expected_kind(path);
        let found_text = found_kind(found);
        let required = schema::required_at(&path.parent())
            .iter()
            .any(|k| Some(*k) == path.last_key());
        let types = schema::types_at(path);
        let allowed = schema::allowed_values(path);
        let desc = schema::description(path);
        let help = if path.segs() == [Seg::Key("version".into())] {
            "write `version: 1` (a number, without quotes)".to_string()
        } else if schema::kind(path) == Some("template") && found.starts_with("map") {
            format!(
                "a template that starts with `{{` must be quoted, e.g. `{}: \"{{title}}\"`",
                path.last_key().unwrap_or("title")
            )
        } else if found.starts_with("unit") {
            if required {
                format!(
                    "give `{path}` a value{}",
                    desc.map(|d| format!(": {d}")).unwrap_or_default()
                )
            } else {
                format!("give `{path}` a value, or leave the key out to use the default")
            }
        } else if !allowed.is_empty() {
            format!("`{path}` is one of:\n{}", value_list(&allowed))
        } else if types == ["array"] {
            format!(
                "write a list: `{}: [a, b]`, or one `- item` per line below the key",
                path.last_key().unwrap_or("key")
            )
        } else if types == ["object"] {
            match schema::keys_at(path) {
                Some(keys) => format!(
                    "write the keys of `{path}` indented below it: {}",
                    keys.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => format!("write `{path}` as `key: value` lines indented below it"),
            }
        } else {
            desc.map(str::to_string).unwrap_or_default()
        };
        Problem::new(
            codes::WRONG_TYPE,
            format!("`{path}` must be {expected}, not {found_text}"),
        )
        .label_opt(span, format!("expected {expected}"))
        .help(help)
    }

    // ---- Pass 3: meaning ----

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

    fn source(&mut self, s: raw::Source, path: &YamlPath) -> Option<Source> {
        let profile = self.required(s.profile, path, "profile").map(|p| match p {
            raw::Profile::Domino => Profile::Domino,
            raw::Profile::Ldap => Profile::Ldap,
            raw::Profile::ActiveDirectory => Profile::ActiveDirectory,
        });
        let notes_domain = s
            .notes_domain
            .and_then(|d| self.non_empty(d, &path.key("notes_domain")));
        let ldif_file_urls = file_urls(s.directory.as_ref());
        let directory = self
            .required(s.directory, path, "directory")
            .and_then(|d| self.directory(&d, &path.key("directory")));
        let base = s.base.map(|b| self.dn(&b, &path.key("base")));
        let filter = s.filter.map(|f| self.filter(&f, &path.key("filter")));
        let include = self.dn_list(s.include.as_deref(), &path.key("include"));
        let exclude = self.dn_list(s.exclude.as_deref(), &path.key("exclude"));
        self.included_and_excluded(&include, &exclude, path);
        let roles = self.roles(s.roles, &path.key("roles"));
        Some(Source {
            profile: profile?,
            notes_domain,
            directory: directory?,
            ldif_file_urls,
            base: checked(base)?,
            filter: checked(filter)?,
            include: values(include)?,
            exclude: values(exclude)?,
            roles: roles?,
            targets: Vec::new(),
        })
    }

    fn roles(&mut self, roles: Option<raw::Roles>, path: &YamlPath) -> Option<Roles> {
        let Some(r) = roles else {
            return Some(Roles::default());
        };
        let smtp = r.smtp.map(|l| self.attr_list(&l, &path.key("smtp")));
        let short_names = r
            .short_names
            .map(|l| self.attr_list(&l, &path.key("short_names")));
        let full_names = r
            .full_names
            .map(|l| self.attr_list(&l, &path.key("full_names")));
        let given_name = r.given_name.map(|a| self.attr(&a, &path.key("given_name")));
        let surname = r.surname.map(|a| self.attr(&a, &path.key("surname")));
        Some(Roles {
            smtp: checked(smtp)?,
            short_names: checked(short_names)?,
            full_names: checked(full_names)?,
            given_name: checked(given_name)?,
            surname: checked(surname)?,
        })
    }

    fn destination(&mut self, d: raw::Destination, path: &YamlPath) -> Option<Destination> {
        let flavor = self.required(d.flavor, path, "flavor").map(|f| match f {
            raw::Flavor::ActiveDirectory => Flavor::ActiveDirectory,
            raw::Flavor::Ldap => Flavor::Ldap,
        });
        let ldif_file_urls = file_urls(d.directory.as_ref());
        let directory = self
            .required(d.directory, path, "directory")
            .and_then(|dir| self.directory(&dir, &path.key("directory")));
        let container = self
            .required(d.container, path, "container")
            .and_then(|c| self.container(&c, &path.key("container")));
        let domains = self.domains(d.domains.as_deref().unwrap_or(&[]), &path.key("domains"));
        let mailbox_database = d
            .mailbox_database
            .map(|m| self.dn_entry(&m, &path.key("mailbox_database")));
        let exchange_org = d
            .exchange_org
            .and_then(|o| self.non_empty(o, &path.key("exchange_org")));
        let classify = self.classify(d.classify, &path.key("classify"));
        let mapping = self.mapping(d.mapping.unwrap_or_default(), &path.key("mapping"));
        Some(Destination {
            flavor: flavor?,
            directory: directory?,
            ldif_file_urls,
            container: container?,
            domains: domains?,
            mailbox_database: checked(mailbox_database)?,
            exchange_org,
            classify: classify?,
            mapping: mapping?,
        })
    }

    fn classify(&mut self, c: Option<raw::Classify>, path: &YamlPath) -> Option<Classify> {
        let Some(c) = c else {
            return Some(Classify::default());
        };
        let mut one = |f: Option<raw::FilterText>, key: &str| {
            checked(f.map(|f| self.filter(&f, &path.key(key))))
        };
        let mailbox_user = one(c.mailbox_user, "mailbox_user");
        let mail_enabled_user = one(c.mail_enabled_user, "mail_enabled_user");
        let nt_account = one(c.nt_account, "nt_account");
        let contact = one(c.contact, "contact");
        let group = one(c.group, "group");
        Some(Classify {
            mailbox_user: mailbox_user?,
            mail_enabled_user: mail_enabled_user?,
            nt_account: nt_account?,
            contact: contact?,
            group: group?,
        })
    }

    fn mapping(
        &mut self,
        mapping: BTreeMap<String, Option<raw::TemplateText>>,
        path: &YamlPath,
    ) -> Option<BTreeMap<AttrName, Option<Template>>> {
        let mut out = BTreeMap::new();
        let mut seen: BTreeMap<AttrName, YamlPath> = BTreeMap::new();
        let mut ok = true;
        // In file order, so the second spelling of an attribute is the one reported.
        let mut entries: Vec<_> = mapping.into_iter().collect();
        entries.sort_by_key(|(k, _)| self.index.key_span(&path.key(k)).map(|s| s.start));
        for (key, template) in entries {
            let key_path = path.key(&key);
            let key_span = self.key_span(&key_path);
            let attr = match AttrName::new(&key) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.push(
                        Problem::new(
                            codes::INVALID_ATTRIBUTE,
                            format!("`{key}` in `{path}` is not an attribute name"),
                        )
                        .label(key_span.clone(), e.to_string())
                        .help(ATTR_HELP),
                    );
                    None
                }
            };
            let template = checked(template.map(|t| self.template(&t, &key_path)));
            if let Some(attr) = &attr {
                if let Some(first) = seen.get(attr) {
                    let first_span = self.key_span(first);
                    self.push(
                        Problem::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            format!("`{key}` is mapped twice in `{path}`"),
                        )
                        .label(key_span, "mapped again here")
                        .label(first_span, "first mapped here")
                        .help("attribute names ignore case: keep one of the two"),
                    );
                    ok = false;
                    continue;
                }
                seen.insert(attr.clone(), key_path.clone());
            }
            match (attr, template) {
                (Some(a), Some(t)) => {
                    out.insert(a, t);
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn domains(&mut self, domains: &[raw::DomainText], path: &YamlPath) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut ok = true;
        for (i, d) in domains.iter().enumerate() {
            let item = path.index(i);
            let span = self.span(&item);
            match check_domain(&d.0) {
                Ok(domain) => {
                    if let Some(&first) = seen.get(&domain) {
                        let first_span = self.span(&path.index(first));
                        self.push(
                            Problem::new(
                                codes::DUPLICATE_DOMAIN,
                                format!("domain `{domain}` is listed twice in `{path}`"),
                            )
                            .label(span, "listed again here")
                            .label(first_span, "first listed here")
                            .help("domain names ignore case: keep one of the two"),
                        );
                        ok = false;
                    } else {
                        seen.insert(domain.clone(), i);
                        out.push(domain);
                    }
                }
                Err((reason, help)) => {
                    self.push(
                        Problem::new(
                            codes::INVALID_DOMAIN,
                            format!("`{}` in `{path}` is not a valid mail domain", d.0),
                        )
                        .label(span, reason)
                        .help(help),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn matching(&mut self, m: raw::Matching, path: &YamlPath) -> Option<Matching> {
        let mode = match m.mode.unwrap_or(raw::Mode::Batch) {
            raw::Mode::Batch => Mode::Batch,
            raw::Mode::Interactive => Mode::Interactive,
        };
        let mut ok = true;
        let mut confirmed = Vec::new();
        for (i, c) in m.confirmed.unwrap_or_default().iter().enumerate() {
            let item = path.key("confirmed").index(i);
            let pin = self.pin(
                c.source.as_ref(),
                &item.key("source"),
                c.destination.as_ref(),
                &item.key("destination"),
            );
            ok &= pin.as_ref().is_some_and(|p| {
                confirmed.push(p.clone());
                true
            });
        }
        let mut remigrate = Vec::new();
        for (i, r) in m.remigrate.unwrap_or_default().iter().enumerate() {
            let item = path.key("remigrate").index(i);
            let pin = self.pin(
                r.source.as_ref(),
                &item.key("source"),
                r.mailbox.as_ref(),
                &item.key("mailbox"),
            );
            ok &= pin.as_ref().is_some_and(|p| {
                remigrate.push(p.clone());
                true
            });
        }
        for r in &remigrate {
            if let Some(c) = confirmed.iter().find(|c| c.source.value == r.source.value) {
                self.push(
                    Problem::new(
                        codes::CONFLICTING_PINS,
                        format!("`{}` is both confirmed and remigrated", r.source.value),
                    )
                    .label(range(r.source.span), "remigrated here")
                    .label(range(c.source.span), "confirmed here")
                    .help(
                        "a person is either matched to an existing object (`confirmed`) or \
                         migrated into an existing mailbox (`remigrate`): keep one",
                    ),
                );
                ok = false;
            }
        }
        let mut ignore_sources = Vec::new();
        let mut ignore_destinations = Vec::new();
        for (i, item) in m.ignore.unwrap_or_default().iter().enumerate() {
            let item_path = path.key("ignore").index(i);
            match (&item.source, &item.destination) {
                (Some(s), None) => {
                    let p = item_path.key("source");
                    match self.dn_entry(s, &p) {
                        Some(dn) => ignore_sources.push(self.located(dn, &p)),
                        None => ok = false,
                    }
                }
                (None, Some(d)) => {
                    let p = item_path.key("destination");
                    match self.dn_entry(d, &p) {
                        Some(dn) => ignore_destinations.push(self.located(dn, &p)),
                        None => ok = false,
                    }
                }
                (both, _) => {
                    let span = SpanIndex::first_line(self.text, self.span(&item_path));
                    let message = if both.is_some() {
                        format!("`{item_path}` has both `source` and `destination`")
                    } else {
                        format!("`{item_path}` has neither `source` nor `destination`")
                    };
                    self.push(
                        Problem::new(codes::INVALID_IGNORE, message)
                            .label(span, "expected exactly one of `source` or `destination`")
                            .help(
                                "write each ignored entry as its own item: `- source: DN` for a \
                                 source person, `- destination: DN` for a destination object",
                            ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Matching {
            mode,
            confirmed,
            remigrate,
            ignore_sources,
            ignore_destinations,
        })
    }

    fn pin(
        &mut self,
        source: Option<&raw::DnText>,
        source_path: &YamlPath,
        destination: Option<&raw::DnText>,
        destination_path: &YamlPath,
    ) -> Option<Pin> {
        let (parent, s_key, d_key) = (
            source_path.parent(),
            source_path.last_key().unwrap_or("source"),
            destination_path.last_key().unwrap_or("destination"),
        );
        let s = self
            .required(source, &parent, s_key)
            .and_then(|s| self.dn_entry(s, source_path));
        let d = self
            .required(destination, &parent, d_key)
            .and_then(|d| self.dn_entry(d, destination_path));
        Some(Pin {
            source: self.located(s?, source_path),
            destination: self.located(d?, destination_path),
        })
    }

    fn merge(&mut self, m: raw::Merge, path: &YamlPath) -> Option<Merge> {
        let policy = match m.policy.unwrap_or(raw::MergePolicy::FillEmpty) {
            raw::MergePolicy::FillEmpty => MergePolicy::FillEmpty,
            raw::MergePolicy::PreferContact => MergePolicy::PreferContact,
            raw::MergePolicy::PreferDestination => MergePolicy::PreferDestination,
        };
        let attributes = match m.attributes {
            Some(list) => self.attr_list(&list, &path.key("attributes"))?,
            None => DEFAULT_MERGE_ATTRIBUTES
                .iter()
                .map(|a| AttrName::new_unchecked(a))
                .collect(),
        };
        Some(Merge { policy, attributes })
    }

    fn distribution_lists(
        &mut self,
        l: raw::DistributionLists,
        path: &YamlPath,
    ) -> Option<DistributionLists> {
        let filter = match l.filter {
            Some(f) => self.filter(&f, &path.key("filter")),
            None => Filter::parse(DEFAULT_GROUP_FILTER).ok(),
        };
        let include = self.dn_list(l.include.as_deref(), &path.key("include"));
        let exclude = self.dn_list(l.exclude.as_deref(), &path.key("exclude"));
        self.included_and_excluded(&include, &exclude, path);
        let container = l
            .container
            .map(|c| self.container(&c, &path.key("container")));
        Some(DistributionLists {
            filter: filter?,
            include: values(include)?,
            exclude: values(exclude)?,
            container: checked(container)?,
        })
    }

    // ---- Leaf checks: each reports its own problem and returns `None` on failure. ----

    fn non_empty(&mut self, value: String, path: &YamlPath) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            let span = self.span(path);
            self.push(
                Problem::new(codes::EMPTY_VALUE, format!("`{path}` is empty"))
                    .label(span, "empty")
                    .help(format!(
                        "give it a value, or leave the key out{}",
                        schema::description(path)
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    )),
            );
            return None;
        }
        Some(trimmed.to_string())
    }

    fn dn(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
        match Dn::parse(&text.0) {
            Ok(dn) => Some(dn),
            Err(e) => {
                let span = self.span(path);
                self.push(
                    Problem::new(
                        codes::INVALID_DN,
                        format!("`{path}` is not a valid DN: {e}"),
                    )
                    .label(span, "not a valid DN")
                    .help(dn_help(&e)),
                );
                None
            }
        }
    }

    /// A DN that must name an entry (the empty DN names none).
    fn dn_entry(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
        let dn = self.dn(text, path)?;
        if dn.is_root() {
            let span = self.span(path);
            self.push(
                Problem::new(codes::EMPTY_VALUE, format!("`{path}` is empty"))
                    .label(span, "expected a DN")
                    .help("write the entry's DN, e.g. `CN=Jane Doe,OU=Sales,O=Acme`"),
            );
            return None;
        }
        Some(dn)
    }

    /// Where objects are created: a DN, and not the root.
    fn container(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
        let dn = self.dn(text, path)?;
        if dn.is_root() {
            let span = self.span(path);
            self.push(
                Problem::new(
                    codes::ROOT_CONTAINER,
                    format!("`{path}` cannot be the root DN"),
                )
                .label(span, "the root DN")
                .help(
                    "name the container (OU) where new objects are created, e.g. \
                     `OU=Migrated,DC=acme,DC=test`",
                ),
            );
            return None;
        }
        Some(dn)
    }

    /// Every DN of an optional list, each checked (`None` for the ones that fail).
    fn dn_list(
        &mut self,
        list: Option<&[raw::DnText]>,
        path: &YamlPath,
    ) -> Vec<Option<Located<Dn>>> {
        list.unwrap_or(&[])
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let item = path.index(i);
                self.dn_entry(text, &item).map(|dn| self.located(dn, &item))
            })
            .collect()
    }

    fn included_and_excluded(
        &mut self,
        include: &[Option<Located<Dn>>],
        exclude: &[Option<Located<Dn>>],
        path: &YamlPath,
    ) {
        for ex in exclude.iter().flatten() {
            if let Some(inc) = include.iter().flatten().find(|i| i.value == ex.value) {
                self.push(
                    Problem::new(
                        codes::INCLUDED_AND_EXCLUDED,
                        format!("`{}` is both included and excluded in `{path}`", ex.value),
                    )
                    .label(range(ex.span), "excluded here")
                    .label(range(inc.span), "included here")
                    .help("keep it in one of the two lists"),
                );
            }
        }
    }

    fn filter(&mut self, text: &raw::FilterText, path: &YamlPath) -> Option<Filter> {
        match Filter::parse(&text.0) {
            Ok(f) => Some(f),
            Err(e) => {
                let whole = self.span(path);
                let at = self
                    .index
                    .get(path)
                    .and_then(|node| offset_in_scalar(self.text, node, &text.0, e.position));
                let problem = Problem::new(
                    codes::INVALID_FILTER,
                    format!("`{path}` is not a valid LDAP filter: {}", e.message),
                )
                .help(FILTER_HELP);
                let problem = match at {
                    Some(offset) => problem.label(self.point_in(offset, &whole), e.message.clone()),
                    None => problem.label(
                        whole,
                        format!("{} (at byte {} of the filter)", e.message, e.position),
                    ),
                };
                self.push(problem);
                None
            }
        }
    }

    /// One character at `offset` inside a value, or an empty span at its end.
    fn point_in(&self, offset: usize, value: &Range<usize>) -> Range<usize> {
        let p = self.point(offset);
        if p.end > value.end { offset..offset } else { p }
    }

    fn attr(&mut self, text: &raw::AttrText, path: &YamlPath) -> Option<AttrName> {
        match AttrName::new(&text.0) {
            Ok(a) => Some(a),
            Err(e) => {
                let span = self.span(path);
                self.push(
                    Problem::new(
                        codes::INVALID_ATTRIBUTE,
                        format!("`{path}` is not a valid attribute name"),
                    )
                    .label(span, e.to_string())
                    .help(ATTR_HELP),
                );
                None
            }
        }
    }

    fn attr_list(&mut self, list: &[raw::AttrText], path: &YamlPath) -> Option<Vec<AttrName>> {
        let checked: Vec<Option<AttrName>> = list
            .iter()
            .enumerate()
            .map(|(i, a)| self.attr(a, &path.index(i)))
            .collect();
        checked.into_iter().collect()
    }

    fn template(&mut self, text: &raw::TemplateText, path: &YamlPath) -> Option<Template> {
        match Template::parse(&text.0) {
            Ok(t) => {
                self.remember_placeholders(&t, &text.0, path);
                Some(t)
            }
            Err(e) => {
                let whole = self.span(path);
                let position = match &e {
                    TemplateError::Unclosed(i) | TemplateError::Stray(i) => Some(*i),
                    TemplateError::Unknown(_) => None,
                };
                let at = position.and_then(|pos| {
                    self.index
                        .get(path)
                        .and_then(|node| offset_in_scalar(self.text, node, &text.0, pos))
                });
                let label = match &e {
                    TemplateError::Unclosed(_) => "this `{` is never closed".to_string(),
                    TemplateError::Stray(_) => "this `}` closes nothing".to_string(),
                    TemplateError::Unknown(name) => format!("`{{{name}}}` is not a placeholder"),
                };
                let help = match &e {
                    TemplateError::Unknown(name) => {
                        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.0).collect();
                        match closest(name, &roles) {
                            Some(r) => format!("did you mean `{{{r}}}`?"),
                            None => format!(
                                "a placeholder is a role ({}) or a source attribute name",
                                roles.join(", ")
                            ),
                        }
                    }
                    _ => "write `{{` and `}}` for literal braces".to_string(),
                };
                let span = at.map_or(whole.clone(), |o| self.point_in(o, &whole));
                self.push(
                    Problem::new(
                        codes::INVALID_TEMPLATE,
                        format!("`{path}` is not a valid template: {e}"),
                    )
                    .label(span, label)
                    .help(help),
                );
                None
            }
        }
    }

    /// Records where each attribute placeholder of a valid template is written.
    fn remember_placeholders(&mut self, t: &Template, text: &str, path: &YamlPath) {
        let whole = self.span(path);
        let mut from = 0;
        for part in &t.parts {
            let TemplatePart::Attr(a) = part else {
                continue;
            };
            let written = format!("{{{a}}}");
            let at = text
                .get(from..)
                .and_then(|rest| rest.find(&written))
                .map(|i| from + i);
            let span = at
                .and_then(|pos| {
                    from = pos + written.len();
                    let node = self.index.get(path)?;
                    offset_in_scalar(self.text, node, text, pos)
                })
                .map_or(whole.clone(), |o| o..o + written.len());
            self.placeholders.push(Placeholder {
                attribute: a.clone(),
                key: path.to_string(),
                span: (span.start, span.len()).into(),
            });
        }
    }

    fn directory(&mut self, d: &raw::Directory, path: &YamlPath) -> Option<DirectorySource> {
        // One entry per backend key that is set; `ldap` joins `ldif` here when it exists.
        let mut backends: Vec<(&str, DirectorySource)> = Vec::new();
        let mut ok = true;
        if let Some(ldif) = &d.ldif {
            let p = path.key("ldif");
            if ldif.trim().is_empty() {
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::EMPTY_VALUE, format!("`{p}` is empty"))
                        .label(span, "expected the path of an LDIF file")
                        .help("relative paths start at the plan file's folder"),
                );
                ok = false;
            } else {
                backends.push(("ldif", DirectorySource::Ldif(self.resolve(ldif))));
            }
        }
        if let Some(l) = &d.ldap {
            match self.ldap(l, &path.key("ldap")) {
                Some(settings) => backends.push(("ldap", DirectorySource::Ldap(settings))),
                None => ok = false,
            }
        }
        if d.allow_file_urls.is_some() && d.ldif.is_none() {
            let p = path.key("allow_file_urls");
            let span = self.index.key_span(&p).unwrap_or_else(|| self.span(&p));
            self.push(
                Problem::new(
                    codes::INVALID_DIRECTORY,
                    format!("`{p}` is only for a directory read from an LDIF file"),
                )
                .label(span, "no `ldif:` beside it")
                .help("write it beside `ldif:`, or remove it"),
            );
            ok = false;
        }
        let span = self.index.key_span(path).unwrap_or_else(|| self.span(path));
        let valid = schema::keys_at(path).unwrap_or_default();
        let keys = valid
            .iter()
            .filter(|k| **k != "allow_file_urls")
            .map(|k| format!("`{k}: ...`"))
            .collect::<Vec<_>>();
        match backends.len() {
            0 if ok => {
                self.push(
                    Problem::new(
                        codes::INVALID_DIRECTORY,
                        format!("`{path}` names no directory backend"),
                    )
                    .label(span, "no backend")
                    .help(format!("add one of {}", join_or(&keys))),
                );
                None
            }
            1 => backends.pop().map(|b| b.1),
            0 => None,
            _ => {
                let names = backends
                    .iter()
                    .map(|b| format!("`{}`", b.0))
                    .collect::<Vec<_>>();
                self.push(
                    Problem::new(
                        codes::INVALID_DIRECTORY,
                        format!("`{path}` names {} backends", names.len()),
                    )
                    .label(span, format!("{} are all given", names.join(" and ")))
                    .help("a directory is read from exactly one backend: keep one"),
                );
                None
            }
        }
    }

    // ---- items ----

    fn items(&mut self, i: raw::Items, path: &YamlPath) -> Option<Items> {
        let mail = i.mail.map(|m| self.mail_items(m, &path.key("mail")));
        let calendars = i
            .calendars
            .map(|c| self.calendar_items(c, &path.key("calendars")));
        let contacts = i
            .contacts
            .map(|c| self.contact_items(c, &path.key("contacts")));
        Some(Items {
            mail: checked(mail)?,
            calendars: checked(calendars)?,
            contacts: checked(contacts)?,
        })
    }

    /// The folder item paths are relative to, made absolute: a path names a mailbox in the
    /// ledger, and must name it the same whatever folder mailplan is started from.
    fn base_dir(&self) -> PathBuf {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
    }

    fn path_template(&mut self, t: &raw::TemplateText, path: &YamlPath) -> Option<PathTemplate> {
        let text = self.non_empty(t.0.clone(), path)?;
        let template = self.template(&raw::TemplateText(text), path)?;
        Some(PathTemplate {
            template,
            base: self.base_dir(),
        })
    }

    fn mail_items(&mut self, m: raw::MailItems, path: &YamlPath) -> Option<MailItems> {
        let source = m
            .source
            .and_then(|s| self.mail_store(&s, &path.key("source")));
        let destination = m
            .destination
            .and_then(|d| self.mail_store(&d, &path.key("destination")));
        let folders = self.folders(m.folders.unwrap_or_default(), &path.key("folders"));
        let since = match &m.since {
            Some(text) => match parse_date(text.trim()) {
                Some(secs) => Some(Some(secs)),
                None => {
                    let p = path.key("since");
                    let span = self.span(&p);
                    self.push(
                        Problem::new(codes::WRONG_TYPE, format!("`{p}` is not a date: `{text}`"))
                            .label(span, "expected YYYY-MM-DD")
                            .help("write the first day whose mail is copied, e.g. `2020-01-31`"),
                    );
                    None
                }
            },
            None => Some(None),
        };
        Some(MailItems {
            source: source?,
            destination: destination?,
            folders: folders?,
            since: since?,
        })
    }

    /// Exactly one backend key of a store-like mapping.
    fn one_backend(&mut self, set: &[&str], path: &YamlPath) -> bool {
        if set.len() == 1 {
            return true;
        }
        let span = self.index.key_span(path).unwrap_or_else(|| self.span(path));
        let valid = schema::keys_at(path).unwrap_or_default();
        let keys = valid
            .iter()
            .map(|k| format!("`{k}: ...`"))
            .collect::<Vec<_>>();
        let problem = if set.is_empty() {
            Problem::new(
                codes::INVALID_DIRECTORY,
                format!("`{path}` names no backend"),
            )
            .label(span, "no backend")
            .help(format!("add one of {}", join_or(&keys)))
        } else {
            Problem::new(
                codes::INVALID_DIRECTORY,
                format!("`{path}` names {} backends", set.len()),
            )
            .label(span, format!("{} are all given", set.join(" and ")))
            .help("exactly one backend: keep one")
        };
        self.push(problem);
        false
    }

    fn mail_store(&mut self, s: &raw::MailStore, path: &YamlPath) -> Option<MailStore> {
        let mut set = Vec::new();
        if s.maildir.is_some() {
            set.push("`maildir`");
        }
        if s.imap.is_some() {
            set.push("`imap`");
        }
        if !self.one_backend(&set, path) {
            return None;
        }
        if let Some(t) = &s.maildir {
            return self
                .path_template(t, &path.key("maildir"))
                .map(MailStore::Maildir);
        }
        let imap = s.imap.as_ref()?;
        self.imap(imap, &path.key("imap")).map(MailStore::Imap)
    }

    fn imap(&mut self, i: &raw::Imap, path: &YamlPath) -> Option<ImapStore> {
        let timeout = self.seconds(i.timeout, &path.key("timeout"), 30);
        let url = i.url.as_ref().and_then(|u| {
            let p = path.key("url");
            let parsed = parse_imap_url(u.trim());
            if parsed.is_none() {
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::WRONG_TYPE,
                        format!("`{p}` is not an IMAP URL: `{u}`"),
                    )
                    .label(span, "expected imaps://host[:port] or imap://host[:port]")
                    .help("e.g. `imaps://mail.acme.test` (port 993) or `imap://127.0.0.1:1143`"),
                );
            }
            parsed
        });
        let user = i
            .user
            .as_ref()
            .and_then(|t| self.template(t, &path.key("user")));
        let auth = match i.auth.unwrap_or(raw::ImapAuth::Master) {
            raw::ImapAuth::Plain => ImapAuth::Plain,
            raw::ImapAuth::Master => ImapAuth::Master,
            raw::ImapAuth::Login => ImapAuth::Login,
        };
        let login = match (&i.login, auth) {
            (Some(l), _) => self.non_empty(l.clone(), &path.key("login")).map(Some),
            (None, ImapAuth::Login) => Some(None),
            (None, _) => {
                let span = self.key_span(path);
                self.push(
                    Problem::new(
                        codes::MISSING_KEY,
                        format!("`{path}` has no `login` for its admin credential"),
                    )
                    .label(span, "no admin login")
                    .help("with `auth: master` or `auth: plain`, `login` names the admin (master) user whose `password` is given"),
                );
                None
            }
        };
        let password = i
            .password
            .as_ref()
            .map(|p| self.secret(p, &path.key("password")));
        let (host, port, tls) = url?;
        let security = match (tls, i.tls) {
            (true, _) => ImapSecurity::Tls,
            (false, Some(raw::ImapTls::None)) => ImapSecurity::None,
            (false, _) => ImapSecurity::StartTls,
        };
        Some(ImapStore {
            host,
            port,
            security,
            user: user?,
            login: login?,
            password: password?,
            auth,
            ca_file: i.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: i.insecure.unwrap_or(false),
            timeout: std::time::Duration::from_secs(timeout?),
        })
    }

    /// The secret at `path` (a `password` key), remembered with where it is written.
    fn secret(&mut self, s: &raw::Secret, path: &YamlPath) -> Secret {
        let (secret, inner) = match s {
            raw::Secret::Env(name) => (Secret::Env(name.clone()), "env"),
            raw::Secret::File(f) => (Secret::File(self.resolve(f)), "file"),
        };
        let span = self
            .index
            .value_span(&path.key(inner))
            .unwrap_or_else(|| self.span(path));
        self.secrets.push(SecretUse {
            secret: secret.clone(),
            key: path.to_string(),
            span: (span.start, span.len()).into(),
        });
        secret
    }

    fn folders(&mut self, f: raw::Folders, path: &YamlPath) -> Option<FolderMapping> {
        let mut map: BTreeMap<String, String> = [
            ("($Inbox)", "INBOX"),
            ("($Sent)", "Sent"),
            ("($Drafts)", "Drafts"),
            ("($Trash)", "Trash"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut ok = true;
        for (from, to) in f.map.unwrap_or_default() {
            if to.trim().is_empty() || to.split('/').any(|l| l.is_empty()) {
                let p = path.key("map").key(&from);
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::EMPTY_VALUE,
                        format!("`{p}` is not a folder name: `{to}`"),
                    )
                    .label(span, "empty folder level")
                    .help("write levels separated by single `/`, e.g. `Archive/2024`"),
                );
                ok = false;
            }
            map.insert(from, to);
        }
        let separator = match f.separator {
            None => Some(None),
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(Some(c)),
                    _ => {
                        let p = path.key("separator");
                        let span = self.span(&p);
                        self.push(
                            Problem::new(
                                codes::WRONG_TYPE,
                                format!("`{p}` must be exactly one character"),
                            )
                            .label(span, "not one character")
                            .help("e.g. `\"\\\\\"` for Notes' `Projects\\2024`"),
                        );
                        None
                    }
                }
            }
        };
        let exclude = f.exclude.unwrap_or_default();
        if !ok {
            return None;
        }
        Some(FolderMapping {
            map,
            separator: separator?,
            exclude,
        })
    }

    fn calendar_items(&mut self, c: raw::CalendarItems, path: &YamlPath) -> Option<CalendarItems> {
        let source = c.source.and_then(|s| {
            let ics = s.ics?;
            self.path_template(&ics, &path.key("source").key("ics"))
        });
        let destination = c.destination.and_then(|d| {
            let at = path.key("destination");
            Some(
                match self.dav_or_folder(d.caldav, d.ics_folder, &at, "caldav", "ics_folder")? {
                    DavOrFolder::Dav(dav) => CalendarDestination::CalDav(dav),
                    DavOrFolder::Folder(t) => CalendarDestination::IcsFolder(t),
                },
            )
        });
        Some(CalendarItems {
            source: source?,
            destination: destination?,
        })
    }

    fn contact_items(&mut self, c: raw::ContactItems, path: &YamlPath) -> Option<ContactItems> {
        let source = c.source.and_then(|s| {
            let csv = s.csv?;
            self.path_template(&csv, &path.key("source").key("csv"))
        });
        let destination = c.destination.and_then(|d| {
            let at = path.key("destination");
            Some(
                match self.dav_or_folder(
                    d.carddav,
                    d.vcard_folder,
                    &at,
                    "carddav",
                    "vcard_folder",
                )? {
                    DavOrFolder::Dav(dav) => ContactDestination::CardDav(dav),
                    DavOrFolder::Folder(t) => ContactDestination::VcardFolder(t),
                },
            )
        });
        Some(ContactItems {
            source: source?,
            destination: destination?,
        })
    }

    /// A calendar or contacts destination: exactly one of a DAV collection (`dav_key`) and a
    /// folder (`folder_key`).
    fn dav_or_folder(
        &mut self,
        dav: Option<raw::Dav>,
        folder: Option<raw::TemplateText>,
        path: &YamlPath,
        dav_key: &str,
        folder_key: &str,
    ) -> Option<DavOrFolder> {
        let mut set = Vec::new();
        if dav.is_some() {
            set.push(format!("`{dav_key}`"));
        }
        if folder.is_some() {
            set.push(format!("`{folder_key}`"));
        }
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        if !self.one_backend(&set, path) {
            return None;
        }
        match (dav, folder) {
            (Some(dav), _) => self.dav(&dav, &path.key(dav_key)).map(DavOrFolder::Dav),
            (None, Some(t)) => self
                .path_template(&t, &path.key(folder_key))
                .map(DavOrFolder::Folder),
            (None, None) => None,
        }
    }

    fn dav(&mut self, d: &raw::Dav, path: &YamlPath) -> Option<DavStore> {
        let timeout = self.seconds(d.timeout, &path.key("timeout"), 30);
        let url = d
            .url
            .as_ref()
            .and_then(|u| self.template(u, &path.key("url")));
        if let Some(u) = &d.url {
            let t = u.0.trim_start();
            if !(t.starts_with("http://") || t.starts_with("https://")) {
                let p = path.key("url");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::WRONG_TYPE, format!("`{p}` is not an http(s) URL"))
                        .label(span, "expected https://…")
                        .help("e.g. `https://dav.acme.test/{primary_smtp}/calendar/`"),
                );
                return None;
            }
        }
        let login = match &d.login {
            Some(l) => self.template(l, &path.key("login")).map(Some),
            None => Some(None),
        };
        let version = match d.vcard_version {
            None | Some(4) => Some(4),
            Some(3) => Some(3),
            Some(v) => {
                let p = path.key("vcard_version");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::UNKNOWN_VALUE, format!("`{p}` is {v}"))
                        .label(span, "not a vCard version")
                        .help("write `4` (the default) or `3`"),
                );
                None
            }
        };
        Some(DavStore {
            url: url?,
            login: login?,
            password: d
                .password
                .as_ref()
                .map(|p| self.secret(p, &path.key("password"))),
            ca_file: d.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: d.insecure.unwrap_or(false),
            timeout: std::time::Duration::from_secs(timeout?),
            vcard_version: version?,
        })
    }

    /// A number of seconds a connection waits (`timeout:`); zero is refused, a missing one is
    /// `default`.
    fn seconds(&mut self, value: Option<u64>, path: &YamlPath, default: u64) -> Option<u64> {
        match value {
            None => Some(default),
            Some(0) => {
                let span = self.span(path);
                self.push(
                    Problem::new(codes::EMPTY_VALUE, format!("`{path}` must be at least 1"))
                        .label(span, "zero")
                        .help(format!("leave it out for the default ({default})")),
                );
                None
            }
            Some(v) => Some(v),
        }
    }

    /// The connection settings of a live LDAP directory; every problem is reported.
    fn ldap(&mut self, l: &raw::Ldap, path: &YamlPath) -> Option<LdapSettings> {
        let url = self.required(l.url.clone(), path, "url").and_then(|u| {
            let p = path.key("url");
            let u = self.non_empty(u, &p)?;
            let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            let host = u.split_once("://").map(|(_, rest)| rest).unwrap_or("");
            if !matches!(scheme.as_deref(), Some("ldap" | "ldaps" | "ldapi"))
                || host.is_empty()
                || host.starts_with('/')
                || host.starts_with(':')
            {
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::INVALID_URL,
                        format!("`{p}` is not an LDAP server URL"),
                    )
                    .label(
                        span,
                        "expected ldap://host[:port], ldaps://host[:port] or ldapi://socket",
                    )
                    .help("write e.g. `ldaps://dc1.example.com` or `ldap://127.0.0.1:389`"),
                );
                return None;
            }
            Some(u)
        });
        // A bind name is a DN, or (Active Directory) a userPrincipalName or DOMAIN\user; only
        // something that looks like a DN is held to DN syntax.
        let bind_dn = match &l.bind_dn {
            None => Some(None),
            Some(b) => {
                let p = path.key("bind_dn");
                match self.non_empty(b.clone(), &p) {
                    None => None,
                    Some(b) if b.contains('=') => {
                        self.dn(&raw::DnText(b.clone()), &p).map(|_| Some(b))
                    }
                    Some(b) if b.contains('@') || b.contains('\\') => Some(Some(b)),
                    Some(_) => {
                        let span = self.span(&p);
                        self.push(
                            Problem::new(
                                codes::INVALID_DN,
                                format!("`{p}` is neither a DN nor a userPrincipalName"),
                            )
                            .label(span, "not a DN")
                            .help(
                                "write the bind user's DN (`CN=svc-mailplan,OU=Service,DC=acme,DC=com`) or, on Active Directory, its userPrincipalName (`svc-mailplan@acme.com`)",
                            ),
                        );
                        None
                    }
                }
            }
        };
        let password = l
            .password
            .as_ref()
            .map(|s| self.secret(s, &path.key("password")));
        if password.is_some() && l.bind_dn.is_none() {
            let p = path.key("password");
            let span = self.key_span(&p);
            self.push(
                Problem::new(
                    codes::MISSING_KEY,
                    format!("`{p}` is given without `{}`", path.key("bind_dn")),
                )
                .label(span, "a password for nobody")
                .help("add `bind_dn:` (who the password belongs to), or remove the password for an anonymous bind"),
            );
        }
        let base = self
            .required(l.base.clone(), path, "base")
            .and_then(|b| self.dn(&b, &path.key("base")));
        let filter = match &l.filter {
            None => Some("(objectClass=*)".to_string()),
            Some(f) => self
                .filter(f, &path.key("filter"))
                .map(|_| f.0.trim().to_string()),
        };
        let scope = match l.scope.unwrap_or(raw::Scope::Sub) {
            raw::Scope::Base => LdapScope::Base,
            raw::Scope::One => LdapScope::One,
            raw::Scope::Sub => LdapScope::Sub,
        };
        let positive = |cx: &mut Self, value: Option<u64>, key: &str, default: u64| {
            let v = value.unwrap_or(default);
            if v == 0 {
                let p = path.key(key);
                let span = cx.span(&p);
                cx.push(
                    Problem::new(codes::EMPTY_VALUE, format!("`{p}` must be at least 1"))
                        .label(span, "zero")
                        .help(format!("leave it out for the default ({default})")),
                );
                return None;
            }
            Some(v)
        };
        let page_size = positive(self, l.page_size.map(u64::from), "page_size", 500);
        let timeout = positive(self, l.timeout, "timeout", 30);
        let ca_file = l.ca_file.as_ref().map(|c| {
            let p = path.key("ca_file");
            self.non_empty(c.clone(), &p).map(|c| self.resolve(&c))
        });
        let starttls = l.starttls.unwrap_or(false);
        if starttls
            && url
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("ldaps:"))
        {
            let p = path.key("starttls");
            let span = self.span(&p);
            self.push(
                Problem::new(
                    codes::INVALID_URL,
                    format!("`{p}` cannot be used with an `ldaps://` URL"),
                )
                .label(span, "the connection is already TLS")
                .help("use `ldap://` with `starttls: true`, or `ldaps://` alone"),
            );
            return None;
        }
        let sasl_external = matches!(l.sasl, Some(raw::SaslMechanism::External));
        if sasl_external && (l.bind_dn.is_some() || l.password.is_some()) {
            let p = path.key("sasl");
            let span = self.span(&p);
            self.push(
                Problem::new(
                    codes::INVALID_DIRECTORY,
                    format!("`{p}` cannot be combined with `bind_dn` or `password`"),
                )
                .label(span, "the connection's own identity is used")
                .help("remove `bind_dn:` and `password:` for a SASL EXTERNAL bind, or remove `sasl:` for a simple bind"),
            );
            return None;
        }
        Some(LdapSettings {
            url: url?,
            bind_dn: bind_dn?,
            password,
            base: base?,
            filter: filter?,
            scope,
            page_size: u32::try_from(page_size?).unwrap_or(u32::MAX),
            timeout: std::time::Duration::from_secs(timeout?),
            starttls,
            ca_file: checked(ca_file)?,
            insecure: l.insecure.unwrap_or(false),
            sasl_external,
        })
    }

    /// Paths in the plan are relative to the plan file's folder.
    fn resolve(&self, written: &str) -> PathBuf {
        let p = Path::new(written);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new("")).join(p)
        }
    }
}

/// An optional value that was checked: absent is fine (`Some(None)`), present and valid is
/// `Some(Some(v))`, present and invalid (already reported) is `None`.
/// Whether a directory's LDIF may name files with `:< file:` URLs.
fn file_urls(d: Option<&raw::Directory>) -> bool {
    d.is_some_and(|d| d.ldif.is_some() && d.allow_file_urls == Some(true))
}

fn checked<T>(value: Option<Option<T>>) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(Some(v)) => Some(Some(v)),
        Some(None) => None,
    }
}

/// The DNs of a checked list, when every one of them is valid.
fn values(list: Vec<Option<Located<Dn>>>) -> Option<Vec<Dn>> {
    list.into_iter().map(|l| l.map(|l| l.value)).collect()
}

/// Converts serde_ignored's path to ours (its `Some`/newtype steps are not in the YAML).
fn yaml_path(p: &serde_ignored::Path<'_>) -> YamlPath {
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
        match p {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut segs = Vec::new();
    walk(p, &mut segs);
    YamlPath::from_segs(segs)
}

/// Splits serde_yaml's message into what went wrong and what follows its location
/// (`..., while parsing a block mapping at line 2 column 1`).
fn split_location(e: &serde_yaml::Error) -> (String, Option<String>) {
    let message = e.to_string();
    let Some(l) = e.location() else {
        return (message, None);
    };
    let marker = format!(" at line {} column {}", l.line(), l.column());
    match message.find(&marker) {
        Some(i) => {
            let rest = message[i + marker.len()..]
                .trim_start_matches(',')
                .trim()
                .to_string();
            (message[..i].to_string(), (!rest.is_empty()).then_some(rest))
        }
        None => (message, None),
    }
}

/// `while scanning a quoted scalar at line 3 column 9` → (`while scanning a quoted scalar`, 3, 9).
fn parse_trailing_location(s: &str) -> Option<(&str, usize, usize)> {
    let (what, at) = s.rsplit_once(" at line ")?;
    let (line, column) = at.split_once(" column ")?;
    Some((what, line.trim().parse().ok()?, column.trim().parse().ok()?))
}

/// The text between `start` and the next `end` after it, when `s` starts with `start`.
fn between<'s>(s: &'s str, start: &str, end: &str) -> Option<&'s str> {
    let rest = s.strip_prefix(start)?;
    rest.find(end).map(|i| &rest[..i])
}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo.
/// Case and `-`/`_` are ignored, since `notes-domain` and `Notes_Domain` are the usual slips.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let w = norm(word);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&w, &norm(c)), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe(path: &YamlPath) -> String {
    if path.is_root() {
        path.to_string()
    } else {
        format!("`{path}`")
    }
}

/// `in `destination`` or `at the top level`.
fn within(path: &YamlPath) -> String {
    if path.is_root() {
        "at the top level".to_string()
    } else {
        format!("in `{path}`")
    }
}

fn value_list(allowed: &[(&str, Option<&str>)]) -> String {
    allowed
        .iter()
        .map(|(v, d)| match d {
            Some(d) => format!("  `{v}`: {d}"),
            None => format!("  `{v}`"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the schema expects at `path`, for people.
fn expected_kind(path: &YamlPath) -> String {
    let allowed = schema::allowed_values(path);
    if !allowed.is_empty() {
        let names: Vec<String> = allowed.iter().map(|a| format!("`{}`", a.0)).collect();
        return format!("one of {}", join_or(&names));
    }
    match schema::kind(path) {
        Some("DN") => return "a DN".into(),
        Some("LDAP filter") => return "an LDAP filter".into(),
        Some("template") => return "a template string".into(),
        Some("attribute name") => return "an attribute name".into(),
        Some("mail domain") => return "a mail domain".into(),
        _ => {}
    }
    match schema::types_at(path).as_slice() {
        ["string"] => "text".into(),
        ["array"] => "a list".into(),
        ["object"] => "a mapping".into(),
        ["integer"] => "a whole number".into(),
        ["boolean"] => "`true` or `false`".into(),
        _ => "something else".into(),
    }
}

/// serde's description of what it found (`string "one"`, `sequence`, `unit value`), for people.
fn found_kind(found: &str) -> String {
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the text {s}");
    }
    if found.starts_with("sequence") {
        return "a list".into();
    }
    if found.starts_with("map") {
        return "a mapping".into();
    }
    if found.starts_with("unit") {
        return "nothing (null)".into();
    }
    for (prefix, what) in [
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
    ] {
        if let Some(v) = found.strip_prefix(prefix) {
            return format!("{what}{}", v.trim_matches('`'));
        }
    }
    found.to_string()
}

/// Checks and lower-cases a mail domain; on failure, (what is wrong, how to fix it).
fn check_domain(written: &str) -> Result<String, (String, String)> {
    let d = written.trim().to_ascii_lowercase();
    let err = |what: &str, help: &str| Err((what.to_string(), help.to_string()));
    if d.is_empty() {
        return err("empty", "write a domain such as `acme.com`");
    }
    if let Some(rest) = d.strip_prefix('@') {
        return Err((
            "starts with `@`".into(),
            format!("write the domain without `@`: `{rest}`"),
        ));
    }
    if d.contains('@') {
        return err(
            "looks like an e-mail address",
            "write only the part after `@`",
        );
    }
    if !d.is_ascii() {
        return err(
            "contains non-ASCII letters",
            "write an internationalised domain in its ASCII (`xn--`) form",
        );
    }
    if d.ends_with('.') {
        return err("ends with `.`", "remove the trailing dot");
    }
    if d.len() > 253 {
        return err("longer than 253 characters", "a DNS name has at most 253");
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return err(
            "has no `.`",
            "a mail domain has at least two labels, e.g. `acme.com`",
        );
    }
    for label in &labels {
        if label.is_empty() {
            return err("has an empty label (`..`)", "remove the extra dot");
        }
        if label.len() > 63 {
            return err(
                "has a label longer than 63 characters",
                "each dot-separated part of a DNS name has at most 63 characters",
            );
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err((
                format!("contains `{c}`"),
                "a DNS label has only letters, digits and `-`".into(),
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return err(
                "has a label that starts or ends with `-`",
                "a DNS label cannot start or end with `-`",
            );
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return err(
            "is an IP address, not a domain",
            "mail domains are names, e.g. `acme.com`",
        );
    }
    Ok(d)
}

fn dn_help(e: &DnError) -> String {
    match e {
        DnError::MissingEquals { .. } => {
            "each comma-separated part of a DN is `type=value`; a comma inside a value is written \
             `\\,` (e.g. `CN=Doe\\, Jane,O=Acme`)"
                .into()
        }
        DnError::BadType { .. } => {
            "an attribute type is letters, digits and `-` (e.g. `CN`, `OU`, `DC`)".into()
        }
        DnError::EmptyRdn { .. } => "remove the doubled or trailing comma".into(),
        DnError::BadEscape { .. } => {
            "a backslash escapes one of `,+\"\\<>;=# ` or starts two hex digits (`\\2C`); in a \
             double-quoted YAML string write it as `\\\\`"
                .into()
        }
        DnError::BadUtf8 { .. } => "hex escapes must spell UTF-8 bytes".into(),
        DnError::UnterminatedQuote { .. } => "close the quoted value with `\"`".into(),
    }
}

const ATTR_HELP: &str = "an attribute name is letters, digits and `-` (e.g. `telephoneNumber`), \
                         optionally followed by `;options`";

const FILTER_HELP: &str = "filters follow RFC 4515, e.g. `(&(objectClass=person)(mail=*))`: every \
                           `(` needs its `)`, and `(`, `)`, `*` and `\\` inside a value are \
                           written `\\28`, `\\29`, `\\2a` and `\\5c`";

const SKELETON_HELP: &str = concat!(
    "a plan file needs at least:\n",
    "  version: 1\n",
    "  source:\n",
    "    profile: domino\n",
    "    directory: { ldif: source.ldif }\n",
    "  destination:\n",
    "    flavor: active-directory\n",
    "    directory: { ldif: destination.ldif }\n",
    "    container: \"OU=Migrated,DC=example,DC=com\"",
);

/// `YYYY-MM-DD` → seconds since 1970-01-01T00:00:00Z.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    crate::items::days_from_civil(y, m, d).map(|days| days * 86_400)
}

/// `imaps://host[:port]` or `imap://host[:port]` → (host, port, implicit TLS).
fn parse_imap_url(url: &str) -> Option<(String, u16, bool)> {
    let (rest, tls, default) = if let Some(r) = url.strip_prefix("imaps://") {
        (r, true, 993)
    } else if let Some(r) = url.strip_prefix("imap://") {
        (r, false, 143)
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, default),
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the LDAP connection settings will hold a password, once they exist.
    #[derive(Debug, Deserialize)]
    struct Connection {
        #[allow(dead_code)]
        password: Option<raw::Secret>,
    }

    #[test]
    fn one_pass_reads_the_sections_and_unknown_keys_as_section_by_section() {
        let valid = include_str!("../../tests/fixtures/spec/valid.yaml");
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
