//! The human plan: terraform-like, sorted, deterministic; colour only when asked (on a terminal).
//!
//! Problems come first (ambiguities, confirmations needed, errors, warnings), then one block per
//! subject with its actions and attribute diffs, then the `Plan: …` line. Subjects that need no
//! change get one line each, so an audit still sees every match and why.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use similar::{ChangeTag, TextDiff};

use super::symbol;
use crate::directory::{Value, ValueSet};
use crate::matching::By;
use crate::plan::{Action, ActionKind, Change, Effect, Level, Plan, Status, Subject, SubjectKind};

/// Terminal styling; every method is the identity when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// `s` as it is when colour is off: most plans are printed to files and pipes, and every
    /// line of a large plan passes here.
    fn paint<'s>(&self, code: &str, s: &'s str) -> Cow<'s, str> {
        if self.color {
            Cow::Owned(format!("\x1b[{code}m{s}\x1b[0m"))
        } else {
            Cow::Borrowed(s)
        }
    }
    fn green<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("32", s)
    }
    fn yellow<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("33", s)
    }
    fn red<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("31", s)
    }
    fn cyan<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("36", s)
    }
    fn bold<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("1", s)
    }
    fn dim<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.paint("2", s)
    }
}

/// Bold text when colour is on.
pub fn bold(style: Style, s: &str) -> String {
    style.bold(s).into_owned()
}

pub fn scenario_name(n: u8) -> &'static str {
    match n {
        1 => "new mailbox",
        2 => "NT account converted to a mailbox",
        3 => "new mailbox replacing contact(s)",
        4 => "NT account converted, contact(s) merged",
        5 => "mail-enabled user converted to a mailbox",
        6 => "existing mailbox, items only",
        _ => "unknown",
    }
}

fn paint_symbol(style: Style, sym: &str) -> Cow<'_, str> {
    match sym {
        "+" => style.green(sym),
        "-" => style.red(sym),
        "<-" => style.cyan(sym),
        _ => style.yellow(sym),
    }
}

/// A value as the plan shows it, quoted; 16 binary bytes (almost always a GUID: objectGUID,
/// msExchMailboxGuid) in both forms. Written straight into the line, with no string between.
fn quote(v: &Value) -> Quoted<'_> {
    Quoted(v)
}

struct Quoted<'a>(&'a Value);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if let Some(guid) = v.guid_text() {
            return write!(f, "{:?} (GUID {guid})", v.display());
        }
        match v.as_str().filter(|_| !v.is_binary()) {
            Some(text) => debug_quoted(f, text),
            None => write!(f, "{:?}", v.display()),
        }
    }
}

/// `quote(v)`, appended to `out` (a value that is text is never a GUID).
fn push_quoted(out: &mut String, v: &Value) {
    match v.as_str().filter(|_| !v.is_binary()) {
        Some(text) => {
            let _ = debug_quoted(out, text);
        }
        _ => {
            let _ = write!(out, "{}", quote(v));
        }
    }
}

/// `{text:?}`, written without escaping character by character when there is nothing to
/// escape: printable ASCII with no `"` or `\`, which is almost every value of a plan.
fn debug_quoted(f: &mut impl fmt::Write, text: &str) -> fmt::Result {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        f.write_char('"')?;
        f.write_str(text)?;
        f.write_char('"')
    } else {
        write!(f, "{text:?}")
    }
}

