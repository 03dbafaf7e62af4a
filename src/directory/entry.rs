//! A directory entry: a DN and its attributes, each a set of values.
//!
//! Multi-valued attributes are sets (`BTreeSet`), so order in the source never leaks into plans.
//! This module must not interpret what attributes mean; that is matching's job.

use std::collections::{BTreeMap, BTreeSet};

use super::attr::{AttrName, Value};
use super::dn::Dn;

pub type Attrs = BTreeMap<AttrName, BTreeSet<Value>>;

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

    pub fn get(&self, attr: &str) -> Option<&BTreeSet<Value>> {
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
    pub fn values(&self, attr: &str) -> BTreeSet<Value> {
        self.get(attr).cloned().unwrap_or_default()
    }
}
