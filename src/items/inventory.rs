//! Inventories at plan time: for every person, what the source holds, what the ledger and the
//! destination already have, and so what apply will copy.
//!
//! This is I/O (stores are listed, the ledger is read) done before planning, so the planner can
//! stay pure and receive the result as data. It reads only: headers and UIDs, never bodies, and
//! it never creates a folder or a state database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::directory::Dn;
use crate::items::endpoints::{MailEndpoints, PersonEndpoints};
use crate::items::mail::{self, Selection, Store};
use crate::items::{Inventories, Inventory, ItemKind, PersonInventory, contacts, pim};
use crate::spec::{MailItems, Spec};
use crate::state::{Location, StateDb};

/// How many mailboxes are listed at once.
const CONCURRENCY: usize = 8;

/// The mail ledger (messages copied, folders made and subscribed) per destination mailbox,
/// read once for every mailbox in the wave. A missing state database is an empty ledger (the
/// first plan), and is not created.
pub fn read_ledger(
    state: Option<&Location>,
    mailboxes: &BTreeSet<String>,
) -> Result<BTreeMap<String, mail::Ledger>, crate::state::StateError> {
    let mut out = BTreeMap::new();
    let Some(db) = state.map(StateDb::open_existing_at).transpose()?.flatten() else {
        return Ok(out);
    };
    for mailbox in mailboxes {
        let ledger = mail::Ledger {
            messages: db.ledger_identities(mailbox, ItemKind::Mail.ledger_kind())?,
            folders: db.ledger_identities(mailbox, mail::FOLDER_KIND)?,
        };
        out.insert(mailbox.clone(), ledger);
    }
    Ok(out)
}

/// The ledger's identities with their recorded versions per (mailbox, kind), for calendars and
/// contacts, read like [`read_ledger`].
pub fn read_versions(
    state: Option<&Location>,
    mailboxes: &BTreeSet<(String, ItemKind)>,
) -> Result<BTreeMap<(String, ItemKind), pim::Copied>, crate::state::StateError> {
    let mut out = BTreeMap::new();
    let Some(db) = state.map(StateDb::open_existing_at).transpose()?.flatten() else {
        return Ok(out);
    };
    for (mailbox, kind) in mailboxes {
        let versions = db.ledger_versions(mailbox, kind.ledger_kind())?;
        out.insert((mailbox.clone(), *kind), versions);
    }
    Ok(out)
}

/// Lists both stores of one person's mail and decides what is new.
pub async fn select_mail(
    ep: &MailEndpoints,
    items: &MailItems,
    ledger: &mail::Ledger,
) -> Result<(Selection, Store, Store), mail::MailError> {
    select_mail_in(ep, items, ledger, |l| l).await
}

/// `select_mail` over the part of the source listing `part` keeps (a folder unit's folders,
/// see [`crate::items::split::unit_listing`]); the destination is listed whole.
pub async fn select_mail_in(
    ep: &MailEndpoints,
    items: &MailItems,
    ledger: &mail::Ledger,
    part: impl FnOnce(Vec<mail::FolderListing>) -> Vec<mail::FolderListing>,
) -> Result<(Selection, Store, Store), mail::MailError> {
    let mut source = Store::open(&ep.source).await?;
    let listing = part(source.list().await?);
    let mut destination = Store::open(&ep.destination).await?;
    let at_dest = destination.destination().await?;
    let selection = mail::new_messages(&listing, &items.folders, items.since, ledger, &at_dest);
    Ok((selection, source, destination))
}

/// `select_mail` for plans: a destination that cannot be opened (a mailbox this plan is about to
/// create does not exist yet) counts as empty, with the reason; one whose server cannot be
/// reached or does not answer in time is an error, not an empty mailbox.
pub async fn select_mail_for_plan(
    ep: &MailEndpoints,
    items: &MailItems,
    ledger: &mail::Ledger,
) -> Result<(Selection, Option<String>), mail::MailError> {
    let mut source = Store::open(&ep.source).await?;
    let listing = source.list().await?;
    source.close().await;
    let (at_dest, unavailable) = match Store::open(&ep.destination).await {
        Ok(mut d) => {
            let ids = d.destination().await?;
            d.close().await;
            (ids, None)
        }
        Err(e) if e.is_connection() => return Err(e),
        Err(e) => (mail::Destination::default(), Some(e.to_string())),
    };
    let selection = mail::new_messages(&listing, &items.folders, items.since, ledger, &at_dest);
    Ok((selection, unavailable))
}

/// Takes every person's inventories (mail, calendar, contacts), `CONCURRENCY` persons at a
/// time.
pub fn gather(
    spec: &Spec,
    endpoints: &BTreeMap<Dn, PersonEndpoints>,
    state: Option<&Location>,
) -> Result<Inventories, crate::state::StateError> {
    let mut out = Inventories::new();
    let mut mailboxes: BTreeSet<String> = BTreeSet::new();
    let mut pim_books: BTreeSet<(String, ItemKind)> = BTreeSet::new();
    for e in endpoints.values() {
        if let Some(Ok(m)) = &e.mail {
            mailboxes.insert(m.destination.ledger_name());
        }
        if let Some(Ok(c)) = &e.calendar {
            pim_books.insert((c.destination.ledger_name(), ItemKind::Calendar));
        }
        if let Some(Ok(c)) = &e.contacts {
            pim_books.insert((c.destination.ledger_name(), ItemKind::Contacts));
        }
    }
    if mailboxes.is_empty()
        && pim_books.is_empty()
        && endpoints.values().all(PersonEndpoints::is_empty)
    {
        return Ok(out);
    }
    let ledger = Arc::new(Ledgers {
        mail: read_ledger(state, &mailboxes)?,
        pim: read_versions(state, &pim_books)?,
    });
    let items = Arc::new(spec.items.mail.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            for (dn, ep) in endpoints {
                out.insert(dn.clone(), failed_all(ep, e.to_string()));
            }
            return Ok(out);
        }
    };
    let results: Vec<(Dn, PersonInventory)> = runtime.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        // Which person each task is for, so a task that fails is that person's error.
        let mut persons = BTreeMap::new();
        for (dn, ep) in endpoints {
            if ep.is_empty() {
                continue;
            }
            let (task_dn, ep, items, ledger, permits) = (
                dn.clone(),
                ep.clone(),
                items.clone(),
                ledger.clone(),
                permits.clone(),
            );
            let handle = tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let inv = person_inventory(&ep, items.as_ref().as_ref(), &ledger).await;
                (task_dn, inv)
            });
            persons.insert(handle.id(), dn);
        }
        let mut results = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    if let Some(dn) = persons.get(&e.id()) {
                        let ep = &endpoints[dn];
                        results.push((
                            (*dn).clone(),
                            failed_all(ep, format!("the inventory failed: {e}")),
                        ));
                    }
                }
            }
        }
        results
    });
    out.extend(results);
    Ok(out)
}