/// Thousands separators, as the summary line shows counts.
/// `1 event`, `2,345 events`: a count with its noun in the right number.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The plan as one string (for `show` of small plans and for tests); see [`write()`].
pub fn render(plan: &Plan, style: Style) -> String {
    let mut out = Vec::new();
    // Writing to a vector cannot fail, and every piece written is a `str`.
    let _ = write(plan, style, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes the plan to `out` as it is rendered. A plan of 100,000 persons is over 100 MB of
/// text: it goes out a batch of subject blocks at a time, never held whole in memory.
pub fn write(plan: &Plan, style: Style, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut head = String::new();
    problems(&mut head, plan, style);

    let mut unchanged = Vec::new();
    // One pass over the actions, so rendering stays linear in the size of the plan.
    let mut by_subject: rustc_hash::FxHashMap<&crate::directory::Dn, Vec<&Action>> =
        rustc_hash::FxHashMap::default();
    for a in &plan.actions {
        by_subject.entry(&a.subject).or_default().push(a);
    }
    let mut blocks: Vec<(&Subject, Vec<&Action>)> = Vec::new();
    for subject in &plan.subjects {
        let actions: Vec<&Action> = by_subject.remove(&subject.source).unwrap_or_default();
        if subject.status == Status::Unchanged {
            unchanged.push(subject);
            continue;
        }
        if actions.is_empty() {
            continue; // Shown under problems.
        }
        blocks.push((subject, actions));
    }
    if !blocks.is_empty() {
        let _ = writeln!(
            head,
            "{}\n",
            style.bold("mailplan will perform these actions:")
        );
    }
    out.write_all(head.as_bytes())?;
    subject_blocks(&blocks, style, crate::parallel::cores(), out)?;
    let mut tail = String::new();
    if !unchanged.is_empty() {
        let _ = writeln!(
            tail,
            "{}",
            style.bold(&format!("Unchanged ({}):", unchanged.len()))
        );
        for s in unchanged {
            let _ = writeln!(
                tail,
                "  = {} {}",
                s.name,
                style.dim(&format!("({})", how_matched(s)))
            );
        }
        tail.push('\n');
    }
    tail.push_str(&summary_line(plan, style));
    out.write_all(tail.as_bytes())
}

/// Subject blocks one thread renders at a time.
const RUN: usize = 1_000;

/// Runs a renderer may have done before the writer takes them: enough that neither waits on
/// the other, few enough that a large plan is never all in memory as text.
const AHEAD: usize = 2;

/// Writes the subject blocks in order. The blocks are independent: each of `cores` threads
/// renders every `cores`-th run of them, into a buffer it is handed back once written, while
/// this thread writes the runs out in order. That gives exactly the bytes one thread would,
/// with writing overlapping rendering and with no more than a few runs in memory at a time.
fn subject_blocks(
    blocks: &[(&Subject, Vec<&Action>)],
    style: Style,
    cores: usize,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let render_run = |text: &mut String, run: &[(&Subject, Vec<&Action>)]| {
        text.clear();
        for (subject, actions) in run {
            subject_block(text, subject, actions, style);
        }
    };
    let runs: Vec<&[(&Subject, Vec<&Action>)]> = blocks.chunks(RUN).collect();
    let cores = cores.clamp(1, runs.len().max(1));
    if cores == 1 {
        let mut text = String::new();
        for run in runs {
            render_run(&mut text, run);
            out.write_all(text.as_bytes())?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut rendered = Vec::with_capacity(cores);
        let mut spent = Vec::with_capacity(cores);
        for first in 0..cores {
            let (done, taken) = std::sync::mpsc::sync_channel::<String>(AHEAD);
            let (give_back, returned) = std::sync::mpsc::channel::<String>();
            let runs = &runs;
            scope.spawn(move || {
                for run in runs.iter().skip(first).step_by(cores) {
                    let mut text = returned.try_recv().unwrap_or_default();
                    render_run(&mut text, run);
                    // The writer stops taking runs only when writing failed.
                    if done.send(text).is_err() {
                        break;
                    }
                }
            });
            rendered.push(taken);
            spent.push(give_back);
        }
        for k in 0..runs.len() {
            // A renderer that stops early has panicked; the scope raises its panic.
            let Ok(text) = rendered[k % cores].recv() else {
                break;
            };
            out.write_all(text.as_bytes())?;
            let _ = spent[k % cores].send(text);
        }
        Ok(())
    })
}

pub(crate) fn how_matched(s: &Subject) -> String {
    let scenario = s
        .scenario
        .map(|n| format!("scenario {n}: {}; ", scenario_name(n)))
        .unwrap_or_default();
    match &s.matched {
        Some(m) => {
            let by = match m.by {
                By::Hard => "hard match",
                By::Soft => "soft match",
                By::Pinned => "pinned",
            };
            match m.via {
                crate::matching::Via::Confirmed
                | crate::matching::Via::Remigrate
                | crate::matching::Via::State => {
                    format!(
                        "{scenario}{by} by {} to {} ({})",
                        m.via.describe(),
                        m.object,
                        m.class.describe()
                    )
                }
                _ => format!(
                    "{scenario}{by} on {} {} to {} ({})",
                    m.via.describe(),
                    m.value,
                    m.object,
                    m.class.describe()
                ),
            }
        }
        None if s.kind == SubjectKind::Group => "new distribution list".into(),
        None if s.kind == SubjectKind::Entry => "put back as the state recorded it".into(),
        None => format!("{scenario}no matching user"),
    }
}

/// The warnings and ambiguities above the actions. Each subject's lines depend on it alone,
/// so runs of subjects are written side by side and joined in order.
fn problems(out: &mut String, plan: &Plan, style: Style) {
    let mut lines = String::new();
    for m in &plan.messages {
        let tag = match m.level {
            Level::Error => style.red("error"),
            Level::Warning => style.yellow("warning"),
            Level::Info => continue,
        };
        let _ = writeln!(lines, "  {tag}: {}", m.text);
    }
    let subjects: Vec<&Subject> = plan.subjects.iter().collect();
    lines.push_str(
        &crate::parallel::runs(subjects, crate::parallel::cores(), 2_000, |run| {
            let mut lines = String::new();
            for s in run {
                subject_problems(&mut lines, s, style);
            }
            lines
        })
        .concat(),
    );
    if !lines.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Warnings and ambiguities:"));
        out.push_str(&lines);
        out.push('\n');
    }
}

fn subject_problems(lines: &mut String, s: &Subject, style: Style) {
    for m in &s.messages {
        let tag = match m.level {
            Level::Error => style.red("error"),
            Level::Warning => style.yellow("warning"),
            Level::Info => continue,
        };
        let _ = writeln!(lines, "  {tag}: {}: {}", s.name, m.text);
        if m.level == Level::Error || s.status == Status::NeedsConfirmation {
            let _ = writeln!(
                lines,
                "      {}",
                style.dim(&format!("source: {}", s.source))
            );
        }
    }
    if matches!(s.status, Status::Ambiguous | Status::NeedsConfirmation) {
        for c in &s.candidates {
            let _ = writeln!(
                lines,
                "      candidate: {} ({}, {} `{}`)",
                c.object,
                c.class.describe(),
                c.via.describe(),
                c.value
            );
        }
    }
}

fn subject_block(out: &mut String, s: &Subject, actions: &[&Action], style: Style) {
    let head = match (s.kind, s.scenario) {
        (SubjectKind::Person, Some(n)) => {
            format!("# {} — scenario {n}: {}", s.name, scenario_name(n))
        }
        (SubjectKind::Group, _) => format!("# {} — distribution list", s.name),
        (SubjectKind::Entry, _) => format!("# {} — restore", s.name),
        _ => format!("# {}", s.name),
    };
    let _ = writeln!(out, "{}", style.bold(&head));
    let _ = writeln!(out, "  source: {}", s.source);
    let _ = writeln!(out, "  match:  {}", how_matched(s));
    for c in &s.contacts {
        let _ = writeln!(out, "  contact: {c}");
    }
    for m in s.messages.iter().filter(|m| m.level == Level::Info) {
        let _ = writeln!(out, "  note:   {}", m.text);
    }
    out.push('\n');
    for a in actions {
        if let Some(line) = import_line(a) {
            let _ = writeln!(
                out,
                "  {} {}",
                paint_symbol(style, symbol(a.kind)),
                style.bold(&line)
            );
        } else {
            let _ = write!(
                out,
                "  {} {} ",
                paint_symbol(style, symbol(a.kind)),
                style.bold(a.kind.as_str()),
            );
            let _ = debug_quoted(out, a.target.text());
            out.push('\n');
        }
        if !a.depends_on.is_empty() {
            let _ = writeln!(
                out,
                "      {}",
                style.dim(&format!("after: {}", a.depends_on.join(", ")))
            );
        }
        for c in &a.changes {
            change(out, a, c, style);
        }
        out.push('\n');
    }
}

/// `import mail: 12 new messages in 3 folders (4.1 MiB) of 4,210, 2 folders to create`, or
/// `import calendar: 2 new events, 1 changed (12 KiB) of 40`, for import actions.
fn import_line(a: &Action) -> Option<String> {
    let (what, one, many) = match a.kind {
        crate::plan::ActionKind::ImportMail => ("mail", "message", "messages"),
        crate::plan::ActionKind::ImportCalendar => ("calendar", "event", "events"),
        crate::plan::ActionKind::ImportContacts => ("contacts", "contact", "contacts"),
        _ => return None,
    };
    let Some(n) = a.items else {
        return Some(format!("import {what}"));
    };
    let new = n.count.saturating_sub(n.changed);
    let noun = if new == 1 { one } else { many };
    let folders = match n.folders {
        0 => String::new(),
        1 => " in 1 folder".to_string(),
        f => format!(" in {} folders", thousands(f)),
    };
    let changed = match n.changed {
        0 => String::new(),
        c => format!(", {} changed", thousands(c)),
    };
    let create = match n.create_folders {
        0 => String::new(),
        1 => ", 1 folder to create".to_string(),
        f => format!(", {} folders to create", thousands(f)),
    };
    let subscribe = match n.subscribe_folders {
        0 => String::new(),
        1 => ", 1 to subscribe".to_string(),
        f => format!(", {} to subscribe", thousands(f)),
    };
    Some(format!(
        "import {what}: {} new {noun}{folders}{changed} ({}) of {}{create}{subscribe}",
        thousands(new),
        crate::items::human_bytes(n.bytes),
        thousands(n.total)
    ))
}

fn change(out: &mut String, action: &Action, c: &Change, style: Style) {
    let name: Cow<'_, str> = match &c.object {
        Some(o) => format!("{} of {o}", c.attribute).into(),
        None => c.attribute.as_str().into(),
    };
    let creating =
        action.kind.effect() == Effect::Create || (c.before.is_empty() && c.after.len() == 1);
    let deleting = matches!(
        action.kind,
        ActionKind::DeleteContact | ActionKind::DeleteEntry
    ) || (c.after.is_empty() && c.before.len() == 1);
    if c.object.is_none() && c.before.len() <= 1 && c.after.len() <= 1 && !creating && !deleting {
        // A single-valued change: old → new, with a word diff when the values are long prose.
        let (Some(b), Some(a)) = (c.before.first(), c.after.first()) else {
            return;
        };
        let (bs, as_) = (b.display(), a.display());
        if is_prose(&bs) && is_prose(&as_) {
            let _ = writeln!(
                out,
                "      {} {name}: {}",
                style.yellow("~"),
                word_diff(&bs, &as_, style)
            );
        } else {
            let _ = writeln!(
                out,
                "      {} {name}: {} → {}",
                style.yellow("~"),
                quote(b),
                quote(a)
            );
        }
        return;
    }
    if creating || deleting {
        let (sym, values): (Cow<'_, str>, &ValueSet) = if deleting {
            (style.red("-"), &c.before)
        } else {
            (style.green("+"), &c.after)
        };
        // Most lines of a plan are these: written piece by piece, not through the formatter.
        for (i, v) in values.iter().enumerate() {
            out.push_str("      ");
            out.push_str(&sym);
            out.push(' ');
            if i == 0 {
                out.push_str(&name);
                out.push_str(": ");
            } else {
                out.extend(std::iter::repeat_n(' ', name.chars().count() + 2));
            }
            push_quoted(out, v);
            out.push('\n');
        }
        return;
    }
    let _ = writeln!(out, "      {} {name}:", style.yellow("~"));
    for v in c.removed() {
        let _ = writeln!(out, "          {} {}", style.red("-"), quote(v));
    }
    for v in c.added() {
        let _ = writeln!(out, "          {} {}", style.green("+"), quote(v));
    }
}

