//! Reruns converge: applying a plan's changes to the destination (in memory, by the plan's own
//! change semantics) and planning again must show no directory changes. This checks that every
//! action the planner emits leads to the state the next plan recognises as done (scenario 6).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use mailplan::directory::{Dn, Entry, ldif};
use mailplan::plan::graph::ActionGraph;
use mailplan::plan::{ActionKind, Plan, Status, SubjectKind};

/// Applies the plan to the destination entries the way DESIGN defines changes: creates add the
/// `after` values, deletes remove the entry, everything else removes `before − after` and adds
/// `after − before` on the change's object.
fn apply_in_memory(destination: &[Entry], plan: &Plan) -> Vec<Entry> {
    let mut entries: BTreeMap<Dn, Entry> = destination
        .iter()
        .map(|e| (e.dn.clone(), e.clone()))
        .collect();
    for i in ActionGraph::build(plan).unwrap().order {
        let a = &plan.actions[i];
        match a.kind {
            ActionKind::DeleteContact => {
                assert!(
                    entries.remove(&a.target).is_some(),
                    "{} deletes a missing entry",
                    a.id
                );
            }
            ActionKind::CreateMailbox
            | ActionKind::CreateGroup
            | ActionKind::CreateAccount
            | ActionKind::CreateDistributionList => {
                let mut e = Entry::new(a.target.clone());
                for c in &a.changes {
                    for v in &c.after {
                        e.add(c.attribute.clone(), v.clone());
                    }
                }
                assert!(
                    entries.insert(a.target.clone(), e).is_none(),
                    "{} creates an existing entry",
                    a.id
                );
            }
            _ => {
                for c in &a.changes {
                    let object = c.object.as_ref().unwrap_or(&a.target);
                    let e = entries
                        .get_mut(object)
                        .unwrap_or_else(|| panic!("{} changes missing {object}", a.id));
                    let values = e.attrs.entry(c.attribute.clone()).or_default();
                    for v in c.removed() {
                        assert!(values.remove(v), "{}: {} lacks {v}", a.id, c.attribute);
                    }
                    for v in c.added() {
                        values.insert(v.clone());
                    }
                    if values.is_empty() {
                        e.attrs.remove(&c.attribute);
                    }
                }
            }
        }
    }
    entries.into_values().collect()
}

/// Plans `plan_file`, applies it, and plans again against the result.
fn rerun(plan_file: &Path, destination_ldif: &Path) -> (Plan, Plan) {
    let first = plan_file_ok(plan_file);
    let text = std::fs::read_to_string(destination_ldif).unwrap();
    let before = ldif::parse_entries(&text, None).unwrap();
    let after = apply_in_memory(&before, &first);
    let (_dir, second_file) = with_destination(plan_file, destination_ldif, &after);
    let second = plan_file_ok(&second_file);
    (first, second)
}

/// A copy of `plan_file` whose destination is `entries` (in a temporary folder, kept alive by
/// the returned guard).
fn with_destination(
    plan_file: &Path,
    destination_ldif: &Path,
    entries: &[Entry],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let after = entries;
    let dir = tempfile::tempdir().unwrap();
    let applied = dir.path().join("applied.ldif");
    std::fs::write(&applied, ldif::entries_to_string(after)).unwrap();
    let yaml = std::fs::read_to_string(plan_file).unwrap();
    let dest_name = destination_ldif.file_name().unwrap().to_str().unwrap();
    let base = plan_file.parent().unwrap();
    let mut rewritten = String::new();
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        if let Some(path) = trimmed.strip_prefix("ldif: ") {
            let indent = &line[..line.len() - trimmed.len()];
            let target = if path.ends_with(dest_name) {
                applied.clone()
            } else {
                base.join(path)
            };
            rewritten.push_str(&format!("{indent}ldif: \"{}\"\n", target.display()));
        } else {
            rewritten.push_str(line);
            rewritten.push('\n');
        }
    }
    let second_file = dir.path().join("plan.yaml");
    std::fs::write(&second_file, rewritten).unwrap();
    (dir, second_file)
}

