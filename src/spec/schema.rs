//! The plan file's JSON Schema, generated from the raw types, and lookups into it.
//!
//! The schema is written to `schemas/plan.schema.json` for editors, and the diagnostics read it
//! too: which keys are valid at a path, which values an enum allows, what a key means. Deriving
//! those from the schema (instead of a hand-written table) means the help text cannot drift from
//! what the parser accepts. This module must not do I/O (the test that keeps the committed file in
//! step is the one exception).

use std::sync::OnceLock;

use serde_json::Value;

use super::raw;
use super::span::{Seg, YamlPath};

/// The plan file's JSON Schema (draft 2020-12), pretty-printed, with a trailing newline. The output
/// is deterministic: it depends only on the raw types.
pub fn json_schema() -> String {
    let mut out = serde_json::to_string_pretty(schema()).unwrap_or_default();
    out.push('\n');
    out
}

/// The schema as a JSON value, built once.
pub(crate) fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| reorder(schemars::schema_for!(raw::Plan).to_value()))
}

/// Puts what a person reads first (`$schema`, `title`, `description`) at the top of the file and
/// the definitions at the bottom; schemars appends them in whatever order it set them.
fn reorder(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    let mut out = serde_json::Map::new();
    for key in ["$schema", "title", "description"] {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_string(), v);
        }
    }
    let defs = map.remove("$defs");
    out.extend(map);
    if let Some(defs) = defs {
        out.insert("$defs".to_string(), defs);
    }
    Value::Object(out)
}

/// Follows `$ref`s and `anyOf`/`oneOf`/`allOf` to the concrete alternatives of a schema node,
/// leaving out `null` (every optional key also accepts `null`).
fn alternatives(node: &'static Value) -> Vec<&'static Value> {
    fn walk(node: &'static Value, depth: usize, out: &mut Vec<&'static Value>) {
        if depth > 16 {
            return;
        }
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            if let Some(def) = resolve_ref(target) {
                walk(def, depth + 1, out);
            }
            return;
        }
        let mut combined = false;
        for word in ["anyOf", "oneOf", "allOf"] {
            if let Some(list) = node.get(word).and_then(Value::as_array) {
                combined = true;
                for alt in list {
                    walk(alt, depth + 1, out);
                }
            }
        }
        let only_null = node.get("type").and_then(Value::as_str) == Some("null");
        // A node that only combines others (an enum's `oneOf` of constants is kept whole, see
        // `allowed_values`) contributes its alternatives, not itself.
        if (!combined || node.get("type").is_some() || node.get("properties").is_some())
            && !only_null
        {
            out.push(node);
        }
    }
    let mut out = Vec::new();
    walk(node, 0, &mut out);
    out
}

fn resolve_ref(target: &str) -> Option<&'static Value> {
    let name = target.strip_prefix("#/$defs/")?;
    schema().get("$defs")?.get(name)
}

/// The schema of the value at `path`, as written at its property (so its description is the
/// key's own), or `None` when the path is not part of the plan file's shape.
pub(crate) fn lookup(path: &YamlPath) -> Option<&'static Value> {
    let mut node = schema();
    for seg in path.segs() {
        node = alternatives(node).into_iter().find_map(|alt| match seg {
            Seg::Key(k) => alt
                .get("properties")
                .and_then(|p| p.get(k.as_str()))
                .or_else(|| alt.get("additionalProperties").filter(|a| a.is_object())),
            Seg::Index(_) => alt.get("items"),
        })?;
    }
    Some(node)
}

/// The keys a mapping at `path` may have, in schema order; `None` when the path is not a mapping
/// with fixed keys (a free-form map such as `destination.mapping`, or not in the schema).
pub(crate) fn keys_at(path: &YamlPath) -> Option<Vec<&'static str>> {
    let node = lookup(path)?;
    let mut keys = Vec::new();
    let mut any = false;
    for alt in alternatives(node) {
        if let Some(props) = alt.get("properties").and_then(Value::as_object) {
            any = true;
            keys.extend(props.keys().map(String::as_str));
        } else if alt
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            return None;
        }
    }
    keys.dedup();
    any.then_some(keys)
}

