//! The `carbonio` flavor: Carbonio (Zextras, built on Zimbra) as its published attribute and
//! object-class definitions describe it. An account is a `zimbraAccount` named by its primary
//! address (`zimbraMailDeliveryAddress`, also in `mail`), with `uid` its local part, under
//! `ou=people` of its domain; each further address is a `zimbraAlias` entry plus a
//! `zimbraMailAlias` value, added by an action of its own (`add_account_alias`), as Carbonio's
//! `AddAccountAliasRequest` does. A distribution list is a `zimbraDistributionList` whose members
//! are addresses in `zimbraMailForwardingAddress`. New accounts get the plan's class of service
//! (`zimbraCOSId`) and the plan's password policy. Domains (`zimbraDomain`) and the class of
//! service (`zimbraCOS`) must exist, and with `provisioning: { auto: true }` each domain's
//! Accounts Auto Provisioning must be set up: then Carbonio, not mailplan, creates the accounts,
//! and the plan says whom it will create under which name.
//!
//! Only what differs between flavors lives here; it must not choose names, match, or order
//! actions (the planner does), and it reads nothing but its arguments.

use std::collections::BTreeSet;

use crate::directory::address::smtp_domain;
use crate::directory::{
    AttrName, Attrs, Dn, Entry, Filter, ProxyAddress, Snapshot, Value, ValueSet,
};
use crate::matching::Person;
use crate::plan::ActionKind;
use crate::plan::addresses::AddressSet;
use crate::spec::{PasswordPolicy, Provisioning, Spec};

use super::{Conversion, DestinationFlavor, Kinds, NewGroup, NewMailbox, attr, set1, values};

pub struct Carbonio;

/// Attributes mailplan sets on Carbonio objects itself; a mapping may not.
const MANAGED: &[&str] = &[
    "objectClass",
    "uid",
    "mail",
    "zimbraMailDeliveryAddress",
    "zimbraMailAlias",
    "zimbraMailForwardingAddress",
    "zimbraCOSId",
    "zimbraId",
    "zimbraPasswordMustChange",
    "userPassword",
    "zimbraAccountStatus",
    "zimbraMailStatus",
];

/// The attributes a domain needs for Accounts Auto Provisioning, with what each is for.
const AUTO_PROV: &[(&str, &str)] = &[
    ("zimbraAutoProvMode", "EAGER or LAZY"),
    ("zimbraAutoProvLdapURL", "the source directory's LDAP URL"),
    ("zimbraAutoProvLdapSearchBase", "where to look for persons"),
    ("zimbraAutoProvLdapSearchFilter", "which persons to create"),
    (
        "zimbraAutoProvAccountNameMap",
        "the source attribute that names the account",
    ),
];

/// `dc=acme,dc=com` for `acme.com`.
fn domain_dn(domain: &str) -> Dn {
    let mut dn = Dn::root();
    for label in domain.rsplit('.') {
        dn = dn.child("dc", label);
    }
    dn
}

/// The DN of the `zimbraAlias` entry that holds `address`.
fn alias_dn(address: &str) -> Option<Dn> {
    let (local, domain) = address.rsplit_once('@')?;
    Some(domain_dn(domain).child("ou", "people").child("uid", local))
}

fn domain_entry<'s>(dest: &'s Snapshot, domain: &str) -> Option<&'s Entry> {
    dest.entries().iter().find(|e| {
        e.has_class("zimbraDomain")
            && e.texts("zimbraDomainName")
                .any(|n| n.eq_ignore_ascii_case(domain))
    })
}

fn cos_entry<'s>(dest: &'s Snapshot, cos: &str) -> Option<&'s Entry> {
    dest.entries()
        .iter()
        .find(|e| e.has_class("zimbraCOS") && e.texts("cn").any(|n| n.eq_ignore_ascii_case(cos)))
}

/// The plan's domain of `address`, if it is one of them.
fn plan_domain<'s>(spec: &'s Spec, address: &str) -> Option<&'s str> {
    let d = smtp_domain(address)?;
    spec.destination
        .domains
        .iter()
        .find(|p| **p == d)
        .map(String::as_str)
}

