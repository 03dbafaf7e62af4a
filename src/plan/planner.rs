//! The planner: turns matches into subjects and a dependency graph of actions.
//!
//! Pure: a function of the spec, the two snapshots and the matches. It reads nothing, writes
//! nothing, and iterates only ordered collections, so the same inputs give the same plan, byte for
//! byte. Each scenario's action chain follows DESIGN's table, ordered so that a failure at any
//! step leaves mail flowing (the mailbox exists before its contact goes; the contact's
//! memberships are on the mailbox before the contact is deleted).

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::directory::address::{address_key, smtp_domain};
use crate::directory::snapshot::name_key;
use crate::directory::{AttrName, Attrs, Dn, Entry, ProxyAddress, Snapshot, Value, ValueSet};
use crate::items::{Inventories, Inventory, ItemKind};
use crate::matching::{By, Candidate, Class, Matches, Outcome, PersonMatch};
use crate::spec::{MergePolicy, Role, Spec, Template, TemplatePart};

use super::addresses::AddressSet;
use super::flavor::{Conversion, DestinationFlavor, NewGroup, NewMailbox};
use super::history::History;
use super::model::*;

/// Violated plan-level preconditions: the plan cannot be made until they are fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the destination is not ready for this plan:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanError {
    pub problems: Vec<String>,
}

/// sAMAccountName is limited to 20 characters for user objects (pre-Windows 2000 logon name).
const SAM_MAX: usize = 20;

pub fn plan(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    matches: &Matches,
    history: &History,
) -> Result<Plan, PlanError> {
    plan_with_items(
        spec,
        source,
        destination,
        matches,
        history,
        &Inventories::new(),
    )
}

/// `plan`, with the item inventories gathered before planning: each planned person whose
/// inventory has new items gets its imports, after the action that makes its mailbox.
pub fn plan_with_items(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    matches: &Matches,
    history: &History,
    inventories: &Inventories,
) -> Result<Plan, PlanError> {
    plan_on(
        spec,
        source,
        destination,
        matches,
        history,
        inventories,
        crate::parallel::cores(),
    )
}

/// `plan_with_items` on up to `cores` threads; the plan is the same for any number.
fn plan_on(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
    matches: &Matches,
    history: &History,
    inventories: &Inventories,
    cores: usize,
) -> Result<Plan, PlanError> {
    let flavor = super::flavor::of(spec.destination.flavor);
    let mut problems = flavor.check_destination(spec, destination);
    for attr in spec.destination.mapping.keys() {
        if flavor.managed().iter().any(|m| attr.is(m)) {
            problems.push(format!(
                "destination.mapping sets `{attr}`, which mailplan manages itself (addresses, account names and mailbox attributes stay consistent only that way)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(PlanError { problems });
    }
    let mut p = Planner {
        spec,
        source,
        dest: destination,
        matches,
        history,
        flavor,
        taken_accounts: FxHashSet::default(),
        mapping: mapping(spec),
        reserved_accounts: matches
            .persons
            .iter()
            .flat_map(|p| p.person.short_names.iter().map(|n| name_key(n)))
            .collect(),
        taken_dns: FxHashSet::default(),
        subjects: Vec::new(),
        actions: Vec::new(),
        targets: FxHashMap::default(),
        inventories,
    };
    // Names are the one thing a person's plan takes from the others' (a second John Smith
    // gets `jsmith2`): they are chosen first, in person order. The rest of each person's plan
    // depends only on the inputs, so runs of persons are planned side by side and joined in
    // order, which gives exactly the plan one thread would.
    // The first choice of each name depends on the person and the destination only, and is
    // drafted side by side; only the check against names taken earlier in the wave is in order.
    let drafts = crate::parallel::map(
        matches.persons.iter().collect(),
        cores,
        1_000,
        |pm: &PersonMatch| matches!(pm.outcome, Outcome::New).then(|| p.draft_names(&pm.person)),
    );
    let names: Vec<Option<NewNames>> = drafts
        .into_iter()
        .map(|d| d.map(|d| p.new_names(d)))
        .collect();
    let work: Vec<(&PersonMatch, Option<NewNames>)> = matches.persons.iter().zip(names).collect();
    let runs = plan_runs(&p, work, cores);
    for run in runs {
        p.subjects.extend(run.subjects);
        p.actions.extend(run.actions);
        p.targets.extend(run.targets);
    }
    p.groups();
    let Planner {
        subjects, actions, ..
    } = p;
    // Bad items are those of the persons that get imports (an ambiguous person's items are not
    // looked at): `imports` puts them on the subject.
    let unmapped = unmapped_attributes(spec, source, &actions);
    let mut summary = Plan::summarise(&subjects, &actions);
    summary.warnings += unmapped.len();
    summary.max_deletes = Some(spec.safety.max_deletes);
    // A conflict between many persons is named in full once, here; each of them refers to it.
    let mut messages: Vec<Message> = matches
        .conflicts
        .iter()
        .map(|c| Message {
            level: Level::Error,
            text: c.clone(),
        })
        .collect();
    messages.extend(unmapped);
    Ok(Plan {
        format_version: FORMAT_VERSION.into(),
        messages,
        subjects,
        actions,
        summary,
    })
}

/// A warning for each attribute the plan file's mapping takes from the source that no source
/// entry has: every mailbox this plan creates or converts gets no value from it, and the
/// warning says how many that is. (A name close to one the source has is a misspelling, refused
/// earlier by `spec::check_against`.)
fn unmapped_attributes(spec: &Spec, source: &Snapshot, actions: &[Action]) -> Vec<Message> {
    let affected = actions
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                ActionKind::CreateMailbox
                    | ActionKind::ConvertNtAccount
                    | ActionKind::ConvertMailUser
            )
        })
        .count();
    let mut out = Vec::new();
    for (attr, uses) in crate::spec::missing_placeholders(spec, source) {
        for key in uses
            .iter()
            .filter(|u| u.key.starts_with("destination.mapping."))
            .map(|u| u.key.as_str())
            .collect::<BTreeSet<_>>()
        {
            out.push(Message {
                level: Level::Warning,
                text: format!(
                    "plan file: `{key}` takes `{{{attr}}}`, which no source entry has: {} {} this plan creates or converts {} no value from it",
                    affected,
                    if affected == 1 { "mailbox" } else { "mailboxes" },
                    if affected == 1 { "gets" } else { "get" },
                ),
            });
        }
    }
    out
}

/// `1 item`, `3 items`: a count with its noun in the right number, for messages.
fn noun(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Persons planned on one thread: what [`Planner::person`] adds for each, in order.
struct Run {
    subjects: Vec<Subject>,
    actions: Vec<Action>,
    targets: FxHashMap<Dn, (Dn, Option<String>)>,
}

/// Plans the persons (with their chosen names) in runs, one per core, each on a planner of
/// its own that shares the inputs; the runs come back in person order.
fn plan_runs<'a>(
    p: &Planner<'a>,
    work: Vec<(&'a PersonMatch, Option<NewNames>)>,
    cores: usize,
) -> Vec<Run> {
    crate::parallel::runs(work, cores, 1_000, |run| {
        let mut w = p.helper();
        for (pm, names) in run {
            w.person(pm, names);
        }
        Run {
            subjects: w.subjects,
            actions: w.actions,
            targets: w.targets,
        }
    })
}

struct Planner<'a> {
    spec: &'a Spec,
    source: &'a Snapshot,
    dest: &'a Snapshot,
    matches: &'a Matches,
    history: &'a History,
    /// The destination flavor's side of planning.
    flavor: &'static dyn DestinationFlavor,
    /// Account names given to objects this plan creates.
    taken_accounts: FxHashSet<String>,
    /// The attribute mapping for mailboxes, computed once.
    mapping: BTreeMap<AttrName, Option<Template>>,
    /// Short names of the wave's persons: a derived name (`jsmith2`) must not take another
    /// person's own short name, or that person would be renamed in turn.
    reserved_accounts: FxHashSet<String>,
    /// DNs of objects this plan creates.
    taken_dns: FxHashSet<Dn>,
    subjects: Vec<Subject>,
    actions: Vec<Action>,
    /// Source DN → (destination DN, id of the action that brings it into being, if any).
    targets: FxHashMap<Dn, (Dn, Option<String>)>,
    /// Item inventories by source DN.
    inventories: &'a Inventories,
}

