//! Matching: who in the destination each source person already is, and which scenario follows.
//!
//! The rules are Microsoft's Migration Wizard for Lotus Notes, made reviewable: hard match on a
//! user's proxy addresses, soft match on sAMAccountName and CN (proposed, never acted on unless
//! confirmed in the plan file), contacts found by address to be merged, pins in the plan file
//! overriding everything, and ambiguity reported, never guessed. `match_all` is a pure function of
//! the spec and the two snapshots: no I/O, no clock, no randomness, and its output is sorted.

pub mod flavor;
pub mod person;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;

use crate::directory::address::address_key;
use crate::directory::snapshot::{Builder, Organised};
use crate::directory::{Dn, Entry, EntryId, Indexes, Snapshot};
use crate::spec::{Mode, Spec};

pub use person::Person;
pub use rules::{Class, DestinationRules, SourceRules};

/// How a match was made.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Hard,
    Soft,
    Pinned,
}

/// What a match was made on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Smtp,
    Notes,
    #[serde(rename = "samaccountname")]
    SamAccountName,
    Cn,
    Confirmed,
    Remigrate,
    /// The link an earlier apply recorded when it created or converted the object for this
    /// person (the state database), used when no address matches yet.
    State,
}

impl Via {
    pub fn describe(self) -> &'static str {
        match self {
            Via::Smtp => "SMTP proxy",
            Via::Notes => "NOTES proxy",
            Via::SamAccountName => "sAMAccountName",
            Via::Cn => "CN",
            Via::Confirmed => "confirmed pin",
            Via::Remigrate => "remigration pin",
            Via::State => "link recorded by an earlier apply",
        }
    }
}

/// A destination object that matched, or might.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub id: EntryId,
    pub class: Class,
    pub via: Via,
    /// The value that matched (the address, account name or CN).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing usable found: a new mailbox.
    New,
    Matched {
        candidate: Candidate,
        by: By,
    },
    /// Two or more possibilities; nothing is done.
    Ambiguous {
        reason: String,
        candidates: Vec<Candidate>,
    },
    /// Interactive mode found soft candidates that no pin confirms.
    NeedsConfirmation,
    /// A pin the plan file holds cannot be honoured (it names a contact as the mailbox, say).
    Error(String),
}

/// The result of matching one source person.
#[derive(Debug, Clone)]
pub struct PersonMatch {
    pub person: Person,
    pub outcome: Outcome,
    /// Contacts that hold one of the person's addresses, in DN order.
    pub contacts: Vec<Candidate>,
    /// Soft candidates (also set when a hard match exists? no: only when none does).
    pub soft: Vec<Candidate>,
    /// Warnings about this person, in the order found.
    pub warnings: Vec<String>,
}

