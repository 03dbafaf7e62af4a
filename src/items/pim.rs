//! Calendars and contacts in plans and applies: choose the new and the changed items from the
//! source file, the ledger and the destination collection, and copy them.
//!
//! Calendars: an event is identified by its UID; contacts by their identity (normalised e-mail,
//! else name and company), with the destination's contacts known by every identity they can
//! stand for, so contacts another tool created are not copied again. An item in the ledger but
//! gone from the destination was deleted by its owner and is not copied back.
//!
//! New items are created (`If-None-Match: *`). The ledger remembers which version of each item
//! was copied ([`ItemVersion`]: the digest of its source content, the destination's ETag after
//! the copy), so an item changed at the source since is updated (`If-Match` with that ETag) —
//! but only while the destination still holds the version we wrote: when its ETag differs, its
//! owner edited it there, and their edit wins (counted as changed at the destination, never
//! overwritten; a 412 on the PUT means the same). An item whose version is unknown (copied
//! before versions were recorded, or a run stopped before the ETag was read back) is not
//! updated. The ledger row is written after the destination confirmed the PUT.

use std::collections::BTreeMap;

use crate::items::BadItem;
use crate::items::calendar::{
    self, CalDav, CalendarObject, CalendarStore, DavConfig, IcsFolder, PutOutcome,
};
use crate::items::contacts::{
    self, CardDav, Contact, ContactStore, VcardFolder, VcardObject, VcardVersion,
};
use crate::items::dav::DavError;
use crate::items::endpoints::{CalendarAt, CalendarEndpoints, ContactEndpoints, ContactsAt, DavAt};
use crate::items::store::sha256_hex;
pub use crate::state::ItemVersion;

/// What the ledger knows of one mailbox's items of one kind: identity → version copied.
pub type Copied = BTreeMap<String, ItemVersion>;

/// What is new or changed for one person, with the counts the plan shows.
pub struct PimSelection<T> {
    /// Neither in the ledger nor at the destination: created.
    pub copy: Vec<T>,
    /// Copied earlier and changed at the source since, with the destination's ETag of the version
    /// we wrote: updated only if it is still that version.
    pub update: Vec<(T, String)>,
    pub total: u64,
    pub deleted_at_destination: u64,
    /// Changed at the source, but edited by its owner at the destination too: left as it is.
    pub changed_at_destination: u64,
    pub bad: Vec<BadItem>,
}

/// Sorts one item into the selection, from whether the ledger and the destination hold it and
/// from the versions involved.
fn decide<T>(
    s: &mut PimSelection<T>,
    item: T,
    digest: &str,
    recorded: Option<&ItemVersion>,
    at_dest: bool,
    dest_etag: Option<&str>,
) {
    match (recorded, at_dest) {
        (None, false) => s.copy.push(item),
        (Some(_), false) => s.deleted_at_destination += 1,
        // At the destination without a ledger row: created there by someone else, or by a run
        // stopped before its ledger row; either way not ours to overwrite.
        (None, true) => {}
        (Some(v), true) => {
            let (Some(was), Some(etag_then)) = (v.digest.as_deref(), v.etag.as_deref()) else {
                return;
            };
            if was == digest {
                return;
            }
            match dest_etag {
                Some(now) if now == etag_then => s.update.push((item, now.to_string())),
                _ => s.changed_at_destination += 1,
            }
        }
    }
}

/// The digest a contact's version is recorded by: of its source fields, not of the vCard, so
/// that writing another vCard version (or a better conversion in a later mailplan) is not taken
/// for a change at the source.
pub fn contact_digest(c: &Contact) -> String {
    let mut text = String::new();
    for (k, v) in &c.fields {
        text.push_str(k);
        text.push('\0');
        text.push_str(v);
        text.push('\0');
    }
    sha256_hex(text.as_bytes())
}

fn dav_config(d: &DavAt) -> Result<DavConfig, String> {
    Ok(DavConfig {
        url: d.url.clone(),
        user: d.login.clone(),
        password: d
            .store
            .password
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .map_err(|e| format!("password: {e}"))?,
        ca_file: d.store.ca_file.clone(),
        insecure: d.store.insecure,
        timeout: d.store.timeout,
    })
}

