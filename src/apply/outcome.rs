//! What one apply did, as a whole: every action's result, the persons the plan left out, and
//! the items the imports skipped. This is what the summary is rendered from and what decides the
//! exit code: a run is complete only when every action applied, no person was left out for an
//! error, and no item was skipped. It decides nothing about what to apply.

use crate::directory::Dn;
use crate::items::{BadItem, ItemKind};
use crate::plan::{LeftOut, Status};

use super::Report;

/// One item an import left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedItem {
    /// The person whose item it is.
    pub source: Dn,
    pub kind: ItemKind,
    pub item: BadItem,
}

/// An apply's outcome.
#[derive(Debug, Clone)]
pub struct Applied {
    pub report: Report,
    /// Persons the plan does not migrate, with why (errors, ambiguities, confirmations).
    pub left_out: Vec<LeftOut>,
    /// Items skipped as bad: those this run's imports found, and those the plan found for
    /// persons whose import did not run; by person and kind, each in the order found.
    pub skipped: Vec<SkippedItem>,
    /// Answers of servers that said "not now" during the copy, and the time waited for them
    /// (summed over sessions working at once).
    pub throttled: (u64, std::time::Duration),
}

impl Applied {
    /// A run with nothing left out beyond its actions.
    pub fn of(report: Report) -> Self {
        Applied {
            report,
            left_out: Vec::new(),
            skipped: Vec::new(),
            throttled: (0, std::time::Duration::ZERO),
        }
    }

    /// Persons left out because of an error.
    pub fn errors(&self) -> impl Iterator<Item = &LeftOut> {
        self.left_out.iter().filter(|l| l.status == Status::Error)
    }

    /// Everything arrived: every action applied, no person failed, no item was skipped.
    /// Ambiguous persons and persons awaiting confirmation are decisions: they are named in the
    /// summary but do not make the run fail.
    pub fn succeeded(&self) -> bool {
        self.report.succeeded() && self.errors().next().is_none() && self.skipped.is_empty()
    }

    /// `succeeded`, nobody was left for a decision, and no import is still queued for the
    /// workers: only then is it "complete".
    pub fn complete(&self) -> bool {
        self.succeeded() && self.left_out.is_empty() && self.report.queued() == 0
    }
}
