//! Rendering plans for people (`text`), machines (`json`) and pictures (`graph`: DOT, Mermaid).
//!
//! Rendering only renders: it never decides, filters or re-plans. Every function returns a
//! `String` and prints nothing, so output is testable and identical across runs.

pub mod graph;
pub mod json;
pub mod text;

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

/// The end of an apply: counts, then every failure with its reason and every skip with its cause.
pub fn apply_summary(report: &crate::apply::Report, style: text::Style) -> String {
    use crate::apply::ActionResult;
    use std::fmt::Write as _;
    let mut out = String::new();
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, ActionResult::Failed { .. }))
        .collect();
    let skipped = report.count(|r| matches!(r, ActionResult::Skipped { .. }));
    let not_started = report.count(|r| matches!(r, ActionResult::NotStarted));
    let earlier = report.count(|r| matches!(r, ActionResult::AlreadyApplied));
    for (id, r) in &failed {
        if let ActionResult::Failed { stale, message } = r {
            let _ = writeln!(
                out,
                "{} {id}: {message}",
                if *stale { "stale: " } else { "failed:" }
            );
        }
    }
    let head = if report.succeeded() {
        "Apply complete!"
    } else if report.interrupted {
        "Apply interrupted."
    } else {
        "Apply finished with errors."
    };
    let _ = writeln!(
        out,
        "{} {} applied{}, {} failed, {} skipped{} in {:.1} s.",
        text::bold(style, head),
        report.applied() - earlier,
        if earlier > 0 {
            format!(" ({earlier} more by an earlier run)")
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
        report.elapsed.as_secs_f64()
    );
    out
}
