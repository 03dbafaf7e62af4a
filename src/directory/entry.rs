//! A directory entry: a DN and its attributes, each a set of values.
//!
//! Multi-valued attributes are sets (`BTreeSet`), so order in the source never leaks into plans.
//! This module must not interpret what attributes mean; that is matching's job.

use std::borrow::Borrow;
use std::fmt;

use super::attr::{AttrKey, AttrName, Value, ValueSet};
use super::dn::Dn;

/// An entry's attributes: a map from name to values, sorted by name.
///
/// Kept as one sorted vector rather than a `BTreeMap`: an entry has a dozen or two attributes,
/// for which a tree spends two or three nodes of mostly empty slots, and a snapshot holds
/// hundreds of thousands of entries. Lookups are binary searches; iteration is in name order,
/// as a `BTreeMap`'s would be.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(AttrName, ValueSet)>);

/// One name's place in [`Attrs`], for `attrs.entry(name).or_default()`.
pub struct Slot<'a> {
    attrs: &'a mut Attrs,
    at: Result<usize, usize>,
    name: AttrName,
}

impl<'a> Slot<'a> {
    pub fn or_insert_with(self, f: impl FnOnce() -> ValueSet) -> &'a mut ValueSet {
        let i = match self.at {
            Ok(i) => i,
            Err(i) => {
                self.attrs.0.insert(i, (self.name, f()));
                i
            }
        };
        &mut self.attrs.0[i].1
    }
    pub fn or_insert(self, values: ValueSet) -> &'a mut ValueSet {
        self.or_insert_with(|| values)
    }
    pub fn or_default(self) -> &'a mut ValueSet {
        self.or_insert_with(ValueSet::new)
    }
}

type Pair<'a> = (&'a AttrName, &'a ValueSet);
/// Iterates the attributes in name order.
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (AttrName, ValueSet)>,
    fn(&'a (AttrName, ValueSet)) -> Pair<'a>,
>;

impl Attrs {
    pub const fn new() -> Self {
        Attrs(Vec::new())
    }

    /// Room for `n` names without growing: a reader knows how many an entry has.
    pub fn with_capacity(n: usize) -> Self {
        Attrs(Vec::with_capacity(n))
    }

    /// Adds `values` to `name`'s (a set union; the whole set when `name` is new).
    pub fn add_all(&mut self, name: AttrName, values: ValueSet) {
        match self.find(&name) {
            Ok(i) => self.0[i].1.extend(values),
            Err(i) => self.0.insert(i, (name, values)),
        }
    }

    fn find<Q: Ord + ?Sized>(&self, name: &Q) -> Result<usize, usize>
    where
        AttrName: Borrow<Q>,
    {
        self.0.binary_search_by(|(n, _)| n.borrow().cmp(name))
    }

    /// The values of `name`: an `&AttrName`, or `AttrKey::new("mail")` for any spelling.
    pub fn get<Q: Ord + ?Sized>(&self, name: &Q) -> Option<&ValueSet>
    where
        AttrName: Borrow<Q>,
    {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, name: &Q) -> bool
    where
        AttrName: Borrow<Q>,
    {
        self.find(name).is_ok()
    }

    /// Sets `name` to `values`, returning what it held.
    pub fn insert(&mut self, name: AttrName, values: ValueSet) -> Option<ValueSet> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, values)),
            Err(i) => {
                self.0.insert(i, (name, values));
                None
            }
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, name: &Q) -> Option<ValueSet>
    where
        AttrName: Borrow<Q>,
    {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn entry(&mut self, name: AttrName) -> Slot<'_> {
        let at = self.find(&name);
        Slot {
            attrs: self,
            at,
            name,
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// The attributes from `name` on, in name order (a range scan over names sharing a prefix).
    pub fn iter_from(&self, name: &AttrName) -> Iter<'_> {
        let start = self.0.partition_point(|(n, _)| n < name);
        self.0[start..].iter().map(|(n, v)| (n, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &AttrName> + '_ {
        self.0.iter().map(|(n, _)| n)
    }

    pub fn values(&self) -> impl Iterator<Item = &ValueSet> + '_ {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = Pair<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Attrs {
    type Item = (AttrName, ValueSet);
    type IntoIter = std::vec::IntoIter<(AttrName, ValueSet)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(AttrName, ValueSet)> for Attrs {
    /// Later pairs for the same name replace earlier ones, as in a map.
    fn from_iter<I: IntoIterator<Item = (AttrName, ValueSet)>>(iter: I) -> Self {
        let mut attrs = Attrs::new();
        for (n, v) in iter {
            attrs.insert(n, v);
        }
        attrs
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub attrs: Attrs,
}

impl Entry {
    pub fn new(dn: Dn) -> Self {
        Entry {
            dn,
            attrs: Attrs::new(),
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
        self.attrs.get(AttrKey::new(attr))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> AttrName {
        AttrName::new_unchecked(s)
    }

    fn set(values: &[&str]) -> ValueSet {
        values.iter().map(|v| Value::from(*v)).collect()
    }

    #[test]
    fn attrs_behave_as_a_map_sorted_by_folded_name() {
        let mut a = Attrs::new();
        assert_eq!(a.insert(name("mail"), set(&["x@acme.com"])), None);
        a.insert(name("CN"), set(&["X"]));
        a.insert(name("proxyAddresses"), set(&["SMTP:x@acme.com"]));
        assert_eq!(
            a.insert(name("Mail"), set(&["y@acme.com"])),
            Some(set(&["x@acme.com"])),
            "a second spelling is the same attribute"
        );
        a.entry(name("member;range=0-1")).or_default();
        a.entry(name("member"))
            .or_default()
            .insert(Value::from("cn=a"));
        a.entry(name("MEMBER"))
            .or_default()
            .insert(Value::from("cn=b"));
        let names: Vec<&str> = a.keys().map(AttrName::folded).collect();
        assert_eq!(
            names,
            ["cn", "mail", "member", "member;range=0-1", "proxyaddresses"]
        );
        assert_eq!(a.get(AttrKey::new("MAIL")), Some(&set(&["y@acme.com"])));
        assert_eq!(a.get(&name("member")), Some(&set(&["cn=a", "cn=b"])));
        let from: Vec<&str> = a
            .iter_from(&name("member"))
            .map(|(n, _)| n.folded())
            .collect();
        assert_eq!(from, ["member", "member;range=0-1", "proxyaddresses"]);
        assert_eq!(a.remove(AttrKey::new("Cn")), Some(set(&["X"])));
        assert!(!a.contains_key(AttrKey::new("cn")) && a.len() == 4);
        let rebuilt: Attrs = a.clone().into_iter().collect();
        assert_eq!(rebuilt, a);
    }
}
