//! The inventories `verify` compares, taken with the item backends: every person's source and
//! destination listings (headers and UIDs, never bodies) and the ledger in the state folder.
//!
//! Reads only: no store is written, no folder made, no state database created. A store that
//! cannot be read is that person's and that kind's error, never a silent zero.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::{DestinationItems, MailInventory, PersonInventory, PimInventory, SourceItem};
use crate::directory::Dn;
use crate::items::endpoints::{
    CalendarEndpoints, ContactEndpoints, MailEndpoints, PersonEndpoints,
};
use crate::items::mail::{self, Store};
use crate::items::{ItemKind, calendar, contacts, pim};
use crate::state::{Location, StateDb, StateError};

/// How many persons are read at once.
const CONCURRENCY: usize = 8;

/// What the ledger holds for one destination (mailbox or collection) and kind.
#[derive(Debug, Clone, Default)]
struct Recorded {
    copied: BTreeSet<String>,
    folders: BTreeSet<String>,
    refused: BTreeSet<String>,
}

/// Reads the ledger for every destination the wave names; a missing state is an empty ledger.
fn read_ledger(
    state: &Location,
    wanted: &BTreeSet<(String, &'static str)>,
) -> Result<BTreeMap<(String, &'static str), Recorded>, StateError> {
    let mut out = BTreeMap::new();
    let Some(db) = StateDb::open_existing_at(state)? else {
        return Ok(out);
    };
    for (name, kind) in wanted {
        let recorded = Recorded {
            copied: db.ledger_identities(name, kind)?,
            folders: if *kind == "mail" {
                db.ledger_identities(name, mail::FOLDER_KIND)?
            } else {
                BTreeSet::new()
            },
            refused: db.ledger_identities(name, &format!("bad-{kind}"))?,
        };
        out.insert((name.clone(), *kind), recorded);
    }
    Ok(out)
}

/// Takes every person's inventories, `CONCURRENCY` persons at a time.
pub fn gather(
    endpoints: &BTreeMap<Dn, PersonEndpoints>,
    state: &Location,
) -> Result<BTreeMap<Dn, PersonInventory>, StateError> {
    let mut wanted: BTreeSet<(String, &'static str)> = BTreeSet::new();
    for e in endpoints.values() {
        if let Some(Ok(m)) = &e.mail {
            wanted.insert((m.destination.ledger_name(), ItemKind::Mail.ledger_kind()));
        }
        if let Some(Ok(c)) = &e.calendar {
            wanted.insert((
                c.destination.ledger_name(),
                ItemKind::Calendar.ledger_kind(),
            ));
        }
        if let Some(Ok(c)) = &e.contacts {
            wanted.insert((
                c.destination.ledger_name(),
                ItemKind::Contacts.ledger_kind(),
            ));
        }
    }
    let ledger = Arc::new(read_ledger(state, &wanted)?);
    let mut out = BTreeMap::new();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            for (dn, ep) in endpoints {
                out.insert(dn.clone(), failed(ep, &e.to_string()));
            }
            return Ok(out);
        }
    };
    let results: Vec<(Dn, PersonInventory)> = runtime.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        let mut persons = BTreeMap::new();
        for (dn, ep) in endpoints {
            if ep.is_empty() {
                continue;
            }
            let (task_dn, ep, ledger, permits) =
                (dn.clone(), ep.clone(), ledger.clone(), permits.clone());
            let handle = tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (task_dn, person(&ep, &ledger).await)
            });
            persons.insert(handle.id(), dn);
        }
        let mut results = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    if let Some(dn) = persons.get(&e.id()) {
                        let why = format!("reading its stores failed: {e}");
                        results.push(((*dn).clone(), failed(&endpoints[*dn], &why)));
                    }
                }
            }
        }
        results
    });
    out.extend(results);
    Ok(out)
}

type Ledgers = BTreeMap<(String, &'static str), Recorded>;

fn recorded<'a>(ledger: &'a Ledgers, name: &str, kind: ItemKind) -> &'a Recorded {
    static EMPTY: Recorded = Recorded {
        copied: BTreeSet::new(),
        folders: BTreeSet::new(),
        refused: BTreeSet::new(),
    };
    ledger
        .get(&(name.to_string(), kind.ledger_kind()))
        .unwrap_or(&EMPTY)
}

/// Every kind the person's endpoints copy, failed with `why`.
fn failed(ep: &PersonEndpoints, why: &str) -> PersonInventory {
    let name = |n: Option<String>| n.unwrap_or_default();
    PersonInventory {
        mail: ep.mail.as_ref().map(|m| {
            let n = name(m.as_ref().ok().map(|m| m.destination.ledger_name()));
            (n, Err(why.to_string()))
        }),
        calendar: ep.calendar.as_ref().map(|c| {
            let n = name(c.as_ref().ok().map(|c| c.destination.ledger_name()));
            (n, Err(why.to_string()))
        }),
        contacts: ep.contacts.as_ref().map(|c| {
            let n = name(c.as_ref().ok().map(|c| c.destination.ledger_name()));
            (n, Err(why.to_string()))
        }),
    }
}

async fn person(ep: &PersonEndpoints, ledger: &Ledgers) -> PersonInventory {
    let mut inv = PersonInventory::default();
    if let Some(m) = &ep.mail {
        inv.mail = Some(match m {
            Err(e) => (String::new(), Err(e.clone())),
            Ok(m) => {
                let name = m.destination.ledger_name();
                let r = recorded(ledger, &name, ItemKind::Mail);
                (name, mail_inventory(m, r).await)
            }
        });
    }
    if let Some(c) = &ep.calendar {
        inv.calendar = Some(match c {
            Err(e) => (String::new(), Err(e.clone())),
            Ok(c) => {
                let name = c.destination.ledger_name();
                let r = recorded(ledger, &name, ItemKind::Calendar);
                (name, calendar_inventory(c, r).await)
            }
        });
    }
    if let Some(c) = &ep.contacts {
        inv.contacts = Some(match c {
            Err(e) => (String::new(), Err(e.clone())),
            Ok(c) => {
                let name = c.destination.ledger_name();
                let r = recorded(ledger, &name, ItemKind::Contacts);
                (name, contacts_inventory(c, r).await)
            }
        });
    }
    inv
}