impl PersonMatch {
    /// DESIGN's scenario number, when the outcome has one.
    pub fn scenario(&self) -> Option<u8> {
        let with_contacts = !self.contacts.is_empty();
        match &self.outcome {
            Outcome::New => Some(if with_contacts { 3 } else { 1 }),
            Outcome::Matched { candidate, .. } => match candidate.class {
                Class::NtAccount => Some(if with_contacts { 4 } else { 2 }),
                Class::MailEnabledUser => Some(5),
                Class::MailboxUser => Some(6),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Everything matching found, persons in source DN order.
#[derive(Debug)]
pub struct Matches {
    pub persons: Vec<PersonMatch>,
    /// Conflicts between persons with more claimants than each is told about by name: one
    /// line each, naming every claimant (see [`NAMED_CLAIMANTS`]).
    pub conflicts: Vec<String>,
    /// Class of every destination entry, by entry id.
    pub classes: Vec<Class>,
    pub index: Indexes,
}

/// The source entries that are persons in this wave, in DN order.
pub fn select_persons(spec: &Spec, source: &Snapshot, rules: &SourceRules) -> Vec<Person> {
    let src = &spec.source;
    let ignored: BTreeSet<&Dn> = spec
        .matching
        .ignore_sources
        .iter()
        .map(|l| &l.value)
        .collect();
    let include: BTreeSet<&Dn> = src.include.iter().collect();
    let exclude: BTreeSet<&Dn> = src.exclude.iter().collect();
    let targets: BTreeSet<&Dn> = src.targets.iter().collect();
    source
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| src.base.as_ref().is_none_or(|b| e.dn.is_within(b)))
        .filter(|(_, e)| include.is_empty() || include.contains(&e.dn))
        .filter(|(_, e)| targets.is_empty() || targets.contains(&e.dn))
        .filter(|(_, e)| !exclude.contains(&e.dn) && !ignored.contains(&e.dn))
        .filter(|(_, e)| rules.person_filter.matches(e))
        .map(|(id, e)| Person::from_entry(id, e, rules, src.notes_domain.as_deref()))
        .collect()
}

/// Matches every person of the wave against the destination. `links` are the objects earlier
/// applies created or converted for persons (see `plan::History`): one stands in for a hard
/// match while the person's addresses have not reached it yet.
pub fn match_all(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    links: &BTreeMap<Dn, Dn>,
) -> Matches {
    match_prepared(spec, source, destination, links, Prepared::default())
}

/// What matching works out before it compares anyone, when a caller worked it out already
/// (from the same plan file and snapshots), while it still waited for a directory.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The wave's persons, from `select_persons`.
    pub persons: Option<Vec<Person>>,
    /// What the destination's entries are, and its lookups.
    pub destination: Option<DestinationFacts>,
}

/// What matching works out about every destination entry before it compares anyone.
#[derive(Debug)]
pub struct DestinationFacts {
    /// Each entry's class (from [`DestinationPass::class_of`]), in entry order.
    pub classes: Vec<Class>,
    /// The destination's lookups (over [`DestinationPass::index_config`]).
    pub index: Indexes,
}

impl DestinationFacts {
    /// The snapshot a [`DestinationPass::builder`] organised, and the facts it worked out.
    pub fn from_organised(organised: Organised<Class>) -> (Snapshot, Option<Self>) {
        let facts = organised.index.map(|index| DestinationFacts {
            classes: organised.tags,
            index,
        });
        (organised.snapshot, facts)
    }
}

/// `match_all`, taking from `prepared` what is there and working out the rest.
pub fn match_prepared(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    links: &BTreeMap<Dn, Dn>,
    prepared: Prepared,
) -> Matches {
    match_on(
        spec,
        source,
        destination,
        links,
        prepared,
        crate::parallel::cores(),
        address_hash,
    )
}

/// How the plan file classifies and indexes destination entries: what matching works out for
/// every destination entry before it compares anyone, one entry at a time, so that a reader can
/// do it as each entry arrives.
pub struct DestinationPass<'s> {
    rules: DestinationRules,
    ignored: rustc_hash::FxHashSet<&'s Dn>,
}

impl<'s> DestinationPass<'s> {
    pub fn for_spec(spec: &'s Spec) -> Self {
        DestinationPass {
            rules: DestinationRules::for_spec(spec),
            ignored: spec
                .matching
                .ignore_destinations
                .iter()
                .map(|l| &l.value)
                .collect(),
        }
    }

    /// The entry's class; an entry the plan file says to ignore is `Other`, whatever it is.
    pub fn class_of(&self, entry: &Entry) -> Class {
        if self.ignored.contains(&entry.dn) {
            Class::Other
        } else {
            self.rules.classify(entry)
        }
    }

    /// Which attributes feed the destination's lookups.
    pub fn index_config(&self) -> &crate::directory::IndexConfig {
        &self.rules.index
    }

    /// A builder that classifies and indexes destination entries as they arrive, as matching
    /// would over the finished snapshot.
    pub fn builder(&self) -> Builder<Class, impl FnMut(&Entry) -> Class + Send + '_> {
        Builder::new(Some(self.index_config().clone()), |e: &Entry| {
            self.class_of(e)
        })
    }
}

