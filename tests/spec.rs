//! Plan files in, `Spec` or located diagnostics out: every test that expects a problem checks its
//! code, its message and its line and column in the file.

use std::path::{Path, PathBuf};

use mailplan::directory::{AttrName, Dn, Entry, Filter, Snapshot};
use mailplan::spec::{
    self, DirectorySource, Flavor, MergePolicy, Mode, PlanFileError, Problem, Profile, Role,
    Secret, SecretError, Spec, Template, TemplatePart, codes,
};

const MINIMAL: &str = r#"version: 1
source:
  profile: domino            # domino | ldap | active-directory
  notes_domain: ACME         # used to build NOTES: addresses
  directory:
    ldif: domino.ldif
destination:
  flavor: active-directory
  directory:
    ldif: ad.ldif
  container: "OU=Migrated,DC=acme,DC=test"   # where new objects are created
matching:
  mode: batch                # batch | interactive
  confirmed:                 # soft matches an administrator confirmed
    - source: "CN=Jane Doe,OU=Sales,O=Acme"
      destination: "CN=jdoe,CN=Users,DC=acme,DC=test"
"#;

const FULL: &str = r#"version: 1
source:
  profile: domino
  notes_domain: ACME
  directory: { ldif: exports/domino.ldif }
  base: "O=Acme"
  filter: "(objectClass=dominoPerson)"
  include: ["CN=Jane Doe,OU=Sales,O=Acme", "CN=John Roe,OU=Sales,O=Acme"]
  exclude:
    - "CN=Old Admin,O=Acme"
  roles:
    smtp: [mail, mailAlternateAddress]
    short_names: [uid]
    full_names: [cn, fullName]
    given_name: givenName
    surname: sn
destination:
  flavor: active-directory
  directory:
    ldif: /srv/exports/ad.ldif
  container: "OU=Migrated,DC=acme,DC=test"
  domains: [Acme.COM, acme-mail.test]
  mailbox_database: "CN=DB01,CN=Databases,CN=Exchange,CN=Services,CN=Configuration,DC=acme,DC=test"
  exchange_org: Acme
  classify:
    mailbox_user: "(&(objectClass=user)(homeMDB=*))"
    mail_enabled_user: "(&(objectClass=user)(targetAddress=*))"
    nt_account: "(objectClass=user)"
    contact: "(objectClass=contact)"
    group: "(objectClass=group)"
  mapping:
    title: "{title}"
    displayName: "{surname}, {given_name}"
    extensionAttribute1: null
matching:
  mode: interactive
  confirmed:
    - source: "CN=Jane Doe,OU=Sales,O=Acme"
      destination: "CN=jdoe,CN=Users,DC=acme,DC=test"
  remigrate:
    - source: "CN=John Roe,OU=Sales,O=Acme"
      mailbox: "CN=jroe,CN=Users,DC=acme,DC=test"
  ignore:
    - source: "CN=Test User,O=Acme"
    - destination: "CN=Administrator,CN=Users,DC=acme,DC=test"
merge:
  policy: prefer-contact
  attributes: [telephoneNumber, mobile]
distribution_lists:
  filter: "(objectClass=dominoGroup)"
  include: ["CN=Sales,O=Acme"]
  exclude: ["CN=Everyone,O=Acme"]
  container: "OU=Groups,OU=Migrated,DC=acme,DC=test"
"#;

fn dn(s: &str) -> Dn {
    Dn::parse(s).unwrap()
}

fn ok(path: &str, text: &str) -> Spec {
    match spec::parse(Path::new(path), text) {
        Ok(spec) => spec,
        Err(e) => panic!("expected the plan to parse:\n{}", render(&e)),
    }
}

