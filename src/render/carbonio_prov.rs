//! A Carbonio plan's directory actions as a `carbonio prov -f` batch file, for administrators
//! who run it on the server themselves: one command per line, in dependency order, every value
//! quoted as the batch reader splits its lines.
//!
//! `carbonio prov` reads a batch file as UTF-8, line by line (a line ending in `\` continues on
//! the next), and splits each line into words: whitespace separates words, `"…"` and `'…'` hold
//! a word with spaces, and a backslash escapes the next character (`\\`, `\"`, `\n` for a line
//! break, `\t`, `\r`). It has no comment syntax: a line starting with `#` is answered with
//! "Unknown command" and skipped, which changes nothing and is not counted as an error. Its exit
//! status says whether a command failed only when the batch ends with `exit`, so every batch does.
//! The
//! file's `#` lines say what the batch leaves to others (item imports, persons not migrated) and
//! that accounts are created without a password, so nothing is left out silently.
//!
//! It renders only: it never plans, reads nothing but the plan, and returns text; a plan made for
//! another destination flavor is refused, never translated.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::directory::{AttrName, Dn, Value, ValueSet};
use crate::plan::graph::{ActionGraph, GraphError};
use crate::plan::{Action, ActionKind, Change, Plan};

/// Why a plan cannot be written as a `carbonio prov` batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvError {
    #[error(
        "the plan is not for a Carbonio destination (its action `{action}` is a `{kind}`), so it has no `carbonio prov` form"
    )]
    OtherFlavor { action: String, kind: &'static str },
    #[error(
        "the plan's destination flavor is `{0}`, not `carbonio`, so it has no `carbonio prov` form"
    )]
    Flavor(String),
    #[error(
        "action `{action}` names `{dn}`, which is not where Carbonio keeps an account or list (uid=NAME,ou=people,dc=…), so its address cannot be told"
    )]
    Unnamed { action: String, dn: String },
    #[error("the plan's actions do not form a valid graph: {0}")]
    Graph(#[from] GraphError),
}

/// The object classes `createAccount` gives an account by itself.
const ACCOUNT_CLASSES: &[&str] = &["inetOrgPerson", "zimbraAccount", "amavisAccount"];
/// The object classes `createDistributionList` gives a list by itself.
const LIST_CLASSES: &[&str] = &["zimbraDistributionList", "zimbraMailRecipient"];

/// One word of a batch line, quoted so that `carbonio prov` reads it back as exactly `value`.
/// Plain words (letters, digits and `@._+=:,/-`) are written as they are; anything else, and the
/// empty word, in double quotes with `\`, `"`, line breaks, carriage returns and tabs escaped.
/// A quoted word ends in `"`, so no line ends in the `\` that would join it to the next.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._+=:,/-".contains(c));
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `#` line: control characters shown escaped, so the comment stays on one line, and never
/// ending in `\` (which would join the next command to the comment).
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    if !text.is_empty() {
        line.push(' ');
    }
    for c in text.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    if line.ends_with('\\') {
        line.push('.');
    }
    out.push_str(&line);
    out.push('\n');
}

/// `john@acme.com` for `uid=john,ou=people,dc=acme,dc=com`, where Carbonio keeps accounts,
/// aliases and lists.
fn address_of_dn(dn: &Dn) -> Option<String> {
    let rdns = dn.rdns();
    let (leaf, rest) = rdns.split_first()?;
    let (people, dcs) = rest.split_first()?;
    if leaf.0.len() != 1 || people.0.len() != 1 || dcs.is_empty() {
        return None;
    }
    let local = leaf.value_of("uid")?;
    if !people.value_of("ou")?.eq_ignore_ascii_case("people") {
        return None;
    }
    let labels: Option<Vec<&str>> = dcs
        .iter()
        .map(|r| (r.0.len() == 1).then(|| r.value_of("dc")).flatten())
        .collect();
    let labels = labels?;
    if local.is_empty() || labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(format!("{local}@{}", labels.join(".")))
}

fn texts(values: &ValueSet) -> Vec<&str> {
    values.iter().filter_map(Value::as_str).collect()
}