/// The hash persons' addresses are grouped by before their keys are compared.
fn address_hash(key: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// `match_prepared` on up to `cores` threads; the matches are the same for any number, and
/// for any `hash` of addresses.
fn match_on(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    links: &BTreeMap<Dn, Dn>,
    prepared: Prepared,
    cores: usize,
    hash: fn(&str) -> u64,
) -> Matches {
    let src_rules = SourceRules::for_spec(spec);
    // Classifying, indexing and selecting persons are independent passes over large
    // directories: they run side by side. Each produces its result in entry order, so the
    // outcome is exactly that of a sequential run.
    let Prepared {
        persons,
        destination: facts,
    } = prepared;
    let (DestinationFacts { classes, index }, persons) = std::thread::scope(|scope| {
        let persons =
            scope.spawn(|| persons.unwrap_or_else(|| select_persons(spec, source, &src_rules)));
        let facts = facts.unwrap_or_else(|| {
            let pass = DestinationPass::for_spec(spec);
            let config = pass.index_config().clone();
            let index = scope.spawn(move || destination.index(&config));
            let classes = destination
                .entries()
                .iter()
                .map(|e| pass.class_of(e))
                .collect();
            DestinationFacts {
                classes,
                index: join(index.join()),
            }
        });
        (facts, join(persons.join()))
    });

    // Looked up once per person, never walked: a hash map, not a tree of DN comparisons.
    let mut pins: rustc_hash::FxHashMap<&Dn, Vec<(&Dn, Via)>> = Default::default();
    for p in &spec.matching.confirmed {
        pins.entry(&p.source.value)
            .or_default()
            .push((&p.destination.value, Via::Confirmed));
    }
    for p in &spec.matching.remigrate {
        pins.entry(&p.source.value)
            .or_default()
            .push((&p.destination.value, Via::Remigrate));
    }

    // Each person is matched on their own (conflicts between them are resolved next), so runs
    // of persons are matched side by side.
    let flavor = flavor::of(spec.destination.flavor);
    let mut out: Vec<PersonMatch> = crate::parallel::map(persons, cores, 1_000, |person| {
        let person_pins = pins.get(&person.dn).map(Vec::as_slice).unwrap_or(&[]);
        let link = links.get(&person.dn);
        match_person(
            person,
            person_pins,
            link,
            spec.matching.mode,
            Destination {
                snapshot: destination,
                classes: &classes,
                index: &index,
                flavor,
            },
        )
    });
    let conflicts = resolve_conflicts(&mut out, destination, hash);
    Matches {
        persons: out,
        classes,
        index,
        conflicts,
    }
}

/// A scoped thread's result; a panic in it is re-raised here, as if it had run inline.
fn join<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// What one person is matched against.
struct Destination<'a> {
    snapshot: &'a Snapshot,
    classes: &'a [Class],
    index: &'a Indexes,
    flavor: &'a dyn flavor::Classification,
}