/// The keys a mapping at `path` must have: those every alternative requires (in a `oneOf` of
/// `{ env }` and `{ file }`, neither key is required on its own).
pub(crate) fn required_at(path: &YamlPath) -> Vec<&'static str> {
    let lists: Vec<Vec<&'static str>> = lookup(path)
        .map(alternatives)
        .unwrap_or_default()
        .into_iter()
        .filter(|alt| alt.get("properties").is_some())
        .map(|alt| {
            alt.get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        })
        .collect();
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|k| rest.iter().all(|l| l.contains(k)))
        .copied()
        .collect()
}

/// The values an enum at `path` allows, each with its description.
pub(crate) fn allowed_values(path: &YamlPath) -> Vec<(&'static str, Option<&'static str>)> {
    let Some(node) = lookup(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for alt in alternatives(node) {
        if let Some(c) = alt.get("const").and_then(Value::as_str) {
            out.push((c, alt.get("description").and_then(Value::as_str)));
        }
        if let Some(list) = alt.get("enum").and_then(Value::as_array) {
            out.extend(list.iter().filter_map(Value::as_str).map(|v| (v, None)));
        }
    }
    out
}

/// What the key at `path` is for (its doc comment).
pub(crate) fn description(path: &YamlPath) -> Option<&'static str> {
    let node = lookup(path)?;
    node.get("description").and_then(Value::as_str).or_else(|| {
        alternatives(node)
            .into_iter()
            .find_map(|alt| alt.get("description").and_then(Value::as_str))
    })
}

/// The kind of text the value at `path` is (`DN`, `LDAP filter`, `template`, ...): the `title`
/// of its schema.
pub(crate) fn kind(path: &YamlPath) -> Option<&'static str> {
    lookup(path)
        .map(alternatives)
        .unwrap_or_default()
        .into_iter()
        .find_map(|alt| alt.get("title").and_then(Value::as_str))
}

