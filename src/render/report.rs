//! The audit of a wave (`mailplan report`): one plan, told for the people who review it rather
//! than the ones who apply it. Per person: scenario, how they matched, status (with the
//! candidates of an ambiguity and the reason of an error), contacts to delete and the item
//! volume; then totals by scenario and status, the problems, the soft candidates and the
//! largest mailboxes. CSV is one row per person, for spreadsheets; Markdown is for a pull
//! request; HTML is one self-contained page (no script, no network) with two small charts.
//!
//! Rendering only renders: everything here is read off the plan, nothing is decided or
//! looked up, and the same plan gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::plan::{ActionKind, Level, Plan, Status, Subject, SubjectKind};

use super::text::{how_matched, scenario_name, thousands};

/// The formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Html,
}

/// How many of the largest mailboxes a report lists and charts.
const LARGEST: usize = 10;

/// What a report says about one person, read off the plan.
struct Row<'p> {
    subject: &'p Subject,
    status: &'static str,
    matched: String,
    destination: String,
    /// Why the person is not migrated (errors, ambiguity, confirmation), or empty.
    reason: String,
    messages: u64,
    message_bytes: u64,
    events: u64,
    contacts: u64,
    /// Items at the source (all kinds), copied before or not.
    source_items: u64,
    bad_items: usize,
    warnings: usize,
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Planned => "planned",
        Status::Unchanged => "unchanged",
        Status::Ambiguous => "ambiguous",
        Status::NeedsConfirmation => "awaiting confirmation",
        Status::Error => "error",
    }
}

fn rows(plan: &Plan) -> Vec<Row<'_>> {
    let left_out: BTreeMap<_, _> = plan
        .left_out()
        .into_iter()
        .map(|l| (l.source, l.reason))
        .collect();
    let mut by_subject: BTreeMap<&crate::directory::Dn, Vec<&crate::plan::Action>> =
        BTreeMap::new();
    for a in &plan.actions {
        by_subject.entry(&a.subject).or_default().push(a);
    }
    plan.subjects
        .iter()
        .filter(|s| s.kind == SubjectKind::Person)
        .map(|s| {
            let mut row = Row {
                subject: s,
                status: status(s.status),
                matched: how_matched(s),
                destination: String::new(),
                reason: reason(s, left_out.get(&s.source)),
                messages: 0,
                message_bytes: 0,
                events: 0,
                contacts: 0,
                source_items: 0,
                bad_items: s.bad_items.len(),
                warnings: s
                    .messages
                    .iter()
                    .filter(|m| m.level == Level::Warning)
                    .count(),
            };
            if let Some(m) = &s.matched {
                row.destination = m.object.to_string();
            }
            for a in by_subject.get(&s.source).into_iter().flatten() {
                if row.destination.is_empty() && a.kind == ActionKind::CreateMailbox {
                    row.destination = a.target.to_string();
                }
                let Some(n) = a.items else { continue };
                row.source_items += n.total;
                match a.kind {
                    ActionKind::ImportMail => {
                        row.messages += n.count;
                        row.message_bytes += n.bytes;
                    }
                    ActionKind::ImportCalendar => row.events += n.count,
                    ActionKind::ImportContacts => row.contacts += n.count,
                    _ => {}
                }
            }
            row
        })
        .collect()
}

/// Why a person is left out, with an ambiguity's candidates named.
fn reason(s: &Subject, left_out: Option<&String>) -> String {
    let Some(reason) = left_out else {
        return String::new();
    };
    if s.status != Status::Ambiguous || s.candidates.is_empty() {
        return reason.clone();
    }
    let candidates: Vec<String> = s.candidates.iter().map(|c| c.object.to_string()).collect();
    format!("{reason} (candidates: {})", candidates.join("; "))
}

/// Renders the report of `plan` in `format`.
pub fn render(plan: &Plan, format: Format) -> String {
    let rows = rows(plan);
    match format {
        Format::Csv => csv(&rows),
        Format::Markdown => markdown(plan, &rows),
        Format::Html => html(plan, &rows),
    }
}