fn match_person(
    person: Person,
    pins: &[(&Dn, Via)],
    link: Option<&Dn>,
    mode: Mode,
    d: Destination<'_>,
) -> PersonMatch {
    let Destination {
        snapshot: destination,
        classes,
        index,
        flavor,
    } = d;
    let mut hard: Vec<Candidate> = Vec::new();
    let mut contacts: Vec<Candidate> = Vec::new();
    // Objects holding one of the person's addresses that keep it from being theirs (a
    // Carbonio list, or another account's alias).
    let mut conflicting: Vec<Candidate> = Vec::new();
    for (kind, addr) in person.addresses() {
        let via = if kind == "NOTES" {
            Via::Notes
        } else {
            Via::Smtp
        };
        for &id in index.by_address(kind, addr) {
            let c = Candidate {
                id,
                class: classes[id],
                via,
                value: addr.to_string(),
            };
            if flavor.holds_against(c.class, destination.entry(id), addr) {
                push_unique(&mut conflicting, c);
            } else if c.class.is_user() {
                push_unique(&mut hard, c);
            } else if c.class == Class::Contact {
                push_unique(&mut contacts, c);
            }
        }
    }
    contacts.sort_by_key(|c| c.id);
    // An account that is the person's by its name may hold their other addresses as aliases.
    conflicting.retain(|c| !hard.iter().any(|h| h.id == c.id));
    let mut warnings = person.rejected.clone();
    let mut soft = Vec::new();

    let outcome = if !pins.is_empty() {
        let mut targets: Vec<Candidate> = Vec::new();
        for (dn, via) in pins {
            // Pins to entries that do not exist are refused earlier, by `spec::check_against`.
            if let Some(id) = destination.id_of(dn) {
                push_unique(
                    &mut targets,
                    Candidate {
                        id,
                        class: classes[id],
                        via: *via,
                        value: dn.to_string(),
                    },
                );
            }
        }
        match targets.as_slice() {
            [] => Outcome::Error("the pinned destination object does not exist".into()),
            [t] if t.via == Via::Remigrate && t.class != Class::MailboxUser => {
                Outcome::Error(format!(
                    "remigration target {} is a {}, not a mailbox user",
                    destination.entry(t.id).dn,
                    t.class.describe()
                ))
            }
            [t] if !t.class.is_user() => Outcome::Error(format!(
                "confirmed destination {} is a {}; a person can only become a user",
                destination.entry(t.id).dn,
                t.class.describe()
            )),
            [t] => {
                if let Some(h) = hard.iter().find(|h| h.id != t.id) {
                    warnings.push(format!(
                        "the pin overrides a hard match on {} {} ({})",
                        h.via.describe(),
                        h.value,
                        destination.entry(h.id).dn
                    ));
                }
                if t.via == Via::Remigrate {
                    // 6b: items only, into a mailbox that is not this person's; contacts stay.
                    contacts.clear();
                }
                Outcome::Matched {
                    candidate: t.clone(),
                    by: By::Pinned,
                }
            }
            many => Outcome::Ambiguous {
                reason: format!(
                    "the plan file pins this person to {} different destination objects",
                    many.len()
                ),
                candidates: many.to_vec(),
            },
        }
    } else if !conflicting.is_empty() {
        let held: Vec<String> = conflicting
            .iter()
            .map(|c| {
                let dn = &destination.entry(c.id).dn;
                if c.class == Class::Group {
                    format!("{} is held by the distribution list {dn}", c.value)
                } else {
                    format!("{} is an alias of {} {dn}", c.value, c.class.describe())
                }
            })
            .collect();
        let mut candidates = hard;
        candidates.extend(conflicting);
        Outcome::Ambiguous {
            reason: held.join("; "),
            candidates,
        }
    } else if !hard.is_empty() {
        let mut ids: Vec<EntryId> = hard.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        if ids.len() == 1 {
            hard.sort();
            Outcome::Matched {
                candidate: hard.swap_remove(0),
                by: By::Hard,
            }
        } else {
            Outcome::Ambiguous {
                reason: format!("{} users hold this person's addresses", ids.len()),
                candidates: hard,
            }
        }
    } else if let Some((id, dn)) = link
        .and_then(|dn| Some((destination.id_of(dn)?, dn)))
        .filter(|(id, _)| classes[*id].is_user())
    {
        // An earlier apply made this object for this person and was stopped before the
        // person's addresses reached it: finish that, rather than make a second mailbox.
        Outcome::Matched {
            candidate: Candidate {
                id,
                class: classes[id],
                via: Via::State,
                value: dn.to_string(),
            },
            by: By::Pinned,
        }
    } else {
        for name in &person.short_names {
            for &id in index.by_account(name) {
                if classes[id].is_user() {
                    push_unique(
                        &mut soft,
                        Candidate {
                            id,
                            class: classes[id],
                            via: Via::SamAccountName,
                            value: name.clone(),
                        },
                    );
                }
            }
        }
        for name in &person.full_names {
            for &id in index.by_name(name) {
                if classes[id].is_user() {
                    push_unique(
                        &mut soft,
                        Candidate {
                            id,
                            class: classes[id],
                            via: Via::Cn,
                            value: name.clone(),
                        },
                    );
                }
            }
        }
        soft.sort_by_key(|c| c.id);
        if soft.is_empty() || mode == Mode::Batch {
            for c in &soft {
                // The account name by the attribute this destination keeps it in (`uid` in
                // Carbonio and LDAP, `sAMAccountName` in Active Directory).
                let via = match c.via {
                    Via::SamAccountName => flavor
                        .index()
                        .account_attrs
                        .first()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| c.via.describe().to_string()),
                    v => v.describe().to_string(),
                };
                warnings.push(format!(
                    "a new mailbox would duplicate {} {} (same {via} `{}`); confirm it in matching.confirmed to convert it instead",
                    c.class.describe(),
                    destination.entry(c.id).dn,
                    c.value
                ));
            }
            Outcome::New
        } else {
            Outcome::NeedsConfirmation
        }
    };
    PersonMatch {
        person,
        outcome,
        contacts,
        soft,
        warnings,
    }
}

