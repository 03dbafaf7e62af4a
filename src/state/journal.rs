//! The executor's journal, kept in the state database: a backup of every entry before it is
//! changed, and every action's outcome, both durable before the executor moves on.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::apply::{ActionResult, Journal};
use crate::directory::{Entry, ldif};
use crate::plan::{Action, ActionKind};

use super::time::{rfc3339, unix_seconds};
use super::{ActionRecord, ActionStatus, RunId, StateDb};

pub struct StateJournal {
    db: Mutex<StateDb>,
    run: RunId,
}

impl StateJournal {
    pub fn new(db: StateDb, run: RunId) -> Self {
        StateJournal {
            db: Mutex::new(db),
            run,
        }
    }

    /// Closes the run with its outcome (the counts come from the recorded actions).
    pub fn finish(&self, outcome: super::RunOutcome) -> Result<(), super::StateError> {
        self.db().finish_run(self.run, outcome)
    }

    /// The pending merges of these source persons need nothing more: their plan merged
    /// nothing because the mailbox already holds it all.
    pub fn settle(&self, sources: &[String]) -> Result<(), super::StateError> {
        let db = self.db();
        for source in sources {
            db.merged(self.run, source)?;
        }
        Ok(())
    }

    fn db(&self) -> std::sync::MutexGuard<'_, StateDb> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Journal for StateJournal {
    fn backup(&self, action: &Action, entry: &Entry) -> Result<(), String> {
        let text = ldif::entries_to_string(std::slice::from_ref(entry));
        let dn = entry.dn.to_string();
        let db = self.db();
        let stored = if action.kind == ActionKind::DeleteContact {
            // The contact's data reaches the mailbox only in the merge after the delete: until
            // then this backup is its only copy, and the next plan merges from it.
            db.backup_contact(
                self.run,
                &action.id,
                &dn,
                &text,
                &action.subject.to_string(),
            )
        } else {
            db.backup(self.run, &action.id, &dn, &text)
        };
        stored.map(drop).map_err(|e| e.to_string())
    }

    fn intend(&self, action: &Action) -> Result<(), String> {
        match action.kind {
            ActionKind::CreateMailbox
            | ActionKind::ConvertNtAccount
            | ActionKind::ConvertMailUser => self
                .db()
                .link(
                    self.run,
                    &action.id,
                    &action.subject.to_string(),
                    &action.target.to_string(),
                )
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    fn record(
        &self,
        action: &Action,
        result: &ActionResult,
        started: SystemTime,
        elapsed: Duration,
    ) {
        let (status, error) = match result {
            ActionResult::Applied => (ActionStatus::Applied, None),
            ActionResult::Failed {
                stale: true,
                message,
            } => (ActionStatus::Stale, Some(message.clone())),
            ActionResult::Failed { message, .. } => (ActionStatus::Failed, Some(message.clone())),
            ActionResult::Skipped { because } => {
                (ActionStatus::Skipped, Some(format!("{because} failed")))
            }
            // Recorded by the run that applied it.
            ActionResult::NotStarted | ActionResult::AlreadyApplied => return,
        };
        let rec = ActionRecord {
            run: self.run,
            action_id: action.id.clone(),
            kind: action.kind.as_str().into(),
            target: action.target.to_string(),
            status,
            error,
            started_at: rfc3339(unix_seconds(started)),
            ended_at: rfc3339(unix_seconds(started + elapsed)),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        if action.kind == ActionKind::MergeAttributes && result.is_applied() {
            if let Err(e) = self.db().merged(self.run, &action.subject.to_string()) {
                eprintln!(
                    "warning: could not record that the merge into {} is done (the next plan merges again, which changes nothing): {e}",
                    action.target
                );
            }
        }
        // The write itself already happened; a failure to record it is reported, and the next
        // plan still sees the directory as it is, so nothing is applied twice.
        if let Err(e) = self.db().record_action(&rec) {
            eprintln!(
                "warning: could not record the outcome of {}: {e}",
                action.id
            );
        }
    }
}