fn err(text: &str) -> PlanFileError {
    match spec::parse(Path::new("plan.yaml"), text) {
        Ok(_) => panic!("expected the plan to be rejected"),
        Err(e) => e,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The problem with this code (exactly one), with its line and column.
fn problem<'e>(text: &str, e: &'e PlanFileError, code: &str) -> (&'e Problem, (usize, usize)) {
    let found: Vec<&Problem> = e.problems().iter().filter(|p| p.code() == code).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{code}` problem in:\n{}",
        render(e)
    );
    let p = found[0];
    let span = p.span().expect("problem has a location");
    (p, line_col(text, span.start))
}

/// The text under a problem's primary label.
fn labelled<'t>(text: &'t str, p: &Problem) -> &'t str {
    &text[p.span().unwrap()]
}

fn render(e: &PlanFileError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, e)
        .unwrap();
    out
}

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spec")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

// ---- Files that are accepted ----

#[test]
fn the_minimal_file_parses_into_the_expected_model() {
    let spec = ok("/plans/acme/plan.yaml", MINIMAL);
    assert_eq!(spec.path, Path::new("/plans/acme/plan.yaml"));
    assert_eq!(spec.text, MINIMAL);

    let s = &spec.source;
    assert_eq!(s.profile, Profile::Domino);
    assert_eq!(s.notes_domain.as_deref(), Some("ACME"));
    assert_eq!(
        s.directory,
        DirectorySource::Ldif("/plans/acme/domino.ldif".into())
    );
    assert!(s.base.is_none() && s.filter.is_none());
    assert!(s.include.is_empty() && s.exclude.is_empty());
    assert!(s.roles.smtp.is_none() && s.roles.given_name.is_none());

    let d = &spec.destination;
    assert_eq!(d.flavor, Flavor::ActiveDirectory);
    assert_eq!(
        d.directory,
        DirectorySource::Ldif("/plans/acme/ad.ldif".into())
    );
    assert_eq!(d.container, dn("OU=Migrated,DC=acme,DC=test"));
    assert!(d.domains.is_empty() && d.mapping.is_empty());
    assert!(d.mailbox_database.is_none() && d.exchange_org.is_none());
    assert!(d.classify.contact.is_none() && d.classify.mailbox_user.is_none());

    let m = &spec.matching;
    assert_eq!(m.mode, Mode::Batch);
    assert_eq!(m.confirmed.len(), 1);
    let pin = &m.confirmed[0];
    assert_eq!(pin.source.value, dn("CN=Jane Doe,OU=Sales,O=Acme"));
    assert_eq!(
        pin.destination.value,
        dn("CN=jdoe,CN=Users,DC=acme,DC=test")
    );
    // Spans cover the value as written, quotes included.
    let at = |span: miette::SourceSpan| &MINIMAL[span.offset()..span.offset() + span.len()];
    assert_eq!(at(pin.source.span), "\"CN=Jane Doe,OU=Sales,O=Acme\"");
    assert_eq!(
        at(pin.destination.span),
        "\"CN=jdoe,CN=Users,DC=acme,DC=test\""
    );
    assert!(m.remigrate.is_empty() && m.ignore_sources.is_empty());
    assert!(m.ignore_destinations.is_empty());

    assert_eq!(spec.merge.policy, MergePolicy::FillEmpty);
    assert!(spec.distribution_lists.is_none());
}

#[test]
fn every_default_is_applied() {
    let text = "version: 1\nsource:\n  profile: ldap\n  directory: { ldif: s.ldif }\n\
                destination:\n  flavor: ldap\n  directory: { ldif: d.ldif }\n  container: \
                OU=New,DC=x,DC=test\nmerge: {}\ndistribution_lists: {}\n";
    let spec = ok("plan.yaml", text);
    assert_eq!(spec.matching.mode, Mode::Batch);
    assert!(spec.matching.confirmed.is_empty());
    assert_eq!(spec.merge.policy, MergePolicy::FillEmpty);
    let merged: Vec<&str> = spec.merge.attributes.iter().map(AttrName::as_str).collect();
    assert_eq!(
        merged,
        [
            "telephoneNumber",
            "mobile",
            "facsimileTelephoneNumber",
            "title",
            "department",
            "company",
            "physicalDeliveryOfficeName",
            "streetAddress",
            "l",
            "st",
            "postalCode",
            "c",
            "description",
            "info"
        ]
    );
    let dl = spec
        .distribution_lists
        .expect("distribution_lists: {} is kept");
    assert_eq!(
        dl.filter.to_string(),
        "(|(objectClass=dominoGroup)(objectClass=groupOfNames))"
    );
    assert!(dl.include.is_empty() && dl.exclude.is_empty() && dl.container.is_none());
    assert_eq!(spec.source.notes_domain, None);
    assert!(spec.destination.domains.is_empty());

    // Sections written but left empty are the same as sections left out.
    let nulls = text.replace("merge: {}", "merge:\nmatching:");
    let spec = ok("plan.yaml", &nulls);
    assert_eq!(spec.matching.mode, Mode::Batch);
    assert_eq!(spec.merge.attributes.len(), 14);
}

#[test]
fn the_full_file_parses_every_key() {
    let spec = ok("plans/wave1.yaml", FULL);
    let s = &spec.source;
    assert_eq!(
        s.directory,
        DirectorySource::Ldif("plans/exports/domino.ldif".into())
    );
    assert_eq!(s.base, Some(dn("O=Acme")));
    assert_eq!(
        s.filter.as_ref().map(Filter::to_string).as_deref(),
        Some("(objectClass=dominoPerson)")
    );
    assert_eq!(
        s.include,
        [
            dn("CN=Jane Doe,OU=Sales,O=Acme"),
            dn("CN=John Roe,OU=Sales,O=Acme")
        ]
    );
    assert_eq!(s.exclude, [dn("CN=Old Admin,O=Acme")]);
    let smtp: Vec<&str> = s
        .roles
        .smtp
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(smtp, ["mail", "mailAlternateAddress"]);
    assert_eq!(s.roles.surname.as_ref().map(|a| a.as_str()), Some("sn"));
    assert_eq!(s.roles.full_names.as_ref().map(Vec::len), Some(2));

    let d = &spec.destination;
    // Absolute paths are kept as they are.
    assert_eq!(
        d.directory,
        DirectorySource::Ldif("/srv/exports/ad.ldif".into())
    );
    assert_eq!(d.domains, ["acme.com", "acme-mail.test"]);
    assert!(d.mailbox_database.is_some());
    assert_eq!(d.exchange_org.as_deref(), Some("Acme"));
    assert!(d.classify.group.is_some() && d.classify.nt_account.is_some());
    assert_eq!(d.mapping.len(), 3);
    assert_eq!(
        d.mapping[&AttrName::new("displayname").unwrap()],
        Some(Template {
            parts: vec![
                TemplatePart::Role(Role::Surname),
                TemplatePart::Literal(", ".into()),
                TemplatePart::Role(Role::GivenName),
            ]
        })
    );
    assert_eq!(
        d.mapping[&AttrName::new("extensionAttribute1").unwrap()],
        None
    );

    let m = &spec.matching;
    assert_eq!(m.mode, Mode::Interactive);
    assert_eq!(
        m.remigrate[0].destination.value,
        dn("CN=jroe,CN=Users,DC=acme,DC=test")
    );
    assert_eq!(m.ignore_sources[0].value, dn("CN=Test User,O=Acme"));
    assert_eq!(
        m.ignore_destinations[0].value,
        dn("CN=Administrator,CN=Users,DC=acme,DC=test")
    );
    assert_eq!(spec.merge.policy, MergePolicy::PreferContact);
    assert_eq!(spec.merge.attributes.len(), 2);
    let dl = spec.distribution_lists.unwrap();
    assert_eq!(dl.include, [dn("CN=Sales,O=Acme")]);
    assert_eq!(
        dl.container,
        Some(dn("OU=Groups,OU=Migrated,DC=acme,DC=test"))
    );
}

#[test]
fn relative_paths_start_at_the_plan_files_folder() {
    let text = MINIMAL.replace("ldif: domino.ldif", "ldif: ../data/domino.ldif");
    let spec = ok("plans/wave1.yaml", &text);
    assert_eq!(
        spec.source.directory,
        DirectorySource::Ldif(Path::new("plans").join("../data/domino.ldif"))
    );
    // A plan file in the current folder keeps relative paths relative to it.
    let spec = ok("plan.yaml", MINIMAL);
    assert_eq!(
        spec.destination.directory,
        DirectorySource::Ldif("ad.ldif".into())
    );
    let abs = MINIMAL.replace("ldif: ad.ldif", "ldif: /exports/ad.ldif");
    let spec = ok("plans/wave1.yaml", &abs);
    assert_eq!(
        spec.destination.directory,
        DirectorySource::Ldif("/exports/ad.ldif".into())
    );
}

#[test]
fn load_reads_the_file_and_names_a_missing_one() {
    let (path, _) = fixture("valid");
    let spec = spec::load(&path).unwrap();
    assert_eq!(
        spec.source.directory,
        DirectorySource::Ldif(path.parent().unwrap().join("domino.ldif"))
    );

    let missing = Path::new("no/such/plan.yaml");
    let e = spec::load(missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read plan file `no/such/plan.yaml`: no such file"
    );
    assert_eq!(e.path(), missing);
    assert!(e.problems().is_empty());
    assert!(render(&e).contains("mailplan::spec::unreadable"));
}

// ---- Syntax ----

#[test]
fn bad_indentation_is_located() {
    let (_, text) = fixture("bad_indentation");
    let e = err(&text);
    assert_eq!(e.problems().len(), 1);
    let (p, at) = problem(&text, &e, codes::SYNTAX);
    assert_eq!(at, (6, 2));
    assert!(p.message().contains("did not find expected key"), "{p}");
    assert!(p.help_text().unwrap().contains("indentation"));
}

#[test]
fn an_unclosed_quote_points_at_the_opening_quote() {
    let (_, text) = fixture("unclosed_quote");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::SYNTAX);
    assert_eq!(p.message(), "invalid YAML: a quoted value is never closed");
    assert_eq!(at, (4, 17));
    assert_eq!(labelled(&text, p), "\"");
    assert!(p.help_text().unwrap().contains("closing quote"));
}

#[test]
fn a_tab_in_the_indentation_is_explained() {
    let text = "version: 1\nsource:\n\tprofile: domino\n";
    let e = err(text);
    let (p, at) = problem(text, &e, codes::SYNTAX);
    assert_eq!(at.0, 3);
    assert!(
        p.help_text().unwrap().contains("spaces"),
        "{:?}",
        p.help_text()
    );
}

#[test]
fn empty_files_and_lists_get_one_clear_problem() {
    for text in ["", "# nothing yet\n", "~\n"] {
        let e = err(text);
        assert_eq!(e.problems().len(), 1, "{text:?}");
        assert_eq!(e.problems()[0].code(), codes::EMPTY);
        assert!(e.problems()[0].help_text().unwrap().contains("version: 1"));
    }
    let text = "- version: 1\n";
    let e = err(text);
    let (_, at) = problem(text, &e, codes::NOT_A_MAPPING);
    assert_eq!(at, (1, 1));
}

#[test]
fn a_second_document_is_rejected() {
    let text = format!("{MINIMAL}---\nversion: 1\n");
    let e = err(&text);
    assert_eq!(e.problems()[0].code(), codes::SYNTAX);
    assert!(e.problems()[0].help_text().unwrap().contains("---"));
}

// ---- Unknown, missing and repeated keys ----

#[test]
fn every_unknown_key_is_reported_with_a_suggestion() {
    let text = MINIMAL
        .replace("  notes_domain: ACME ", "  notes-domain: ACME ")
        .replace("    ldif: ad.ldif", "    ldif: ad.ldif\n    ldiff: x.ldif")
        .replace(
            "      destination: \"CN=jdoe",
            "      destinaton: \"CN=x,O=y\"\n      destination: \"CN=jdoe",
        )
        + "colour: blue\n";
    let e = err(&text);
    let unknown: Vec<(&str, (usize, usize), Option<&str>)> = e
        .problems()
        .iter()
        .filter(|p| p.code() == codes::UNKNOWN_KEY)
        .map(|p| {
            (
                p.message(),
                line_col(&text, p.span().unwrap().start),
                p.help_text(),
            )
        })
        .collect();
    assert_eq!(
        unknown,
        [
            (
                "unknown key `notes-domain` in `source`",
                (4, 3),
                Some("did you mean `notes_domain`?")
            ),
            (
                "unknown key `ldiff` in `destination.directory`",
                (11, 5),
                Some("did you mean `ldif`?")
            ),
            (
                "unknown key `destinaton` in `matching.confirmed[0]`",
                (17, 7),
                Some("did you mean `destination`?")
            ),
            (
                "unknown key `colour` at the top level",
                (19, 1),
                Some(
                    "valid keys at the top level: `version`, `source`, `destination`, \
                     `matching`, `merge`, `distribution_lists`, `items`, `safety`, `state`"
                )
            ),
        ]
    );
    assert_eq!(e.problems().len(), 4, "{}", render(&e));
    assert_eq!(e.to_string(), "plan file `plan.yaml` has 4 problems");
}

#[test]
fn a_key_at_the_wrong_level_says_where_it_belongs() {
    let text = MINIMAL.replace(
        "  notes_domain: ACME ",
        "  container: \"OU=x,O=y\"\n  mode: batch #",
    );
    let e = err(&text);
    let messages: Vec<(&str, Option<&str>)> = e
        .problems()
        .iter()
        .map(|p| (p.message(), p.help_text()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "unknown key `container` in `source`",
                Some(
                    "`container` belongs in `destination` or `distribution_lists`, not in `source`"
                )
            ),
            (
                "unknown key `mode` in `source`",
                Some("`mode` belongs in `matching`, not in `source`")
            ),
        ]
    );
}

#[test]
fn unknown_keys_are_found_even_where_a_type_error_stopped_serde() {
    // `mode: 3` stops the `matching` section before serde reaches `confirmd`.
    let text = MINIMAL
        .replace("mode: batch ", "mode: 3     ")
        .replace("  confirmed:", "  confirmd:");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNKNOWN_KEY);
    assert_eq!(p.message(), "unknown key `confirmd` in `matching`");
    assert_eq!(at, (14, 3));
    let (p, at) = problem(&text, &e, codes::UNKNOWN_VALUE);
    assert_eq!(at, (13, 9));
    assert_eq!(p.message(), "`3` is not a valid value for `matching.mode`");
}

#[test]
fn a_missing_required_key_points_at_its_parent() {
    let text = MINIMAL.replace(
        "  container: \"OU=Migrated,DC=acme,DC=test\"   # where new objects are created\n",
        "",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::MISSING_KEY);
    assert_eq!(p.message(), "missing key `container` in `destination`");
    assert_eq!(at, (7, 1));
    assert_eq!(labelled(&text, p), "destination");
    assert!(
        p.help_text()
            .unwrap()
            .starts_with("add `container:` to `destination`. The container (OU)")
    );
    assert_eq!(e.problems().len(), 1);
}

#[test]
fn missing_keys_are_all_reported_and_a_misspelt_one_once() {
    let text = "version: 1\nsource:\n  profile: domino\ndestination:\n  flavor: ldap\n  \
                directory: { ldif: d.ldif }\n  contaner: \"OU=x,DC=y\"\nmatching:\n  confirmed:\n    \
                - source: \"CN=a,O=b\"\n";
    let e = err(text);
    let got: Vec<(&str, &str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| {
            (
                p.code(),
                p.message(),
                line_col(text, p.span().unwrap().start),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                codes::MISSING_KEY,
                "missing key `directory` in `source`",
                (2, 1)
            ),
            (
                codes::UNKNOWN_KEY,
                "unknown key `contaner` in `destination`",
                (7, 3)
            ),
            (
                codes::MISSING_KEY,
                "missing key `destination` in `matching.confirmed[0]`",
                (10, 7)
            ),
        ]
    );
}

#[test]
fn a_missing_section_is_reported_at_the_top() {
    let text = "version: 1\ndestination:\n  flavor: ldap\n  directory: { ldif: d.ldif }\n  \
                container: \"OU=x,DC=y\"\n";
    let e = err(text);
    let (p, at) = problem(text, &e, codes::MISSING_KEY);
    assert_eq!(p.message(), "missing key `source` at the top level");
    assert_eq!(at, (1, 1));
    assert!(
        p.help_text()
            .unwrap()
            .starts_with("add `source:` at the top level")
    );
}

#[test]
fn a_required_key_without_a_value_is_reported() {
    let text = MINIMAL.replace(
        "  container: \"OU=Migrated,DC=acme,DC=test\"",
        "  container:",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::EMPTY_VALUE);
    assert_eq!(p.message(), "`destination.container` has no value");
    assert_eq!(at, (11, 3));
}

#[test]
fn repeated_keys_are_reported_with_both_places() {
    let text = MINIMAL.replace(
        "  flavor: active-directory\n",
        "  flavor: active-directory\n  flavor: ldap\n",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::DUPLICATE_KEY);
    assert_eq!(p.message(), "`flavor` is written twice in `destination`");
    assert_eq!(at, (9, 3));
    assert_eq!(line_col(&text, p.labels()[1].span.start), (8, 3));
    assert_eq!(e.problems().len(), 1, "{}", render(&e));
}

// ---- Wrong types and values ----

#[test]
fn every_wrong_type_is_reported() {
    let (_, text) = fixture("wrong_types");
    let e = err(&text);
    let got: Vec<(&str, &str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| {
            (
                p.code(),
                p.message(),
                line_col(&text, p.span().unwrap().start),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                codes::WRONG_TYPE,
                "`version` must be a whole number, not the text \"one\"",
                (1, 10)
            ),
            (
                codes::UNKNOWN_VALUE,
                "`notes` is not a valid value for `source.profile`",
                (3, 12)
            ),
            (
                codes::WRONG_TYPE,
                "`destination.mapping.title` must be a template string, not a mapping",
                (11, 12)
            ),
            (
                codes::UNKNOWN_VALUE,
                "`sometimes` is not a valid value for `matching.mode`",
                (13, 9)
            ),
            (
                codes::UNKNOWN_VALUE,
                "`prefer-contacts` is not a valid value for `merge.policy`",
                (15, 11)
            ),
            (
                codes::WRONG_TYPE,
                "`merge.attributes` must be a list, not the text \"telephoneNumber\"",
                (16, 15)
            ),
        ]
    );
    let helps: Vec<&str> = e.problems().iter().filter_map(|p| p.help_text()).collect();
    assert_eq!(helps[0], "write `version: 1` (a number, without quotes)");
    assert!(helps[1].contains("`domino`: A Lotus Domino directory"));
    assert!(helps[1].contains("`active-directory`"));
    assert_eq!(
        helps[2],
        "a template that starts with `{` must be quoted, e.g. `title: \"{title}\"`"
    );
    assert!(helps[3].contains("`batch`") && helps[3].contains("`interactive`"));
    assert_eq!(helps[4], "did you mean `prefer-contact`?");
    assert_eq!(
        helps[5],
        "write a list: `attributes: [a, b]`, or one `- item` per line below the key"
    );
}

#[test]
fn a_wrong_type_does_not_hide_the_other_problems_of_its_section() {
    let text = MINIMAL
        .replace("flavor: active-directory", "flavor: exchange")
        .replace("\"OU=Migrated,DC=acme,DC=test\"", "\"\"")
        .replace(
            "  container:",
            "  domains: { acme.com: yes }\n  mapping: { title: [a], info: \"{oops\" }\n  container:",
        );
    let e = err(&text);
    let got: Vec<(&str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| (p.message(), line_col(&text, p.span().unwrap().start)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "`exchange` is not a valid value for `destination.flavor`",
                (8, 11)
            ),
            (
                "`destination.domains` must be a list, not a mapping",
                (11, 12)
            ),
            (
                "`destination.mapping.title` must be a template string, not a list",
                (12, 21)
            ),
            (
                "`destination.mapping.info` is not a valid template: unclosed `{` at byte 0",
                (12, 33)
            ),
            ("`destination.container` cannot be the root DN", (13, 14)),
        ]
    );
}

