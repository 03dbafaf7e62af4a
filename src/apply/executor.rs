//! The executor: carries out a plan's actions in dependency order, in parallel, safely.
//!
//! An action starts when every action it depends on applied. Before each write the action's
//! preconditions are checked against the live entries (the plan was computed from what the
//! directory looked like then; if that changed, the action fails as stale instead of writing over
//! someone else's change), and every entry about to be modified or deleted is handed to the
//! journal for backup first. At most `parallelism` actions write at once; the reading, checking
//! and journaling of the next ones runs ahead of the writes (see [`Options::in_flight`]). A
//! failed action's dependents are skipped, each reported once with the action that caused it;
//! independent work goes on. Membership moves on one object that are ready together share one
//! write (see `batch_object`), each still checked and recorded as itself. On cancellation no new
//! action starts, none that has not yet written begins to, and those writing finish. The
//! executor never re-plans: it does exactly what the plan says or fails.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use crate::directory::ldif::{ModOp, Modification};
use crate::directory::{AttrName, Dn, Entry, Value, ValueSet};
use crate::matching::DestinationRules;
use crate::plan::graph::ActionGraph;
use crate::plan::{Action, ActionKind, Plan, Precondition};

use super::writer::{DirectoryWriter, WriteError};

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    Applied,
    /// An earlier, interrupted run of the same saved plan did it (the state says so, or the
    /// destination already looks as the action would leave it): nothing was written now.
    AlreadyApplied,
    /// The write failed, or (`stale`) the destination no longer looks as the plan assumed.
    Failed {
        stale: bool,
        message: String,
    },
    /// Not attempted because an action it depends on failed.
    Skipped {
        because: String,
    },
    /// Not started because the run was interrupted.
    NotStarted,
    /// An import handed to `mailplan worker` processes through the shared state
    /// (`apply --no-items`): nothing is copied yet, so its effect is not in place.
    Queued,
}

impl ActionResult {
    /// Whether the action's effect is in place (so its dependents may start).
    pub fn is_applied(&self) -> bool {
        matches!(self, ActionResult::Applied | ActionResult::AlreadyApplied)
    }
}

/// What [`Journal::backup`] and [`Journal::intend`] return: `Ok` once the record is stored.
pub type JournalFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// Durable bookkeeping around the writes (the state database implements it).
pub trait Journal: Send + Sync + 'static {
    /// The entry as it is, read before `action` modifies or deletes it. The write happens only
    /// after this returned `Ok`, so a backup exists for everything changed.
    ///
    /// Asynchronous so that a journal can wait for its disk (and share one sync among the
    /// actions waiting at the same moment) without holding up the runtime's threads.
    fn backup<'a>(&'a self, action: &'a Action, entry: &'a Entry) -> JournalFuture<'a>;
    /// Called before `action` writes, after its preconditions held. Whatever a rerun
    /// needs to know in case the process dies right after the write is recorded here (which
    /// object a person is being given, say); the write happens only after this returned `Ok`.
    fn intend<'a>(&'a self, action: &'a Action) -> JournalFuture<'a> {
        let _ = action;
        Box::pin(std::future::ready(Ok(())))
    }
    /// Everything that must be stored before `action` writes: its intent ([`Journal::intend`])
    /// and a backup of each of `entries` ([`Journal::backup`]), the entries it is about to
    /// modify or delete. A journal that can store them all at once (one sync instead of one
    /// each) should; `Ok` only once all are stored.
    fn prepare<'a>(&'a self, action: &'a Action, entries: &'a [&'a Entry]) -> JournalFuture<'a> {
        Box::pin(async move {
            self.intend(action).await?;
            for entry in entries {
                self.backup(action, entry).await?;
            }
            Ok(())
        })
    }
    /// [`Journal::prepare`] for several actions that write together (see `batch_object`),
    /// each with the entries it is about to modify. A journal that can store them all in one
    /// commit should; `Ok` only once all are stored.
    fn prepare_all<'a>(&'a self, each: &'a [(&'a Action, Vec<&'a Entry>)]) -> JournalFuture<'a> {
        Box::pin(async move {
            for (action, entries) in each {
                self.prepare(action, entries).await?;
            }
            Ok(())
        })
    }
    /// What `action` left of the entry `dn` once its write was confirmed: the entry as it is
    /// now (`None`: the action deleted it). Called after the write, never before; a journal may
    /// store it later, like an outcome. A write whose after-image is lost (the process killed
    /// in between) is one `state undo` treats as unknown.
    fn written(&self, action: &Action, dn: &Dn, after: Option<&Entry>) {
        let _ = (action, dn, after);
    }
    /// The action's outcome, once known. Must not block for long (it is called on the
    /// runtime's threads); a journal may store it later, as long as it is stored before the
    /// run is reported finished.
    fn record(
        &self,
        action: &Action,
        result: &ActionResult,
        started: SystemTime,
        elapsed: Duration,
    );
}

/// Copies an import action's items (mail, events, contacts); see `crate::items::import`. The
/// executor only schedules imports like any other action: after the mailbox they depend on.
pub trait Importer: Send + Sync + 'static {
    /// Runs one import action; `Err` fails the action (its dependents are skipped).
    fn import<'a>(
        &'a self,
        action: &'a Action,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Imported, String>> + Send + 'a>>;
}

/// What became of an import that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Its items were copied (or there was nothing new to copy).
    Copied,
    /// Queued for `mailplan worker` processes, not copied by this run.
    Queued,
}

/// Progress for people; see `super::reporter`.
pub trait Reporter: Send + Sync + 'static {
    fn begin(&self, total: usize);
    fn finished(&self, action: &Action, result: &ActionResult);
    fn end(&self);
}

#[derive(Debug, Clone)]
pub struct Options {
    /// How many actions may write at once (at least 1).
    pub parallelism: usize,
    /// Resuming a saved plan that an earlier run applied in part: these action ids are known
    /// to be applied, and an action whose preconditions no longer hold but whose effect is
    /// already in place counts as applied too (the earlier run was stopped after writing it
    /// but before recording it).
    pub resume: Option<BTreeSet<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 10,
            resume: None,
        }
    }
}

/// How many actions are prepared ahead of the writes, for each one writing.
///
/// A directory server syncs its disk once per write, and so does the journal per commit: with
/// only the writing actions preparing, nearly every backup had a commit of its own, and each
/// action waited for it before writing. Prepared ahead, the backups of many actions share one
/// commit while the writes go on, and no write waits for the journal.
const LOOKAHEAD: usize = 16;

impl Options {
    /// The most actions in flight at once: `parallelism` writing, and up to `LOOKAHEAD` (16)
    /// times as many reading their live entries, checking their preconditions and waiting for
    /// their backups (a journal should expect that many waiting on it at once). An action
    /// prepared ahead writes a few moments after its check, not right after it: the Assertion
    /// control, where the directory has it, still makes the check and the write one operation.
    pub fn in_flight(&self) -> usize {
        self.parallelism.max(1) * (1 + LOOKAHEAD)
    }
}

/// The outcome of a run: every action's result, in plan order.
#[derive(Debug, Clone)]
pub struct Report {
    pub results: Vec<(String, ActionResult)>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl Report {
    pub fn count(&self, f: impl Fn(&ActionResult) -> bool) -> usize {
        self.results.iter().filter(|(_, r)| f(r)).count()
    }
    pub fn applied(&self) -> usize {
        self.count(ActionResult::is_applied)
    }
    /// Imports queued for workers rather than copied.
    pub fn queued(&self) -> usize {
        self.count(|r| matches!(r, ActionResult::Queued))
    }
    /// Every action applied or, an import, queued for the workers.
    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.applied() + self.queued() == self.results.len()
    }
}

