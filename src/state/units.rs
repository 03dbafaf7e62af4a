//! Item work as units that many workers share: one unit per import action of a wave (a
//! person's mail, calendar or contacts; a large mailbox's mail as one unit per folder), queued by `apply`, claimed by `mailplan worker`
//! processes on any machine, each held under a lease its worker renews while it copies.
//!
//! This module only names the calls and what they return; the PostgreSQL backend keeps the
//! units (claims with `FOR UPDATE SKIP LOCKED`, leases timed by the database's clock, so the
//! machines' clocks do not matter). It must not decide what to copy: the importer does, from
//! the source, the ledger and the destination, which is what lets a unit taken over after a
//! worker died copy nothing twice.

use std::time::Duration;

use super::StateError;

/// A unit a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedUnit {
    /// The import action's id (stable: derived from its kind and target).
    pub unit: String,
    /// The action kind (`import_mail`, `import_calendar`, `import_contacts`).
    pub kind: String,
    /// The source person's DN.
    pub subject: String,
    /// Claims of it so far, this one included.
    pub attempts: u32,
    /// The source folder it copies, for a unit that copies one folder of a large mailbox.
    pub folder: Option<String>,
}

/// A unit to queue: its id, and the source folder it copies (`None` for a whole mailbox,
/// calendar or address book).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnit {
    pub unit: String,
    pub folder: Option<String>,
}

/// One unit as `state progress` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub unit: String,
    pub state: String,
    pub owner: Option<String>,
    /// Seconds until the lease of a running unit ends (negative: expired).
    pub lease_left: Option<f64>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub copied: u64,
    pub bytes: u64,
    /// Seconds it ran (for finished units), or has run so far.
    pub seconds: Option<f64>,
    /// Seconds since it was first claimed.
    pub since_start: Option<f64>,
    /// The source folder it copies, for a unit that copies one folder of a large mailbox.
    pub folder: Option<String>,
}

/// One wave's units in all, as `state progress --all` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveRow {
    /// The wave: its plan file's name and destination.
    pub wave: String,
    pub units: u64,
    pub done: u64,
    pub running: u64,
    pub queued: u64,
    pub failed: u64,
    pub copied: u64,
    pub bytes: u64,
    /// Seconds since its first unit was first claimed.
    pub since_start: Option<f64>,
    /// Workers (process and task) holding one of its units now.
    pub holders: u64,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// The unit is still the renewer's.
    pub held: bool,
    /// The renewer's connection slots that a lowered cap no longer allows; their connections
    /// are to be closed and the slots given back.
    pub revoked: Vec<i64>,
}

/// What happened to a unit whose import failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queued again, to be claimed after the backoff.
    Retried,
    /// Out of attempts: marked failed, until `worker --retry-failed`.
    Failed,
    /// The unit was no longer ours (its lease had expired and another worker took it).
    LostLease,
}

/// The unit calls of a state backend that can share work between machines. All of them work
/// on the units of the state's own wave (its plan file and destination).
pub trait WorkUnits {
    /// Queues the unit (again): a unit already queued, done or failed is queued afresh with
    /// its attempts reset; one running under a live lease is left to its worker.
    fn enqueue(&self, unit: &str, kind: &str, subject: &str) -> Result<(), StateError>;
    /// Queues the units of the action `action` at once, as [`WorkUnits::enqueue`] queues one:
    /// the action itself, or its folder units `<action>#<folder>`. Its earlier units that are
    /// not among `units` are removed, unless a worker holds one under a live lease.
    fn enqueue_action(
        &self,
        action: &str,
        kind: &str,
        subject: &str,
        units: &[NewUnit],
    ) -> Result<(), StateError>;
    /// Claims a queued unit whose backoff is over, or a running one whose lease expired, for
    /// `owner` for `lease`; only the unit `only` when given. `None` when none is free.
    fn claim(
        &self,
        owner: &str,
        lease: Duration,
        only: Option<&str>,
    ) -> Result<Option<ClaimedUnit>, StateError>;
    /// Extends the lease, and with it the connection slots `owner` holds (in the same
    /// query); whether the unit is still `owner`'s, and which of its slots are now beyond
    /// their endpoint's cap (the newest slots of an endpoint are the excess).
    fn renew(&self, unit: &str, owner: &str, lease: Duration) -> Result<Renewal, StateError>;
    /// Marks the unit done, adding what this claim copied; false when it was no longer ours.
    fn finish(&self, unit: &str, owner: &str, copied: u64, bytes: u64) -> Result<bool, StateError>;
    /// Records a failed attempt: queued again after `backoff` while attempts remain below
    /// `max_attempts`, else failed with `error` as its reason.
    fn fail(
        &self,
        unit: &str,
        owner: &str,
        error: &str,
        max_attempts: u32,
        backoff: Duration,
    ) -> Result<AfterFailure, StateError>;
    /// Queues every failed unit again with its attempts reset; how many.
    fn retry_failed(&self) -> Result<u64, StateError>;
    /// Every unit of the wave, sorted by id.
    fn unit_rows(&self) -> Result<Vec<UnitRow>, StateError>;
    /// This state's wave, as [`WaveRow::wave`] names it.
    fn wave(&self) -> &str;
    /// Every wave the database holds units of, sorted by name.
    fn waves(&self) -> Result<Vec<WaveRow>, StateError>;
}