#[test]
fn a_scalar_where_a_list_belongs_is_explained() {
    let text = MINIMAL.replace(
        "  notes_domain: ACME ",
        "  include: \"CN=a,O=b\"\n  notes_domain: ACME ",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::WRONG_TYPE);
    assert_eq!(
        p.message(),
        "`source.include` must be a list, not the text \"CN=a,O=b\""
    );
    assert_eq!(at, (4, 12));
    assert!(
        p.help_text()
            .unwrap()
            .starts_with("write a list: `include: [a, b]`")
    );
}

#[test]
fn an_unsupported_version_is_reported() {
    let text = MINIMAL.replace("version: 1", "version: 2");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNSUPPORTED_VERSION);
    assert_eq!(p.message(), "plan-file version 2 is not supported");
    assert_eq!(at, (1, 10));
}

// ---- Meaning ----

#[test]
fn invalid_dns_in_confirmed_and_container_are_located() {
    let text = MINIMAL
        .replace(
            "\"OU=Migrated,DC=acme,DC=test\"",
            "\"OU=Migrated,acme,DC=test\"",
        )
        .replace(
            "\"CN=Jane Doe,OU=Sales,O=Acme\"",
            "\"CN=Doe, Jane,OU=Sales,O=Acme\"",
        );
    let e = err(&text);
    assert_eq!(e.problems().len(), 2);
    let (container, confirmed) = (&e.problems()[0], &e.problems()[1]);
    assert_eq!(container.code(), codes::INVALID_DN);
    assert_eq!(
        container.message(),
        "`destination.container` is not a valid DN: `OU=Migrated,acme,DC=test`: RDN 2 has no `=` \
         (expected `type=value`, e.g. `CN=John Smith`)"
    );
    assert_eq!(line_col(&text, container.span().unwrap().start), (11, 14));
    assert_eq!(labelled(&text, container), "\"OU=Migrated,acme,DC=test\"");
    assert!(container.help_text().unwrap().contains("`\\,`"));
    assert!(
        confirmed
            .message()
            .starts_with("`matching.confirmed[0].source` is not a valid DN")
    );
    assert_eq!(line_col(&text, confirmed.span().unwrap().start), (15, 15));
}

