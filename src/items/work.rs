//! Item work through the shared state's units: `apply` queues each import action as a unit (a
//! mailbox with more new mail than `unit_per_folder_above` as one unit per folder, see
//! [`crate::items::split`]) and, unless told not to, copies them itself under claims; and `mailplan worker` processes
//! on any machine claim queued units and copy them. A claimed unit is held under a lease that
//! a task renews while the copy runs; a worker that loses its lease (it stalled and another
//! took the unit over) stops copying that unit at once. A failed attempt is queued again after
//! a backoff until its attempts are used up, then marked failed with its reason.
//!
//! What a unit copies is decided by the importer from the source, the ledger and the
//! destination as they are at that moment, so a unit taken over from a worker killed halfway
//! copies nothing twice. This module must not decide what to copy, nor hold SQL: it only
//! claims, renews and settles units through [`crate::state::units::WorkUnits`].

use std::sync::Arc;
use std::time::Duration;

use crate::apply::Imported;
use crate::directory::Dn;
use crate::items::import::{FolderPart, ImportReport, ItemImporter};
use crate::plan::{Action, ActionKind};
use crate::state::units::{AfterFailure, ClaimedUnit, NewUnit};
use crate::state::{Location, StateDb};

/// How units are held and retried.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who claims: host, process and task, unique among the workers of a wave.
    pub owner: String,
    /// How long a claim holds without being renewed (renewed every third of it).
    pub lease: Duration,
    /// Attempts before a unit is marked failed.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each further one (at most 5 min).
    pub backoff: Duration,
}

impl Settings {
    /// The lease when none is given.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// The defaults, for the owner `owner`.
    pub fn new(owner: String) -> Self {
        Settings {
            owner,
            lease: Self::DEFAULT_LEASE,
            max_attempts: 5,
            backoff: Duration::from_secs(5),
        }
    }

    /// The same settings for another task of this process.
    pub fn task(&self, n: usize) -> Self {
        Settings {
            owner: format!("{}#{n}", self.owner),
            ..self.clone()
        }
    }

    fn backoff_after(&self, attempts: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
        doubled.min(Duration::from_secs(300))
    }
}

/// This host and process, as a unit's owner is named.
pub fn owner_here() -> String {
    format!("{}:{}", crate::state::host::hostname(), std::process::id())
}

/// What became of one claimed unit.
#[derive(Debug)]
pub enum Worked {
    Done(ImportReport),
    /// Failed this time; queued again after its backoff.
    Retried(String),
    /// Failed and out of attempts.
    Failed(String),
    /// Another worker took it over (this one's lease had expired); nothing more was copied.
    LostLease,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs `f` on the state at `state`, on a thread that may block.
async fn on_state<T: Send + 'static>(
    state: &Location,
    f: impl FnOnce(&StateDb) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let db = StateDb::open_at(&state).map_err(err)?;
        f(&db)
    })
    .await
    .map_err(|e| format!("a state task failed: {e}"))?
}

fn no_units() -> String {
    "this state keeps no work units (they need a PostgreSQL state)".to_owned()
}

/// Claims a unit (`only` that one when given) and copies it under a renewed lease; `None`
/// when no unit is free to claim.
pub async fn claim_and_run(
    importer: &ItemImporter,
    settings: &Settings,
    only: Option<&str>,
) -> Result<Option<(ClaimedUnit, Worked)>, String> {
    let state = importer.state().clone();
    let (owner, lease, wanted) = (
        settings.owner.clone(),
        settings.lease,
        only.map(str::to_owned),
    );
    let claimed = on_state(&state, move |db| {
        db.units()
            .ok_or_else(no_units)?
            .claim(&owner, lease, wanted.as_deref())
            .map_err(err)
    })
    .await?;
    let Some(unit) = claimed else {
        return Ok(None);
    };
    let worked = run_claimed(importer, settings, &unit).await?;
    Ok(Some((unit, worked)))
}

