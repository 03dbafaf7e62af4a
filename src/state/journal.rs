//! The executor's journal, kept in the state database: a backup of every entry before it is
//! changed, the link of every object about to be created or converted, and every action's
//! outcome.
//!
//! Every commit costs an fsync, and these syncs compete for the disk with the directory
//! server's own (which syncs every write it makes): one commit per write would make the
//! journal, not the directory, the limit of `apply`. So one writer thread owns the database
//! connection and commits group-wise: it takes the first waiting request, drains every other one
//! queued behind it, runs them all in one transaction (each in its own savepoint, see
//! [`StateDb::write_together`]), commits once, and only then answers each requester. What this
//! must never do is answer a backup or a link before its commit: the executor changes the
//! directory as soon as that answer arrives. A failure of one write is answered to its requester
//! alone; when the shared transaction itself fails, each write is retried in a transaction of its
//! own so that every requester learns its own result.
//!
//! Three things make the groups large. An action's link and backups are one request
//! ([`Journal::prepare`]). A backup or link waits up to [`GATHER`] for the other running
//! actions' before the commit, unless they all wait already: actions arrive one at a time, a
//! few hundred microseconds apart, and without the wait nearly every commit held one request.
//! And outcomes ([`Journal::record`]) never get a commit of their own (below).
//!
//! Outcomes are queued without waiting: the write they describe has happened either way, and a
//! lost outcome only makes the next run check the directory again. They are committed in order
//! with everything else, so any backup committed after them carries them too, and
//! [`StateJournal::finish`] (and dropping the journal) waits until all of them are on disk.
//! Nothing waits for them, so they wait for the next backup or link (or [`LINGER`], or
//! [`MAX_DEFERRED`] of them) and share its commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::apply::{ActionResult, Journal, JournalFuture};
use crate::directory::{Entry, ldif};
use crate::plan::{Action, ActionKind};

use super::time::{rfc3339, unix_seconds};
use super::{ActionRecord, ActionStatus, RunId, RunOutcome, StateDb, StateError};

/// One write the writer thread carries out.
#[derive(Debug, Clone)]
enum Write {
    Backup {
        run: RunId,
        action_id: String,
        dn: String,
        ldif: String,
    },
    BackupContact {
        run: RunId,
        action_id: String,
        contact: String,
        ldif: String,
        source: String,
    },
    Link {
        run: RunId,
        action_id: String,
        source: String,
        destination: String,
    },
    Unlink {
        run: RunId,
        action_id: String,
    },
    Record(ActionRecord),
    After {
        run: RunId,
        action_id: String,
        dn: String,
        ldif: Option<String>,
    },
    Merged {
        run: RunId,
        source: String,
    },
    Finish {
        run: RunId,
        outcome: RunOutcome,
    },
    /// Several writes that stand or fall together (an action's link and backups).
    All(Vec<Write>),
}

impl Write {
    fn apply(&self, db: &StateDb) -> Result<(), StateError> {
        match self {
            Write::Backup {
                run,
                action_id,
                dn,
                ldif,
            } => db.backup(*run, action_id, dn, ldif).map(drop),
            Write::BackupContact {
                run,
                action_id,
                contact,
                ldif,
                source,
            } => db
                .backup_contact(*run, action_id, contact, ldif, source)
                .map(drop),
            Write::Link {
                run,
                action_id,
                source,
                destination,
            } => db.link(*run, action_id, source, destination),
            Write::Unlink { run, action_id } => db.unlink(*run, action_id),
            Write::Record(rec) => db.record_action(rec),
            Write::After {
                run,
                action_id,
                dn,
                ldif,
            } => db.after_image(*run, action_id, dn, ldif.as_deref()),
            Write::Merged { run, source } => db.merged(*run, source),
            Write::Finish { run, outcome } => db.finish_run(*run, *outcome),
            // Always inside a request's savepoint (see `commit`): a failure undoes them all.
            Write::All(writes) => writes.iter().try_for_each(|w| w.apply(db)),
        }
    }
}

/// Where the result of a write goes once it is committed (or has failed).
enum Reply {
    /// An async caller awaiting it.
    Await(tokio::sync::oneshot::Sender<Result<(), StateError>>),
    /// A caller outside the async runtime, blocked on it.
    Block(mpsc::SyncSender<Result<(), StateError>>),
    /// Nobody waits: a failure is printed as this warning (what was not recorded, and why
    /// that is harmless).
    Warn(String),
}

