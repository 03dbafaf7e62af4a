//! Connection caps per server endpoint as machines share them: the cap of each endpoint
//! (`host:port`) and the slots held against it, one per open connection, each under a lease
//! renewed with its work unit's lease.
//!
//! This module only names the calls and what they return; the PostgreSQL backend keeps the
//! tables and serialises acquisitions per endpoint. It must not decide when to open or close a
//! connection: the importer's gate ([`crate::items::caps`]) does, and gives each slot back when
//! its connection is closed.

use std::time::Duration;

use super::StateError;

/// One endpoint's cap as `state progress` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapRow {
    pub endpoint: String,
    pub connections: u32,
    /// Who wrote the cap last: a plan file or `state set-cap`, with the host.
    pub set_by: String,
    pub set_at: String,
    /// Slots held under a live lease now.
    pub in_use: u64,
}

/// What an attempt to take slots found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The slots, one per endpoint asked for, in the order asked.
    Granted(Vec<i64>),
    /// `endpoint` has no room for what was asked under its cap of `connections`.
    Full {
        endpoint: String,
        connections: u32,
        wanted: u32,
    },
}

/// The cap calls of a state backend that machines share.
pub trait SharedCaps {
    /// Writes a plan file's cap for `endpoint`, unless the database already has a cap for it
    /// that this same plan value was last written as (a cap set since with `set-cap` then
    /// stays). Whether it was written.
    fn write_plan_cap(
        &self,
        endpoint: &str,
        connections: u32,
        by: &str,
    ) -> Result<bool, StateError>;
    /// Sets the cap of `endpoint` (the plan file's value stays remembered as it was).
    fn set_cap(&self, endpoint: &str, connections: u32, by: &str) -> Result<(), StateError>;
    /// Every endpoint that has a cap, with the slots in use, sorted by endpoint.
    fn cap_rows(&self) -> Result<Vec<CapRow>, StateError>;
    /// Takes one slot per entry of `endpoints` (an endpoint named twice takes two) for
    /// `holder` under `lease`, all or none: none when one endpoint's live slots and these
    /// would exceed its cap. An endpoint without a cap always has room, but its slots are
    /// recorded too, so a cap set later counts them.
    fn take_slots(
        &self,
        endpoints: &[String],
        holder: &str,
        lease: Duration,
    ) -> Result<Taken, StateError>;
    /// Gives slots back.
    fn give_back(&self, slots: &[i64]) -> Result<(), StateError>;
}