/// The mailbox a person ends up with, as the planner tracks it through the chain.
struct Mailbox {
    dn: Dn,
    /// Its attributes once the create/convert action has run.
    attrs: Attrs,
    /// The action that creates or converts it.
    action: Option<String>,
}

/// The first choice of a new mailbox's names, and whether the destination already holds them.
struct NameDraft {
    wanted_sam: String,
    /// `wanted_sam` reduced to the characters an account name may hold.
    base: String,
    sam: String,
    sam_key: String,
    sam_at_destination: bool,
    name: String,
    dn: Dn,
    dn_at_destination: bool,
}

/// The account name and DN a new mailbox gets, chosen before persons are planned.
struct NewNames {
    /// The account name the person would have had, were it free.
    wanted_sam: String,
    sam: String,
    /// The DN's common name, were it free.
    name: String,
    /// The DN it would have had, were it free.
    wanted_dn: Dn,
    dn: Dn,
    /// Whether `sam` and `dn` differ from what was wanted (both were taken).
    sam_changed: bool,
    dn_changed: bool,
}

fn attr(name: &str) -> AttrName {
    AttrName::new_unchecked(name)
}

fn set1(v: impl Into<String>) -> ValueSet {
    ValueSet::from([Value::text(v.into())])
}

fn candidate_info(dest: &Snapshot, c: &Candidate) -> CandidateInfo {
    CandidateInfo {
        object: dest.entry(c.id).dn.clone(),
        class: c.class,
        via: c.via,
        value: c.value.clone(),
    }
}

