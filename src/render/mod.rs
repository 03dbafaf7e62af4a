//! Rendering plans for people (`text`), machines (`json`), pictures (`graph`: DOT, Mermaid) and
//! reviewers (`report`: Markdown, CSV, HTML).
//!
//! Rendering only renders: it never decides, filters or re-plans. Every function returns a
//! `String` and prints nothing, so output is testable and identical across runs.

pub mod candidate;
pub mod carbonio_prov;
pub mod graph;
pub mod json;
pub mod progress;
pub mod report;
pub mod text;
pub mod verify;

use crate::plan::{ActionKind, Effect};

/// The plan symbol of an action: `+` create, `~` convert or update, `-` delete, `<-` import.
pub fn symbol(kind: ActionKind) -> &'static str {
    match kind.effect() {
        Effect::Create => "+",
        Effect::Convert | Effect::Update => "~",
        Effect::Delete => "-",
        Effect::Import => "<-",
    }
}

/// Items listed one by one at the end of an apply; the rest are counted (the state lists all).
const SKIPPED_SHOWN: usize = 20;

/// The end of an apply: every failure with its reason, every person left out with why, the
/// items skipped, then the counts. "Apply complete!" only when nothing at all was left out.
pub fn apply_summary(applied: &crate::apply::Applied, style: text::Style) -> String {
    use crate::apply::ActionResult;
    use std::fmt::Write as _;
    let report = &applied.report;
    let mut out = String::new();
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, ActionResult::Failed { .. }))
        .collect();
    let skipped = report.count(|r| matches!(r, ActionResult::Skipped { .. }));
    let not_started = report.count(|r| matches!(r, ActionResult::NotStarted));
    let earlier = report.count(|r| matches!(r, ActionResult::AlreadyApplied));
    let queued = report.queued();
    for (id, r) in &failed {
        if let ActionResult::Failed { stale, message } = r {
            let _ = writeln!(
                out,
                "{} {id}: {message}",
                if *stale { "stale: " } else { "failed:" }
            );
        }
    }
    for l in &applied.left_out {
        let what = match l.status {
            crate::plan::Status::Error => "not migrated (error)",
            crate::plan::Status::Ambiguous => "not migrated (ambiguous)",
            _ => "not migrated (awaiting confirmation)",
        };
        let _ = writeln!(out, "{what}: {} ({}): {}", l.name, l.source, l.reason);
    }
    for s in applied.skipped.iter().take(SKIPPED_SHOWN) {
        let _ = writeln!(
            out,
            "bad item skipped: {} {}: {}: {}",
            s.source,
            s.kind.ledger_kind(),
            s.item.location,
            s.item.message
        );
    }
    if applied.skipped.len() > SKIPPED_SHOWN {
        let _ = writeln!(
            out,
            "... and {} more bad items (`mailplan state items PLAN --bad` lists them all)",
            text::thousands((applied.skipped.len() - SKIPPED_SHOWN) as u64)
        );
    }
    if queued > 0 {
        let _ = writeln!(
            out,
            "{} for `mailplan worker`: nothing of them is copied yet; `mailplan state progress` follows them.",
            text::count(queued as u64, "import queued", "imports queued")
        );
    }
    if let (n @ 1.., waited) = applied.throttled {
        let _ = writeln!(
            out,
            "throttled: servers asked to slow down {}; the copy waited {} in all (summed over parallel sessions)",
            text::count(n, "time", "times"),
            crate::items::throttle::human(waited)
        );
    }
    let head = if applied.complete() {
        "Apply complete!"
    } else if report.interrupted {
        "Apply interrupted."
    } else if applied.succeeded() && applied.left_out.is_empty() {
        "Apply finished; the item work is queued."
    } else if applied.succeeded() {
        "Apply finished; some persons await a decision."
    } else {
        "Apply finished with errors."
    };
    let mut not_migrated = crate::plan::NotMigrated::default();
    for l in &applied.left_out {
        match l.status {
            crate::plan::Status::Error => not_migrated.error += 1,
            crate::plan::Status::Ambiguous => not_migrated.ambiguous += 1,
            _ => not_migrated.needs_confirmation += 1,
        }
    }
    let _ = writeln!(
        out,
        "{} {} applied{}{}, {} failed, {} skipped{}{} in {:.1} s.{}",
        text::bold(style, head),
        report.applied() - earlier,
        if earlier > 0 {
            format!(" ({earlier} more by an earlier run)")
        } else {
            String::new()
        },
        if queued > 0 {
            format!(", {queued} queued")
        } else {
            String::new()
        },
        failed.len(),
        skipped,
        if not_started > 0 {
            format!(", {not_started} not started")
        } else {
            String::new()
        },
        match applied.skipped.len() {
            0 => String::new(),
            1 => ", 1 bad item skipped".to_string(),
            n => format!(", {} bad items skipped", text::thousands(n as u64)),
        },
        report.elapsed.as_secs_f64(),
        text::not_migrated(&not_migrated),
    );
    out
}