struct Request {
    write: Write,
    reply: Reply,
}

impl Request {
    /// Whether nobody waits for this write, so it may wait for a commit to share.
    fn can_wait(&self) -> bool {
        matches!(self.reply, Reply::Warn(_))
    }

    /// Whether a running action waits for this write (a backup or a link).
    fn is_awaited(&self) -> bool {
        matches!(self.reply, Reply::Await(_))
    }

    fn answer(self, result: Result<(), StateError>) {
        match self.reply {
            // A caller that stopped waiting (its task was cancelled) needs no answer.
            Reply::Await(to) => drop(to.send(result)),
            Reply::Block(to) => drop(to.send(result)),
            Reply::Warn(what) => {
                if let Err(e) = result {
                    eprintln!("warning: {what}: {e}");
                }
            }
        }
    }
}

/// The longest an outcome waits for a commit to share.
pub const LINGER: Duration = Duration::from_millis(200);
/// The most outcomes kept waiting for a commit to share.
pub const MAX_DEFERRED: usize = 2048;
/// The longest a backup or link waits for the other running actions' to share its commit.
pub const GATHER: Duration = Duration::from_millis(2);

/// The writer thread: group commits until every sender is gone and the queue is empty.
fn serve(
    db: StateDb,
    requests: mpsc::Receiver<Request>,
    commits: Arc<AtomicU64>,
    writers: usize,
    gather: Duration,
) {
    // Outcomes waiting for a commit to share (see the module documentation), oldest first.
    let mut deferred: Vec<Request> = Vec::new();
    let mut oldest = Instant::now();
    loop {
        // `recv` hands out what is still queued before it reports the senders gone, so nothing
        // sent is ever dropped unwritten.
        let next = if deferred.is_empty() {
            match requests.recv() {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            match requests.recv_timeout(LINGER.saturating_sub(oldest.elapsed())) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    commit(&db, std::mem::take(&mut deferred), &commits);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    commit(&db, std::mem::take(&mut deferred), &commits);
                    return;
                }
            }
        };
        if deferred.is_empty() {
            oldest = Instant::now();
        }
        let mut batch = std::mem::take(&mut deferred);
        batch.push(next);
        // Everything that queued up while the previous commit was syncing shares this one.
        batch.extend(requests.try_iter());
        if batch.len() < MAX_DEFERRED
            && oldest.elapsed() < LINGER
            && batch.iter().all(Request::can_wait)
        {
            deferred = batch;
            continue;
        }
        if batch.iter().any(Request::is_awaited) {
            // Each running action waits on at most one request; until they all do, more are
            // on their way, and one sync for all of them is worth a moment's wait.
            let until = Instant::now() + gather;
            let mut awaited = batch.iter().filter(|r| r.is_awaited()).count();
            while awaited < writers {
                match requests.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(r) => {
                        awaited += usize::from(r.is_awaited());
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
        }
        commit(&db, batch, &commits);
    }
}

/// Commits `batch` in one transaction, then answers each request.
fn commit(db: &StateDb, batch: Vec<Request>, commits: &AtomicU64) {
    match db.write_together(&batch, |db, r| r.write.apply(db)) {
        Ok(results) => {
            commits.fetch_add(1, Ordering::Relaxed);
            for (request, result) in batch.into_iter().zip(results) {
                request.answer(result);
            }
        }
        Err(_) => {
            // Nothing of the group was stored (a failed commit, say). One at a time, each
            // requester gets the result of its own write, never the group's.
            for request in batch {
                // In a transaction of its own, so that the writes of one request (`All`)
                // still stand or fall together.
                let result = db
                    .write_together(std::slice::from_ref(&request.write), |db, w| w.apply(db))
                    .and_then(|mut results| results.pop().unwrap_or(Ok(())));
                commits.fetch_add(1, Ordering::Relaxed);
                request.answer(result);
            }
        }
    }
}

/// The journal of one run, written by its own thread; see the module documentation.
pub struct StateJournal {
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    run: RunId,
    path: PathBuf,
    commits: Arc<AtomicU64>,
}

impl StateJournal {
    /// Hands `db` to a new writer thread that keeps the journal of `run`, for at most
    /// `writers` actions waiting on it at once (apply's actions in flight,
    /// [`crate::apply::Options::in_flight`]): a backup or link waits up to [`GATHER`] for the
    /// others' to share its commit.
    pub fn new(db: StateDb, run: RunId, writers: usize) -> Result<Self, StateError> {
        Self::gathering(db, run, writers, GATHER)
    }

    fn gathering(
        db: StateDb,
        run: RunId,
        writers: usize,
        gather: Duration,
    ) -> Result<Self, StateError> {
        let path = db.path().to_owned();
        let (requests, queue) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let writer = std::thread::Builder::new()
            .name("state-journal".into())
            .spawn(move || serve(db, queue, counted, writers.max(1), gather))
            .map_err(|e| StateError::Open {
                path: path.clone(),
                source: e,
            })?;
        Ok(StateJournal {
            requests: Some(requests),
            writer: Some(writer),
            run,
            path,
            commits,
        })
    }

    /// Closes the run with its outcome (the counts come from the recorded actions). Every
    /// outcome queued before is committed first, so the counts include them all.
    pub fn finish(&self, outcome: RunOutcome) -> Result<(), StateError> {
        self.write_blocking(Write::Finish {
            run: self.run,
            outcome,
        })
    }

    /// The pending merges of these source persons need nothing more: their plan merged
    /// nothing because the mailbox already holds it all.
    pub fn settle(&self, sources: &[String]) -> Result<(), StateError> {
        for source in sources {
            self.write_blocking(Write::Merged {
                run: self.run,
                source: source.clone(),
            })?;
        }
        Ok(())
    }

    /// How many transactions the writer has committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn stopped(&self) -> StateError {
        StateError::WriterStopped {
            path: self.path.clone(),
        }
    }

    /// Queues a request; gives it back when the writer is gone.
    fn send(&self, write: Write, reply: Reply) -> Result<(), Box<Request>> {
        let request = Request { write, reply };
        match &self.requests {
            Some(requests) => requests.send(request).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(request)),
        }
    }

    /// Queues `write` and waits, without holding up the async runtime, until it is committed.
    async fn write(&self, write: Write) -> Result<(), StateError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(write, Reply::Await(reply))
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Queues `write` and blocks the calling thread until it is committed. Not for use on the
    /// async runtime's threads: it would stall them.
    fn write_blocking(&self, write: Write) -> Result<(), StateError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(write, Reply::Block(reply))
            .map_err(|_| self.stopped())?;
        answer.recv().map_err(|_| self.stopped())?
    }

    /// Queues `write` without waiting; a failure is printed as `warning`.
    fn write_later(&self, write: Write, warning: String) {
        if let Err(unsent) = self.send(write, Reply::Warn(warning)) {
            unsent.answer(Err(self.stopped()));
        }
    }
}

