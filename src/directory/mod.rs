//! Directories as data: DNs, attribute names, entries, snapshots, RFC 4515 filters, and the
//! backends that read and write them (`ldif` now; `ldap` later).
//!
//! Everything here is flavor-agnostic: which attribute means what is decided in `matching`.

pub mod address;
pub mod attr;
pub mod dn;
pub mod entry;
pub mod filter;
pub mod ldap;
pub mod ldif;
pub mod snapshot;

pub use address::ProxyAddress;
pub use attr::{AttrKey, AttrName, Value, ValueSet};
pub use dn::Dn;
pub use entry::{Attrs, Entry};
pub use filter::Filter;
pub use snapshot::{EntryId, IndexConfig, Indexes, Membership, Snapshot};