#[test]
fn the_container_cannot_be_the_root() {
    let text = MINIMAL.replace("\"OU=Migrated,DC=acme,DC=test\"", "\"\"");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::ROOT_CONTAINER);
    assert_eq!(p.message(), "`destination.container` cannot be the root DN");
    assert_eq!(at, (11, 14));
}

/// Where a filter problem should be reported: the value's column, past its opening quote, plus
/// the parser's own byte position.
fn expected_filter_column(text: &str, value: &str) -> (usize, usize) {
    let quoted = format!("\"{value}\"");
    let start = text.find(&quoted).unwrap() + 1;
    let position = Filter::parse(value).unwrap_err().position;
    line_col(text, start + position)
}

#[test]
fn an_invalid_filter_points_inside_the_quoted_string() {
    // Every filter parser rejects an empty filter.
    let text = MINIMAL.replace(
        "  notes_domain: ACME ",
        "  filter: \"   \"\n  notes_domain: ACME ",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_FILTER);
    assert!(
        p.message()
            .starts_with("`source.filter` is not a valid LDAP filter: ")
    );
    assert_eq!(at, expected_filter_column(&text, "   "));
    assert!(p.help_text().unwrap().contains("RFC 4515"));
}

#[test]
fn a_malformed_filter_in_classify_is_located() {
    let value = "(&(objectClass=contact)(mail=*)";
    let text = MINIMAL.replace(
        "  container:",
        &format!("  classify:\n    contact: \"{value}\"\n  container:"),
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_FILTER);
    assert!(
        p.message()
            .starts_with("`destination.classify.contact` is not a valid LDAP filter: ")
    );
    assert_eq!(at, expected_filter_column(&text, value));

    // The same filter in single quotes with a doubled quote inside: the column still matches.
    let value = "(cn=O''Brien";
    let text = MINIMAL.replace(
        "  container:",
        &format!("  classify:\n    contact: '{value}'\n  container:"),
    );
    let e = err(&text);
    let (_, at) = problem(&text, &e, codes::INVALID_FILTER);
    let start = text.find(value).unwrap();
    let position = Filter::parse("(cn=O'Brien").unwrap_err().position;
    // Past the doubled quote, the file is one byte ahead of the value.
    let shift = usize::from(position > "(cn=O'".len() - 1);
    assert_eq!(at, line_col(&text, start + position + shift));
}

#[test]
fn invalid_templates_point_at_the_brace() {
    let text = MINIMAL.replace(
        "  container:",
        "  mapping:\n    displayName: \"{surname}, {given_name\"\n    title: \"{no such}\"\n    \
         info: \"a}b\"\n  container:",
    );
    let e = err(&text);
    let got: Vec<(&str, (usize, usize), &str)> = e
        .problems()
        .iter()
        .map(|p| {
            (
                p.message(),
                line_col(&text, p.span().unwrap().start),
                labelled(&text, p),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "`destination.mapping.displayName` is not a valid template: unclosed `{` at byte 11",
                (12, 30),
                "{"
            ),
            (
                "`destination.mapping.title` is not a valid template: `{no such}` is neither a role \
                 (full_name, short_name, primary_smtp, notes_address, given_name, surname, \
                 sam_account_name) nor an attribute name",
                (13, 12),
                "\"{no such}\""
            ),
            (
                "`destination.mapping.info` is not a valid template: stray `}` at byte 1 (write \
                 `}}` for a literal brace)",
                (14, 13),
                "}"
            ),
        ]
    );
    assert!(
        e.problems()
            .iter()
            .all(|p| p.code() == codes::INVALID_TEMPLATE)
    );
}

#[test]
fn invalid_and_repeated_domains_are_reported() {
    let text = MINIMAL.replace(
        "  container:",
        "  domains:\n    - acme.com\n    - ACME.com\n    - \"@acme.org\"\n    - acme\n    - \
         bad_name.com\n    - 10.0.0.1\n  container:",
    );
    let e = err(&text);
    let got: Vec<(&str, (usize, usize), Option<&str>)> = e
        .problems()
        .iter()
        .map(|p| {
            (
                p.code(),
                line_col(&text, p.span().unwrap().start),
                p.help_text(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                codes::DUPLICATE_DOMAIN,
                (13, 7),
                Some("domain names ignore case: keep one of the two")
            ),
            (
                codes::INVALID_DOMAIN,
                (14, 7),
                Some("write the domain without `@`: `acme.org`")
            ),
            (
                codes::INVALID_DOMAIN,
                (15, 7),
                Some("a mail domain has at least two labels, e.g. `acme.com`")
            ),
            (
                codes::INVALID_DOMAIN,
                (16, 7),
                Some("a DNS label has only letters, digits and `-`")
            ),
            (
                codes::INVALID_DOMAIN,
                (17, 7),
                Some("mail domains are names, e.g. `acme.com`")
            ),
        ]
    );
    assert_eq!(
        e.problems()[1].message(),
        "`@acme.org` in `destination.domains` is not a valid mail domain"
    );
}

#[test]
fn invalid_attribute_names_are_reported_where_written() {
    let text = MINIMAL.replace(
        "  container:",
        "  mapping:\n    \"bad name\": \"{title}\"\n  container:",
    ) + "merge:\n  attributes: [mobile, \"-fax\"]\n";
    let e = err(&text);
    let got: Vec<(&str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| (p.message(), line_col(&text, p.span().unwrap().start)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "`bad name` in `destination.mapping` is not an attribute name",
                (12, 5)
            ),
            (
                "`merge.attributes[1]` is not a valid attribute name",
                (20, 24)
            ),
        ]
    );
}

#[test]
fn ignore_items_need_exactly_one_key() {
    let text = format!(
        "{MINIMAL}  ignore:\n    - source: \"CN=a,O=b\"\n      destination: \"CN=c,O=d\"\n    - {{}}\n"
    );
    let e = err(&text);
    let got: Vec<(&str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| (p.message(), line_col(&text, p.span().unwrap().start)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "`matching.ignore[0]` has both `source` and `destination`",
                (18, 7)
            ),
            (
                "`matching.ignore[1]` has neither `source` nor `destination`",
                (20, 7)
            ),
        ]
    );
    assert!(
        e.problems()
            .iter()
            .all(|p| p.code() == codes::INVALID_IGNORE)
    );
}

#[test]
fn a_person_cannot_be_both_confirmed_and_remigrated() {
    let text = format!(
        "{MINIMAL}  remigrate:\n    - source: \"cn=jane doe, ou=sales, o=acme\"\n      mailbox: \
         \"CN=jd2,DC=acme,DC=test\"\n"
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::CONFLICTING_PINS);
    assert_eq!(
        p.message(),
        "`cn=jane doe,ou=sales,o=acme` is both confirmed and remigrated"
    );
    assert_eq!(at, (18, 15));
    assert_eq!(line_col(&text, p.labels()[1].span.start), (15, 15));
}

#[test]
fn two_destinations_for_one_confirmed_source_are_left_to_matching() {
    let text = format!(
        "{MINIMAL}    - source: \"CN=Jane Doe,OU=Sales,O=Acme\"\n      destination: \"CN=other,DC=acme,DC=test\"\n"
    );
    let spec = ok("plan.yaml", &text);
    assert_eq!(spec.matching.confirmed.len(), 2);
}

#[test]
fn an_empty_directory_is_reported() {
    let text = MINIMAL.replace("  directory:\n    ldif: domino.ldif", "  directory: {}");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_DIRECTORY);
    assert_eq!(p.message(), "`source.directory` names no directory backend");
    assert_eq!(at, (5, 3));
    assert_eq!(p.help_text(), Some("add one of `ldif: ...` or `ldap: ...`"));

    let text = MINIMAL.replace("ldif: domino.ldif", "ldif: \"\"");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::EMPTY_VALUE);
    assert_eq!(p.message(), "`source.directory.ldif` is empty");
    assert_eq!(at, (6, 11));
}

