//! The executor: carries out a plan's actions in dependency order, in parallel, safely.
//!
//! An action starts when every action it depends on applied; at most `parallelism` run at once.
//! Before each write the action's preconditions are checked against the live entries (the plan
//! was computed from what the directory looked like then; if that changed, the action fails as
//! stale instead of writing over someone else's change), and every entry about to be modified or
//! deleted is handed to the journal for backup first. A failed action's dependents are skipped,
//! each reported once with the action that caused it; independent work goes on. On cancellation
//! no new action starts and running ones finish. The executor never re-plans: it does exactly
//! what the plan says or fails.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use crate::directory::ldif::{ModOp, Modification};
use crate::directory::{Dn, Entry, Value, ValueSet};
use crate::matching::DestinationRules;
use crate::plan::graph::ActionGraph;
use crate::plan::{Action, ActionKind, Plan, Precondition};

use super::writer::DirectoryWriter;

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    Applied,
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
}

impl ActionResult {
    pub fn is_applied(&self) -> bool {
        matches!(self, ActionResult::Applied)
    }
}

/// Durable bookkeeping around the writes (the state database implements it).
pub trait Journal: Send + Sync + 'static {
    /// The entry as it is, just before `action` modifies or deletes it. The write happens only
    /// after this returned `Ok`, so a backup exists for everything changed.
    fn backup(&self, action: &Action, entry: &Entry) -> Result<(), String>;
    /// The action's outcome, once known.
    fn record(
        &self,
        action: &Action,
        result: &ActionResult,
        started: SystemTime,
        elapsed: Duration,
    );
}

/// Progress for people; see `super::reporter`.
pub trait Reporter: Send + Sync + 'static {
    fn begin(&self, total: usize);
    fn finished(&self, action: &Action, result: &ActionResult);
    fn end(&self);
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How many actions may run at once (at least 1).
    pub parallelism: usize,
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
    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.applied() == self.results.len()
    }
}

/// Everything an action's task needs, shared between tasks.
struct Context<W> {
    plan: Arc<Plan>,
    writer: Arc<W>,
    rules: Arc<DestinationRules>,
    journal: Arc<dyn Journal>,
    /// Destination entries that changed since a saved plan was made: actions touching them fail
    /// as stale.
    changed: Arc<BTreeSet<Dn>>,
}

impl<W> Clone for Context<W> {
    fn clone(&self) -> Self {
        Context {
            plan: self.plan.clone(),
            writer: self.writer.clone(),
            rules: self.rules.clone(),
            journal: self.journal.clone(),
            changed: self.changed.clone(),
        }
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
    changed: Arc<BTreeSet<Dn>>,
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
    let mut ready: VecDeque<usize> = graph
        .order
        .iter()
        .copied()
        .filter(|&i| waiting[i] == 0)
        .collect();
    let mut results: Vec<Option<ActionResult>> = vec![None; n];
    let ctx = Context {
        plan: plan.clone(),
        writer,
        rules,
        journal,
        changed,
    };
    let parallelism = options.parallelism.max(1);
    let mut running = JoinSet::new();
    let mut interrupted = *cancel.borrow();
    reporter.begin(n);

    loop {
        while !interrupted && running.len() < parallelism {
            let Some(i) = ready.pop_front() else { break };
            let ctx = ctx.clone();
            running.spawn(async move {
                let started = SystemTime::now();
                let clock = Instant::now();
                let result = run_action(&ctx, &ctx.plan.actions[i]).await;
                ctx.journal
                    .record(&ctx.plan.actions[i], &result, started, clock.elapsed());
                (i, result)
            });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (i, result) = match joined {
                    Ok(done) => done,
                    // A task that panicked: its action's index is unknown, so it cannot be
                    // attributed; this is a bug, and the remaining actions stay not started.
                    Err(e) => {
                        interrupted = true;
                        eprintln!("internal error in an action: {e}");
                        continue;
                    }
                };
                reporter.finished(&plan.actions[i], &result);
                if result.is_applied() {
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && results[d].is_none() {
                            ready.push_back(d);
                        }
                    }
                } else {
                    skip_dependents(i, &plan, &dependents, &mut results, &*reporter, &*ctx.journal);
                }
                results[i] = Some(result);
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
    if let Some(dn) = touched(action)
        .into_iter()
        .find(|dn| ctx.changed.contains(dn))
    {
        return stale(format!("`{dn}` changed since the plan was made"));
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
    for p in &action.preconditions {
        if let Err(why) = check(p, &live, &ctx.rules) {
            return stale(why);
        }
    }
    let result = match action.kind {
        ActionKind::CreateMailbox | ActionKind::CreateGroup => {
            ctx.writer.add(created_entry(action)).await
        }
        ActionKind::DeleteContact => {
            let Some(Some(entry)) = live.get(&action.target) else {
                return stale(format!("`{}` no longer exists", action.target));
            };
            if let Err(e) = ctx.journal.backup(action, entry) {
                return failed(format!(
                    "backup of `{}` failed, so it was not deleted: {e}",
                    action.target
                ));
            }
            ctx.writer
                .delete_guarded(&action.target, &action.preconditions)
                .await
        }
        ActionKind::RestoreEntry if matches!(live.get(&action.target), Some(None)) => {
            ctx.writer.add(created_entry(action)).await
        }
        ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts => {
            return failed("importing items is not available in this version of mailplan");
        }
        _ => {
            for (object, mods) in modifications(action) {
                let Some(Some(entry)) = live.get(&object) else {
                    return stale(format!("`{object}` no longer exists"));
                };
                if let Err(e) = ctx.journal.backup(action, entry) {
                    return failed(format!(
                        "backup of `{object}` failed, so it was not changed: {e}"
                    ));
                }
                if let Err(e) = ctx
                    .writer
                    .modify_guarded(&object, mods, &action.preconditions)
                    .await
                {
                    return write_failed(e);
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

/// A refused write; stale when the directory itself found the preconditions broken.
fn write_failed(e: crate::apply::WriteError) -> ActionResult {
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

/// Every object an action reads or writes.
pub fn touched(action: &Action) -> BTreeSet<Dn> {
    let mut out = BTreeSet::from([action.target.clone()]);
    out.extend(action.changes.iter().filter_map(|c| c.object.clone()));
    for p in &action.preconditions {
        match p {
            Precondition::Absent { object }
            | Precondition::Exists { object, .. }
            | Precondition::Values { object, .. }
            | Precondition::Contains { object, .. } => out.insert(object.clone()),
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
            Some(_) => Err(format!(
                "`{object}` exists now; the plan expected it not to"
            )),
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
    fn backup(&self, action: &Action, entry: &Entry) -> Result<(), String> {
        self.backups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((action.id.clone(), entry.clone()));
        Ok(())
    }
    fn record(&self, action: &Action, result: &ActionResult, _: SystemTime, _: Duration) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((action.id.clone(), result.clone()));
    }
}