/// The JSON types the value at `path` may have (`string`, `array`, `object`, `integer`, ...),
/// without `null`.
pub(crate) fn types_at(path: &YamlPath) -> Vec<&'static str> {
    let mut out = Vec::new();
    for alt in lookup(path).map(alternatives).unwrap_or_default() {
        match alt.get("type") {
            Some(Value::String(t)) => out.push(t.as_str()),
            Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out.retain(|t| *t != "null");
    out.dedup();
    out
}

/// Every mapping (reached through keys only, not lists) where `key` is a valid key: used to say
/// "`container` belongs in `destination`" when a key is written at the wrong level.
pub(crate) fn paths_with_key(key: &str) -> Vec<YamlPath> {
    mappings()
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Every mapping with fixed keys in the plan file's shape (to six levels), with its keys, in
/// the order a walk from the top finds them; worked out once. A plan file with thousands of
/// unknown keys asks where each one belongs.
fn mappings() -> &'static [(YamlPath, Vec<&'static str>)] {
    fn walk(path: YamlPath, out: &mut Vec<(YamlPath, Vec<&'static str>)>) {
        if path.segs().len() > 6 {
            return;
        }
        let Some(keys) = keys_at(&path) else {
            return;
        };
        out.push((path.clone(), keys.clone()));
        for k in keys {
            walk(path.key(k), out);
        }
    }
    static MAPPINGS: OnceLock<Vec<(YamlPath, Vec<&'static str>)>> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        let mut out = Vec::new();
        walk(YamlPath::root(), &mut out);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> YamlPath {
        s.split('.').fold(YamlPath::root(), |p, k| p.key(k))
    }

    #[test]
    fn schema_file_is_up_to_date() {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json");
        let generated = json_schema();
        if std::env::var("MAILPLAN_UPDATE_SCHEMAS").as_deref() == Ok("1") {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).expect("create schemas/");
            }
            std::fs::write(&file, &generated).expect("write schemas/plan.schema.json");
            return;
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            committed == generated,
            "schemas/plan.schema.json is out of date: rerun the tests with \
             MAILPLAN_UPDATE_SCHEMAS=1 (`MAILPLAN_UPDATE_SCHEMAS=1 cargo test schema_file`) and \
             commit the file"
        );
    }

    #[test]
    fn generation_is_deterministic() {
        let again =
            serde_json::to_string_pretty(&reorder(schemars::schema_for!(raw::Plan).to_value()))
                .expect("serialize schema")
                + "\n";
        assert_eq!(json_schema(), again);
        assert!(json_schema().ends_with("}\n"));
    }

    /// The schema says what the parser accepts: plan files that parse validate, and the mistakes
    /// the parser reports (unknown keys, bad enum values, a wrong version, two backends) do not.
    #[test]
    fn plan_files_validate_against_the_schema() {
        let schema: Value = serde_json::from_str(&json_schema()).expect("schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("schema is valid");
        let json = |yaml: &str| -> Value { serde_yaml::from_str(yaml).expect("test YAML") };
        let plan = "version: 1\nsource:\n  profile: domino\n  directory: { ldif: s.ldif }\n  \
                    include: [\"CN=a,O=b\"]\ndestination:\n  flavor: active-directory\n  \
                    directory: { ldif: d.ldif }\n  container: \"OU=x,DC=y\"\n  domains: [Acme.com]\n  \
                    mapping:\n    title: \"{title}\"\n    info: null\nmatching:\n  mode: batch\n  \
                    ignore:\n    - source: \"CN=a,O=b\"\nmerge:\n  policy: fill-empty\n\
                    distribution_lists: {}\n";
        let errors: Vec<String> = validator
            .iter_errors(&json(plan))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        for (from, to) in [
            ("container:", "contaner:"),
            ("mode: batch", "mode: sometimes"),
            ("version: 1", "version: 2"),
            ("{ ldif: s.ldif }", "{ ldif: s.ldif, ldap: x }"),
            ("{ ldif: s.ldif }", "{}"),
            ("    - source: \"CN=a,O=b\"", "    - {}"),
            ("  flavor: active-directory\n", ""),
        ] {
            assert!(!validator.is_valid(&json(&plan.replace(from, to))), "{to}");
        }
    }

    #[test]
    fn knows_the_keys_at_each_path() {
        // `Checker::run` in load.rs reads each section by name: a new section must be read there
        // too, or it would be accepted and ignored.
        assert_eq!(
            keys_at(&YamlPath::root()).unwrap(),
            [
                "version",
                "source",
                "destination",
                "matching",
                "merge",
                "distribution_lists",
                "items",
                "safety",
                "state"
            ]
        );
        let dest = keys_at(&p("destination")).unwrap();
        assert!(dest.contains(&"container") && dest.contains(&"classify"));
        assert_eq!(
            keys_at(&p("matching.confirmed").index(3)).unwrap(),
            ["source", "destination"]
        );
        assert_eq!(keys_at(&p("destination.mapping")), None);
        assert_eq!(keys_at(&p("source.profile")), None);
        assert_eq!(keys_at(&p("no.such")), None);
        // `container` is required by `active-directory` and `ldap` only, which the checker
        // says (at the flavor) rather than the schema.
        assert_eq!(required_at(&p("destination")), ["flavor", "directory"]);
    }

    #[test]
    fn knows_enum_values_and_descriptions() {
        let modes: Vec<_> = allowed_values(&p("matching.mode"))
            .iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(modes, ["batch", "interactive"]);
        assert_eq!(allowed_values(&p("source.profile")).len(), 3);
        assert!(
            description(&p("destination.container"))
                .unwrap()
                .starts_with("The container")
        );
        assert_eq!(kind(&p("destination.container")), Some("DN"));
        assert_eq!(kind(&p("source.base")), Some("DN"));
        assert_eq!(kind(&p("destination.mapping.title")), Some("template"));
        assert_eq!(types_at(&p("source.include")), ["array"]);
        assert_eq!(types_at(&p("version")), ["integer"]);
        assert_eq!(paths_with_key("container").len(), 2);
    }
}
