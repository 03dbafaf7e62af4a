//! Verification after a copy: per person and folder, what the source holds, what the
//! destination holds and what the ledger says was copied, and every difference explained.
//!
//! This is the check imapsync users make by hand with its per-folder host1/host2 listing, done
//! for mail, calendars and contacts. The verdicts here are pure functions of three inventories
//! taken beforehand (`gather` does that I/O with the item backends): the source listing, the
//! destination listing and the ledger. Each source item lands in exactly one bucket: copied,
//! already at the destination, deleted there by its owner after the copy, a bad item, excluded
//! by the plan (`exclude`, `since`), the same item twice at the source (copied once), or
//! missing. A collection is complete when nothing is missing and nothing is bad; `verify` exits
//! 1 unless every collection the plan means to copy is complete.

pub mod gather;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::items::mail::{FolderListing, Ledger, ledger_identity};
use crate::items::{BadItem, ItemKind, folders, identity::base};
use crate::spec::FolderMapping;

/// The version of the `verify --json` format.
pub const FORMAT_VERSION: &str = "1";

/// Where each source item of one collection (a mail folder, a calendar, an address book) ended
/// up, and what the destination holds besides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// In the ledger and at the destination.
    pub copied: u64,
    /// At the destination without a ledger row: there before mailplan came, or put there by
    /// another tool.
    pub already_there: u64,
    /// In the ledger but gone from the destination: deleted there by its owner after the copy,
    /// and on purpose never copied back.
    pub deleted_at_destination: u64,
    /// Bad items: unreadable at the source, a folder whose name cannot be stored, or refused
    /// by the destination. Not arrived; a later apply retries what the destination refused.
    pub bad: u64,
    /// In a folder the plan excludes (`items.mail.folders.exclude`).
    pub excluded: u64,
    /// Older than the plan's `items.mail.since`.
    pub before_since: u64,
    /// The same item again at the source (same identity into the same place): copied once.
    pub duplicates: u64,
    /// Meant to be copied and neither at the destination nor in the ledger.
    pub missing: u64,
    /// At the destination and not at the source (new mail delivered there, say). Not a problem.
    pub only_at_destination: u64,
}

/// One collection's verdict: a mail folder, a calendar or an address book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Collection {
    pub kind: ItemKind,
    /// Mail: the destination folder (a folder the plan excludes, or whose name cannot be
    /// stored, by its source name). Calendars and contacts: none.
    pub folder: Option<String>,
    /// Mail: the source folders that map into `folder`, sorted.
    pub source_folders: Vec<String>,
    /// Items at the source (bad ones and excluded ones included).
    pub source: u64,
    /// Items at the destination.
    pub destination: u64,
    /// Items the ledger records as copied here.
    pub ledger: u64,
    pub counts: Counts,
    /// Where each missing item is at the source (`folder/key`, `file: UID x`, `file:line`).
    pub missing: Vec<String>,
    /// Each bad item, with where it is and why.
    pub bad: Vec<String>,
}

impl Collection {
    fn new(kind: ItemKind, folder: Option<String>) -> Self {
        Collection {
            kind,
            folder,
            source_folders: Vec::new(),
            source: 0,
            destination: 0,
            ledger: 0,
            counts: Counts::default(),
            missing: Vec::new(),
            bad: Vec::new(),
        }
    }

    /// Everything the plan means to copy arrived (or was deleted there by its owner).
    pub fn complete(&self) -> bool {
        self.counts.missing == 0 && self.counts.bad == 0
    }
}

/// The inventories of one mailbox's mail, as `gather` takes them.
#[derive(Debug, Clone, Default)]
pub struct MailInventory {
    pub source: Vec<FolderListing>,
    pub destination: Vec<FolderListing>,
    /// The destination's level separator (for [`folders::check_name`]).
    pub delimiter: Option<char>,
    pub ledger: Ledger,
    /// The ledger's bad items of this mailbox (`location: message`), as recorded by apply.
    pub refused: BTreeSet<String>,
}

/// Whether the ledger records `location` (`folder/key`) as refused by the destination.
fn refused(records: &BTreeSet<String>, location: &str) -> bool {
    let prefix = format!("{location}: ");
    records
        .range(prefix.clone()..)
        .next()
        .is_some_and(|r| r.starts_with(&prefix))
}

