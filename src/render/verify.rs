//! `mailplan verify` for people and machines: per person a table of folders (and the calendar
//! and the address book) with what the source, the destination and the ledger hold, as
//! imapsync's per-folder host1/host2 listing, each row with its differences explained; JSON
//! described by schemas/verify-output.schema.json.

use std::fmt::Write as _;

use crate::items::ItemKind;
use crate::render::text::thousands;
use crate::verify::{Collection, Counts, PersonStatus, Verification};

/// Missing and bad items named one by one under a row; the rest are counted (`--json` lists
/// all).
const NAMED: usize = 10;

/// The verification as text, persons in source DN order, a summary last.
pub fn text(v: &Verification) -> String {
    let mut out = String::new();
    if v.persons.is_empty() {
        out.push_str("The plan file copies no items: nothing to verify.\n");
        return out;
    }
    for p in &v.persons {
        let _ = writeln!(out, "{}  {}", p.source, status(p.status));
        for r in &p.reasons {
            let _ = writeln!(out, "  {r}");
        }
        for d in &p.destinations {
            let _ = writeln!(out, "  {} → {}", kind(d.kind), d.name);
        }
        if p.collections.is_empty() {
            out.push('\n');
            continue;
        }
        let width = p
            .collections
            .iter()
            .map(|c| folder(c).chars().count())
            .max()
            .unwrap_or(0)
            .max("folder".len());
        let _ = writeln!(
            out,
            "  {:<8}  {:<width$}  {:>8}  {:>11}  {:>8}  verdict",
            "kind", "folder", "source", "destination", "ledger"
        );
        for c in &p.collections {
            let _ = writeln!(
                out,
                "  {:<8}  {:<width$}  {:>8}  {:>11}  {:>8}  {}",
                kind(c.kind),
                folder(c),
                thousands(c.source),
                thousands(c.destination),
                thousands(c.ledger),
                verdict(c)
            );
            for (what, list) in [("missing", &c.missing), ("bad", &c.bad)] {
                for item in list.iter().take(NAMED) {
                    let _ = writeln!(out, "      {what}: {item}");
                }
                if list.len() > NAMED {
                    let _ = writeln!(
                        out,
                        "      … and {} more {what} (`mailplan verify --json` lists them all)",
                        thousands((list.len() - NAMED) as u64)
                    );
                }
            }
        }
        out.push('\n');
    }
    let s = &v.summary;
    let mut parts = vec![persons(s.complete, "complete")];
    for (n, what) in [
        (s.short, "short"),
        (
            s.not_migrated,
            "not migrated (a decision: see `mailplan plan`)",
        ),
        (s.errors, "not verified (errors)"),
    ] {
        if n > 0 {
            parts.push(persons(n, what));
        }
    }
    let _ = writeln!(
        out,
        "Verify: {}; {}.",
        parts.join(", "),
        counts(&s.items, true)
    );
    if v.complete() {
        out.push_str("Everything the plan meant to copy arrived.\n");
    } else {
        out.push_str("Not everything arrived:\n");
        for p in &v.persons {
            match p.status {
                PersonStatus::Short => {
                    for c in p.collections.iter().filter(|c| !c.complete()) {
                        let _ = writeln!(
                            out,
                            "  {}: {} {}: {}",
                            p.source,
                            kind(c.kind),
                            match &c.folder {
                                Some(f) => format!("folder {f}"),
                                None => "collection".to_string(),
                            },
                            short(&c.counts)
                        );
                    }
                }
                PersonStatus::Error => {
                    let _ = writeln!(
                        out,
                        "  {}: not verified: {}",
                        p.source,
                        p.reasons.join("; ")
                    );
                }
                PersonStatus::Complete | PersonStatus::NotMigrated => {}
            }
        }
    }
    out
}

/// The verification as pretty JSON with a trailing newline.
pub fn json(v: &Verification) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The JSON Schema of [`json`]'s output, generated from the types so it cannot drift.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Verification);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

fn status(s: PersonStatus) -> &'static str {
    match s {
        PersonStatus::Complete => "complete",
        PersonStatus::Short => "SHORT",
        PersonStatus::NotMigrated => "not migrated",
        PersonStatus::Error => "NOT VERIFIED",
    }
}

fn kind(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Mail => "mail",
        ItemKind::Calendar => "calendar",
        ItemKind::Contacts => "contacts",
    }
}

fn folder(c: &Collection) -> String {
    match &c.folder {
        None => "-".to_string(),
        Some(f) if c.source_folders.len() == 1 && c.source_folders[0] != *f => {
            format!("{f} (from {})", c.source_folders[0])
        }
        Some(f) if c.source_folders.len() > 1 => {
            format!("{f} (from {})", c.source_folders.join(", "))
        }
        Some(f) => f.clone(),
    }
}

fn persons(n: u64, what: &str) -> String {
    format!(
        "{} {} {what}",
        thousands(n),
        if n == 1 { "person" } else { "persons" }
    )
}

fn verdict(c: &Collection) -> String {
    let explained = counts(&c.counts, false);
    if c.complete() {
        format!("ok: {explained}")
    } else {
        format!("SHORT: {explained}")
    }
}

/// What is wrong with a collection that is not complete.
fn short(n: &Counts) -> String {
    let mut parts = Vec::new();
    if n.missing > 0 {
        parts.push(format!("{} missing", thousands(n.missing)));
    }
    if n.bad > 0 {
        parts.push(bad(n.bad));
    }
    parts.join(", ")
}

fn bad(n: u64) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { "bad item" } else { "bad items" }
    )
}

/// The buckets of a row that hold anything, in a fixed order; `all` names the copied ones even
/// when there are none (for the summary).
fn counts(n: &Counts, all: bool) -> String {
    let mut parts = Vec::new();
    let mut add = |k: u64, text: &str| {
        if k > 0 {
            parts.push(format!("{} {text}", thousands(k)));
        }
    };
    add(n.copied, "copied");
    add(n.already_there, "already at the destination");
    add(
        n.deleted_at_destination,
        "deleted at the destination after the copy",
    );
    add(n.excluded, "excluded by `exclude`");
    add(n.before_since, "older than `since`");
    add(n.duplicates, "twice at the source (copied once)");
    add(n.only_at_destination, "only at the destination");
    add(n.missing, "missing");
    if n.bad > 0 {
        parts.push(bad(n.bad));
    }
    if parts.is_empty() {
        return if all {
            "0 items".to_string()
        } else {
            "empty".to_string()
        };
    }
    if all && n.missing == 0 {
        parts.push("0 missing".to_string());
    }
    parts.join(", ")
}
