//! Items: the mail, calendars and contacts copied into each person's destination mailbox.
//!
//! This module holds what the rest of mailplan sees of items: the per-person endpoints (the
//! plan file's templates expanded for one person), the inventories (what the source holds, what
//! the ledger and the destination already have, and so what is new), and the identities that
//! make "copied once, ever" checkable. Inventories are gathered by I/O code (`inventory`) before
//! planning and handed to the pure planner as data; `import` does the copying during apply.
//! Deciding what is new (`mail::new_messages`) is pure and shared by plan and apply, so the two
//! cannot disagree about it. The leaf libraries for calendars (`calendar`) and contacts
//! (`contacts`, with `dav` and `store` under both) parse, convert and store one item at a time
//! and decide nothing.

pub mod calendar;
pub mod caps;
pub mod contacts;
pub mod dav;
pub mod endpoints;
pub mod folders;
pub mod identity;
pub mod import;
pub mod inventory;
pub mod mail;
pub mod mutf7;
pub mod pim;
pub mod split;
pub mod store;
pub mod throttle;
pub mod work;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::directory::Dn;

pub use endpoints::{PersonEndpoints, endpoints_for};

/// An item that could not be read or was refused, reported and skipped; the rest of its
/// mailbox goes on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BadItem {
    /// `path:line`, `path: UID x`, or `folder/message` for mail.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for BadItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The three kinds of items, as the ledger names them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Mail,
    Calendar,
    Contacts,
}

impl ItemKind {
    /// The ledger's `kind` column.
    pub fn ledger_kind(self) -> &'static str {
        match self {
            ItemKind::Mail => "mail",
            ItemKind::Calendar => "event",
            ItemKind::Contacts => "contact",
        }
    }
}

/// What one import would copy for one person, as counted at plan time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Items at the source (after folder excludes and `since`).
    pub total: u64,
    /// Items that are neither in the ledger nor at the destination: what apply copies.
    pub new: u64,
    /// Items copied earlier and changed at the source since (calendars and contacts): apply
    /// updates them.
    pub changed: u64,
    /// Bytes of the new and the changed items.
    pub new_bytes: u64,
    /// Folders (mail) that hold new items.
    pub new_folders: u64,
    /// Items already copied according to the ledger but no longer at the destination: their
    /// owner deleted them, so they are not copied again.
    pub deleted_at_destination: u64,
    /// Mail: per source folder, messages that are the same message again (same identity into
    /// the same destination folder); each is copied once.
    pub folded: BTreeMap<String, u64>,
    /// Mail: folders the destination lacks, which the import makes (also empty ones).
    pub create_folders: u64,
    /// Mail: folders subscribed at the source that the import subscribes at the destination.
    pub subscribe_folders: u64,
    /// Mail: folders mailplan made or filled before that their owner deleted since; not made
    /// again.
    pub folders_deleted_at_destination: u64,
    /// Mail: subscriptions mailplan added that their owner removed since; not added again.
    pub unsubscribed_at_destination: u64,
    /// Items changed at the source whose copy their owner edited at the destination: the
    /// owner's edit is kept, they are not updated.
    pub changed_at_destination: u64,
    pub bad: Vec<BadItem>,
    /// The destination could not be opened (its mailbox does not exist yet, say): counted as
    /// empty. The planner plans the import only when the plan itself creates or converts that
    /// mailbox; otherwise this is an error.
    pub destination_unavailable: Option<String>,
    /// Why the inventory could not be taken (a store that cannot be read, say); the import is
    /// then planned with unknown counts and apply reports the failure.
    pub error: Option<String>,
}

/// One person's inventories, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonInventory {
    pub mail: Option<Inventory>,
    pub calendar: Option<Inventory>,
    pub contacts: Option<Inventory>,
}

/// Every person's inventories, by source DN.
pub type Inventories = BTreeMap<Dn, PersonInventory>;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm); `None` for a
/// date that does not exist.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Bytes for people: `4.1 MiB`, `812 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        for z in [-1000, 0, 11_017, 19_000, 20_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), Some(z));
        }
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(4_300_000), "4.1 MiB");
    }
}