/// What the batch leaves out, to be said at its top.
#[derive(Default)]
struct Notes {
    /// Actions that are not directory commands, by kind: (id, what it copies).
    imports: BTreeMap<&'static str, Vec<String>>,
    /// Values that cannot be written on a command line.
    binary: Vec<String>,
    /// Accounts created without a password.
    passwordless: Vec<String>,
    /// Of those, the ones that must change it at first login.
    must_change: usize,
}

struct Batch<'p> {
    /// Addresses of the accounts and lists the plan creates, by DN.
    names: BTreeMap<&'p Dn, String>,
    lines: Vec<String>,
    notes: Notes,
}

impl<'p> Batch<'p> {
    fn name(&self, action: &Action, dn: &Dn) -> Result<String, ProvError> {
        self.names
            .get(dn)
            .cloned()
            .or_else(|| address_of_dn(dn))
            .ok_or_else(|| ProvError::Unnamed {
                action: action.id.clone(),
                dn: dn.to_string(),
            })
    }

    /// `attr value` pairs for a new object, leaving out what the create command derives from
    /// the name (when the plan's values are exactly those).
    fn create_attrs(
        &mut self,
        action: &Action,
        name: &str,
        classes: &[&str],
        words: &mut Vec<String>,
    ) {
        let local = name.rsplit_once('@').map_or(name, |(l, _)| l);
        for c in &action.changes {
            let values = texts(&c.after);
            let derived = match c.attribute.as_str() {
                a if a.eq_ignore_ascii_case("objectClass") => values
                    .iter()
                    .all(|v| classes.iter().any(|k| k.eq_ignore_ascii_case(v))),
                a if a.eq_ignore_ascii_case("uid") => values == [local],
                // A list's own address is also its first zimbraMailAlias.
                a if a.eq_ignore_ascii_case("mail")
                    || a.eq_ignore_ascii_case("zimbraMailDeliveryAddress")
                    || a.eq_ignore_ascii_case("zimbraMailAlias") =>
                {
                    values.len() == 1 && values[0].eq_ignore_ascii_case(name)
                }
                _ => false,
            };
            if derived {
                continue;
            }
            self.binary_values(action, &c.attribute, &c.after);
            for v in values {
                words.push(quote(c.attribute.as_str()));
                words.push(quote(v));
            }
        }
    }

    fn binary_values(&mut self, action: &Action, attr: &AttrName, values: &ValueSet) {
        for v in values.iter().filter(|v| v.as_str().is_none()) {
            self.notes.binary.push(format!(
                "{} of {} ({} bytes, not text): set it with a file, `modifyAccount NAME {} FILE`",
                attr,
                action.id,
                v.as_bytes().len(),
                attr
            ));
        }
    }

    /// `attr value` words for `modifyAccount`: a plain `attr value` replaces what the attribute
    /// holds, which is what the plan asks when it held nothing or one value becomes another;
    /// otherwise each value is added (`+attr`) or removed (`-attr`), and an attribute emptied
    /// is set to `""`, which removes it.
    fn modify_words(&mut self, action: &Action, c: &Change, words: &mut Vec<String>) {
        self.binary_values(action, &c.attribute, &c.after);
        let attr = c.attribute.as_str();
        let before = texts(&c.before);
        let after = texts(&c.after);
        if after.is_empty() {
            if !before.is_empty() {
                words.extend([quote(attr), quote("")]);
            }
        } else if before.is_empty() || (before.len() == 1 && after.len() == 1) {
            for v in after {
                words.extend([quote(attr), quote(v)]);
            }
        } else {
            for v in c.removed().filter_map(Value::as_str) {
                words.extend([quote(&format!("-{attr}")), quote(v)]);
            }
            for v in c.added().filter_map(Value::as_str) {
                words.extend([quote(&format!("+{attr}")), quote(v)]);
            }
        }
    }

    fn push(&mut self, words: Vec<String>) {
        self.lines.push(words.join(" "));
    }