fn csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "source",
        "name",
        "scenario",
        "status",
        "match",
        "destination",
        "contacts_to_delete",
        "messages_to_copy",
        "message_bytes_to_copy",
        "events_to_copy",
        "contacts_to_copy",
        "items_at_source",
        "bad_items",
        "warnings",
        "candidates",
        "reason",
    ]);
    for r in rows {
        let s = r.subject;
        let candidates: Vec<String> = s.candidates.iter().map(|c| c.object.to_string()).collect();
        let contacts: Vec<String> = s.contacts.iter().map(ToString::to_string).collect();
        let _ = w.write_record([
            s.source.to_string(),
            s.name.clone(),
            s.scenario.map(|n| n.to_string()).unwrap_or_default(),
            r.status.to_string(),
            r.matched.clone(),
            r.destination.clone(),
            contacts.join("; "),
            r.messages.to_string(),
            r.message_bytes.to_string(),
            r.events.to_string(),
            r.contacts.to_string(),
            r.source_items.to_string(),
            r.bad_items.to_string(),
            r.warnings.to_string(),
            candidates.join("; "),
            r.reason.clone(),
        ]);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Persons counted by a label (a scenario, a status), in the order they are shown.
type Counts<L> = Vec<(L, usize)>;

/// Persons by scenario (1–6, then none) and by status, in a fixed order.
fn totals(rows: &[Row]) -> (Counts<String>, Counts<&'static str>) {
    let mut scenarios: BTreeMap<Option<u8>, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in rows {
        *scenarios.entry(r.subject.scenario).or_default() += 1;
        *statuses.entry(r.status).or_default() += 1;
    }
    let mut by_scenario: Vec<(String, usize)> = scenarios
        .iter()
        .filter_map(|(n, c)| n.map(|n| (format!("{n}: {}", scenario_name(n)), *c)))
        .collect();
    if let Some(c) = scenarios.get(&None) {
        by_scenario.push(("none (not migrated)".to_string(), *c));
    }
    let order = [
        "planned",
        "unchanged",
        "ambiguous",
        "awaiting confirmation",
        "error",
    ];
    let by_status = order
        .iter()
        .filter_map(|s| statuses.get(s).map(|c| (*s, *c)))
        .collect();
    (by_scenario, by_status)
}

/// The persons with the most mail to copy, largest first (ties by name).
fn largest<'r, 'p>(rows: &'r [Row<'p>]) -> Vec<&'r Row<'p>> {
    let mut v: Vec<&Row> = rows.iter().filter(|r| r.message_bytes > 0).collect();
    v.sort_by(|a, b| {
        b.message_bytes
            .cmp(&a.message_bytes)
            .then_with(|| a.subject.name.cmp(&b.subject.name))
    });
    v.truncate(LARGEST);
    v
}

/// Plan-wide messages and every person's errors: what stands in the way.
fn problems(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .messages
        .iter()
        .filter(|m| m.level != Level::Info)
        .map(|m| m.text.clone())
        .collect();
    for s in &plan.subjects {
        for m in s.messages.iter().filter(|m| m.level == Level::Error) {
            out.push(format!("{}: {}", s.name, m.text));
        }
    }
    out
}

/// Persons with soft candidates (warnings in batch mode, confirmations in interactive mode).
fn soft_candidates<'p>(rows: &[Row<'p>]) -> Vec<(&'p Subject, String)> {
    rows.iter()
        .filter(|r| r.subject.status != Status::Ambiguous && !r.subject.candidates.is_empty())
        .map(|r| {
            let c: Vec<String> = r
                .subject
                .candidates
                .iter()
                .map(|c| format!("{} ({} `{}`)", c.object, c.via.describe(), c.value))
                .collect();
            (r.subject, c.join("; "))
        })
        .collect()
}

