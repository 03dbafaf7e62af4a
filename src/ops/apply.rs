//! `apply`: a plan file planned now or a saved plan checked against its plan file, under the
//! state's lock and the destination's, then executed in dependency order with the item imports
//! wired in, and the run recorded in the state.
//!
//! The steps are split where the CLI has to step in: [`start`] prepares a [`Session`] (it
//! takes the locks and plans, and writes nothing), the CLI shows its plan and asks for approval
//! as the session says, then [`Session::execute`] applies it. Nothing here asks at a terminal
//! or prints a command's result; the run's progress goes through the `Reporter` it is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    Error, Inputs, gather_items, load_checked_spec, load_directory, load_inputs_for,
    load_saved_with_fingerprint, lock_destination, make_plan, read_history, state_location, target,
    warn_insecure, warn_items,
};
use crate::directory::Snapshot;
use crate::matching;
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Plan};
use crate::render::{self, text::Style};
use crate::spec::{DirectorySource, Spec};
use crate::state::{LockGuard, StateDb};

/// What `apply` is asked for.
pub struct ApplyRequest<'a> {
    /// A plan file, or a saved plan.
    pub input: &'a Path,
    /// `--target`: only these source persons (a plan file only).
    pub targets: &'a [String],
    /// `--state-dir`, when given.
    pub state_dir: Option<&'a Path>,
    /// `--no-items`: on a PostgreSQL state, queue the item work for `mailplan worker` without
    /// copying it here.
    pub no_items: bool,
}

/// How an apply starts.
pub enum Start {
    /// A saved plan with nothing to do; the note says so.
    NoChanges(String),
    /// A plan to review (as the session says) and execute.
    Ready(Box<Session>),
}

/// Where a session's plan comes from, which decides how it is reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plan file planned now: shown, and approved when it changes anything.
    PlanFile,
    /// A saved plan: applied exactly as reviewed, neither shown nor asked about.
    Saved,
    /// A restore from a backup: shown, and approved.
    Restore,
    /// The undo of a run: shown, and approved; recorded as undoing that run.
    Undo(crate::state::RunId),
}

/// A plan ready to execute, holding the state's lock (and the destination's) until it is
/// executed or dropped.
pub struct Session {
    kind: Kind,
    prepared: Prepared,
    db: StateDb,
    lock: LockGuard,
    _destination: Option<crate::lockfile::Held>,
    resume: Option<BTreeSet<String>>,
    /// On a PostgreSQL state: how the imports go through its work units.
    work: Option<crate::items::work::ApplyWork>,
}

/// The end of an executed session.
pub struct Executed {
    /// The summary for people: failures, persons left out, items skipped, counts.
    pub summary: String,
    /// Everything arrived: every action applied, no person left out for an error, no item
    /// skipped.
    pub succeeded: bool,
}

/// Prepares an apply: reads and checks the plan file and its secrets, takes the state's lock
/// and the destination's, then plans the plan file now or checks the saved plan against it.
pub fn start(request: &ApplyRequest<'_>) -> Result<Start, Error> {
    let saved = if super::is_saved_plan(request.input) {
        Some(load_saved_with_fingerprint(request.input)?)
    } else {
        None
    };
    let plan_file = match &saved {
        Some((s, _)) => PathBuf::from(&s.plan_file),
        None => request.input.to_path_buf(),
    };
    // The plan file and its secrets are checked before anything is written, the state included.
    let mut spec = load_checked_spec(&plan_file)?;
    // Refused before the state is opened or anything is locked.
    check_carbonio(&spec)?;
    if saved.is_some() && !request.targets.is_empty() {
        return Err(Error::TargetOnSavedPlan);
    }
    target(&mut spec, request.targets)?;
    // The lock comes first: what an apply plans from (the state's record of earlier runs) must
    // not change under it.
    let state = state_location(&spec, request.state_dir)?;
    let work = match &state {
        crate::state::Location::Postgres(_) => Some(crate::items::work::ApplyWork {
            copy: !request.no_items,
            settings: crate::items::work::Settings::new(crate::items::work::owner_here()),
        }),
        crate::state::Location::Dir(_) if request.no_items => return Err(Error::NeedsPostgres),
        crate::state::Location::Dir(_) => None,
    };
    let db = StateDb::open_at(&state)?;
    let lock = db.lock()?;
    super::write_plan_caps(&spec, &db)?;
    let destination = lock_destination(&spec)?;
    let (kind, prepared, resume) = match saved {
        Some((saved, fingerprint)) => {
            let (prepared, resume) = prepare_saved(request.input, saved, fingerprint, spec, &db)?;
            if !prepared.plan.has_changes() && !leaves_out_errors(&prepared.plan) {
                return Ok(Start::NoChanges("The saved plan has no changes.".into()));
            }
            (Kind::Saved, prepared, resume)
        }
        None => {
            let history = read_history(&db)?;
            let prepared = prepare_plan_file(spec, history, &state)?;
            (Kind::PlanFile, prepared, None)
        }
    };
    Ok(Start::Ready(Box::new(Session {
        kind,
        prepared,
        db,
        lock,
        _destination: destination,
        resume,
        work,
    })))
}