    fn action(&mut self, a: &'p Action) -> Result<(), ProvError> {
        match a.kind {
            ActionKind::CreateAccount => {
                let name = self.name(a, &a.target)?;
                let mut words = vec!["createAccount".to_string(), quote(&name), quote("")];
                self.create_attrs(a, &name, ACCOUNT_CLASSES, &mut words);
                self.notes.passwordless.push(name);
                if a.changes.iter().any(|c| {
                    c.attribute.as_str() == "zimbraPasswordMustChange"
                        && texts(&c.after) == ["TRUE"]
                }) {
                    self.notes.must_change += 1;
                }
                self.push(words);
            }
            ActionKind::CreateDistributionList => {
                let name = self.name(a, &a.target)?;
                let mut words = vec!["createDistributionList".to_string(), quote(&name)];
                self.create_attrs(a, &name, LIST_CLASSES, &mut words);
                self.push(words);
            }
            ActionKind::AddAccountAlias => {
                for c in &a.changes {
                    let account = self.name(a, c.object.as_ref().unwrap_or(&a.target))?;
                    for v in c.removed().filter_map(Value::as_str) {
                        self.push(vec!["removeAccountAlias".into(), quote(&account), quote(v)]);
                    }
                    for v in c.added().filter_map(Value::as_str) {
                        self.push(vec!["addAccountAlias".into(), quote(&account), quote(v)]);
                    }
                }
            }
            ActionKind::ModifyAccount => {
                // One command per object changed, in the order the plan first names it.
                let mut objects: Vec<&Dn> = Vec::new();
                for c in &a.changes {
                    let o = c.object.as_ref().unwrap_or(&a.target);
                    if !objects.contains(&o) {
                        objects.push(o);
                    }
                }
                for o in objects {
                    let mut words = vec!["modifyAccount".to_string(), quote(&self.name(a, o)?)];
                    let start = words.len();
                    for c in a
                        .changes
                        .iter()
                        .filter(|c| c.object.as_ref().unwrap_or(&a.target) == o)
                    {
                        self.modify_words(a, c, &mut words);
                    }
                    if words.len() > start {
                        self.push(words);
                    }
                }
            }
            ActionKind::AddDistributionListMembers => {
                let list = self.name(a, &a.target)?;
                let mut added = Vec::new();
                let mut removed = Vec::new();
                let mut other = vec!["modifyDistributionList".to_string(), quote(&list)];
                for c in &a.changes {
                    if c.attribute.as_str() == "zimbraMailForwardingAddress" {
                        removed.extend(c.removed().filter_map(Value::as_str).map(quote));
                        added.extend(c.added().filter_map(Value::as_str).map(quote));
                    } else {
                        self.modify_words(a, c, &mut other);
                    }
                }
                if other.len() > 2 {
                    self.push(other);
                }
                if !removed.is_empty() {
                    let mut words = vec!["removeDistributionListMember".to_string(), quote(&list)];
                    words.extend(removed);
                    self.push(words);
                }
                if !added.is_empty() {
                    let mut words = vec!["addDistributionListMember".to_string(), quote(&list)];
                    words.extend(added);
                    self.push(words);
                }
            }
            ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts => {
                let what = match (a.kind, a.items) {
                    (ActionKind::ImportMail, Some(i)) => format!("{} messages", i.count),
                    (ActionKind::ImportCalendar, Some(i)) => format!("{} events", i.count),
                    (ActionKind::ImportContacts, Some(i)) => format!("{} contacts", i.count),
                    _ => "items".to_string(),
                };
                self.notes
                    .imports
                    .entry(a.kind.as_str())
                    .or_default()
                    .push(format!("{} ({what})", a.id));
            }
            other => {
                return Err(ProvError::OtherFlavor {
                    action: a.id.clone(),
                    kind: other.as_str(),
                });
            }
        }
        Ok(())
    }
}

/// Refuses a plan whose destination `flavor` (as its plan file names it) is not Carbonio.
pub fn check_flavor(flavor: &str) -> Result<(), ProvError> {
    if flavor == "carbonio" {
        Ok(())
    } else {
        Err(ProvError::Flavor(flavor.to_string()))
    }
}

