//! The deletion guard: an apply refuses, before it writes anything, a plan that deletes more
//! destination objects than the plan file's `safety.max_deletes` allows (500 unless it says).
//!
//! A wrong source filter or destination classification can turn a wave into a mass deletion;
//! the guard makes that a refusal that names the count and the limit instead. Pure: it looks at
//! the plan and the plan file, nothing else.

use miette::{Diagnostic, SourceSpan};

use crate::plan::Plan;
use crate::spec::Spec;

/// A plan that deletes more than the plan file allows.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error(
    "this plan deletes {count} destination {}, more than the {limit} that `safety.max_deletes` in `{path}` allows; nothing was written",
    if *count == 1 { "object" } else { "objects" }
)]
#[diagnostic(
    code(mailplan::apply::too_many_deletes),
    help(
        "review the deletions (`mailplan plan` lists every `- delete_contact`); if they are meant, raise `safety: {{ max_deletes: N }}` in the plan file, or apply the wave in parts with --target"
    )
)]
pub struct TooManyDeletes {
    pub count: u64,
    pub limit: u64,
    pub path: String,
    #[source_code]
    pub src: crate::snippet::Snippet,
    #[label("the limit")]
    pub span: Option<SourceSpan>,
}

/// Refuses `plan` when it deletes more than `spec` allows.
pub fn check_deletes(plan: &Plan, spec: &Spec) -> Result<(), Box<TooManyDeletes>> {
    let count = plan.summary.delete as u64;
    let limit = spec.safety.max_deletes;
    if count <= limit {
        return Ok(());
    }
    let path = spec.path.display().to_string();
    Err(Box::new(TooManyDeletes {
        count,
        limit,
        src: crate::snippet::Snippet::new(path.clone(), "yaml", &spec.text, &[]),
        path,
        span: spec.safety.max_deletes_span,
    }))
}