impl Session {
    /// A restore's session (see `state::restore`).
    pub(super) fn restore(
        prepared: Prepared,
        db: StateDb,
        lock: LockGuard,
        destination: Option<crate::lockfile::Held>,
    ) -> Self {
        Session {
            kind: Kind::Restore,
            prepared,
            db,
            lock,
            _destination: destination,
            resume: None,
            work: None,
        }
    }

    /// The session that undoes run `run` (see `state::undo`).
    pub(super) fn undo(
        prepared: Prepared,
        db: StateDb,
        lock: LockGuard,
        destination: Option<crate::lockfile::Held>,
        run: crate::state::RunId,
    ) -> Self {
        Session {
            kind: Kind::Undo(run),
            prepared,
            db,
            lock,
            _destination: destination,
            resume: None,
            work: None,
        }
    }

    /// The plan the session applies.
    pub fn plan(&self) -> &Plan {
        &self.prepared.plan
    }

    /// Whether the plan is shown before anything is applied: a plan made now is, a saved plan
    /// (already reviewed) is not.
    pub fn shows_plan(&self) -> bool {
        self.kind != Kind::Saved
    }

    /// Refuses a plan that deletes more than the plan file's `safety.max_deletes` allows,
    /// naming the count and the limit; called before anything is asked or written.
    pub fn check_safety(&self) -> Result<(), Error> {
        crate::apply::guard::check_deletes(&self.prepared.plan, &self.prepared.inputs.spec)?;
        Ok(())
    }

    /// Whether there is nothing to execute: the plan changes nothing (and, for a plan file,
    /// leaves nothing out that the run should record).
    pub fn is_done(&self) -> bool {
        let plan = &self.prepared.plan;
        match self.kind {
            Kind::PlanFile => !plan.has_changes() && !leaves_out_errors(plan),
            Kind::Restore => !plan.has_changes(),
            // An undo that refuses an entry runs all the same: the run records it, and fails.
            Kind::Undo(_) => !plan.has_changes() && !plan.has_errors(),
            Kind::Saved => false,
        }
    }

    /// Whether the plan is applied only once someone approved it: a plan made now that changes
    /// something. (One that changes nothing but leaves something out runs without asking: the
    /// run records what is left out, and says so.)
    pub fn needs_approval(&self) -> bool {
        self.kind != Kind::Saved && self.prepared.plan.has_changes()
    }

    /// Ends a session that [`is_done`](Self::is_done): records the merges the plan shows to be
    /// complete.
    pub fn finish_unchanged(self) -> Result<(), Error> {
        if self.kind == Kind::PlanFile {
            settle_merges(&self.db, &self.prepared)?;
        }
        Ok(())
    }

    /// Runs the plan under the state database's lock, recording the run, then releases the
    /// lock. `reporter` shows the progress.
    pub fn execute(
        self,
        parallelism: usize,
        reporter: Arc<dyn crate::apply::Reporter>,
    ) -> Result<Executed, Error> {
        let undoes = match self.kind {
            Kind::Undo(run) => Some(run),
            _ => None,
        };
        let executed = execute(
            self.prepared,
            self.db,
            parallelism,
            self.resume,
            undoes,
            self.work,
            reporter,
        )?;
        self.lock.release()?;
        Ok(executed)
    }
}

