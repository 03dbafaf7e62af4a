//! What earlier applies did that the directories alone do not show, as an input to planning.
//!
//! Two facts live only in the state database: which destination object mailplan created or
//! converted for a person (until the person's addresses reach it, nothing in the directory ties
//! them together), and contacts deleted whose data has not yet been merged into the person's
//! mailbox (a run killed between the delete and the merge). A third, contacts put back by `state
//! restore` after an apply deleted them, lets the plan say why it deletes one again. Matching and
//! planning read them from
//! here so that a rerun finishes what a killed run started instead of starting over. This module
//! is plain data: loading it from the state is `ops`'s job.

use std::collections::BTreeMap;

use crate::directory::{Dn, Entry};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Source person → the destination object an earlier apply created or converted for them.
    pub links: BTreeMap<Dn, Dn>,
    /// Source person → contacts deleted for them whose data awaits the merge, as they were
    /// before the delete, in DN order.
    pub pending: BTreeMap<Dn, Vec<Entry>>,
    /// Contacts an apply deleted and `state restore` put back since, with when (the restore
    /// run's start): planned for deletion again, the plan says so.
    pub restored: BTreeMap<Dn, String>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.pending.is_empty()
    }
}
