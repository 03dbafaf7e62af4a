//! The `active-directory` flavor's classification: users with `homeMDB` (or recipient type 1)
//! are mailboxes, users with `targetAddress` (or type 128) mail-enabled users, other users (not
//! computers) NT accounts; `contact` and `group` objects. Addresses are indexed from
//! `proxyAddresses`, account names from `sAMAccountName`.
//!
//! Rules only: this module must not classify entries itself.

use crate::directory::{Filter, IndexConfig};
use crate::matching::Class;
use crate::matching::rules::{attrs, rule};

use super::Classification;

pub struct ActiveDirectory;

impl Classification for ActiveDirectory {
    fn classes(&self) -> Vec<(Class, Filter)> {
        vec![
            (
                Class::MailboxUser,
                rule(
                    "(&(objectClass=user)(!(objectClass=computer))(|(homeMDB=*)(msExchRecipientTypeDetails=1)))",
                ),
            ),
            (
                Class::MailEnabledUser,
                rule(
                    "(&(objectClass=user)(!(objectClass=computer))(|(targetAddress=*)(msExchRecipientTypeDetails=128)))",
                ),
            ),
            (
                Class::NtAccount,
                rule("(&(objectClass=user)(!(objectClass=computer)))"),
            ),
            (Class::Contact, rule("(objectClass=contact)")),
            (Class::Group, rule("(objectClass=group)")),
        ]
    }

    fn index(&self) -> IndexConfig {
        IndexConfig {
            address_attrs: attrs(&["proxyAddresses"]),
            account_attrs: attrs(&["sAMAccountName"]),
            name_attrs: attrs(&["cn"]),
        }
    }
}
