//! A soft candidate shown beside its source person, for `plan --interactive`: one row per fact
//! (DN, names, addresses, department, last logon), the person on the left and the destination
//! object on the right, and what the two have in common.
//!
//! It only lays out what it is given: which facts are shown and where they come from is decided
//! by the operation that asks; nothing here reads a directory or asks anything.

use std::fmt::Write as _;

/// What is shown of one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    pub dn: String,
    pub names: Vec<String>,
    pub addresses: Vec<String>,
    pub department: Option<String>,
    /// When the account last logged on, when the directory records it.
    pub last_logon: Option<String>,
}

/// One question: a person and one of its soft candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub person: Card,
    pub candidate: Card,
    /// How the candidate was found: `sAMAccountName jsmith`, `CN John Smith`.
    pub found_by: String,
    /// `n of m` among the questions asked.
    pub position: (usize, usize),
}

/// The person and the candidate side by side.
pub fn side_by_side(pair: &Pair) -> String {
    let rows = |c: &Card| -> Vec<(&'static str, Vec<String>)> {
        vec![
            ("DN", vec![c.dn.clone()]),
            ("names", c.names.clone()),
            ("addresses", c.addresses.clone()),
            ("department", c.department.iter().cloned().collect()),
            ("last logon", c.last_logon.iter().cloned().collect()),
        ]
    };
    let left = rows(&pair.person);
    let right = rows(&pair.candidate);
    let label_width = 10;
    let left_width = left
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|s| s.chars().count())
        .chain(std::iter::once("source person".len()))
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSoft candidate {} of {} (found by {}):\n",
        pair.position.0, pair.position.1, pair.found_by
    );
    let _ = writeln!(
        out,
        "  {:label_width$}  {:left_width$}  destination candidate",
        "", "source person"
    );
    for ((label, l), (_, r)) in left.iter().zip(right.iter()) {
        let lines = l.len().max(r.len()).max(1);
        for i in 0..lines {
            let lv = l
                .get(i)
                .map_or(if i == 0 { "-" } else { "" }, String::as_str);
            let rv = r
                .get(i)
                .map_or(if i == 0 { "-" } else { "" }, String::as_str);
            let label = if i == 0 { *label } else { "" };
            let line = format!("  {label:label_width$}  {lv:left_width$}  {rv}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sides_are_in_columns_and_missing_facts_are_dashes() {
        let pair = Pair {
            person: Card {
                dn: "CN=John Smith,OU=Sales,O=Acme".into(),
                names: vec!["John Smith".into(), "jsmith".into()],
                addresses: vec!["john.smith@acme.com".into()],
                department: Some("Sales".into()),
                last_logon: None,
            },
            candidate: Card {
                dn: "CN=jsmith,CN=Users,DC=acme,DC=test".into(),
                names: vec!["jsmith".into()],
                addresses: Vec::new(),
                department: None,
                last_logon: Some("2026-03-01T08:00:00Z".into()),
            },
            found_by: "sAMAccountName jsmith".into(),
            position: (1, 2),
        };
        let text = side_by_side(&pair);
        assert!(text.contains("Soft candidate 1 of 2 (found by sAMAccountName jsmith)"));
        assert!(
            text.contains(
                "  DN          CN=John Smith,OU=Sales,O=Acme  CN=jsmith,CN=Users,DC=acme,DC=test\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  names       John Smith                     jsmith\n              jsmith\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  last logon  -                              2026-03-01T08:00:00Z\n"),
            "{text}"
        );
    }
}