impl<'a> Planner<'a> {
    /// A planner for a run of persons: the same inputs, nothing planned yet. Names are chosen
    /// before runs start, so it needs none of the taken-name sets.
    fn helper(&self) -> Planner<'a> {
        Planner {
            spec: self.spec,
            source: self.source,
            dest: self.dest,
            matches: self.matches,
            history: self.history,
            flavor: self.flavor,
            taken_accounts: FxHashSet::default(),
            mapping: self.mapping.clone(),
            reserved_accounts: FxHashSet::default(),
            taken_dns: FxHashSet::default(),
            subjects: Vec::new(),
            actions: Vec::new(),
            targets: FxHashMap::default(),
            inventories: self.inventories,
        }
    }

    /// The names a new mailbox for `person` would get if nothing else in the wave took them.
    fn draft_names(&self, person: &crate::matching::Person) -> NameDraft {
        let wanted_sam = self
            .flavor
            .wanted_account(self.spec, person)
            .or_else(|| person.short_names.first().cloned())
            .or_else(|| {
                person
                    .smtp
                    .first()
                    .and_then(|a| a.split('@').next())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| person.display_name().replace(' ', "."));
        let base = account_base(&wanted_sam);
        let sam: String = base.chars().take(SAM_MAX).collect();
        let sam_key = name_key(&sam);
        let sam_at_destination = !self.matches.index.by_account(&sam).is_empty();
        let name = person.display_name();
        let container = self
            .flavor
            .container_for(self.spec, person)
            .unwrap_or_else(|| self.spec.destination.container.clone());
        let dn = self.flavor.new_dn(&container, &name, &sam);
        let dn_at_destination = self.dest.contains(&dn);
        NameDraft {
            wanted_sam,
            base,
            sam,
            sam_key,
            sam_at_destination,
            name,
            dn,
            dn_at_destination,
        }
    }

    /// The drafted names, or the next free ones when the destination or an earlier person of
    /// the wave holds them.
    fn new_names(&mut self, draft: NameDraft) -> NewNames {
        let sam = if !draft.sam_at_destination && self.taken_accounts.insert(draft.sam_key) {
            draft.sam.clone()
        } else {
            self.next_account(&draft.base)
        };
        let sam_changed = !sam.eq_ignore_ascii_case(&draft.wanted_sam);
        let container = draft.dn.parent();
        // A flavor that names entries by account (Carbonio's `uid=`) names it by the one it got.
        let (wanted_dn, at_destination) = if sam == draft.sam {
            (draft.dn, draft.dn_at_destination)
        } else {
            let dn = self.flavor.new_dn(&container, &draft.name, &sam);
            let at = self.dest.contains(&dn);
            (dn, at)
        };
        let (dn, dn_changed) = if !at_destination && self.taken_dns.insert(wanted_dn.clone()) {
            (wanted_dn.clone(), false)
        } else {
            (self.next_dn(&container, &draft.name, &sam), true)
        };
        NewNames {
            wanted_sam: draft.wanted_sam,
            sam,
            name: draft.name,
            wanted_dn,
            dn,
            sam_changed,
            dn_changed,
        }
    }

    fn person(&mut self, pm: &PersonMatch, names: Option<NewNames>) {
        let person = &pm.person;
        let mut subject = Subject {
            source: person.dn.clone(),
            kind: SubjectKind::Person,
            name: person.display_name(),
            scenario: None,
            status: Status::Planned,
            matched: None,
            contacts: pm
                .contacts
                .iter()
                .map(|c| self.dest.entry(c.id).dn.clone())
                .collect(),
            candidates: pm
                .soft
                .iter()
                .map(|c| candidate_info(self.dest, c))
                .collect(),
            messages: pm
                .warnings
                .iter()
                .map(|w| Message {
                    level: Level::Warning,
                    text: w.clone(),
                })
                .collect(),
            bad_items: Vec::new(),
        };
        let first_action = self.actions.len();
        // Set when part of the person's items could not be planned: what could be planned
        // still is, and the person counts as not (wholly) migrated.
        let mut items_failed = false;
        match &pm.outcome {
            Outcome::Ambiguous { reason, candidates } => {
                subject.status = Status::Ambiguous;
                subject.contacts.clear();
                subject.candidates = candidates
                    .iter()
                    .map(|c| candidate_info(self.dest, c))
                    .collect();
                subject.messages.insert(
                    0,
                    Message {
                        level: Level::Error,
                        text: format!("ambiguous: {reason}; nothing is planned"),
                    },
                );
            }
            Outcome::NeedsConfirmation => {
                subject.status = Status::NeedsConfirmation;
                subject.messages.insert(
                    0,
                    Message {
                        level: Level::Warning,
                        text: "soft candidates need confirmation: add the right one to matching.confirmed (or run `mailplan plan --interactive`); nothing is planned until then".into(),
                    },
                );
            }
            Outcome::Error(text) => {
                subject.status = Status::Error;
                subject.messages.insert(
                    0,
                    Message {
                        level: Level::Error,
                        text: text.clone(),
                    },
                );
            }
            Outcome::New => {
                subject.scenario = pm.scenario();
                let created = names.and_then(|n| self.create_mailbox(pm, n, &mut subject));
                match created {
                    Some(mailbox) => {
                        self.contacts(pm, &mailbox, &mut subject);
                        items_failed = !self.imports(pm, &mailbox, &mut subject);
                    }
                    None => subject.status = Status::Error,
                }
            }
            Outcome::Matched { candidate, by } => {
                subject.scenario = pm.scenario();
                let entry = self.dest.entry(candidate.id);
                subject.matched = Some(MatchInfo {
                    object: entry.dn.clone(),
                    class: candidate.class,
                    by: *by,
                    via: candidate.via,
                    value: candidate.value.clone(),
                });
                let mailbox = match candidate.class {
                    Class::NtAccount => {
                        self.convert(pm, entry, ActionKind::ConvertNtAccount, &mut subject)
                    }
                    Class::MailEnabledUser => {
                        self.convert(pm, entry, ActionKind::ConvertMailUser, &mut subject)
                    }
                    Class::MailboxUser
                        if self.flavor.fills_matched()
                            && candidate.via != crate::matching::Via::Remigrate =>
                    {
                        Some(self.fill_matched(pm, entry, &mut subject))
                    }
                    _ => Some(Mailbox {
                        dn: entry.dn.clone(),
                        attrs: entry.attrs.clone(),
                        action: None,
                    }),
                };
                match mailbox {
                    Some(mailbox) => {
                        if candidate.via == crate::matching::Via::Remigrate {
                            subject.messages.push(Message {
                                level: Level::Info,
                                text: "remigration into an existing mailbox (scenario 6b): items only, no directory data".into(),
                            });
                        }
                        // Matching leaves a remigration's contacts alone, and so does this.
                        if candidate.via != crate::matching::Via::Remigrate {
                            self.contacts(pm, &mailbox, &mut subject);
                        }
                        items_failed = !self.imports(pm, &mailbox, &mut subject);
                    }
                    None => subject.status = Status::Error,
                }
            }
        }
        if subject.status == Status::Planned {
            if self.actions.len() == first_action {
                subject.status = Status::Unchanged;
            }
            if let Some(m) = &subject.matched {
                let producer = self.actions[first_action..]
                    .first()
                    .filter(|a| a.target == m.object && a.kind.effect() != Effect::Import)
                    .map(|a| a.id.clone());
                self.targets
                    .insert(person.dn.clone(), (m.object.clone(), producer));
            }
            // Its directory actions (and its lists' use of its mailbox) stand; the person is
            // still reported as left out, with the reason among its messages.
            if items_failed {
                subject.status = Status::Error;
            }
        }
        self.subjects.push(subject);
    }

    /// The person's imports: one action per kind whose inventory has new items, after the action
    /// that makes the mailbox. Bad items and unreadable stores become messages on the subject.
    /// False when an import could not be planned (its store could not be read): the error is
    /// among the subject's messages.
    fn imports(&mut self, pm: &PersonMatch, mailbox: &Mailbox, subject: &mut Subject) -> bool {
        let Some(inv) = self.inventories.get(&pm.person.dn) else {
            return true;
        };
        let mut planned = true;
        let kinds: [(ActionKind, ItemKind, &Option<Inventory>, &str); 3] = [
            (ActionKind::ImportMail, ItemKind::Mail, &inv.mail, "mail"),
            (
                ActionKind::ImportCalendar,
                ItemKind::Calendar,
                &inv.calendar,
                "calendar",
            ),
            (
                ActionKind::ImportContacts,
                ItemKind::Contacts,
                &inv.contacts,
                "contacts",
            ),
        ];
        for (kind, item_kind, inv, what) in kinds {
            let Some(inv) = inv else { continue };
            for bad in &inv.bad {
                subject.messages.push(Message {
                    level: Level::Warning,
                    text: format!(
                        "{what}: bad item skipped: {}: {}",
                        bad.location, bad.message
                    ),
                });
                subject.bad_items.push(BadItemInfo {
                    kind: item_kind,
                    location: bad.location.clone(),
                    message: bad.message.clone(),
                });
            }
            if let Some(e) = &inv.error {
                subject.messages.push(Message {
                    level: Level::Error,
                    text: format!("{what}: cannot take the inventory, nothing planned: {e}"),
                });
                planned = false;
                continue;
            }
            if let Some(e) = &inv.destination_unavailable {
                if mailbox.action.is_none() {
                    // The mailbox exists already, so its store should open: something is wrong.
                    subject.messages.push(Message {
                        level: Level::Error,
                        text: format!(
                            "{what}: cannot open the destination mailbox, nothing planned: {e}"
                        ),
                    });
                    planned = false;
                    continue;
                }
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: the destination mailbox cannot be opened before this plan makes it, so every item not in the ledger is counted"
                    ),
                });
            }
            if inv.deleted_at_destination > 0 {
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: {} copied earlier and deleted at the destination since; not copied again",
                        noun(inv.deleted_at_destination, "item", "items")
                    ),
                });
            }
            let folded: u64 = inv.folded.values().sum();
            if folded > 0 {
                let places: Vec<String> = inv
                    .folded
                    .iter()
                    .map(|(folder, n)| format!("{folder}: {n}"))
                    .collect();
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: {} folded: the same message (Message-ID, date, sender, subject and Received trail) twice in a source folder is copied once ({})",
                        noun(folded, "duplicate", "duplicates"),
                        places.join(", ")
                    ),
                });
            }
            if inv.changed_at_destination > 0 {
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: {} changed at the source and also edited at the destination; the destination's version is kept, not updated",
                        noun(inv.changed_at_destination, "item", "items")
                    ),
                });
            }
            if inv.folders_deleted_at_destination > 0 {
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: {} made or filled earlier and deleted at the destination since; not made again",
                        noun(inv.folders_deleted_at_destination, "folder", "folders")
                    ),
                });
            }
            if inv.unsubscribed_at_destination > 0 {
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "{what}: {} added earlier and removed at the destination since; not added again",
                        noun(inv.unsubscribed_at_destination, "subscription", "subscriptions")
                    ),
                });
            }
            if inv.new + inv.changed + inv.create_folders + inv.subscribe_folders == 0 {
                continue;
            }
            self.actions.push(Action {
                id: Action::id_for(kind, &mailbox.dn),
                kind,
                subject: pm.person.dn.clone(),
                target: mailbox.dn.clone(),
                depends_on: mailbox.action.iter().cloned().collect(),
                changes: Vec::new(),
                preconditions: Vec::new(),
                items: Some(ItemCount {
                    count: inv.new + inv.changed,
                    bytes: inv.new_bytes,
                    changed: inv.changed,
                    folders: inv.new_folders,
                    total: inv.total,
                    create_folders: inv.create_folders,
                    subscribe_folders: inv.subscribe_folders,
                }),
            });
        }
        planned
    }

    /// The person's SMTP addresses with the intended primary first.
    fn intended_primary(&self, pm: &PersonMatch) -> Option<String> {
        let domains = &self.spec.destination.domains;
        pm.person
            .smtp
            .iter()
            .find(|a| smtp_domain(a).is_some_and(|d| domains.contains(&d)))
            .or_else(|| pm.person.smtp.first())
            .cloned()
    }

    /// Keys of addresses held by this person's contacts: those move to the mailbox only after the
    /// contacts are gone (Exchange refuses a proxy address held by two recipients).
    fn contact_keys(&self, pm: &PersonMatch) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for c in &pm.contacts {
            for p in self
                .flavor
                .read_addresses(&self.dest.entry(c.id).attrs)
                .iter()
            {
                keys.insert(p.key());
            }
        }
        keys
    }

    /// Objects other than `me` and the person's contacts that hold an address.
    fn held_elsewhere(
        &self,
        pm: &PersonMatch,
        kind: &str,
        address: &str,
        me: Option<&Dn>,
    ) -> Option<Dn> {
        let contacts: BTreeSet<usize> = pm.contacts.iter().map(|c| c.id).collect();
        self.matches
            .index
            .by_address(kind, address)
            .iter()
            .find(|id| !contacts.contains(id) && Some(&self.dest.entry(**id).dn) != me)
            .map(|id| self.dest.entry(*id).dn.clone())
    }

    /// The person's addresses that can go on the mailbox now, with the primary to use now, and
    /// warnings for addresses some unrelated object holds.
    fn usable_addresses(
        &self,
        pm: &PersonMatch,
        me: Option<&Dn>,
        subject: &mut Subject,
    ) -> AddressSet {
        let deferred = self.contact_keys(pm);
        let mut set = AddressSet::default();
        for (kind, addr) in pm.person.addresses() {
            let key = address_key(kind, addr);
            if deferred.contains(&key) {
                continue;
            }
            if let Some(holder) = self.held_elsewhere(pm, kind, addr, me) {
                subject.messages.push(Message {
                    level: Level::Warning,
                    text: format!(
                        "{kind} address {addr} is held by {holder}; it is left off the mailbox"
                    ),
                });
                continue;
            }
            set.insert_secondary(if kind == "NOTES" {
                ProxyAddress::notes(addr, false)
            } else {
                ProxyAddress::smtp(addr, false)
            });
        }
        set
    }

    /// A free account name made from `wanted`, and whether it differs from `wanted`.
    fn unique_account(&mut self, wanted: &str) -> (String, bool) {
        let base = account_base(wanted);
        let candidate: String = base.chars().take(SAM_MAX).collect();
        let candidate = if self.matches.index.by_account(&candidate).is_empty()
            && self.taken_accounts.insert(name_key(&candidate))
        {
            candidate
        } else {
            self.next_account(&base)
        };
        let changed = !candidate.eq_ignore_ascii_case(wanted);
        (candidate, changed)
    }

    /// The first free account name `base2`, `base3`, … (cut to fit), for when `base` itself
    /// is taken. A derived name must not be another person's own short name either.
    fn next_account(&mut self, base: &str) -> String {
        let free = |p: &Self, n: &str| {
            let key = name_key(n);
            p.matches.index.by_account(n).is_empty()
                && !p.taken_accounts.contains(&key)
                && !p.reserved_accounts.contains(&key)
        };
        let mut n = 1;
        loop {
            n += 1;
            let suffix = n.to_string();
            let candidate = base
                .chars()
                .take(SAM_MAX - suffix.len())
                .collect::<String>()
                + &suffix;
            if free(self, &candidate) {
                self.taken_accounts.insert(name_key(&candidate));
                return candidate;
            }
        }
    }

    /// The DN of a new group whose first choice is not a group: its first choice when that is
    /// free, else the first of the flavor's numbered DNs that is either free (the group is made
    /// there) or a group already (made there by an earlier run, for the same reason: it is the
    /// group, so a rerun adopts it instead of making another one further down).
    fn group_dn(&mut self, container: &Dn, name: &str, account: &str) -> (Dn, Option<usize>) {
        let first = self.flavor.new_dn(container, name, account);
        if !self.dest.contains(&first) && self.taken_dns.insert(first.clone()) {
            return (first, None);
        }
        let mut n = 1;
        loop {
            n += 1;
            let dn = self.flavor.numbered_dn(container, name, account, n);
            if self.taken_dns.contains(&dn) {
                continue;
            }
            match self.dest.id_of(&dn) {
                None => {
                    self.taken_dns.insert(dn.clone());
                    return (dn, None);
                }
                Some(id) if self.matches.classes[id] == Class::Group => {
                    self.taken_dns.insert(dn.clone());
                    return (dn, Some(id));
                }
                Some(_) => {}
            }
        }
    }

    /// The first free DN of the flavor's numbered ones (`CN=name 2`, `CN=name 3`, …; Carbonio's
    /// `uid=account2`, …) in `container`, for when its first choice is taken.
    fn next_dn(&mut self, container: &Dn, name: &str, account: &str) -> Dn {
        let mut n = 1;
        loop {
            n += 1;
            let dn = self.flavor.numbered_dn(container, name, account, n);
            if !self.dest.contains(&dn) && !self.taken_dns.contains(&dn) {
                self.taken_dns.insert(dn.clone());
                return dn;
            }
        }
    }

    fn template_value(
        &self,
        t: &Template,
        pm: &PersonMatch,
        sam: &str,
        primary: Option<&str>,
    ) -> Option<String> {
        let src = self.source.entry(pm.person.id);
        let mut out = String::new();
        for part in &t.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Attr(a) => out.push_str(src.text(a.as_str())?),
                TemplatePart::Role(r) => out.push_str(&match r {
                    Role::FullName => pm.person.display_name(),
                    Role::ShortName => pm.person.short_names.first()?.clone(),
                    Role::PrimarySmtp => primary?.to_string(),
                    Role::NotesAddress => pm.person.notes.clone()?,
                    Role::GivenName => pm.person.given_name.clone()?,
                    Role::Surname => pm.person.surname.clone()?,
                    Role::SamAccountName => sam.to_string(),
                }),
            }
        }
        (!out.trim().is_empty()).then_some(out)
    }

    /// The mapped (non-managed) attributes for a person's mailbox.
    fn mapped_attrs(&self, pm: &PersonMatch, sam: &str, primary: Option<&str>) -> Attrs {
        let mut out = Attrs::new();
        for (a, t) in &self.mapping {
            if let Some(v) = t
                .as_ref()
                .and_then(|t| self.template_value(t, pm, sam, primary))
            {
                out.insert(a.clone(), set1(v));
            }
        }
        out
    }
}

