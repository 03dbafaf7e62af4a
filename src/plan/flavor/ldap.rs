//! The `ldap` flavor: a generic LDAP mail directory. Addresses are `mail` (the primary) and
//! `mailAlternateAddress`, mailboxes are `inetOrgPerson`s with a `uid`, a forwarding
//! (`mailForwardingAddress`) makes a mail-enabled user, and lists are `groupOfNames`.
//!
//! Only what differs between flavors lives here; it must not choose names, match, or order
//! actions (the planner does), and it reads nothing but its arguments.

use crate::directory::{AttrName, Attrs, ProxyAddress, Value, ValueSet};

use super::{Conversion, DestinationFlavor, NewGroup, NewMailbox, attr, set1, values};
use crate::plan::addresses::AddressSet;

pub struct Ldap;

impl DestinationFlavor for Ldap {
    fn read_addresses(&self, attrs: &Attrs) -> AddressSet {
        let mut set = AddressSet::default();
        let texts = |name: &str| {
            attrs
                .get(&attr(name))
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        };
        for v in texts("mail") {
            set.insert(ProxyAddress::smtp(&v, true));
        }
        for v in texts("mailAlternateAddress") {
            set.insert(ProxyAddress::smtp(&v, false));
        }
        set
    }

    fn address_attrs(&self, addresses: &AddressSet) -> Vec<(AttrName, ValueSet)> {
        let mail = addresses
            .primary("SMTP")
            .map(|p| Value::text(p.address.clone()))
            .into_iter()
            .collect();
        let alternates = addresses
            .iter()
            .filter(|p| p.is_smtp() && !p.primary)
            .map(|p| Value::text(p.address.clone()))
            .collect();
        vec![
            (attr("mail"), mail),
            (attr("mailAlternateAddress"), alternates),
        ]
    }

    fn new_mailbox(&self, m: &NewMailbox<'_>, attrs: &mut Attrs) {
        attrs.insert(
            attr("objectClass"),
            values(&["top", "person", "organizationalPerson", "inetOrgPerson"]),
        );
        attrs.insert(attr("uid"), set1(m.account));
        attrs.entry(attr("sn")).or_insert_with(|| set1(m.name));
    }

    fn convert(&self, _: &Conversion<'_>, after: &mut Attrs) {
        after.remove(&attr("mailForwardingAddress"));
    }

    fn new_group(&self, _: &NewGroup<'_>, attrs: &mut Attrs) {
        attrs.insert(attr("objectClass"), values(&["top", "groupOfNames"]));
    }
}
