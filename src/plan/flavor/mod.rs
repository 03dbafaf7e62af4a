//! Destination flavors as the planner sees them: how a flavor stores a recipient's addresses,
//! what a new mailbox or list holds, what converting a user changes, and what the destination
//! must already have before a plan can be made.
//!
//! Each flavor is one module implementing [`DestinationFlavor`]; the planner asks the flavor of
//! the plan and never branches on a flavor itself. Like the planner, every method here is a pure
//! function of its arguments: no I/O, no clock, no randomness. Matching's half of a flavor (how
//! entries are classified) is `matching::flavor`, not this module.

mod active_directory;
mod carbonio;
mod ldap;

use std::collections::BTreeSet;

use crate::directory::{AttrName, Attrs, Dn, Entry, Snapshot, Value, ValueSet};
use crate::matching::Person;
use crate::plan::ActionKind;
use crate::spec::{Flavor, Spec};

use super::addresses::AddressSet;

pub use active_directory::ActiveDirectory;
pub use carbonio::Carbonio;
pub use ldap::Ldap;

/// Attributes the planner owns in every flavor so far; a mapping may not set them, or
/// invariants (one primary SMTP, unique account names) could break.
pub const MANAGED: &[&str] = &[
    "objectClass",
    "sAMAccountName",
    "proxyAddresses",
    "mail",
    "mailAlternateAddress",
    "homeMDB",
    "msExchRecipientTypeDetails",
    "legacyExchangeDN",
    "targetAddress",
    "mailNickname",
    "userPrincipalName",
    "uid",
];

/// A mailbox the planner creates, as far as the flavor needs to know it.
pub struct NewMailbox<'a> {
    pub spec: &'a Spec,
    pub dest: &'a Snapshot,
    /// Its account name (sAMAccountName, uid).
    pub account: &'a str,
    /// The name the person is known by (the DN's common name, were it free).
    pub name: &'a str,
    /// Its primary SMTP address, when it has one.
    pub primary: Option<&'a str>,
}

/// An existing user the planner makes a mailbox.
pub struct Conversion<'a> {
    pub spec: &'a Spec,
    /// Its account name, empty when it has none.
    pub account: &'a str,
}

/// A distribution list the planner creates.
pub struct NewGroup<'a> {
    pub spec: &'a Spec,
    /// The list's primary address, when it has one.
    pub mail: Option<&'a str>,
    /// The account name chosen for it.
    pub account: &'a str,
    /// Whether it gets an SMTP address.
    pub has_mail: bool,
    /// The DN it is created at.
    pub dn: &'a Dn,
}

/// One destination flavor's side of planning.
pub trait DestinationFlavor: Send + Sync {
    /// The addresses an entry with these attributes receives mail at.
    fn read_addresses(&self, attrs: &Attrs) -> AddressSet;

    /// The attributes that store `addresses`, each with its full value set (an empty set means
    /// the attribute goes).
    fn address_attrs(&self, addresses: &AddressSet) -> Vec<(AttrName, ValueSet)>;

    /// The attributes that store a new list's addresses; those of any recipient unless the
    /// flavor stores a list's otherwise.
    fn group_address_attrs(&self, addresses: &AddressSet) -> Vec<(AttrName, ValueSet)> {
        self.address_attrs(addresses)
    }

    /// The addresses a contact brings to the mailbox it is merged into.
    fn contact_addresses(&self, contact: &Entry) -> AddressSet {
        self.read_addresses(&contact.attrs)
    }

    /// Sets what makes `attrs` (already holding the mapped attributes and `cn`) a new mailbox
    /// of this flavor; addresses are added afterwards from [`Self::address_attrs`].
    fn new_mailbox(&self, mailbox: &NewMailbox<'_>, attrs: &mut Attrs);

    /// Changes an existing user's attributes (`after`, already holding its addresses and the
    /// mapped values it lacked) into those of a mailbox.
    fn convert(&self, conversion: &Conversion<'_>, after: &mut Attrs);

    /// Sets what makes `attrs` (already holding `cn` and `displayName`) a new list of this
    /// flavor; addresses are added afterwards.
    fn new_group(&self, group: &NewGroup<'_>, attrs: &mut Attrs);

    /// Attributes the planner owns; a mapping may not set them.
    fn managed(&self) -> &'static [&'static str] {
        MANAGED
    }

    /// What the destination lacks that the plan relies on: each a sentence.
    fn check_destination(&self, spec: &Spec, dest: &Snapshot) -> Vec<String> {
        check_containers_and_domains(spec, dest)
    }

    /// The action kinds this flavor's directory work is done with.
    fn kinds(&self) -> Kinds {
        Kinds::default()
    }

    /// The account name a new mailbox for `person` should get, when the flavor derives it
    /// otherwise than from the person's short name.
    fn wanted_account(&self, _spec: &Spec, _person: &Person) -> Option<String> {
        None
    }

    /// Where a new mailbox for `person` goes, when the flavor places it otherwise than in the
    /// plan's one container (Carbonio: `ou=people` of the domain of its address).
    fn container_for(&self, _spec: &Spec, _person: &Person) -> Option<Dn> {
        None
    }

    /// The DN of a new object named `cn` with account name `account` in `container`.
    fn new_dn(&self, container: &Dn, cn: &str, _account: &str) -> Dn {
        container.child("CN", cn)
    }

    /// The `n`th choice (from 2) of a DN for a new object whose [`Self::new_dn`] is taken.
    fn numbered_dn(&self, container: &Dn, cn: &str, _account: &str, n: u32) -> Dn {
        container.child("CN", &format!("{cn} {n}"))
    }

    /// Takes the further addresses of a new account out of `attrs`, when the flavor adds them
    /// by actions of their own: each with the DN of the entry that holds it, and a warning for
    /// each it cannot hold.
    fn split_aliases(&self, _spec: &Spec, _attrs: &mut Attrs) -> (Vec<(Dn, String)>, Vec<String>) {
        (Vec::new(), Vec::new())
    }

    /// The attribute of an account that lists the addresses `split_aliases` takes out.
    fn alias_attr(&self) -> &'static str {
        "mailAlternateAddress"
    }

    /// Whether a person hard-matched to an existing mailbox gets the mapped attributes it lacks
    /// and its free addresses (`Kinds::modify`, `Kinds::alias`); otherwise, items only.
    fn fills_matched(&self) -> bool {
        false
    }

    /// Instead of creating mailboxes, what will create them (Carbonio's Auto Provisioning):
    /// `Some(Ok(name))` it will, under that name; `Some(Err(why))` it will not.
    fn provisioned_elsewhere(
        &self,
        _spec: &Spec,
        _dest: &Snapshot,
        _source: &Entry,
        _primary: Option<&str>,
    ) -> Option<Result<String, String>> {
        None
    }

    /// The attribute a list holds its members in.
    fn members_attr(&self) -> &'static str {
        "member"
    }