/// What a saved plan recorded of the destination entries its actions depend on: each entry's
/// fingerprint at plan time (`None`: it must not exist).
///
/// Each entry is compared with the live one when the first action of the run that touches it
/// reads it, right before that action writes, so nothing has to read the whole destination
/// up front; the verdict is kept, and every action touching a changed entry fails as stale.
#[derive(Debug, Default)]
pub struct Recorded {
    fingerprints: BTreeMap<Dn, Option<String>>,
    /// Entries written by this plan's earlier runs: changed because of it, not held against the
    /// rest (each action's own preconditions still guard them against anyone else's changes).
    ours: BTreeSet<Dn>,
    /// Entry → whether it had changed since the plan was made, as its first reader found.
    verdicts: std::sync::Mutex<BTreeMap<Dn, bool>>,
}

impl Recorded {
    /// Nothing recorded: a plan made just now.
    pub fn none() -> Self {
        Recorded::default()
    }

    pub fn new(fingerprints: BTreeMap<Dn, Option<String>>, ours: BTreeSet<Dn>) -> Self {
        Recorded {
            fingerprints,
            ours,
            verdicts: Default::default(),
        }
    }

    /// Claims `dn`, which an action is about to create without reading it: true when the plan
    /// expected it absent and no action of this run has judged it yet. Its verdict is then
    /// "as planned" (the add itself refuses an entry that exists), so the actions after the
    /// create are not held to the absence the plan recorded.
    fn claim_absent(&self, dn: &Dn) -> bool {
        if self.fingerprints.is_empty() {
            return true;
        }
        if !matches!(self.fingerprints.get(dn), None | Some(None)) || self.ours.contains(dn) {
            return false;
        }
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        match verdicts.entry(dn.clone()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(false);
                true
            }
        }
    }

    /// `dn` turned out to have changed (a create found it existing).
    fn mark_changed(&self, dn: &Dn) {
        if self.fingerprints.contains_key(dn) {
            let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
            verdicts.insert(dn.clone(), true);
        }
    }

    /// The first entry among `live` that changed since the plan was made. An entry's first
    /// reader in this run decides: later readers may see what this run itself wrote to it.
    fn changed<'a>(&self, live: &'a BTreeMap<Dn, Option<Entry>>) -> Option<&'a Dn> {
        if self.fingerprints.is_empty() {
            return None;
        }
        // A poisoned lock only means another task panicked; the verdicts stay valid.
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .find(|(dn, entry)| {
                let Some(recorded) = self.fingerprints.get(*dn) else {
                    return false;
                };
                if self.ours.contains(*dn) {
                    return false;
                }
                *verdicts.entry((*dn).clone()).or_insert_with(|| {
                    entry.as_ref().map(Entry::fingerprint).as_ref() != recorded.as_ref()
                })
            })
            .map(|(dn, _)| dn)
    }
}

/// Everything an action's task needs, shared between tasks.
struct Context<W> {
    plan: Arc<Plan>,
    writer: Arc<W>,
    rules: Arc<DestinationRules>,
    journal: Arc<dyn Journal>,
    /// What a saved plan recorded of the destination: actions touching an entry that changed
    /// since fail as stale.
    recorded: Arc<Recorded>,
    resume: Option<Arc<BTreeSet<String>>>,
    importer: Option<Arc<dyn Importer>>,
    /// One permit per action allowed to write at once (`parallelism`).
    writes: Arc<tokio::sync::Semaphore>,
    cancel: tokio::sync::watch::Receiver<bool>,
}

