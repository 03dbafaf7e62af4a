//! Writes the directory changes of a saved plan as one LDIF change file, in dependency order.
//!
//! This is the benchmark's fair comparison for `mailplan apply`: `ldapmodify -f` applying
//! exactly the same adds, modifies and deletes from one file (see `scripts/bench-ldap.sh`). It
//! does no precondition checks and keeps no backups, which is what makes it a baseline and not
//! a way to apply plans. Usage: `cargo run --release --example plan_to_ldif SAVED.json > out.ldif`

use std::io::Write as _;
use std::process::ExitCode;

use mailplan::apply::executor::modifications;
use mailplan::directory::Entry;
use mailplan::directory::ldif::{self, Change, ChangeRecord, Record};
use mailplan::plan::ActionKind;
use mailplan::plan::graph::ActionGraph;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: plan_to_ldif SAVED.json > changes.ldif");
        return ExitCode::FAILURE;
    };
    let saved = match mailplan::ops::load_saved(std::path::Path::new(&path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return ExitCode::FAILURE;
        }
    };
    let plan = saved.plan;
    let graph = match ActionGraph::build(&plan) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut records = Vec::new();
    for &i in &graph.order {
        let action = &plan.actions[i];
        match action.kind {
            ActionKind::CreateMailbox | ActionKind::CreateGroup | ActionKind::RestoreEntry => {
                let mut entry = Entry::new(action.target.clone());
                for c in &action.changes {
                    for v in &c.after {
                        entry.add(c.attribute.clone(), v.clone());
                    }
                }
                records.push(Record::Change(ChangeRecord {
                    dn: entry.dn.clone(),
                    change: Change::Add(entry.attrs),
                }));
            }
            ActionKind::DeleteContact => records.push(Record::Change(ChangeRecord {
                dn: action.target.clone(),
                change: Change::Delete,
            })),
            ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts => {}
            _ => {
                for (dn, mods) in modifications(action) {
                    records.push(Record::Change(ChangeRecord {
                        dn,
                        change: Change::Modify(mods),
                    }));
                }
            }
        }
    }
    let text = ldif::records_to_string(&records);
    if std::io::stdout().write_all(text.as_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