impl Drop for StateJournal {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and stop; waiting for it
        // means no outcome queued without waiting is lost when the process exits normally.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            eprintln!(
                "warning: the writer of the state database `{}` stopped abnormally; \
                     outcomes queued at that moment may be missing (a rerun checks the \
                     directory again)",
                self.path.display()
            );
        }
    }
}

impl StateJournal {
    /// The backup of `entry`, about to be modified or deleted by `action`.
    fn backup_write(&self, action: &Action, entry: &Entry) -> Write {
        let ldif = ldif::entries_to_string(std::slice::from_ref(entry));
        let dn = entry.dn.to_string();
        if action.kind == ActionKind::DeleteContact {
            // The contact's data reaches the mailbox only in the merge after the delete: until
            // then this backup is its only copy, and the next plan merges from it.
            Write::BackupContact {
                run: self.run,
                action_id: action.id.clone(),
                contact: dn,
                ldif,
                source: action.subject.to_string(),
            }
        } else {
            Write::Backup {
                run: self.run,
                action_id: action.id.clone(),
                dn,
                ldif,
            }
        }
    }

    /// The link `action` must leave before it writes, if it creates or converts the object a
    /// person is given.
    fn link_write(&self, action: &Action) -> Option<Write> {
        matches!(
            action.kind,
            ActionKind::CreateMailbox
                | ActionKind::CreateAccount
                | ActionKind::ConvertNtAccount
                | ActionKind::ConvertMailUser
        )
        .then(|| Write::Link {
            run: self.run,
            action_id: action.id.clone(),
            source: action.subject.to_string(),
            destination: action.target.to_string(),
        })
    }
}

