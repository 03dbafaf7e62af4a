//! Undo plans: turn the destination back to how it was before one run, from what that run
//! recorded (the before-image of each entry it modified or deleted, the after-image of each
//! entry it wrote) and what the destination holds now.
//!
//! An undo is planned like any change, so it goes through the same executor, preconditions and
//! backups: an entry the run created is deleted only while it still is as the run left it; an
//! entry it modified gets back its former values only while each attribute the run changed
//! still holds what the run left; an entry it deleted is added back only while it is still
//! absent (and its parent present). An entry whose after-image was never recorded (the process
//! was killed between the write and its record) is refused as stale unless it already is as
//! before the run. Item imports are not undone, and the plan names and counts them. Pure, like
//! the planner: it reads nothing and writes nothing.

use std::collections::BTreeSet;

use crate::directory::{AttrName, Attrs, Dn, Entry, Snapshot, ValueSet};

use super::model::*;
use super::planner::diff;
use super::restore::restore;

/// What a run left of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// No after-image was recorded.
    Unknown,
    /// The run deleted it.
    Absent,
    /// The entry as the run left it.
    Entry(Entry),
}

/// One entry a run wrote: as it was before the run, and as the run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub dn: Dn,
    /// The run's first backup of it; `None`: it did not exist before the run.
    pub before: Option<Entry>,
    pub after: Left,
}

/// The plan that undoes run `run`, which wrote `touched` and ran the item imports `imports`
/// (their action ids), against the destination as it is now.
pub fn undo(run: i64, touched: &[Touched], imports: &[String], destination: &Snapshot) -> Plan {
    let mut subjects = Vec::new();
    let mut readds: Vec<Action> = Vec::new();
    let mut restores: Vec<Action> = Vec::new();
    let mut deletes: Vec<Action> = Vec::new();
    for t in touched {
        let live = destination.get(&t.dn);
        // What the run left, spelt as the server spells it now where it holds the same values.
        let after = match (&t.after, live) {
            (Left::Entry(after), Some(live)) => Left::Entry(spelt_as(after, live)),
            (other, _) => other.clone(),
        };
        let info = |text: String| Message {
            level: Level::Info,
            text,
        };
        let mut status = Status::Planned;
        let message = if same(t.before.as_ref(), live) {
            status = Status::Unchanged;
            info(format!(
                "already as it was before run {run}: nothing to undo"
            ))
        } else {
            match (&t.before, &after) {
                (_, Left::Unknown) => {
                    status = Status::Error;
                    Message {
                        level: Level::Error,
                        text: format!(
                            "stale: run {run} left no record of what it wrote here, and the entry is not as it was before the run; not undone"
                        ),
                    }
                }
                (None, Left::Absent) => {
                    status = Status::Unchanged;
                    info(format!("run {run} left nothing here: nothing to undo"))
                }
                (None, Left::Entry(after)) => {
                    deletes.push(delete_created(after, live));
                    info(format!(
                        "delete the entry run {run} created, if it is still as the run left it"
                    ))
                }
                (Some(before), Left::Entry(after)) => {
                    if let Some(a) = restore_modified(before, after) {
                        restores.push(a);
                    }
                    info(format!(
                        "set back the values run {run} changed, if they are still as the run left them"
                    ))
                }
                (Some(before), Left::Absent) => {
                    readds.extend(restore(before, None).actions);
                    info(format!(
                        "add back the entry run {run} deleted, if it is still absent"
                    ))
                }
            }
        };
        subjects.push(Subject {
            source: t.dn.clone(),
            kind: SubjectKind::Entry,
            name: t.dn.to_string(),
            scenario: None,
            status,
            matched: None,
            contacts: Vec::new(),
            candidates: Vec::new(),
            messages: vec![message],
            bad_items: Vec::new(),
        });
    }
    // Reverse of the run's order: an entry the run deleted comes back before the values that
    // name it are set back; values naming an entry the run created are set back before it is
    // deleted; a created entry goes after the created entries below it.
    for r in &mut restores {
        r.depends_on = readds
            .iter()
            .filter(|a| names(&r.changes, &a.target, |c| &c.after))
            .map(|a| a.id.clone())
            .collect();
    }
    let delete_deps: Vec<Vec<String>> = deletes
        .iter()
        .map(|d| {
            restores
                .iter()
                .filter(|r| names(&r.changes, &d.target, |c| &c.before))
                .map(|r| r.id.clone())
                .chain(
                    deletes
                        .iter()
                        .filter(|o| o.target != d.target && o.target.is_within(&d.target))
                        .map(|o| o.id.clone()),
                )
                .collect()
        })
        .collect();
    for (d, deps) in deletes.iter_mut().zip(delete_deps) {
        d.depends_on = deps;
    }
    let mut messages = Vec::new();
    if !imports.is_empty() {
        messages.push(Message {
            level: Level::Warning,
            text: format!(
                "{} import{} of run {run} {} not undone: messages stay at the destination ({})",
                imports.len(),
                if imports.len() == 1 { "" } else { "s" },
                if imports.len() == 1 { "is" } else { "are" },
                imports.join(", ")
            ),
        });
    }
    let actions: Vec<Action> = readds.into_iter().chain(restores).chain(deletes).collect();
    let summary = Plan::summarise(&subjects, &actions);
    Plan {
        format_version: FORMAT_VERSION.into(),
        messages,
        subjects,
        actions,
        summary,
    }
}

