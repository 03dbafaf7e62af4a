//! The rules a source profile and a destination flavor bring: which entries are persons, which
//! attributes play which role, and how destination objects are classified.
//!
//! Defaults live here and, for destinations, in each flavor's module (`matching::flavor`); a
//! plan file overrides any of them. This module only
//! describes rules (data); applying them is `classify` and `person`'s job.

use crate::directory::{AttrName, Filter, IndexConfig};
use crate::spec::{Profile, Spec};

/// What kind of recipient a destination entry is. Order matters: it is the order in which rules
/// are tried, most specific first, so a mailbox user that also has `targetAddress` is a mailbox.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    MailboxUser,
    MailEnabledUser,
    NtAccount,
    Contact,
    Group,
    Other,
}

impl Class {
    /// Users are what a person may match (hard or soft); contacts and groups never are.
    pub fn is_user(self) -> bool {
        matches!(
            self,
            Class::MailboxUser | Class::MailEnabledUser | Class::NtAccount
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Class::MailboxUser => "mailbox user",
            Class::MailEnabledUser => "mail-enabled user",
            Class::NtAccount => "NT account",
            Class::Contact => "contact",
            Class::Group => "group",
            Class::Other => "other object",
        }
    }
}

/// How source entries become persons.
#[derive(Debug, Clone)]
pub struct SourceRules {
    pub person_filter: Filter,
    pub smtp: Vec<AttrName>,
    pub short_names: Vec<AttrName>,
    pub full_names: Vec<AttrName>,
    pub given_name: AttrName,
    pub surname: AttrName,
    /// Whether a `NOTES:` address is built from the DN (Domino only).
    pub notes_from_dn: bool,
}

/// How destination entries are classified and indexed.
#[derive(Debug, Clone)]
pub struct DestinationRules {
    pub classes: Vec<(Class, Filter)>,
    pub index: IndexConfig,
}

pub(crate) fn attrs(names: &[&str]) -> Vec<AttrName> {
    names.iter().map(|n| AttrName::new_unchecked(n)).collect()
}

/// Parses a filter that is a constant of this crate; a typo there is a bug caught by tests.
pub(crate) fn rule(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| panic!("built-in filter `{text}` is invalid: {e}"))
}

impl SourceRules {
    pub fn for_spec(spec: &Spec) -> Self {
        let src = &spec.source;
        let mut rules = match src.profile {
            Profile::Domino => SourceRules {
                person_filter: rule("(objectClass=dominoPerson)"),
                smtp: attrs(&["mail"]),
                short_names: attrs(&["uid", "shortName"]),
                full_names: attrs(&["cn"]),
                given_name: AttrName::new_unchecked("givenName"),
                surname: AttrName::new_unchecked("sn"),
                notes_from_dn: true,
            },
            Profile::Ldap => SourceRules {
                person_filter: rule("(|(objectClass=inetOrgPerson)(objectClass=person))"),
                smtp: attrs(&["mail", "mailAlternateAddress"]),
                short_names: attrs(&["uid"]),
                full_names: attrs(&["cn"]),
                given_name: AttrName::new_unchecked("givenName"),
                surname: AttrName::new_unchecked("sn"),
                notes_from_dn: false,
            },
            Profile::ActiveDirectory => SourceRules {
                person_filter: rule("(&(objectClass=user)(!(objectClass=computer)))"),
                smtp: attrs(&["mail", "proxyAddresses"]),
                short_names: attrs(&["sAMAccountName"]),
                full_names: attrs(&["cn", "displayName"]),
                given_name: AttrName::new_unchecked("givenName"),
                surname: AttrName::new_unchecked("sn"),
                notes_from_dn: false,
            },
        };
        if let Some(f) = &src.filter {
            rules.person_filter = f.clone();
        }
        let r = &src.roles;
        if let Some(v) = &r.smtp {
            rules.smtp = v.clone();
        }
        if let Some(v) = &r.short_names {
            rules.short_names = v.clone();
        }
        if let Some(v) = &r.full_names {
            rules.full_names = v.clone();
        }
        if let Some(v) = &r.given_name {
            rules.given_name = v.clone();
        }
        if let Some(v) = &r.surname {
            rules.surname = v.clone();
        }
        rules
    }
}

impl DestinationRules {
    pub fn for_spec(spec: &Spec) -> Self {
        let dst = &spec.destination;
        let flavor = super::flavor::of(dst.flavor);
        let (mut classes, index) = (flavor.classes(), flavor.index());
        let c = &dst.classify;
        for (class, over) in [
            (Class::MailboxUser, &c.mailbox_user),
            (Class::MailEnabledUser, &c.mail_enabled_user),
            (Class::NtAccount, &c.nt_account),
            (Class::Contact, &c.contact),
            (Class::Group, &c.group),
        ] {
            if let Some(f) = over {
                for (k, rule) in classes.iter_mut() {
                    if *k == class {
                        *rule = f.clone();
                    }
                }
            }
        }
        DestinationRules { classes, index }
    }

    /// The first class whose rule the entry satisfies.
    pub fn classify(&self, entry: &crate::directory::Entry) -> Class {
        self.classes
            .iter()
            .find(|(_, f)| f.matches(entry))
            .map(|(c, _)| *c)
            .unwrap_or(Class::Other)
    }
}