impl Journal for StateJournal {
    fn backup<'a>(&'a self, action: &'a Action, entry: &'a Entry) -> JournalFuture<'a> {
        let write = self.backup_write(action, entry);
        Box::pin(async move { self.write(write).await.map_err(|e| e.to_string()) })
    }

    fn intend<'a>(&'a self, action: &'a Action) -> JournalFuture<'a> {
        let write = self.link_write(action);
        Box::pin(async move {
            match write {
                Some(write) => self.write(write).await.map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }

    /// The link and the backups in one request, so one commit (and one sync) for them all.
    fn prepare<'a>(&'a self, action: &'a Action, entries: &'a [&'a Entry]) -> JournalFuture<'a> {
        let mut writes: Vec<Write> = self.link_write(action).into_iter().collect();
        writes.extend(entries.iter().map(|e| self.backup_write(action, e)));
        Box::pin(async move {
            let write = match writes.len() {
                0 => return Ok(()),
                1 => writes.remove(0),
                _ => Write::All(writes),
            };
            self.write(write).await.map_err(|e| e.to_string())
        })
    }

    /// Every action's link and backups in one request: one commit for the whole batch.
    fn prepare_all<'a>(&'a self, each: &'a [(&'a Action, Vec<&'a Entry>)]) -> JournalFuture<'a> {
        let writes: Vec<Write> = each
            .iter()
            .flat_map(|(action, entries)| {
                self.link_write(action)
                    .into_iter()
                    .chain(entries.iter().map(|e| self.backup_write(action, e)))
            })
            .collect();
        Box::pin(async move {
            if writes.is_empty() {
                return Ok(());
            }
            self.write(Write::All(writes))
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// Queued like an outcome, behind the write it describes: one lost to a kill leaves the
    /// entry unknown to `state undo`, which then refuses to touch it unless it is back as its
    /// backup holds it.
    fn written(&self, action: &Action, dn: &crate::directory::Dn, after: Option<&Entry>) {
        self.write_later(
            Write::After {
                run: self.run,
                action_id: action.id.clone(),
                dn: dn.to_string(),
                ldif: after.map(|e| ldif::entries_to_string(std::slice::from_ref(e))),
            },
            format!(
                "could not record what {} left of `{dn}` (`state undo` will refuse to undo it)",
                action.id
            ),
        );
    }

    fn record(
        &self,
        action: &Action,
        result: &ActionResult,
        started: SystemTime,
        elapsed: Duration,
    ) {
        let (status, error) = match result {
            ActionResult::Applied => (ActionStatus::Applied, None),
            ActionResult::Failed {
                stale: true,
                message,
            } => (ActionStatus::Stale, Some(message.clone())),
            ActionResult::Failed { message, .. } => (ActionStatus::Failed, Some(message.clone())),
            ActionResult::Skipped { because } => {
                (ActionStatus::Skipped, Some(format!("{because} failed")))
            }
            // Recorded by the run that applied it; a queued import by its work unit.
            ActionResult::NotStarted | ActionResult::AlreadyApplied | ActionResult::Queued => {
                return;
            }
        };
        let rec = ActionRecord {
            run: self.run,
            action_id: action.id.clone(),
            kind: action.kind.as_str().into(),
            target: action.target.to_string(),
            status,
            error,
            started_at: rfc3339(unix_seconds(started)),
            ended_at: rfc3339(unix_seconds(started + elapsed)),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        if action.kind == ActionKind::MergeAttributes && result.is_applied() {
            self.write_later(
                Write::Merged {
                    run: self.run,
                    source: action.subject.to_string(),
                },
                format!(
                    "could not record that the merge into {} is done (the next plan merges \
                     again, which changes nothing)",
                    action.target
                ),
            );
        }
        if matches!(
            action.kind,
            ActionKind::CreateMailbox | ActionKind::CreateAccount
        ) && matches!(result, ActionResult::Failed { stale: true, .. })
        {
            // A create refused because something stood at its DN made nothing; the link it may
            // have recorded would tie the person to somebody else's object.
            self.write_later(
                Write::Unlink {
                    run: self.run,
                    action_id: action.id.clone(),
                },
                format!(
                    "could not forget the link of {}, whose create was refused; the next plan \
                     may show the person pinned to `{}` via the state",
                    action.id, action.target
                ),
            );
        }
        // The write itself already happened; a failure to record it is reported, and the next
        // plan still sees the directory as it is, so nothing is applied twice.
        self.write_later(
            Write::Record(rec),
            format!("could not record the outcome of {}", action.id),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    /// N threads each queue a backup at the same moment, one of them for a run that does not
    /// exist (its foreign key fails): the others are committed in fewer transactions than N,
    /// and only the bad one sees an error.
    #[test]
    fn concurrent_writes_share_commits_and_keep_their_own_errors() {
        const N: usize = 16;
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path()).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        // Another connection holds the write lock for a moment, as a slow fsync would: the
        // writer's first transaction waits on it while the other requests queue up behind.
        let blocker = rusqlite::Connection::open(db.path()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let journal = StateJournal::new(db, run, 1).unwrap();
        let start = &Barrier::new(N + 1);
        let results: Vec<Result<(), StateError>> = std::thread::scope(|s| {
            s.spawn(move || {
                start.wait();
                std::thread::sleep(Duration::from_millis(300));
                blocker.execute_batch("COMMIT").unwrap();
            });
            let workers: Vec<_> = (0..N)
                .map(|i| {
                    let journal = &journal;
                    s.spawn(move || {
                        start.wait();
                        let run = if i == 7 { run + 1000 } else { run };
                        journal.write_blocking(backup(run, &format!("p{i}")))
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.is_err(), i == 7, "writer {i}: {result:?}");
        }
        let commits = journal.commits();
        assert!(commits < N as u64, "{commits} commits for {N} writes");
        drop(journal);
        let db = StateDb::open(tmp.path()).unwrap();
        assert_eq!(db.backups(None).unwrap().len(), N - 1);
        assert!(
            db.latest_backup("cn=p7,dc=example,dc=com")
                .unwrap()
                .is_none()
        );
    }

    /// Outcomes queued without waiting are all committed, in order, before `finish` closes
    /// the run, so its counts include them.
    #[test]
    fn finish_counts_every_outcome_queued_before_it() {
        let (tmp, run, journal) = started(1, GATHER);
        for i in 0..50 {
            journal.write_later(record(run, i), "test".into());
        }
        journal.finish(RunOutcome::Succeeded).unwrap();
        drop(journal);
        let db = StateDb::open(tmp.path()).unwrap();
        let got = db.run(run).unwrap().unwrap();
        assert_eq!((got.outcome, got.applied), (RunOutcome::Succeeded, 50));
    }

    /// A journal of a new run in a fresh state folder, for `writers` actions at once.
    fn started(writers: usize, gather: Duration) -> (tempfile::TempDir, RunId, StateJournal) {
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path()).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let journal = StateJournal::gathering(db, run, writers, gather).unwrap();
        (tmp, run, journal)
    }

    fn record(run: RunId, i: usize) -> Write {
        Write::Record(ActionRecord {
            run,
            action_id: format!("a{i}"),
            kind: "update".into(),
            target: format!("cn=p{i},dc=example,dc=com"),
            status: ActionStatus::Applied,
            error: None,
            started_at: "2026-11-21T06:30:00Z".into(),
            ended_at: "2026-11-21T06:30:01Z".into(),
            duration_ms: 1,
        })
    }

    /// Outcomes nobody waits for get no commit of their own: they ride along with the next
    /// backup, or are committed on their own once they have waited `LINGER`.
    #[test]
    fn outcomes_share_the_next_commit_or_wait_at_most_linger() {
        let (tmp, run, journal) = started(1, GATHER);
        for i in 0..20 {
            journal.write_later(record(run, i), "test".into());
        }
        journal
            .write_blocking(Write::Backup {
                run,
                action_id: "b".into(),
                dn: "cn=b,dc=example,dc=com".into(),
                ldif: "dn: cn=b,dc=example,dc=com\n".into(),
            })
            .unwrap();
        assert_eq!(
            journal.commits(),
            1,
            "twenty outcomes and a backup, one commit"
        );
        let reader = StateDb::open(tmp.path()).unwrap();
        assert_eq!(reader.run_actions(run).unwrap().len(), 20);

        journal.write_later(record(run, 20), "test".into());
        let waited = std::time::Instant::now();
        while reader.run_actions(run).unwrap().len() < 21 {
            assert!(
                waited.elapsed() < LINGER * 10,
                "the outcome was never committed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(journal.commits(), 2);
    }

    fn backup(run: RunId, name: &str) -> Write {
        Write::Backup {
            run,
            action_id: name.into(),
            dn: format!("cn={name},dc=example,dc=com"),
            ldif: format!("dn: cn={name},dc=example,dc=com\n"),
        }
    }

    /// A backup or link waits for the other running actions' to share its commit: as soon as
    /// all of them wait, or once the gathering time is over.
    #[test]
    fn a_commit_waits_for_every_running_action_but_not_longer_than_gather() {
        let window = Duration::from_secs(1);
        let (_tmp, run, journal) = started(3, window);
        let awaited = |name: &str, after: Duration| {
            std::thread::sleep(after);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(journal.write(backup(run, name))).unwrap();
        };
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| awaited("a", Duration::ZERO));
            s.spawn(|| awaited("b", Duration::from_millis(50)));
            s.spawn(|| awaited("c", Duration::from_millis(100)));
        });
        assert_eq!(journal.commits(), 1, "three staggered backups, one commit");
        assert!(
            started.elapsed() < window,
            "it did not wait once all three were in"
        );

        // Only two of the three writers come: the commit waits out the window, no longer.
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| awaited("d", Duration::ZERO));
            s.spawn(|| awaited("e", Duration::from_millis(50)));
        });
        assert_eq!(journal.commits(), 2);
        let took = started.elapsed();
        assert!(took >= window && took < window * 2, "{took:?}");
    }

    /// An action's link and backups are one request: one commit, and all or nothing.
    #[tokio::test]
    async fn a_link_and_its_backups_are_stored_together_or_not_at_all() {
        let (tmp, run, journal) = started(1, GATHER);
        let link = |run| Write::Link {
            run,
            action_id: "convert".into(),
            source: "cn=s,o=acme".into(),
            destination: "cn=d,dc=example,dc=com".into(),
        };
        journal
            .write(Write::All(vec![
                link(run),
                backup(run, "d"),
                backup(run, "g"),
            ]))
            .await
            .unwrap();
        assert_eq!(journal.commits(), 1);
        // The second backup names a run that does not exist: nothing of the request stays.
        let refused = journal
            .write(Write::All(vec![
                link(run),
                backup(run, "x"),
                backup(run + 1000, "y"),
            ]))
            .await;
        assert!(refused.is_err());
        drop(journal);
        let db = StateDb::open(tmp.path()).unwrap();
        let dns: std::collections::BTreeSet<String> = db
            .backups(None)
            .unwrap()
            .into_iter()
            .map(|b| b.dn)
            .collect();
        assert_eq!(
            dns,
            ["cn=d,dc=example,dc=com", "cn=g,dc=example,dc=com"]
                .map(String::from)
                .into()
        );
        assert_eq!(db.history().unwrap().links.len(), 1);
    }

    /// In a shared transaction, a write that fails is undone alone: the writes around it
    /// still commit, and only it reports an error.
    #[test]
    fn a_failing_write_in_a_group_is_undone_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path()).unwrap();
        let run = db.begin_run("plan.yaml", "fp").unwrap();
        let results = db
            .write_together(&[run, run + 1000, run], |db, &r| {
                db.link(r, "a", "cn=s", "cn=d")
            })
            .unwrap();
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert_eq!(db.history().unwrap().links.len(), 1);
    }

    /// A create refused as stale (something stood at its DN) leaves no link behind, so the
    /// next plan does not tie the person to an object this tool never made; a create that
    /// applied keeps its link.
    #[tokio::test]
    async fn a_create_refused_as_stale_forgets_its_link() {
        use crate::directory::Dn;
        let (tmp, _, journal) = started(1, GATHER);
        let create = |who: &str| Action {
            id: format!("create_mailbox:{who}"),
            kind: ActionKind::CreateMailbox,
            subject: Dn::parse(&format!("CN={who},O=Acme")).unwrap(),
            target: Dn::parse(&format!("CN={who},OU=Migrated,DC=t")).unwrap(),
            depends_on: Vec::new(),
            changes: Vec::new(),
            preconditions: Vec::new(),
            items: None,
        };
        let (made, refused) = (create("Ann"), create("Bob"));
        journal.intend(&made).await.unwrap();
        journal.intend(&refused).await.unwrap();
        let now = SystemTime::now();
        journal.record(&made, &ActionResult::Applied, now, Duration::ZERO);
        let stale = ActionResult::Failed {
            stale: true,
            message: "exists now".into(),
        };
        journal.record(&refused, &stale, now, Duration::ZERO);
        journal.finish(RunOutcome::Failed).unwrap();
        drop(journal);
        let links = StateDb::open(tmp.path()).unwrap().history().unwrap().links;
        assert_eq!(
            links,
            [(
                "CN=Ann,O=Acme".to_string(),
                "CN=Ann,OU=Migrated,DC=t".to_string()
            )]
        );
    }
}
