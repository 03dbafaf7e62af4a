//! Leaf checks shared by every section: DNs, filters, attribute names, templates, non-empty
//! strings and durations. Each reports its own problem at its value and returns `None` on
//! failure.
//!
//! Checks here know nothing of the section they are called from; a rule that ties two keys
//! together belongs to that section's file.

use super::*;

pub(super) fn dn_help(e: &DnError) -> String {
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

pub(super) const ATTR_HELP: &str = "an attribute name is letters, digits and `-` (e.g. `telephoneNumber`), \
                         optionally followed by `;options`";

pub(super) const FILTER_HELP: &str = "filters follow RFC 4515, e.g. `(&(objectClass=person)(mail=*))`: every \
                           `(` needs its `)`, and `(`, `)`, `*` and `\\` inside a value are \
                           written `\\28`, `\\29`, `\\2a` and `\\5c`";

impl Checker<'_> {
    pub(super) fn non_empty(&mut self, value: String, path: &YamlPath) -> Option<String> {
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

    pub(super) fn dn(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
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
    pub(super) fn dn_entry(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
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
    pub(super) fn container(&mut self, text: &raw::DnText, path: &YamlPath) -> Option<Dn> {
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
    pub(super) fn dn_list(
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

    pub(super) fn included_and_excluded(
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

    pub(super) fn filter(&mut self, text: &raw::FilterText, path: &YamlPath) -> Option<Filter> {
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
    pub(super) fn point_in(&self, offset: usize, value: &Range<usize>) -> Range<usize> {
        let p = self.point(offset);
        if p.end > value.end { offset..offset } else { p }
    }

    pub(super) fn attr(&mut self, text: &raw::AttrText, path: &YamlPath) -> Option<AttrName> {
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

    pub(super) fn attr_list(
        &mut self,
        list: &[raw::AttrText],
        path: &YamlPath,
    ) -> Option<Vec<AttrName>> {
        let checked: Vec<Option<AttrName>> = list
            .iter()
            .enumerate()
            .map(|(i, a)| self.attr(a, &path.index(i)))
            .collect();
        checked.into_iter().collect()
    }

    pub(super) fn template(
        &mut self,
        text: &raw::TemplateText,
        path: &YamlPath,
    ) -> Option<Template> {
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
    pub(super) fn remember_placeholders(&mut self, t: &Template, text: &str, path: &YamlPath) {
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

    /// A number of seconds a connection waits (`timeout:`); zero is refused, a missing one is
    /// `default`.
    pub(super) fn seconds(
        &mut self,
        value: Option<u64>,
        path: &YamlPath,
        default: u64,
    ) -> Option<u64> {
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
}
