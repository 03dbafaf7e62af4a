//! A snapshot: every entry read from one directory at one moment, with the lookups matching needs.
//!
//! Entries are kept sorted by DN so iteration is deterministic; indexes are hash maps from a
//! normalised key to entry positions (in DN order), so lookups are O(1) and planning stays linear
//! in the size of the directories. A snapshot is immutable once built and does no I/O: backends
//! (`ldif`, `ldap`) produce the entries, this module only organises them.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::address::{ProxyAddress, address_key};
use super::attr::{AttrName, Value};
use super::dn::Dn;
use super::entry::Entry;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry `{0}` appears twice")]
pub struct DuplicateDn(pub Dn);

/// Position of an entry in its snapshot.
pub type EntryId = usize;

#[derive(Debug, Default)]
pub struct Snapshot {
    entries: Vec<Entry>,
    by_dn: FxHashMap<Dn, EntryId>,
    /// member DN → the groups whose `member` holds it.
    groups_of: FxHashMap<Dn, Vec<Membership>>,
}

/// One `member` value of a group, as stored (its spelling may differ from the member's DN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: EntryId,
    pub value: Value,
}

impl Snapshot {
    pub fn new(mut entries: Vec<Entry>) -> Result<Self, DuplicateDn> {
        // A directory of a few hundred thousand entries is read on one thread per directory,
        // and the larger one is still being organised here when the other core is already
        // free: above this size the work is split in two.
        const SPLIT: usize = 20_000;
        let split = entries.len() >= SPLIT && crate::parallel::cores() > 1;
        if split {
            // Each half sorted on its own core; the sort of the whole then finds two runs and
            // only merges them.
            let half = entries.len() / 2;
            let (a, b) = entries.split_at_mut(half);
            crate::parallel::join(|| sort_by_dn(a), || sort_by_dn(b));
        }
        sort_by_dn(&mut entries);
        if let Some(w) = entries.windows(2).find(|w| w[0].dn == w[1].dn) {
            return Err(DuplicateDn(w[1].dn.clone()));
        }
        let (by_dn, groups_of) = if split {
            crate::parallel::join(|| dn_index(&entries), || memberships(&entries))
        } else {
            (dn_index(&entries), memberships(&entries))
        };
        Ok(Snapshot {
            entries,
            by_dn,
            groups_of,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, id: EntryId) -> &Entry {
        &self.entries[id]
    }

    pub fn id_of(&self, dn: &Dn) -> Option<EntryId> {
        self.by_dn.get(dn).copied()
    }

    pub fn get(&self, dn: &Dn) -> Option<&Entry> {
        self.id_of(dn).map(|id| &self.entries[id])
    }

    pub fn contains(&self, dn: &Dn) -> bool {
        self.by_dn.contains_key(dn)
    }

    /// Groups whose `member` attribute names `dn`, in DN order.
    pub fn groups_of(&self, dn: &Dn) -> &[Membership] {
        self.groups_of.get(dn).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Builds the lookups matching uses, over the attributes a flavor says hold them. The
    /// address lookup (the largest) is built beside the account and name lookups.
    pub fn index(&self, config: &IndexConfig) -> Indexes {
        let (addresses, (accounts, names)) =
            crate::parallel::join(|| self.address_index(config), || self.name_indexes(config));
        Indexes {
            addresses,
            accounts,
            names,
        }
    }

    // Every key is made in one buffer, and copied only when it is new to its map: an entry's
    // `cn` is usually its DN's leaf value too, and most keys are looked up once. Each map is
    // sized for a key or so per entry, so it does not grow by doubling from empty.

    fn address_index(&self, config: &IndexConfig) -> FxHashMap<String, Postings> {
        let mut addresses = FxHashMap::default();
        addresses.reserve(self.entries.len() * 2);
        let mut key = String::new();
        for (id, e) in self.entries.iter().enumerate() {
            for attr in &config.address_attrs {
                for v in e.texts(attr.as_str()) {
                    if ProxyAddress::push_key_of(&mut key, v) {
                        post(&mut addresses, &key, id);
                    }
                }
            }
        }
        addresses
    }

    fn name_indexes(
        &self,
        config: &IndexConfig,
    ) -> (FxHashMap<String, Postings>, FxHashMap<String, Postings>) {
        let mut accounts = FxHashMap::default();
        let mut names = FxHashMap::default();
        names.reserve(self.entries.len());
        let mut key = String::new();
        for (id, e) in self.entries.iter().enumerate() {
            for attr in &config.account_attrs {
                for v in e.texts(attr.as_str()) {
                    push_name_key(&mut key, v);
                    post(&mut accounts, &key, id);
                }
            }
            if let Some(cn) = e.dn.leaf_value_of("cn") {
                push_name_key(&mut key, &cn);
                post(&mut names, &key, id);
            }
            for attr in &config.name_attrs {
                for v in e.texts(attr.as_str()) {
                    push_name_key(&mut key, v);
                    post(&mut names, &key, id);
                }
            }
        }
        (accounts, names)
    }
}

/// Adds entry `id` under `key`, once: entries are indexed in order, so an entry that holds a
/// key twice finds itself last in its postings.
fn post(map: &mut FxHashMap<String, Postings>, key: &str, id: EntryId) {
    match map.get_mut(key) {
        Some(postings) => {
            if postings.last() != Some(&id) {
                postings.push(id);
            }
        }
        None => {
            map.insert(key.to_string(), smallvec::smallvec![id]);
        }
    }
}

fn sort_by_dn(entries: &mut [Entry]) {
    entries.sort_by(|a, b| a.dn.cmp(&b.dn));
}

/// Each entry's position, by DN.
fn dn_index(entries: &[Entry]) -> FxHashMap<Dn, EntryId> {
    let mut by_dn = FxHashMap::default();
    by_dn.reserve(entries.len());
    for (id, e) in entries.iter().enumerate() {
        by_dn.insert(e.dn.clone(), id);
    }
    by_dn
}

/// Member DN → the groups whose `member` holds it, in group order.
fn memberships(entries: &[Entry]) -> FxHashMap<Dn, Vec<Membership>> {
    let mut groups_of: FxHashMap<Dn, Vec<Membership>> = FxHashMap::default();
    for (id, e) in entries.iter().enumerate() {
        for value in e.get("member").into_iter().flatten() {
            if let Some(m) = value.as_str().and_then(|m| Dn::parse(m).ok()) {
                groups_of.entry(m).or_default().push(Membership {
                    group: id,
                    value: value.clone(),
                });
            }
        }
    }
    groups_of
}

/// Which attributes feed which index.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Attributes holding addresses (`proxyAddresses`, `targetAddress`, `mail`).
    pub address_attrs: Vec<AttrName>,
    /// Attributes holding account names (`sAMAccountName`).
    pub account_attrs: Vec<AttrName>,
    /// Attributes holding display names, besides the CN of the RDN (`cn`).
    pub name_attrs: Vec<AttrName>,
}

/// Lookups from normalised keys to entries, each list in DN order.
#[derive(Debug, Default)]
pub struct Indexes {
    /// `address_key(type, address)` → entries holding that address.
    pub addresses: FxHashMap<String, Postings>,
    /// `name_key(account)` → entries with that account name.
    pub accounts: FxHashMap<String, Postings>,
    /// `name_key(cn)` → entries with that common name.
    pub names: FxHashMap<String, Postings>,
}

/// The entries one key leads to: almost always one, kept without an allocation of its own.
pub type Postings = SmallVec<[EntryId; 1]>;

impl Indexes {
    pub fn by_address(&self, kind: &str, address: &str) -> &[EntryId] {
        self.addresses
            .get(&address_key(kind, address))
            .map(Postings::as_slice)
            .unwrap_or(&[])
    }
    pub fn by_account(&self, name: &str) -> &[EntryId] {
        self.accounts
            .get(&name_key(name))
            .map(Postings::as_slice)
            .unwrap_or(&[])
    }
    pub fn by_name(&self, name: &str) -> &[EntryId] {
        self.names
            .get(&name_key(name))
            .map(Postings::as_slice)
            .unwrap_or(&[])
    }
}

/// Names compare case-insensitively with runs of white space folded to one space.
pub fn name_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_name_key(&mut out, s);
    out
}

/// `name_key`, written into `out` (cleared first).
fn push_name_key(out: &mut String, s: &str) {
    out.clear();
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        super::push_lowercase(out, word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn config() -> IndexConfig {
        IndexConfig {
            address_attrs: vec![
                AttrName::new_unchecked("proxyAddresses"),
                AttrName::new_unchecked("mail"),
            ],
            account_attrs: vec![AttrName::new_unchecked("sAMAccountName")],
            name_attrs: vec![AttrName::new_unchecked("cn")],
        }
    }

    #[test]
    fn indexes_addresses_accounts_and_names() {
        let snap = Snapshot::new(vec![
            Entry::new(dn("CN=John Smith,DC=acme"))
                .with("proxyAddresses", "SMTP:John.Smith@Acme.com")
                .with("mail", "john.smith@acme.com")
                .with("sAMAccountName", "JSmith")
                .with("cn", "John  Smith"),
            Entry::new(dn("CN=Group,DC=acme")).with("member", "cn=john smith,dc=acme"),
        ])
        .unwrap();
        let ix = snap.index(&config());
        assert_eq!(
            ix.by_address("smtp", "john.smith@ACME.com"),
            &[1],
            "one entry once, though two attributes hold it"
        );
        assert_eq!(ix.by_account("jsmith"), &[1]);
        assert_eq!(
            ix.by_name("john   SMITH"),
            &[1],
            "once, though its DN and its cn both name it"
        );
        let groups = snap.groups_of(&dn("CN=John Smith,DC=acme"));
        assert_eq!(groups.len(), 1);
        assert_eq!(
            (groups[0].group, groups[0].value.as_str()),
            (0, Some("cn=john smith,dc=acme"))
        );
        assert_eq!(snap.entries()[0].dn, dn("CN=Group,DC=acme"), "sorted by DN");
    }

    /// Above the size where the work is split over two cores, the snapshot is the one a single
    /// thread builds: sorted, every DN found, every membership in group order.
    #[test]
    fn a_large_snapshot_is_organised_as_a_small_one() {
        let n = 30_000;
        // Out of order (a stride through the ids); entries 0 and 1 of every ten are groups of the
        // next two.
        let entries: Vec<Entry> = (0..n)
            .map(|i| (i * 7_919) % n)
            .map(|i| {
                let e = Entry::new(dn(&format!("CN=E{i:05},DC=acme")));
                if i % 10 <= 1 {
                    e.with("member", &format!("cn=e{:05},dc=acme", (i + 1) % n))
                        .with("member", &format!("CN=E{:05},DC=acme", (i + 2) % n))
                } else {
                    e
                }
            })
            .collect();
        let snap = Snapshot::new(entries).unwrap();
        assert_eq!(snap.len(), n);
        assert!(
            snap.entries().windows(2).all(|w| w[0].dn < w[1].dn),
            "sorted by DN"
        );
        for (id, e) in snap.entries().iter().enumerate() {
            assert_eq!(snap.id_of(&e.dn), Some(id));
        }
        let groups = snap.groups_of(&dn("CN=E00012,DC=acme"));
        let names: Vec<_> = groups
            .iter()
            .map(|m| snap.entry(m.group).dn.to_string())
            .collect();
        assert_eq!(
            names,
            ["CN=E00010,DC=acme", "CN=E00011,DC=acme"].map(|s| dn(s).to_string())
        );
        let values: Vec<_> = groups.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(
            values,
            [Some("CN=E00012,DC=acme"), Some("cn=e00012,dc=acme")],
            "as stored"
        );

        let mut twice: Vec<Entry> = (0..n)
            .map(|i| Entry::new(dn(&format!("CN=E{i:05},DC=acme"))))
            .collect();
        twice.push(Entry::new(dn("cn=e04711,dc=acme")));
        assert_eq!(Snapshot::new(twice).unwrap_err().0, dn("CN=E04711,DC=acme"));
    }

    #[test]
    fn duplicate_dns_are_refused() {
        let err = Snapshot::new(vec![
            Entry::new(dn("CN=a,DC=x")),
            Entry::new(dn("cn=A,dc=x")),
        ])
        .unwrap_err();
        assert_eq!(err.0, dn("cn=a,dc=x"));
    }
}