/// What the ledger holds for the wave: mail, and calendar and contact versions.
struct Ledgers {
    mail: BTreeMap<String, mail::Ledger>,
    pim: BTreeMap<(String, ItemKind), pim::Copied>,
}

fn copied(ledger: &Ledgers, name: String) -> &mail::Ledger {
    static EMPTY: mail::Ledger = mail::Ledger {
        messages: BTreeSet::new(),
        folders: BTreeSet::new(),
    };
    ledger.mail.get(&name).unwrap_or(&EMPTY)
}

fn versions(ledger: &Ledgers, name: String, kind: ItemKind) -> &pim::Copied {
    static EMPTY: pim::Copied = BTreeMap::new();
    ledger.pim.get(&(name, kind)).unwrap_or(&EMPTY)
}

fn failed(e: String) -> Inventory {
    Inventory {
        error: Some(e),
        ..Default::default()
    }
}

/// One person's inventories; a store that cannot be read is that kind's error only.
async fn person_inventory(
    ep: &PersonEndpoints,
    mail_items: Option<&MailItems>,
    ledger: &Ledgers,
) -> PersonInventory {
    let mut inv = PersonInventory::default();
    if let (Some(m), Some(items)) = (&ep.mail, mail_items) {
        inv.mail = Some(match m {
            Err(e) => failed(e.clone()),
            Ok(m) => {
                let done = copied(ledger, m.destination.ledger_name());
                match select_mail_for_plan(m, items, done).await {
                    Ok((sel, unavailable)) => Inventory {
                        total: sel.total,
                        new: sel.copy.len() as u64,
                        new_bytes: sel.bytes(),
                        new_folders: sel.folders(),
                        deleted_at_destination: sel.deleted_at_destination,
                        folded: sel.folded,
                        create_folders: sel.create.len() as u64,
                        subscribe_folders: sel.subscribe.len() as u64,
                        folders_deleted_at_destination: sel.folders_deleted_at_destination,
                        unsubscribed_at_destination: sel.unsubscribed_at_destination,
                        bad: sel.bad,
                        destination_unavailable: unavailable,
                        error: None,
                        ..Default::default()
                    },
                    Err(e) => failed(e.to_string()),
                }
            }
        });
    }
    if let Some(c) = &ep.calendar {
        inv.calendar = Some(match c {
            Err(e) => failed(e.clone()),
            Ok(c) => {
                let done = versions(ledger, c.destination.ledger_name(), ItemKind::Calendar);
                match pim::select_calendar(c, done).await {
                    Ok((sel, _)) => pim_inventory(sel, |o| o.ics.len() as u64),
                    Err(e) => failed(e),
                }
            }
        });
    }
    if let Some(c) = &ep.contacts {
        inv.contacts = Some(match c {
            Err(e) => failed(e.clone()),
            Ok(c) => {
                let done = versions(ledger, c.destination.ledger_name(), ItemKind::Contacts);
                match pim::select_contacts(c, done).await {
                    Ok((sel, book)) => {
                        pim_inventory(sel, |c| contacts::to_vcard(c, book.version()).len() as u64)
                    }
                    Err(e) => failed(e),
                }
            }
        });
    }
    inv
}

/// What a calendar or contacts selection will copy, as the plan counts it; `size` is the bytes
/// one item takes at the destination.
fn pim_inventory<T>(sel: pim::PimSelection<T>, size: impl Fn(&T) -> u64) -> Inventory {
    Inventory {
        total: sel.total,
        new: sel.copy.len() as u64,
        changed: sel.update.len() as u64,
        new_bytes: sel
            .copy
            .iter()
            .chain(sel.update.iter().map(|(item, _)| item))
            .map(size)
            .sum(),
        new_folders: 0,
        deleted_at_destination: sel.deleted_at_destination,
        changed_at_destination: sel.changed_at_destination,
        folded: BTreeMap::new(),
        create_folders: 0,
        subscribe_folders: 0,
        folders_deleted_at_destination: 0,
        unsubscribed_at_destination: 0,
        bad: sel.bad,
        destination_unavailable: None,
        error: None,
    }
}

/// Every kind the person's endpoints copy, failed with `e`.
fn failed_all(ep: &PersonEndpoints, e: String) -> PersonInventory {
    PersonInventory {
        mail: ep.mail.as_ref().map(|_| failed(e.clone())),
        calendar: ep.calendar.as_ref().map(|_| failed(e.clone())),
        contacts: ep.contacts.as_ref().map(|_| failed(e)),
    }
}
