//! The `active-directory` flavor: Active Directory with Exchange attributes. Addresses are typed
//! `proxyAddresses` (plus `mail`, the primary SMTP), mailboxes are users with `homeMDB` and
//! `msExchRecipientTypeDetails`, lists are universal distribution groups, and a merged contact's
//! `legacyExchangeDN` stays reachable as an `X500:` proxy.
//!
//! Only what differs between flavors lives here; it must not choose names, match, or order
//! actions (the planner does), and it reads nothing but its arguments.

use crate::directory::address::smtp_domain;
use crate::directory::{Attrs, Entry, ProxyAddress, Value, ValueSet};
use crate::spec::Spec;

use super::{Conversion, DestinationFlavor, NewGroup, NewMailbox, attr, set1, values};
use crate::plan::addresses::AddressSet;

pub struct ActiveDirectory;

/// The `legacyExchangeDN` of a recipient with this alias, when the plan names the Exchange
/// organisation.
fn legacy_dn(spec: &Spec, nick: &str) -> Option<String> {
    spec.destination.exchange_org.as_ref().map(|org| {
        format!(
            "/o={org}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={nick}"
        )
    })
}

impl DestinationFlavor for ActiveDirectory {
    fn read_addresses(&self, attrs: &Attrs) -> AddressSet {
        let mut set = AddressSet::default();
        for v in attrs.get(&attr("proxyAddresses")).into_iter().flatten() {
            if let Some(p) = v.as_str().and_then(ProxyAddress::parse) {
                set.insert(p);
            }
        }
        set
    }

    fn address_attrs(&self, addresses: &AddressSet) -> Vec<(crate::directory::AttrName, ValueSet)> {
        let proxies = addresses
            .iter()
            .map(|p| Value::text(p.to_string()))
            .collect();
        let mail = addresses
            .primary("SMTP")
            .map(|p| Value::text(p.address.clone()))
            .into_iter()
            .collect();
        vec![(attr("proxyAddresses"), proxies), (attr("mail"), mail)]
    }

    fn contact_addresses(&self, contact: &Entry) -> AddressSet {
        let mut set = self.read_addresses(&contact.attrs);
        if let Some(l) = contact.text("legacyExchangeDN") {
            set.insert_secondary(ProxyAddress::x500(l));
        }
        set
    }

    fn new_mailbox(&self, m: &NewMailbox<'_>, attrs: &mut Attrs) {
        let sam = m.account;
        attrs.insert(
            attr("objectClass"),
            values(&["top", "person", "organizationalPerson", "user"]),
        );
        attrs.insert(attr("sAMAccountName"), set1(sam));
        let upn_domain = m
            .spec
            .destination
            .domains
            .first()
            .cloned()
            .or_else(|| m.primary.and_then(smtp_domain));
        if let Some(d) = upn_domain {
            attrs.insert(attr("userPrincipalName"), set1(format!("{sam}@{d}")));
        }
        attrs.insert(attr("mailNickname"), set1(sam));
        attrs.insert(attr("msExchRecipientTypeDetails"), set1("1"));
        if let Some(db) = &m.spec.destination.mailbox_database {
            attrs.insert(attr("homeMDB"), set1(db.to_string()));
        }
        if let Some(l) = legacy_dn(m.spec, sam) {
            attrs.insert(attr("legacyExchangeDN"), set1(l));
        }
    }

    fn convert(&self, c: &Conversion<'_>, after: &mut Attrs) {
        let sam = c.account;
        if !sam.is_empty() {
            after
                .entry(attr("mailNickname"))
                .or_insert_with(|| set1(sam));
            if let Some(l) = legacy_dn(c.spec, sam) {
                after
                    .entry(attr("legacyExchangeDN"))
                    .or_insert_with(|| set1(l));
            }
        }
        after.insert(attr("msExchRecipientTypeDetails"), set1("1"));
        if let Some(db) = &c.spec.destination.mailbox_database {
            after.insert(attr("homeMDB"), set1(db.to_string()));
        }
        after.remove(&attr("targetAddress"));
    }

    fn new_group(&self, g: &NewGroup<'_>, attrs: &mut Attrs) {
        attrs.insert(attr("objectClass"), values(&["top", "group"]));
        attrs.insert(attr("sAMAccountName"), set1(g.account));
        // 8: a universal distribution group (not a security group).
        attrs.insert(attr("groupType"), set1("8"));
        if g.has_mail {
            attrs.insert(attr("mailNickname"), set1(g.account));
            if let Some(l) = legacy_dn(g.spec, g.account) {
                attrs.insert(attr("legacyExchangeDN"), set1(l));
            }
        }
    }
}