#[test]
fn columns_count_characters_in_non_ascii_files() {
    let text = MINIMAL
        .replace("notes_domain: ACME ", "notes_domain: ÄÖÜ  ")
        .replace(
            "\"CN=Jane Doe,OU=Sales,O=Acme\"",
            "\"CN=Jürgen Müller,OU=Vertrieb,O=Acme\"",
        )
        .replace("CN=jdoe,CN=Users", "CN=jmüller,Users");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_DN);
    assert_eq!(at, (16, 20));
    assert_eq!(labelled(&text, p), "\"CN=jmüller,Users,DC=acme,DC=test\"");
}

#[test]
fn problems_from_every_pass_come_together_in_file_order() {
    let (_, text) = fixture("many_problems");
    let e = spec::parse(Path::new("many_problems.yaml"), &text).unwrap_err();
    // The unclosed filter in `classify.contact` is only caught once the RFC 4515 parser is in.
    let found: Vec<(&str, (usize, usize))> = e
        .problems()
        .iter()
        .filter(|p| p.code() != codes::INVALID_FILTER)
        .map(|p| (p.code(), line_col(&text, p.span().unwrap().start)))
        .collect();
    assert_eq!(
        found,
        [
            (codes::UNKNOWN_KEY, (7, 3)),
            (codes::UNKNOWN_KEY, (12, 3)),
            (codes::DUPLICATE_DOMAIN, (13, 23)),
            (codes::INVALID_DOMAIN, (13, 35)),
            (codes::INVALID_TEMPLATE, (17, 30)),
            (codes::UNKNOWN_VALUE, (19, 9)),
            (codes::INVALID_DN, (22, 20)),
            (codes::UNKNOWN_KEY, (23, 3)),
        ]
    );
    let rendered = render(&e);
    assert!(
        rendered
            .starts_with("mailplan::spec::invalid_plan\n\n  × plan file `many_problems.yaml` has"),
        "{rendered}"
    );
    assert!(rendered.contains("[many_problems.yaml:12:3]"));
    assert!(rendered.contains("help: did you mean `container`?"));
}

// ---- Against the directories ----

fn snapshot(dns: &[&str]) -> Snapshot {
    Snapshot::new(dns.iter().map(|d| Entry::new(dn(d))).collect()).unwrap()
}

#[test]
fn check_against_accepts_a_plan_whose_dns_all_exist() {
    let spec = ok("plan.yaml", FULL);
    let source = snapshot(&[
        "CN=Jane Doe,OU=Sales,O=Acme",
        "CN=John Roe,OU=Sales,O=Acme",
        "CN=Old Admin,O=Acme",
        "CN=Test User,O=Acme",
        "CN=Sales,O=Acme",
        "CN=Everyone,O=Acme",
    ]);
    let destination = snapshot(&[
        "CN=jdoe,CN=Users,DC=acme,DC=test",
        "CN=jroe,CN=Users,DC=acme,DC=test",
        "CN=Administrator,CN=Users,DC=acme,DC=test",
    ]);
    spec::check_against(&spec, &source, &destination).unwrap();
}

#[test]
fn check_against_reports_every_missing_dn() {
    let spec = ok("plan.yaml", FULL);
    let source = snapshot(&[
        "CN=Jane Doe,OU=East,O=Acme",
        "CN=Old Admin,O=Acme",
        "CN=Sales,O=Acme",
    ]);
    let destination = snapshot(&["CN=jdoe,CN=Users,DC=acme,DC=test"]);
    let e = spec::check_against(&spec, &source, &destination).unwrap_err();
    let got: Vec<(&str, (usize, usize))> = e
        .problems()
        .iter()
        .map(|p| (p.message(), line_col(FULL, p.span().unwrap().start)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "`CN=Jane Doe,OU=Sales,O=Acme` is not in the source directory",
                (8, 13)
            ),
            (
                "`CN=John Roe,OU=Sales,O=Acme` is not in the source directory",
                (8, 44)
            ),
            (
                "`CN=Jane Doe,OU=Sales,O=Acme` is not in the source directory",
                (38, 15)
            ),
            (
                "`CN=John Roe,OU=Sales,O=Acme` is not in the source directory",
                (41, 15)
            ),
            (
                "`CN=jroe,CN=Users,DC=acme,DC=test` is not in the destination directory",
                (42, 16)
            ),
            (
                "`CN=Test User,O=Acme` is not in the source directory",
                (44, 15)
            ),
            (
                "`CN=Administrator,CN=Users,DC=acme,DC=test` is not in the destination directory",
                (45, 20)
            ),
            (
                "`CN=Everyone,O=Acme` is not in the source directory",
                (52, 13)
            ),
        ]
    );
    assert!(
        e.problems()
            .iter()
            .all(|p| p.code() == codes::NOT_IN_DIRECTORY)
    );
    // The same person in another OU is offered.
    assert_eq!(
        e.problems()[0].help_text(),
        Some("did you mean `CN=Jane Doe,OU=East,O=Acme`?")
    );
    assert_eq!(e.to_string(), "plan file `plan.yaml` has 8 problems");
}

// ---- Secrets ----

#[test]
fn secrets_resolve_from_the_environment_and_files() {
    // PATH is set wherever tests run; setting a variable would need `unsafe` in edition 2024.
    assert_eq!(
        Secret::Env("PATH".into()).resolve().unwrap(),
        std::env::var("PATH").unwrap()
    );
    let missing = "MAILPLAN_TEST_SECRET_THAT_IS_NOT_SET";
    let e = Secret::Env(missing.into()).resolve().unwrap_err();
    assert_eq!(e, SecretError::EnvMissing(missing.into()));
    assert!(e.to_string().contains(missing));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "s3cret\n").unwrap();
    assert_eq!(Secret::File(file.clone()).resolve().unwrap(), "s3cret");
    std::fs::write(&file, "s3cret\r\n").unwrap();
    assert_eq!(Secret::File(file.clone()).resolve().unwrap(), "s3cret");
    std::fs::write(&file, "two\nlines\n\n").unwrap();
    assert_eq!(
        Secret::File(file.clone()).resolve().unwrap(),
        "two\nlines\n"
    );

    let gone = dir.path().join("nope");
    let e = Secret::File(gone.clone()).resolve().unwrap_err();
    assert!(e.to_string().contains(&gone.display().to_string()), "{e}");

    std::fs::write(&file, b"s3cret\xff").unwrap();
    let e = Secret::File(file.clone()).resolve().unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(e.to_string().contains("not UTF-8"));
}

// ---- Robustness ----

#[test]
fn no_prefix_of_a_plan_file_panics() {
    // Every truncation of a real plan exercises broken syntax, missing keys and partial values.
    let text = FULL.replace("Acme", "Äcme");
    for (end, _) in text.char_indices() {
        let _ = spec::parse(Path::new("plan.yaml"), &text[..end]);
    }
}

#[test]
fn mutated_plan_files_never_panic_and_every_label_is_in_the_file() {
    // A small deterministic generator (no dependency): xorshift.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let pieces = [
        ":", "-", "{", "}", "[", "]", "\"", "'", "\n", " ", "  ", "#", "&a ", "*a", "!", "|", ">",
        "\t", "é", ",", "?", "~", "\\", "{x}", "- ", ": ", "CN=", "(", ")",
    ];
    let bases = [MINIMAL, FULL];
    for round in 0..1500 {
        let mut text = bases[round % 2].to_string();
        for _ in 0..1 + next(3) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => text.insert_str(at, pieces[next(pieces.len())]),
                1 => {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, pieces[next(pieces.len())]);
                }
            }
        }
        if let Err(e) = spec::parse(Path::new("plan.yaml"), &text) {
            assert!(!e.problems().is_empty(), "{text:?}");
            assert!(
                e.problems().iter().all(|p| p.code() != codes::INCOMPLETE),
                "a check failed without saying why: {text:?}"
            );
            for p in e.problems() {
                for l in p.labels() {
                    assert!(
                        l.span.start <= l.span.end
                            && l.span.end <= text.len()
                            && text.is_char_boundary(l.span.start)
                            && text.is_char_boundary(l.span.end),
                        "{text:?}\n{p:?}"
                    );
                }
            }
            let _ = render(&e);
        }
    }
}

const ITEMS: &str = r#"
items:
  mail:
    source:
      imap:
        url: "imaps://notes.acme.test"
        user: "{uid}"
        login: admin
        password: { env: IMAP_ADMIN }
    destination:
      maildir: "out/{primary_smtp}"
    folders:
      map: { "Old": "Archive/Old" }
      separator: "\\"
      exclude: [Junk]
    since: 2020-02-29
  calendars:
    source: { ics: "cal/{uid}.ics" }
    destination: { caldav: { url: "https://dav.acme.test/{primary_smtp}/cal/", login: admin, password: { file: dav.pass } } }
  contacts:
    source: { csv: "contacts/{uid}.csv" }
    destination: { vcard_folder: "out/vcf/{uid}" }