/// Verifies one mailbox, folder by folder (sorted by name). The sorting into buckets follows
/// `mail::new_messages`, so verify and plan agree about what the plan means to copy. Pure.
pub fn verify_mail(
    inv: &MailInventory,
    mapping: &FolderMapping,
    since: Option<i64>,
) -> Vec<Collection> {
    let mut rows: BTreeMap<String, Collection> = BTreeMap::new();
    // The destination as `new_messages` sees it, with how often each identity is there.
    let mut at_dest: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for f in inv.destination.iter().filter(|f| !f.skipped) {
        let ids = at_dest.entry(f.name.as_str()).or_default();
        for m in &f.messages {
            *ids.entry(m.identity.as_str()).or_default() += 1;
        }
    }
    let mut seen: BTreeSet<(String, &str)> = BTreeSet::new();
    let mut seen_base: BTreeSet<(String, &str)> = BTreeSet::new();
    let mut matched: BTreeMap<String, u64> = BTreeMap::new();
    for folder in &inv.source {
        let bad_here = folder.bad.iter().map(BadItem::to_string);
        let mapped = if folder.skipped {
            None
        } else {
            destination_folder(mapping, &folder.name, inv.delimiter)
        };
        let dest = match &mapped {
            Some(Ok(dest)) => dest.clone(),
            _ => {
                // Excluded, a name without a logical form, or one the destination cannot store:
                // a row under the source name.
                let r = row(&mut rows, &folder.name);
                r.source_folders.push(folder.name.clone());
                let n = folder.messages.len() as u64;
                r.source += n + folder.bad.len() as u64;
                match mapped {
                    None if !folder.skipped => r.counts.excluded += n,
                    None => {}
                    Some(Err(why)) => {
                        r.counts.bad += n;
                        r.bad.push(format!(
                            "folder `{}`: its destination name cannot be stored safely: {why}",
                            folder.name
                        ));
                    }
                    Some(Ok(_)) => {}
                }
                r.counts.bad += folder.bad.len() as u64;
                r.bad.extend(bad_here);
                continue;
            }
        };
        let r = row(&mut rows, &dest);
        r.source_folders.push(folder.name.clone());
        r.source += (folder.messages.len() + folder.bad.len()) as u64;
        r.counts.bad += folder.bad.len() as u64;
        r.bad.extend(bad_here);
        let there = at_dest.get(dest.as_str());
        for m in &folder.messages {
            if since.is_some_and(|t| m.internal_date < t) {
                r.counts.before_since += 1;
                continue;
            }
            if !seen.insert((dest.clone(), m.identity.as_str())) {
                r.counts.duplicates += 1;
                continue;
            }
            let first = seen_base.insert((dest.clone(), base(&m.identity)));
            let in_ledger = inv
                .ledger
                .messages
                .contains(&ledger_identity(&dest, &m.identity))
                || (first
                    && inv
                        .ledger
                        .messages
                        .contains(&ledger_identity(&dest, base(&m.identity))));
            let is_there = there.is_some_and(|t| t.contains_key(m.identity.as_str()));
            let location = format!("{}/{}", folder.name, m.key);
            match (in_ledger, is_there) {
                (true, true) => r.counts.copied += 1,
                (false, true) => r.counts.already_there += 1,
                (true, false) => r.counts.deleted_at_destination += 1,
                (false, false) if refused(&inv.refused, &location) => {
                    r.counts.bad += 1;
                    r.bad
                        .push(format!("{location}: refused by the destination"));
                }
                (false, false) => {
                    r.counts.missing += 1;
                    r.missing.push(location);
                }
            }
            if is_there {
                *matched.entry(dest.clone()).or_default() += 1;
            }
        }
    }
    // The destination side: every folder there, with what is only there.
    for f in inv.destination.iter().filter(|f| !f.skipped) {
        let r = row(&mut rows, &f.name);
        r.destination = f.messages.len() as u64;
        let hit = matched.get(&f.name).copied().unwrap_or(0);
        r.counts.only_at_destination = r.destination.saturating_sub(hit);
    }
    for id in &inv.ledger.messages {
        if let Some((folder, _)) = id.split_once('\t')
            && let Some(r) = rows.get_mut(folder)
        {
            r.ledger += 1;
        }
    }
    let mut out: Vec<Collection> = rows.into_values().collect();
    for r in &mut out {
        r.source_folders.sort();
        r.source_folders.dedup();
    }
    out
}

