//! A snapshot: every entry read from one directory at one moment, with the lookups matching needs.
//!
//! Entries are kept sorted by DN so iteration is deterministic; indexes are hash maps from a
//! normalised key to entry positions (in DN order), so lookups are O(1) and planning stays linear
//! in the size of the directories. A snapshot is immutable once built and does no I/O: backends
//! (`ldif`, `ldap`) produce the entries, this module only organises them, from a whole list
//! (`Snapshot::new`) or one entry at a time as a live read delivers them (`Builder`).

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

/// From this many entries on, a snapshot is sorted in two halves, and its lookups are built,
/// side by side.
const SPLIT: usize = 20_000;

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
    pub fn new(entries: Vec<Entry>) -> Result<Self, DuplicateDn> {
        let order = dn_order(&entries);
        let entries = arrange(entries, &order);
        let split = entries.len() >= SPLIT && crate::parallel::cores() > 1;
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
        let entries = self.entries.iter().enumerate();
        let (addresses, (accounts, names)) = crate::parallel::join(
            || {
                let mut addresses = address_map(self.entries.len());
                let mut key = String::new();
                for (id, e) in entries.clone() {
                    index_addresses(&mut addresses, &mut key, config, id, e);
                }
                addresses
            },
            || {
                let (mut accounts, mut names) = name_maps(self.entries.len());
                let mut key = String::new();
                for (id, e) in entries.clone() {
                    index_names(&mut accounts, &mut names, &mut key, config, id, e);
                }
                (accounts, names)
            },
        );
        Indexes {
            addresses,
            accounts,
            names,
        }
    }
}

// Every key is made in one buffer, and copied only when it is new to its map: an entry's `cn`
// is usually its DN's leaf value too, and most keys are looked up once. Over a whole snapshot,
// each map is sized for a key or so per entry, so it does not grow by doubling from empty. The
// same functions index a whole snapshot (`Snapshot::index`) and one entry as it arrives
// (`Builder`), so the two give the same lookups.

fn address_map(entries: usize) -> FxHashMap<String, Postings> {
    let mut addresses = FxHashMap::default();
    addresses.reserve(entries * 2);
    addresses
}

fn name_maps(entries: usize) -> (FxHashMap<String, Postings>, FxHashMap<String, Postings>) {
    let mut names = FxHashMap::default();
    names.reserve(entries);
    (FxHashMap::default(), names)
}

/// Posts entry `id`'s addresses.
fn index_addresses(
    addresses: &mut FxHashMap<String, Postings>,
    key: &mut String,
    config: &IndexConfig,
    id: EntryId,
    e: &Entry,
) {
    for attr in &config.address_attrs {
        for v in e.texts(attr.as_str()) {
            if ProxyAddress::push_key_of(key, v) {
                post(addresses, key, id);
            }
        }
    }
}

