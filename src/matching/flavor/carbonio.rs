//! The `carbonio` flavor's classification, from Carbonio's (Zimbra's) published object classes:
//! a `zimbraAccount` is a mailbox (a `zimbraCalendarResource` is an account too, but no person's
//! mailbox: it is `Other`, so no person matches it), a `zimbraDistributionList` is a group.
//! Carbonio has no mail-enabled users, NT accounts or contacts in its directory. Addresses are
//! indexed from `zimbraMailDeliveryAddress`, `zimbraMailAlias` and `mail`; a list's addresses
//! count too, so a person's address held by a list is found (and is ambiguous, not a match).
//! Account names are `uid`, the local part of an account's name.
//!
//! Rules only: this module must not classify entries itself.

use crate::directory::{Entry, Filter, IndexConfig};
use crate::matching::Class;
use crate::matching::rules::{attrs, rule};

use super::Classification;

pub struct Carbonio;

impl Classification for Carbonio {
    fn classes(&self) -> Vec<(Class, Filter)> {
        vec![
            (
                Class::MailboxUser,
                rule("(&(objectClass=zimbraAccount)(!(objectClass=zimbraCalendarResource)))"),
            ),
            (Class::Group, rule("(objectClass=zimbraDistributionList)")),
        ]
    }

    /// A list holding the address, or an account holding it only as an alias (not as its
    /// name), is somebody else's: matching on it would guess.
    fn holds_against(&self, class: Class, entry: &Entry, address: &str) -> bool {
        match class {
            Class::Group => true,
            Class::MailboxUser => !entry
                .texts("zimbraMailDeliveryAddress")
                .chain(entry.texts("mail"))
                .any(|a| a.eq_ignore_ascii_case(address)),
            _ => false,
        }
    }

    fn index(&self) -> IndexConfig {
        IndexConfig {
            address_attrs: attrs(&["zimbraMailDeliveryAddress", "zimbraMailAlias", "mail"]),
            account_attrs: attrs(&["uid"]),
            // A soft candidate is an account whose name's local part is the person's short
            // name; Carbonio's `cn` is no identity.
            name_attrs: Vec::new(),
        }
    }
}