/// The plan's directory actions as a `carbonio prov -f` batch; what the batch leaves out is
/// named and counted in `#` lines at its top.
pub fn render(plan: &Plan) -> Result<String, ProvError> {
    let graph = ActionGraph::build(plan)?;
    // Refuse another flavor's plan before writing anything.
    if let Some(a) = plan.actions.iter().find(|a| !carbonio_kind(a.kind)) {
        return Err(ProvError::OtherFlavor {
            action: a.id.clone(),
            kind: a.kind.as_str(),
        });
    }
    let mut names = BTreeMap::new();
    for a in &plan.actions {
        if matches!(
            a.kind,
            ActionKind::CreateAccount | ActionKind::CreateDistributionList
        ) && let Some(n) = a.changes.iter().find_map(|c| {
            (c.attribute.as_str() == "zimbraMailDeliveryAddress")
                .then(|| texts(&c.after).first().map(|s| s.to_string()))
                .flatten()
        }) {
            names.insert(&a.target, n);
        }
    }
    let mut batch = Batch {
        names,
        lines: Vec::new(),
        notes: Notes::default(),
    };
    for i in plan_order(plan, &graph) {
        batch.action(&plan.actions[i])?;
    }
    Ok(assemble(plan, &batch))
}

fn carbonio_kind(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::CreateAccount
            | ActionKind::AddAccountAlias
            | ActionKind::ModifyAccount
            | ActionKind::CreateDistributionList
            | ActionKind::AddDistributionListMembers
            | ActionKind::ImportMail
            | ActionKind::ImportCalendar
            | ActionKind::ImportContacts
    )
}

/// The plan's order, each action moved after the actions it depends on (the graph is checked,
/// so this ends).
fn plan_order(plan: &Plan, graph: &ActionGraph) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let mut done = vec![false; plan.actions.len()];
    let mut order = Vec::with_capacity(plan.actions.len());
    // An explicit stack: a long chain of dependencies must not overflow the call stack.
    for start in 0..plan.actions.len() {
        let mut stack = vec![(start, 0usize)];
        while let Some((i, next)) = stack.pop() {
            if done[i] {
                continue;
            }
            let deps = &plan.actions[i].depends_on;
            if let Some(dep) = deps.get(next) {
                stack.push((i, next + 1));
                if let Some(&d) = index.get(dep.as_str())
                    && !done[d]
                {
                    stack.push((d, 0));
                }
            } else {
                done[i] = true;
                order.push(i);
            }
        }
    }
    debug_assert_eq!(order.len(), graph.order.len());
    order
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn assemble(plan: &Plan, batch: &Batch<'_>) -> String {
    let notes = &batch.notes;
    let mut out = String::new();
    comment(
        &mut out,
        "A carbonio prov batch written by mailplan from a reviewed plan. Run it on the Carbonio server:",
    );
    comment(&mut out, "  carbonio prov -f THIS_FILE");
    comment(
        &mut out,
        "carbonio prov has no comments: it answers each line starting with # with \"Unknown command\" and goes on.",
    );
    comment(
        &mut out,
        "To run only the commands: grep -v '^#' THIS_FILE > commands.zmp && carbonio prov -f commands.zmp",
    );
    comment(
        &mut out,
        &format!(
            "{} in dependency order, then `exit`: carbonio prov then exits with status 2 if any of them failed, 0 if none did",
            plural(batch.lines.len(), "command follows", "commands follow")
        ),
    );
    comment(
        &mut out,
        "(at the end of a file without `exit` it exits with 0 whatever failed).",
    );
    if !notes.passwordless.is_empty() {
        comment(&mut out, "");
        comment(
            &mut out,
            &format!(
                "Passwords: plans hold none, so {} created without a password (\"\"){}.",
                plural(notes.passwordless.len(), "account is", "accounts are"),
                if notes.must_change > 0 {
                    format!(
                        " and {} to change it at first login",
                        if notes.must_change == notes.passwordless.len() {
                            "made".to_string()
                        } else {
                            format!("{} of them made", notes.must_change)
                        }
                    )
                } else {
                    String::new()
                }
            ),
        );
        comment(
            &mut out,
            "Set each one before its person logs in (carbonio prov setPassword NAME PASSWORD), or let the domain's external authentication log them in:",
        );
        for n in &notes.passwordless {
            comment(&mut out, &format!("  {n}"));
        }
    }
    let imports: usize = notes.imports.values().map(Vec::len).sum();
    if imports > 0 {
        comment(&mut out, "");
        let kinds: Vec<String> = notes
            .imports
            .iter()
            .map(|(k, v)| format!("{} {k}", v.len()))
            .collect();
        comment(
            &mut out,
            &format!(
                "Not in this batch: {} ({}), which carbonio prov cannot do; `mailplan apply` copies them:",
                plural(imports, "item import", "item imports"),
                kinds.join(", ")
            ),
        );
        for ids in notes.imports.values() {
            for id in ids {
                comment(&mut out, &format!("  {id}"));
            }
        }
    }
    if !notes.binary.is_empty() {
        comment(&mut out, "");
        comment(
            &mut out,
            &format!(
                "Not in this batch: {} that a command line cannot hold:",
                plural(notes.binary.len(), "binary value", "binary values")
            ),
        );
        for b in &notes.binary {
            comment(&mut out, &format!("  {b}"));
        }
    }
    let left_out = plan.left_out();
    if !left_out.is_empty() {
        comment(&mut out, "");
        comment(
            &mut out,
            &format!(
                "Not migrated by this plan: {}, with no command below:",
                plural(left_out.len(), "person", "persons")
            ),
        );
        let status = |s: crate::plan::Status| match s {
            crate::plan::Status::Error => "error",
            crate::plan::Status::Ambiguous => "ambiguous",
            _ => "awaiting confirmation",
        };
        for l in &left_out {
            comment(
                &mut out,
                &format!(
                    "  {} ({}), {}: {}",
                    l.name,
                    l.source,
                    status(l.status),
                    l.reason
                ),
            );
        }
    }
    out.push('\n');
    for line in &batch.lines {
        out.push_str(line);
        out.push('\n');
    }
    // Its status tells whether every command succeeded.
    out.push_str("exit\n");
    out
}

