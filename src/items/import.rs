//! Imports during apply: copy what is new, record each item in the ledger once the destination
//! confirmed it.
//!
//! What is new is derived again here, from the source, the ledger and the destination as they
//! are now, with the same pure function the plan used: a rerun after an interruption then picks
//! up exactly where the last one stopped, and a message the destination already holds (copied
//! just before a kill, before its ledger row was written) is recognised there and not copied
//! again. The ledger row is written only after the destination confirmed the item (APPEND's
//! tagged OK, or the file renamed into place). A mailbox's batches go over several pairs of
//! sessions at once, but each is stored only after the batch before it into the same folder, so
//! a folder's messages arrive in the source's order.
//!
//! A server that throttles slows the import down ([`throttle`]): messages it answered "not now"
//! are sent again once its pause is over, and where what it stored is unknown (a BYE during an
//! APPEND) what is new is worked out again, as on a rerun. Each import counts how often it was
//! throttled and how long it waited.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::apply::{Imported, Importer, SkippedItem};
use crate::directory::Dn;
use crate::items::caps::{self, Gate, Permit};
use crate::items::contacts::VcardObject;
use crate::items::endpoints::PersonEndpoints;
use crate::items::endpoints::{MailAt, MailEndpoints};
use crate::items::inventory::{read_ledger, read_versions, select_mail, select_mail_in};
use crate::items::mail::{
    FOLDER_KIND, MailError, MessageMeta, Selection, Store, ToCopy, folder_made, folder_subscribed,
    ledger_identity,
};
use crate::items::store::PutOutcome;
use crate::items::throttle;
use crate::items::work::Settings;
use crate::items::{BadItem, ItemKind, human_bytes, pim};
use crate::plan::{Action, ActionKind};
use crate::render::text::count;
use crate::spec::Items;
use crate::state::{ItemVersion, LedgerItem, Location, RunId, StateDb};

/// Messages appended in one batch (one pipelined round of APPENDs, one ledger transaction).
const BATCH_MESSAGES: usize = 100;
/// ... or this many bytes, whichever comes first, so memory stays bounded with large messages.
const BATCH_BYTES: u64 = 8 << 20;
/// Messages larger than this are streamed from server to server (IMAP to IMAP) instead of being
/// held whole.
const STREAM_ABOVE: u64 = 4 << 20;
/// Pairs of sessions one mailbox is copied over at once (its folders' order is kept whatever
/// session a batch goes over).
const WORKERS: usize = 6;

/// The importer apply hands to the executor.
pub struct ItemImporter {
    items: Items,
    endpoints: BTreeMap<Dn, PersonEndpoints>,
    state: Location,
    run: RunId,
    /// The bad items the imports of this run skipped, for the run's summary.
    skipped: std::sync::Mutex<Vec<SkippedItem>>,
    /// On a state that machines share: the imports go through work units.
    work: Option<crate::items::work::ApplyWork>,
    /// Asked before sessions to a server are opened (`items.connections`).
    caps: Gate,
}

/// The part of a mailbox one folder unit copies: the source folder it is named by, and the
/// folders of the other units of its import (see [`crate::items::split::unit_listing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPart {
    pub folder: String,
    pub siblings: Vec<String>,
}

/// What one import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub copied: u64,
    /// Calendars and contacts: items copied earlier and updated with their source's changes.
    pub updated: u64,
    /// ... and items changed at the source that were left alone, as their owner had edited
    /// them at the destination; and new items the destination was found to hold already under
    /// their UID, with other content (created there since the plan).
    pub changed_at_destination: u64,
    pub bytes: u64,
    pub bad: Vec<BadItem>,
    /// Mail: folders made at the destination, and subscriptions added there.
    pub folders_created: u64,
    pub subscribed: u64,
    /// Answers of a server that said "not now" (see [`throttle`]), and the time the import's
    /// sessions waited for such servers (summed over sessions working at once).
    pub throttled: u64,
    pub throttle_waited: std::time::Duration,
}

/// Why a mail import's round stopped: `throttled` (the server's `host:port` and answer) when a
/// server said "not now" where what it stored is unknown or nothing was stored: the import is
/// then worked out again, from the ledger and the destination as they are, once the server's
/// pause is over.
struct Stop {
    text: String,
    throttled: Option<(String, String)>,
}

impl From<MailError> for Stop {
    fn from(e: MailError) -> Self {
        let text = e.to_string();
        match e {
            MailError::Throttled {
                endpoint, text: t, ..
            } => Stop {
                text,
                throttled: Some((endpoint, t)),
            },
            _ => Stop {
                text,
                throttled: None,
            },
        }
    }
}

impl From<String> for Stop {
    fn from(text: String) -> Self {
        Stop {
            text,
            throttled: None,
        }
    }
}