/// Whether an apply into a Carbonio destination can be carried out: it needs the live directory
/// (an LDIF export cannot show what changed since) and to know how accounts are created.
fn check_carbonio(spec: &Spec) -> Result<(), Error> {
    let Some(carbonio) = &spec.destination.carbonio else {
        return Ok(());
    };
    if matches!(spec.destination.directory, DirectorySource::Ldif(_)) {
        return Err(Error::CarbonioExport);
    }
    match &carbonio.provisioning {
        None => return Err(Error::CarbonioProvisioning),
        Some(crate::spec::Provisioning::Soap(soap)) => {
            let url = &soap.url;
            if soap.insecure {
                eprintln!(
                    "warning: Carbonio admin API `{url}`: TLS certificates are NOT verified (insecure: true); the connection can be intercepted"
                );
            }
            if url
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            {
                eprintln!(
                    "warning: Carbonio admin API `{url}`: the admin password and the new accounts' passwords are sent without TLS (http://); anyone on the network path can read them"
                );
            }
        }
        Some(crate::spec::Provisioning::Auto) => {}
    }
    Ok(())
}

/// Whether a plan leaves out a person because of an error, or an item as bad: then an apply
/// of it fails even when it has nothing to change.
fn leaves_out_errors(plan: &Plan) -> bool {
    plan.has_errors() || plan.summary.bad_items > 0
}

/// Runs a prepared plan under the state database's lock (held by the caller), recording the
/// run, and sums it up. It succeeds only when everything arrived: every action applied, no
/// person left out for an error, no item skipped.
fn execute(
    prepared: Prepared,
    db: StateDb,
    parallelism: usize,
    resume: Option<BTreeSet<String>>,
    undoes: Option<crate::state::RunId>,
    work: Option<crate::items::work::ApplyWork>,
    reporter: Arc<dyn crate::apply::Reporter>,
) -> Result<Executed, Error> {
    let style = Style { color: false };
    let run = db.begin_run(
        &prepared.plan_file.display().to_string(),
        &prepared.fingerprint,
    )?;
    // An undo that refused some entry did not undo the whole run: it is recorded as failed,
    // so that it does not count as the run's undo.
    let refused = undoes.is_some() && prepared.plan.has_errors();
    if let Some(undone) = undoes {
        db.record_undo(run, undone)?;
    }
    let settle = settled_merges(&prepared);
    // The item importer keeps its ledger in the same state.
    let items_state = db.location().clone();
    let options = crate::apply::Options {
        parallelism,
        resume,
    };
    let journal = Arc::new(crate::state::journal::StateJournal::new(
        db,
        run,
        options.in_flight(),
    )?);
    let runtime = apply_runtime(&prepared.plan).map_err(|e| Error::Write {
        path: "<runtime>".into(),
        source: e,
    })?;
    let as_journal: Arc<dyn crate::apply::Journal> = journal.clone();
    let applied = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Ctrl-C: start nothing new, let running actions finish, then report.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the running actions, starting no new ones");
                let _ = tx.send(true);
            }
        });
        apply_with_items(
            prepared,
            as_journal,
            reporter,
            options,
            rx,
            Some((items_state, run, work)),
        )
        .await
    })?;
    // The run's record says what its actions did; whether everything arrived is the exit code.
    let outcome = if applied.report.succeeded() && !refused {
        crate::state::RunOutcome::Succeeded
    } else if applied.report.interrupted {
        crate::state::RunOutcome::Interrupted
    } else {
        crate::state::RunOutcome::Failed
    };
    if applied.report.succeeded() {
        journal.settle(&settle)?;
    }
    journal.finish(outcome)?;
    Ok(Executed {
        summary: render::apply_summary(&applied, style),
        succeeded: applied.succeeded(),
    })
}

