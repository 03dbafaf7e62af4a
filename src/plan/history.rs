//! What earlier applies did that the directories alone do not show, as an input to planning.
//!
//! Two facts live only in the state database: which destination object mailplan created or
//! converted for a person (until the person's addresses reach it, nothing in the directory ties
//! them together), and contacts deleted whose data has not yet been merged into the person's
//! mailbox (a run killed between the delete and the merge). Matching and planning read them from
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
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.pending.is_empty()
    }
}
