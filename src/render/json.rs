//! The `--json` output: the plan exactly as data, described by `schemas/plan-output.schema.json`.

use crate::plan::Plan;

/// Streams pretty JSON with a trailing newline; large plans never exist twice in memory.
pub fn write(plan: &Plan, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
    out.write_all(b"\n")
}

/// Pretty JSON with a trailing newline.
pub fn render(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

/// The JSON Schema of `render`'s output, generated from the plan types so it cannot drift.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Plan);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