/// The mail row of a folder, made when it is first met.
fn row<'a>(rows: &'a mut BTreeMap<String, Collection>, name: &str) -> &'a mut Collection {
    rows.entry(name.to_string())
        .or_insert_with(|| Collection::new(ItemKind::Mail, Some(name.to_string())))
}

/// The destination name of a source folder: `None` when the plan excludes it, `Err` with the
/// reason when the destination cannot store it.
fn destination_folder(
    mapping: &FolderMapping,
    source: &str,
    delimiter: Option<char>,
) -> Option<Result<String, String>> {
    let dest = folders::map_folder(mapping, source)?;
    Some(folders::check_name(&dest, delimiter).map(|()| dest))
}

/// One calendar or contact at the source, as verify needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceItem {
    /// The ledger's identity (a UID for events; the contact identity for contacts).
    pub identity: String,
    /// Every key under which the destination may hold it (`DestinationItems::keys`).
    pub keys: Vec<String>,
    /// Where it is at the source, as apply names it in a bad-item record.
    pub location: String,
}

/// What one calendar or address book holds at the destination.
#[derive(Debug, Clone, Default)]
pub struct DestinationItems {
    /// How many resources the collection holds.
    pub count: u64,
    /// Every key a resource can be found by (its UID, the contact identities it stands for).
    pub keys: BTreeSet<String>,
}

/// Verifies one calendar or address book. Pure.
pub fn verify_collection(
    kind: ItemKind,
    source: &[SourceItem],
    source_bad: &[BadItem],
    destination: &DestinationItems,
    ledger: &BTreeSet<String>,
    refused_records: &BTreeSet<String>,
) -> Collection {
    let mut r = Collection::new(kind, None);
    r.source = (source.len() + source_bad.len()) as u64;
    r.destination = destination.count;
    r.ledger = ledger.len() as u64;
    r.counts.bad = source_bad.len() as u64;
    r.bad = source_bad.iter().map(BadItem::to_string).collect();
    let mut seen = BTreeSet::new();
    let mut matched = 0;
    for item in source {
        if !seen.insert(item.identity.as_str()) {
            r.counts.duplicates += 1;
            continue;
        }
        let in_ledger = ledger.contains(&item.identity);
        let there = item.keys.iter().any(|k| destination.keys.contains(k));
        matched += u64::from(there);
        match (in_ledger, there) {
            (true, true) => r.counts.copied += 1,
            (false, true) => r.counts.already_there += 1,
            (true, false) => r.counts.deleted_at_destination += 1,
            (false, false) if refused(refused_records, &item.location) => {
                r.counts.bad += 1;
                r.bad
                    .push(format!("{}: refused by the destination", item.location));
            }
            (false, false) => {
                r.counts.missing += 1;
                r.missing.push(item.location.clone());
            }
        }
    }
    r.counts.only_at_destination = r.destination.saturating_sub(matched);
    r
}

/// How a person came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonStatus {
    /// Everything the plan means to copy arrived.
    Complete,
    /// Something is missing or bad; the collections say where.
    Short,
    /// Ambiguous or awaiting confirmation: a decision, so nothing was meant to be copied.
    NotMigrated,
    /// Its stores could not be read, or its templates do not expand: nothing could be checked.
    Error,
}

/// One person's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PersonVerdict {
    pub source: String,
    pub status: PersonStatus,
    /// Why the person is not migrated, or the errors that kept a kind from being checked.
    pub reasons: Vec<String>,
    /// Per kind (mail, calendar, contacts), where its items go: the ledger's name of the
    /// mailbox or collection.
    pub destinations: Vec<Place>,
    pub collections: Vec<Collection>,
}

/// Where one kind of a person's items goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Place {
    pub kind: ItemKind,
    pub name: String,
}

/// What one person's stores held, as `gather` read them; `Err` for a kind that could not be
/// read.
#[derive(Debug, Clone, Default)]
pub struct PersonInventory {
    pub mail: Option<(String, Result<MailInventory, String>)>,
    pub calendar: Option<(String, Result<PimInventory, String>)>,
    pub contacts: Option<(String, Result<PimInventory, String>)>,
}