/// A run stopped after every delete but before any merge: the contacts' data is only in the
/// backups. Planning with the state's history (the links and the pending contacts) finishes the
/// job, ending exactly where an uninterrupted run ends; planning without it cannot.
fn interrupted_before_merges(plan_file: &Path, destination_ldif: &Path) -> Option<bool> {
    let first = plan_file_ok(plan_file);
    if !first
        .actions
        .iter()
        .any(|a| a.kind == ActionKind::DeleteContact)
    {
        return None;
    }
    let text = std::fs::read_to_string(destination_ldif).unwrap();
    let before = ldif::parse_entries(&text, None).unwrap();
    let complete = apply_in_memory(&before, &first);

    let mut partial = first.clone();
    let merges: std::collections::BTreeSet<String> = first
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::MergeAttributes)
        .map(|a| a.id.clone())
        .collect();
    partial
        .actions
        .retain(|a| !merges.contains(&a.id) && !a.depends_on.iter().any(|d| merges.contains(d)));
    let stopped = apply_in_memory(&before, &partial);

    let mut history = mailplan::plan::History::default();
    for a in &first.actions {
        match a.kind {
            ActionKind::CreateMailbox
            | ActionKind::ConvertNtAccount
            | ActionKind::ConvertMailUser => {
                history.links.insert(a.subject.clone(), a.target.clone());
            }
            ActionKind::DeleteContact => {
                let contact = before.iter().find(|e| e.dn == a.target).unwrap().clone();
                history
                    .pending
                    .entry(a.subject.clone())
                    .or_default()
                    .push(contact);
            }
            _ => {}
        }
    }
    let (_dir, file) = with_destination(plan_file, destination_ldif, &stopped);
    let mut inputs = mailplan::ops::load_inputs(&file).unwrap();
    let blind = mailplan::ops::make_plan(&inputs).unwrap();
    inputs.history = history;
    let second = mailplan::ops::make_plan(&inputs).unwrap();
    assert!(
        second.actions.iter().all(|a| !matches!(
            a.kind,
            ActionKind::CreateMailbox | ActionKind::DeleteContact
        )),
        "{}: the rerun creates or deletes again: {:#?}",
        plan_file.display(),
        second.actions.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    let finished = apply_in_memory(&stopped, &second);
    assert_eq!(
        ldif::entries_to_string(&finished),
        ldif::entries_to_string(&complete),
        "{}: resumed with the history, the end differs from an uninterrupted run",
        plan_file.display()
    );
    let blind_end = apply_in_memory(&stopped, &blind);
    Some(ldif::entries_to_string(&blind_end) != ldif::entries_to_string(&complete))
}

#[test]
fn a_run_stopped_before_its_merges_is_finished_from_the_history() {
    let mut cases = vec![(
        root().join("examples/plans/quickstart.yaml"),
        root().join("examples/data/ad.ldif"),
    )];
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("destination.ldif").exists() {
            cases.push((dir.join("plan.yaml"), dir.join("destination.ldif")));
        }
    }
    let mut checked = 0;
    let mut blind_would_lose = 0;
    for (plan, dest) in &cases {
        if let Some(lost) = interrupted_before_merges(plan, dest) {
            checked += 1;
            blind_would_lose += usize::from(lost);
        }
    }
    assert!(checked >= 5, "only {checked} cases delete contacts");
    // Without the history every such case ends elsewhere: the contacts' addresses are lost.
    assert_eq!(blind_would_lose, checked);
}

fn plan_file_ok(path: &Path) -> Plan {
    plan_file(path)
}

fn assert_converged(first: &Plan, second: &Plan) {
    assert!(first.has_changes());
    let leftover: Vec<&str> = second.actions.iter().map(|a| a.id.as_str()).collect();
    assert!(leftover.is_empty(), "the rerun still plans: {leftover:#?}");
    for s in &second.subjects {
        let before = first
            .subjects
            .iter()
            .find(|f| f.source == s.source)
            .unwrap();
        if before.status == Status::Planned {
            assert_eq!(s.status, Status::Unchanged, "{} after apply", s.source);
            if s.kind == SubjectKind::Person {
                assert_eq!(s.scenario, Some(6), "{} after apply", s.source);
            }
        } else {
            assert_eq!(s.status, before.status, "{} kept its status", s.source);
        }
    }
}

#[test]
fn quickstart_converges() {
    let (first, second) = rerun(
        &root().join("examples/plans/quickstart.yaml"),
        &root().join("examples/data/ad.ldif"),
    );
    assert_converged(&first, &second);
}

#[test]
fn every_fixture_converges() {
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("destination.ldif").exists() {
            continue;
        }
        let first = plan_file(&dir.join("plan.yaml"));
        if !first.has_changes() {
            continue;
        }
        let (first, second) = rerun(&dir.join("plan.yaml"), &dir.join("destination.ldif"));
        assert_converged(&first, &second);
    }
}

#[test]
fn generated_directories_converge() {
    let dir = tempfile::tempdir().unwrap();
    let opts = mailplan::generate::GenerateOptions {
        persons: 1_000,
        destination_objects: 3_000,
        seed: 11,
    };
    mailplan::generate::generate_into(dir.path(), &opts).unwrap();
    let (first, second) = rerun(
        &dir.path().join("plan.yaml"),
        &dir.path().join("destination.ldif"),
    );
    assert_converged(&first, &second);
}