    /// How a list names a member: its DN, or (from its attributes, asked only when needed)
    /// another value.
    fn member_value(&self, dn: &Dn, _attrs: &dyn Fn() -> Option<Attrs>) -> Option<Value> {
        Some(Value::text(dn.to_string()))
    }

    /// The members of `wanted` that `current` does not name yet.
    fn missing_members(&self, current: &ValueSet, wanted: BTreeSet<Value>) -> ValueSet {
        let present: BTreeSet<Dn> = current
            .iter()
            .filter_map(|v| v.as_str().and_then(|s| Dn::parse(s).ok()))
            .collect();
        wanted
            .into_iter()
            .filter(|v| {
                v.as_str()
                    .and_then(|s| Dn::parse(s).ok())
                    .is_some_and(|d| !present.contains(&d))
            })
            .collect()
    }
}

/// The action kinds of a flavor's directory work.
#[derive(Debug, Clone, Copy)]
pub struct Kinds {
    pub create_mailbox: ActionKind,
    pub create_group: ActionKind,
    pub group_members: ActionKind,
    /// Attribute merges into an existing mailbox (when `fills_matched`).
    pub modify: ActionKind,
    /// A further address of a new mailbox (when `split_aliases` gives any).
    pub alias: ActionKind,
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds {
            create_mailbox: ActionKind::CreateMailbox,
            create_group: ActionKind::CreateGroup,
            group_members: ActionKind::SetGroupMembers,
            modify: ActionKind::MergeAttributes,
            alias: ActionKind::MergeAttributes,
        }
    }
}

/// The flavor of a plan.
pub fn of(flavor: Flavor) -> &'static dyn DestinationFlavor {
    match flavor {
        Flavor::ActiveDirectory => &ActiveDirectory,
        Flavor::Ldap => &Ldap,
        Flavor::Carbonio => &Carbonio,
    }
}

pub(super) fn attr(name: &str) -> AttrName {
    AttrName::new_unchecked(name)
}

pub(super) fn values(texts: &[&str]) -> ValueSet {
    texts
        .iter()
        .map(|t| crate::directory::Value::from(*t))
        .collect()
}

pub(super) fn set1(v: impl Into<String>) -> ValueSet {
    ValueSet::from([crate::directory::Value::text(v.into())])
}

/// The destination containers, database and domains the plan relies on must exist.
fn check_containers_and_domains(spec: &Spec, dest: &Snapshot) -> Vec<String> {
    let d = &spec.destination;
    let mut problems = Vec::new();
    if !dest.contains(&d.container) {
        problems.push(format!(
            "container `{}` (destination.container) does not exist in the destination",
            d.container
        ));
    }
    if let Some(db) = &d.mailbox_database
        && !dest.contains(db)
    {
        problems.push(format!("mailbox database `{db}` (destination.mailbox_database) does not exist in the destination"));
    }
    if let Some(c) = spec
        .distribution_lists
        .as_ref()
        .and_then(|l| l.container.as_ref())
        && !dest.contains(c)
    {
        problems.push(format!(
            "container `{c}` (distribution_lists.container) does not exist in the destination"
        ));
    }
    for domain in &d.domains {
        if !domain_exists(dest, domain) {
            let dc = domain
                .split('.')
                .map(|l| format!("DC={l}"))
                .collect::<Vec<_>>()
                .join(",");
            problems.push(format!(
                "destination domain `{domain}` does not exist: no msExchAcceptedDomain entry names it and there is no `{dc}`"
            ));
        }
    }
    problems
}

/// A mail domain exists when an Exchange accepted-domain object names it, or when the directory
/// holds the domain's own DC object (a generic LDAP mail directory's convention).
fn domain_exists(dest: &Snapshot, domain: &str) -> bool {
    let dc: Vec<String> = domain.split('.').map(|l| format!("DC={l}")).collect();
    if let Ok(dn) = Dn::parse(&dc.join(","))
        && dest.contains(&dn)
    {
        return true;
    }
    dest.entries().iter().any(|e| {
        e.has_class("msExchAcceptedDomain")
            && e.texts("msExchAcceptedDomainName")
                .any(|n| n.eq_ignore_ascii_case(domain))
    })
}