/// Whether the entry now is as `before` has it (both absent, or the same attributes).
fn same(before: Option<&Entry>, live: Option<&Entry>) -> bool {
    match (before, live) {
        (None, None) => true,
        (Some(b), Some(l)) => {
            b.attrs.len() == l.attrs.len()
                && b.attrs
                    .iter()
                    .all(|(a, v)| l.attrs.get(a).is_some_and(|w| equivalent(v, w)))
        }
        _ => false,
    }
}

/// Whether two value sets hold the same values, DNs compared as DNs: a server keeps a
/// DN-valued attribute (`member`) in its own spelling (`cn=` for `CN=`), which is the same value.
fn equivalent(a: &ValueSet, b: &ValueSet) -> bool {
    let dn = |v: &crate::directory::Value| v.as_str().and_then(|t| Dn::parse(t).ok());
    a.len() == b.len()
        && a.iter().all(|v| {
            b.contains(v) || {
                let d = dn(v);
                d.is_some() && b.iter().any(|w| dn(w) == d)
            }
        })
}

/// `after` with each attribute whose values `live` holds equivalently in `live`'s spelling,
/// so that the preconditions compare what the server holds.
fn spelt_as(after: &Entry, live: &Entry) -> Entry {
    let mut out = after.clone();
    for (attribute, values) in after.attrs.iter() {
        if let Some(now) = live.attrs.get(attribute)
            && now != values
            && equivalent(values, now)
        {
            out.attrs.insert(attribute.clone(), now.clone());
        }
    }
    out
}

/// Whether any change's values (`side` of it) name `dn`.
fn names(changes: &[Change], dn: &Dn, side: impl Fn(&Change) -> &ValueSet) -> bool {
    changes.iter().any(|c| {
        side(c)
            .iter()
            .any(|v| v.as_str().and_then(|t| Dn::parse(t).ok()).as_ref() == Some(dn))
    })
}

/// Deletes `after`'s entry, held to every attribute being as the run left it (and to holding
/// no attribute it did not leave, of those it holds now).
fn delete_created(after: &Entry, live: Option<&Entry>) -> Action {
    let dn = after.dn.clone();
    let mut attributes: BTreeSet<AttrName> = after.attrs.keys().cloned().collect();
    if let Some(live) = live {
        attributes.extend(live.attrs.keys().cloned());
    }
    let mut preconditions = vec![Precondition::Exists {
        object: dn.clone(),
        class: None,
    }];
    preconditions.extend(
        attributes
            .into_iter()
            .map(|attribute| Precondition::Values {
                object: dn.clone(),
                values: after.attrs.get(&attribute).cloned().unwrap_or_default(),
                attribute,
            }),
    );
    Action {
        id: Action::id_for(ActionKind::DeleteEntry, &dn),
        kind: ActionKind::DeleteEntry,
        subject: dn.clone(),
        target: dn,
        depends_on: Vec::new(),
        changes: diff(&after.attrs, Attrs::new()),
        preconditions,
        items: None,
    }
}

