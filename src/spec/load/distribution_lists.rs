//! The `distribution_lists` section: which source entries are lists, include/exclude, and the
//! container for new lists.
//!
//! Checks the file only; whether the DNs exist is `against`'s job.

use super::*;

/// Which source entries are distribution lists when the plan file does not say.
pub const DEFAULT_GROUP_FILTER: &str = "(|(objectClass=dominoGroup)(objectClass=groupOfNames))";

impl Checker<'_> {
    pub(super) fn distribution_lists(
        &mut self,
        l: raw::DistributionLists,
        path: &YamlPath,
    ) -> Option<DistributionLists> {
        let filter = match l.filter {
            Some(f) => self.filter(&f, &path.key("filter")),
            None => Filter::parse(DEFAULT_GROUP_FILTER).ok(),
        };
        let include = self.dn_list(l.include.as_deref(), &path.key("include"));
        let exclude = self.dn_list(l.exclude.as_deref(), &path.key("exclude"));
        self.included_and_excluded(&include, &exclude, path);
        let container = l
            .container
            .map(|c| self.container(&c, &path.key("container")));
        Some(DistributionLists {
            filter: filter?,
            include: values(include)?,
            exclude: values(exclude)?,
            container: checked(container)?,
        })
    }
}
