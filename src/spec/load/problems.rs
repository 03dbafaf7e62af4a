//! The wording of the problems the passes find: syntax errors, unknown and missing keys, values
//! of the wrong type, and the small text helpers they share (closest word, `within`, kinds).
//!
//! It decides how a problem reads and where it points; it must not decide whether something is
//! a problem (the passes do) nor read the file again.

use super::*;

/// Splits serde_yaml's message into what went wrong and what follows its location
/// (`..., while parsing a block mapping at line 2 column 1`).
pub(super) fn split_location(e: &serde_yaml::Error) -> (String, Option<String>) {
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
pub(super) fn parse_trailing_location(s: &str) -> Option<(&str, usize, usize)> {
    let (what, at) = s.rsplit_once(" at line ")?;
    let (line, column) = at.split_once(" column ")?;
    Some((what, line.trim().parse().ok()?, column.trim().parse().ok()?))
}

/// The text between `start` and the next `end` after it, when `s` starts with `start`.
pub(super) fn between<'s>(s: &'s str, start: &str, end: &str) -> Option<&'s str> {
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

pub(super) fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

pub(super) fn describe(path: &YamlPath) -> String {
    if path.is_root() {
        path.to_string()
    } else {
        format!("`{path}`")
    }
}

/// `in `destination`` or `at the top level`.
pub(super) fn within(path: &YamlPath) -> String {
    if path.is_root() {
        "at the top level".to_string()
    } else {
        format!("in `{path}`")
    }
}

pub(super) fn value_list(allowed: &[(&str, Option<&str>)]) -> String {
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
pub(super) fn expected_kind(path: &YamlPath) -> String {
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
pub(super) fn found_kind(found: &str) -> String {
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

pub(super) const SKELETON_HELP: &str = concat!(
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

impl Checker<'_> {
    pub(super) fn unknown_key(&self, path: &YamlPath) -> Problem {
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

    /// `shares:` or `files:` (at the top, under `items` or under `destination`): not an unknown
    /// key but something no plan can ask for, refused with the reason Carbonio's migration
    /// procedure gives.
    pub(super) fn not_migratable(&self, path: &YamlPath) -> Option<Problem> {
        let key = path.last_key()?;
        let what = match key {
            "shares" => "shares",
            "files" => "files",
            _ => return None,
        };
        let parent = path.parent();
        let under = parent.segs().is_empty()
            || (parent.segs().len() == 1
                && matches!(parent.last_key(), Some("items" | "destination")));
        if !under {
            return None;
        }
        let span = self.key_span(path);
        Some(
            Problem::new(
                codes::NOT_MIGRATABLE,
                format!(
                    "`{path}`: {what} cannot be migrated from this source: Carbonio's migration procedure moves {what} only from a Zextras-compatible system (Zextras Suite, Carbonio); from a generic e-mail system based on AD or OpenLDAP it copies accounts, distribution lists, mail, calendars and contacts, and nothing else"
                ),
            )
            .label(span, format!("{what} cannot be migrated"))
            .help(format!(
                "remove `{path}`; after the migration, {}",
                if what == "shares" {
                    "let each person share their folders again in Carbonio"
                } else {
                    "let each person upload their files to Carbonio Files"
                }
            )),
        )
    }

    pub(super) fn missing_key(&self, parent: &YamlPath, key: &str) -> Problem {
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
    pub(super) fn syntax_problem(&self, e: &serde_yaml::Error) -> Problem {
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

    /// A type error (or other shape error) from deserializing a section, and the path of the
    /// value it is about. `text` is what was deserialized (possibly with entries masked out; its
    /// offsets are the file's).
    pub(super) fn shape_problem(
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

    pub(super) fn shape_problem_at(
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

    pub(super) fn unknown_value(
        &self,
        path: &YamlPath,
        value: &str,
        span: Option<Range<usize>>,
    ) -> Problem {
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

    pub(super) fn wrong_type(
        &self,
        path: &YamlPath,
        found: &str,
        span: Option<Range<usize>>,
    ) -> Problem {
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
}
