//! Helpers shared by the integration tests: loading fixture cases and planning them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mailplan::ops;
use mailplan::plan::{ActionKind, Plan, Status, Subject};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(case: &str) -> PathBuf {
    root().join("tests/fixtures").join(case).join("plan.yaml")
}

/// Plans a plan file, panicking with the rendered diagnostic on error.
pub fn plan_file(path: &Path) -> Plan {
    let inputs = match ops::load_inputs(path) {
        Ok(i) => i,
        Err(e) => panic!("{:?}", miette::Report::new(e)),
    };
    match ops::make_plan(&inputs) {
        Ok(p) => p,
        Err(e) => panic!("{:?}", miette::Report::new(e)),
    }
}

pub fn plan_case(case: &str) -> Plan {
    plan_file(&fixture(case))
}

pub fn subject<'a>(plan: &'a Plan, source: &str) -> &'a Subject {
    let dn = mailplan::directory::Dn::parse(source).unwrap();
    plan.subjects
        .iter()
        .find(|s| s.source == dn)
        .unwrap_or_else(|| panic!("no subject {source}"))
}

/// The kinds of a subject's actions, in plan order.
pub fn kinds(plan: &Plan, source: &str) -> Vec<ActionKind> {
    let dn = mailplan::directory::Dn::parse(source).unwrap();
    plan.actions
        .iter()
        .filter(|a| a.subject == dn)
        .map(|a| a.kind)
        .collect()
}

pub fn status(plan: &Plan, source: &str) -> Status {
    subject(plan, source).status
}

/// Renders a plan as text without colour.
pub fn text(plan: &Plan) -> String {
    mailplan::render::text::render(plan, mailplan::render::text::Style { color: false })
}