async fn run_claimed(
    importer: &ItemImporter,
    settings: &Settings,
    unit: &ClaimedUnit,
) -> Result<Worked, String> {
    let state = importer.state().clone();
    let kind = match unit.kind.as_str() {
        "import_mail" => Some(ActionKind::ImportMail),
        "import_calendar" => Some(ActionKind::ImportCalendar),
        "import_contacts" => Some(ActionKind::ImportContacts),
        _ => None,
    };
    let subject = Dn::parse(&unit.subject);
    let part = match &unit.folder {
        Some(folder) => Some(folder_part(&state, &unit.unit, folder).await?),
        None => None,
    };
    let copy = async {
        match (kind, subject) {
            (Some(kind), Ok(subject)) => {
                importer
                    .import_one(&unit.unit, &subject, kind, part.as_ref(), &settings.owner)
                    .await
            }
            (None, _) => Err(format!("`{}` is not an import", unit.kind)),
            (_, Err(e)) => Err(format!("`{}` is not a DN: {e}", unit.subject)),
        }
    };
    // The lease is renewed every third of its length while the copy runs, and with it the
    // connection slots the copy holds; the copy stops when the lease is lost, and a pair of
    // sessions whose slots a lowered cap revoked stops after its batch in flight.
    let gate = importer.caps().clone();
    let renew = {
        let (state, owner, id, lease) = (
            state.clone(),
            settings.owner.clone(),
            unit.unit.clone(),
            settings.lease,
        );
        async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(lease / 3).await;
                let (owner, id) = (owner.clone(), id.clone());
                let held = on_state(&state, move |db| {
                    db.units()
                        .ok_or_else(no_units)?
                        .renew(&id, &owner, lease)
                        .map_err(err)
                })
                .await;
                match held {
                    Ok(r) if r.held => {
                        renewed = tokio::time::Instant::now();
                        gate.revoke(&r.revoked);
                    }
                    Ok(_) => return,
                    // A renewal the database did not answer is tried again at the next third;
                    // once the lease may have run out, another worker may hold the unit, and
                    // this one stops before the two could copy the same item.
                    Err(_) if renewed.elapsed() >= lease * 2 / 3 => return,
                    Err(_) => {}
                }
            }
        }
    };
    let result = tokio::select! {
        r = copy => Some(r),
        () = renew => None,
    };
    let (owner, id) = (settings.owner.clone(), unit.unit.clone());
    match result {
        None => Ok(Worked::LostLease),
        Some(Ok(report)) => {
            let (copied, bytes) = (report.copied + report.updated, report.bytes);
            let ours = on_state(&state, move |db| {
                db.units()
                    .ok_or_else(no_units)?
                    .finish(&id, &owner, copied, bytes)
                    .map_err(err)
            })
            .await?;
            Ok(if ours {
                Worked::Done(report)
            } else {
                Worked::LostLease
            })
        }
        Some(Err(e)) => {
            let (reason, max, backoff) = (
                e.clone(),
                settings.max_attempts,
                settings.backoff_after(unit.attempts),
            );
            let after = on_state(&state, move |db| {
                db.units()
                    .ok_or_else(no_units)?
                    .fail(&id, &owner, &reason, max, backoff)
                    .map_err(err)
            })
            .await?;
            Ok(match after {
                AfterFailure::Retried => Worked::Retried(e),
                AfterFailure::Failed => Worked::Failed(e),
                AfterFailure::LostLease => Worked::LostLease,
            })
        }
    }
}

/// The folder unit `unit` of `folder`: its folder, and those of the other units of its
/// import, as the state has them now.
async fn folder_part(state: &Location, unit: &str, folder: &str) -> Result<FolderPart, String> {
    let action = unit
        .strip_suffix(folder)
        .and_then(|a| a.strip_suffix('#'))
        .ok_or_else(|| format!("`{unit}` is not named for its folder `{folder}`"))?
        .to_owned();
    let me = unit.to_owned();
    let siblings = on_state(state, move |db| {
        let rows = db.units().ok_or_else(no_units)?.unit_rows().map_err(err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.unit != me)
            .filter_map(|r| {
                let f = r.folder?;
                (r.unit == crate::items::split::folder_unit(&action, &f)).then_some(f)
            })
            .collect())
    })
    .await?;
    Ok(FolderPart {
        folder: folder.to_owned(),
        siblings,
    })
}

/// An apply's imports on a shared state: each is queued as a unit (a large mailbox as one unit
/// per folder), then (with `copy`) claimed and copied by the apply itself, waiting for a worker
/// that holds one meanwhile, so the import action succeeds only once all its units are done.
#[derive(Debug, Clone)]
pub struct ApplyWork {
    pub copy: bool,
    pub settings: Settings,
}

impl ApplyWork {
    /// The units `action` is queued as: its folders' when it is a mailbox whose new mail is
    /// above the plan's `unit_per_folder_above`, else itself.
    async fn units(&self, importer: &ItemImporter, action: &Action) -> Vec<NewUnit> {
        let whole = || {
            vec![NewUnit {
                unit: action.id.clone(),
                folder: None,
            }]
        };
        let bytes = action.items.as_ref().map_or(0, |i| i.bytes);
        let Some(above) = importer.unit_per_folder_above() else {
            return whole();
        };
        if action.kind != ActionKind::ImportMail || bytes <= above {
            return whole();
        }
        match importer.new_mail_folders(&action.subject).await {
            Ok(Some(folders)) => crate::items::split::units(&action.id, bytes, above, &folders),
            Ok(None) => whole(),
            Err(e) => {
                eprintln!(
                    "{}: its folders could not be listed to split it ({e}); queued as one unit",
                    action.id
                );
                whole()
            }
        }
    }