/// Long free text (a description, notes), where a word diff reads better than two long strings.
fn is_prose(s: &str) -> bool {
    s.len() > 60 && s.split_whitespace().count() >= 6
}

/// `[-old-]{+new+}` word diff for long values, so a changed word in a long description stands out.
fn word_diff(before: &str, after: &str, style: Style) -> String {
    let diff = TextDiff::from_words(before, after);
    let mut out = String::from("\"");
    for change in diff.iter_all_changes() {
        let v = change.value();
        match change.tag() {
            ChangeTag::Equal => out.push_str(v),
            ChangeTag::Delete => out.push_str(&style.red(&format!("[-{v}-]"))),
            ChangeTag::Insert => out.push_str(&style.green(&format!("{{+{v}+}}"))),
        }
    }
    out.push('"');
    out
}

/// The last line: what the plan changes, and who and what it leaves out. "The destination
/// matches the plan file" is said only when nothing is left out.
pub fn summary_line(plan: &Plan, style: Style) -> String {
    let s = &plan.summary;
    let left_out = not_migrated(&s.not_migrated);
    if !plan.has_changes() {
        let mut out = style.bold("No changes.").to_string();
        out.push_str(&format!(
            " {} checked",
            count(plan.subjects.len() as u64, "subject", "subjects")
        ));
        if left_out.is_empty() && s.bad_items == 0 {
            out.push_str("; the destination matches the plan file.\n");
        } else {
            out.push('.');
            out.push_str(&left_out);
            match s.bad_items {
                0 => {}
                1 => out.push_str(" 1 bad item cannot be copied."),
                n => out.push_str(&format!(" {} bad items cannot be copied.", thousands(n))),
            }
            out.push('\n');
        }
        return out;
    }
    let bad = match s.bad_items {
        0 => String::new(),
        1 => "; 1 bad item skipped".to_string(),
        n => format!("; {} bad items skipped", thousands(n)),
    };
    let mut line = format!(
        "{} {} to create, {} to convert, {} to update, {} to delete, {} imports ({} messages, {} events, {} contacts{bad}).{left_out}\n",
        style.bold("Plan:"),
        s.create,
        s.convert,
        s.update,
        s.delete,
        s.imports,
        thousands(s.messages),
        thousands(s.events),
        thousands(s.contacts)
    );
    line.push_str(&deletions(s));
    line
}

