//! Restore plans: put one destination entry back as a backup holds it.
//!
//! A restore is planned like any change, so it goes through the same executor, preconditions
//! and backups: a deleted entry is added back (it must still be absent, its parent present); a
//! modified one gets its attributes set back (each attribute must still hold what it holds now,
//! or the restore fails as stale rather than overwrite a newer change). A deleted contact also
//! gets back the group memberships the same run moved off it (each group must still exist and
//! not hold it yet), and the plan warns about every address it carries that another object holds
//! now (the mailbox that replaced it). Pure, like the planner.

use crate::directory::{Attrs, Dn, Entry, Snapshot, Value, ValueSet};

use super::model::*;
use super::planner::diff;

/// A group that held the entry before the run that deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormerGroup {
    pub group: Dn,
    /// The `member` value as the group held it.
    pub value: Value,
}

/// [`restore`], with what the destination holds now: the entry's former groups get it back as
/// a member, and every address it carries that another object holds is named in a warning.
pub fn restore_in(backup: &Entry, destination: &Snapshot, former_groups: &[FormerGroup]) -> Plan {
    let live = destination.get(&backup.dn);
    let mut plan = restore(backup, live);
    let depends: Vec<String> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let mut messages = Vec::new();
    let member = crate::directory::AttrName::new_unchecked("member");
    for former in former_groups {
        let Some(group) = destination.get(&former.group) else {
            messages.push(Message {
                level: Level::Warning,
                text: format!(
                    "`{}` held this entry before it was deleted and no longer exists: that membership is not restored",
                    former.group
                ),
            });
            continue;
        };
        let holds = group.texts("member").any(|m| {
            Dn::parse(m).is_ok_and(|d| d == backup.dn)
                || m.eq_ignore_ascii_case(&backup.dn.to_string())
        });
        if holds {
            messages.push(Message {
                level: Level::Info,
                text: format!("`{}` already holds this entry as a member", former.group),
            });
            continue;
        }
        plan.actions.push(Action {
            id: Action::id_for(ActionKind::RestoreEntry, &former.group),
            kind: ActionKind::RestoreEntry,
            subject: backup.dn.clone(),
            target: former.group.clone(),
            depends_on: depends.clone(),
            changes: vec![Change {
                object: None,
                attribute: member.clone(),
                before: ValueSet::new(),
                after: ValueSet::from([former.value.clone()]),
            }],
            preconditions: vec![
                Precondition::Exists {
                    object: former.group.clone(),
                    class: None,
                },
                Precondition::Lacks {
                    object: former.group.clone(),
                    attribute: member.clone(),
                    value: former.value.clone(),
                },
            ],
            items: None,
        });
        messages.push(Message {
            level: Level::Info,
            text: format!("put the entry back into `{}` as a member", former.group),
        });
    }
    for (address, holder) in taken_addresses(backup, destination) {
        messages.push(Message {
            level: Level::Warning,
            text: format!(
                "address {address} of this entry is now held by `{holder}`: mail to it goes there, and the restored entry competes with it for that address"
            ),
        });
    }
    if let Some(subject) = plan.subjects.first_mut() {
        subject.messages.extend(messages);
        if !plan.actions.is_empty() {
            subject.status = Status::Planned;
        }
    }
    plan.summary = Plan::summarise(&plan.subjects, &plan.actions);
    plan
}

/// The SMTP addresses an entry carries: `mail`, `smtp:` proxies and `targetAddress`, lower case.
fn addresses(entry: &Entry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |a: &str| {
        let a = a.trim().to_ascii_lowercase();
        if a.contains('@') && !out.contains(&a) {
            out.push(a);
        }
    };
    for m in entry.texts("mail") {
        add(m);
    }
    for attr in ["proxyAddresses", "targetAddress"] {
        for p in entry.texts(attr) {
            match p.split_once(':') {
                Some((kind, a)) if kind.eq_ignore_ascii_case("smtp") => add(a),
                None => add(p),
                _ => {}
            }
        }
    }
    out
}