/// The attribute mapping for mailboxes: the defaults, then the plan file's entries over them.
fn mapping(spec: &Spec) -> BTreeMap<AttrName, Option<Template>> {
    let mut mapping: BTreeMap<AttrName, Option<Template>> = BTreeMap::new();
    mapping.insert(attr("displayName"), Some(Template::role(Role::FullName)));
    mapping.insert(attr("givenName"), Some(Template::role(Role::GivenName)));
    mapping.insert(attr("sn"), Some(Template::role(Role::Surname)));
    for a in [
        "title",
        "telephoneNumber",
        "mobile",
        "department",
        "company",
    ] {
        mapping.insert(attr(a), Some(Template::attr(a)));
    }
    for (a, t) in &spec.destination.mapping {
        mapping.insert(a.clone(), t.clone());
    }
    mapping
}

impl Planner<'_> {
    /// A free address to create or convert the mailbox with while the person's own addresses are
    /// still held by contacts: `<account>@<first destination domain>` (else the domain of the
    /// person's intended primary). The merge makes the intended primary primary afterwards.
    fn routing_address(&self, pm: &PersonMatch, account: &str) -> Option<ProxyAddress> {
        let domain = self
            .domain0()
            .map(str::to_string)
            .or_else(|| self.intended_primary(pm).as_deref().and_then(smtp_domain))?;
        let mut n = 1;
        loop {
            let local = if n == 1 {
                account.to_string()
            } else {
                format!("{account}{n}")
            };
            let address = format!("{local}@{domain}");
            let key = address_key("SMTP", &address);
            let mine = pm.person.address_keys().contains(&key);
            if !mine && self.matches.index.by_address("SMTP", &address).is_empty() {
                return Some(ProxyAddress::smtp(&address, true));
            }
            n += 1;
            if n > 100 {
                return None;
            }
        }
    }

    /// The attribute a destination account's name is kept in (`sAMAccountName` in Active
    /// Directory, `uid` in Carbonio and LDAP), as matching looks accounts up by it.
    fn account_attr(&self) -> String {
        crate::matching::flavor::of(self.spec.destination.flavor)
            .index()
            .account_attrs
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "sAMAccountName".into())
    }

    fn domain0(&self) -> Option<&str> {
        self.spec.destination.domains.first().map(String::as_str)
    }

    /// Scenario 1 and 3: a new mailbox user.
    fn create_mailbox(
        &mut self,
        pm: &PersonMatch,
        names: NewNames,
        subject: &mut Subject,
    ) -> Option<Mailbox> {
        let person = &pm.person;
        let NewNames {
            wanted_sam,
            sam,
            name,
            wanted_dn,
            dn,
            sam_changed,
            dn_changed,
        } = names;
        if sam_changed {
            subject.messages.push(Message {
                level: Level::Warning,
                text: format!(
                    "account name `{wanted_sam}` is taken at the destination; the new mailbox gets {} `{sam}`",
                    self.account_attr()
                ),
            });
        }
        if dn_changed {
            subject.messages.push(Message {
                level: Level::Warning,
                text: format!("`{wanted_dn}` already exists; the new mailbox is created as `{dn}`"),
            });
        }
        let mut addrs = self.usable_addresses(pm, None, subject);
        let intended = self.intended_primary(pm);
        match intended
            .as_ref()
            .filter(|p| addrs.contains_key(&address_key("SMTP", p)))
        {
            Some(p) => addrs.set_primary(&ProxyAddress::smtp(p, true)),
            None => {
                // The intended primary is held by a contact (it moves over in merge) or the person
                // has none: create with another of the person's addresses, or a routing address.
                let free = addrs.iter().find(|a| a.is_smtp()).cloned();
                match free.or_else(|| self.routing_address(pm, &sam)) {
                    Some(a) => addrs.set_primary(&a),
                    None => {
                        subject.messages.push(Message {
                            level: Level::Error,
                            text: "no free SMTP address for the new mailbox: the person has none that is free, and no routing address can be made (set destination.domains)".into(),
                        });
                        return None;
                    }
                }
            }
        }
        addrs.ensure_primaries();
        let primary = addrs.primary("SMTP").map(|p| p.address.clone());
        let mut attrs = self.mapped_attrs(pm, &sam, primary.as_deref());
        attrs.insert(attr("cn"), set1(dn.rdn_value().unwrap_or(name.clone())));
        self.flavor.new_mailbox(
            &NewMailbox {
                spec: self.spec,
                dest: self.dest,
                account: &sam,
                name: &name,
                primary: primary.as_deref(),
            },
            &mut attrs,
        );
        for (a, values) in self.flavor.address_attrs(&addrs) {
            if !values.is_empty() {
                attrs.insert(a, values);
            }
        }
        if let Some(elsewhere) = self.flavor.provisioned_elsewhere(
            self.spec,
            self.dest,
            self.source.entry(person.id),
            primary.as_deref(),
        ) {
            return self.provisioned(pm, dn, attrs, elsewhere, subject);
        }
        let (aliases, warnings) = self.flavor.split_aliases(self.spec, &mut attrs);
        subject
            .messages
            .extend(warnings.into_iter().map(|text| Message {
                level: Level::Warning,
                text,
            }));
        let kind = self.flavor.kinds().create_mailbox;
        let changes = diff(&Attrs::new(), attrs.clone());
        let id = Action::id_for(kind, &dn);
        self.actions.push(Action {
            id: id.clone(),
            kind,
            subject: person.dn.clone(),
            target: dn.clone(),
            depends_on: Vec::new(),
            changes,
            preconditions: vec![
                Precondition::Absent { object: dn.clone() },
                // The container it goes in (the plan's, or the one its flavor chose).
                Precondition::Exists {
                    object: dn.parent(),
                    class: None,
                },
            ],
            items: None,
        });
        self.targets
            .insert(person.dn.clone(), (dn.clone(), Some(id.clone())));
        self.alias_actions(pm, &dn, aliases, Some(&id));
        Some(Mailbox {
            dn,
            attrs,
            action: Some(id),
        })
    }

    /// One action per further address of an account, after what makes the account.
    fn alias_actions(
        &mut self,
        pm: &PersonMatch,
        account: &Dn,
        aliases: Vec<(Dn, String)>,
        after: Option<&String>,
    ) {
        let kind = self.flavor.kinds().alias;
        let attribute = attr(self.flavor.alias_attr());
        for (alias, address) in aliases {
            self.actions.push(Action {
                id: Action::id_for(kind, &alias),
                kind,
                subject: pm.person.dn.clone(),
                target: alias.clone(),
                depends_on: after.into_iter().cloned().collect(),
                changes: vec![Change {
                    object: Some(account.clone()),
                    attribute: attribute.clone(),
                    before: ValueSet::new(),
                    after: set1(address),
                }],
                preconditions: vec![Precondition::Absent { object: alias }],
                items: None,
            });
        }
    }

    /// A new person whose mailbox something else creates (Carbonio's Auto Provisioning): the
    /// plan says what will be created, or why nothing will; it creates nothing itself.
    fn provisioned(
        &mut self,
        pm: &PersonMatch,
        dn: Dn,
        attrs: Attrs,
        elsewhere: Result<String, String>,
        subject: &mut Subject,
    ) -> Option<Mailbox> {
        match elsewhere {
            Ok(name) => {
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "Carbonio's Auto Provisioning will create account {name} for this person; mailplan creates none, and its imports wait for the account"
                    ),
                });
                self.targets
                    .insert(pm.person.dn.clone(), (dn.clone(), None));
                Some(Mailbox {
                    dn,
                    attrs,
                    action: None,
                })
            }
            Err(why) => {
                subject.messages.push(Message {
                    level: Level::Error,
                    text: why,
                });
                None
            }
        }
    }

    /// A person matched to an existing account (Carbonio): the mapped attributes it lacks, in
    /// one modify, and each of the person's addresses that nothing holds, as an alias. The
    /// account's own values are never replaced.
    fn fill_matched(&mut self, pm: &PersonMatch, entry: &Entry, subject: &mut Subject) -> Mailbox {
        let account = entry.text("uid").unwrap_or_default().to_string();
        let mut addrs = self.flavor.read_addresses(&entry.attrs);
        let primary = addrs.primary("SMTP").map(|p| p.address.clone());
        let mut after = entry.attrs.clone();
        for (a, v) in self.mapped_attrs(pm, &account, primary.as_deref()) {
            after.entry(a).or_insert(v);
        }
        let kinds = self.flavor.kinds();
        let changes = diff(&entry.attrs, after.clone());
        let mut action = None;
        if !changes.is_empty() {
            let preconditions = std::iter::once(Precondition::Exists {
                object: entry.dn.clone(),
                class: Some(Class::MailboxUser),
            })
            .chain(changes.iter().map(|c| Precondition::Values {
                object: entry.dn.clone(),
                attribute: c.attribute.clone(),
                values: c.before.clone(),
            }))
            .collect();
            let id = Action::id_for(kinds.modify, &entry.dn);
            self.actions.push(Action {
                id: id.clone(),
                kind: kinds.modify,
                subject: pm.person.dn.clone(),
                target: entry.dn.clone(),
                depends_on: Vec::new(),
                changes,
                preconditions,
                items: None,
            });
            action = Some(id);
        }
        let before: BTreeSet<String> = addrs.iter().map(|p| p.key()).collect();
        for p in self.usable_addresses(pm, Some(&entry.dn), subject).iter() {
            addrs.insert_secondary(p.clone());
        }
        let mut fresh = Attrs::new();
        let mut new_aliases = AddressSet::default();
        for p in addrs
            .iter()
            .filter(|p| p.is_smtp() && !before.contains(&p.key()))
        {
            new_aliases.insert_secondary(p.clone());
        }
        for (a, v) in self.flavor.address_attrs(&new_aliases) {
            if !v.is_empty() {
                fresh.insert(a, v);
            }
        }
        let (aliases, warnings) = self.flavor.split_aliases(self.spec, &mut fresh);
        subject
            .messages
            .extend(warnings.into_iter().map(|text| Message {
                level: Level::Warning,
                text,
            }));
        self.alias_actions(pm, &entry.dn, aliases, None);
        Mailbox {
            dn: entry.dn.clone(),
            attrs: after,
            action,
        }
    }

    /// Scenarios 2, 4 (NT account) and 5 (mail-enabled user): make the existing user a mailbox.
    fn convert(
        &mut self,
        pm: &PersonMatch,
        entry: &Entry,
        kind: ActionKind,
        subject: &mut Subject,
    ) -> Option<Mailbox> {
        let mut after = entry.attrs.clone();
        let sam = entry
            .text("sAMAccountName")
            .or_else(|| entry.text("uid"))
            .unwrap_or_default()
            .to_string();
        let mut addrs = self.flavor.read_addresses(&entry.attrs);
        let existing_primary = addrs.primary("SMTP").cloned();
        for p in self.usable_addresses(pm, Some(&entry.dn), subject).iter() {
            addrs.insert_secondary(p.clone());
        }
        if existing_primary.is_none()
            && let Some(p) = self
                .intended_primary(pm)
                .filter(|p| addrs.contains_key(&address_key("SMTP", p)))
        {
            addrs.set_primary(&ProxyAddress::smtp(&p, true));
        }
        if addrs.primary("SMTP").is_none()
            && let Some(routing) = self.routing_address(pm, &sam)
        {
            addrs.set_primary(&routing);
        }
        addrs.ensure_primaries();
        if addrs.primary("SMTP").is_none() {
            subject.messages.push(Message {
                level: Level::Error,
                text: format!(
                    "{} has no SMTP address and the person brings none that is free",
                    entry.dn
                ),
            });
            return None;
        }
        for (a, values) in self.flavor.address_attrs(&addrs) {
            if values.is_empty() {
                after.remove(&a);
            } else {
                after.insert(a, values);
            }
        }
        let primary = addrs.primary("SMTP").map(|p| p.address.clone());
        // Directory data of the existing account is kept; the source only fills what is empty.
        for (a, v) in self.mapped_attrs(pm, &sam, primary.as_deref()) {
            after.entry(a).or_insert(v);
        }
        self.flavor.convert(
            &Conversion {
                spec: self.spec,
                account: &sam,
            },
            &mut after,
        );
        let changes = diff(&entry.attrs, after.clone());
        let mut preconditions = vec![Precondition::Exists {
            object: entry.dn.clone(),
            class: Some(if kind == ActionKind::ConvertNtAccount {
                Class::NtAccount
            } else {
                Class::MailEnabledUser
            }),
        }];
        preconditions.extend(changes.iter().map(|c| Precondition::Values {
            object: entry.dn.clone(),
            attribute: c.attribute.clone(),
            values: c.before.clone(),
        }));
        let id = Action::id_for(kind, &entry.dn);
        self.actions.push(Action {
            id: id.clone(),
            kind,
            subject: pm.person.dn.clone(),
            target: entry.dn.clone(),
            depends_on: Vec::new(),
            changes,
            preconditions,
            items: None,
        });
        Some(Mailbox {
            dn: entry.dn.clone(),
            attrs: after,
            action: Some(id),
        })
    }

    /// Scenarios 3 and 4 (and 5/6 when contacts remain): move each contact's memberships to the
    /// mailbox, delete the contact, then merge its data and addresses into the mailbox.
    ///
    /// Contacts an earlier run deleted before it could merge them (the state's pending merges)
    /// are merged from their backups.
    fn contacts(&mut self, pm: &PersonMatch, mailbox: &Mailbox, subject: &mut Subject) {
        let history = self.history;
        let pending: Vec<&Entry> = history
            .pending
            .get(&pm.person.dn)
            .into_iter()
            .flatten()
            .filter(|e| !pm.contacts.iter().any(|c| self.dest.entry(c.id).dn == e.dn))
            .collect();
        if pm.contacts.is_empty() && pending.is_empty() {
            return;
        }
        if !pending.is_empty() {
            subject.messages.push(Message {
                level: Level::Info,
                text: format!(
                    "{} deleted by an earlier apply before its data was merged: merged now from the state's backup",
                    match pending.as_slice() {
                        [one] => format!("contact {}", one.dn),
                        many => format!("{} contacts", many.len()),
                    }
                ),
            });
        }
        let mailbox_value = Value::text(mailbox.dn.to_string());
        let mut deletes = Vec::new();
        for c in &pm.contacts {
            let contact = self.dest.entry(c.id);
            let mut depends: Vec<String> = mailbox.action.iter().cloned().collect();
            let mut changes = Vec::new();
            let mut preconditions = Vec::new();
            for membership in self.dest.groups_of(&contact.dn) {
                let group = self.dest.entry(membership.group);
                let already = self
                    .dest
                    .groups_of(&mailbox.dn)
                    .iter()
                    .any(|m| m.group == membership.group);
                // The value as stored, which may be spelled differently from our rendering.
                let stored = membership.value.clone();
                changes.push(Change {
                    object: Some(group.dn.clone()),
                    attribute: attr("member"),
                    before: ValueSet::from([stored.clone()]),
                    after: if already {
                        ValueSet::new()
                    } else {
                        ValueSet::from([mailbox_value.clone()])
                    },
                });
                preconditions.push(Precondition::Contains {
                    object: group.dn.clone(),
                    attribute: attr("member"),
                    value: stored,
                });
            }
            if !changes.is_empty() {
                let id = Action::id_for(ActionKind::MoveMemberships, &contact.dn);
                self.actions.push(Action {
                    id: id.clone(),
                    kind: ActionKind::MoveMemberships,
                    subject: pm.person.dn.clone(),
                    target: contact.dn.clone(),
                    depends_on: depends.clone(),
                    changes,
                    preconditions,
                    items: None,
                });
                depends = vec![id];
            }
            if let Some(when) = self.history.restored.get(&contact.dn) {
                subject.messages.push(Message {
                    level: Level::Warning,
                    text: format!(
                        "contact {} was restored by `state restore` on {when}; it will be deleted again unless the person is excluded",
                        contact.dn
                    ),
                });
                // Said again beside the actions, where the delete is read.
                subject.messages.push(Message {
                    level: Level::Info,
                    text: format!(
                        "delete_contact {} deletes a contact `state restore` put back on {when}",
                        contact.dn
                    ),
                });
            }
            let id = Action::id_for(ActionKind::DeleteContact, &contact.dn);
            let changes = diff(&contact.attrs, Attrs::new());
            let mut preconditions = vec![Precondition::Exists {
                object: contact.dn.clone(),
                class: Some(Class::Contact),
            }];
            for a in ["proxyAddresses", "mail"] {
                if contact.has(a) {
                    preconditions.push(Precondition::Values {
                        object: contact.dn.clone(),
                        attribute: attr(a),
                        values: contact.values(a),
                    });
                }
            }
            self.actions.push(Action {
                id: id.clone(),
                kind: ActionKind::DeleteContact,
                subject: pm.person.dn.clone(),
                target: contact.dn.clone(),
                depends_on: depends,
                changes,
                preconditions,
                items: None,
            });
            deletes.push(id);
        }
        if deletes.is_empty() {
            deletes.extend(mailbox.action.iter().cloned());
        }
        let mut contacts: Vec<&Entry> = pm.contacts.iter().map(|c| self.dest.entry(c.id)).collect();
        contacts.extend(pending);
        contacts.sort_by(|a, b| a.dn.cmp(&b.dn));
        self.merge(pm, mailbox, &contacts, deletes);
    }

    fn merge(
        &mut self,
        pm: &PersonMatch,
        mailbox: &Mailbox,
        contacts: &[&Entry],
        deletes: Vec<String>,
    ) {
        let before = &mailbox.attrs;
        let mut after = before.clone();
        let mut addrs = self.flavor.read_addresses(before);
        for (kind, addr) in pm.person.addresses() {
            addrs.insert_secondary(if kind == "NOTES" {
                ProxyAddress::notes(addr, false)
            } else {
                ProxyAddress::smtp(addr, false)
            });
        }
        for contact in contacts {
            for p in self.flavor.contact_addresses(contact).iter() {
                addrs.insert_secondary(p.clone());
            }
        }
        if let Some(p) = self.intended_primary(pm) {
            addrs.set_primary(&ProxyAddress::smtp(&p, true));
        }
        if let Some(n) = &pm.person.notes {
            addrs.set_primary(&ProxyAddress::notes(n, true));
        }
        addrs.ensure_primaries();
        for (a, values) in self.flavor.address_attrs(&addrs) {
            if values.is_empty() {
                after.remove(&a);
            } else {
                after.insert(a, values);
            }
        }
        let policy = self.spec.merge.policy;
        if policy != MergePolicy::PreferDestination {
            for a in &self.spec.merge.attributes {
                // The first contact (in DN order) that has a value gives it.
                let Some(values) = contacts
                    .iter()
                    .find_map(|c| c.attrs.get(a).filter(|v| !v.is_empty()))
                else {
                    continue;
                };
                let empty = after.get(a).is_none_or(|v| v.is_empty());
                if empty || policy == MergePolicy::PreferContact {
                    after.insert(a.clone(), values.clone());
                }
            }
        }
        let changes = diff(before, after);
        if changes.is_empty() {
            return;
        }
        let preconditions = changes
            .iter()
            .map(|c| Precondition::Values {
                object: mailbox.dn.clone(),
                attribute: c.attribute.clone(),
                values: c.before.clone(),
            })
            .collect();
        self.actions.push(Action {
            id: Action::id_for(ActionKind::MergeAttributes, &mailbox.dn),
            kind: ActionKind::MergeAttributes,
            subject: pm.person.dn.clone(),
            target: mailbox.dn.clone(),
            depends_on: deletes,
            changes,
            preconditions,
            items: None,
        });
    }

    /// Distribution lists: source groups become destination groups whose members are the
    /// destination objects of their member persons, created after those exist.
    fn groups(&mut self) {
        let Some(dl) = &self.spec.distribution_lists else {
            return;
        };
        // A targeted plan is about its persons; a list is planned with its whole membership.
        if !self.spec.source.targets.is_empty() {
            return;
        }
        let container = dl
            .container
            .clone()
            .unwrap_or_else(|| self.spec.destination.container.clone());
        let include: BTreeSet<&Dn> = dl.include.iter().collect();
        let exclude: BTreeSet<&Dn> = dl.exclude.iter().collect();
        let groups: Vec<&Entry> = self
            .source
            .entries()
            .iter()
            .filter(|e| dl.filter.matches(e))
            .filter(|e| include.is_empty() || include.contains(&e.dn))
            .filter(|e| !exclude.contains(&e.dn))
            .collect();
        let person_status: FxHashMap<Dn, Status> = self
            .subjects
            .iter()
            .map(|s| (s.source.clone(), s.status))
            .collect();

        // First pass: where each group lives at the destination.
        struct Target {
            dn: Dn,
            existing: Option<usize>,
            name: String,
            mail: Option<String>,
            notes: Option<String>,
            messages: Vec<Message>,
        }
        let mut targets: Vec<Target> = Vec::new();
        for g in &groups {
            let name = g
                .text("cn")
                .map(str::to_string)
                .unwrap_or_else(|| g.dn.rdn_value().unwrap_or_default());
            let mail = g
                .texts("mail")
                .find(|m| crate::directory::address::check_smtp(m.trim()).is_ok())
                .map(str::to_string);
            let notes = self
                .spec
                .source
                .notes_domain
                .as_ref()
                .map(|d| format!("{name}@{d}"));
            let mut messages = Vec::new();
            let by_address = mail
                .iter()
                .map(|m| ("SMTP", m.as_str()))
                .chain(notes.iter().map(|n| ("NOTES", n.as_str())))
                .flat_map(|(k, a)| self.matches.index.by_address(k, a).iter().copied())
                .find(|&id| self.matches.classes[id] == Class::Group);
            let (dn, existing) = match by_address {
                Some(id) => (self.dest.entry(id).dn.clone(), Some(id)),
                None => {
                    // Its account name as the flavor may name the entry by: the local part of
                    // its address (Carbonio names a list by its address), or its name made safe.
                    let account = mail
                        .as_deref()
                        .and_then(|m| m.rsplit_once('@'))
                        .map(|(l, _)| l.to_string())
                        .unwrap_or_else(|| sanitize(&name));
                    let wanted = self.flavor.new_dn(&container, &name, &account);
                    match self
                        .dest
                        .id_of(&wanted)
                        .filter(|&id| self.matches.classes[id] == Class::Group)
                    {
                        Some(id) => (wanted, Some(id)),
                        None => {
                            let (dn, existing) = self.group_dn(&container, &name, &account);
                            if dn != wanted {
                                let how = if existing.is_some() {
                                    "the list is"
                                } else {
                                    "the list is created as"
                                };
                                messages.push(Message {
                                    level: Level::Warning,
                                    text: format!(
                                        "`{wanted}` already exists and is not a group; {how} `{dn}`"
                                    ),
                                });
                            }
                            (dn, existing)
                        }
                    }
                }
            };
            targets.push(Target {
                dn,
                existing,
                name,
                mail,
                notes,
                messages,
            });
        }
        let kinds = self.flavor.kinds();
        let members_attr = self.flavor.members_attr();
        let created: std::cell::OnceCell<FxHashMap<Dn, usize>> = std::cell::OnceCell::new();
        let group_mail: BTreeMap<Dn, Option<String>> = targets
            .iter()
            .map(|t| {
                let mail = t
                    .mail
                    .clone()
                    .or_else(|| self.domain0().map(|d| format!("{}@{d}", sanitize(&t.name))));
                (t.dn.clone(), mail)
            })
            .collect();
        let group_dn: BTreeMap<Dn, (Dn, bool)> = groups
            .iter()
            .zip(&targets)
            .map(|(g, t)| (g.dn.clone(), (t.dn.clone(), t.existing.is_none())))
            .collect();

        for (g, t) in groups.iter().zip(targets) {
            let mut subject = Subject {
                source: g.dn.clone(),
                kind: SubjectKind::Group,
                name: t.name.clone(),
                scenario: None,
                status: Status::Planned,
                matched: t.existing.map(|id| MatchInfo {
                    object: self.dest.entry(id).dn.clone(),
                    class: Class::Group,
                    by: By::Hard,
                    via: crate::matching::Via::Smtp,
                    value: t.mail.clone().unwrap_or_default(),
                }),
                contacts: Vec::new(),
                candidates: Vec::new(),
                messages: t.messages,
                bad_items: Vec::new(),
            };
            let first_action = self.actions.len();
            let mut depends = BTreeSet::new();
            let mut members = BTreeSet::new();
            // How the list names a member may take the member's attributes (Carbonio lists
            // hold addresses): those of the destination entry, or of the action creating it.
            let attrs_of = |dn: &Dn| -> Option<Attrs> {
                if let Some(id) = self.dest.id_of(dn) {
                    return Some(self.dest.entry(id).attrs.clone());
                }
                let created = created.get_or_init(|| {
                    self.actions
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.kind == kinds.create_mailbox)
                        .map(|(i, a)| (a.target.clone(), i))
                        .collect()
                });
                let action = &self.actions[*created.get(dn)?];
                Some(
                    action
                        .changes
                        .iter()
                        .filter(|c| c.object.is_none())
                        .map(|c| (c.attribute.clone(), c.after.clone()))
                        .collect(),
                )
            };
            let group_attrs = |dn: &Dn| -> Option<Attrs> {
                let mail = group_mail.get(dn)?.as_ref()?;
                let mut a = Attrs::new();
                a.insert(attr("mail"), set1(mail.clone()));
                Some(a)
            };
            for m in g.texts("member") {
                let Ok(mdn) = Dn::parse(m) else {
                    subject.messages.push(Message {
                        level: Level::Warning,
                        text: format!("member `{m}` is not a valid DN; left out"),
                    });
                    continue;
                };
                let named = |dest_dn: &Dn, attrs: &dyn Fn() -> Option<Attrs>| {
                    self.flavor.member_value(dest_dn, attrs)
                };
                if let Some((dest_dn, producer)) = self.targets.get(&mdn) {
                    let Some(v) = named(dest_dn, &|| attrs_of(dest_dn)) else {
                        subject.messages.push(Message {
                            level: Level::Warning,
                            text: format!("member {mdn} has no address at the destination yet; left out of the list"),
                        });
                        continue;
                    };
                    members.insert(v);
                    depends.extend(producer.iter().cloned());
                } else if let Some((dest_dn, created)) = group_dn.get(&mdn) {
                    let Some(v) = named(dest_dn, &|| {
                        group_attrs(dest_dn).or_else(|| attrs_of(dest_dn))
                    }) else {
                        subject.messages.push(Message {
                            level: Level::Warning,
                            text: format!("member list {mdn} has no address; left out of the list"),
                        });
                        continue;
                    };
                    members.insert(v);
                    if *created {
                        depends.insert(Action::id_for(kinds.create_group, dest_dn));
                    }
                } else {
                    let why = match person_status.get(&mdn) {
                        Some(Status::Ambiguous) => "is ambiguous",
                        Some(Status::NeedsConfirmation) => "needs confirmation",
                        Some(_) => "has no destination object",
                        None => "is not in this wave",
                    };
                    subject.messages.push(Message {
                        level: Level::Warning,
                        text: format!("member {mdn} {why}; left out of the list"),
                    });
                }
            }
            let mut create_id = None;
            let current: ValueSet = match t.existing {
                Some(id) => self.dest.entry(id).values(members_attr),
                None => {
                    let mut addrs = AddressSet::default();
                    let mail = t
                        .mail
                        .clone()
                        .or_else(|| self.domain0().map(|d| format!("{}@{d}", sanitize(&t.name))));
                    if let Some(m) = &mail {
                        addrs.set_primary(&ProxyAddress::smtp(m, true));
                    }
                    if let Some(n) = &t.notes {
                        addrs.set_primary(&ProxyAddress::notes(n, true));
                    }
                    let (sam, _) = self.unique_account(&sanitize(&t.name));
                    let mut attrs = Attrs::new();
                    attrs.insert(attr("cn"), set1(t.dn.rdn_value().unwrap_or(t.name.clone())));
                    attrs.insert(attr("displayName"), set1(&t.name));
                    self.flavor.new_group(
                        &NewGroup {
                            spec: self.spec,
                            account: &sam,
                            mail: mail.as_deref(),
                            has_mail: mail.is_some(),
                            dn: &t.dn,
                        },
                        &mut attrs,
                    );
                    for (a, v) in self.flavor.group_address_attrs(&addrs) {
                        if !v.is_empty() {
                            attrs.insert(a, v);
                        }
                    }
                    let id = Action::id_for(kinds.create_group, &t.dn);
                    self.actions.push(Action {
                        id: id.clone(),
                        kind: kinds.create_group,
                        subject: g.dn.clone(),
                        target: t.dn.clone(),
                        depends_on: Vec::new(),
                        changes: diff(&Attrs::new(), attrs),
                        preconditions: vec![
                            Precondition::Absent {
                                object: t.dn.clone(),
                            },
                            Precondition::Exists {
                                object: container.clone(),
                                class: None,
                            },
                        ],
                        items: None,
                    });
                    create_id = Some(id);
                    ValueSet::new()
                }
            };
            let missing = self.flavor.missing_members(&current, members);
            if !missing.is_empty() {
                let after: ValueSet = current.union(&missing);
                depends.extend(create_id.iter().cloned());
                let depends_on: Vec<String> = depends.into_iter().collect();
                let preconditions = match t.existing {
                    Some(_) => vec![Precondition::Exists {
                        object: t.dn.clone(),
                        class: Some(Class::Group),
                    }],
                    None => Vec::new(),
                };
                self.actions.push(Action {
                    id: Action::id_for(kinds.group_members, &t.dn),
                    kind: kinds.group_members,
                    subject: g.dn.clone(),
                    target: t.dn.clone(),
                    depends_on,
                    changes: vec![Change {
                        object: None,
                        attribute: attr(members_attr),
                        before: current,
                        after,
                    }],
                    preconditions,
                    items: None,
                });
            }
            if self.actions.len() == first_action {
                subject.status = Status::Unchanged;
            }
            self.subjects.push(subject);
        }
    }
}

