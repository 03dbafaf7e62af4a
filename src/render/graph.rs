//! The action graph as a picture: Graphviz DOT and Mermaid flowcharts.

use std::fmt::Write as _;

use super::symbol;
use crate::plan::{Effect, Plan};

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT: one node per action, an edge from each dependency to its dependent.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph mailplan {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n",
    );
    for a in &plan.actions {
        let color = match a.kind.effect() {
            Effect::Create => "darkgreen",
            Effect::Convert | Effect::Update => "darkgoldenrod",
            Effect::Delete => "firebrick",
            Effect::Import => "steelblue",
        };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{} {}\\n{}\", color={color}];",
            dot_escape(&a.id),
            symbol(a.kind),
            a.kind.as_str(),
            dot_escape(&a.target.to_string())
        );
    }
    for a in &plan.actions {
        for d in &a.depends_on {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", dot_escape(d), dot_escape(&a.id));
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// A Mermaid flowchart; nodes are numbered in plan order, which is stable for a given plan.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    let index: std::collections::BTreeMap<&str, usize> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    for (i, a) in plan.actions.iter().enumerate() {
        let _ = writeln!(
            out,
            "  a{i}[\"{} {}<br/>{}\"]",
            mermaid_escape(symbol(a.kind)),
            a.kind.as_str(),
            mermaid_escape(&a.target.to_string())
        );
    }
    for (i, a) in plan.actions.iter().enumerate() {
        for d in &a.depends_on {
            if let Some(j) = index.get(d.as_str()) {
                let _ = writeln!(out, "  a{j} --> a{i}");
            }
        }
    }
    out
}
