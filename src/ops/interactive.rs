//! `plan --interactive`: the soft candidates of a plan file, each with what the two
//! directories say of the person and of the candidate, and the answers written back into the
//! plan file (`matching.confirmed`, `matching.ignore`) through `spec::edit` and the one atomic
//! write.
//!
//! It plans and reads as `plan` does, and writes only the plan file, only with the answers it
//! is given, and only when the file is still as it was when the questions were made. It never
//! asks anything itself: the CLI asks at its terminal.

use std::path::{Path, PathBuf};

use super::plan::{PlanRequest, plan};
use super::{Error, Outcome, is_saved_plan, write_atomic};
use crate::directory::{Dn, Entry};
use crate::matching::Via;
use crate::plan::Status;
use crate::render::candidate::{Card, Pair};
use crate::spec::edit::{Answers, record_answers};

/// One question: may `candidate` be the destination object of `source`?
pub struct Question {
    pub source: Dn,
    pub candidate: Dn,
    /// The two side by side, for `render::candidate`.
    pub pair: Pair,
}

/// The questions of one plan file, with the text they were made from.
pub struct Asking {
    plan_file: PathBuf,
    text: String,
    pub questions: Vec<Question>,
}

/// Refuses a saved plan: its matches were decided when it was made.
pub fn refuse_saved_plan(input: &Path) -> Result<(), Error> {
    if is_saved_plan(input) {
        return Err(Error::InteractiveSavedPlan(input.to_path_buf()));
    }
    Ok(())
}

/// Plans the plan file and lists its soft candidates: of every person that awaits a
/// confirmation (interactive mode), and of every person for whom a new mailbox would duplicate
/// an existing account (batch mode's warnings), in the plan's order.
pub fn questions(request: &PlanRequest<'_>) -> Result<Asking, Error> {
    refuse_saved_plan(request.plan_file)?;
    let planned = plan(&PlanRequest {
        out: None,
        ..*request
    })?;
    let inputs = &planned.inputs;
    let mut questions = Vec::new();
    for subject in &planned.plan.subjects {
        if !matches!(
            subject.status,
            Status::NeedsConfirmation | Status::Planned | Status::Unchanged
        ) {
            continue;
        }
        for c in &subject.candidates {
            if !matches!(c.via, Via::SamAccountName | Via::Cn) {
                continue;
            }
            let person = inputs.source.get(&subject.source);
            let object = inputs.destination.get(&c.object);
            questions.push(Question {
                source: subject.source.clone(),
                candidate: c.object.clone(),
                pair: Pair {
                    person: person.map_or_else(|| bare(&subject.source), source_card),
                    candidate: object.map_or_else(|| bare(&c.object), destination_card),
                    found_by: format!("{} {}", c.via.describe(), c.value),
                    position: (0, 0),
                },
            });
        }
    }
    let total = questions.len();
    for (i, q) in questions.iter_mut().enumerate() {
        q.pair.position = (i + 1, total);
    }
    let text = inputs.spec.text.clone();
    planned.leak();
    Ok(Asking {
        plan_file: request.plan_file.to_path_buf(),
        text,
        questions,
    })
}

impl Asking {
    /// Writes the answers into the plan file, refusing when the file changed since it was
    /// planned (someone else's edit is never overwritten). The outcome's note says what was
    /// written and what was skipped.
    pub fn record(&self, answers: &Answers, skipped: &[(Dn, Dn)]) -> Result<Outcome, Error> {
        let mut note = String::new();
        if !answers.is_empty() {
            let now = std::fs::read(&self.plan_file).map_err(|e| Error::Read {
                what: "plan file",
                path: self.plan_file.clone(),
                source: e,
            })?;
            if now != self.text.as_bytes() {
                return Err(Error::PlanFileChangedWhileAsking(self.plan_file.clone()));
            }
            let edited = record_answers(&self.text, answers).map_err(|e| Error::EditPlanFile {
                path: self.plan_file.clone(),
                message: e.0,
            })?;
            // What is written must load as the plan file it was.
            crate::spec::parse(&self.plan_file, &edited).map_err(|_| Error::EditPlanFile {
                path: self.plan_file.clone(),
                message: "the edited file would not load".into(),
            })?;
            write_atomic(&self.plan_file, &edited)?;
            note.push_str(&format!(
                "Wrote {} confirmed and {} ignored to {}.",
                answers.confirmed.len(),
                answers.ignore.len(),
                self.plan_file.display()
            ));
        } else {
            note.push_str("Nothing was answered; the plan file is unchanged.");
        }
        if !skipped.is_empty() {
            note.push_str(&format!(
                "\n{} soft {} left unanswered:",
                skipped.len(),
                if skipped.len() == 1 {
                    "candidate"
                } else {
                    "candidates"
                }
            ));
            for (s, c) in skipped {
                note.push_str(&format!("\n  {s}  ?  {c}"));
            }
        }
        Ok(Outcome::note(note))
    }
}

fn bare(dn: &Dn) -> Card {
    Card {
        dn: dn.to_string(),
        ..Card::default()
    }
}

/// Values of the first of `attrs` that has any, without duplicates (compared without case).
fn texts(entry: &Entry, attrs: &[&str], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in attrs {
        for v in entry.texts(a) {
            if keep(v) && !out.iter().any(|o| o.eq_ignore_ascii_case(v)) {
                out.push(v.to_string());
            }
        }
    }
    out
}

fn first(entry: &Entry, attrs: &[&str]) -> Option<String> {
    attrs.iter().find_map(|a| entry.text(a)).map(str::to_string)
}

/// A source person: its names, addresses and department as its directory holds them.
fn source_card(e: &Entry) -> Card {
    Card {
        dn: e.dn.to_string(),
        names: texts(e, &["cn", "displayName", "uid", "shortName"], |v| {
            !v.contains('@') && !v.contains('=')
        }),
        addresses: texts(e, &["mail", "uid", "cn"], |v| v.contains('@')),
        department: first(e, &["department", "departmentNumber", "ou"]),
        last_logon: first(e, &["lastLogon", "lastLogonTimestamp"]).map(|v| logon(&v)),
    }
}

/// A destination object: names, addresses (`mail`, `proxyAddresses`, `targetAddress`), the
/// department and the last logon Active Directory records.
fn destination_card(e: &Entry) -> Card {
    Card {
        dn: e.dn.to_string(),
        names: texts(
            e,
            &["cn", "displayName", "sAMAccountName", "userPrincipalName"],
            |_| true,
        ),
        addresses: texts(e, &["mail", "proxyAddresses", "targetAddress"], |_| true),
        department: first(e, &["department", "departmentNumber"]),
        last_logon: first(e, &["lastLogonTimestamp", "lastLogon"]).map(|v| logon(&v)),
    }
}

/// Active Directory's logon times are FILETIMEs (100 ns since 1601); 0 means never. Other
/// values are shown as written.
fn logon(value: &str) -> String {
    match value.trim().parse::<i64>() {
        Ok(0) => "never".into(),
        Ok(t) if t > 0 => crate::state::time::rfc3339(t / 10_000_000 - 11_644_473_600),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logon_times_are_read_as_filetimes() {
        assert_eq!(super::logon("0"), "never");
        assert_eq!(super::logon("133540128000000000"), "2024-03-04T08:00:00Z");
        assert_eq!(super::logon("20240306080000Z"), "20240306080000Z");
    }
}
