//! Items: what a person owns besides the directory entry (mail, calendars, contacts), read from a
//! source and written to a destination one item at a time.
//!
//! This module holds the leaf libraries only: parsers, converters and stores that do the I/O for
//! one item kind. They decide nothing about what to copy: the planner chooses, from inventories,
//! and apply calls `put` for what it chose.

pub mod calendar;
pub mod contacts;
pub mod dav;
pub mod store;

/// One source item that cannot be copied: reported with where it is, skipped, counted; the rest of
/// the person's items go on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct BadItem {
    /// `path:line`, or `path: UID x` when a line says less than the identity.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for BadItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}