async fn mail_inventory(ep: &MailEndpoints, r: &Recorded) -> Result<MailInventory, String> {
    let mut source = Store::open(&ep.source)
        .await
        .map_err(|e| format!("the source: {e}"))?;
    let listing = source.list().await.map_err(|e| format!("the source: {e}"));
    source.close().await;
    let mut destination = Store::open(&ep.destination)
        .await
        .map_err(|e| format!("the destination: {e}"))?;
    let there = destination
        .list()
        .await
        .map_err(|e| format!("the destination: {e}"));
    let delimiter = destination.delimiter();
    destination.close().await;
    Ok(MailInventory {
        source: listing?,
        destination: there?,
        delimiter,
        ledger: mail::Ledger {
            messages: r.copied.clone(),
            folders: r.folders.clone(),
        },
        refused: r.refused.clone(),
    })
}

async fn calendar_inventory(ep: &CalendarEndpoints, r: &Recorded) -> Result<PimInventory, String> {
    let (objects, bad) = pim::missing_is_empty(calendar::read_ics(&ep.source), &ep.source)?;
    let dest = pim::Calendars::open(&ep.destination)?;
    let uids = dest.list().await?;
    let source = objects
        .into_iter()
        .map(|o| SourceItem {
            keys: vec![o.uid.clone()],
            location: format!("{}: UID {}", ep.source.display(), o.uid),
            identity: o.uid,
        })
        .collect();
    Ok(PimInventory {
        source,
        bad,
        destination: DestinationItems {
            count: uids.len() as u64,
            keys: uids.into_keys().collect(),
        },
        ledger: r.copied.clone(),
        refused: r.refused.clone(),
    })
}

async fn contacts_inventory(ep: &ContactEndpoints, r: &Recorded) -> Result<PimInventory, String> {
    let (rows, bad) = pim::missing_is_empty(contacts::read_csv(&ep.source), &ep.source)?;
    let book = pim::AddressBook::open(&ep.destination)?;
    let (uids, ids) = book.held().await?;
    // A contact is there under its own UID, or under another that stands for its identity.
    let mut keys: BTreeSet<String> = uids.keys().map(|u| format!("uid\t{u}")).collect();
    keys.extend(ids.into_keys());
    let source = rows
        .into_iter()
        .map(|c| SourceItem {
            keys: vec![
                c.identity.clone(),
                format!("uid\t{}", contacts::contact_uid(&c)),
            ],
            location: format!("{}:{}", ep.source.display(), c.line),
            identity: c.identity,
        })
        .collect();
    Ok(PimInventory {
        source,
        bad,
        destination: DestinationItems {
            count: uids.len() as u64,
            keys,
        },
        ledger: r.copied.clone(),
        refused: r.refused.clone(),
    })
}

/// `mailplan verify PLAN.yaml`: reads the plan file and both directories, asks matching which
/// persons are migrated, takes every person's inventories and the ledger in `state`, and
/// verifies each. Reads only.
pub fn wave(plan_file: &Path, state: &Location) -> Result<super::Verification, crate::ops::Error> {
    use crate::matching::Outcome;
    let spec = crate::ops::load_checked_spec(plan_file)?;
    let mut inputs = crate::ops::load_inputs_for(spec)?;
    inputs.history = crate::ops::load_history(state)?;
    let matches = crate::matching::match_prepared(
        &inputs.spec,
        &inputs.source,
        &inputs.destination,
        &inputs.history.links,
        inputs.take_prepared(),
    );
    let decisions: BTreeMap<&Dn, super::Decision> = matches
        .persons
        .iter()
        .map(|pm| {
            let d = match &pm.outcome {
                Outcome::New | Outcome::Matched { .. } => super::Decision::Migrate,
                Outcome::Ambiguous { reason, .. } => {
                    super::Decision::NotMigrated(format!("ambiguous: {reason}"))
                }
                Outcome::NeedsConfirmation => super::Decision::NotMigrated(
                    "awaiting confirmation of a soft match (matching.confirmed)".into(),
                ),
                Outcome::Error(e) => super::Decision::Error(e.clone()),
            };
            (&pm.person.dn, d)
        })
        .collect();
    let endpoints = crate::items::endpoints_for(&inputs.spec, &inputs.source);
    let migrated: BTreeMap<Dn, PersonEndpoints> = endpoints
        .iter()
        .filter(|(dn, _)| decisions.get(dn) == Some(&super::Decision::Migrate))
        .map(|(dn, ep)| (dn.clone(), ep.clone()))
        .collect();
    let inventories = gather(&migrated, state)?;
    let (mapping, since) = inputs
        .spec
        .items
        .mail
        .as_ref()
        .map(|m| (m.folders.clone(), m.since))
        .unwrap_or_default();
    let empty = PersonInventory::default();
    let persons = endpoints
        .keys()
        .map(|dn| {
            let decision = decisions
                .get(dn)
                .cloned()
                .unwrap_or(super::Decision::Migrate);
            let inv = inventories.get(dn).unwrap_or(&empty);
            super::verify_person(&dn.to_string(), inv, &decision, &mapping, since)
        })
        .collect();
    Ok(super::Verification::new(persons))
}
