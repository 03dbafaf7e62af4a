//! Address sets: a recipient's addresses, at most one primary per type, whatever attributes a
//! flavor stores them in.
//!
//! The planner reasons about one `AddressSet`, so "exactly one primary SMTP" is enforced in one
//! place; each flavor (`plan::flavor`) reads it from an entry and writes it back as attributes.
//! This module must not know any flavor's attribute names.

use std::collections::{BTreeMap, BTreeSet};

use crate::directory::ProxyAddress;

/// Addresses keyed by their comparison key; at most one primary per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    by_key: BTreeMap<String, ProxyAddress>,
}

impl AddressSet {
    /// Adds an address; an existing one with the same key keeps its spelling and flag.
    pub fn insert(&mut self, p: ProxyAddress) {
        let key = p.key();
        if let Some(existing) = self.by_key.get(&key)
            && (existing.primary || !p.primary)
        {
            return;
        }
        if p.primary {
            for other in self.by_key.values_mut().filter(|o| o.kind == p.kind) {
                other.primary = false;
            }
        }
        self.by_key.insert(key, p);
    }

    /// Adds an address as a secondary unless it is present.
    pub fn insert_secondary(&mut self, p: ProxyAddress) {
        let key = p.key();
        self.by_key
            .entry(key)
            .or_insert_with(|| p.with_primary(false));
    }

    /// Makes `address` the one primary of its type (adding it if needed).
    pub fn set_primary(&mut self, p: &ProxyAddress) {
        for other in self.by_key.values_mut().filter(|o| o.kind == p.kind) {
            other.primary = false;
        }
        let key = p.key();
        match self.by_key.get_mut(&key) {
            Some(existing) => existing.primary = true,
            None => {
                self.by_key.insert(key, p.with_primary(true));
            }
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn primary(&self, kind: &str) -> Option<&ProxyAddress> {
        self.by_key.values().find(|p| p.kind == kind && p.primary)
    }

    /// Gives a type that has addresses but no primary one its first address as primary.
    pub fn ensure_primaries(&mut self) {
        let kinds: BTreeSet<String> = self.by_key.values().map(|p| p.kind.clone()).collect();
        for kind in kinds {
            if kind == "X500" || kind == "X400" {
                continue;
            }
            if self.primary(&kind).is_none()
                && let Some(first) = self.by_key.values_mut().find(|p| p.kind == kind)
            {
                first.primary = true;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ProxyAddress> {
        self.by_key.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_primary_per_type() {
        let mut s = AddressSet::default();
        s.insert(ProxyAddress::parse("SMTP:a@x.com").unwrap());
        s.insert(ProxyAddress::parse("SMTP:b@x.com").unwrap());
        s.insert_secondary(ProxyAddress::parse("SMTP:A@X.COM").unwrap());
        assert_eq!(s.primary("SMTP").unwrap().address, "b@x.com");
        assert_eq!(s.iter().count(), 2);
        s.set_primary(&ProxyAddress::smtp("a@x.com", true));
        let values: Vec<String> = s.iter().map(|p| p.to_string()).collect();
        assert_eq!(values, ["SMTP:a@x.com", "smtp:b@x.com"]);
    }
}
