//! Source persons: a source entry read through the profile's roles.
//!
//! Everything matching compares is extracted here once (addresses, short names, full names), so
//! the rest of matching never looks at raw source attributes. No I/O, no decisions.

use std::collections::BTreeSet;

use crate::directory::address::{address_key, check_smtp, is_smtp};
use crate::directory::{Dn, Entry, EntryId};

use super::rules::SourceRules;

#[derive(Debug, Clone)]
pub struct Person {
    /// Position in the source snapshot.
    pub id: EntryId,
    pub dn: Dn,
    /// SMTP addresses, as written, de-duplicated case-insensitively, sorted by their key.
    pub smtp: Vec<String>,
    /// `John Smith/Sales/Acme@ACME`, when the profile builds one.
    pub notes: Option<String>,
    /// Short names (no `@`), sorted, de-duplicated case-insensitively.
    pub short_names: Vec<String>,
    /// Full names (neither a DN nor an address), in set order, de-duplicated.
    pub full_names: Vec<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// Source values that would have been addresses but cannot be written to a destination,
    /// each a warning naming the attribute, the value and why; they are left out.
    pub rejected: Vec<String>,
}

impl Person {
    pub fn from_entry(
        id: EntryId,
        entry: &Entry,
        rules: &SourceRules,
        notes_domain: Option<&str>,
    ) -> Person {
        let mut smtp = Keyed::default();
        let mut rejected = Vec::new();
        // An address is checked once, here, before anything can write it: a value that cannot
        // be one is a warning naming its attribute, and is left out.
        let mut address = |smtp: &mut Keyed, attr: &str, v: &str| {
            match check_smtp(v) {
            Ok(()) => smtp.insert(v),
            Err(why) => rejected.push(format!(
                "source attribute `{attr}` holds \"{}\", which is no valid e-mail address ({why}); it is left out of the destination's addresses",
                v.escape_debug()
            )),
        }
        };
        for attr in &rules.smtp {
            for raw in entry.texts(attr.as_str()) {
                // proxyAddresses-style values carry a type; only SMTP ones are internet addresses.
                let v = match raw.split_once(':') {
                    Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => rest,
                    Some((kind, _))
                        if !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric()) =>
                    {
                        continue;
                    }
                    _ => raw,
                };
                // Only white space at the ends is dropped; any inside is the value's own.
                let v = v.trim_matches(|c: char| c == ' ' || c == '\t');
                if !v.is_empty() {
                    address(&mut smtp, attr.as_str(), v);
                }
            }
        }
        let mut short = Keyed::default();
        for attr in &rules.short_names {
            for v in entry.texts(attr.as_str()) {
                if is_smtp(v.trim()) {
                    address(&mut smtp, attr.as_str(), v.trim());
                } else if !v.trim().is_empty() {
                    short.insert(v.trim());
                }
            }
        }
        let mut full = Keyed::default();
        for attr in &rules.full_names {
            for v in entry.texts(attr.as_str()) {
                let v = v.trim();
                if is_smtp(v) {
                    address(&mut smtp, attr.as_str(), v);
                } else if !v.is_empty() && !looks_like_dn(v) {
                    full.insert(v);
                }
            }
        }
        let notes = match (rules.notes_from_dn, notes_domain) {
            (true, Some(domain)) if !entry.dn.is_root() => {
                Some(format!("{}@{}", entry.dn.abbreviated(), domain))
            }
            _ => None,
        };
        Person {
            id,
            dn: entry.dn.clone(),
            smtp: smtp.sorted(),
            notes,
            short_names: short.sorted(),
            full_names: full.in_order(),
            given_name: entry.text(rules.given_name.as_str()).map(str::to_string),
            surname: entry.text(rules.surname.as_str()).map(str::to_string),
            rejected,
        }
    }

    /// The name people see: the first full name, else the RDN value.
    pub fn display_name(&self) -> String {
        self.full_names
            .first()
            .cloned()
            .unwrap_or_else(|| self.dn.rdn_value().unwrap_or_default())
    }

    /// Every address as `(type, address)`: SMTP ones, then the NOTES one.
    pub fn addresses(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.smtp
            .iter()
            .map(|a| ("SMTP", a.as_str()))
            .chain(self.notes.iter().map(|n| ("NOTES", n.as_str())))
    }

    /// Comparison keys of every address.
    pub fn address_keys(&self) -> Vec<String> {
        self.addresses().map(|(k, a)| address_key(k, a)).collect()
    }
}

/// Domino puts hierarchical names (`John Smith/Sales/Acme`) and DNs in `cn`; those are not
/// full names to compare with a destination CN.
fn looks_like_dn(v: &str) -> bool {
    v.contains('/')
        || (v.contains('=')
            && crate::directory::Dn::parse(v)
                .map(|d| d.rdns().len() > 1)
                .unwrap_or(false))
}

/// Strings de-duplicated by a case-folded key, remembering first spelling and insertion order.
#[derive(Default)]
struct Keyed {
    seen: BTreeSet<String>,
    order: Vec<(String, String)>,
}

impl Keyed {
    fn insert(&mut self, v: &str) {
        let mut key = String::with_capacity(v.len());
        crate::directory::push_lowercase(&mut key, v);
        if self.seen.insert(key.clone()) {
            self.order.push((key, v.to_string()));
        }
    }
    fn sorted(mut self) -> Vec<String> {
        self.order.sort();
        self.order.into_iter().map(|(_, v)| v).collect()
    }
    fn in_order(self) -> Vec<String> {
        self.order.into_iter().map(|(_, v)| v).collect()
    }
}
