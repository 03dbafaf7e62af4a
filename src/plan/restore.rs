//! Restore plans: put one destination entry back as a backup holds it.
//!
//! A restore is planned like any change, so it goes through the same executor, preconditions
//! and backups: a deleted entry is added back (it must still be absent, its parent present); a
//! modified one gets its attributes set back (each attribute must still hold what it holds now,
//! or the restore fails as stale rather than overwrite a newer change). Pure, like the planner.

use crate::directory::{Attrs, Entry};

use super::model::*;
use super::planner::diff;

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