impl<W> Clone for Context<W> {
    fn clone(&self) -> Self {
        Context {
            plan: self.plan.clone(),
            writer: self.writer.clone(),
            rules: self.rules.clone(),
            journal: self.journal.clone(),
            recorded: self.recorded.clone(),
            resume: self.resume.clone(),
            importer: self.importer.clone(),
            writes: self.writes.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

impl<W> Context<W> {
    /// Waits for a turn to write. `None` when the run was interrupted meanwhile: an action
    /// prepared ahead has written nothing yet, so it is not started at all (its backup, if it
    /// took one, is of an entry left as it was).
    async fn turn_to_write(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if *self.cancel.borrow() {
            return None;
        }
        // The semaphore is never closed.
        let permit = self.writes.acquire().await.ok()?;
        (!*self.cancel.borrow()).then_some(permit)
    }
}

/// Runs the plan. `cancel` turning true stops new actions from starting.
#[allow(clippy::too_many_arguments)]
pub async fn execute<W: DirectoryWriter>(
    plan: Arc<Plan>,
    writer: Arc<W>,
    rules: Arc<DestinationRules>,
    journal: Arc<dyn Journal>,
    reporter: Arc<dyn Reporter>,
    recorded: Arc<Recorded>,
    options: Options,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Report, crate::plan::graph::GraphError> {
    execute_with_importer(
        plan, writer, rules, journal, reporter, recorded, None, options, cancel,
    )
    .await
}

/// `execute`, with an importer for the plan's import actions (without one they fail).
#[allow(clippy::too_many_arguments)]
pub async fn execute_with_importer<W: DirectoryWriter>(
    plan: Arc<Plan>,
    writer: Arc<W>,
    rules: Arc<DestinationRules>,
    journal: Arc<dyn Journal>,
    reporter: Arc<dyn Reporter>,
    recorded: Arc<Recorded>,
    importer: Option<Arc<dyn Importer>>,
    options: Options,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Report, crate::plan::graph::GraphError> {
    let start = Instant::now();
    let graph = ActionGraph::build(&plan)?;
    let n = plan.actions.len();
    let index: BTreeMap<&str, usize> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let mut waiting: Vec<usize> = plan.actions.iter().map(|a| a.depends_on.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in plan.actions.iter().enumerate() {
        for d in &a.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    // Start in topological order, ties in plan order, so runs are reproducible.
    let mut ready = Ready::new(&plan);
    for &i in &graph.order {
        if waiting[i] == 0 {
            ready.push(i);
        }
    }
    let mut results: Vec<Option<ActionResult>> = vec![None; n];
    let parallelism = options.parallelism.max(1);
    let in_flight = options.in_flight();
    let ctx = Context {
        plan: plan.clone(),
        writer,
        rules,
        journal,
        recorded,
        resume: options.resume.map(Arc::new),
        importer,
        writes: Arc::new(tokio::sync::Semaphore::new(parallelism)),
        cancel: cancel.clone(),
    };
    let mut running = JoinSet::new();
    let mut interrupted = *cancel.borrow();
    reporter.begin(n);

    loop {
        // Topped up once half the actions prepared ahead have gone on to write, not one at a
        // time: the next ones then reach the journal together and share a commit.
        let refill = running.len() <= parallelism + (in_flight - parallelism) / 2;
        while !interrupted && refill && running.len() < in_flight {
            let Some(batch) = ready.pop(&plan) else { break };
            let ctx = ctx.clone();
            running.spawn(async move {
                let started = SystemTime::now();
                let clock = Instant::now();
                let outcomes = run_batch(&ctx, &batch).await;
                for (&i, result) in batch.iter().zip(&outcomes) {
                    if *result != ActionResult::NotStarted {
                        ctx.journal
                            .record(&ctx.plan.actions[i], result, started, clock.elapsed());
                    }
                }
                batch.into_iter().zip(outcomes).collect::<Vec<_>>()
            });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let outcomes = match joined {
                    Ok(done) => done,
                    // A task that panicked: its actions are unknown, so they cannot be
                    // attributed; this is a bug, and the remaining actions stay not started.
                    Err(e) => {
                        interrupted = true;
                        eprintln!("internal error in an action: {e}");
                        continue;
                    }
                };
                for (i, result) in outcomes {
                    if result == ActionResult::NotStarted {
                        // Interrupted before it wrote: it and its dependents stay not started.
                        continue;
                    }
                    reporter.finished(&plan.actions[i], &result);
                    if result.is_applied() {
                        for &d in &dependents[i] {
                            waiting[d] -= 1;
                            if waiting[d] == 0 && results[d].is_none() {
                                ready.push(d);
                            }
                        }
                    } else {
                        skip_dependents(i, &plan, &dependents, &mut results, &*reporter, &*ctx.journal);
                    }
                    results[i] = Some(result);
                }
            }
            changed = cancel.changed(), if !interrupted => {
                if changed.is_err() || *cancel.borrow() {
                    interrupted = true;
                }
            }
        }
    }
    reporter.end();
    let results = plan
        .actions
        .iter()
        .zip(results)
        .map(|(a, r)| (a.id.clone(), r.unwrap_or(ActionResult::NotStarted)))
        .collect();
    Ok(Report {
        results,
        interrupted,
        elapsed: start.elapsed(),
    })
}

/// The most membership moves written together as one modify (see [`batch_object`]): large
/// enough that a group's moves are a handful of writes, small enough that a request stays far
/// below any server's size limit.
const MAX_BATCH: usize = 500;

/// The object a membership move writes, when it may share one modify with the other moves on
/// that object that are ready at the same moment.
///
/// A directory server syncs its disk once per write, so a group's hundreds of moves cost
/// hundreds of syncs one by one and one sync together. Only moves qualify: they change values
/// of one object, and their preconditions are only that this object holds the values they
/// remove, so moves of different values commute and an LDAP modify carrying all of them (it is
/// atomic) does exactly what they would one after the other.
fn batch_object(action: &Action) -> Option<&Dn> {
    if action.kind != ActionKind::MoveMemberships {
        return None;
    }
    let object = action.changes.first()?.object.as_ref()?;
    let one_object = action
        .changes
        .iter()
        .all(|c| c.object.as_ref() == Some(object));
    let guards_only_values = action
        .preconditions
        .iter()
        .all(|p| matches!(p, Precondition::Contains { object: o, .. } if o == object));
    (one_object && guards_only_values).then_some(object)
}

/// The actions ready to start, in the order they became ready; moves on one object that are
/// ready together leave the queue together (see [`batch_object`]).
struct Ready {
    queue: VecDeque<usize>,
    /// Per action, the number of the object it may share a write on.
    object: Vec<Option<usize>>,
    /// Per object, its ready moves not yet started, in queue order.
    moves: BTreeMap<usize, VecDeque<usize>>,
    /// Started as part of an earlier action's batch: skipped when the queue reaches them.
    started: Vec<bool>,
}

impl Ready {
    fn new(plan: &Plan) -> Self {
        let mut numbers: BTreeMap<&Dn, usize> = BTreeMap::new();
        let object = plan
            .actions
            .iter()
            .map(|a| {
                batch_object(a).map(|dn| {
                    let next = numbers.len();
                    *numbers.entry(dn).or_insert(next)
                })
            })
            .collect();
        Ready {
            queue: VecDeque::new(),
            object,
            moves: BTreeMap::new(),
            started: vec![false; plan.actions.len()],
        }
    }

    fn push(&mut self, i: usize) {
        self.queue.push_back(i);
        if let Some(o) = self.object[i] {
            self.moves.entry(o).or_default().push_back(i);
        }
    }

    /// The next action to start, with every ready move that can share its write. Moves whose
    /// values overlap the batch's stay queued: together they would not do what they do in turn.
    fn pop(&mut self, plan: &Plan) -> Option<Vec<usize>> {
        let first = loop {
            let i = self.queue.pop_front()?;
            if !self.started[i] {
                break i;
            }
        };
        self.started[first] = true;
        let Some(o) = self.object[first] else {
            return Some(vec![first]);
        };
        let candidates = self.moves.remove(&o).unwrap_or_default();
        let mut batch = vec![first];
        let mut values: BTreeSet<(&AttrName, &Value)> = BTreeSet::new();
        let claim = |i: usize, values: &mut BTreeSet<_>| {
            let mine: Vec<_> = plan.actions[i]
                .changes
                .iter()
                .flat_map(|c| {
                    c.before
                        .iter()
                        .chain(&c.after)
                        .map(move |v| (&c.attribute, v))
                })
                .collect();
            let free = mine.iter().all(|v| !values.contains(v));
            if free {
                values.extend(mine);
            }
            free
        };
        claim(first, &mut values);
        let mut left = VecDeque::new();
        for i in candidates {
            if i == first || self.started[i] {
                continue;
            }
            if batch.len() < MAX_BATCH && claim(i, &mut values) {
                self.started[i] = true;
                batch.push(i);
            } else {
                left.push_back(i);
            }
        }
        if !left.is_empty() {
            self.moves.insert(o, left);
        }
        Some(batch)
    }
}

/// Runs the actions [`Ready::pop`] started together: one alone as itself; moves on one object
/// read and checked each as if alone, then the object backed up once and written as one
/// modify. When that write is refused over its values (someone changed the object since the
/// check), every move is run again alone, so that only the ones that no longer fit fail.
async fn run_batch<W: DirectoryWriter>(ctx: &Context<W>, batch: &[usize]) -> Vec<ActionResult> {
    let actions: Vec<&Action> = batch.iter().map(|&i| &ctx.plan.actions[i]).collect();
    let resumed = |a: &Action| matches!(&ctx.resume, Some(done) if done.contains(&a.id));
    if let [action] = actions[..] {
        return vec![if resumed(action) {
            ActionResult::AlreadyApplied
        } else {
            run_action(ctx, action).await
        }];
    }
    let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
    let Some(object) = batch_object(actions[0]) else {
        return vec![
            failed("internal error: a batch of actions that cannot share a write");
            actions.len()
        ];
    };
    // Every entry the moves touch, read once.
    let touches: Vec<BTreeSet<Dn>> = actions.iter().map(|a| touched(a)).collect();
    let mut live: BTreeMap<Dn, Option<Entry>> = BTreeMap::new();
    for dn in touches.iter().flatten() {
        if live.contains_key(dn) {
            continue;
        }
        match ctx.writer.get(dn).await {
            Ok(e) => {
                live.insert(dn.clone(), e);
            }
            Err(e) => return vec![failed(e.to_string()); actions.len()],
        }
    }
    for (k, (action, touched)) in actions.iter().zip(touches).enumerate() {
        if resumed(action) {
            results[k] = Some(ActionResult::AlreadyApplied);
            continue;
        }
        let own: BTreeMap<Dn, Option<Entry>> = touched
            .into_iter()
            .map(|dn| {
                let entry = live.get(&dn).cloned().flatten();
                (dn, entry)
            })
            .collect();
        results[k] = before_write(ctx, action, &own);
    }
    let writing: Vec<usize> = (0..actions.len())
        .filter(|&k| results[k].is_none())
        .collect();
    let finish = |mut results: Vec<Option<ActionResult>>,
                  outcome: &dyn Fn(&Action) -> ActionResult| {
        for &k in &writing {
            results[k].get_or_insert_with(|| outcome(actions[k]));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(ActionResult::NotStarted))
            .collect::<Vec<_>>()
    };
    let Some(Some(entry)) = live.get(object) else {
        return finish(results, &|_| stale(format!("`{object}` no longer exists")));
    };
    if writing.is_empty() {
        return finish(results, &|_| ActionResult::NotStarted);
    }
    // One write, one backup: the object as it was before the write, kept under the first
    // move (a group's backup holds every member, and hundreds of copies of it would only load
    // the disk the directory server is waiting on).
    let each: Vec<(&Action, Vec<&Entry>)> = writing
        .iter()
        .enumerate()
        .map(|(n, &k)| (actions[k], if n == 0 { vec![entry] } else { Vec::new() }))
        .collect();
    if let Err(e) = ctx.journal.prepare_all(&each).await {
        let message = format!(
            "the state could not record the backup of `{object}`, so nothing was changed: {e}"
        );
        return finish(results, &|_| failed(message.clone()));
    }
    // All values removed, then all added: the same as the moves one after the other, since
    // no two of them name the same value.
    let mut removed: BTreeMap<AttrName, Vec<Value>> = BTreeMap::new();
    let mut added: BTreeMap<AttrName, Vec<Value>> = BTreeMap::new();
    let mut guard = Vec::new();
    for &k in &writing {
        for c in &actions[k].changes {
            removed
                .entry(c.attribute.clone())
                .or_default()
                .extend(c.removed().cloned());
            added
                .entry(c.attribute.clone())
                .or_default()
                .extend(c.added().cloned());
        }
        guard.extend(actions[k].preconditions.iter().cloned());
    }
    let mods: Vec<Modification> = removed
        .into_iter()
        .map(|(attr, values)| Modification {
            op: ModOp::Delete,
            attr,
            values,
        })
        .chain(added.into_iter().map(|(attr, values)| Modification {
            op: ModOp::Add,
            attr,
            values,
        }))
        .filter(|m| !m.values.is_empty())
        .collect();
    let written = {
        let Some(_turn) = ctx.turn_to_write().await else {
            return finish(results, &|_| ActionResult::NotStarted);
        };
        ctx.writer.modify_guarded(object, mods, &guard).await
    };
    match written {
        Ok(()) => {
            let mut after = entry.clone();
            for &k in &writing {
                if let Some(mods) = modifications(actions[k]).get(object) {
                    // The write succeeded, so the same modifications apply in memory.
                    let _ = crate::apply::writer::apply_modifications(&mut after, mods);
                }
            }
            if let Some(&first) = writing.first() {
                ctx.journal.written(actions[first], object, Some(&after));
            }
            finish(results, &|_| ActionResult::Applied)
        }
        Err(e) if e.is_about_values() => {
            for &k in &writing {
                results[k] = Some(run_action(ctx, actions[k]).await);
            }
            finish(results, &|_| ActionResult::NotStarted)
        }
        Err(e) => finish(results, &|_| write_failed(e.clone())),
    }
}

/// Marks every transitive dependent of a failed action as skipped because of it (once each).
fn skip_dependents(
    failed: usize,
    plan: &Plan,
    dependents: &[Vec<usize>],
    results: &mut [Option<ActionResult>],
    reporter: &dyn Reporter,
    journal: &dyn Journal,
) {
    let because = plan.actions[failed].id.clone();
    let mut queue: VecDeque<usize> = dependents[failed].iter().copied().collect();
    while let Some(d) = queue.pop_front() {
        if results[d].is_some() {
            continue;
        }
        let result = ActionResult::Skipped {
            because: because.clone(),
        };
        reporter.finished(&plan.actions[d], &result);
        journal.record(&plan.actions[d], &result, SystemTime::now(), Duration::ZERO);
        results[d] = Some(result);
        queue.extend(dependents[d].iter().copied());
    }
}

fn failed(message: impl Into<String>) -> ActionResult {
    ActionResult::Failed {
        stale: false,
        message: message.into(),
    }
}

fn stale(message: impl Into<String>) -> ActionResult {
    ActionResult::Failed {
        stale: true,
        message: message.into(),
    }
}

async fn run_action<W: DirectoryWriter>(ctx: &Context<W>, action: &Action) -> ActionResult {
    if blind_create(ctx, action) {
        return create_unread(ctx, action).await;
    }
    // Live entries, read once per action.
    let mut live: BTreeMap<Dn, Option<Entry>> = BTreeMap::new();
    for dn in touched(action) {
        match ctx.writer.get(&dn).await {
            Ok(e) => {
                live.insert(dn, e);
            }
            Err(e) => return failed(e.to_string()),
        }
    }
    if let Some(result) = before_write(ctx, action, &live) {
        return result;
    }
    if matches!(
        action.kind,
        ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts
    ) {
        // Imports write no directory entry; the importer works out what is new and keeps
        // its own ledger, so running one again is always safe.
        if matches!(live.get(&action.target), Some(None))
            && let Some(waited) = ctx.writer.wait_for(&action.target).await
        {
            // A mailbox something else creates (Carbonio's Auto Provisioning), awaited.
            match waited {
                Ok(true) => {}
                Ok(false) => {
                    let secs = ctx.writer.waits_for().unwrap_or_default().as_secs();
                    return failed(format!(
                        "`{}` does not exist: {NOT_PROVISIONED} within {secs} s \
                         (`provisioning.wait`), so none of its items were imported",
                        action.target
                    ));
                }
                Err(e) => return failed(e.to_string()),
            }
        }
        let Some(_turn) = ctx.turn_to_write().await else {
            return ActionResult::NotStarted;
        };
        return match &ctx.importer {
            Some(importer) => match importer.import(action).await {
                Ok(Imported::Copied) => ActionResult::Applied,
                Ok(Imported::Queued) => ActionResult::Queued,
                Err(e) => failed(e),
            },
            None => failed("this apply was started without access to the item stores"),
        };
    }
    let adds = creates(action.kind)
        || (action.kind == ActionKind::RestoreEntry
            && matches!(live.get(&action.target), Some(None)));
    let deletes = matches!(
        action.kind,
        ActionKind::DeleteContact | ActionKind::DeleteEntry
    );
    let mods = if adds || deletes {
        BTreeMap::new()
    } else {
        modifications(action)
    };
    // Every entry this action modifies or deletes, as it is now: backed up before any write.
    let mut written: Vec<&Entry> = Vec::new();
    match action.kind {
        _ if adds => {}
        _ if deletes => match live.get(&action.target) {
            Some(Some(entry)) => written.push(entry),
            _ => return stale(format!("`{}` no longer exists", action.target)),
        },
        _ => {
            for object in mods.keys() {
                match live.get(object) {
                    Some(Some(entry)) => written.push(entry),
                    _ => return stale(format!("`{object}` no longer exists")),
                }
            }
        }
    }
    if let Err(e) = ctx.journal.prepare(action, &written).await {
        return match written.first() {
            None => not_recorded(action, &e),
            Some(entry) => failed(format!(
                "the state could not record the backup of `{}` (or what `{}` is about to do), \
                 so nothing was changed: {e}",
                entry.dn, action.id
            )),
        };
    }
    let Some(_turn) = ctx.turn_to_write().await else {
        return ActionResult::NotStarted;
    };
    let result = match action.kind {
        _ if adds => {
            let entry = created_entry(action);
            let result = ctx.writer.add(entry.clone()).await;
            if result.is_ok() {
                ctx.journal.written(action, &action.target, Some(&entry));
            }
            result
        }
        ActionKind::DeleteContact | ActionKind::DeleteEntry => {
            let result = ctx
                .writer
                .delete_guarded(&action.target, &action.preconditions)
                .await;
            if result.is_ok() {
                ctx.journal.written(action, &action.target, None);
            }
            result
        }
        _ => {
            for (object, mods) in mods {
                if let Err(e) = ctx
                    .writer
                    .modify_guarded(&object, mods.clone(), &action.preconditions)
                    .await
                {
                    return write_failed(e);
                }
                if let Some(Some(before)) = live.get(&object) {
                    let mut after = before.clone();
                    // The write succeeded, so the same modifications apply in memory.
                    let _ = crate::apply::writer::apply_modifications(&mut after, &mods);
                    ctx.journal.written(action, &object, Some(&after));
                }
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ActionResult::Applied,
        Err(e) => write_failed(e),
    }
}

/// What `action` comes to before it writes, judged on the live entries it touches: stale when
/// they changed since the plan was made or its preconditions no longer hold, already applied
/// when an interrupted run wrote it. `None`: it goes on to write.
fn before_write<W>(
    ctx: &Context<W>,
    action: &Action,
    live: &BTreeMap<Dn, Option<Entry>>,
) -> Option<ActionResult> {
    let resuming = ctx.resume.is_some();
    if let Some(dn) = ctx.recorded.changed(live) {
        if resuming && in_effect(action, live) {
            return Some(ActionResult::AlreadyApplied);
        }
        return Some(stale(format!("`{dn}` changed since the plan was made")));
    }
    for p in &action.preconditions {
        if let Err(why) = check(p, live, &ctx.rules) {
            if resuming && in_effect(action, live) {
                return Some(ActionResult::AlreadyApplied);
            }
            return Some(stale(why));
        }
    }
    // An interrupted run may have written this action and died before recording it.
    if resuming && in_effect(action, live) {
        return Some(ActionResult::AlreadyApplied);
    }
    None
}

/// Whether `action` may create its object without reading first: its conditions are that the
/// object does not exist and its parent does, and a directory server's add checks exactly
/// that, atomically. Half the actions of a large migration are creates, so skipping their read
/// saves a round trip and a search each. Not when resuming: a create an interrupted run made
/// is recognised from the live entry. (The parent is then held to existing, not to its
/// recorded fingerprint: nothing of it but its existence goes into the create.)
fn blind_create<W: DirectoryWriter>(ctx: &Context<W>, action: &Action) -> bool {
    let target = &action.target;
    creates(action.kind)
        && ctx.resume.is_none()
        && ctx.writer.add_checks_existence()
        && action.preconditions.iter().all(|p| match p {
            Precondition::Absent { object } => object == target,
            Precondition::Exists {
                object,
                class: None,
            } => *object == target.parent(),
            _ => false,
        })
        && action
            .changes
            .iter()
            .all(|c| c.object.as_ref().is_none_or(|o| o == target))
        && ctx.recorded.claim_absent(target)
}

/// A create of an object the plan expects not to exist, without reading it first (see
/// [`blind_create`]): the link is recorded, then the add either makes the object or is refused
/// because it exists (or its parent does not), stale exactly as a read would have found it.
async fn create_unread<W: DirectoryWriter>(ctx: &Context<W>, action: &Action) -> ActionResult {
    if let Err(e) = ctx.journal.intend(action).await {
        return not_recorded(action, &e);
    }
    let Some(_turn) = ctx.turn_to_write().await else {
        return ActionResult::NotStarted;
    };
    let entry = created_entry(action);
    match ctx.writer.add(entry.clone()).await {
        Ok(()) => {
            ctx.journal.written(action, &action.target, Some(&entry));
            ActionResult::Applied
        }
        Err(WriteError::AlreadyExists(dn)) => {
            ctx.recorded.mark_changed(&dn);
            stale(exists_now(&dn))
        }
        Err(WriteError::NoSuchObject(parent)) => stale(format!("`{parent}` no longer exists")),
        Err(e) => write_failed(e),
    }
}

/// How the failure of an import whose account Carbonio's Auto Provisioning never created
/// starts its reason: the apply names such persons as left out.
pub const NOT_PROVISIONED: &str = "Carbonio's Auto Provisioning did not create the account";

/// Whether actions of `kind` bring their target into being (a mailbox, a group, a Carbonio
/// account or distribution list): written as an add of the entry its changes describe.
fn creates(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::CreateMailbox
            | ActionKind::CreateGroup
            | ActionKind::CreateAccount
            | ActionKind::CreateDistributionList
    )
}

/// An action that did nothing because the state could not record what it was about to do.
fn not_recorded(action: &Action, e: &str) -> ActionResult {
    failed(format!(
        "could not record in the state what `{}` is about to do, so it did nothing: {e}",
        action.id
    ))
}

/// Why an action that creates `object` is stale, whether a read or the add found it.
fn exists_now(object: &Dn) -> String {
    format!("`{object}` exists now; the plan expected it not to")
}

/// A refused write; stale when the directory itself found the preconditions broken.
fn write_failed(e: WriteError) -> ActionResult {
    if e.is_stale() {
        stale(e.to_string())
    } else {
        failed(e.to_string())
    }
}

/// The entry an action that adds one brings into being: every change's `after` values.
fn created_entry(action: &Action) -> Entry {
    let mut entry = Entry::new(action.target.clone());
    for c in &action.changes {
        for v in &c.after {
            entry.add(c.attribute.clone(), v.clone());
        }
    }
    entry
}

/// Whether the destination already looks as `action` would leave it: every object it adds
/// exists with the values it adds, every object it deletes is gone, every value it removes is
/// absent and every value it adds present. Only asked when resuming an interrupted saved plan,
/// for an action whose preconditions no longer hold.
pub fn in_effect(action: &Action, live: &BTreeMap<Dn, Option<Entry>>) -> bool {
    let get = |dn: &Dn| live.get(dn).and_then(Option::as_ref);
    match action.kind {
        ActionKind::DeleteContact | ActionKind::DeleteEntry => get(&action.target).is_none(),
        kind if creates(kind) || kind == ActionKind::RestoreEntry => {
            let Some(entry) = get(&action.target) else {
                return false;
            };
            created_entry(action).attrs.iter().all(|(a, want)| {
                entry
                    .attrs
                    .get(a)
                    .is_some_and(|have| want.iter().all(|v| have.contains(v)))
            })
        }
        ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts => false,
        _ => modifications(action).iter().all(|(object, mods)| {
            let Some(entry) = get(object) else {
                return false;
            };
            mods.iter().all(|m| {
                let have = entry.attrs.get(&m.attr);
                let holds = |v: &Value| have.is_some_and(|h| h.contains(v));
                match m.op {
                    ModOp::Add => m.values.iter().all(holds),
                    ModOp::Delete => m.values.iter().all(|v| !holds(v)),
                    ModOp::Replace => m.values.iter().all(holds),
                    ModOp::Increment => false,
                }
            })
        }),
    }
}

/// Every object an action reads or writes.
pub fn touched(action: &Action) -> BTreeSet<Dn> {
    let mut out = BTreeSet::from([action.target.clone()]);
    out.extend(action.changes.iter().filter_map(|c| c.object.clone()));
    for p in &action.preconditions {
        match p {
            Precondition::Absent { object }
            | Precondition::Exists { object, .. }
            | Precondition::Values { object, .. }
            | Precondition::Contains { object, .. }
            | Precondition::Lacks { object, .. } => out.insert(object.clone()),
        };
    }
    out
}

/// The LDAP modifications of an action, per object: values removed, then values added.
pub fn modifications(action: &Action) -> BTreeMap<Dn, Vec<Modification>> {
    let mut out: BTreeMap<Dn, Vec<Modification>> = BTreeMap::new();
    for c in &action.changes {
        let object = c.object.clone().unwrap_or_else(|| action.target.clone());
        let removed: Vec<Value> = c.removed().cloned().collect();
        let added: Vec<Value> = c.added().cloned().collect();
        let mods = out.entry(object).or_default();
        if !removed.is_empty() {
            mods.push(Modification {
                op: ModOp::Delete,
                attr: c.attribute.clone(),
                values: removed,
            });
        }
        if !added.is_empty() {
            mods.push(Modification {
                op: ModOp::Add,
                attr: c.attribute.clone(),
                values: added,
            });
        }
    }
    out.retain(|_, m| !m.is_empty());
    out
}

fn shown(values: &ValueSet) -> String {
    if values.is_empty() {
        return "nothing".into();
    }
    values
        .iter()
        .map(|v| format!("{:?}", v.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one precondition against the live entries; the error says what changed.
pub fn check(
    p: &Precondition,
    live: &BTreeMap<Dn, Option<Entry>>,
    rules: &DestinationRules,
) -> Result<(), String> {
    let get = |dn: &Dn| live.get(dn).and_then(Option::as_ref);
    match p {
        Precondition::Absent { object } => match get(object) {
            None => Ok(()),
            Some(_) => Err(exists_now(object)),
        },
        Precondition::Exists { object, class } => match get(object) {
            None => Err(format!("`{object}` no longer exists")),
            Some(e) => match class {
                Some(c) if rules.classify(e) != *c => Err(format!(
                    "`{object}` is a {} now; the plan expected a {}",
                    rules.classify(e).describe(),
                    c.describe()
                )),
                _ => Ok(()),
            },
        },
        Precondition::Values {
            object,
            attribute,
            values,
        } => {
            let Some(e) = get(object) else {
                return Err(format!("`{object}` no longer exists"));
            };
            let now = e.attrs.get(attribute).cloned().unwrap_or_default();
            if &now == values {
                Ok(())
            } else {
                Err(format!(
                    "`{attribute}` of `{object}` changed since the plan was made: expected {}, found {}",
                    shown(values),
                    shown(&now)
                ))
            }
        }
        Precondition::Contains {
            object,
            attribute,
            value,
        } => {
            let Some(e) = get(object) else {
                return Err(format!("`{object}` no longer exists"));
            };
            if e.attrs.get(attribute).is_some_and(|v| v.contains(value)) {
                Ok(())
            } else {
                Err(format!(
                    "`{attribute}` of `{object}` no longer holds {:?}",
                    value.display()
                ))
            }
        }
        Precondition::Lacks {
            object,
            attribute,
            value,
        } => {
            let Some(e) = get(object) else {
                return Err(format!("`{object}` no longer exists"));
            };
            if e.attrs.get(attribute).is_some_and(|v| v.contains(value)) {
                Err(format!(
                    "`{attribute}` of `{object}` holds {:?} already",
                    value.display()
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// A journal that keeps backups and outcomes in memory: for tests, and for callers that keep
/// their own records.
#[derive(Default)]
pub struct MemoryJournal {
    pub backups: std::sync::Mutex<Vec<(String, Entry)>>,
    pub records: std::sync::Mutex<Vec<(String, ActionResult)>>,
}

impl Journal for MemoryJournal {
    fn backup<'a>(&'a self, action: &'a Action, entry: &'a Entry) -> JournalFuture<'a> {
        self.backups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((action.id.clone(), entry.clone()));
        Box::pin(std::future::ready(Ok(())))
    }
    fn record(&self, action: &Action, result: &ActionResult, _: SystemTime, _: Duration) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((action.id.clone(), result.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::directory::AttrName;
    use crate::plan::Change;

    /// A directory in memory whose writes take a little while, that counts how many run at
    /// once, and refuses to add entries whose DN names `fail`.
    #[derive(Default)]
    struct Slow {
        entries: Mutex<BTreeMap<Dn, Entry>>,
        running: AtomicUsize,
        most: AtomicUsize,
        /// Whether its adds check existence, as a server does (creates then skip the read).
        checks: bool,
        gets: AtomicUsize,
        /// Every modify it carried out or refused: the object and how many values it named.
        modifies: Mutex<Vec<(Dn, usize)>>,
        /// Refuses, as stale, modifies that name more values than this.
        refuse_beyond: Option<usize>,
    }

    impl Slow {
        /// `dn` exists already, as if someone had created it since the plan was made.
        fn made_by_someone_else(&self, dn: &Dn) {
            self.entries
                .lock()
                .unwrap()
                .insert(dn.clone(), Entry::new(dn.clone()));
        }
    }

    impl DirectoryWriter for Slow {
        async fn get(&self, dn: &Dn) -> Result<Option<Entry>, super::super::WriteError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            Ok(self.entries.lock().unwrap().get(dn).cloned())
        }
        fn add_checks_existence(&self) -> bool {
            self.checks
        }
        async fn add(&self, entry: Entry) -> Result<(), super::super::WriteError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if self.entries.lock().unwrap().contains_key(&entry.dn) {
                return Err(super::super::WriteError::AlreadyExists(entry.dn));
            }
            if entry.dn.to_string().contains("fail") {
                return Err(super::super::WriteError::Io {
                    path: "test".into(),
                    message: "refused".into(),
                });
            }
            self.entries.lock().unwrap().insert(entry.dn.clone(), entry);
            Ok(())
        }
        async fn modify(
            &self,
            dn: &Dn,
            mods: Vec<Modification>,
        ) -> Result<(), super::super::WriteError> {
            use super::super::WriteError;
            let named = mods.iter().map(|m| m.values.len()).sum();
            self.modifies.lock().unwrap().push((dn.clone(), named));
            if self.refuse_beyond.is_some_and(|most| named > most) {
                return Err(WriteError::Stale {
                    dn: dn.clone(),
                    message: "assertion failed".into(),
                });
            }
            let mut entries = self.entries.lock().unwrap();
            let Some(entry) = entries.get_mut(dn) else {
                return Err(WriteError::NoSuchObject(dn.clone()));
            };
            super::super::writer::apply_modifications(entry, &mods)
        }
        async fn delete(&self, _: &Dn) -> Result<(), super::super::WriteError> {
            unreachable!("these plans only add")
        }
    }

    struct Quiet;
    impl Reporter for Quiet {
        fn begin(&self, _: usize) {}
        fn finished(&self, _: &Action, _: &ActionResult) {}
        fn end(&self) {}
    }

    fn group(name: &str, depends_on: &[&str]) -> Action {
        let target = Dn::parse(&format!("CN={name},OU=Groups,DC=test")).unwrap();
        Action {
            id: format!("create_group:{name}"),
            kind: ActionKind::CreateGroup,
            subject: target.clone(),
            target: target.clone(),
            depends_on: depends_on
                .iter()
                .map(|d| format!("create_group:{d}"))
                .collect(),
            changes: vec![Change {
                object: None,
                attribute: AttrName::new_unchecked("objectClass"),
                before: ValueSet::new(),
                after: ValueSet::from([Value::text("group".to_string())]),
            }],
            preconditions: vec![Precondition::Absent { object: target }],
            items: None,
        }
    }

    fn plan(actions: Vec<Action>) -> Arc<Plan> {
        Arc::new(Plan {
            format_version: crate::plan::FORMAT_VERSION.into(),
            messages: Vec::new(),
            subjects: Vec::new(),
            summary: Plan::summarise(&[], &actions),
            actions,
        })
    }

    fn rules() -> Arc<DestinationRules> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plans/quickstart.yaml");
        Arc::new(DestinationRules::for_spec(
            &crate::spec::load(&path).unwrap(),
        ))
    }

    async fn run(
        plan: Arc<Plan>,
        writer: Arc<Slow>,
        parallelism: usize,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> (Report, Arc<MemoryJournal>) {
        let journal = Arc::new(MemoryJournal::default());
        let report = execute(
            plan,
            writer,
            rules(),
            journal.clone(),
            Arc::new(Quiet),
            Arc::new(Recorded::none()),
            Options {
                parallelism,
                resume: None,
            },
            cancel,
        )
        .await
        .unwrap();
        (report, journal)
    }

    fn result<'a>(report: &'a Report, name: &str) -> &'a ActionResult {
        let id = format!("create_group:{name}");
        &report.results.iter().find(|(i, _)| *i == id).unwrap().1
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_parallelism_actions_run_at_once() {
        let actions = (0..24).map(|i| group(&format!("g{i}"), &[])).collect();
        let writer = Arc::new(Slow::default());
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let (report, _) = run(plan(actions), writer.clone(), 4, rx).await;
        assert!(report.succeeded());
        assert_eq!(writer.most.load(Ordering::SeqCst), 4);
        assert_eq!(writer.entries.lock().unwrap().len(), 24);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_skips_its_dependents_once_and_the_rest_goes_on() {
        // fail ← a ← b, fail ← b (b reachable twice), c independent.
        let actions = vec![
            group("fail", &[]),
            group("a", &["fail"]),
            group("b", &["a", "fail"]),
            group("c", &[]),
        ];
        let writer = Arc::new(Slow::default());
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let (report, journal) = run(plan(actions), writer, 2, rx).await;
        assert!(!report.succeeded());
        assert!(
            matches!(result(&report, "fail"), ActionResult::Failed { stale: false, message } if message.contains("refused"))
        );
        for dependent in ["a", "b"] {
            assert_eq!(
                result(&report, dependent),
                &ActionResult::Skipped {
                    because: "create_group:fail".into()
                }
            );
        }
        assert_eq!(result(&report, "c"), &ActionResult::Applied);
        let records = journal.records.lock().unwrap();
        let b = records
            .iter()
            .filter(|(id, _)| id == "create_group:b")
            .count();
        assert_eq!(b, 1, "a skip is recorded once");
        assert_eq!(records.len(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_action_fails_alone() {
        let actions = vec![group("x", &[]), group("y", &["x"]), group("z", &[])];
        let writer = Arc::new(Slow::default());
        writer.made_by_someone_else(&actions[0].target);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let (report, _) = run(plan(actions), writer, 2, rx).await;
        assert!(
            matches!(result(&report, "x"), ActionResult::Failed { stale: true, message } if message.contains("exists now"))
        );
        assert!(matches!(result(&report, "y"), ActionResult::Skipped { .. }));
        assert_eq!(result(&report, "z"), &ActionResult::Applied);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creates_on_a_checking_directory_skip_the_read_and_are_stale_all_the_same() {
        let actions = vec![group("x", &[]), group("y", &["x"]), group("z", &[])];
        let writer = Arc::new(Slow {
            checks: true,
            ..Slow::default()
        });
        writer.made_by_someone_else(&actions[0].target);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let (report, _) = run(plan(actions), writer.clone(), 2, rx).await;
        assert!(
            matches!(result(&report, "x"), ActionResult::Failed { stale: true, message } if message.contains("exists now; the plan expected it not to"))
        );
        assert!(matches!(result(&report, "y"), ActionResult::Skipped { .. }));
        assert_eq!(result(&report, "z"), &ActionResult::Applied);
        assert_eq!(
            writer.gets.load(Ordering::SeqCst),
            0,
            "no create read first"
        );
    }

    #[test]
    fn a_recorded_entry_is_judged_by_its_first_reader_and_the_verdict_kept() {
        let dn = |s: &str| Dn::parse(s).unwrap();
        let (a, b, gone, ours) = (
            dn("CN=a,DC=t"),
            dn("CN=b,DC=t"),
            dn("CN=g,DC=t"),
            dn("CN=o,DC=t"),
        );
        let before = Entry::new(a.clone()).with("title", "Sales");
        let recorded = Recorded::new(
            BTreeMap::from([
                (a.clone(), Some(before.fingerprint())),
                (
                    b.clone(),
                    Some(Entry::new(b.clone()).with("title", "HR").fingerprint()),
                ),
                (gone.clone(), None),
                (ours.clone(), Some("sha256:old".into())),
            ]),
            BTreeSet::from([ours.clone()]),
        );
        let live = |pairs: &[(&Dn, Option<Entry>)]| -> BTreeMap<Dn, Option<Entry>> {
            pairs
                .iter()
                .map(|(d, e)| ((*d).clone(), e.clone()))
                .collect()
        };
        // `a` as planned, `gone` still absent, `ours` rewritten by an earlier run of this plan.
        let first = live(&[(&a, Some(before.clone())), (&gone, None), (&ours, None)]);
        assert_eq!(recorded.changed(&first), None);
        // This run then writes `a`; a later action touching it is not held to the old print.
        let written = Entry::new(a.clone()).with("title", "Head of Sales");
        assert_eq!(recorded.changed(&live(&[(&a, Some(written))])), None);
        // Someone else changed `b` before anyone here read it: every reader finds it stale.
        let edited = live(&[(&b, Some(Entry::new(b.clone()).with("title", "Legal")))]);
        assert_eq!(recorded.changed(&edited), Some(&b));
        let restored = live(&[(&b, Some(Entry::new(b.clone()).with("title", "HR")))]);
        assert_eq!(
            recorded.changed(&restored),
            Some(&b),
            "the first verdict stands"
        );
        // An entry that had to be absent and exists now.
        let fresh = Recorded::new(BTreeMap::from([(gone.clone(), None)]), BTreeSet::new());
        assert_eq!(
            fresh.changed(&live(&[(&gone, Some(Entry::new(gone.clone())))])),
            Some(&gone)
        );
    }

    /// A journal that notes, each time an action is about to write, how many entries the
    /// directory already holds.
    struct Watching {
        writer: Arc<Slow>,
        written_at_intent: Mutex<Vec<usize>>,
    }

    impl Journal for Watching {
        fn backup<'a>(&'a self, _: &'a Action, _: &'a Entry) -> JournalFuture<'a> {
            Box::pin(std::future::ready(Ok(())))
        }
        fn intend<'a>(&'a self, _: &'a Action) -> JournalFuture<'a> {
            let written = self.writer.entries.lock().unwrap().len();
            self.written_at_intent.lock().unwrap().push(written);
            Box::pin(std::future::ready(Ok(())))
        }
        fn record(&self, _: &Action, _: &ActionResult, _: SystemTime, _: Duration) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actions_are_prepared_ahead_of_the_writes_which_stay_bounded() {
        let actions: Vec<Action> = (0..30).map(|i| group(&format!("g{i}"), &[])).collect();
        let writer = Arc::new(Slow::default());
        let journal = Arc::new(Watching {
            writer: writer.clone(),
            written_at_intent: Mutex::new(Vec::new()),
        });
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let options = Options {
            parallelism: 2,
            resume: None,
        };
        assert!(options.in_flight() >= 30);
        let report = execute(
            plan(actions),
            writer.clone(),
            rules(),
            journal.clone(),
            Arc::new(Quiet),
            Arc::new(Recorded::none()),
            options,
            rx,
        )
        .await
        .unwrap();
        assert!(report.succeeded());
        assert_eq!(writer.entries.lock().unwrap().len(), 30);
        assert_eq!(writer.most.load(Ordering::SeqCst), 2, "two writes at once");
        // Each write takes a while: every action read, checked and journaled its intent before
        // the first two writes were done, instead of two at a time.
        let seen = journal.written_at_intent.lock().unwrap().clone();
        assert_eq!(seen.len(), 30);
        assert!(
            seen.iter().all(|&written| written < 2),
            "intents journaled while this many entries were written: {seen:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelling_starts_nothing_new_and_lets_running_actions_finish() {
        let actions = (0..40).map(|i| group(&format!("g{i}"), &[])).collect();
        let writer = Arc::new(Slow::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(true).unwrap();
            tx
        });
        let (report, journal) = run(plan(actions), writer.clone(), 4, rx).await;
        drop(cancel.await);
        assert!(report.interrupted);
        let applied = report.applied();
        let not_started = report.count(|r| *r == ActionResult::NotStarted);
        assert!((4..40).contains(&applied), "applied {applied}");
        assert_eq!(applied + not_started, 40, "nothing failed or was abandoned");
        // Every action that started finished, wrote, and was recorded.
        assert_eq!(writer.entries.lock().unwrap().len(), applied);
        assert_eq!(journal.records.lock().unwrap().len(), applied);
        assert_eq!(writer.running.load(Ordering::SeqCst), 0);
    }

    /// A group holding `n` contacts, and a move for each from its contact to its mailbox.
    fn moves(n: usize) -> (Entry, Vec<Action>) {
        let group = Dn::parse("CN=Staff,OU=Groups,DC=test").unwrap();
        let member = AttrName::new_unchecked("member");
        let contact = |i: usize| Dn::parse(&format!("CN=c{i},OU=Contacts,DC=test")).unwrap();
        let mut entry = Entry::new(group.clone());
        let actions = (0..n)
            .map(|i| {
                let old = Value::text(contact(i).to_string());
                let new = Value::text(format!("CN=m{i},OU=Mail,DC=test"));
                entry.add(member.clone(), old.clone());
                Action {
                    id: format!("move_memberships:{}", contact(i)),
                    kind: ActionKind::MoveMemberships,
                    subject: contact(i),
                    target: contact(i),
                    depends_on: Vec::new(),
                    changes: vec![Change {
                        object: Some(group.clone()),
                        attribute: member.clone(),
                        before: ValueSet::from([old.clone()]),
                        after: ValueSet::from([new]),
                    }],
                    preconditions: vec![Precondition::Contains {
                        object: group.clone(),
                        attribute: member.clone(),
                        value: old,
                    }],
                    items: None,
                }
            })
            .collect();
        (entry, actions)
    }

    fn members(writer: &Slow, group: &Dn) -> Vec<String> {
        let entries = writer.entries.lock().unwrap();
        entries[group].texts("member").map(str::to_string).collect()
    }

    /// Every action applied but the one whose id names `contact`, which failed (as stale or
    /// not) with a message saying `why`.
    fn only_fails(report: &Report, contact: &str, stale: bool, why: &str) {
        for (id, result) in &report.results {
            if id.contains(contact) {
                assert!(
                    matches!(result, ActionResult::Failed { stale: s, message } if *s == stale && message.contains(why)),
                    "{id}: {result:?}"
                );
            } else {
                assert_eq!(result, &ActionResult::Applied, "{id}");
            }
        }
    }

    /// Runs `actions`, four at a time, on `writer` once it holds `group`.
    async fn run_on(
        writer: Slow,
        group: &Entry,
        actions: Vec<Action>,
    ) -> (Report, Arc<MemoryJournal>, Arc<Slow>) {
        writer
            .entries
            .lock()
            .unwrap()
            .insert(group.dn.clone(), group.clone());
        let writer = Arc::new(writer);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let (report, journal) = run(plan(actions), writer.clone(), 4, rx).await;
        (report, journal, writer)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moves_on_one_group_ready_together_are_one_write() {
        let (group, actions) = moves(40);
        let (report, journal, writer) = run_on(Slow::default(), &group, actions).await;
        assert!(report.succeeded(), "{:?}", report.results);
        assert_eq!(
            *writer.modifies.lock().unwrap(),
            vec![(group.dn.clone(), 80)],
            "one modify naming every value removed and added"
        );
        let now = members(&writer, &group.dn);
        assert_eq!(now.len(), 40);
        assert!(now.iter().all(|m| m.starts_with("CN=m")), "{now:?}");
        // One backup of the group as it was before the write, and an outcome for each move.
        let backups = journal.backups.lock().unwrap();
        assert_eq!(backups.len(), 1);
        assert!(backups[0].0.starts_with("move_memberships:") && backups[0].1 == group);
        assert_eq!(journal.records.lock().unwrap().len(), 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_move_in_a_batch_fails_alone() {
        let (mut group, actions) = moves(10);
        // Someone took c3 out of the group since the plan was made.
        let member = AttrName::new_unchecked("member");
        group
            .attrs
            .entry(member)
            .or_default()
            .remove(&Value::text("CN=c3,OU=Contacts,DC=test"));
        let (report, _, writer) = run_on(Slow::default(), &group, actions).await;
        only_fails(&report, "CN=c3,", true, "no longer holds");
        assert_eq!(
            writer.modifies.lock().unwrap().len(),
            1,
            "the other nine in one write"
        );
        assert_eq!(members(&writer, &group.dn).len(), 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_refused_over_its_values_is_written_again_move_by_move() {
        let (mut group, actions) = moves(6);
        // The batch is refused (as if the group changed between the check and the write);
        // one by one, the move whose new value the group already holds fails alone.
        let member = AttrName::new_unchecked("member");
        group.add(member.clone(), Value::text("CN=m2,OU=Mail,DC=test"));
        let refusing = Slow {
            refuse_beyond: Some(2),
            ..Slow::default()
        };
        let (report, _, writer) = run_on(refusing, &group, actions).await;
        let modifies = writer.modifies.lock().unwrap().clone();
        assert_eq!(
            modifies.len(),
            7,
            "one refused batch, then six moves: {modifies:?}"
        );
        assert_eq!(modifies[0].1, 12);
        only_fails(&report, "CN=c2,", false, "already has");
        let now = members(&writer, &group.dn);
        assert!(
            now.contains(&"CN=c2,OU=Contacts,DC=test".to_string()),
            "c2 stays: {now:?}"
        );
        assert_eq!(now.len(), 7, "five moved, c2 and m2 as they were");
    }

    #[test]
    fn only_moves_of_distinct_values_on_one_object_share_a_write() {
        let (_, mut actions) = moves(4);
        // Move 1 takes the value move 0 puts in: in turn they would differ from together.
        actions[1].changes[0].before = actions[0].changes[0].after.clone();
        // Move 2 also changes a second group; move 3 is held to the whole member list.
        let mut two_groups = actions[2].changes[0].clone();
        two_groups.object = Some(Dn::parse("CN=Other,OU=Groups,DC=test").unwrap());
        actions[2].changes.push(two_groups);
        actions[3].preconditions = vec![Precondition::Values {
            object: actions[3].changes[0].object.clone().unwrap(),
            attribute: AttrName::new_unchecked("member"),
            values: ValueSet::new(),
        }];
        assert!(batch_object(&actions[0]).is_some());
        assert!(batch_object(&actions[1]).is_some());
        assert!(batch_object(&actions[2]).is_none());
        assert!(batch_object(&actions[3]).is_none());
        let (_, more) = moves(7);
        actions.extend(more.into_iter().skip(4));
        let plan = plan(actions);
        let mut ready = Ready::new(&plan);
        for i in 0..plan.actions.len() {
            ready.push(i);
        }
        let mut batches = Vec::new();
        while let Some(b) = ready.pop(&plan) {
            batches.push(b);
        }
        assert_eq!(batches, vec![vec![0, 4, 5, 6], vec![1], vec![2], vec![3]]);
    }
}
