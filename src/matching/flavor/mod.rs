//! Destination flavors as matching sees them: which destination entries are mailbox users,
//! mail-enabled users, NT accounts, contacts and groups, and which attributes are indexed as
//! addresses, account names and names.
//!
//! Each flavor is one module implementing [`Classification`]; `rules` asks the plan's flavor for
//! its defaults (which a plan file may override) and never branches on a flavor itself. This
//! module only describes rules (data); it applies none and reads nothing. The planning half of a
//! flavor is `plan::flavor`.

mod active_directory;
mod carbonio;
mod ldap;

use crate::directory::{Entry, Filter, IndexConfig};
use crate::spec::Flavor;

use super::Class;

pub use active_directory::ActiveDirectory;
pub use carbonio::Carbonio;
pub use ldap::Ldap;

/// One destination flavor's classification defaults.
pub trait Classification: Send + Sync {
    /// The classes with their rules, most specific first: an entry is the first class whose
    /// rule it satisfies.
    fn classes(&self) -> Vec<(Class, Filter)>;

    /// The attributes indexed for matching.
    fn index(&self) -> IndexConfig;

    /// Whether `entry` (of `class`) holding `address` keeps the person who has that address
    /// from matching anything: the person is then ambiguous, with every holder named.
    fn holds_against(&self, _class: Class, _entry: &Entry, _address: &str) -> bool {
        false
    }
}

/// The flavor of a plan.
pub fn of(flavor: Flavor) -> &'static dyn Classification {
    match flavor {
        Flavor::ActiveDirectory => &ActiveDirectory,
        Flavor::Ldap => &Ldap,
        Flavor::Carbonio => &Carbonio,
    }
}