/// The async runtime an apply of `plan` runs on. Directory changes wait on the server, which
/// syncs its disk for every write: one thread drives them all, without the wake-ups from
/// thread to thread a pool costs (a seventh less CPU in the LDAP benchmark, and the server
/// keeps the other cores). Item imports parse and copy message bodies, and get a thread per core.
pub fn apply_runtime(plan: &Plan) -> std::io::Result<tokio::runtime::Runtime> {
    let imports = plan
        .actions
        .iter()
        .any(|a| a.kind.effect() == plan::Effect::Import);
    let mut builder = if imports {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// A plan ready to apply: its inputs, the plan, and what a saved plan recorded of the destination
/// (nothing for a plan made just now).
pub struct Prepared {
    /// The YAML plan file it comes from (a saved plan's recorded one).
    pub plan_file: PathBuf,
    pub inputs: Inputs,
    pub plan: Plan,
    pub recorded: crate::apply::Recorded,
    /// What runs of it are recorded under in the state: a saved plan's own fingerprint (so a
    /// rerun of the same saved plan knows what its earlier runs did), else the plan file's.
    pub fingerprint: String,
}

/// Plans a YAML plan file now, for `apply PLAN.yaml`: the item inventories are taken first,
/// and what earlier applies recorded in `history` and left undone is finished.
pub fn prepare_plan_file(
    spec: Spec,
    history: plan::History,
    state: &crate::state::Location,
) -> Result<Prepared, Error> {
    let path = spec.path.clone();
    let mut inputs = load_inputs_for(spec)?;
    inputs.history = history;
    gather_items(&mut inputs, state)?;
    let plan = make_plan(&inputs)?;
    let fingerprint = crate::plan::saved::text_fingerprint(&inputs.spec.text);
    Ok(Prepared {
        plan_file: path,
        inputs,
        plan,
        recorded: crate::apply::Recorded::none(),
        fingerprint,
    })
}

/// Loads a saved plan for `apply FILE`, with its plan file as `spec` (read and checked with
/// [`load_checked_spec`]): refused whole when the plan file changed since. The
/// fingerprints it recorded go to the executor, which fails as stale the actions touching an
/// entry that changed.
///
/// When earlier runs of this same saved plan applied part of it (a run killed or failed), the
/// second value holds the actions they applied: the executor counts those as done, and the
/// entries they wrote are not held against the rest.
///
/// `fingerprint` is the saved plan file's (from [`load_saved_with_fingerprint`]): the file the
/// user reviewed is what a rerun must match. A file as `plan --out` wrote it hashes the same as
/// its plan serialised again, without the cost of doing so for a large plan.
pub fn prepare_saved(
    file: &Path,
    saved: SavedPlan,
    fingerprint: String,
    spec: Spec,
    db: &crate::state::StateDb,
) -> Result<(Prepared, Option<BTreeSet<String>>), Error> {
    let plan_path = PathBuf::from(&saved.plan_file);
    let now = crate::plan::saved::text_fingerprint(&spec.text);
    if now != saved.plan_fingerprint {
        return Err(Error::PlanFileChanged {
            saved: file.to_path_buf(),
            plan_file: plan_path,
        });
    }
    let inputs = load_for_saved(spec)?;
    let resume = db.has_runs_of(&fingerprint)?;
    let done = if resume {
        db.applied_actions(&fingerprint)?
    } else {
        BTreeSet::new()
    };
    let ours: BTreeSet<crate::directory::Dn> = if resume {
        saved
            .plan
            .actions
            .iter()
            .flat_map(crate::apply::executor::touched)
            .collect()
    } else {
        BTreeSet::new()
    };
    // A DN that does not parse names nothing an action touches, so it cannot guard one.
    let fingerprints = saved
        .entries
        .into_iter()
        .filter_map(|(dn, recorded)| Some((crate::directory::Dn::parse(&dn).ok()?, recorded)))
        .collect();
    Ok((
        Prepared {
            plan_file: plan_path,
            inputs,
            plan: saved.plan,
            recorded: crate::apply::Recorded::new(fingerprints, ours),
            fingerprint,
        },
        resume.then_some(done),
    ))
}

/// What applying a saved plan needs of the directories, and no more: the destination only when
/// it is an LDIF file (the writer changes it in memory and rewrites the file), the source only
/// when items are copied (their mailboxes are named from the persons). Every entry an action
/// touches is read live right before its write, so a live destination is not read here at all.
fn load_for_saved(spec: Spec) -> Result<Inputs, Error> {
    let source = if spec.items.any() {
        warn_items(&spec);
        load_directory("source", &spec.source.directory, spec.source.ldif_file_urls)?
    } else {
        Snapshot::default()
    };
    let destination = match &spec.destination.directory {
        DirectorySource::Ldif(_) => load_directory(
            "destination",
            &spec.destination.directory,
            spec.destination.ldif_file_urls,
        )?,
        DirectorySource::Ldap(settings) => {
            warn_insecure("destination", settings);
            Snapshot::default()
        }
    };
    Ok(Inputs::new(spec, source, destination))
}

/// Source persons whose pending merges (see `plan::History`) this plan shows to be complete:
/// they were planned, and no merge was needed.
pub fn settled_merges(prepared: &Prepared) -> Vec<String> {
    let history = &prepared.inputs.history;
    prepared
        .plan
        .subjects
        .iter()
        .filter(|s| history.pending.contains_key(&s.source))
        .filter(|s| matches!(s.status, plan::Status::Planned | plan::Status::Unchanged))
        .filter(|s| {
            !prepared
                .plan
                .actions
                .iter()
                .any(|a| a.kind == plan::ActionKind::MergeAttributes && a.subject == s.source)
        })
        .map(|s| s.source.to_string())
        .collect()
}

/// Records the merges [`settled_merges`] finds, for an apply that has nothing else to do.
pub fn settle_merges(db: &crate::state::StateDb, prepared: &Prepared) -> Result<(), Error> {
    let sources = settled_merges(prepared);
    if sources.is_empty() {
        return Ok(());
    }
    let run = db.begin_run(
        &prepared.plan_file.display().to_string(),
        &prepared.fingerprint,
    )?;
    for s in &sources {
        db.merged(run, s)?;
    }
    db.finish_run(run, crate::state::RunOutcome::Succeeded)?;
    Ok(())
}

/// Applies a prepared plan to its destination (no item stores: a plan without imports).
pub async fn apply(
    prepared: Prepared,
    journal: std::sync::Arc<dyn crate::apply::Journal>,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    options: crate::apply::Options,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<crate::apply::Report, Error> {
    apply_with_items(prepared, journal, reporter, options, cancel, None)
        .await
        .map(|a| a.report)
}

/// What the executor needs besides the directory writer, so that each writer is one call.
struct Execution {
    plan: std::sync::Arc<plan::Plan>,
    rules: std::sync::Arc<matching::DestinationRules>,
    journal: std::sync::Arc<dyn crate::apply::Journal>,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    recorded: std::sync::Arc<crate::apply::Recorded>,
    importer: Option<std::sync::Arc<dyn crate::apply::Importer>>,
    options: crate::apply::Options,
    cancel: tokio::sync::watch::Receiver<bool>,
}

impl Execution {
    /// Runs the plan through `writer`.
    async fn with<W: crate::apply::DirectoryWriter>(
        self,
        writer: std::sync::Arc<W>,
    ) -> Result<crate::apply::Report, crate::plan::graph::GraphError> {
        crate::apply::execute_with_importer(
            self.plan,
            writer,
            self.rules,
            self.journal,
            self.reporter,
            self.recorded,
            self.importer,
            self.options,
            self.cancel,
        )
        .await
    }
}

/// `apply`, with the item stores: `items` is the state and the run the ledger records
/// copied items under. The outcome names every person the plan leaves out and every item
/// skipped as bad, so the caller can tell whether everything arrived.
pub async fn apply_with_items(
    prepared: Prepared,
    journal: std::sync::Arc<dyn crate::apply::Journal>,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    options: crate::apply::Options,
    cancel: tokio::sync::watch::Receiver<bool>,
    items: Option<(
        crate::state::Location,
        crate::state::RunId,
        Option<crate::items::work::ApplyWork>,
    )>,
) -> Result<crate::apply::Applied, Error> {
    use std::sync::Arc;
    let importer = items.map(|(state, run, work)| {
        let endpoints = crate::items::endpoints_for(&prepared.inputs.spec, &prepared.inputs.source);
        let importer = crate::items::import::ItemImporter::new(
            prepared.inputs.spec.items.clone(),
            endpoints,
            state,
            run,
        );
        Arc::new(match work {
            Some(work) => importer.with_work(work),
            None => importer,
        })
    });
    let shared = importer
        .clone()
        .map(|i| i as Arc<dyn crate::apply::Importer>);
    let Prepared {
        inputs,
        plan,
        recorded,
        ..
    } = prepared;
    let plan = Arc::new(plan);
    let parallelism = options.parallelism;
    let execution = Execution {
        plan: plan.clone(),
        rules: Arc::new(matching::DestinationRules::for_spec(&inputs.spec)),
        journal,
        reporter,
        recorded: Arc::new(recorded),
        importer: shared,
        options,
        cancel,
    };
    let report = match &inputs.spec.destination.directory {
        // The one place the writer is chosen: Carbonio's objects are written through its
        // admin API, whatever directory it runs on.
        DirectorySource::Ldap(settings) if inputs.spec.destination.carbonio.is_some() => {
            let Some(carbonio) = &inputs.spec.destination.carbonio else {
                return Err(Error::CarbonioProvisioning);
            };
            let writer = crate::apply::CarbonioDirectory::connect(settings, carbonio, parallelism)
                .await
                .map_err(|error| match error {
                    crate::apply::carbonio::CarbonioError::NoProvisioning => {
                        Error::CarbonioProvisioning
                    }
                    error => Error::Carbonio { error },
                })?;
            drop(inputs);
            execution.with(Arc::new(writer)).await?
        }
        DirectorySource::Ldif(_) if inputs.spec.destination.carbonio.is_some() => {
            return Err(Error::CarbonioExport);
        }
        DirectorySource::Ldif(path) => {
            let writer = Arc::new(crate::apply::LdifDirectory::new(path, &inputs.destination));
            drop(inputs);
            execution.with(writer).await?
        }
        DirectorySource::Ldap(settings) => {
            // The insecure warning was printed when the destination was read for this plan.
            let writer = crate::apply::LdapDirectory::connect(settings, parallelism)
                .await
                .map_err(|e| Error::Ldap {
                    which: "destination",
                    error: e,
                })?;
            drop(inputs);
            execution.with(Arc::new(writer)).await?
        }
    };
    let mut skipped = importer
        .as_ref()
        .map(|i| i.take_skipped())
        .unwrap_or_default();
    // Bad items the plan found for persons whose import of that kind did not run now: nothing
    // else of that kind to copy (or the import failed). They are left out all the same.
    let ran: BTreeSet<(&crate::directory::Dn, plan::ActionKind)> = report
        .results
        .iter()
        .zip(plan.actions.iter())
        .filter(|((_, r), _)| *r == crate::apply::ActionResult::Applied)
        .map(|(_, a)| (&a.subject, a.kind))
        .collect();
    for subject in plan.subjects.iter().filter(|s| !s.bad_items.is_empty()) {
        for kind in [
            crate::items::ItemKind::Mail,
            crate::items::ItemKind::Calendar,
            crate::items::ItemKind::Contacts,
        ] {
            if ran.contains(&(&subject.source, import_kind(kind))) {
                continue;
            }
            let bad: Vec<crate::items::BadItem> = subject
                .bad_items
                .iter()
                .filter(|b| b.kind == kind)
                .map(|b| crate::items::BadItem {
                    location: b.location.clone(),
                    message: b.message.clone(),
                })
                .collect();
            if bad.is_empty() {
                continue;
            }
            if let Some(i) = &importer {
                i.record_planned_bad(&subject.source, kind, &bad);
            }
            skipped.extend(bad.into_iter().map(|item| crate::apply::SkippedItem {
                source: subject.source.clone(),
                kind,
                item,
            }));
        }
    }
    // By person and kind; each import's own items stay in the order it found them.
    skipped.sort_by(|a, b| (&a.source, a.kind).cmp(&(&b.source, b.kind)));
    // Persons whose account Auto Provisioning never created: nothing of theirs arrived, so
    // they are left out, by name, as the plan's errors are.
    let mut left_out = plan.left_out();
    for ((_, result), action) in report.results.iter().zip(plan.actions.iter()) {
        let crate::apply::ActionResult::Failed { message, .. } = result else {
            continue;
        };
        if !message.contains(crate::apply::executor::NOT_PROVISIONED)
            || left_out.iter().any(|l| l.source == action.subject)
        {
            continue;
        }
        let name = plan
            .subjects
            .iter()
            .find(|s| s.source == action.subject)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| action.subject.to_string());
        left_out.push(plan::LeftOut {
            name,
            source: action.subject.clone(),
            status: plan::Status::Error,
            reason: format!(
                "its account `{}` did not appear: {}",
                action.target,
                crate::apply::executor::NOT_PROVISIONED
            ),
        });
    }
    Ok(crate::apply::Applied {
        left_out,
        report,
        skipped,
        throttled: crate::items::throttle::totals(),
    })
}

/// The import action of a kind of item.
fn import_kind(kind: crate::items::ItemKind) -> plan::ActionKind {
    match kind {
        crate::items::ItemKind::Mail => plan::ActionKind::ImportMail,
        crate::items::ItemKind::Calendar => plan::ActionKind::ImportCalendar,
        crate::items::ItemKind::Contacts => plan::ActionKind::ImportContacts,
    }
}
