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
