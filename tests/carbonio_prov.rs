//! `--format carbonio-prov`: a Carbonio plan's directory actions as a `carbonio prov -f` batch.
//! Each command is read back the way `carbonio prov` splits a batch line, and must give back
//! exactly the plan's values (spaces, quotes, backslashes, line breaks, tabs, non-ASCII); the
//! commands come in dependency order; what the batch cannot do is named in `#` lines; a plan for
//! another flavor is refused.

mod common;

use assert_cmd::Command;
use common::*;
use mailplan::directory::Value;
use mailplan::plan::ActionKind;
use mailplan::render::carbonio_prov::{self, ProvError, commands, split_line};

fn mailplan() -> Command {
    let mut c = Command::cargo_bin("mailplan").unwrap();
    c.env("NO_COLOR", "1");
    c
}

/// The line of `batch` whose first two words are `command` and `name`.
fn line<'a>(batch: &'a [Vec<String>], command: &str, name: &str) -> &'a [String] {
    batch
        .iter()
        .find(|w| w[0] == command && w[1] == name)
        .unwrap_or_else(|| panic!("no `{command} {name}` in {batch:?}"))
}

/// `attr value` pairs of a command, from word `from` on.
fn pairs(words: &[String], from: usize) -> Vec<(String, String)> {
    words[from..]
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

fn position(batch: &[Vec<String>], command: &str, name: &str) -> usize {
    batch
        .iter()
        .position(|w| w[0] == command && w[1] == name)
        .unwrap_or_else(|| panic!("no `{command} {name}`"))
}

#[test]
fn carbonio_fixture_as_a_batch() {
    let plan = plan_case("carbonio");
    let batch = carbonio_prov::render(&plan).unwrap();
    let cmds = commands(&batch);
    // New accounts: named by their address, no password, the plan's attributes; what the
    // command derives from the name (uid, mail, object classes) is not repeated.
    let john = line(&cmds, "createAccount", "john.smith@acme.com");
    assert_eq!(john[2], "");
    let attrs = pairs(john, 3);
    assert!(attrs.contains(&("title".into(), "Head of Sales".into())));
    assert!(attrs.contains(&("zimbraPasswordMustChange".into(), "TRUE".into())));
    assert!(attrs.contains(&(
        "zimbraCOSId".into(),
        "e00428a1-0c00-11d9-836a-000d93afea2a".into()
    )));
    assert!(!attrs.iter().any(|(a, _)| a == "uid" || a == "objectClass"));
    // Aliases after their account; a hard-matched account's empty attributes filled.
    line(&cmds, "addAccountAlias", "john.smith@acme.com");
    assert!(
        position(&cmds, "createAccount", "john.smith@acme.com")
            < position(&cmds, "addAccountAlias", "john.smith@acme.com")
    );
    let ann = line(&cmds, "modifyAccount", "ann.doe@acme.com");
    assert!(pairs(ann, 2).contains(&("title".into(), "Engineer".into())));
    assert_eq!(
        line(&cmds, "addAccountAlias", "ann.doe@acme.com")[2],
        "ann@acme.com"
    );
    // Lists: made, then given their members (after the members exist); an existing list only
    // gets the new members.
    assert_eq!(
        line(&cmds, "addDistributionListMember", "sales@acme.com")[2..],
        ["ann.doe@acme.com", "john.smith@acme.com"]
    );
    assert!(
        position(&cmds, "createDistributionList", "sales@acme.com")
            < position(&cmds, "addDistributionListMember", "sales@acme.com")
    );
    assert!(
        position(&cmds, "createAccount", "mia.lee@acme.com")
            < position(&cmds, "addDistributionListMember", "staff@acme.com")
    );
    assert_eq!(
        line(&cmds, "addDistributionListMember", "staff@acme.com")[2..],
        ["mia.lee@acme.com"]
    );
    // Every directory action became a command; nothing is left out unsaid: the ambiguous
    // persons are named in the comments, and so are the passwordless accounts.
    // ... and the batch ends with `exit`, whose status says whether any command failed.
    assert_eq!(cmds.len(), plan.actions.len() + 1);
    assert_eq!(cmds.last().unwrap(), &["exit"]);
    assert!(batch.ends_with("\nexit\n"));
    assert!(batch.contains("# Not migrated by this plan: 2 persons"));
    assert!(batch.contains("Bob Brown (uid=bbrown,ou=people,dc=old,dc=test), ambiguous"));
    assert!(batch.contains("2 accounts are created without a password"));
    // Deterministic.
    assert_eq!(
        batch,
        carbonio_prov::render(&plan_case("carbonio")).unwrap()
    );
    insta::assert_snapshot!("carbonio_prov", batch);
}

/// Spaces (leading, doubled), double and single quotes, backslashes (one ending a value),
/// line breaks and tabs, non-ASCII, a value starting with `#` and one that is a command's name:
/// each reads back as the plan's value, one command per line.
#[test]
fn awkward_values_read_back_exactly() {
    let plan = plan_case("carbonio_awkward");
    let batch = carbonio_prov::render(&plan).unwrap();
    for l in batch.lines() {
        assert!(!l.ends_with('\\'), "a line ending in \\ continues: {l}");
    }
    let cmds = commands(&batch);
    assert_eq!(cmds.len(), plan.actions.len() + 1);
    let zoe = line(&cmds, "createAccount", "zoe.angstrom@acme.com");
    let attrs = pairs(zoe, 3);
    let create = plan
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::CreateAccount)
        .unwrap();
    let mut checked = 0;
    for c in &create.changes {
        let name = c.attribute.as_str();
        if ["objectClass", "uid", "mail", "zimbraMailDeliveryAddress"].contains(&name) {
            continue;
        }
        let want: Vec<&str> = c.after.iter().filter_map(Value::as_str).collect();
        let got: Vec<&str> = attrs
            .iter()
            .filter(|(a, _)| a == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(got, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
    for (attr, value) in [
        ("description", "Line one\nline two\ttabbed"),
        ("street", "C:\\Users\\"),
        ("title", "Head of \"Quotes\" & 'Apostrophes'"),
        ("cn", "Zoë Ångström"),
        ("ou", "#hash"),
        ("l", "prov"),
    ] {
        assert!(
            attrs.contains(&(attr.into(), value.into())),
            "{attr}: {attrs:?}"
        );
    }
    let ann = line(&cmds, "modifyAccount", "ann.doe@acme.com");
    assert!(pairs(ann, 2).contains(&("title".into(), " spaced  out ".into())));
    let list = line(&cmds, "createDistributionList", "rnd@acme.com");
    assert!(pairs(list, 2).contains(&("cn".into(), "R&D \"Team\" \\ Ørsted".into())));
    insta::assert_snapshot!("carbonio_prov_awkward", batch);
}

#[test]
fn quoting_of_one_word() {
    for (value, written) in [
        ("john@acme.com", "john@acme.com"),
        ("", "\"\""),
        ("a b", "\"a b\""),
        ("say \"hi\"", "\"say \\\"hi\\\"\""),
        ("it's", "\"it's\""),
        ("a\\b", "\"a\\\\b\""),
        ("x\ny", "\"x\\ny\""),
        ("Ørsted", "\"Ørsted\""),
    ] {
        assert_eq!(carbonio_prov::quote(value), written);
        assert_eq!(split_line(&format!("ma a@b.c x {written}"))[3], value);
    }
}

#[test]
fn plans_of_other_flavors_are_refused() {
    let plan = plan_case("scenario1_new");
    match carbonio_prov::render(&plan) {
        Err(ProvError::OtherFlavor { kind, .. }) => assert_eq!(kind, "create_mailbox"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn items_are_named_and_counted_not_dropped() {
    let mut plan = plan_case("carbonio");
    let subject = plan.actions[0].subject.clone();
    let target = plan.actions[0].target.clone();
    for (kind, n) in [
        (ActionKind::ImportMail, 12),
        (ActionKind::ImportCalendar, 3),
    ] {
        plan.actions.push(mailplan::plan::Action {
            id: mailplan::plan::Action::id_for(kind, &target),
            kind,
            subject: subject.clone(),
            target: target.clone(),
            depends_on: vec![],
            changes: vec![],
            preconditions: vec![],
            items: Some(mailplan::plan::ItemCount {
                count: n,
                ..Default::default()
            }),
        });
    }
    let batch = carbonio_prov::render(&plan).unwrap();
    assert!(
        batch.contains(
            "# Not in this batch: 2 item imports (1 import_calendar, 1 import_mail), which carbonio prov cannot do"
        ),
        "{batch}"
    );
    assert!(batch.contains("#   import_mail:uid=ann.doe,ou=people,dc=acme,dc=com (12 messages)"));
    assert!(batch.contains("#   import_calendar:uid=ann.doe,ou=people,dc=acme,dc=com (3 events)"));
    assert_eq!(commands(&batch).len(), plan.actions.len() - 2 + 1);
}

/// End to end: `plan --format carbonio-prov` prints the batch; the same plan saved and shown
/// with `show --format carbonio-prov` gives the same bytes; a plan for Active Directory is
/// refused by both, with the reason.
#[test]
fn cli_plan_and_show_as_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/carbonio");
    for f in ["plan.yaml", "source.ldif", "destination.ldif"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    let plan = dir.path().join("plan.yaml");
    let saved = dir.path().join("saved.json");
    let out = mailplan()
        .args(["plan", "--format", "carbonio-prov", "--out"])
        .arg(&saved)
        .arg(&plan)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let batch = String::from_utf8(out).unwrap();
    assert!(batch.contains("\ncreateAccount john.smith@acme.com \"\" cn \"John Smith\""));
    let shown = mailplan()
        .args(["show", "--format", "carbonio-prov"])
        .arg(&saved)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8(shown).unwrap(), batch);

    let ad = root().join("tests/fixtures/scenario1_new/plan.yaml");
    let refused = mailplan()
        .args(["plan", "--format", "carbonio-prov"])
        .arg(&ad)
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(refused.stdout.is_empty());
    let err = String::from_utf8(refused.stderr).unwrap();
    assert!(
        err.contains("the plan's destination flavor is `active-directory`, not `carbonio`"),
        "{err}"
    );
    let ad_saved = dir.path().join("ad.json");
    mailplan()
        .args(["plan", "--out"])
        .arg(&ad_saved)
        .arg(&ad)
        .assert()
        .success();
    let err = mailplan()
        .args(["show", "--format", "carbonio-prov"])
        .arg(&ad_saved)
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8(err).unwrap().contains(
            "--format carbonio-prov` is for plans whose destination is `flavor: carbonio`"
        )
    );
    // `--json` and `--format` do not go together.
    mailplan()
        .args(["show", "--json", "--format", "text"])
        .arg(&saved)
        .assert()
        .code(2);
}
