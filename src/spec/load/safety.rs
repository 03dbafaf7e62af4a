//! The `safety` section: limits that stop an apply before it does more damage than a wave
//! should (today, how many objects one apply may delete).
//!
//! Checks the file only; the default when the file is silent is the model's
//! [`DEFAULT_MAX_DELETES`](crate::spec::model::DEFAULT_MAX_DELETES). Counting the deletions
//! and refusing is the apply's business, not this module's.

use super::*;

impl Checker<'_> {
    pub(super) fn safety(
        &mut self,
        s: Option<raw::Safety>,
        path: &YamlPath,
    ) -> crate::spec::model::Safety {
        let written = s.as_ref().and_then(|s| s.max_deletes);
        crate::spec::model::Safety {
            max_deletes: written.unwrap_or(crate::spec::model::DEFAULT_MAX_DELETES),
            max_deletes_span: written.map(|_| self.span(&path.key("max_deletes")).into()),
        }
    }
}
