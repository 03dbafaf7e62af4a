//! Inventories at plan time: for every person, what the source holds, what the ledger and the
//! destination already have, and so what apply will copy.
//!
//! This is I/O (stores are listed, the ledger is read) done before planning, so the planner can
//! stay pure and receive the result as data. It reads only: headers and UIDs, never bodies, and
//! it never creates a folder or a state database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::directory::Dn;
use crate::items::endpoints::{MailEndpoints, PersonEndpoints};
use crate::items::mail::{self, Selection, Store};
use crate::items::{Inventories, Inventory, ItemKind, PersonInventory};
use crate::spec::{MailItems, Spec};
use crate::state::StateDb;

/// How many mailboxes are listed at once.
const CONCURRENCY: usize = 8;

/// The ledger's identities per (mailbox, kind), read once for every mailbox in the wave. A
/// missing state database is an empty ledger (the first plan), and is not created.
pub fn read_ledger(
    state_dir: Option<&Path>,
    mailboxes: &BTreeSet<(String, ItemKind)>,
) -> Result<BTreeMap<(String, ItemKind), BTreeSet<String>>, crate::state::StateError> {
    let mut out = BTreeMap::new();
    let Some(dir) = state_dir.filter(|d| d.join(crate::state::STATE_FILE).exists()) else {
        return Ok(out);
    };
    let db = StateDb::open(dir)?;
    for (mailbox, kind) in mailboxes {
        let ids = db.ledger_identities(mailbox, kind.ledger_kind())?;
        out.insert((mailbox.clone(), *kind), ids);
    }
    Ok(out)
}

/// Lists both stores of one person's mail and decides what is new.
pub async fn select_mail(
    ep: &MailEndpoints,
    items: &MailItems,
    ledger: &BTreeSet<String>,
) -> Result<(Selection, Store, Store), mail::MailError> {
    let mut source = Store::open(&ep.source).await?;
    let listing = source.list().await?;
    let mut destination = Store::open(&ep.destination).await?;
    let at_dest = destination.identities().await?;
    let selection = mail::new_messages(&listing, &items.folders, items.since, ledger, &at_dest);
    Ok((selection, source, destination))
}

/// Takes every person's inventories (mail now; calendars and contacts when their libraries are
/// in), `CONCURRENCY` mailboxes at a time.
pub fn gather(
    spec: &Spec,
    endpoints: &BTreeMap<Dn, PersonEndpoints>,
    state_dir: Option<&Path>,
) -> Result<Inventories, crate::state::StateError> {
    let mut out = Inventories::new();
    let Some(items) = spec.items.mail.clone() else {
        return Ok(out);
    };
    let mailboxes: BTreeSet<(String, ItemKind)> = endpoints
        .values()
        .filter_map(|e| e.mail.as_ref()?.as_ref().ok())
        .map(|m| (m.destination.ledger_name(), ItemKind::Mail))
        .collect();
    let ledger = Arc::new(read_ledger(state_dir, &mailboxes)?);
    let items = Arc::new(items);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            for dn in endpoints.keys() {
                out.insert(dn.clone(), failed_mail(e.to_string()));
            }
            return Ok(out);
        }
    };
    let results: Vec<(Dn, PersonInventory)> = runtime.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for (dn, ep) in endpoints {
            let Some(m) = &ep.mail else { continue };
            let m = match m {
                Ok(m) => m.clone(),
                Err(e) => {
                    let dn = dn.clone();
                    let e = e.clone();
                    tasks.spawn(async move { (dn, failed_mail(e)) });
                    continue;
                }
            };
            let (dn, items, ledger, permits) =
                (dn.clone(), items.clone(), ledger.clone(), permits.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let empty = BTreeSet::new();
                let copied = ledger
                    .get(&(m.destination.ledger_name(), ItemKind::Mail))
                    .unwrap_or(&empty);
                let inv = match select_mail(&m, &items, copied).await {
                    Ok((sel, src, dst)) => {
                        src.close().await;
                        dst.close().await;
                        Inventory {
                            total: sel.total,
                            new: sel.copy.len() as u64,
                            new_bytes: sel.bytes(),
                            new_folders: sel.folders(),
                            deleted_at_destination: sel.deleted_at_destination,
                            bad: sel.bad,
                            error: None,
                        }
                    }
                    Err(e) => Inventory {
                        error: Some(e.to_string()),
                        ..Default::default()
                    },
                };
                (
                    dn,
                    PersonInventory {
                        mail: Some(inv),
                        ..Default::default()
                    },
                )
            });
        }
        let mut results = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        results
    });
    out.extend(results);
    Ok(out)
}

fn failed_mail(e: String) -> PersonInventory {
    PersonInventory {
        mail: Some(Inventory {
            error: Some(e),
            ..Default::default()
        }),
        ..Default::default()
    }
}
