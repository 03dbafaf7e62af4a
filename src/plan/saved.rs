//! Saved plans: the reviewed artefact that `apply FILE` carries out exactly.
//!
//! A saved plan is versioned, deterministic JSON (no timestamps, sorted maps) holding the plan and
//! fingerprints of what it was computed from: the plan file's text and every destination entry an
//! action depends on. Loading checks the format; comparing fingerprints is apply's job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::directory::entry::hex;
use crate::directory::{Dn, Snapshot};

use super::model::{Plan, Precondition};

pub const SAVED_FORMAT: &str = "mailplan-plan/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    /// The mailplan version that wrote it.
    pub mailplan_version: String,
    /// The plan file, as given on the command line.
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

impl SavedPlan {
    pub fn new(plan: Plan, plan_file: &str, plan_text: &str, destination: &Snapshot) -> Self {
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
                    | Precondition::Contains { object, .. } => note(object),
                }
            }
        }
        SavedPlan {
            format: SAVED_FORMAT.into(),
            mailplan_version: env!("CARGO_PKG_VERSION").into(),
            plan_file: plan_file.into(),
            plan_fingerprint: text_fingerprint(plan_text),
            entries,
            plan,
        }
    }

    /// Pretty JSON with a trailing newline; the same plan gives the same bytes.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn from_json(path: &str, text: &str) -> Result<Self, SavedPlanError> {
        if text.trim_start().chars().next().is_some_and(|c| c != '{') {
            return Err(SavedPlanError::PlanFile { path: path.into() });
        }
        let version = |found: Option<String>| SavedPlanError::Version {
            path: path.into(),
            found: found.unwrap_or_else(|| "none".into()),
        };
        // One parse of what is usually a large file; only when it fails is the `format` read
        // on its own, to tell another version's file from a damaged one.
        match serde_json::from_str::<SavedPlan>(text) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::FORMAT_VERSION;

    fn saved() -> SavedPlan {
        let plan = Plan {
            format_version: FORMAT_VERSION.into(),
            subjects: Vec::new(),
            actions: Vec::new(),
            summary: Plan::summarise(&[], &[]),
        };
        let destination = Snapshot::new(Vec::new()).unwrap();
        SavedPlan::new(plan, "plan.yaml", "version: 1\n", &destination)
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