    pub(crate) async fn import(
        &self,
        importer: &ItemImporter,
        action: &Action,
    ) -> Result<Imported, String> {
        let units = self.units(importer, action).await;
        let (id, kind, subject, queued) = (
            action.id.clone(),
            action.kind.as_str(),
            action.subject.to_string(),
            units.clone(),
        );
        on_state(importer.state(), move |db| {
            db.units()
                .ok_or_else(no_units)?
                .enqueue_action(&id, kind, &subject, &queued)
                .map_err(err)
        })
        .await?;
        if !self.copy {
            if units.len() > 1 {
                eprintln!(
                    "{}: queued as {} units, one per folder",
                    action.id,
                    units.len()
                );
            }
            return Ok(Imported::Queued);
        }
        // Each unit is claimed in turn; one a worker holds (or that waits out its backoff) is
        // looked at again after a pause, until every unit is done or failed.
        let mut open: Vec<NewUnit> = units;
        let mut failed: Vec<String> = Vec::new();
        while !open.is_empty() {
            let mut progressed = false;
            let mut still = Vec::new();
            for u in open {
                let named = |e: String| match &u.folder {
                    Some(f) => format!("folder `{f}`: {e}"),
                    None => e,
                };
                match claim_and_run(importer, &self.settings, Some(&u.unit)).await? {
                    Some((_, Worked::Done(_))) => progressed = true,
                    Some((_, Worked::Failed(e))) => {
                        progressed = true;
                        failed.push(named(e));
                    }
                    Some((_, Worked::Retried(e))) => {
                        eprintln!("{}: {e}; trying again after a pause", u.unit);
                        still.push(u);
                    }
                    Some((_, Worked::LostLease)) | None => {
                        // Held by a worker, or waiting out its backoff: see how it ends.
                        let id = u.unit.clone();
                        let row = on_state(importer.state(), move |db| {
                            let rows = db.units().ok_or_else(no_units)?.unit_rows().map_err(err)?;
                            Ok(rows.into_iter().find(|r| r.unit == id))
                        })
                        .await?;
                        match row {
                            Some(r) if r.state == "done" => progressed = true,
                            Some(r) if r.state == "failed" => {
                                progressed = true;
                                failed.push(named(r.last_error.unwrap_or_else(|| "failed".into())));
                            }
                            Some(_) => still.push(u),
                            None => {
                                progressed = true;
                                failed
                                    .push(named("its work unit disappeared from the state".into()));
                            }
                        }
                    }
                }
            }
            open = still;
            if !open.is_empty() && !progressed {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        match failed.len() {
            0 => Ok(Imported::Copied),
            _ => Err(failed.join("; ")),
        }
    }
}

/// What one worker process did.
#[derive(Debug, Default)]
pub struct WorkSummary {
    pub done: Vec<(String, ImportReport)>,
    pub failed: Vec<(String, String)>,
    pub retried: u64,
    pub lost: u64,
}

/// Claims and copies units with `concurrency` tasks until no unit of the wave is queued or
/// running anywhere (with `follow`, until `cancel` is set), or `cancel` is set.
pub async fn work(
    importer: Arc<ItemImporter>,
    settings: Settings,
    concurrency: usize,
    follow: bool,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<WorkSummary, String> {
    let summary = Arc::new(std::sync::Mutex::new(WorkSummary::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..concurrency.max(1) {
        let (importer, settings, summary, cancel) = (
            importer.clone(),
            settings.task(n),
            summary.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            loop {
                if *cancel.borrow() {
                    return Ok(());
                }
                match claim_and_run(&importer, &settings, None).await? {
                    Some((unit, worked)) => {
                        let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                        match worked {
                            Worked::Done(r) => s.done.push((unit.unit, r)),
                            Worked::Failed(e) => {
                                eprintln!("{}: failed for good: {e}", unit.unit);
                                s.failed.push((unit.unit, e));
                            }
                            Worked::Retried(e) => {
                                eprintln!(
                                    "{}: attempt {} failed: {e}; queued again",
                                    unit.unit, unit.attempts
                                );
                                s.retried += 1;
                            }
                            Worked::LostLease => {
                                eprintln!("{}: another worker took it over", unit.unit);
                                s.lost += 1;
                            }
                        }
                    }
                    None => {
                        let open = on_state(importer.state(), |db| {
                            let rows = db.units().ok_or_else(no_units)?.unit_rows().map_err(err)?;
                            Ok(rows
                                .iter()
                                .any(|r| r.state == "queued" || r.state == "running"))
                        })
                        .await?;
                        if !open && !follow {
                            return Ok(());
                        }
                        // Units held by others may come free (a dead worker's lease ends),
                        // and queued ones wait out their backoff.
                        let mut cancel = cancel.clone();
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = cancel.changed() => {}
                        }
                    }
                }
            }
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(format!("a worker task failed: {e}")),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let summary = std::mem::take(&mut *summary.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(summary)
}