/// A calendar destination of either kind.
pub enum Calendars {
    Folder(IcsFolder),
    Dav(Box<CalDav>),
}

impl Calendars {
    pub fn open(at: &CalendarAt) -> Result<Self, String> {
        Ok(match at {
            CalendarAt::IcsFolder(p) => Calendars::Folder(IcsFolder::new(p.clone())),
            CalendarAt::CalDav(d) => Calendars::Dav(Box::new(
                CalDav::new(&dav_config(d)?).map_err(|e| e.to_string())?,
            )),
        })
    }
    /// UID → ETag of what the destination holds.
    pub async fn list(&self) -> Result<BTreeMap<String, String>, String> {
        match self {
            Calendars::Folder(f) => f.list().await,
            Calendars::Dav(d) => d.list().await,
        }
        .map_err(|e| e.to_string())
    }
    /// Creates (`etag` `None`) or updates the version with that ETag.
    pub async fn put(
        &self,
        o: &CalendarObject,
        etag: Option<&str>,
    ) -> Result<PutOutcome, PutFailed> {
        match self {
            Calendars::Folder(f) => f.put(o, etag).await,
            Calendars::Dav(d) => d.put(o, etag).await,
        }
        .map_err(|e| PutFailed {
            gave_up: matches!(
                e,
                crate::items::calendar::CalendarError::Dav(DavError::Throttled { .. })
            ),
            message: e.to_string(),
        })
    }
}

/// A contacts destination of either kind.
pub enum AddressBook {
    Folder(VcardFolder),
    Dav(Box<CardDav>),
}

impl AddressBook {
    pub fn open(at: &ContactsAt) -> Result<Self, String> {
        Ok(match at {
            ContactsAt::VcardFolder(p) => AddressBook::Folder(VcardFolder::new(p.clone())),
            ContactsAt::CardDav(d) => {
                let v = if d.store.vcard_version == 3 {
                    VcardVersion::V3
                } else {
                    VcardVersion::V4
                };
                AddressBook::Dav(Box::new(
                    CardDav::new(&dav_config(d)?, v).map_err(|e| e.to_string())?,
                ))
            }
        })
    }
    pub fn version(&self) -> VcardVersion {
        match self {
            AddressBook::Folder(_) => VcardVersion::V4,
            AddressBook::Dav(d) => d.version(),
        }
    }
    /// UID → ETag of what the destination holds.
    pub async fn list(&self) -> Result<BTreeMap<String, String>, String> {
        match self {
            AddressBook::Folder(f) => f.list().await,
            AddressBook::Dav(d) => d.list().await,
        }
        .map_err(|e| e.to_string())
    }
    /// UID → ETag, and identity → UID, of what the destination holds.
    pub(crate) async fn held(
        &self,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), String> {
        let ids = match self {
            AddressBook::Folder(f) => f.identities().await,
            AddressBook::Dav(d) => d.identities().await,
        };
        let ids = ids.map_err(|e| e.to_string())?;
        Ok((self.list().await?, ids))
    }
    /// Creates (`etag` `None`) or updates the version with that ETag.
    pub async fn put(
        &self,
        card: &VcardObject,
        etag: Option<&str>,
    ) -> Result<PutOutcome, PutFailed> {
        match self {
            AddressBook::Folder(f) => f.put(card, etag).await,
            AddressBook::Dav(d) => d.put(card, etag).await,
        }
        .map_err(|e| PutFailed {
            gave_up: matches!(
                e,
                crate::items::contacts::ContactsError::Dav(DavError::Throttled { .. })
            ),
            message: e.to_string(),
        })
    }
}

/// Why one item was not written: the destination refused it (a bad item), or (`gave_up`) it
/// kept throttling and the import stops.
#[derive(Debug)]
pub struct PutFailed {
    pub message: String,
    pub gave_up: bool,
}

impl std::fmt::Display for PutFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The source file's items; a person without an export file has none.
pub(crate) fn missing_is_empty<T, E: std::fmt::Display>(
    r: Result<(Vec<T>, Vec<BadItem>), E>,
    path: &std::path::Path,
) -> Result<(Vec<T>, Vec<BadItem>), String> {
    match r {
        Ok(x) => Ok(x),
        Err(_) if !path.exists() => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(e.to_string()),
    }
}