/// Carbonio's Auto Provisioning search filter with its placeholders filled in for `name`:
/// `%n` the name as given, `%u` its local part, `%d` its domain, `%D` the domain as `dc=` parts.
/// Values are escaped as RFC 4515 asks.
pub fn fill_filter(filter: &str, name: &str) -> String {
    let (user, domain) = name.rsplit_once('@').unwrap_or((name, ""));
    let esc = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '*' => out.push_str("\\2a"),
                '(' => out.push_str("\\28"),
                ')' => out.push_str("\\29"),
                '\\' => out.push_str("\\5c"),
                '\0' => out.push_str("\\00"),
                c => out.push(c),
            }
        }
        out
    };
    let dcs = domain
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| format!("dc={}", esc(l)))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = String::new();
    let mut chars = filter.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('n') => out.push_str(&esc(name)),
            Some('u') => out.push_str(&esc(user)),
            Some('d') => out.push_str(&esc(domain)),
            Some('D') => out.push_str(&dcs),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

impl DestinationFlavor for Carbonio {
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
        // An account is named by its delivery address; its aliases receive mail too.
        for v in texts("zimbraMailDeliveryAddress") {
            set.insert(ProxyAddress::smtp(&v, true));
        }
        for v in texts("mail") {
            set.insert_secondary(ProxyAddress::smtp(&v, false));
        }
        for v in texts("zimbraMailAlias") {
            set.insert_secondary(ProxyAddress::smtp(&v, false));
        }
        // A list has no delivery address: its first `mail` names it.
        set.ensure_primaries();
        set
    }

    fn address_attrs(&self, addresses: &AddressSet) -> Vec<(AttrName, ValueSet)> {
        let primary: ValueSet = addresses
            .primary("SMTP")
            .map(|p| Value::text(p.address.clone()))
            .into_iter()
            .collect();
        let aliases = addresses
            .iter()
            .filter(|p| p.is_smtp() && !p.primary)
            .map(|p| Value::text(p.address.clone()))
            .collect();
        vec![
            (attr("zimbraMailDeliveryAddress"), primary.clone()),
            (attr("mail"), primary),
            (attr("zimbraMailAlias"), aliases),
        ]
    }

    fn group_address_attrs(&self, addresses: &AddressSet) -> Vec<(AttrName, ValueSet)> {
        // A list has no zimbraMailDeliveryAddress: that attribute is the address of a mailbox
        // (zimbra-attrs.xml: `zimbraMailDeliveryAddress` is optionalIn="mailRecipient", and
        // Zimbra's createDistributionList sets only `mail` and `zimbraMailAlias` on a list, "DLs
        // use zimbraMailAlias for both" the primary and the aliases).
        let primary: ValueSet = addresses
            .primary("SMTP")
            .map(|p| Value::text(p.address.clone()))
            .into_iter()
            .collect();
        let all = addresses
            .iter()
            .filter(|p| p.is_smtp())
            .map(|p| Value::text(p.address.clone()))
            .collect();
        vec![(attr("mail"), primary), (attr("zimbraMailAlias"), all)]
    }

    fn new_mailbox(&self, m: &NewMailbox<'_>, attrs: &mut Attrs) {
        attrs.insert(
            attr("objectClass"),
            values(&["inetOrgPerson", "zimbraAccount", "amavisAccount"]),
        );
        attrs.insert(attr("uid"), set1(m.account));
        // The entry is named by `uid`; `cn` is the person's name.
        attrs.insert(attr("cn"), set1(m.name));
        attrs.entry(attr("sn")).or_insert_with(|| set1(m.name));
        attrs.insert(attr("zimbraAccountStatus"), set1("active"));
        attrs.insert(attr("zimbraMailStatus"), set1("enabled"));
        if let Some(c) = &m.spec.destination.carbonio {
            if let Some(id) = cos_entry(m.dest, &c.cos).and_then(|e| e.text("zimbraId")) {
                attrs.insert(attr("zimbraCOSId"), set1(id));
            }
            if c.password_policy == PasswordPolicy::Random {
                // The password itself is made at apply time and never written into a plan.
                attrs.insert(attr("zimbraPasswordMustChange"), set1("TRUE"));
            }
        }
    }

    fn convert(&self, _: &Conversion<'_>, _: &mut Attrs) {
        // Carbonio has no users without a mailbox: nothing is ever converted.
    }

    fn new_group(&self, g: &NewGroup<'_>, attrs: &mut Attrs) {
        // zimbra-ocs.xml: a list is a zimbraDistributionList (cn, description, displayName,
        // mail, uid: optionalIn/requiredIn="distributionList" in zimbra-attrs.xml) and a
        // zimbraMailRecipient, which holds zimbraMailAlias, zimbraMailStatus and the members in
        // zimbraMailForwardingAddress (optionalIn="mailRecipient").
        attrs.insert(
            attr("objectClass"),
            values(&["zimbraDistributionList", "zimbraMailRecipient"]),
        );
        // The entry is named by its uid (see `new_dn`): the planner made the DN from the local
        // part of the list's address, or a numbered one when that was taken.
        let uid =
            g.dn.rdn_value()
                .or_else(|| {
                    g.mail
                        .and_then(|m| m.rsplit_once('@'))
                        .map(|(l, _)| l.to_string())
                })
                .unwrap_or_else(|| g.account.to_string());
        attrs.insert(attr("uid"), set1(uid));
        if let Some(name) = attrs.get(&attr("displayName")).cloned() {
            attrs.insert(attr("cn"), name);
        }
        attrs.insert(attr("zimbraMailStatus"), set1("enabled"));
    }

    fn managed(&self) -> &'static [&'static str] {
        MANAGED
    }

    fn check_destination(&self, spec: &Spec, dest: &Snapshot) -> Vec<String> {
        let mut problems = Vec::new();
        let carbonio = spec.destination.carbonio.as_ref();
        let auto = carbonio.is_some_and(|c| c.provisioning == Some(Provisioning::Auto));
        for domain in &spec.destination.domains {
            let Some(entry) = domain_entry(dest, domain) else {
                problems.push(format!(
                    "Carbonio domain `{domain}` does not exist: no zimbraDomain entry has zimbraDomainName `{domain}` (create it first: `carbonio prov createDomain {domain}`)"
                ));
                continue;
            };
            if auto {
                let missing: Vec<String> = AUTO_PROV
                    .iter()
                    .filter(|(a, _)| entry.text(a).is_none_or(|v| v.trim().is_empty()))
                    .map(|(a, why)| format!("{a} ({why})"))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "domain `{domain}` has no Accounts Auto Provisioning set up, which `provisioning: {{ auto: true }}` relies on: {} missing",
                        missing.join(", ")
                    ));
                } else if let Some(mode) = entry.text("zimbraAutoProvMode")
                    && !["EAGER", "LAZY"].contains(&mode)
                {
                    problems.push(format!(
                        "domain `{domain}` has zimbraAutoProvMode `{mode}`: Carbonio creates accounts by itself only in EAGER or LAZY mode"
                    ));
                } else if let Some(f) = entry.text("zimbraAutoProvLdapSearchFilter")
                    && Filter::parse(&fill_filter(f, "user@example.com")).is_err()
                {
                    problems.push(format!(
                        "domain `{domain}`: zimbraAutoProvLdapSearchFilter `{f}` is not a valid LDAP filter"
                    ));
                }
            }
        }
        if let Some(c) = carbonio
            && cos_entry(dest, &c.cos).is_none()
        {
            problems.push(format!(
                "class of service `{}` (destination.cos) does not exist: no zimbraCOS entry has cn `{}`",
                c.cos, c.cos
            ));
        }
        problems
    }

    fn kinds(&self) -> Kinds {
        Kinds {
            create_mailbox: ActionKind::CreateAccount,
            create_group: ActionKind::CreateDistributionList,
            group_members: ActionKind::AddDistributionListMembers,
            modify: ActionKind::ModifyAccount,
            alias: ActionKind::AddAccountAlias,
        }
    }

    fn wanted_account(&self, spec: &Spec, person: &Person) -> Option<String> {
        // An account is named by its address: its uid is the local part of the person's
        // address in one of the plan's domains.
        person
            .smtp
            .iter()
            .find(|a| plan_domain(spec, a).is_some())
            .and_then(|a| a.rsplit_once('@'))
            .map(|(l, _)| l.to_string())
    }

    fn container_for(&self, spec: &Spec, person: &Person) -> Option<Dn> {
        // The account is named by its address in one of the plan's domains: it goes under
        // that domain's `ou=people`, not the first domain's.
        let domain = person.smtp.iter().find_map(|a| plan_domain(spec, a))?;
        Some(domain_dn(domain).child("ou", "people"))
    }

    fn new_dn(&self, container: &Dn, _cn: &str, account: &str) -> Dn {
        container.child("uid", account)
    }

    fn numbered_dn(&self, container: &Dn, _cn: &str, account: &str, n: u32) -> Dn {
        container.child("uid", &format!("{account}{n}"))
    }

    fn split_aliases(&self, spec: &Spec, attrs: &mut Attrs) -> (Vec<(Dn, String)>, Vec<String>) {
        let mut aliases = Vec::new();
        let mut warnings = Vec::new();
        for v in attrs.remove(&attr("zimbraMailAlias")).into_iter().flatten() {
            let Some(address) = v.as_str() else { continue };
            match (plan_domain(spec, address), alias_dn(address)) {
                (Some(_), Some(dn)) => aliases.push((dn, address.to_string())),
                _ => warnings.push(format!(
                    "address {address} is not in one of the plan's domains ({}); Carbonio accepts aliases only in its own domains, so it is left off the account",
                    spec.destination.domains.join(", ")
                )),
            }
        }
        (aliases, warnings)
    }

    fn alias_attr(&self) -> &'static str {
        "zimbraMailAlias"
    }

    fn fills_matched(&self) -> bool {
        true
    }

    fn provisioned_elsewhere(
        &self,
        spec: &Spec,
        dest: &Snapshot,
        source: &Entry,
        primary: Option<&str>,
    ) -> Option<Result<String, String>> {
        let c = spec.destination.carbonio.as_ref()?;
        if c.provisioning != Some(Provisioning::Auto) {
            return None;
        }
        let Some(login) = primary else {
            return Some(Err(
                "the person has no address for Auto Provisioning to look them up by".into(),
            ));
        };
        let domain = plan_domain(spec, login)
            .or(spec.destination.domains.first().map(String::as_str))
            .unwrap_or_default();
        let Some(entry) = domain_entry(dest, domain) else {
            return Some(Err(format!("domain `{domain}` does not exist")));
        };
        let filter = entry
            .text("zimbraAutoProvLdapSearchFilter")
            .unwrap_or_default();
        let filled = fill_filter(filter, login);
        let selects = Filter::parse(&filled).is_ok_and(|f| f.matches(source));
        if !selects {
            return Some(Err(format!(
                "the Auto Provisioning filter of domain `{domain}` ({filled}) does not select this person: Carbonio will not create their account"
            )));
        }
        let map = entry
            .text("zimbraAutoProvAccountNameMap")
            .unwrap_or_default();
        let name = match source.text(map) {
            Some(n) if n.contains('@') => n.to_ascii_lowercase(),
            Some(n) => format!("{}@{domain}", n.to_ascii_lowercase()),
            None => {
                return Some(Err(format!(
                    "the person has no `{map}` (zimbraAutoProvAccountNameMap of domain `{domain}`) to name the account by"
                )));
            }
        };
        Some(Ok(name))
    }

    fn members_attr(&self) -> &'static str {
        "zimbraMailForwardingAddress"
    }

    fn member_value(&self, _dn: &Dn, attrs: &dyn Fn() -> Option<Attrs>) -> Option<Value> {
        let primary = self.read_addresses(&attrs()?).primary("SMTP").cloned()?;
        Some(Value::text(primary.address))
    }

    fn missing_members(&self, current: &ValueSet, wanted: BTreeSet<Value>) -> ValueSet {
        let present: BTreeSet<String> = current
            .iter()
            .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
            .collect();
        wanted
            .into_iter()
            .filter(|v| {
                v.as_str()
                    .is_some_and(|a| !present.contains(&a.to_ascii_lowercase()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_provisioning_placeholders_are_filled_and_escaped() {
        assert_eq!(
            fill_filter("(&(uid=%u)(mail=%n)(o=%d)(x=%D)(y=%%))", "j*s@acme.com"),
            "(&(uid=j\\2as)(mail=j\\2as@acme.com)(o=acme.com)(x=dc=acme,dc=com)(y=%%))"
        );
        assert_eq!(fill_filter("(uid=%u)", "plain"), "(uid=plain)");
    }

    #[test]
    fn an_alias_lives_under_people_of_its_domain() {
        assert_eq!(
            alias_dn("j.smith@acme.com").unwrap().to_string(),
            "uid=j.smith,ou=people,dc=acme,dc=com"
        );
        assert!(alias_dn("nobody").is_none());
    }
}