/// An account-name-safe rendering of a display name.
/// `wanted` reduced to the characters an account name may hold, lower-cased.
fn account_base(wanted: &str) -> String {
    let base: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect::<String>()
        .to_ascii_lowercase();
    if base.is_empty() {
        "user".to_string()
    } else {
        base
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "list".into() } else { s }
}

/// Attribute-by-attribute difference of two attribute maps, in attribute order.
pub(crate) fn diff(before: &Attrs, after: Attrs) -> Vec<Change> {
    // Both maps are sorted by name: one walk over the two, and `after`'s values move into the
    // changes rather than being copied (a large plan makes millions of them).
    let change = |attribute: AttrName, before: ValueSet, after: ValueSet| Change {
        object: None,
        attribute,
        before,
        after,
    };
    let mut out = Vec::new();
    let mut olds = before.iter().peekable();
    let mut news = after.into_iter().peekable();
    loop {
        let order = match (olds.peek(), news.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((old, _)), Some((new, _))) => (*old).cmp(new),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some((name, values)) = olds.next().filter(|(_, v)| !v.is_empty()) {
                    out.push(change(name.clone(), values.clone(), ValueSet::new()));
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some((name, values)) = news.next().filter(|(_, v)| !v.is_empty()) {
                    out.push(change(name, ValueSet::new(), values));
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some((_, old)), Some((name, new))) = (olds.next(), news.next())
                    && *old != new
                {
                    out.push(change(name, old.clone(), new));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &[&str])]) -> Attrs {
        pairs
            .iter()
            .map(|(n, vs)| (attr(n), vs.iter().map(|v| Value::from(*v)).collect()))
            .collect()
    }

    #[test]
    fn persons_planned_side_by_side_make_the_plan_of_one_thread() {
        let inputs = crate::generate::generated_inputs(3_000, 8_000, 9);
        let matches = crate::matching::match_all(
            &inputs.spec,
            &inputs.source,
            &inputs.destination,
            &inputs.history.links,
        );
        let on = |cores| {
            let plan = plan_on(
                &inputs.spec,
                &inputs.source,
                &inputs.destination,
                &matches,
                &inputs.history,
                &Inventories::new(),
                cores,
            )
            .unwrap();
            serde_json::to_string(&plan).unwrap()
        };
        let one = on(1);
        // Names taken by another run's persons must still be seen as taken.
        assert!(one.contains("is taken at the destination"));
        assert!(one.contains("already exists; the new mailbox is created as"));
        assert_eq!(on(2), one);
        assert_eq!(on(3), one);
    }

    #[test]
    fn diff_lists_each_changed_attribute_once_in_name_order() {
        let before = attrs(&[
            ("cn", &["Ann"]),
            ("description", &[]),
            ("mail", &["a@x"]),
            ("title", &["Sales"]),
        ]);
        let after = attrs(&[
            ("cn", &["Ann"]),
            ("displayName", &["Ann A"]),
            ("mail", &["a@x", "b@x"]),
            ("pager", &[]),
        ]);
        let got: Vec<(String, usize, usize)> = diff(&before, after)
            .into_iter()
            .map(|c| (c.attribute.to_string(), c.before.len(), c.after.len()))
            .collect();
        // Unchanged `cn`, and attributes empty on one side and absent on the other, are no change.
        assert_eq!(
            got,
            [
                ("displayName".to_string(), 0, 1),
                ("mail".to_string(), 1, 2),
                ("title".to_string(), 1, 0)
            ]
        );
    }
}