fn selection<T>(total: usize, bad: Vec<BadItem>) -> PimSelection<T> {
    PimSelection {
        copy: Vec::new(),
        update: Vec::new(),
        total: total as u64,
        deleted_at_destination: 0,
        changed_at_destination: 0,
        bad,
    }
}

pub async fn select_calendar(
    ep: &CalendarEndpoints,
    ledger: &Copied,
) -> Result<(PimSelection<CalendarObject>, Calendars), String> {
    let (objects, bad) = missing_is_empty(calendar::read_ics(&ep.source), &ep.source)?;
    let dest = Calendars::open(&ep.destination)?;
    let there = if objects.is_empty() {
        BTreeMap::new()
    } else {
        dest.list().await?
    };
    let mut s = selection(objects.len(), bad);
    for o in objects {
        let etag = there.get(&o.uid).cloned();
        let recorded = ledger.get(&o.uid);
        let digest = o.digest.clone();
        decide(
            &mut s,
            o,
            &digest,
            recorded,
            etag.is_some(),
            etag.as_deref(),
        );
    }
    Ok((s, dest))
}

pub async fn select_contacts(
    ep: &ContactEndpoints,
    ledger: &Copied,
) -> Result<(PimSelection<Contact>, AddressBook), String> {
    let (rows, bad) = missing_is_empty(contacts::read_csv(&ep.source), &ep.source)?;
    let dest = AddressBook::open(&ep.destination)?;
    let (uids, ids) = if rows.is_empty() {
        Default::default()
    } else {
        dest.held().await?
    };
    let mut s = selection(rows.len(), bad);
    let mut seen = std::collections::BTreeSet::new();
    for c in rows {
        if !seen.insert(c.identity.clone()) {
            continue;
        }
        // Only the resource under the contact's own UID is ours to update; a contact another
        // tool holds under another UID only keeps it from being copied again.
        let etag = uids.get(&contacts::contact_uid(&c)).cloned();
        let at_dest = etag.is_some() || ids.contains_key(&c.identity);
        let recorded = ledger.get(&c.identity);
        let digest = contact_digest(&c);
        decide(&mut s, c, &digest, recorded, at_dest, etag.as_deref());
    }
    Ok((s, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(digest: &str, etag: &str) -> ItemVersion {
        ItemVersion {
            digest: Some(digest.into()),
            etag: Some(etag.into()),
        }
    }

    #[test]
    fn changed_items_are_updated_only_when_the_destination_holds_our_version() {
        let mut s = selection::<&str>(6, Vec::new());
        decide(&mut s, "new", "d", None, false, None);
        decide(
            &mut s,
            "same",
            "d",
            Some(&version("d", "e")),
            true,
            Some("e"),
        );
        decide(
            &mut s,
            "changed",
            "d2",
            Some(&version("d", "e")),
            true,
            Some("e"),
        );
        decide(
            &mut s,
            "edited",
            "d2",
            Some(&version("d", "e")),
            true,
            Some("e2"),
        );
        decide(&mut s, "gone", "d2", Some(&version("d", "e")), false, None);
        decide(
            &mut s,
            "unknown",
            "d2",
            Some(&ItemVersion::default()),
            true,
            Some("e"),
        );
        assert_eq!(s.copy, vec!["new"]);
        assert_eq!(s.update, vec![("changed", "e".to_string())]);
        assert_eq!(s.changed_at_destination, 1);
        assert_eq!(s.deleted_at_destination, 1);
    }

    #[test]
    fn contact_digest_follows_the_fields() {
        let mut c = Contact {
            identity: "email:a@example.com".into(),
            fields: [("email".to_string(), "a@example.com".to_string())].into(),
            line: 2,
        };
        let before = contact_digest(&c);
        c.line = 3;
        assert_eq!(contact_digest(&c), before);
        c.fields.insert("jobTitle".into(), "Boss".into());
        assert_ne!(contact_digest(&c), before);
    }
}
