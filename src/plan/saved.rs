//! Saved plans: the reviewed artefact that `apply FILE` carries out exactly.
//!
//! A saved plan is versioned, deterministic JSON (no timestamps, sorted maps) holding the plan and
//! fingerprints of what it was computed from: the plan file's text and every destination entry an
//! action depends on. Loading checks the format; comparing fingerprints is apply's job.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::directory::entry::hex;
use crate::directory::{Dn, Snapshot};

use super::model::{Plan, Precondition, Summary};

pub const SAVED_FORMAT: &str = "mailplan-plan/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    /// The mailplan version that wrote it.
    pub mailplan_version: String,
    /// The plan file: in the file, its path relative to the saved plan's folder; once loaded
    /// (`ops::load_saved`), a path that leads to it from here.
    pub plan_file: String,
    /// SHA-256 of the plan file's text.
    pub plan_fingerprint: String,
    /// Fingerprints of the destination entries the actions depend on (absent: must not exist).
    pub entries: BTreeMap<String, Option<String>>,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SavedPlanError {
    #[error("`{path}` is not a mailplan saved plan: {error}")]
    #[diagnostic(
        code(mailplan::saved::corrupt),
        help("make it again with `mailplan plan PLAN.yaml --out {path}`")
    )]
    Corrupt {
        path: String,
        error: serde_json::Error,
    },
    #[error("`{path}` is a plan file, not a saved plan")]
    #[diagnostic(
        code(mailplan::saved::yaml),
        help("run `mailplan plan {path}` to see its plan, or save one with `--out FILE`")
    )]
    PlanFile { path: String },
    #[error("`{path}` is a saved plan of format `{found}`; this mailplan reads `{SAVED_FORMAT}`")]
    #[diagnostic(
        code(mailplan::saved::version),
        help("make the plan again with this version of mailplan")
    )]
    Version { path: String, found: String },
}

pub fn text_fingerprint(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())))
}

/// Fingerprints of the destination entries `plan`'s actions depend on (`None`: absent).
fn recorded_entries(plan: &Plan, destination: &Snapshot) -> BTreeMap<String, Option<String>> {
    let mut entries = BTreeMap::new();
    let mut note = |dn: &Dn| {
        entries
            .entry(dn.to_string())
            .or_insert_with(|| destination.get(dn).map(|e| e.fingerprint()));
    };
    for a in &plan.actions {
        note(&a.target);
        for c in &a.changes {
            if let Some(o) = &c.object {
                note(o);
            }
        }
        for p in &a.preconditions {
            match p {
                Precondition::Absent { object }
                | Precondition::Exists { object, .. }
                | Precondition::Values { object, .. }
                | Precondition::Contains { object, .. }
                | Precondition::Lacks { object, .. } => note(object),
            }
        }
    }
    entries
}

/// What [`SavedPlan`] serialises, field for field, with everything borrowed.
#[derive(Serialize)]
struct Saving<'a> {
    format: &'a str,
    mailplan_version: &'a str,
    plan_file: &'a str,
    plan_fingerprint: &'a str,
    entries: &'a BTreeMap<String, Option<String>>,
    plan: &'a Plan,
}

/// Writes the saved plan of `plan` to `out`, the same bytes as
/// `SavedPlan::new(plan, ..).to_json()` but as they are made: a large plan is neither copied
/// nor held whole as text first.
pub fn write_saved(
    mut out: impl std::io::Write,
    plan: &Plan,
    plan_file: &str,
    plan_text: &str,
    destination: &Snapshot,
) -> std::io::Result<()> {
    let entries = recorded_entries(plan, destination);
    let fingerprint = text_fingerprint(plan_text);
    Saving {
        format: SAVED_FORMAT,
        mailplan_version: env!("CARGO_PKG_VERSION"),
        plan_file,
        plan_fingerprint: &fingerprint,
        entries: &entries,
        plan,
    }
    .write(&mut out)
}

impl Saving<'_> {
    /// Pretty JSON with a trailing newline; the same plan gives the same bytes.
    fn write(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")
    }
}