/// Adds a candidate unless one for the same entry is there already (the first reason wins).
fn push_unique(list: &mut Vec<Candidate>, c: Candidate) {
    if !list.iter().any(|x| x.id == c.id) {
        list.push(c);
    }
}

/// How many of the other claimants each claimant of a conflict is told about by name.
pub const NAMED_CLAIMANTS: usize = 5;

/// Two persons claiming one destination object, or one address, are both ambiguous. Returns
/// one line per conflict with more than [`NAMED_CLAIMANTS`] claimants, naming them all.
fn resolve_conflicts(
    persons: &mut [PersonMatch],
    destination: &Snapshot,
    hash: fn(&str) -> u64,
) -> Vec<String> {
    // Who claims what, as (object, person) and (address hash, person) pairs sorted once:
    // nearly every object and address has one claimant, and grouping by sorting makes no key
    // strings or map nodes for them.
    let mut claims: Vec<(EntryId, usize)> = Vec::new();
    let mut hashes: Vec<(u64, usize)> = Vec::new();
    let mut key = String::new();
    for (i, p) in persons.iter().enumerate() {
        if let Outcome::Matched { candidate, .. } = &p.outcome {
            claims.push((candidate.id, i));
        }
        claims.extend(p.contacts.iter().map(|c| (c.id, i)));
        for (kind, address) in p.person.addresses() {
            key.clear();
            crate::directory::address::push_address_key(&mut key, kind, address);
            hashes.push((hash(&key), i));
        }
    }
    claims.sort_unstable();
    claims.dedup();
    hashes.sort_unstable();
    hashes.dedup();

    let names = |who: &[usize]| -> String {
        who.iter()
            .map(|&i| persons[i].person.dn.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    // What each claimant is told names the first few others and counts the rest; a conflict
    // with more claimants than that is also one plan-wide record naming them all, once. (Every
    // claimant naming every other took memory and output quadratic in their number: 4,000
    // persons sharing one address made 400 MB of plan text.)
    let mut conflicts = Vec::new();
    let mut told = |what: String, who: &[usize]| -> String {
        let n = who.len();
        let head = format!("{what} {n} source persons");
        if n <= NAMED_CLAIMANTS {
            return format!("{head}: {}", names(who));
        }
        conflicts.push(format!("{head}: {}", names(who)));
        format!(
            "{head}: {}; and {} more (the plan's error about {what_short} names them all)",
            names(&who[..NAMED_CLAIMANTS]),
            n - NAMED_CLAIMANTS,
            what_short = what
                .trim_end_matches(" is claimed by")
                .trim_end_matches(" is held by"),
        )
    };
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for run in claims.chunk_by(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            let who: Vec<usize> = run.iter().map(|&(_, i)| i).collect();
            let reason = told(
                format!("{} is claimed by", destination.entry(run[0].0).dn),
                &who,
            );
            for &i in &who {
                reasons.entry(i).or_default().push(reason.clone());
            }
        }
    }
    // Persons whose address hashes meet share an address, or (rarely) only a hash: their
    // keys are compared for real, and the shared ones reported in key order.
    let mut shared: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for run in hashes.chunk_by(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            for &(h, i) in run {
                for (kind, address) in persons[i].person.addresses() {
                    let key = address_key(kind, address);
                    if hash(&key) == h {
                        let who = shared.entry(key).or_default();
                        if who.last() != Some(&i) {
                            who.push(i);
                        }
                    }
                }
            }
        }
    }
    for (key, who) in &shared {
        if who.len() > 1 {
            let shown = key.split_once(':').map(|(_, a)| a).unwrap_or(key);
            let reason = told(format!("address {shown} is held by"), who);
            for &i in who {
                reasons.entry(i).or_default().push(reason.clone());
            }
        }
    }
    for (i, rs) in reasons {
        let p = &mut persons[i];
        let mut candidates: Vec<Candidate> = Vec::new();
        if let Outcome::Matched { candidate, .. } = &p.outcome {
            candidates.push(candidate.clone());
        }
        candidates.extend(p.contacts.iter().cloned());
        p.outcome = Outcome::Ambiguous {
            reason: rs.join("; "),
            candidates,
        };
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{AttrName, Value};

    #[test]
    fn persons_matched_side_by_side_match_as_on_one_thread() {
        let mut inputs = crate::generate::generated_inputs(3_000, 8_000, 3);
        // Two source persons share an address, as when a Notes person was copied.
        let mut entries = inputs.source.entries().to_vec();
        let with_mail: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].text("mail").is_some())
            .take(2)
            .collect();
        let shared = entries[with_mail[0]]
            .text("mail")
            .unwrap_or_default()
            .to_string();
        entries[with_mail[1]].add(AttrName::new_unchecked("mail"), Value::text(shared));
        inputs.source = Snapshot::new(entries).unwrap_or_else(|d| panic!("{d:?}"));
        let on = |cores, hash| {
            let m = match_on(
                &inputs.spec,
                &inputs.source,
                &inputs.destination,
                &inputs.history.links,
                Prepared::default(),
                cores,
                hash,
            );
            format!("{:?}", m.persons)
        };
        let one = on(1, address_hash);
        // Hard, soft and contact matches, and conflicts between persons, all take part.
        for scenario in ["Hard", "contacts: [Candidate", "Ambiguous", "is held by"] {
            assert!(one.contains(scenario), "{scenario}");
        }
        assert_eq!(on(2, address_hash), one);
        assert_eq!(on(3, address_hash), one);
        // Addresses are grouped by hash before their keys are compared: with every address
        // in one group, only the really shared ones are conflicts, still in key order.
        assert_eq!(on(2, |_| 7), one);
        // Persons chosen, and destination entries classified and indexed, before matching
        // (while the destination is read, in the order the server sends it) match the same.
        let rules = SourceRules::for_spec(&inputs.spec);
        let chosen = select_persons(&inputs.spec, &inputs.source, &rules);
        let pass = DestinationPass::for_spec(&inputs.spec);
        let mut builder = pass.builder();
        for e in inputs.destination.entries().iter().rev() {
            builder.push(e.clone());
        }
        let organised = builder.finish().unwrap_or_else(|d| panic!("{d:?}"));
        let (snapshot, facts) = DestinationFacts::from_organised(organised);
        let prepared = Prepared {
            persons: Some(chosen),
            destination: facts,
        };
        let early = match_prepared(
            &inputs.spec,
            &inputs.source,
            &snapshot,
            &inputs.history.links,
            prepared,
        );
        let late = match_all(
            &inputs.spec,
            &inputs.source,
            &inputs.destination,
            &inputs.history.links,
        );
        assert_eq!(early.classes, late.classes);
        assert_eq!(early.index, late.index);
        assert_eq!(format!("{:?}", early.persons), one);
    }
}
