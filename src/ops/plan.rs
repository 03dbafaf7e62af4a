//! `validate` and `plan`: check a plan file, then match and plan it (reading the directories,
//! the state's history and the item inventories), and save the plan for review.
//!
//! It hands the plan back to be rendered (`show`) and says in words what the command reports
//! after it; it never prints the plan, never writes to a directory or a mail store, and leaves
//! the exit code to the CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{
    Error, Inputs, Outcome, gather_items, load_checked_spec, load_history, load_inputs_for,
    load_spec, state_location, target, write_atomic_with,
};
use crate::matching;
use crate::plan::graph::ActionGraph;
use crate::plan::{self, Plan};
use crate::spec::Spec;

/// Checks a plan file: syntax, keys, DNs, filters, templates. Reads no directory.
pub fn validate(path: &Path) -> Result<Outcome, Error> {
    load_spec(path)?;
    Ok(Outcome::out(format!(
        "{} is a valid plan file.\n",
        path.display()
    )))
}

/// What `plan` is asked for.
pub struct PlanRequest<'a> {
    pub plan_file: &'a Path,
    /// `--target`: only these source persons (empty: the whole wave).
    pub targets: &'a [String],
    /// `--state-dir`, when given.
    pub state_dir: Option<&'a Path>,
    /// `--out`: where to save the plan for review.
    pub out: Option<&'a Path>,
}

/// A plan made now, with the inputs it was made from.
pub struct Planned {
    pub plan: Plan,
    /// What it was planned from.
    pub inputs: Inputs,
    saved_to: Option<PathBuf>,
}

/// What a plan comes to, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to change.
    NoChanges,
    /// Changes to apply.
    Changes,
    /// Some person could not be planned because of an error: the plan is not whole.
    LeftOut,
}

/// Plans a plan file: reads it and its secrets, both directories, the history of earlier
/// applies and the item inventories, then matches and plans; saves the plan when asked.
pub fn plan(request: &PlanRequest<'_>) -> Result<Planned, Error> {
    let mut spec = load_checked_spec(request.plan_file)?;
    target(&mut spec, request.targets)?;
    let state = state_location(&spec, request.state_dir)?;
    let mut inputs = load_inputs_for(spec)?;
    inputs.history = load_history(&state)?;
    gather_items(&mut inputs, &state)?;
    let plan = make_plan(&inputs)?;
    if let Some(out) = request.out {
        save_plan(out, &inputs, &plan, request.plan_file)?;
    }
    Ok(Planned {
        plan,
        inputs,
        saved_to: request.out.map(Path::to_path_buf),
    })
}

impl Planned {
    /// What the plan comes to.
    pub fn verdict(&self) -> Verdict {
        if self.plan.summary.not_migrated.error > 0 {
            Verdict::LeftOut
        } else if self.plan.has_changes() {
            Verdict::Changes
        } else {
            Verdict::NoChanges
        }
    }

    /// What is said after the plan, for standard error: where it was saved, and whether it
    /// leaves persons out.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(out) = &self.saved_to {
            notes.push(format!(
                "Saved the plan to {}. Review it with `mailplan show {}`.",
                out.display(),
                out.display()
            ));
        }
        let errors = self.plan.summary.not_migrated.error;
        if errors > 0 {
            // Everything that could be planned was printed; the plan is still not whole.
            notes.push(format!(
                "error: {errors} {} could not be planned, in whole or in part (see the errors above); applying this plan leaves {} out",
                if errors == 1 { "person" } else { "persons" },
                if errors == 1 { "that person" } else { "them" },
            ));
        }
        notes
    }

    /// Ends the command without freeing the plan and its inputs: the process exits next, and
    /// freeing hundreds of thousands of entries one by one would only delay the exit by
    /// seconds on large directories.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

/// A saved plan as it was saved, or a plan file planned now (reading only).
pub fn plan_of(input: &Path) -> Result<Plan, Error> {
    if super::is_saved_plan(input) {
        return Ok(super::load_saved(input)?.plan);
    }
    let mut inputs = super::load_inputs(input)?;
    let state = state_location(&inputs.spec, None)?;
    inputs.history = load_history(&state)?;
    gather_items(&mut inputs, &state)?;
    make_plan(&inputs)
}

/// Matches and plans: the pure core, with the graph checked.
pub fn make_plan(inputs: &Inputs) -> Result<Plan, Error> {
    let matches = matching::match_prepared(
        &inputs.spec,
        &inputs.source,
        &inputs.destination,
        &inputs.history.links,
        inputs.take_prepared(),
    );
    let plan = plan::plan_with_items(
        &inputs.spec,
        &inputs.source,
        &inputs.destination,
        &matches,
        &inputs.history,
        &inputs.inventories,
    )?;
    // Matching's indexes hold a key for every address, account and name of the destination
    // (about a million for 300,000 objects): freeing them here held up the graph check and
    // the text of the plan by 0.1 s.
    crate::parallel::drop_elsewhere(matches);
    ActionGraph::build(&plan)?;
    targeted(&inputs.spec, plan)
}

/// A plan made for `--target`s: each must be a person of the wave, and the plan says first that
/// it is not the whole wave.
fn targeted(spec: &Spec, mut plan: Plan) -> Result<Plan, Error> {
    let targets = &spec.source.targets;
    if targets.is_empty() {
        return Ok(plan);
    }
    let planned: BTreeSet<&crate::directory::Dn> =
        plan.subjects.iter().map(|s| &s.source).collect();
    if let Some(missing) = targets.iter().find(|t| !planned.contains(t)) {
        return Err(Error::TargetNotInWave(missing.to_string()));
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    plan.messages.insert(
        0,
        plan::Message {
            level: plan::Level::Warning,
            text: format!(
                "targeting is in effect: only the {} given with --target {} planned ({}), with what their actions need; the rest of the wave and its distribution lists are left out, so this is not the whole plan",
                if names.len() == 1 { "person".to_string() } else { format!("{} persons", names.len()) },
                if names.len() == 1 { "is" } else { "are" },
                names.join("; ")
            ),
        },
    );
    plan.summary.warnings += 1;
    Ok(plan)
}

/// Saves a plan for review and a later `apply FILE`.
/// The plan file's path is recorded relative to the saved plan's folder, so that the saved plan
/// finds it from wherever it is applied.
pub fn save_plan(out: &Path, inputs: &Inputs, plan: &Plan, plan_path: &Path) -> Result<(), Error> {
    let recorded = relative_from(out, plan_path);
    write_atomic_with(out, |f| {
        crate::plan::saved::write_saved(f, plan, &recorded, &inputs.spec.text, &inputs.destination)
    })
}

/// `target` as seen from the folder of the file `from` (`../plans/wave1.yaml`), with `/`
/// between levels; `target` as given when the two share no folder to start from (another
/// drive) or either cannot be resolved.
fn relative_from(from: &Path, target: &Path) -> String {
    use std::path::Component;
    let folder = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
    };
    let (Ok(base), Ok(dir), Some(name)) = (folder(from), folder(target), target.file_name()) else {
        return target.display().to_string();
    };
    let base: Vec<Component> = base.components().collect();
    let dir: Vec<Component> = dir.components().collect();
    if base.first() != dir.first() {
        return target.display().to_string();
    }
    let common = base.iter().zip(&dir).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(
        dir[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.push(name.to_string_lossy().into_owned());
    parts.join("/")
}
