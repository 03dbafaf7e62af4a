//! A directory entry: a DN and its attributes, each a set of values.
//!
//! Multi-valued attributes are sets (`BTreeSet`), so order in the source never leaks into plans.
//! This module must not interpret what attributes mean; that is matching's job.

use std::collections::BTreeMap;

use super::attr::{AttrName, Value, ValueSet};
use super::dn::Dn;

pub type Attrs = BTreeMap<AttrName, ValueSet>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub attrs: Attrs,
}

impl Entry {
    pub fn new(dn: Dn) -> Self {
        Entry {
            dn,
            attrs: BTreeMap::new(),
        }
    }

    /// Adds one value (a set: adding twice keeps one).
    pub fn add(&mut self, attr: AttrName, value: Value) {
        self.attrs.entry(attr).or_default().insert(value);
    }

    /// Builder form of `add` for text values, used by tests and the generator.
    pub fn with(mut self, attr: &str, value: &str) -> Self {
        self.add(AttrName::new_unchecked(attr), Value::text(value));
        self
    }

    pub fn get(&self, attr: &str) -> Option<&ValueSet> {
        self.attrs.get(&AttrName::new_unchecked(attr))
    }

    pub fn has(&self, attr: &str) -> bool {
        self.get(attr).is_some_and(|v| !v.is_empty())
    }

    /// The text values of `attr`, in set order; binary values are left out.
    pub fn texts<'a>(&'a self, attr: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.get(attr)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The first text value of `attr` in set order.
    pub fn text(&self, attr: &str) -> Option<&str> {
        self.texts(attr).next()
    }

    /// True when `objectClass` holds `class`, ignoring case.
    pub fn has_class(&self, class: &str) -> bool {
        self.texts("objectClass")
            .any(|c| c.eq_ignore_ascii_case(class))
    }

    /// The values of `attr`, or an empty set.
    pub fn values(&self, attr: &str) -> ValueSet {
        self.get(attr).cloned().unwrap_or_default()
    }
}

impl Entry {
    /// A SHA-256 over the normalised DN and every attribute and value, as `sha256:<hex>`.
    /// Two entries that compare equal have the same fingerprint, whatever the spelling of their
    /// attribute names; saved plans use it to refuse applying to an object that changed.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(self.dn.key().as_bytes());
        for (attr, values) in &self.attrs {
            field(attr.folded().as_bytes());
            field(&(values.len() as u64).to_be_bytes());
            for v in values {
                field(v.as_bytes());
            }
        }
        format!("sha256:{}", hex(&h.finalize()))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
