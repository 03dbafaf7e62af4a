//! The `merge` section: how contact data is merged into a person's account, and which
//! attributes.
//!
//! Checks the file only; the defaults here are those the planner uses when the file is silent.

use super::*;

/// Attributes merged from contacts when the plan file does not say.
pub const DEFAULT_MERGE_ATTRIBUTES: [&str; 14] = [
    "telephoneNumber",
    "mobile",
    "facsimileTelephoneNumber",
    "title",
    "department",
    "company",
    "physicalDeliveryOfficeName",
    "streetAddress",
    "l",
    "st",
    "postalCode",
    "c",
    "description",
    "info",
];

impl Checker<'_> {
    pub(super) fn merge(&mut self, m: raw::Merge, path: &YamlPath) -> Option<Merge> {
        let policy = match m.policy.unwrap_or(raw::MergePolicy::FillEmpty) {
            raw::MergePolicy::FillEmpty => MergePolicy::FillEmpty,
            raw::MergePolicy::PreferContact => MergePolicy::PreferContact,
            raw::MergePolicy::PreferDestination => MergePolicy::PreferDestination,
        };
        let attributes = match m.attributes {
            Some(list) => self.attr_list(&list, &path.key("attributes"))?,
            None => DEFAULT_MERGE_ATTRIBUTES
                .iter()
                .map(|a| AttrName::new_unchecked(a))
                .collect(),
        };
        Some(Merge { policy, attributes })
    }
}