impl SavedPlan {
    pub fn new(plan: Plan, plan_file: &str, plan_text: &str, destination: &Snapshot) -> Self {
        SavedPlan {
            format: SAVED_FORMAT.into(),
            mailplan_version: env!("CARGO_PKG_VERSION").into(),
            plan_file: plan_file.into(),
            plan_fingerprint: text_fingerprint(plan_text),
            entries: recorded_entries(&plan, destination),
            plan,
        }
    }

    /// Pretty JSON with a trailing newline; the same plan gives the same bytes.
    pub fn to_json(&self) -> String {
        let saving = Saving {
            format: &self.format,
            mailplan_version: &self.mailplan_version,
            plan_file: &self.plan_file,
            plan_fingerprint: &self.plan_fingerprint,
            entries: &self.entries,
            plan: &self.plan,
        };
        let mut out = Vec::new();
        // Writing to memory does not fail, and serde_json writes UTF-8.
        let _ = saving.write(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn from_json(path: &str, text: &str) -> Result<Self, SavedPlanError> {
        if text.trim_start().chars().next().is_some_and(|c| c != '{') {
            return Err(SavedPlanError::PlanFile { path: path.into() });
        }
        let version = |found: Option<String>| SavedPlanError::Version {
            path: path.into(),
            found: found.unwrap_or_else(|| "none".into()),
        };
        // One parse of what is usually a large file; only when it fails is it parsed again in
        // one piece, for the place of the error, and the `format` read on its own, to tell
        // another version's file from a damaged one.
        let whole = match parse_side_by_side(text) {
            Ok(saved) => Ok(saved),
            Err(_) => serde_json::from_str::<SavedPlan>(text),
        };
        match whole {
            Ok(saved) if saved.format == SAVED_FORMAT => Ok(saved),
            Ok(saved) => Err(version(Some(saved.format))),
            Err(error) => {
                #[derive(Deserialize)]
                struct Head {
                    format: Option<String>,
                }
                match serde_json::from_str::<Head>(text) {
                    Ok(Head { format }) if format.as_deref() != Some(SAVED_FORMAT) => {
                        Err(version(format))
                    }
                    _ => Err(SavedPlanError::Corrupt {
                        path: path.into(),
                        error,
                    }),
                }
            }
        }
    }
}

/// A saved plan with its subjects and actions still as JSON text (borrowed from the file).
#[derive(Deserialize)]
struct Outline<'a> {
    format: String,
    mailplan_version: String,
    plan_file: String,
    plan_fingerprint: String,
    entries: BTreeMap<String, Option<String>>,
    #[serde(borrow)]
    plan: PlanOutline<'a>,
}

#[derive(Deserialize)]
struct PlanOutline<'a> {
    format_version: String,
    #[serde(default)]
    messages: Vec<crate::plan::Message>,
    #[serde(borrow)]
    subjects: Vec<&'a RawValue>,
    #[serde(borrow)]
    actions: Vec<&'a RawValue>,
    summary: Summary,
}