/// Sets back what the run changed of an entry it modified, each attribute held to the values
/// the run left. `None` when the run changed nothing of it.
fn restore_modified(before: &Entry, after: &Entry) -> Option<Action> {
    let dn = before.dn.clone();
    let changes = diff(&after.attrs, before.attrs.clone());
    if changes.is_empty() {
        return None;
    }
    let preconditions = changes
        .iter()
        .map(|c| Precondition::Values {
            object: dn.clone(),
            attribute: c.attribute.clone(),
            values: c.before.clone(),
        })
        .collect();
    Some(Action {
        id: Action::id_for(ActionKind::RestoreEntry, &dn),
        kind: ActionKind::RestoreEntry,
        subject: dn.clone(),
        target: dn,
        depends_on: Vec::new(),
        changes,
        preconditions,
        items: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn contact() -> Entry {
        Entry::new(dn("CN=Carol,OU=Contacts,DC=acme"))
            .with("objectClass", "contact")
            .with("mail", "carol@acme.com")
    }

    fn mailbox() -> Entry {
        Entry::new(dn("CN=Carol C,OU=Users,DC=acme"))
            .with("objectClass", "user")
            .with("mail", "carol@acme.com")
    }

    fn group(member: &str) -> Entry {
        Entry::new(dn("CN=Sales,OU=Groups,DC=acme"))
            .with("objectClass", "group")
            .with("member", member)
    }

    /// A run created a mailbox, moved a group's membership from a contact to it and deleted the
    /// contact: the undo adds the contact back, then sets the group back, then deletes the
    /// mailbox; an import is named and counted.
    #[test]
    fn a_run_is_undone_in_reverse_order_with_its_imports_named() {
        let touched = vec![
            Touched {
                dn: mailbox().dn,
                before: None,
                after: Left::Entry(mailbox()),
            },
            Touched {
                dn: group("").dn,
                before: Some(group("CN=Carol,OU=Contacts,DC=acme")),
                after: Left::Entry(group("CN=Carol C,OU=Users,DC=acme")),
            },
            Touched {
                dn: contact().dn,
                before: Some(contact()),
                after: Left::Absent,
            },
        ];
        let now = Snapshot::new(vec![mailbox(), group("CN=Carol C,OU=Users,DC=acme")]).unwrap();
        let plan = undo(7, &touched, &["import_mail:CN=Carol C".into()], &now);
        let kinds: Vec<(ActionKind, String)> = plan
            .actions
            .iter()
            .map(|a| (a.kind, a.target.to_string()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    ActionKind::RestoreEntry,
                    "CN=Carol,OU=Contacts,DC=acme".into()
                ),
                (
                    ActionKind::RestoreEntry,
                    "CN=Sales,OU=Groups,DC=acme".into()
                ),
                (
                    ActionKind::DeleteEntry,
                    "CN=Carol C,OU=Users,DC=acme".into()
                ),
            ]
        );
        assert_eq!(plan.actions[1].depends_on, [plan.actions[0].id.clone()]);
        assert_eq!(plan.actions[2].depends_on, [plan.actions[1].id.clone()]);
        assert!(
            plan.actions[2]
                .preconditions
                .contains(&Precondition::Values {
                    object: mailbox().dn,
                    attribute: AttrName::new_unchecked("mail"),
                    values: ValueSet::from([crate::directory::Value::text("carol@acme.com")]),
                })
        );
        assert!(
            plan.actions[1]
                .preconditions
                .contains(&Precondition::Values {
                    object: group("").dn,
                    attribute: AttrName::new_unchecked("member"),
                    values: ValueSet::from([crate::directory::Value::text(
                        "CN=Carol C,OU=Users,DC=acme"
                    )]),
                })
        );
        assert_eq!(
            plan.messages[0].text,
            "1 import of run 7 is not undone: messages stay at the destination (import_mail:CN=Carol C)"
        );
        assert!(!plan.has_errors());
    }

    /// A server keeps DN values in its own spelling: the same DNs are the same values, and the
    /// preconditions hold the server's spelling.
    #[test]
    fn dn_values_spelt_otherwise_by_the_server_are_the_same_values() {
        let touched = [Touched {
            dn: group("").dn,
            before: Some(group("cn=Carol,ou=Contacts,dc=acme")),
            after: Left::Entry(group("CN=Carol C,OU=Users,DC=acme")),
        }];
        let now = Snapshot::new(vec![group("cn=Carol C,ou=Users,dc=acme")]).unwrap();
        let plan = undo(4, &touched, &[], &now);
        assert!(
            plan.actions[0]
                .preconditions
                .contains(&Precondition::Values {
                    object: group("").dn,
                    attribute: AttrName::new_unchecked("member"),
                    values: ValueSet::from([crate::directory::Value::text(
                        "cn=Carol C,ou=Users,dc=acme"
                    )]),
                })
        );
    }

    /// No after-image: refused unless the entry already is as before the run.
    #[test]
    fn an_entry_with_no_after_image_is_refused_unless_it_is_as_before() {
        let touched = |before: Option<Entry>| Touched {
            dn: contact().dn,
            before,
            after: Left::Unknown,
        };
        let changed = contact().with("title", "Lead");
        let now = Snapshot::new(vec![changed]).unwrap();
        let plan = undo(3, &[touched(Some(contact()))], &[], &now);
        assert!(plan.actions.is_empty());
        assert!(plan.has_errors());
        assert!(
            plan.subjects[0].messages[0]
                .text
                .starts_with("stale: run 3")
        );

        let now = Snapshot::new(vec![contact()]).unwrap();
        let plan = undo(3, &[touched(Some(contact()))], &[], &now);
        assert!(plan.actions.is_empty());
        assert!(!plan.has_errors());
        assert_eq!(plan.subjects[0].status, Status::Unchanged);
    }

    /// A created entry someone changed since keeps a precondition that fails: on an attribute
    /// the run left, and on one it did not.
    #[test]
    fn a_created_entry_is_held_to_the_after_image_also_for_attributes_added_since() {
        let touched = [Touched {
            dn: mailbox().dn,
            before: None,
            after: Left::Entry(mailbox()),
        }];
        let now = Snapshot::new(vec![mailbox().with("title", "Boss")]).unwrap();
        let plan = undo(2, &touched, &[], &now);
        assert!(
            plan.actions[0]
                .preconditions
                .contains(&Precondition::Values {
                    object: mailbox().dn,
                    attribute: AttrName::new_unchecked("title"),
                    values: ValueSet::new(),
                })
        );
    }
}