/// `|` and line breaks would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn markdown(plan: &Plan, rows: &[Row]) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(out, "# Migration wave report\n");
    let _ = writeln!(
        out,
        "{} persons; {} to create, {} to convert, {} to update, {} to delete; {} imports ({} messages, {} events, {} contacts).{}\n",
        thousands(rows.len() as u64),
        s.create,
        s.convert,
        s.update,
        s.delete,
        s.imports,
        thousands(s.messages),
        thousands(s.events),
        thousands(s.contacts),
        super::text::not_migrated(&s.not_migrated)
    );
    let (by_scenario, by_status) = totals(rows);
    let _ = writeln!(
        out,
        "## Persons by scenario\n\n| scenario | persons |\n|---|---:|"
    );
    for (name, n) in &by_scenario {
        let _ = writeln!(out, "| {} | {n} |", cell(name));
    }
    let _ = writeln!(
        out,
        "\n## Persons by status\n\n| status | persons |\n|---|---:|"
    );
    for (name, n) in &by_status {
        let _ = writeln!(out, "| {name} | {n} |");
    }
    let problems = problems(plan);
    if !problems.is_empty() {
        let _ = writeln!(out, "\n## Problems\n");
        for p in &problems {
            let _ = writeln!(out, "- {}", cell(p));
        }
    }
    let soft = soft_candidates(rows);
    if !soft.is_empty() {
        let _ = writeln!(out, "\n## Soft candidates\n");
        for (subject, c) in &soft {
            let _ = writeln!(out, "- {}: {}", cell(&subject.name), cell(c));
        }
    }
    let big = largest(rows);
    if !big.is_empty() {
        let _ = writeln!(
            out,
            "\n## Largest mailboxes (mail to copy)\n\n| person | messages | size |\n|---|---:|---:|"
        );
        for r in big {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(&r.subject.name),
                thousands(r.messages),
                crate::items::human_bytes(r.message_bytes)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Persons\n\n| person | scenario | status | match | contacts to delete | messages to copy | size | events to copy | contacts to copy |\n|---|---|---|---|---|---:|---:|---:|---:|"
    );
    for r in rows {
        let s = r.subject;
        let status = if r.reason.is_empty() {
            r.status.to_string()
        } else {
            format!("{}: {}", r.status, r.reason)
        };
        let contacts: Vec<String> = s.contacts.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&s.name),
            s.scenario.map(|n| n.to_string()).unwrap_or_default(),
            cell(&status),
            cell(&r.matched),
            cell(&contacts.join("; ")),
            thousands(r.messages),
            crate::items::human_bytes(r.message_bytes),
            thousands(r.events),
            thousands(r.contacts)
        );
    }
    out
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart as inline SVG: one labelled bar per value, scaled to the largest.
fn bar_chart(title: &str, bars: &[(String, u64, String)]) -> String {
    const LABEL: u64 = 340;
    const WIDTH: u64 = 360;
    const ROW: u64 = 22;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let height = ROW * bars.len() as u64 + 8;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" width=\"{}\" height=\"{height}\">",
        esc(title),
        esc(title),
        LABEL + WIDTH + 120
    );
    for (i, (label, value, shown)) in bars.iter().enumerate() {
        let y = ROW * i as u64 + 4;
        let w = (value * WIDTH).div_ceil(max).max(1);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\"><title>{}: {}</title></rect><text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 8,
            y + 14,
            esc(label),
            ROW - 6,
            esc(label),
            esc(shown),
            LABEL + w + 6,
            y + 14,
            esc(shown)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

fn html(plan: &Plan, rows: &[Row]) -> String {
    let s = &plan.summary;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Migration wave report</title>\n<style>\nbody{font-family:system-ui,sans-serif;margin:2em;color:#222}\ntable{border-collapse:collapse;margin:1em 0}\nth,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.9em;overflow-wrap:anywhere}\ntd.n{text-align:right}\n.bar{fill:#3b78c3}\nsvg text{font-size:12px}\nfigcaption{font-weight:bold;margin:.5em 0}\n.error{color:#a00}\n</style></head><body>\n<h1>Migration wave report</h1>\n",
    );
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} persons; {} to create, {} to convert, {} to update, {} to delete; {} imports ({} messages, {} events, {} contacts).{}</p>",
        thousands(rows.len() as u64),
        s.create,
        s.convert,
        s.update,
        s.delete,
        s.imports,
        thousands(s.messages),
        thousands(s.events),
        thousands(s.contacts),
        esc(&super::text::not_migrated(&s.not_migrated))
    );
    let (by_scenario, by_status) = totals(rows);
    let bars: Vec<(String, u64, String)> = by_scenario
        .iter()
        .map(|(n, c)| (n.clone(), *c as u64, c.to_string()))
        .collect();
    out.push_str(&bar_chart("Persons by scenario", &bars));
    let _ = writeln!(
        out,
        "<h2>Persons by status</h2>\n<table><tr><th>status</th><th>persons</th></tr>"
    );
    for (name, n) in &by_status {
        let _ = writeln!(out, "<tr><td>{name}</td><td class=\"n\">{n}</td></tr>");
    }
    out.push_str("</table>\n");
    let big = largest(rows);
    if !big.is_empty() {
        let bars: Vec<(String, u64, String)> = big
            .iter()
            .map(|r| {
                (
                    r.subject.name.clone(),
                    r.message_bytes,
                    crate::items::human_bytes(r.message_bytes),
                )
            })
            .collect();
        out.push_str(&bar_chart("Mail to copy, largest mailboxes", &bars));
    }
    let problems = problems(plan);
    if !problems.is_empty() {
        out.push_str("<h2>Problems</h2>\n<ul>\n");
        for p in &problems {
            let _ = writeln!(out, "<li class=\"error\">{}</li>", esc(p));
        }
        out.push_str("</ul>\n");
    }
    let soft = soft_candidates(rows);
    if !soft.is_empty() {
        out.push_str("<h2>Soft candidates</h2>\n<ul>\n");
        for (subject, c) in &soft {
            let _ = writeln!(out, "<li>{}: {}</li>", esc(&subject.name), esc(c));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Persons</h2>\n<table><tr><th>person</th><th>scenario</th><th>status</th><th>match</th><th>contacts to delete</th><th>messages to copy</th><th>size</th><th>events to copy</th><th>contacts to copy</th></tr>\n");
    for r in rows {
        let subject = r.subject;
        let status = if r.reason.is_empty() {
            esc(r.status)
        } else {
            format!("{}: {}", esc(r.status), esc(&r.reason))
        };
        let contacts: Vec<String> = subject
            .contacts
            .iter()
            .map(|c| esc(&c.to_string()))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&subject.name),
            subject.scenario.map(|n| n.to_string()).unwrap_or_default(),
            esc(&r.matched),
            contacts.join("<br>"),
            thousands(r.messages),
            crate::items::human_bytes(r.message_bytes),
            thousands(r.events),
            thousands(r.contacts)
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_a_directory_can_hold() {
        assert_eq!(esc("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn a_generated_wave_reports_every_person_once_in_every_format() {
        let inputs = crate::generate::generated_inputs(300, 900, 3);
        let plan = crate::ops::make_plan(&inputs).unwrap();
        let persons = plan
            .subjects
            .iter()
            .filter(|s| s.kind == SubjectKind::Person)
            .count();
        let csv = render(&plan, Format::Csv);
        assert_eq!(csv.lines().count(), persons + 1);
        let md = render(&plan, Format::Markdown);
        assert!(md.contains(&format!("{persons} persons;")), "{md}");
        let html = render(&plan, Format::Html);
        // One row per person, and one per status in the status table.
        let statuses = totals(&rows(&plan)).1.len();
        assert_eq!(html.matches("<tr><td>").count(), persons + statuses);
        assert_eq!(
            render(&plan, Format::Html),
            html,
            "the same plan, the same bytes"
        );
    }
}
