//! The `ldap` flavor's classification: `inetOrgPerson`s with `mail` are mailboxes unless they
//! forward (`mailForwardingAddress`: mail-enabled users), those with only a `uid` are accounts,
//! `mailContact`s (and persons with mail but no uid) contacts, `groupOfNames` and
//! `groupOfUniqueNames` groups. Addresses are indexed from `mail` and `mailAlternateAddress`.
//!
//! Rules only: this module must not classify entries itself.

use crate::directory::{Filter, IndexConfig};
use crate::matching::Class;
use crate::matching::rules::{attrs, rule};

use super::Classification;

pub struct Ldap;

impl Classification for Ldap {
    fn classes(&self) -> Vec<(Class, Filter)> {
        vec![
            (
                Class::MailboxUser,
                rule("(&(objectClass=inetOrgPerson)(mail=*)(!(mailForwardingAddress=*)))"),
            ),
            (
                Class::MailEnabledUser,
                rule("(&(objectClass=inetOrgPerson)(mailForwardingAddress=*))"),
            ),
            (
                Class::NtAccount,
                rule("(&(objectClass=inetOrgPerson)(uid=*))"),
            ),
            (
                Class::Contact,
                rule("(|(objectClass=mailContact)(&(objectClass=inetOrgPerson)(mail=*)))"),
            ),
            (
                Class::Group,
                rule("(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"),
            ),
        ]
    }

    fn index(&self) -> IndexConfig {
        IndexConfig {
            address_attrs: attrs(&["mail", "mailAlternateAddress"]),
            account_attrs: attrs(&["uid"]),
            name_attrs: attrs(&["cn"]),
        }
    }
}