"#;

#[test]
fn items_section_is_read_with_its_defaults() {
    let spec = ok("plans/plan.yaml", &format!("{MINIMAL}{ITEMS}"));
    let mail = spec.items.mail.as_ref().unwrap();
    match &mail.source {
        spec::MailStore::Imap(i) => {
            assert_eq!(i.host, "notes.acme.test");
            assert_eq!(i.port, 993);
            assert_eq!(i.security, spec::ImapSecurity::Tls);
            assert_eq!(i.auth, spec::ImapAuth::Master);
            assert!(!i.insecure);
            assert_eq!(i.timeout, std::time::Duration::from_secs(30));
        }
        other => panic!("{other:?}"),
    }
    // Notes' special folders map by default; the plan's entries join them.
    assert_eq!(mail.folders.map["($Inbox)"], "INBOX");
    assert_eq!(mail.folders.map["Old"], "Archive/Old");
    assert_eq!(mail.folders.separator, Some('\\'));
    assert_eq!(mail.since, Some(1_582_934_400));
    assert!(spec.items.calendars.is_some());
    assert!(spec.items.contacts.is_some());
}

#[test]
fn the_size_above_which_a_mailbox_is_split_by_folder_is_read_and_checked() {
    let spec = ok("plans/plan.yaml", &format!("{MINIMAL}{ITEMS}"));
    let mail = spec.items.mail.as_ref().unwrap();
    assert_eq!(mail.unit_per_folder_above, 2 << 30, "2 GiB by default");
    for (written, bytes) in [
        ("10 KiB", 10 << 10),
        ("500M", 500 << 20),
        ("3GB", 3u64 << 30),
        ("1 TiB", 1u64 << 40),
        ("1048576", 1 << 20),
        ("\"7 b\"", 7),
    ] {
        let text = format!(
            "{MINIMAL}{}",
            ITEMS.replace(
                "since: 2020-02-29",
                &format!("since: 2020-02-29\n    unit_per_folder_above: {written}")
            )
        );
        let spec = ok("plans/plan.yaml", &text);
        let mail = spec.items.mail.as_ref().unwrap();
        assert_eq!(mail.unit_per_folder_above, bytes, "{written}");
    }
    for wrong in ["2 GiX", "lots", "-1 G", "99999999999 TiB"] {
        let text = format!(
            "{MINIMAL}{}",
            ITEMS.replace(
                "since: 2020-02-29",
                &format!("since: 2020-02-29\n    unit_per_folder_above: {wrong}")
            )
        );
        let e = err(&text);
        let rendered = render(&e);
        assert!(
            rendered.contains("`items.mail.unit_per_folder_above` is not a size"),
            "{rendered}"
        );
        let (_, at) = problem(&text, &e, codes::WRONG_TYPE);
        let line = text[..text.find("unit_per_folder_above").unwrap()]
            .matches('\n')
            .count()
            + 1;
        assert_eq!(at, (line, 28), "{wrong}");
    }
}

#[test]
fn items_mistakes_are_reported_at_their_place() {
    let text = format!(
        "{MINIMAL}{}",
        ITEMS
            .replace("imaps://notes.acme.test", "https://notes.acme.test")
            .replace("since: 2020-02-29", "since: 2021-02-29")
            .replace(
                "destination:\n      maildir: \"out/{primary_smtp}\"",
                "destination:\n      maildir: \"out/{primary_smtp\"\n      imap: { url: \"imap://x\", user: \"{uid}\", password: { env: X } }"
            )
            .replace("vcard_folder: \"out/vcf/{uid}\"", "carddav: { url: \"https://x/\", vcard_version: 5 }")
    );
    let e = err(&text);
    let rendered = render(&e);
    assert!(rendered.contains("is not an IMAP URL"), "{rendered}");
    assert!(
        rendered.contains("`items.mail.since` is not a date"),
        "{rendered}"
    );
    assert!(rendered.contains("names 2 backends"), "{rendered}");
    assert!(
        rendered.contains("`items.contacts.destination.carddav.vcard_version` is 5"),
        "{rendered}"
    );
    let (_, at) = problem(&text, &e, codes::UNKNOWN_VALUE);
    assert_eq!(
        at.0,
        text[..text.find("vcard_version").unwrap()]
            .matches('\n')
            .count()
            + 1
    );
    // A password written in the plan is refused.
    let text = format!(
        "{MINIMAL}{}",
        ITEMS.replace("{ env: IMAP_ADMIN }", "hunter2")
    );
    let rendered = render(&err(&text));
    assert!(
        rendered.contains("a secret cannot be written as a plain string"),
        "{rendered}"
    );
}

#[test]
fn an_imap_timeout_is_read_and_zero_is_refused_at_its_place() {
    let with = |t: &str| {
        format!(
            "{MINIMAL}{}",
            ITEMS.replace(
                "password: { env: IMAP_ADMIN }",
                &format!("password: {{ env: IMAP_ADMIN }}\n        timeout: {t}")
            )
        )
    };
    let spec = ok("plans/plan.yaml", &with("5"));
    match &spec.items.mail.as_ref().unwrap().source {
        spec::MailStore::Imap(i) => assert_eq!(i.timeout, std::time::Duration::from_secs(5)),
        other => panic!("{other:?}"),
    }
    let text = with("0");
    let e = err(&text);
    let rendered = render(&e);
    assert!(
        rendered.contains("`items.mail.source.imap.timeout` must be at least 1"),
        "{rendered}"
    );
    let (_, at) = problem(&text, &e, codes::EMPTY_VALUE);
    assert_eq!(
        at.0,
        text[..text.find("timeout: 0").unwrap()]
            .matches('\n')
            .count()
            + 1
    );
}