/// Parses a saved plan as `serde_json` would in one piece, but its subjects and actions (most
/// of a large file, and most of the work: every DN in them is parsed and checked) side by side
/// on the cores, after one quick pass over the file finds where each begins and ends. Another
/// version's file is given back with only its outline read, for the caller to refuse by its
/// format.
fn parse_side_by_side(text: &str) -> Result<SavedPlan, serde_json::Error> {
    let outline: Outline = serde_json::from_str(text)?;
    let (subjects, actions) = if outline.format == SAVED_FORMAT {
        let threads = crate::parallel::cores();
        (
            parse_each(outline.plan.subjects, threads)?,
            parse_each(outline.plan.actions, threads)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(SavedPlan {
        format: outline.format,
        mailplan_version: outline.mailplan_version,
        plan_file: outline.plan_file,
        plan_fingerprint: outline.plan_fingerprint,
        entries: outline.entries,
        plan: Plan {
            format_version: outline.plan.format_version,
            messages: outline.plan.messages,
            subjects,
            actions,
            summary: outline.plan.summary,
        },
    })
}

/// Parses each of `raw`, in order, in runs on `threads` threads.
fn parse_each<T: DeserializeOwned + Send>(
    raw: Vec<&RawValue>,
    threads: usize,
) -> Result<Vec<T>, serde_json::Error> {
    crate::parallel::map(raw, threads, 1000, |r| serde_json::from_str(r.get()))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Action, FORMAT_VERSION, Subject};

    fn saved() -> SavedPlan {
        let plan = Plan {
            format_version: FORMAT_VERSION.into(),
            messages: Vec::new(),
            subjects: Vec::new(),
            actions: Vec::new(),
            summary: Plan::summarise(&[], &[]),
        };
        let destination = Snapshot::new(Vec::new()).unwrap();
        SavedPlan::new(plan, "plan.yaml", "version: 1\n", &destination)
    }

    /// A large saved plan, parsed in runs on several threads, is the plan parsed in one piece;
    /// damage in one of its actions is reported where the one-piece parse finds it.
    #[test]
    fn a_plan_parsed_side_by_side_is_the_plan_parsed_in_one_piece() {
        let inputs = crate::generate::generated_inputs(1_500, 3_000, 11);
        let plan = crate::ops::make_plan(&inputs).unwrap();
        assert!(plan.actions.len() > 2_000, "{} actions", plan.actions.len());
        let saved = SavedPlan::new(plan, "plan.yaml", &inputs.spec.text, &inputs.destination);
        let json = saved.to_json();
        let whole: SavedPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(whole, saved);
        let mut written = Vec::new();
        write_saved(
            &mut written,
            &saved.plan,
            "plan.yaml",
            &inputs.spec.text,
            &inputs.destination,
        )
        .unwrap();
        assert!(
            written == json.as_bytes(),
            "written as made, the same bytes"
        );
        for threads in [1, 2, 3] {
            let outline: Outline = serde_json::from_str(&json).unwrap();
            let actions: Vec<Action> = parse_each(outline.plan.actions, threads).unwrap();
            let subjects: Vec<Subject> = parse_each(outline.plan.subjects, threads).unwrap();
            assert_eq!(actions, saved.plan.actions, "{threads} threads");
            assert_eq!(subjects, saved.plan.subjects, "{threads} threads");
        }
        assert_eq!(SavedPlan::from_json("p.json", &json).unwrap(), saved);

        // An attribute name that is no attribute name, in an action late in the file.
        let last = saved.plan.actions.last().unwrap();
        let attribute = last.changes[0].attribute.as_str();
        let at = json
            .rfind(&format!("\"attribute\": \"{attribute}\""))
            .unwrap();
        let damaged = format!(
            "{}\"attribute\": \"not an attribute!\"{}",
            &json[..at],
            &json[at + format!("\"attribute\": \"{attribute}\"").len()..]
        );
        let expected = serde_json::from_str::<SavedPlan>(&damaged).unwrap_err();
        match SavedPlan::from_json("p.json", &damaged) {
            Err(SavedPlanError::Corrupt { error, .. }) => {
                assert_eq!(
                    (error.line(), error.column()),
                    (expected.line(), expected.column())
                );
                assert_eq!(error.to_string(), expected.to_string());
            }
            other => panic!("{other:?}"),
        }
    }

    /// A saved plan reads back as written; another version's file, one with no format and a
    /// damaged one each get their own error.
    #[test]
    fn saved_plans_are_told_apart_from_other_versions_and_damage() {
        let json = saved().to_json();
        assert_eq!(SavedPlan::from_json("p.json", &json).unwrap(), saved());

        let other = json.replace(SAVED_FORMAT, "mailplan-plan/0");
        let reshaped = r#"{"format": "mailplan-plan/9", "steps": []}"#;
        for (text, found) in [
            (other.as_str(), "mailplan-plan/0"),
            (reshaped, "mailplan-plan/9"),
        ] {
            match SavedPlan::from_json("p.json", text) {
                Err(SavedPlanError::Version { found: f, .. }) => assert_eq!(f, found),
                e => panic!("{e:?}"),
            }
        }
        assert!(matches!(
            SavedPlan::from_json("p.json", r#"{"plan": {}}"#),
            Err(SavedPlanError::Version { found, .. }) if found == "none"
        ));
        assert!(matches!(
            SavedPlan::from_json("p.json", &json[..json.len() / 2]),
            Err(SavedPlanError::Corrupt { .. })
        ));
        assert!(matches!(
            SavedPlan::from_json("p.yaml", "version: 1\n"),
            Err(SavedPlanError::PlanFile { .. })
        ));
    }
}
