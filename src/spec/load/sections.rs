//! Pass 2, the shape of the plan file: its top-level sections read through serde, in one pass
//! when every value has the right type, else one section at a time with each wrong value masked,
//! and the keys serde went over collected as unknown keys.
//!
//! This is the only place that deserializes sections; it judges shapes, never meanings (those
//! are the section checkers'), and it reports through the problem wording in `problems`.

use super::*;

/// Which top-level key a pass reads; the others are skipped.
pub(super) struct Pick<T> {
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
pub(super) fn first<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
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
pub(super) fn read_sections(text: &str) -> Option<(Sections, Vec<YamlPath>)> {
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
pub(super) struct Sections {
    pub(super) version: Option<u32>,
    pub(super) source: Option<raw::Source>,
    pub(super) destination: Option<raw::Destination>,
    pub(super) matching: Option<raw::Matching>,
    pub(super) merge: Option<raw::Merge>,
    pub(super) distribution_lists: Option<raw::DistributionLists>,
    pub(super) items: Option<raw::Items>,
    pub(super) safety: Option<raw::Safety>,
    pub(super) state: Option<raw::State>,
}

pub(super) struct SectionsVisitor;

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
        let (mut safety, mut state) = (None, None);
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            match key.as_str() {
                Some("version") => first(&mut map, &mut version)?,
                Some("source") => first(&mut map, &mut source)?,
                Some("destination") => first(&mut map, &mut destination)?,
                Some("matching") => first(&mut map, &mut matching)?,
                Some("merge") => first(&mut map, &mut merge)?,
                Some("distribution_lists") => first(&mut map, &mut lists)?,
                Some("items") => first(&mut map, &mut items)?,
                Some("safety") => first(&mut map, &mut safety)?,
                Some("state") => first(&mut map, &mut state)?,
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
            safety: safety.flatten(),
            state: state.flatten(),
        }))
    }
}

/// Reads a whole document, going into every mapping and sequence, so serde_yaml's recursion
/// limit applies (`IgnoredAny` skips nested values without it).
pub(super) struct Nested;

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor)
    }
}

pub(super) struct NestedVisitor;

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
pub(super) enum Shape {
    Null,
    Mapping,
    Other,
}

pub(super) struct ShapeVisitor;

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

/// Converts serde_ignored's path to ours (its `Some`/newtype steps are not in the YAML).
pub(super) fn yaml_path(p: &serde_ignored::Path<'_>) -> YamlPath {
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

impl Checker<'_> {
    /// Deserializes one top-level section on its own. `Ok(None)`: the key is absent.
    ///
    /// serde stops at the first wrong value, so each wrong value is reported and then masked out
    /// of the text (its `key: value` overwritten with spaces, which keeps every offset and line of
    /// the rest), and the section is read again. The result holds everything that was right, so
    /// its other values still get their checks; a masked key reads as absent, and the problem
    /// already reported keeps the plan from being accepted.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
    ) -> Result<Option<T>, Failed> {
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
    pub(super) fn all_sections(&mut self) -> Option<Sections> {
        read_sections(self.text).map(|read| self.take_sections(read))
    }

    /// The sections [`read_sections`] read, with the keys it passed over recorded as unknown
    /// where they are no section.
    pub(super) fn take_sections(
        &mut self,
        (sections, ignored): (Sections, Vec<YamlPath>),
    ) -> Sections {
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
    pub(super) fn mask(&self, text: &mut String, entry: &YamlPath) -> bool {
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
    pub(super) fn top_level_unknown_keys(&mut self) {
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
    pub(super) fn schema_unknown_keys(&mut self) {
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
}