/// `Deletions: 2 of at most 500 (safety.max_deletes).` under a plan that deletes anything, or
/// that apply refuses it when it deletes more than that; nothing when it deletes nothing.
pub fn deletions(s: &crate::plan::Summary) -> String {
    match s.max_deletes {
        Some(max) if s.delete as u64 > max => format!(
            "Deletions: {}, more than the {} that safety.max_deletes allows: apply refuses this plan.\n",
            thousands(s.delete as u64),
            thousands(max)
        ),
        Some(max) if s.delete > 0 => format!(
            "Deletions: {} of at most {} (safety.max_deletes).\n",
            thousands(s.delete as u64),
            thousands(max)
        ),
        _ => String::new(),
    }
}

/// ` Not migrated: 4 persons (1 error, 2 ambiguous, 1 awaiting confirmation).`, or nothing
/// when every person is migrated. Shared by the plan's last line and apply's summary.
pub fn not_migrated(n: &crate::plan::NotMigrated) -> String {
    if n.total() == 0 {
        return String::new();
    }
    let mut parts = Vec::new();
    match n.error {
        0 => {}
        1 => parts.push("1 error".to_string()),
        e => parts.push(format!("{} errors", thousands(e as u64))),
    }
    if n.ambiguous > 0 {
        parts.push(format!("{} ambiguous", thousands(n.ambiguous as u64)));
    }
    if n.needs_confirmation > 0 {
        parts.push(format!(
            "{} awaiting confirmation",
            thousands(n.needs_confirmation as u64)
        ));
    }
    format!(
        " Not migrated: {} {} ({}).",
        thousands(n.total() as u64),
        if n.total() == 1 { "person" } else { "persons" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn blocks_rendered_side_by_side_are_the_bytes_of_one_thread() {
        let inputs = crate::generate::generated_inputs(2_500, 6_000, 5);
        let plan = crate::ops::make_plan(&inputs).unwrap();
        let mut by_subject: rustc_hash::FxHashMap<&crate::directory::Dn, Vec<&Action>> =
            rustc_hash::FxHashMap::default();
        for a in &plan.actions {
            by_subject.entry(&a.subject).or_default().push(a);
        }
        let blocks: Vec<(&Subject, Vec<&Action>)> = plan
            .subjects
            .iter()
            .filter_map(|s| Some((s, by_subject.remove(&s.source)?)))
            .collect();
        assert!(blocks.len() > 2 * RUN, "{} blocks", blocks.len());
        let render_with = |cores| {
            let mut out = Vec::new();
            subject_blocks(&blocks, Style { color: false }, cores, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let one = render_with(1);
        assert_eq!(render_with(2), one);
        assert_eq!(render_with(3), one);
        // Every block once, in plan order.
        let heads: Vec<&str> = one
            .lines()
            .filter_map(|l| l.strip_prefix("  source: "))
            .collect();
        let sources: Vec<String> = blocks.iter().map(|(s, _)| s.source.to_string()).collect();
        assert_eq!(heads, sources);
    }

    #[test]
    fn word_diff_marks_changed_words() {
        let s = word_diff(
            "the quick brown fox",
            "the slow brown fox",
            Style { color: false },
        );
        assert_eq!(s, "\"the [-quick-]{+slow+} brown fox\"");
    }
}