/// Posts entry `id`'s account names, and its names: the CN of its RDN and the name attributes.
fn index_names(
    accounts: &mut FxHashMap<String, Postings>,
    names: &mut FxHashMap<String, Postings>,
    key: &mut String,
    config: &IndexConfig,
    id: EntryId,
    e: &Entry,
) {
    for attr in &config.account_attrs {
        for v in e.texts(attr.as_str()) {
            push_name_key(key, v);
            post(accounts, key, id);
        }
    }
    if let Some(cn) = e.dn.leaf_value_of("cn") {
        push_name_key(key, &cn);
        post(names, key, id);
    }
    for attr in &config.name_attrs {
        for v in e.texts(attr.as_str()) {
            push_name_key(key, v);
            post(names, key, id);
        }
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

/// The positions of `entries` in DN order (entries with the same DN in their order).
///
/// Comparing two DNs reads both from wherever their text was allocated, and a sort of a few
/// hundred thousand entries compares each a dozen or more times: that was a quarter of a second
/// of cache misses. So each DN is read once, for the 32 bytes of its key after the part all keys
/// share (the base, as keys start at the root), into a list sorted in place; only DNs that tie
/// on those bytes are compared in full. The order is exactly that of `Dn::cmp`: past the shared
/// part, the prefixes compare as the keys do (a shorter key, padded with zeros, ties with a
/// longer one it begins, and the full comparison decides). A large snapshot is sorted in two
/// halves side by side, which are then merged: this runs after the last entry of a live read
/// arrives, when nothing else can go on.
fn dn_order(entries: &[Entry]) -> Vec<EntryId> {
    const WIDTH: usize = 32;
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let first = first.dn.key().as_bytes();
    let shared_with_first = |part: &[Entry]| {
        part.iter().fold(first.len(), |shared, e| {
            first[..shared]
                .iter()
                .zip(e.dn.key().as_bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
    };
    let prefix = |shared: usize, e: &Entry| {
        let mut bytes = [0u8; WIDTH];
        let key = &e.dn.key().as_bytes()[shared..];
        let n = key.len().min(WIDTH);
        bytes[..n].copy_from_slice(&key[..n]);
        bytes
    };
    let order = |(pa, a): &([u8; WIDTH], EntryId), (pb, b): &([u8; WIDTH], EntryId)| {
        pa.cmp(pb)
            .then_with(|| entries[*a].dn.cmp(&entries[*b].dn))
            .then(a.cmp(b))
    };
    let sorted = |shared: usize, part: &[Entry], from: EntryId| {
        let mut keys: Vec<([u8; WIDTH], EntryId)> =
            part.iter().map(|e| prefix(shared, e)).zip(from..).collect();
        keys.sort_unstable_by(order);
        keys
    };
    if entries.len() < SPLIT || crate::parallel::cores() < 2 {
        let shared = shared_with_first(entries);
        return sorted(shared, entries, 0)
            .into_iter()
            .map(|(_, at)| at)
            .collect();
    }
    let half = entries.len() / 2;
    let (low, high) = entries.split_at(half);
    let (a, b) = crate::parallel::join(|| shared_with_first(low), || shared_with_first(high));
    let shared = a.min(b);
    let (low, high) =
        crate::parallel::join(|| sorted(shared, low, 0), || sorted(shared, high, half));
    let mut out = Vec::with_capacity(entries.len());
    let (mut low, mut high) = (low.into_iter().peekable(), high.into_iter().peekable());
    loop {
        let next = match (low.peek(), high.peek()) {
            (Some(l), Some(h)) if order(l, h).is_gt() => high.next(),
            (Some(_), _) => low.next(),
            (None, _) => high.next(),
        };
        match next {
            Some((_, at)) => out.push(at),
            None => return out,
        }
    }
}

/// `items` in the order `order` gives (a permutation of their positions).
fn arrange<T>(items: Vec<T>, order: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.iter().filter_map(|&i| slots[i].take()).collect()
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
    let mut groups_of = FxHashMap::default();
    for (id, e) in entries.iter().enumerate() {
        add_memberships(&mut groups_of, id, e);
    }
    groups_of
}

/// Records the members of entry `id` (when it has any), in the order of its values.
fn add_memberships(groups_of: &mut FxHashMap<Dn, Vec<Membership>>, id: EntryId, e: &Entry) {
    for value in e.get("member").into_iter().flatten() {
        if let Some(m) = value.as_str().and_then(|m| Dn::parse(m).ok()) {
            groups_of.entry(m).or_default().push(Membership {
                group: id,
                value: value.clone(),
            });
        }
    }
}

/// A snapshot organised while its entries arrive, one at a time, from a live read.
///
/// A read from a server leaves one core waiting on the server, and an entry just decoded is
/// still in the cache: organising it then (its DN, its memberships, its index keys and whatever
/// `tag` works out from it) costs about half what a pass over the finished snapshot does, and
/// keeps that work off the time after the read. Positions are those of arrival until `finish`
/// sorts the entries by DN and renumbers everything, so the result is exactly what
/// `Snapshot::new`, `Snapshot::index` and a pass of `tag` over the entries give.
pub struct Builder<T, F> {
    entries: Vec<Entry>,
    by_dn: FxHashMap<Dn, EntryId>,
    groups_of: FxHashMap<Dn, Vec<Membership>>,
    /// The smallest DN that arrived twice, which is the one `Snapshot::new` reports.
    duplicate: Option<Dn>,
    index: Option<(IndexConfig, Indexes)>,
    key: String,
    tag: F,
    tags: Vec<T>,
}

/// What a [`Builder`] made: the snapshot, its lookups when it was given an `IndexConfig`, and
/// each entry's tag, in entry order.
pub struct Organised<T> {
    pub snapshot: Snapshot,
    pub index: Option<Indexes>,
    pub tags: Vec<T>,
}

impl<T: Copy, F: FnMut(&Entry) -> T> Builder<T, F> {
    /// A builder that indexes entries with `index` when there is one, and tags each with `tag`.
    pub fn new(index: Option<IndexConfig>, tag: F) -> Self {
        Builder {
            entries: Vec::new(),
            by_dn: FxHashMap::default(),
            groups_of: FxHashMap::default(),
            duplicate: None,
            index: index.map(|config| (config, Indexes::default())),
            key: String::new(),
            tag,
            tags: Vec::new(),
        }
    }

    /// Organises one more entry.
    pub fn push(&mut self, entry: Entry) {
        let id = self.entries.len();
        if self.by_dn.insert(entry.dn.clone(), id).is_some()
            && self.duplicate.as_ref().is_none_or(|d| entry.dn < *d)
        {
            self.duplicate = Some(entry.dn.clone());
        }
        add_memberships(&mut self.groups_of, id, &entry);
        if let Some((config, ix)) = &mut self.index {
            index_addresses(&mut ix.addresses, &mut self.key, config, id, &entry);
            index_names(
                &mut ix.accounts,
                &mut ix.names,
                &mut self.key,
                config,
                id,
                &entry,
            );
        }
        self.tags.push((self.tag)(&entry));
        self.entries.push(entry);
    }

    /// Sorts the entries by DN and renumbers what refers to them; fails as `Snapshot::new`
    /// does when a DN arrived twice.
    pub fn finish(self) -> Result<Organised<T>, DuplicateDn> {
        if let Some(dn) = self.duplicate {
            return Err(DuplicateDn(dn));
        }
        let order = dn_order(&self.entries);
        let mut at = vec![0; order.len()];
        for (position, arrival) in order.iter().enumerate() {
            at[*arrival] = position;
        }
        // The entries move into place while the lookups are renumbered, side by side: this
        // is the last thing a live read waits for.
        let Builder {
            entries,
            by_dn,
            groups_of,
            index,
            tags,
            ..
        } = self;
        let at = &at;
        let lookups = Lookups {
            by_dn,
            groups_of,
            index: index.map(|(_, ix)| ix),
        };
        let (lookups, (entries, tags)) = crate::parallel::join(
            || renumber(at, lookups),
            || {
                let tags: Vec<T> = order.iter().map(|arrival| tags[*arrival]).collect();
                (arrange(entries, &order), tags)
            },
        );
        Ok(Organised {
            snapshot: Snapshot {
                entries,
                by_dn: lookups.by_dn,
                groups_of: lookups.groups_of,
            },
            index: lookups.index,
            tags,
        })
    }
}

/// What refers to entries by position.
struct Lookups {
    by_dn: FxHashMap<Dn, EntryId>,
    groups_of: FxHashMap<Dn, Vec<Membership>>,
    index: Option<Indexes>,
}

/// The lookups a [`Builder`] made by position of arrival, by position in DN order: `at` gives
/// each arrival's position.
fn renumber(at: &[EntryId], mut lookups: Lookups) -> Lookups {
    for id in lookups.by_dn.values_mut() {
        *id = at[*id];
    }
    for memberships in lookups.groups_of.values_mut() {
        for m in memberships.iter_mut() {
            m.group = at[m.group];
        }
        // Stable: one group's values stay in their order, as `memberships` lists them.
        memberships.sort_by_key(|m| m.group);
    }
    if let Some(ix) = &mut lookups.index {
        for map in [&mut ix.addresses, &mut ix.accounts, &mut ix.names] {
            for postings in map.values_mut() {
                for id in postings.iter_mut() {
                    *id = at[*id];
                }
                postings.sort_unstable();
            }
        }
    }
    lookups
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
#[derive(Debug, Default, PartialEq, Eq)]
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

    /// A builder fed entries in any order organises them exactly as `Snapshot::new`,
    /// `Snapshot::index` and a pass over the sorted entries do.
    #[test]
    fn entries_organised_as_they_arrive_are_organised_as_a_whole() {
        let n = 2_900;
        let entries: Vec<Entry> = (0..n)
            .map(|i| {
                let e = Entry::new(dn(&format!("CN=Person {i},DC=acme")))
                    .with("proxyAddresses", &format!("SMTP:p{}@acme.com", i % 1_000))
                    .with("proxyAddresses", &format!("smtp:P{}@Acme.com", i % 700))
                    .with("sAMAccountName", &format!("p{}", i % 900))
                    .with("cn", &format!("Person  {}", i % 800));
                if i % 10 == 0 {
                    // One member in two spellings, and one that is in another group too.
                    e.with("member", &format!("cn=person {},dc=acme", (i + 1) % n))
                        .with("member", &format!("CN=Person {},DC=acme", (i + 1) % n))
                        .with("member", &format!("CN=Person {},DC=acme", (i + 11) % n))
                } else {
                    e
                }
            })
            .collect();
        let whole = Snapshot::new(entries.clone()).unwrap();
        let tag = |e: &Entry| e.attrs.len() + e.dn.to_string().len();
        // Arrival in a stride through the entries, as a server's order is not DN order.
        let mut builder = Builder::new(Some(config()), tag);
        for i in 0..entries.len() {
            builder.push(entries[(i * 7_919) % entries.len()].clone());
        }
        let built = builder.finish().unwrap();
        assert_eq!(built.snapshot.entries(), whole.entries());
        for (id, e) in whole.entries().iter().enumerate() {
            assert_eq!(built.snapshot.id_of(&e.dn), Some(id));
            assert_eq!(built.snapshot.groups_of(&e.dn), whole.groups_of(&e.dn));
        }
        assert!(
            whole.entries().iter().any(|e| {
                let groups = whole.groups_of(&e.dn);
                groups.first().map(|m| m.group) != groups.last().map(|m| m.group)
            }),
            "some entry is in several groups"
        );
        assert_eq!(built.index, Some(whole.index(&config())));
        let tags: Vec<usize> = whole.entries().iter().map(tag).collect();
        assert_eq!(built.tags, tags);

        // DNs that arrive twice: the smallest is reported, as `Snapshot::new` reports it.
        let mut twice = entries.clone();
        twice.push(Entry::new(dn("cn=person 2000,dc=acme")));
        twice.push(Entry::new(dn("cn=person 1000,dc=acme")));
        let mut builder = Builder::new(None, |_| ());
        for e in &twice {
            builder.push(e.clone());
        }
        let err = builder.finish().err().map(|d| d.0);
        assert_eq!(err, Some(dn("CN=Person 1000,DC=acme")));
        assert_eq!(err, Snapshot::new(twice).err().map(|d| d.0));
    }

    /// The order of `dn_order` is `Dn::cmp`'s, where DNs share a base, tie on the bytes it
    /// compares first, begin one another, or share nothing.
    #[test]
    fn entries_are_ordered_exactly_as_their_dns_compare() {
        let long = "A Very Long Common Name That Runs Past Thirty-Two Bytes";
        let texts = [
            format!("CN={long} 2,OU=Users,DC=acme,DC=test"),
            format!("CN={long} 10,OU=Users,DC=acme,DC=test"),
            format!("CN={long},OU=Users,DC=acme,DC=test"),
            "OU=Users,DC=acme,DC=test".to_string(),
            "DC=acme,DC=test".to_string(),
            "CN=b,DC=acme,DC=test".to_string(),
            "CN=B+UID=x,DC=acme,DC=test".to_string(),
            r"CN=a\,b,DC=acme,DC=test".to_string(),
            "CN=é,DC=acme,DC=test".to_string(),
        ];
        let mut expected: Vec<Dn> = texts.iter().map(|t| dn(t)).collect();
        expected.sort();
        for rotation in 0..texts.len() {
            let mut entries: Vec<Entry> = texts.iter().map(|t| Entry::new(dn(t))).collect();
            entries.rotate_left(rotation);
            let sorted: Vec<Dn> = Snapshot::new(entries)
                .unwrap()
                .entries()
                .iter()
                .map(|e| e.dn.clone())
                .collect();
            assert_eq!(sorted, expected, "arriving from {rotation}");
        }
        // Different bases: nothing shared.
        let mut entries = vec![Entry::new(dn("O=Acme")), Entry::new(dn("C=us"))];
        entries.push(Entry::new(dn("CN=x,O=Acme")));
        let sorted: Vec<String> = Snapshot::new(entries)
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.dn.to_string())
            .collect();
        assert_eq!(sorted, ["C=us", "O=Acme", "CN=x,O=Acme"]);
        assert!(Snapshot::new(Vec::new()).unwrap().is_empty());
    }

    /// A snapshot large enough to be sorted in halves is in the same order as one sort gives:
    /// DNs that tie past the first bytes compared, and the same DN twice (in arrival order).
    #[test]
    fn halves_sorted_side_by_side_merge_into_one_order() {
        let long = "A Very Long Common Name That Runs Past Thirty-Two Bytes";
        let n = 25_000;
        let entries: Vec<Entry> = (0..n)
            .map(|i| (i * 7_919) % n)
            .map(|i| {
                let text = match i % 4 {
                    0 => format!("CN={long} {},OU=Users,DC=acme,DC=test", i % 3_000),
                    1 => format!("cn={} {long},ou=users,dc=acme,dc=test", i % 2_000),
                    2 => format!("CN=E{i},DC=acme,DC=test"),
                    _ => format!("OU=Unit {},DC=acme,DC=test", i % 500),
                };
                Entry::new(dn(&text))
            })
            .collect();
        let mut expected: Vec<EntryId> = (0..n).collect();
        expected.sort_by(|a, b| entries[*a].dn.cmp(&entries[*b].dn).then(a.cmp(b)));
        assert!(n >= SPLIT, "large enough to be split");
        assert_eq!(dn_order(&entries), expected);
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