/// The commands of a batch, each split into its words as `carbonio prov` reads them.
pub fn commands(batch: &str) -> Vec<Vec<String>> {
    batch
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(split_line)
        .collect()
}

/// Splits one batch line into words as `carbonio prov` does (see the module's description):
/// used to check that what is written reads back as what was meant.
pub fn split_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let (c, escaped) = if c == '\\' && chars.peek().is_some() {
            match chars.next() {
                Some('n') => ('\n', true),
                Some('t') => ('\t', true),
                Some('r') => ('\r', true),
                Some('\'') => ('\'', true),
                Some('"') => ('"', true),
                Some('\\') => ('\\', false),
                Some(o) => (o, o.is_whitespace()),
                None => ('\\', false),
            }
        } else {
            (c, false)
        };
        if in_word {
            let ends = !escaped
                && match quote {
                    None => c.is_whitespace(),
                    Some(q) => c == q,
                };
            if ends {
                words.push(std::mem::take(&mut word));
                in_word = false;
                quote = None;
            } else {
                word.push(c);
            }
        } else if !escaped && (c == '\'' || c == '"') {
            quote = Some(c);
            in_word = true;
        } else if !escaped && c.is_whitespace() {
        } else {
            in_word = true;
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_reads_back_as_written() {
        for v in [
            "plain",
            "john.smith@acme.com",
            "",
            "two words",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "ends with \\",
            "line\nbreak",
            "cr\rlf",
            "tab\there",
            "Zoë Ångström 日本",
            "#hash",
            "'single'",
            "\\n literally",
            " leading and trailing ",
        ] {
            let line = format!("modifyAccount a@b.c title {}", quote(v));
            assert!(!line.ends_with('\\'), "{line}");
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(
                split_line(&line),
                vec!["modifyAccount", "a@b.c", "title", v],
                "{line}"
            );
        }
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("Zoë"), "\"Zoë\"");
        assert_eq!(quote("x\\"), "\"x\\\\\"");
    }

    #[test]
    fn comments_stay_on_one_line_and_never_continue() {
        let mut out = String::new();
        comment(&mut out, "a\nb\\");
        assert_eq!(out, "# a\\nb\\.\n");
    }

    #[test]
    fn carbonio_addresses_from_dns() {
        let dn = |s: &str| Dn::parse(s).unwrap();
        assert_eq!(
            address_of_dn(&dn("uid=john,ou=people,dc=acme,dc=com")).as_deref(),
            Some("john@acme.com")
        );
        assert_eq!(address_of_dn(&dn("cn=john,ou=people,dc=acme,dc=com")), None);
        assert_eq!(address_of_dn(&dn("uid=john,ou=staff,dc=acme,dc=com")), None);
        assert_eq!(address_of_dn(&dn("uid=john,ou=people,o=acme")), None);
    }
}
