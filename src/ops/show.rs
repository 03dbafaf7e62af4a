//! Rendering a plan that exists: `show` (a saved plan as text or JSON), `graph` (dot or
//! mermaid) and `report` (the audit of a wave as markdown, CSV or HTML). The choice of renderer
//! for each format is made here, once, for every command that prints a plan.
//!
//! It renders and writes report files; it never plans anything new beyond reading a plan file
//! the way `plan` does, and it writes to the stream the CLI gives it, never to stdout itself.

use std::io::Write;
use std::path::Path;

use super::{Error, Outcome, load_saved, write_atomic};
use crate::plan::Plan;
use crate::render::{self, text::Style};
use crate::spec::Flavor;

/// How a plan is printed by `plan` and `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Terraform-like text, for people.
    Text,
    /// The JSON that schemas/plan-output.schema.json describes.
    Json,
    /// A `carbonio prov -f` batch of the directory actions (Carbonio plans only).
    CarbonioProv,
}

/// Writes a plan in `format`, streamed as it is rendered. `flavor` is the destination flavor
/// the plan file names, when it is known: a `carbonio prov` batch is refused for any other.
pub fn write_plan(
    plan: &Plan,
    format: Format,
    flavor: Option<Flavor>,
    style: Style,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let written = match format {
        Format::Json => render::json::write(plan, out),
        Format::Text => render::text::write(plan, style, out),
        Format::CarbonioProv => {
            if let Some(f) = flavor {
                render::carbonio_prov::check_flavor(flavor_name(f))?;
            }
            let batch = render::carbonio_prov::render(plan)?;
            out.write_all(batch.as_bytes())
        }
    };
    written.map_err(|e| Error::Write {
        path: "<stdout>".into(),
        source: e,
    })
}

/// The name a plan file gives `flavor`.
pub fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::ActiveDirectory => "active-directory",
        Flavor::Ldap => "ldap",
        Flavor::Carbonio => "carbonio",
    }
}

/// The plan a saved plan holds, as it was saved, and the destination flavor its plan file
/// names when that file can still be read (it is only read, never planned).
pub fn show(file: &Path) -> Result<(Plan, Option<Flavor>), Error> {
    let saved = load_saved(file)?;
    let flavor = crate::spec::load(Path::new(&saved.plan_file))
        .ok()
        .map(|s| s.destination.flavor);
    Ok((saved.plan, flavor))
}

/// How `graph` draws a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// The graph of a saved plan or of a plan file planned now.
pub fn graph(input: &Path, format: GraphFormat) -> Result<String, Error> {
    let plan = super::plan::plan_of(input)?;
    Ok(match format {
        GraphFormat::Dot => render::graph::dot(&plan),
        GraphFormat::Mermaid => render::graph::mermaid(&plan),
    })
}

/// The audit of a wave, for standard output or written whole to `out`.
pub fn report(
    input: &Path,
    format: render::report::Format,
    out: Option<&Path>,
) -> Result<Outcome, Error> {
    let plan = super::plan::plan_of(input)?;
    let text = render::report::render(&plan, format);
    match out {
        Some(path) => {
            write_atomic(path, &text)?;
            Ok(Outcome::note(format!(
                "Wrote the report to {}.",
                path.display()
            )))
        }
        None => Ok(Outcome::out(text)),
    }
}