/// Each address of `entry` that another destination object carries, with that object.
fn taken_addresses(entry: &Entry, destination: &Snapshot) -> Vec<(String, Dn)> {
    let mine = addresses(entry);
    if mine.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for other in destination.entries() {
        if other.dn == entry.dn {
            continue;
        }
        for a in addresses(other) {
            if mine.contains(&a) {
                out.push((a, other.dn.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The plan that turns `live` (the entry now, if any) back into `backup`.
pub fn restore(backup: &Entry, live: Option<&Entry>) -> Plan {
    let dn = backup.dn.clone();
    let (changes, preconditions) = match live {
        None => (
            diff(&Attrs::new(), backup.attrs.clone()),
            vec![
                Precondition::Absent { object: dn.clone() },
                Precondition::Exists {
                    object: dn.parent(),
                    class: None,
                },
            ],
        ),
        Some(live) => {
            let changes = diff(&live.attrs, backup.attrs.clone());
            let pre = changes
                .iter()
                .map(|c| Precondition::Values {
                    object: dn.clone(),
                    attribute: c.attribute.clone(),
                    values: c.before.clone(),
                })
                .collect();
            (changes, pre)
        }
    };
    let mut actions = Vec::new();
    if !changes.is_empty() {
        actions.push(Action {
            id: Action::id_for(ActionKind::RestoreEntry, &dn),
            kind: ActionKind::RestoreEntry,
            subject: dn.clone(),
            target: dn.clone(),
            depends_on: Vec::new(),
            changes,
            preconditions,
            items: None,
        });
    }
    let subjects = vec![Subject {
        source: dn.clone(),
        kind: SubjectKind::Entry,
        name: dn.to_string(),
        scenario: None,
        status: if actions.is_empty() {
            Status::Unchanged
        } else {
            Status::Planned
        },
        matched: None,
        contacts: Vec::new(),
        candidates: Vec::new(),
        messages: vec![Message {
            level: Level::Info,
            text: if live.is_some() {
                "restore the entry's attributes from its backup".into()
            } else {
                "add the deleted entry back from its backup".into()
            },
        }],
        bad_items: Vec::new(),
    }];
    let summary = Plan::summarise(&subjects, &actions);
    Plan {
        format_version: FORMAT_VERSION.into(),
        messages: Vec::new(),
        subjects,
        actions,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Dn;

    fn contact() -> Entry {
        Entry::new(Dn::parse("CN=Carol,OU=Contacts,DC=acme").unwrap())
            .with("objectClass", "contact")
            .with("mail", "carol@acme.com")
    }

    #[test]
    fn a_deleted_contact_gets_its_groups_back_and_a_warning_for_its_taken_address() {
        let group_dn = Dn::parse("CN=Sales,OU=Groups,DC=acme").unwrap();
        let gone_dn = Dn::parse("CN=Old,OU=Groups,DC=acme").unwrap();
        let mailbox = Entry::new(Dn::parse("CN=Carol C,OU=Migrated,DC=acme").unwrap())
            .with("objectClass", "user")
            .with("proxyAddresses", "SMTP:Carol@acme.com");
        let group = Entry::new(group_dn.clone())
            .with("objectClass", "group")
            .with("member", "CN=Carol C,OU=Migrated,DC=acme");
        let destination = Snapshot::new(vec![mailbox, group]).unwrap();
        let value = Value::text("CN=Carol,OU=Contacts,DC=acme");
        let plan = restore_in(
            &contact(),
            &destination,
            &[
                FormerGroup {
                    group: group_dn.clone(),
                    value: value.clone(),
                },
                FormerGroup {
                    group: gone_dn,
                    value: value.clone(),
                },
            ],
        );
        assert_eq!(plan.actions.len(), 2);
        let back = &plan.actions[1];
        assert_eq!(back.target, group_dn);
        assert_eq!(back.depends_on, [plan.actions[0].id.clone()]);
        assert!(back.preconditions.contains(&Precondition::Lacks {
            object: group_dn.clone(),
            attribute: crate::directory::AttrName::new_unchecked("member"),
            value,
        }));
        let texts: Vec<&str> = plan.subjects[0]
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains("CN=Old,OU=Groups,DC=acme") && t.contains("no longer exists")),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|t| t.starts_with("address carol@acme.com of this entry is now held by `CN=Carol C,OU=Migrated,DC=acme`")),
            "{texts:?}"
        );
    }

    #[test]
    fn a_deleted_entry_is_added_back_if_still_absent() {
        let plan = restore(&contact(), None);
        assert_eq!(plan.actions.len(), 1);
        let a = &plan.actions[0];
        assert_eq!(a.kind, ActionKind::RestoreEntry);
        assert!(a.preconditions.contains(&Precondition::Absent {
            object: contact().dn
        }));
        assert_eq!(a.changes.len(), 2);
    }

    #[test]
    fn a_modified_entry_gets_its_values_back_guarded_by_the_current_ones() {
        let mut live = contact();
        live.attrs
            .remove(&crate::directory::AttrName::new_unchecked("mail"));
        let live = live.with("title", "Lead");
        let plan = restore(&contact(), Some(&live));
        let a = &plan.actions[0];
        let attrs: Vec<&str> = a.changes.iter().map(|c| c.attribute.as_str()).collect();
        assert_eq!(attrs, ["mail", "title"]);
        assert_eq!(a.preconditions.len(), 2);
        assert!(restore(&contact(), Some(&contact())).actions.is_empty());
    }
}
