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

/// Appends `s` lower-cased (Unicode's full mapping, as `char::to_lowercase`). Keys for names
/// and addresses are made for every entry of a directory, and are nearly always ASCII, which
/// is lower-cased in place rather than char by char.
pub(crate) fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        let from = out.len();
        out.push_str(s);
        out[from..].make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}