#[test]
fn connection_caps_are_read_per_endpoint_and_checked_at_their_place() {
    let with = |caps: &str| format!("{MINIMAL}{ITEMS}  connections:\n{caps}");
    let spec = ok(
        "plans/plan.yaml",
        &with("    \"Notes.Acme.Test:993\": 20\n    \"dav.acme.test:443\": 4\n"),
    );
    assert_eq!(
        spec.items.connections,
        [
            ("dav.acme.test:443".to_string(), 4),
            ("notes.acme.test:993".to_string(), 20)
        ]
        .into_iter()
        .collect()
    );

    // An endpoint no store uses, at its key, with the endpoints the plan does use.
    let text = with("    \"mail.acme.test:993\": 20\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNKNOWN_VALUE);
    assert_eq!(labelled(&text, p), "\"mail.acme.test:993\"");
    assert_eq!(at, line_col(&text, text.find("\"mail.acme").unwrap()));
    let rendered = render(&e);
    assert!(
        rendered.contains(
            "`items.connections.\"mail.acme.test:993\"` names an endpoint no store of this plan file uses"
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains("connect to `dav.acme.test:443` or `notes.acme.test:993`"),
        "{rendered}"
    );

    // A cap of 0, at its value.
    let text = with("    \"notes.acme.test:993\": 0\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::WRONG_TYPE);
    assert_eq!(labelled(&text, p), "0");
    assert_eq!(at, line_col(&text, text.rfind(": 0").unwrap() + 2));
    assert!(render(&e).contains("0 connections would stop every copy"));

    // A pair of sessions on one server needs two of its connections.
    let both = format!(
        "{MINIMAL}{}  connections:\n    \"notes.acme.test:993\": 1\n",
        ITEMS.replace(
            "maildir: \"out/{primary_smtp}\"",
            "imap: { url: \"imaps://notes.acme.test\", user: \"{uid}\", login: admin, password: { env: X } }"
        )
    );
    let rendered = render(&err(&both));
    assert!(
        rendered.contains("a pair of mail sessions needs 2"),
        "{rendered}"
    );
}

// ---- Live LDAP directories ----

const LDAP_DESTINATION: &str = r#"    ldap:
      url: ldaps://dc1.acme.test
      bind_dn: svc-mailplan@acme.test
      password: { env: MAILPLAN_LDAP_PASSWORD }
      base: "DC=acme,DC=test"
"#;

fn with_ldap_destination(ldap: &str) -> String {
    MINIMAL.replace(
        "  directory:\n    ldif: ad.ldif\n",
        &format!("  directory:\n{ldap}"),
    )
}

#[test]
fn an_ldap_directory_parses_with_its_defaults() {
    let text = with_ldap_destination(LDAP_DESTINATION);
    let spec = ok("plans/plan.yaml", &text);
    let DirectorySource::Ldap(l) = &spec.destination.directory else {
        panic!("expected an LDAP destination");
    };
    assert_eq!(l.url, "ldaps://dc1.acme.test");
    assert_eq!(l.bind_dn.as_deref(), Some("svc-mailplan@acme.test"));
    assert_eq!(
        l.password,
        Some(mailplan::spec::Secret::Env("MAILPLAN_LDAP_PASSWORD".into()))
    );
    assert_eq!(l.base, dn("DC=acme,DC=test"));
    assert_eq!(l.filter, "(objectClass=*)");
    assert_eq!(l.scope, mailplan::spec::LdapScope::Sub);
    assert_eq!(l.page_size, 500);
    assert_eq!(l.timeout, std::time::Duration::from_secs(30));
    assert!(!l.starttls && !l.insecure);
    assert_eq!(l.ca_file, None);

    let text = with_ldap_destination(
        "    ldap:\n      url: ldap://127.0.0.1:3890\n      bind_dn: \"cn=admin,dc=acme,dc=com\"\n      password: { file: secret.txt }\n      base: \"dc=acme,dc=com\"\n      filter: \"(|(objectClass=user)(objectClass=contact))\"\n      scope: one\n      page_size: 50\n      timeout: 5\n      starttls: true\n      ca_file: ca.pem\n",
    );
    let spec = ok("plans/plan.yaml", &text);
    let DirectorySource::Ldap(l) = &spec.destination.directory else {
        panic!("expected an LDAP destination");
    };
    assert_eq!(
        l.password,
        Some(mailplan::spec::Secret::File("plans/secret.txt".into()))
    );
    assert_eq!(l.ca_file, Some(PathBuf::from("plans/ca.pem")));
    assert_eq!(l.scope, mailplan::spec::LdapScope::One);
    assert_eq!((l.page_size, l.timeout.as_secs()), (50, 5));
    assert!(l.starttls);
}

#[test]
fn bad_ldap_settings_are_each_reported_at_their_value() {
    let text = with_ldap_destination(
        "    ldap:\n      url: http://dc1\n      bind_dn: \"cn=admin,,dc=x\"\n      password: { env: P }\n      base: \"dc=acme,dc\"\n      filter: \"(objectClass=user\"\n      scope: deep\n      page_size: 0\n      pagesize: 10\n",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_URL);
    assert_eq!(
        p.message(),
        "`destination.directory.ldap.url` is not an LDAP server URL"
    );
    assert_eq!(at, (11, 12));
    let dns: Vec<&str> = e
        .problems()
        .iter()
        .filter(|p| p.code() == codes::INVALID_DN)
        .map(|p| labelled(&text, p))
        .collect();
    assert_eq!(
        dns,
        ["\"cn=admin,,dc=x\"", "\"dc=acme,dc\""],
        "{}",
        render(&e)
    );
    let (p, _) = problem(&text, &e, codes::UNKNOWN_KEY);
    assert!(p.message().contains("pagesize"), "{}", p.message());
    let (p, _) = problem(&text, &e, codes::UNKNOWN_VALUE);
    assert!(p.message().contains("deep"), "{}", render(&e));
    let rendered = render(&e);
    assert!(rendered.contains("scope"), "{rendered}");
}

#[test]
fn ldap_settings_that_contradict_each_other_are_rejected() {
    let text = with_ldap_destination(
        "    ldap:\n      url: ldaps://dc1\n      base: \"dc=acme,dc=com\"\n      starttls: true\n      password: { env: P }\n",
    );
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::INVALID_URL);
    assert_eq!(
        p.message(),
        "`destination.directory.ldap.starttls` cannot be used with an `ldaps://` URL"
    );
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.message().contains("without"), "{}", p.message());

    let text = with_ldap_destination("    ldap:\n      url: ldap://dc1\n");
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.message().contains("base"), "{}", render(&e));

    let text = with_ldap_destination(
        "    ldap:\n      url: ldap://dc1\n      base: \"dc=x\"\n      password: hunter2\n      bind_dn: \"cn=a,dc=x\"\n",
    );
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::PLAIN_SECRET);
    assert!(!p.message().contains("hunter2"));
    assert_eq!(labelled(&text, p), "hunter2");

    let text = MINIMAL.replace(
        "  directory:\n    ldif: ad.ldif\n",
        &format!("  directory:\n    ldif: ad.ldif\n{LDAP_DESTINATION}"),
    );
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::INVALID_DIRECTORY);
    assert_eq!(p.message(), "`destination.directory` names 2 backends");
}

#[test]
fn sasl_external_replaces_the_bind_dn_and_password() {
    let text = with_ldap_destination(
        "    ldap:\n      url: \"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi\"\n      sasl: external\n      base: \"dc=acme,dc=com\"\n",
    );
    let spec = ok("plan.yaml", &text);
    let DirectorySource::Ldap(l) = &spec.destination.directory else {
        panic!("expected an LDAP destination");
    };
    assert!(l.sasl_external);
    assert_eq!(l.bind_dn, None);

    let text = with_ldap_destination(
        "    ldap:\n      url: ldap://dc1\n      sasl: external\n      bind_dn: \"cn=a,dc=x\"\n      base: \"dc=x\"\n",
    );
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::INVALID_DIRECTORY);
    assert_eq!(
        p.message(),
        "`destination.directory.ldap.sasl` cannot be combined with `bind_dn` or `password`"
    );
}

/// `state: postgres:` is read with its secret, and without `state:` the plan keeps its state
/// beside itself (no PostgreSQL).
#[test]
fn the_state_section_names_a_postgres_database() {
    assert_eq!(ok("plan.yaml", MINIMAL).state, None);
    let text = format!(
        "{MINIMAL}state:\n  postgres:\n    url: postgres://mailplan@db.acme.test:5432/migration\n    \
         password: {{ env: MAILPLAN_DB_PASSWORD }}\n    ca_file: certs/db-ca.pem\n"
    );
    let spec = ok("/plans/wave1.yaml", &text);
    let pg = spec.state.expect("a postgres state");
    assert_eq!(pg.url, "postgres://mailplan@db.acme.test:5432/migration");
    assert_eq!(
        pg.password,
        Some(Secret::Env("MAILPLAN_DB_PASSWORD".into()))
    );
    assert_eq!(pg.ca_file, Some(PathBuf::from("/plans/certs/db-ca.pem")));
    assert!(!pg.insecure);
    assert!(
        spec.secrets
            .iter()
            .any(|s| s.key == "state.postgres.password"),
        "{:?}",
        spec.secrets
    );
}

/// A password written into the URL is refused at the URL, and never shown.
#[test]
fn a_password_in_the_state_url_is_refused_without_echoing_it() {
    for url in [
        "postgres://mailplan:hunter2secret@db.acme.test/migration",
        "postgres://mailplan@db.acme.test/migration?password=hunter2secret",
    ] {
        let text = format!("{MINIMAL}state:\n  postgres:\n    url: {url}\n");
        let e = err(&text);
        let (p, at) = problem(&text, &e, codes::PLAIN_SECRET);
        assert_eq!(at, (text.lines().count(), 10), "{}", render(&e));
        assert!(p.to_string().contains("state.postgres.url"), "{p}");
        let shown = render(&e);
        assert!(!shown.contains("hunter2"), "{shown}");
        let help = miette::Diagnostic::help(p).map(|h| h.to_string());
        assert!(
            help.is_some_and(|h| h.contains("password: { env: NAME }")),
            "{shown}"
        );
    }
}

/// Each mistake in `state:` is named where it is written.
#[test]
fn state_section_mistakes_are_located() {
    let text = format!("{MINIMAL}state:\n  postgres:\n    url: mysql://db.acme.test/m\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_URL);
    assert_eq!(at.0, text.lines().count());
    assert!(p.to_string().contains("its scheme is `mysql`"), "{p}");

    let text = format!("{MINIMAL}state: {{}}\n");
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.to_string().contains("`state` names no backend"), "{p}");

    let text = format!("{MINIMAL}state:\n  postgres:\n    url: postgres://db/m\n    pasword: x\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNKNOWN_KEY);
    assert_eq!(at, (text.lines().count(), 5), "{}", render(&e));
    assert!(p.to_string().contains("pasword"), "{p}");

    let text = format!("{MINIMAL}state:\n  postgres:\n    password: {{ env: X }}\n");
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.to_string().contains("url"), "{p}");
}

