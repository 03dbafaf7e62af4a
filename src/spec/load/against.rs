//! The checks that need more than the plan file: DNs the plan names must exist in the
//! directories, placeholders must have values there, and every named secret must be readable.
//!
//! Run after `parse`, once the directories are read; they report with the file's spans and
//! never change the `Spec`.

use super::*;

/// Checks what only the directories can tell: every DN the plan file names must exist there.
/// Pins, `ignore`, and the `include`/`exclude` lists of `source` and `distribution_lists` are
/// checked; all missing entries are reported together.
pub fn check_against(
    spec: &Spec,
    source: &Snapshot,
    destination: &Snapshot,
) -> Result<(), PlanFileError> {
    let mut problems = Vec::new();
    let mut check = |dn: &Dn, span: Option<Range<usize>>, side: Side| {
        let snapshot = match side {
            Side::Source => source,
            Side::Destination => destination,
        };
        if !snapshot.contains(dn) {
            problems.push(not_in_directory(dn, span, side, snapshot));
        }
    };
    let m = &spec.matching;
    for pin in m.confirmed.iter().chain(&m.remigrate) {
        let (s, d) = (&pin.source, &pin.destination);
        check(&s.value, Some(range(s.span)), Side::Source);
        check(&d.value, Some(range(d.span)), Side::Destination);
    }
    for dn in &m.ignore_sources {
        check(&dn.value, Some(range(dn.span)), Side::Source);
    }
    for dn in &m.ignore_destinations {
        check(&dn.value, Some(range(dn.span)), Side::Destination);
    }
    // `include`/`exclude` hold plain DNs in the model: their spans come from the text again.
    let dl = spec.distribution_lists.as_ref();
    let lists: [(&str, &str, &[Dn]); 4] = [
        ("source", "include", &spec.source.include),
        ("source", "exclude", &spec.source.exclude),
        (
            "distribution_lists",
            "include",
            dl.map_or(&[], |d| &d.include),
        ),
        (
            "distribution_lists",
            "exclude",
            dl.map_or(&[], |d| &d.exclude),
        ),
    ];
    // Locating them means parsing the plan file's text again (a large plan file takes a good
    // part of a second): only done for a DN that is missing.
    let mut index = None;
    for (section, key, dns) in lists {
        for (i, dn) in dns.iter().enumerate() {
            if source.contains(dn) {
                continue;
            }
            let path = YamlPath::root().key(section).key(key).index(i);
            let span = index
                .get_or_insert_with(|| SpanIndex::build(&spec.text))
                .value_span(&path);
            check(dn, span, Side::Source);
        }
    }
    problems.extend(misspelt_placeholders(spec, source));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PlanFileError::new(&spec.path, &spec.text, problems))
    }
}

/// The attributes that templates name and no source entry carries, each with the places that
/// name it, in file order. One pass over the source for all of them.
pub fn missing_placeholders<'s>(
    spec: &'s Spec,
    source: &Snapshot,
) -> Vec<(&'s AttrName, Vec<&'s Placeholder>)> {
    let mut wanted: Vec<(&AttrName, Vec<&Placeholder>)> = Vec::new();
    for p in &spec.placeholders {
        match wanted.iter_mut().find(|(a, _)| **a == p.attribute) {
            Some((_, uses)) => uses.push(p),
            None => wanted.push((&p.attribute, vec![p])),
        }
    }
    for entry in source.entries() {
        if wanted.is_empty() {
            break;
        }
        wanted.retain(|(a, _)| !entry.has(a.as_str()));
    }
    wanted
}