impl ItemImporter {
    pub fn new(
        items: Items,
        endpoints: BTreeMap<Dn, PersonEndpoints>,
        state: Location,
        run: RunId,
    ) -> Self {
        // On a state machines share, the caps are the database's (the plan file's are written
        // there at start); otherwise they are the plan file's, counted in this process.
        let caps = match &state {
            Location::Postgres(_) => Gate::shared(state.clone(), Settings::DEFAULT_LEASE),
            Location::Dir(_) => Gate::local(items.connections.clone()),
        };
        ItemImporter {
            items,
            endpoints,
            state,
            run,
            skipped: Default::default(),
            work: None,
            caps,
        }
    }

    /// Sends this importer's imports through the wave's work units (see
    /// [`crate::items::work::ApplyWork`]).
    pub fn with_work(mut self, work: crate::items::work::ApplyWork) -> Self {
        self.caps = self.caps.with_lease(work.settings.lease);
        self.work = Some(work);
        self
    }

    /// Takes connection slots under `lease` (the work units' lease, which renews them).
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.caps = self.caps.with_lease(lease);
        self
    }

    /// The gate imports ask before opening sessions.
    pub fn caps(&self) -> &Gate {
        &self.caps
    }

    /// The state this importer records in.
    pub fn state(&self) -> &Location {
        &self.state
    }

    /// The bad items this run's imports skipped (and forgotten here).
    pub fn take_skipped(&self) -> Vec<SkippedItem> {
        std::mem::take(&mut *self.skipped.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records in the state the bad items the plan found for a person whose import of that kind
    /// did not run (there was nothing else to copy, or it failed), as the imports record theirs,
    /// so `mailplan state items --bad` lists every one.
    pub fn record_planned_bad(&self, source: &Dn, kind: ItemKind, bad: &[BadItem]) {
        let Some(ep) = self.endpoints.get(source) else {
            return;
        };
        let mailbox = match kind {
            ItemKind::Mail => ep
                .mail
                .as_ref()
                .and_then(|m| m.as_ref().ok())
                .map(|m| m.destination.ledger_name()),
            ItemKind::Calendar => ep
                .calendar
                .as_ref()
                .and_then(|c| c.as_ref().ok())
                .map(|c| c.destination.ledger_name()),
            ItemKind::Contacts => ep
                .contacts
                .as_ref()
                .and_then(|c| c.as_ref().ok())
                .map(|c| c.destination.ledger_name()),
        };
        let (Some(mailbox), Ok(db)) = (mailbox, StateDb::open_at(&self.state)) else {
            return;
        };
        record_bad(&db, self.run, &mailbox, kind.ledger_kind(), bad);
    }

    /// The size above which a mailbox's new mail is queued as one unit per folder; `None`
    /// when the plan file copies no mail.
    pub fn unit_per_folder_above(&self) -> Option<u64> {
        self.items.mail.as_ref().map(|m| m.unit_per_folder_above)
    }

    /// The source folders of `subject`'s mailbox that have new messages now, one per
    /// destination folder (see [`crate::items::split::folders_with_new_mail`]); `None` when
    /// its destination is a Maildir, which takes one writer at a time, so splitting gains
    /// nothing.
    pub async fn new_mail_folders(&self, subject: &Dn) -> Result<Option<Vec<String>>, String> {
        let items = self
            .items
            .mail
            .as_ref()
            .ok_or("the plan file copies no mail")?;
        let ep = self
            .endpoints
            .get(subject)
            .and_then(|e| e.mail.as_ref())
            .ok_or("the plan file copies no mail for this person")?
            .as_ref()
            .map_err(Clone::clone)?;
        if matches!(ep.destination, MailAt::Maildir(_)) {
            return Ok(None);
        }
        let mailbox = ep.destination.ledger_name();
        let ledger = read_ledger(Some(&self.state), &[mailbox.clone()].into())
            .map_err(|e| e.to_string())?
            .remove(&mailbox)
            .unwrap_or_default();
        let (selection, source, destination) = select_mail(ep, items, &ledger)
            .await
            .map_err(|e| e.to_string())?;
        source.close().await;
        destination.close().await;
        Ok(Some(crate::items::split::folders_with_new_mail(&selection)))
    }

    async fn run_import(
        &self,
        id: &str,
        subject: &Dn,
        kind: ActionKind,
        part: Option<&FolderPart>,
        holder: &str,
    ) -> Result<ImportReport, String> {
        let ep = self
            .endpoints
            .get(subject)
            .ok_or_else(|| format!("the plan file copies no items for `{subject}`"))?;
        if part.is_some() && kind != ActionKind::ImportMail {
            return Err(format!("`{id}` copies one folder, which only mail has"));
        }
        match kind {
            ActionKind::ImportMail => self.mail(ep, part, holder).await,
            ActionKind::ImportCalendar => self.calendar(ep, holder).await,
            ActionKind::ImportContacts => self.contacts(ep, holder).await,
            _ => Err(format!("`{id}` is not an import")),
        }
    }

    /// Copies a person's new mail: all of it, or only the folders of `part`.
    async fn mail(
        &self,
        ep: &PersonEndpoints,
        part: Option<&FolderPart>,
        holder: &str,
    ) -> Result<ImportReport, String> {
        let items = self
            .items
            .mail
            .as_ref()
            .ok_or("the plan file copies no mail")?;
        let ep = ep
            .mail
            .as_ref()
            .ok_or("the plan file copies no mail for this person")?
            .as_ref()
            .map_err(Clone::clone)?;
        let mailbox = ep.destination.ledger_name();
        // One writer per Maildir, whichever state folder the apply uses: what is new is worked
        // out and copied under the lock, so two applies never both copy one message.
        let _writer = lock_maildir(&ep.destination)?;
        let mut report = ImportReport::default();
        // A server that said "not now" where what it stored is unknown (a BYE during an
        // APPEND): once its pause is over, what is new is worked out again, as a rerun would.
        let result = loop {
            match self
                .mail_round(ep, items, &mailbox, part, holder, &mut report)
                .await
            {
                Ok(()) => break Ok(()),
                Err(Stop {
                    throttled: Some((endpoint, text)),
                    ..
                }) => {
                    if let Err(reason) = throttle::throttled(&endpoint, &text, None) {
                        break Err(reason);
                    }
                }
                Err(Stop { text, .. }) => break Err(text),
            }
        };
        // A round after another finds the plan's bad items (and refused messages) again.
        let mut seen = std::collections::BTreeSet::new();
        report
            .bad
            .retain(|b| seen.insert((b.location.clone(), b.message.clone())));
        if let Ok(db) = StateDb::open_at(&self.state) {
            record_bad(&db, self.run, &mailbox, "mail", &report.bad);
        }
        match result {
            Ok(()) => Ok(report),
            Err(e) => Err(format!(
                "{e} (after {} messages were copied; a rerun copies the rest)",
                report.copied
            )),
        }
    }

    /// Works out what is new (in the folders of `part` only, when given) and copies it, adding
    /// to `report`.
    async fn mail_round(
        &self,
        ep: &MailEndpoints,
        items: &crate::spec::MailItems,
        mailbox: &str,
        part: Option<&FolderPart>,
        holder: &str,
        report: &mut ImportReport,
    ) -> Result<(), Stop> {
        let ledger = read_ledger(Some(&self.state), &[mailbox.to_string()].into())
            .map_err(|e| e.to_string())?
            .remove(mailbox)
            .unwrap_or_default();
        // The first pair of sessions waits for room under the endpoints' caps; the others
        // are opened only where there is room at once.
        let pair = caps::mail_pair(ep);
        let permit = self.caps.acquire(&pair, holder).await?;
        let (selection, source, mut destination) =
            select_mail_in(ep, items, &ledger, |l| match part {
                Some(p) => {
                    crate::items::split::unit_listing(l, &items.folders, &p.folder, &p.siblings)
                }
                None => l,
            })
            .await?;
        report.bad.extend(selection.bad.iter().cloned());
        let made = self
            .folder_tree(mailbox, &selection, &mut destination, report)
            .await?;
        StateDb::open_at(&self.state)
            .and_then(|db| db.ledger_record_all(&made))
            .map_err(|e| e.to_string())?;
        // The batches, in source order, in one queue that up to WORKERS pairs of sessions take
        // from, so that the servers' per-message work (an fsync per stored message, typically)
        // overlaps instead of adding up. Each batch is stored only after the batch before it
        // into the same folder: a folder's messages arrive, and get their UIDs, in the
        // source's order, while the next batches are already on their way.
        let jobs = jobs(batches(selection.copy));
        let queue: Queue = Arc::new(std::sync::Mutex::new(jobs));
        let mut first = Some((source, destination, permit));
        let mut failure = None;
        // Rounds: a pair whose room a lowered cap took away stops after its batch in flight;
        // when every pair has stopped with batches left, the next round waits for room again
        // and goes on with them.
        loop {
            let left = queue.lock().map(|q| q.len()).unwrap_or(0);
            if left == 0 || failure.is_some() {
                break;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..WORKERS.min(left) {
                let (stores, permit) = match first.take() {
                    Some((s, d, p)) => (Some((s, d)), p),
                    None if n == 0 => (None, self.caps.acquire(&pair, holder).await?),
                    None => match self.caps.try_acquire(&pair, holder).await? {
                        Some(p) => (None, p),
                        None => break,
                    },
                };
                let (ep, queue, dir, runid, mailbox) = (
                    ep.clone(),
                    queue.clone(),
                    self.state.clone(),
                    self.run,
                    mailbox.to_string(),
                );
                tasks.spawn(throttle::inherit(async move {
                    copy_worker(ep, stores, permit, queue, dir, runid, mailbox).await
                }));
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((r, stopped)) => {
                        report.copied += r.copied;
                        report.bytes += r.bytes;
                        report.bad.extend(r.bad);
                        if let Some(e) = stopped {
                            failure = Some(e);
                        }
                    }
                    Err(e) => failure = Some(Stop::from(format!("an import task failed: {e}"))),
                }
            }
        }
        if let Some((s, d, permit)) = first {
            s.close().await;
            d.close().await;
            drop(permit);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl ItemImporter {
    /// Makes the folders the destination lacks and adds the subscriptions it lacks, in source
    /// order, before any message is copied; returns the ledger rows of what the destination
    /// confirmed. A refusal is a bad item naming the folder.
    async fn folder_tree(
        &self,
        mailbox: &str,
        selection: &Selection,
        destination: &mut Store,
        report: &mut ImportReport,
    ) -> Result<Vec<LedgerItem>, Stop> {
        let mut done = Vec::new();
        let record = |folder: &str, identity: String| LedgerItem {
            run: self.run,
            mailbox: mailbox.to_string(),
            kind: FOLDER_KIND.into(),
            folder: Some(folder.to_string()),
            identity,
            size: None,
        };
        for folder in &selection.create {
            match destination.create_folder(folder).await? {
                Ok(()) => {
                    report.folders_created += 1;
                    done.push(record(folder, folder_made(folder)));
                }
                Err(e) => report.bad.push(BadItem {
                    location: format!("folder `{folder}`"),
                    message: format!("the destination refused to create it: {e}"),
                }),
            }
        }
        for folder in &selection.subscribe {
            match destination.subscribe(folder).await? {
                Ok(()) => {
                    report.subscribed += 1;
                    done.push(record(folder, folder_subscribed(folder)));
                }
                Err(e) => report.bad.push(BadItem {
                    location: format!("folder `{folder}`"),
                    message: format!("the destination refused to subscribe it: {e}"),
                }),
            }
        }
        Ok(done)
    }

    fn row(&self, mailbox: &str, kind: ItemKind, identity: &str, size: u64) -> LedgerItem {
        LedgerItem {
            run: self.run,
            mailbox: mailbox.to_string(),
            kind: kind.ledger_kind().into(),
            folder: None,
            identity: identity.to_string(),
            size: Some(size),
        }
    }

    /// The ledger's versions of one mailbox's events or contacts.
    fn versions(&self, mailbox: &str, kind: ItemKind) -> Result<pim::Copied, String> {
        let key = (mailbox.to_string(), kind);
        Ok(read_versions(Some(&self.state), &[key.clone()].into())
            .map_err(|e| e.to_string())?
            .remove(&key)
            .unwrap_or_default())
    }

    /// Records what one PUT did, in the ledger and the report. Returns whether the destination
    /// now holds our version, whose ETag is then read back (see [`read_back_etags`]).
    ///
    /// A PUT the destination refused for a reason of its own is not a [`PutOutcome`] but an
    /// error, which the caller reports as a bad item: it gets no ledger row, so the next run
    /// tries it again.
    #[allow(clippy::too_many_arguments)]
    fn record_put(
        &self,
        db: &StateDb,
        mailbox: &str,
        kind: ItemKind,
        identity: &str,
        digest: &str,
        size: u64,
        outcome: PutOutcome,
        updating: bool,
        report: &mut ImportReport,
    ) -> Result<bool, String> {
        let ours = ItemVersion {
            digest: Some(digest.to_string()),
            // Unknown until read back: a run stopped before that leaves the item never updated
            // rather than updated over an edit it cannot see.
            etag: None,
        };
        let k = kind.ledger_kind();
        match outcome {
            PutOutcome::Created | PutOutcome::Updated | PutOutcome::Unchanged => {
                match outcome {
                    PutOutcome::Created => report.copied += 1,
                    PutOutcome::Updated => report.updated += 1,
                    _ => {}
                }
                if outcome != PutOutcome::Unchanged {
                    report.bytes += size;
                }
                db.ledger_record(&self.row(mailbox, kind, identity, size))
                    .map_err(|e| e.to_string())?;
                db.ledger_set_version(mailbox, k, identity, &ours)
                    .map_err(|e| e.to_string())?;
                Ok(true)
            }
            // The owner edited (or deleted) our copy since the plan listed it: their version
            // stays, and the ledger keeps the old ETag so later runs leave it alone too.
            PutOutcome::ChangedAtDestination if updating => {
                report.changed_at_destination += 1;
                Ok(false)
            }
            // Created meanwhile by someone else: the store answers this only once it found an
            // item with this UID at the destination (any other refusal is an error). Like an item
            // the plan finds there, it is not copied again: remembered with an unknown version,
            // as it is not ours to update, and counted as left as the destination has it.
            PutOutcome::ChangedAtDestination => {
                report.changed_at_destination += 1;
                db.ledger_record(&self.row(mailbox, kind, identity, size))
                    .map_err(|e| e.to_string())?;
                Ok(false)
            }
        }
    }

    async fn calendar(&self, ep: &PersonEndpoints, holder: &str) -> Result<ImportReport, String> {
        let ep = ep
            .calendar
            .as_ref()
            .ok_or("the plan file copies no calendar for this person")?
            .as_ref()
            .map_err(Clone::clone)?;
        let mailbox = ep.destination.ledger_name();
        // One connection to the DAV server for the whole import, under its cap.
        let _permit = self
            .caps
            .acquire(&caps::calendar_endpoint(&ep.destination), holder)
            .await?;
        let done = self.versions(&mailbox, ItemKind::Calendar)?;
        let (sel, dest) = pim::select_calendar(ep, &done).await?;
        let db = StateDb::open_at(&self.state).map_err(|e| e.to_string())?;
        let mut report = ImportReport {
            bad: sel.bad.clone(),
            changed_at_destination: sel.changed_at_destination,
            ..Default::default()
        };
        let work = (sel.copy.into_iter().map(|o| (o, None)))
            .chain(sel.update.into_iter().map(|(o, e)| (o, Some(e))));
        // (UID at the destination, ledger identity, digest) of what now holds our version.
        let mut written = Vec::new();
        for (o, etag) in work {
            let size = o.ics.len() as u64;
            match dest.put(&o, etag.as_deref()).await {
                Ok(outcome) => {
                    if self.record_put(
                        &db,
                        &mailbox,
                        ItemKind::Calendar,
                        &o.uid,
                        &o.digest,
                        size,
                        outcome,
                        etag.is_some(),
                        &mut report,
                    )? {
                        written.push((o.uid.clone(), o.uid.clone(), o.digest.clone()));
                    }
                }
                Err(e) if e.gave_up => {
                    record_bad(&db, self.run, &mailbox, "event", &report.bad);
                    return Err(format!(
                        "{e} (after {} events were copied; a rerun copies the rest)",
                        report.copied
                    ));
                }
                Err(e) => report.bad.push(BadItem {
                    location: format!("{}: UID {}", ep.source.display(), o.uid),
                    message: format!("the destination refused it: {e}"),
                }),
            }
        }
        if !written.is_empty() {
            let listing = dest.list().await;
            read_back_etags(&db, &mailbox, ItemKind::Calendar, listing, &written)?;
        }
        record_bad(&db, self.run, &mailbox, "event", &report.bad);
        Ok(report)
    }

    async fn contacts(&self, ep: &PersonEndpoints, holder: &str) -> Result<ImportReport, String> {
        let ep = ep
            .contacts
            .as_ref()
            .ok_or("the plan file copies no contacts for this person")?
            .as_ref()
            .map_err(Clone::clone)?;
        let mailbox = ep.destination.ledger_name();
        let _permit = self
            .caps
            .acquire(&caps::contacts_endpoint(&ep.destination), holder)
            .await?;
        let done = self.versions(&mailbox, ItemKind::Contacts)?;
        let (sel, book) = pim::select_contacts(ep, &done).await?;
        let db = StateDb::open_at(&self.state).map_err(|e| e.to_string())?;
        let mut report = ImportReport {
            bad: sel.bad.clone(),
            changed_at_destination: sel.changed_at_destination,
            ..Default::default()
        };
        let work = (sel.copy.into_iter().map(|c| (c, None)))
            .chain(sel.update.into_iter().map(|(c, e)| (c, Some(e))));
        let mut written = Vec::new();
        for (c, etag) in work {
            let card = VcardObject::new(&c, book.version());
            let size = card.vcf.len() as u64;
            let digest = pim::contact_digest(&c);
            match book.put(&card, etag.as_deref()).await {
                Ok(outcome) => {
                    if self.record_put(
                        &db,
                        &mailbox,
                        ItemKind::Contacts,
                        &c.identity,
                        &digest,
                        size,
                        outcome,
                        etag.is_some(),
                        &mut report,
                    )? {
                        written.push((card.uid, c.identity, digest));
                    }
                }
                Err(e) if e.gave_up => {
                    record_bad(&db, self.run, &mailbox, "contact", &report.bad);
                    return Err(format!(
                        "{e} (after {} contacts were copied; a rerun copies the rest)",
                        report.copied
                    ));
                }
                Err(e) => report.bad.push(BadItem {
                    location: format!("{}:{}", ep.source.display(), c.line),
                    message: format!("the destination refused it: {e}"),
                }),
            }
        }
        if !written.is_empty() {
            let listing = book.list().await;
            read_back_etags(&db, &mailbox, ItemKind::Contacts, listing, &written)?;
        }
        record_bad(&db, self.run, &mailbox, "contact", &report.bad);
        Ok(report)
    }
}

/// Records the destination's ETag of each item just written, from a listing taken after the
/// writes: servers need not return an ETag on PUT (and must not when they changed the content),
/// so a listing is the one way that works with all of them. An item missing from the listing
/// keeps an unknown ETag, and so is never updated.
fn read_back_etags(
    db: &StateDb,
    mailbox: &str,
    kind: ItemKind,
    listing: Result<BTreeMap<String, String>, String>,
    written: &[(String, String, String)],
) -> Result<(), String> {
    let listing = listing.map_err(|e| {
        format!(
            "the items were copied, but their ETags could not be read back, so later changes \
             to them at the source will not be copied: {e}"
        )
    })?;
    for (uid, identity, digest) in written {
        let Some(etag) = listing.get(uid) else {
            continue;
        };
        let version = ItemVersion {
            digest: Some(digest.clone()),
            etag: Some(etag.clone()),
        };
        db.ledger_set_version(mailbox, kind.ledger_kind(), identity, &version)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Splits the messages to copy into batches: consecutive messages of one source folder and one
/// destination folder, at most `BATCH_MESSAGES` and (unless alone) `BATCH_BYTES`.
fn batches(copy: Vec<ToCopy>) -> Vec<Vec<ToCopy>> {
    let mut out: Vec<Vec<ToCopy>> = Vec::new();
    let mut bytes = 0u64;
    for c in copy {
        let fits = out.last().is_some_and(|b: &Vec<ToCopy>| {
            let head = &b[0];
            head.folder == c.folder
                && head.source_folder == c.source_folder
                && b.len() < BATCH_MESSAGES
                && bytes + c.message.size <= BATCH_BYTES
        });
        if fits {
            bytes += c.message.size;
            if let Some(b) = out.last_mut() {
                b.push(c);
            }
        } else {
            bytes = c.message.size;
            out.push(vec![c]);
        }
    }
    out
}

/// One batch to copy, and its place in its folder's order.
struct Job {
    batch: Vec<ToCopy>,
    /// Resolves once the batch before this one into the same destination folder is stored (or
    /// has failed); `None` for a folder's first batch.
    after: Option<oneshot::Receiver<()>>,
    /// Resolved once this batch is stored (or dropped when it failed), for the next one.
    done: oneshot::Sender<()>,
}

/// The batches in order, each chained to the one before it into the same destination folder.
fn jobs(batches: Vec<Vec<ToCopy>>) -> VecDeque<Job> {
    let mut last: BTreeMap<String, oneshot::Receiver<()>> = BTreeMap::new();
    let mut out = VecDeque::with_capacity(batches.len());
    for batch in batches {
        let (done, next) = oneshot::channel();
        let folder = batch.first().map(|c| c.folder.clone()).unwrap_or_default();
        let after = last.insert(folder, next);
        out.push_back(Job { batch, after, done });
    }
    out
}

/// Waits for the batch before, if there is one; its failure releases this one too.
async fn after(previous: Option<oneshot::Receiver<()>>) {
    if let Some(rx) = previous {
        let _ = rx.await;
    }
}

type Queue = Arc<std::sync::Mutex<VecDeque<Job>>>;

/// Takes the next batch; the queue is first in, first out, so the batch a job waits for is
/// always taken already, by another worker that is not waiting for this one.
fn next_job(queue: &Queue) -> Option<Job> {
    queue.lock().ok().and_then(|mut q| q.pop_front())
}

/// Copies batches from the queue over one pair of sessions (opened here unless given) until it
/// is empty, recording each confirmed message in the ledger batch by batch. What it copied,
/// and why it stopped before the queue was empty.
async fn copy_worker(
    ep: MailEndpoints,
    stores: Option<(Store, Store)>,
    permit: Permit,
    queue: Queue,
    state: Location,
    runid: RunId,
    mailbox: String,
) -> (ImportReport, Option<Stop>) {
    let mut report = ImportReport::default();
    let stopped = copy_jobs(
        ep,
        stores,
        &permit,
        &queue,
        state,
        runid,
        &mailbox,
        &mut report,
    )
    .await
    .err();
    drop(permit);
    (report, stopped)
}

#[allow(clippy::too_many_arguments)]
async fn copy_jobs(
    ep: MailEndpoints,
    stores: Option<(Store, Store)>,
    permit: &Permit,
    queue: &Queue,
    state: Location,
    runid: RunId,
    mailbox: &str,
    report: &mut ImportReport,
) -> Result<(), Stop> {
    let (mut source, mut destination) = match stores {
        Some(s) => s,
        None => (
            Store::open(&ep.source).await?,
            Store::open(&ep.destination).await?,
        ),
    };
    // A revoked permit stops this pair between batches: the batches it did not take stay in
    // the queue for the pairs left, or for the next round.
    while !permit.revoked()
        && let Some(job) = next_job(queue)
    {
        let Job {
            batch: chunk,
            after: previous,
            done,
        } = job;
        let rows = copy_batch(
            &chunk,
            previous,
            &mut source,
            &mut destination,
            runid,
            mailbox,
            report,
        )
        .await?;
        // The next batch into this folder may commit now; the ledger can follow. The state is
        // opened for the write only: on a shared state a connection is taken from the
        // process's idle ones and given back, so a worker holds database sessions for its
        // writes, not for each pair of mail sessions it has open.
        let _ = done.send(());
        StateDb::open_at(&state)
            .and_then(|db| db.ledger_record_all(&rows))
            .map_err(|e| e.to_string())?;
    }
    source.close().await;
    destination.close().await;
    Ok(())
}

/// Copies one batch, storing it once `previous` resolved; the ledger rows of what the
/// destination confirmed.
async fn copy_batch(
    chunk: &[ToCopy],
    previous: Option<oneshot::Receiver<()>>,
    source: &mut Store,
    destination: &mut Store,
    runid: RunId,
    mailbox: &str,
    report: &mut ImportReport,
) -> Result<Vec<LedgerItem>, Stop> {
    let Some(head) = chunk.first() else {
        after(previous).await;
        return Ok(Vec::new());
    };
    let (folder, source_folder) = (&head.folder, &head.source_folder);
    let row = |m: &MessageMeta| LedgerItem {
        run: runid,
        mailbox: mailbox.to_string(),
        kind: ItemKind::Mail.ledger_kind().into(),
        folder: Some(folder.clone()),
        identity: ledger_identity(folder, &m.identity),
        size: Some(m.size),
    };
    // A large message alone in its batch goes straight from one server to the other.
    if chunk.len() == 1 && head.message.size > STREAM_ABOVE && source.streams_to(destination) {
        let m = &head.message;
        after(previous).await;
        if let Some(endpoint) = destination.endpoint() {
            throttle::wait(endpoint).await;
        }
        let result = source
            .stream_to(source_folder, m, destination, folder)
            .await
            .unwrap_or_else(|| Ok(Err("this pair of stores cannot stream".into())));
        return Ok(match result? {
            Ok(size) => {
                if let Some(endpoint) = destination.endpoint() {
                    throttle::progress(endpoint);
                }
                report.copied += 1;
                report.bytes += size;
                vec![row(m)]
            }
            Err(e) => {
                report.bad.push(BadItem {
                    location: format!("{source_folder}/{}", m.key),
                    message: format!("not copied: {e}"),
                });
                Vec::new()
            }
        });
    }
    let metas: Vec<&MessageMeta> = chunk.iter().map(|c| &c.message).collect();
    let bodies = source.fetch_batch(source_folder, &metas).await?;
    let mut batch: Vec<(&MessageMeta, Vec<u8>)> = Vec::with_capacity(chunk.len());
    for (m, body) in metas.iter().zip(bodies) {
        match body {
            Ok(data) => batch.push((m, data)),
            Err(e) => report.bad.push(BadItem {
                location: format!("{source_folder}/{}", m.key),
                message: format!("cannot read it at the source: {e}"),
            }),
        }
    }
    if batch.is_empty() {
        // Nothing to store, but the next batch still waits for the one before this.
        after(previous).await;
        return Ok(Vec::new());
    }
    // Messages the destination answered "not now" stored nothing: they are sent again, alone,
    // once its pause is over, until it has throttled too long with no progress.
    let mut previous = previous;
    let mut confirmed = Vec::new();
    while !batch.is_empty() {
        if let Some(endpoint) = destination.endpoint() {
            throttle::wait(endpoint).await;
        }
        let results = destination
            .append_batch(folder, &batch, after(previous.take()))
            .await?;
        let sent = batch.len();
        let mut again = Vec::new();
        let mut not_now = None;
        for ((m, data), result) in batch.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    report.copied += 1;
                    report.bytes += data.len() as u64;
                    confirmed.push(row(m));
                }
                Err(e) if e.throttled => {
                    not_now = Some(e.text);
                    again.push((m, data));
                }
                Err(e) => report.bad.push(BadItem {
                    location: format!("{source_folder}/{}", m.key),
                    message: format!("the destination refused it: {e}"),
                }),
            }
        }
        let endpoint = destination.endpoint().unwrap_or_default().to_string();
        if again.len() < sent {
            throttle::progress(&endpoint);
        }
        if let Some(text) = not_now {
            throttle::throttled(&endpoint, &text, None)?;
        }
        batch = again;
    }
    Ok(confirmed)
}

/// Takes the lock of a Maildir destination (`.mailplan-lock` in its root) for
/// as long as the result is held; nothing for an IMAP destination, which a server keeps.
fn lock_maildir(at: &MailAt) -> Result<Option<crate::lockfile::Held>, String> {
    let MailAt::Maildir(root) = at else {
        return Ok(None);
    };
    // The lock lives in the mailbox: it is made first, as an (empty) Maildir.
    crate::items::mail::maildir::Maildir::new(root.clone())
        .ensure_folder("INBOX")
        .map_err(|e| e.to_string())?;
    let holder = format!(
        "pid {} on {} since {}",
        std::process::id(),
        crate::state::host::hostname(),
        crate::state::time::now()
    );
    crate::lockfile::try_lock(root, &root.join(".mailplan-lock"), &holder)
        .map(Some)
        .map_err(|e| format!("{e}; run again once it is done"))
}

/// Bad items are kept in the state too (kind `bad-<kind>`), so `mailplan state` can list them
/// after the terminal output is gone.
fn record_bad(db: &StateDb, run: RunId, mailbox: &str, kind: &str, bad: &[BadItem]) {
    let rows: Vec<LedgerItem> = bad
        .iter()
        .map(|b| LedgerItem {
            run,
            mailbox: mailbox.to_string(),
            kind: format!("bad-{kind}"),
            folder: None,
            identity: format!("{}: {}", b.location, b.message),
            size: None,
        })
        .collect();
    // Recording a bad item is best effort: failing the import over it would lose the good ones'
    // report too.
    let _ = db.ledger_record_all(&rows);
}

impl Importer for ItemImporter {
    fn import<'a>(
        &'a self,
        action: &'a Action,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Imported, String>> + Send + 'a>>
    {
        Box::pin(async move {
            if let Some(work) = &self.work {
                return work.import(self, action).await;
            }
            self.import_one(&action.id, &action.subject, action.kind, None, "")
                .await
                .map(|_| Imported::Copied)
        })
    }
}

impl ItemImporter {
    /// Runs the import `id` of `kind` for the source person `subject` (only the folders of
    /// `part` when given), records its bad items for the run's summary and says what it copied
    /// on standard error.
    pub async fn import_one(
        &self,
        id: &str,
        subject: &Dn,
        kind: ActionKind,
        part: Option<&FolderPart>,
        holder: &str,
    ) -> Result<ImportReport, String> {
        let action_kind = kind;
        {
            let tally = Arc::new(throttle::Tally::default());
            let result = throttle::tallied(
                tally.clone(),
                self.run_import(id, subject, kind, part, holder),
            )
            .await;
            let (throttled, waited) = tally.get();
            let slowed = match throttled {
                0 => String::new(),
                n => format!(
                    "; throttled by the server {}, waited {} in all",
                    count(n, "time", "times"),
                    throttle::human(waited)
                ),
            };
            let mut report = result.map_err(|e| format!("{e}{slowed}"))?;
            report.throttled = throttled;
            report.throttle_waited = waited;
            let kind = match action_kind {
                ActionKind::ImportMail => ItemKind::Mail,
                ActionKind::ImportCalendar => ItemKind::Calendar,
                _ => ItemKind::Contacts,
            };
            self.skipped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(report.bad.iter().map(|b| SkippedItem {
                    source: subject.clone(),
                    kind,
                    item: b.clone(),
                }));
            let (one, many) = match action_kind {
                ActionKind::ImportMail => ("message", "messages"),
                ActionKind::ImportCalendar => ("event", "events"),
                _ => ("contact", "contacts"),
            };
            let what = if report.copied == 1 { one } else { many };
            let updated = match report.updated {
                0 => String::new(),
                n => format!(", updated {n} changed at the source"),
            };
            let kept = match report.changed_at_destination {
                0 => String::new(),
                n => format!(
                    ", {n} changed at the source but edited at the destination skipped (not overwritten)"
                ),
            };
            let mut folders = String::new();
            if report.folders_created > 0 {
                folders.push_str(&format!(
                    ", {} created",
                    count(report.folders_created, "folder", "folders")
                ));
            }
            if report.subscribed > 0 {
                folders.push_str(&format!(
                    ", {} subscribed",
                    count(report.subscribed, "folder", "folders")
                ));
            }
            let bad = match report.bad.len() {
                0 => String::new(),
                n => format!(", {} skipped", count(n as u64, "bad item", "bad items")),
            };
            eprintln!(
                "{id}: copied {} {what}{updated} ({}){folders}{bad}{kept}{slowed}",
                report.copied,
                human_bytes(report.bytes),
            );
            for b in &report.bad {
                eprintln!("  bad item: {}: {}", b.location, b.message);
            }
            Ok(report)
        }
    }
}

/// Keeps the importer shareable with the executor.
pub fn shared(importer: ItemImporter) -> Arc<dyn Importer> {
    Arc::new(importer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(folder: &str, key: &str) -> ToCopy {
        ToCopy {
            source_folder: folder.into(),
            folder: folder.into(),
            message: MessageMeta {
                key: key.into(),
                identity: format!("mid:{key}"),
                size: 10,
                flags: Vec::new(),
                internal_date: 0,
            },
        }
    }

    #[tokio::test]
    async fn each_batch_waits_for_the_one_before_it_into_its_folder_only() {
        let mut q = jobs(vec![
            vec![copy("A", "1")],
            vec![copy("B", "2")],
            vec![copy("A", "3")],
            vec![copy("A", "4")],
        ]);
        let (a1, b, a2, a3) = (
            q.pop_front().unwrap(),
            q.pop_front().unwrap(),
            q.pop_front().unwrap(),
            q.pop_front().unwrap(),
        );
        assert!(a1.after.is_none() && b.after.is_none());
        let (Some(mut wait2), Some(mut wait3)) = (a2.after, a3.after) else {
            panic!("later batches of A wait");
        };
        assert!(wait2.try_recv().is_err());
        // B's progress releases nothing of A; A's first batch releases only the second.
        let _ = b.done.send(());
        assert!(wait2.try_recv().is_err());
        let _ = a1.done.send(());
        assert!(wait2.try_recv().is_ok());
        assert!(wait3.try_recv().is_err());
        // A batch that failed (its sender dropped) releases the next one too.
        drop(a2.done);
        after(Some(wait3)).await;
    }
}