/// One calendar's or address book's inventories.
#[derive(Debug, Clone, Default)]
pub struct PimInventory {
    pub source: Vec<SourceItem>,
    pub bad: Vec<BadItem>,
    pub destination: DestinationItems,
    pub ledger: BTreeSet<String>,
    pub refused: BTreeSet<String>,
}

/// What matching decided for a person, as far as verify cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Migrated: everything the plan selects is meant to be copied.
    Migrate,
    /// Ambiguous or awaiting confirmation, with why: nothing was meant to be copied.
    NotMigrated(String),
    /// The plan file's pins cannot be honoured for this person: it could not be planned.
    Error(String),
}

/// A person's verdict from their inventories and matching's decision about them. Pure.
pub fn verify_person(
    source: &str,
    inv: &PersonInventory,
    decision: &Decision,
    mapping: &FolderMapping,
    since: Option<i64>,
) -> PersonVerdict {
    let mut v = PersonVerdict {
        source: source.to_string(),
        status: PersonStatus::Complete,
        reasons: Vec::new(),
        destinations: Vec::new(),
        collections: Vec::new(),
    };
    match decision {
        Decision::Migrate => {}
        Decision::NotMigrated(why) => {
            v.status = PersonStatus::NotMigrated;
            v.reasons.push(why.clone());
            return v;
        }
        Decision::Error(why) => {
            v.status = PersonStatus::Error;
            v.reasons.push(why.clone());
            return v;
        }
    }
    if let Some((name, mail)) = &inv.mail {
        v.destinations.push(Place {
            kind: ItemKind::Mail,
            name: name.clone(),
        });
        match mail {
            Ok(m) => v.collections.extend(verify_mail(m, mapping, since)),
            Err(e) => v.reasons.push(format!("mail: {e}")),
        }
    }
    for (kind, label, pim) in [
        (ItemKind::Calendar, "calendar", &inv.calendar),
        (ItemKind::Contacts, "contacts", &inv.contacts),
    ] {
        let Some((name, pim)) = pim else { continue };
        v.destinations.push(Place {
            kind,
            name: name.clone(),
        });
        match pim {
            Ok(p) => v.collections.push(verify_collection(
                kind,
                &p.source,
                &p.bad,
                &p.destination,
                &p.ledger,
                &p.refused,
            )),
            Err(e) => v.reasons.push(format!("{label}: {e}")),
        }
    }
    v.status = if !v.reasons.is_empty() {
        PersonStatus::Error
    } else if v.collections.iter().all(Collection::complete) {
        PersonStatus::Complete
    } else {
        PersonStatus::Short
    };
    v
}

/// Totals over the wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub persons: u64,
    pub complete: u64,
    pub short: u64,
    pub not_migrated: u64,
    pub errors: u64,
    /// Items over every collection, by bucket.
    pub items: Counts,
}

/// The whole verification, as `verify --json` prints it (schemas/verify-output.schema.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Verification {
    pub format_version: String,
    /// Persons in source DN order.
    pub persons: Vec<PersonVerdict>,
    pub summary: Summary,
}

impl Verification {
    /// Collects person verdicts (sorted by source DN) and totals them.
    pub fn new(mut persons: Vec<PersonVerdict>) -> Self {
        persons.sort_by(|a, b| a.source.cmp(&b.source));
        let mut s = Summary {
            persons: persons.len() as u64,
            ..Default::default()
        };
        for p in &persons {
            match p.status {
                PersonStatus::Complete => s.complete += 1,
                PersonStatus::Short => s.short += 1,
                PersonStatus::NotMigrated => s.not_migrated += 1,
                PersonStatus::Error => s.errors += 1,
            }
            for c in &p.collections {
                let (t, n) = (&mut s.items, &c.counts);
                t.copied += n.copied;
                t.already_there += n.already_there;
                t.deleted_at_destination += n.deleted_at_destination;
                t.bad += n.bad;
                t.excluded += n.excluded;
                t.before_since += n.before_since;
                t.duplicates += n.duplicates;
                t.missing += n.missing;
                t.only_at_destination += n.only_at_destination;
            }
        }
        Verification {
            format_version: FORMAT_VERSION.into(),
            persons,
            summary: s,
        }
    }

    /// Everything the plan means to copy arrived: no person short, none in error.
    pub fn complete(&self) -> bool {
        self.summary.short == 0 && self.summary.errors == 0
    }
}

#[cfg(test)]
mod tests;