/// A placeholder no source entry has a value for, that is close to a role or to an attribute
/// the source has, is a misspelling (`{surnam}` for `{surname}`): an error at each place it is
/// written, with the name meant. One close to nothing is left to the plan, which warns.
pub(super) fn misspelt_placeholders(spec: &Spec, source: &Snapshot) -> Vec<Problem> {
    let missing = missing_placeholders(spec, source);
    if missing.is_empty() {
        return Vec::new();
    }
    let mut known: BTreeSet<&str> = Role::ALL.iter().map(|r| r.0).collect();
    for entry in source.entries() {
        known.extend(entry.attrs.keys().map(AttrName::as_str));
    }
    let known: Vec<&str> = known.into_iter().collect();
    let mut problems = Vec::new();
    for (attr, uses) in missing {
        let Some(meant) = closest(attr.as_str(), &known) else {
            continue;
        };
        let mut p = Problem::new(
            codes::UNKNOWN_PLACEHOLDER,
            format!(
                "`{{{attr}}}` is neither a role nor an attribute of any source entry, so it would always be empty"
            ),
        );
        for u in uses {
            p = p.label(range(u.span), format!("in `{}`", u.key));
        }
        problems.push(p.help(format!("did you mean `{{{meant}}}`?")));
    }
    problems
}

/// Reads every secret the plan file names, once each, before anything connects: a variable
/// that is not set or a file that cannot be read is one problem, at every place that names it,
/// reported together with the others. The values are not kept: each connection reads its
/// secret again when it opens (the same one, unless it changed meanwhile).
pub fn check_secrets(spec: &Spec) -> Result<(), PlanFileError> {
    let mut failures: Vec<(&Secret, SecretError, Vec<&SecretUse>)> = Vec::new();
    let mut checked: Vec<&Secret> = Vec::new();
    for used in &spec.secrets {
        if let Some(f) = failures.iter_mut().find(|f| *f.0 == used.secret) {
            f.2.push(used);
            continue;
        }
        if checked.contains(&&used.secret) {
            continue;
        }
        checked.push(&used.secret);
        if let Err(e) = used.secret.resolve() {
            failures.push((&used.secret, e, vec![used]));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let problems = failures
        .into_iter()
        .map(|(secret, error, uses)| {
            let keys: Vec<String> = uses.iter().map(|u| format!("`{}`", u.key)).collect();
            let help = match secret {
                Secret::Env(name) => format!(
                    "set it before running mailplan (`export {name}=…`, or from your secret store), or point the key at a file with `{{ file: PATH }}`"
                ),
                Secret::File(_) => "create the file with the secret as its only line, readable by the user that runs mailplan (paths are relative to the plan file)".to_string(),
            };
            let mut p = Problem::new(
                codes::SECRET_UNAVAILABLE,
                format!("{error} (needed by {}); nothing was connected", keys.join(", ")),
            );
            for u in uses {
                p = p.label(range(u.span), "named here");
            }
            p.help(help)
        })
        .collect();
    Err(PlanFileError::new(&spec.path, &spec.text, problems))
}

#[derive(Clone, Copy)]
pub(super) enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

pub(super) fn not_in_directory(
    dn: &Dn,
    span: Option<Range<usize>>,
    side: Side,
    snapshot: &Snapshot,
) -> Problem {
    // A DN that differs only in its parents (the person is in another OU) is the usual mistake:
    // offer the entries with the same leaf value.
    let leaf = dn.rdn().map(|r| r.first_value().to_lowercase());
    let similar: Vec<String> = snapshot
        .entries()
        .iter()
        .filter(|e| e.dn.rdn().map(|r| r.first_value().to_lowercase()) == leaf && leaf.is_some())
        .take(3)
        .map(|e| format!("`{}`", e.dn))
        .collect();
    let help = if similar.is_empty() {
        format!(
            "check the DN against the {side} directory; DNs compare without regard to case or \
             extra spaces"
        )
    } else {
        format!("did you mean {}?", join_or(&similar))
    };
    Problem::new(
        codes::NOT_IN_DIRECTORY,
        format!("`{dn}` is not in the {side} directory"),
    )
    .label_opt(span, format!("no such entry in the {side} directory"))
    .help(help)
}
