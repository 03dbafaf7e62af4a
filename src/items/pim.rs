//! Calendars and contacts in plans and applies: choose the new items from the source file, the
//! ledger and the destination collection, and copy them.
//!
//! Calendars: an event is identified by its UID; contacts by their identity (normalised e-mail,
//! else name and company), with the destination's contacts known by every identity they can
//! stand for, so contacts another tool created are not copied again. An item in the ledger but
//! gone from the destination was deleted by its owner and is not copied back. Items are created
//! only (`If-None-Match: *`); an event changed at the source after it was copied is not updated.
//! The ledger row is written after the destination confirmed the PUT.

use std::collections::{BTreeMap, BTreeSet};

use crate::items::BadItem;
use crate::items::calendar::{
    self, CalDav, CalendarObject, CalendarStore, DavConfig, IcsFolder, PutOutcome,
};
use crate::items::contacts::{
    self, CardDav, Contact, ContactStore, VcardFolder, VcardObject, VcardVersion,
};
use crate::items::endpoints::{CalendarAt, CalendarEndpoints, ContactEndpoints, ContactsAt, DavAt};

/// What is new for one person, with the counts the plan shows.
pub struct PimSelection<T> {
    pub copy: Vec<T>,
    pub total: u64,
    pub deleted_at_destination: u64,
    pub bad: Vec<BadItem>,
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
    async fn list(&self) -> Result<BTreeMap<String, String>, String> {
        match self {
            Calendars::Folder(f) => f.list().await,
            Calendars::Dav(d) => d.list().await,
        }
        .map_err(|e| e.to_string())
    }
    pub async fn put(&self, o: &CalendarObject) -> Result<PutOutcome, String> {
        match self {
            Calendars::Folder(f) => f.put(o, None).await,
            Calendars::Dav(d) => d.put(o, None).await,
        }
        .map_err(|e| e.to_string())
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
    async fn held(&self) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
        let (uids, ids) = match self {
            AddressBook::Folder(f) => (f.list().await, f.identities().await),
            AddressBook::Dav(d) => (d.list().await, d.identities().await),
        };
        let uids = uids.map_err(|e| e.to_string())?.into_keys().collect();
        let ids = ids.map_err(|e| e.to_string())?.into_keys().collect();
        Ok((uids, ids))
    }
    pub async fn put(&self, card: &VcardObject) -> Result<PutOutcome, String> {
        match self {
            AddressBook::Folder(f) => f.put(card, None).await,
            AddressBook::Dav(d) => d.put(card, None).await,
        }
        .map_err(|e| e.to_string())
    }
}

/// The source file's items; a person without an export file has none.
fn missing_is_empty<T, E: std::fmt::Display>(
    r: Result<(Vec<T>, Vec<BadItem>), E>,
    path: &std::path::Path,
) -> Result<(Vec<T>, Vec<BadItem>), String> {
    match r {
        Ok(x) => Ok(x),
        Err(_) if !path.exists() => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn select_calendar(
    ep: &CalendarEndpoints,
    ledger: &BTreeSet<String>,
) -> Result<(PimSelection<CalendarObject>, Calendars), String> {
    let (objects, bad) = missing_is_empty(calendar::read_ics(&ep.source), &ep.source)?;
    let dest = Calendars::open(&ep.destination)?;
    let there = if objects.is_empty() {
        BTreeMap::new()
    } else {
        dest.list().await?
    };
    let mut s = PimSelection {
        copy: Vec::new(),
        total: objects.len() as u64,
        deleted_at_destination: 0,
        bad,
    };
    for o in objects {
        let in_ledger = ledger.contains(&o.uid);
        let at_dest = there.contains_key(&o.uid);
        if in_ledger && !at_dest {
            s.deleted_at_destination += 1;
        }
        if !in_ledger && !at_dest {
            s.copy.push(o);
        }
    }
    Ok((s, dest))
}

pub async fn select_contacts(
    ep: &ContactEndpoints,
    ledger: &BTreeSet<String>,
) -> Result<(PimSelection<Contact>, AddressBook), String> {
    let (rows, bad) = missing_is_empty(contacts::read_csv(&ep.source), &ep.source)?;
    let dest = AddressBook::open(&ep.destination)?;
    let (uids, ids) = if rows.is_empty() {
        Default::default()
    } else {
        dest.held().await?
    };
    let mut s = PimSelection {
        copy: Vec::new(),
        total: rows.len() as u64,
        deleted_at_destination: 0,
        bad,
    };
    let mut seen = BTreeSet::new();
    for c in rows {
        if !seen.insert(c.identity.clone()) {
            continue;
        }
        let in_ledger = ledger.contains(&c.identity);
        let at_dest = ids.contains(&c.identity) || uids.contains(&contacts::contact_uid(&c));
        if in_ledger && !at_dest {
            s.deleted_at_destination += 1;
        }
        if !in_ledger && !at_dest {
            s.copy.push(c);
        }
    }
    Ok((s, dest))
}