// ---- The carbonio flavor ----

const CARBONIO: &str = r#"version: 1
source:
  profile: ldap
  directory: { ldif: openldap.ldif }
destination:
  flavor: carbonio
  directory:
    ldif: carbonio.ldif
  domains: [Acme.com]
  cos: default
  provisioning:
    soap:
      url: https://mail.acme.com:7071/service/admin/soap
      user: admin@acme.com
      password: { env: CARBONIO_ADMIN_PASSWORD }
"#;

#[test]
fn the_carbonio_destination_of_the_issue_parses() {
    let spec = ok("plan.yaml", CARBONIO);
    let d = &spec.destination;
    assert_eq!(d.flavor, Flavor::Carbonio);
    assert_eq!(d.domains, ["acme.com"]);
    // Carbonio places accounts under `ou=people` of their domain.
    assert_eq!(d.container, dn("ou=people,dc=acme,dc=com"));
    let c = d.carbonio.as_ref().expect("carbonio settings");
    assert_eq!(c.cos, "default");
    match &c.provisioning {
        Some(spec::Provisioning::Soap(s)) => {
            assert_eq!(s.url, "https://mail.acme.com:7071/service/admin/soap");
            assert_eq!(s.user, "admin@acme.com");
            assert_eq!(s.password, Secret::Env("CARBONIO_ADMIN_PASSWORD".into()));
            assert!(!s.insecure);
            assert_eq!(s.timeout, std::time::Duration::from_secs(30));
        }
        other => panic!("expected soap provisioning, got {other:?}"),
    }
    // The password is named like every other secret, so it is read before anything connects.
    assert!(
        spec.secrets
            .iter()
            .any(|s| s.key == "destination.provisioning.soap.password")
    );
}

#[test]
fn carbonio_auto_provisioning_and_the_default_cos() {
    let text = CARBONIO
        .replace("  cos: default\n", "")
        .replace(
            "    soap:\n      url: https://mail.acme.com:7071/service/admin/soap\n      user: admin@acme.com\n      password: { env: CARBONIO_ADMIN_PASSWORD }\n",
            "    auto: true\n",
        );
    let spec = ok("plan.yaml", &text);
    let c = spec.destination.carbonio.as_ref().unwrap();
    assert_eq!(c.cos, "default");
    assert_eq!(c.provisioning, Some(spec::Provisioning::Auto));
    assert_eq!(c.password_policy, spec::PasswordPolicy::Random);
    // Accounts that authenticate elsewhere get no password.
    let external = text.replace(
        "  provisioning:\n",
        "  password_policy: external\n  provisioning:\n",
    );
    let spec = ok("plan.yaml", &external);
    assert_eq!(
        spec.destination.carbonio.unwrap().password_policy,
        spec::PasswordPolicy::External
    );
    // Without `provisioning` a plan can still be made (apply needs it).
    let plan_only = CARBONIO
        .split("  provisioning:")
        .next()
        .unwrap()
        .to_string();
    let spec = ok("plan.yaml", &plan_only);
    assert_eq!(spec.destination.carbonio.unwrap().provisioning, None);
}

#[test]
fn carbonio_keys_are_located_when_wrong() {
    // A key of the other flavors, at its key.
    let text = CARBONIO.replace(
        "  cos: default\n",
        "  cos: default\n  container: \"OU=x,DC=y\"\n",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::WRONG_FLAVOR);
    assert_eq!(
        p.message(),
        "`destination.container` is not used by `flavor: carbonio`"
    );
    assert_eq!(at, (11, 3));
    assert!(p.help_text().unwrap().contains("ou=people"));

    // A carbonio key for another flavor.
    let text = MINIMAL.replace(
        "  container: \"OU=Migrated,DC=acme,DC=test\"",
        "  container: \"OU=Migrated,DC=acme,DC=test\"\n  cos: default",
    );
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::WRONG_FLAVOR);
    assert_eq!(
        p.message(),
        "`destination.cos` is only for `flavor: carbonio`"
    );
    assert_eq!(labelled(&text, p), "cos");
    assert_eq!(at.1, 3);

    // Both ways of provisioning.
    let text = CARBONIO.replace("  provisioning:\n", "  provisioning:\n    auto: true\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::CONFLICTING_KEYS);
    assert_eq!(
        p.message(),
        "`destination.provisioning` has both `soap` and `auto`"
    );
    assert_eq!(at, (12, 5));

    // `wait` is how long Auto Provisioning may take: with `soap` it means nothing.
    let text = format!("{CARBONIO}    wait: 60\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::CONFLICTING_KEYS);
    assert_eq!(
        p.message(),
        "`destination.provisioning.wait` is only for `auto: true`"
    );
    assert_eq!(labelled(&text, p), "wait");
    assert_eq!(at, (16, 5));
    assert!(p.help_text().unwrap().contains("remove"), "{}", render(&e));

    // `auto: false` means nothing.
    let text = CARBONIO.split("    soap:").next().unwrap().to_string() + "    auto: false\n";
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNKNOWN_VALUE);
    assert_eq!(p.message(), "`destination.provisioning.auto` is false");
    assert_eq!(at, (12, 11));

    // A misspelt SOAP key is an unknown key, with the one meant.
    let text = CARBONIO.replace("      user: admin", "      usr: admin");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::UNKNOWN_KEY);
    assert!(p.help_text().unwrap().contains("`user`"), "{}", render(&e));
    assert_eq!(at, (14, 7));

    // A URL that is not http(s), at its value.
    let text = CARBONIO.replace("url: https://", "url: ftp://");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::INVALID_URL);
    assert_eq!(
        labelled(&text, p),
        "ftp://mail.acme.com:7071/service/admin/soap"
    );
    assert_eq!(at, (13, 12));

    // Carbonio needs its domains.
    let text = CARBONIO.replace("  domains: [Acme.com]\n", "");
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.message().contains("domains"), "{}", render(&e));

    // A plain-text password is refused as everywhere.
    let text = CARBONIO.replace("{ env: CARBONIO_ADMIN_PASSWORD }", "hunter2");
    let e = err(&text);
    assert!(!render(&e).contains("hunter2"));
    problem(&text, &e, codes::PLAIN_SECRET);
}

#[test]
fn the_other_flavors_still_need_their_container() {
    // `container` is not required by the schema any more (Carbonio takes none); the other
    // flavors still report it missing, at its parent.
    let text: String = MINIMAL
        .lines()
        .filter(|l| !l.starts_with("  container:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::MISSING_KEY);
    assert!(p.message().contains("container"), "{}", render(&e));
    // A Carbonio-only key elsewhere is located at its key.
    let text = MINIMAL.replace(
        "  container: \"OU=Migrated,DC=acme,DC=test\"",
        "  container: \"OU=Migrated,DC=acme,DC=test\"\n  password_policy: external",
    );
    let e = err(&text);
    let (p, _) = problem(&text, &e, codes::WRONG_FLAVOR);
    assert_eq!(
        p.message(),
        "`destination.password_policy` is only for `flavor: carbonio`"
    );
    assert_eq!(labelled(&text, p), "password_policy");
}

/// Shares and files cannot be migrated from a generic AD/OpenLDAP source (Carbonio's own
/// procedure says so): a plan asking for them gets that reason at the key, not an unknown key.
#[test]
fn shares_and_files_are_refused_with_the_reason() {
    let text = format!("{CARBONIO}items:\n  shares: {{ from: everyone }}\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::NOT_MIGRATABLE);
    assert_eq!(at, (17, 3));
    assert_eq!(labelled(&text, p), "shares");
    assert!(p.message().starts_with("`items.shares`: shares cannot be migrated from this source: Carbonio's migration procedure moves shares only from a Zextras-compatible system"), "{}", p.message());
    assert!(p.help_text().unwrap().contains("remove `items.shares`"));
    assert!(!e.problems().iter().any(|p| p.code() == codes::UNKNOWN_KEY));

    let text = format!("{CARBONIO}files:\n  from: /srv/share\n");
    let e = err(&text);
    let (p, at) = problem(&text, &e, codes::NOT_MIGRATABLE);
    assert_eq!(at, (16, 1));
    assert!(p.message().starts_with("`files`: files cannot be migrated"));
    assert!(p.help_text().unwrap().contains("Carbonio Files"));

    let text = CARBONIO.replace("  cos: default\n", "  cos: default\n  files: true\n");
    let e = err(&text);
    let (_, at) = problem(&text, &e, codes::NOT_MIGRATABLE);
    assert_eq!(at, (11, 3));
}
