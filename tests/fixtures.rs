//! Fixture tests over `tests/fixtures/<case>/`: every scenario, both modes, every ambiguity
//! rule, pins, contacts via SMTP and NOTES, case differences, non-ASCII names, multi-valued CN,
//! collisions, distribution lists and merge policies. Each case asserts what a reviewer would
//! check, and snapshots the whole text plan.

mod common;

use common::*;
use mailplan::directory::Value;
use mailplan::matching::{By, Class, Via};
use mailplan::plan::{ActionKind::*, Level, Plan, Status};

const JOHN: &str = "CN=John Smith,OU=Sales,O=Acme";

fn snapshot(case: &str, plan: &Plan) {
    insta::assert_snapshot!(case, text(plan));
}

fn change_after(plan: &Plan, kind: mailplan::plan::ActionKind, attribute: &str) -> Vec<String> {
    let a = plan
        .actions
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?}"));
    let c = a
        .changes
        .iter()
        .find(|c| c.attribute.is(attribute))
        .unwrap_or_else(|| panic!("{kind:?} does not change {attribute}"));
    c.after.iter().map(Value::display).collect()
}

fn depends(plan: &Plan, kind: mailplan::plan::ActionKind) -> Vec<String> {
    plan.actions
        .iter()
        .find(|a| a.kind == kind)
        .unwrap()
        .depends_on
        .clone()
}

fn id(plan: &Plan, kind: mailplan::plan::ActionKind) -> String {
    plan.actions
        .iter()
        .find(|a| a.kind == kind)
        .unwrap()
        .id
        .clone()
}

#[test]
fn scenario1_new_mailbox() {
    let plan = plan_case("scenario1_new");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(1), Status::Planned));
    assert!(s.matched.is_none());
    assert_eq!(kinds(&plan, JOHN), [CreateMailbox]);
    let a = &plan.actions[0];
    assert_eq!(
        a.target.to_string(),
        "CN=John Smith,OU=Migrated,DC=acme,DC=test"
    );
    assert_eq!(
        a.id,
        "create_mailbox:CN=John Smith,OU=Migrated,DC=acme,DC=test"
    );
    assert_eq!(
        change_after(&plan, CreateMailbox, "proxyAddresses"),
        [
            "NOTES:John Smith/Sales/Acme@ACME",
            "SMTP:john.smith@acme.com"
        ]
    );
    assert_eq!(
        change_after(&plan, CreateMailbox, "sAMAccountName"),
        ["jsmith"]
    );
    assert_eq!(
        change_after(&plan, CreateMailbox, "userPrincipalName"),
        ["jsmith@acme.com"]
    );
    assert_eq!(change_after(&plan, CreateMailbox, "title"), ["Buyer"]);
    assert_eq!(
        change_after(&plan, CreateMailbox, "legacyExchangeDN"),
        ["/o=Acme/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=jsmith"]
    );
    snapshot("scenario1_new", &plan);
}

#[test]
fn scenario2_confirmed_nt_account_is_converted() {
    let plan = plan_case("scenario2_nt_confirmed");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(2), Status::Planned));
    let m = s.matched.as_ref().unwrap();
    assert_eq!(
        (m.by, m.via, m.class),
        (By::Pinned, Via::Confirmed, Class::NtAccount)
    );
    assert_eq!(kinds(&plan, JOHN), [ConvertNtAccount]);
    assert_eq!(
        change_after(&plan, ConvertNtAccount, "msExchRecipientTypeDetails"),
        ["1"]
    );
    assert_eq!(
        change_after(&plan, ConvertNtAccount, "mail"),
        ["john.smith@acme.com"]
    );
    // The account keeps its own data; nothing of it is in the changes.
    assert!(
        !plan.actions[0]
            .changes
            .iter()
            .any(|c| c.attribute.is("telephoneNumber") || c.attribute.is("sAMAccountName"))
    );
    snapshot("scenario2_nt_confirmed", &plan);
}

#[test]
fn scenario3_contact_via_smtp_in_order() {
    let plan = plan_case("scenario3_contact_smtp");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(3), Status::Planned));
    assert_eq!(s.contacts.len(), 1);
    assert_eq!(
        kinds(&plan, JOHN),
        [
            CreateMailbox,
            MoveMemberships,
            DeleteContact,
            MergeAttributes
        ]
    );
    // Dependency order: create → move memberships → delete contact → merge.
    assert_eq!(depends(&plan, MoveMemberships), [id(&plan, CreateMailbox)]);
    assert_eq!(depends(&plan, DeleteContact), [id(&plan, MoveMemberships)]);
    assert_eq!(depends(&plan, MergeAttributes), [id(&plan, DeleteContact)]);
    // The contact holds the primary address, so the mailbox is created with a routing address
    // and takes john.smith@acme.com in the merge, with one primary SMTP and the contact's X500.
    assert_eq!(
        change_after(&plan, CreateMailbox, "mail"),
        ["jsmith@acme.com"]
    );
    let proxies = change_after(&plan, MergeAttributes, "proxyAddresses");
    assert_eq!(proxies.iter().filter(|p| p.starts_with("SMTP:")).count(), 1);
    assert!(
        proxies.contains(&"SMTP:john.smith@acme.com".to_string()),
        "{proxies:?}"
    );
    assert!(
        proxies.contains(&"smtp:jsmith@notes.acme.com".to_string()),
        "{proxies:?}"
    );
    assert!(
        proxies.contains(&"x500:/o=Acme/ou=First/cn=Recipients/cn=jsmith-contact".to_string()),
        "{proxies:?}"
    );
    assert_eq!(
        change_after(&plan, MergeAttributes, "telephoneNumber"),
        ["555"]
    );
    let mv = plan
        .actions
        .iter()
        .find(|a| a.kind == MoveMemberships)
        .unwrap();
    assert_eq!(
        mv.changes[0].object.as_ref().unwrap().to_string(),
        "CN=Buyers,CN=Users,DC=acme,DC=test"
    );
    assert_eq!(
        mv.changes[0].after.first().unwrap().display(),
        "CN=John Smith,OU=Migrated,DC=acme,DC=test"
    );
    snapshot("scenario3_contact_smtp", &plan);
}

#[test]
fn scenario3_contact_via_notes() {
    let plan = plan_case("scenario3_contact_notes");
    let s = subject(&plan, JOHN);
    assert_eq!(s.scenario, Some(3));
    assert_eq!(
        s.contacts[0].to_string(),
        "CN=John Smith (Notes),CN=Users,DC=acme,DC=test"
    );
    assert_eq!(
        kinds(&plan, JOHN),
        [CreateMailbox, DeleteContact, MergeAttributes]
    );
    assert_eq!(depends(&plan, DeleteContact), [id(&plan, CreateMailbox)]);
    snapshot("scenario3_contact_notes", &plan);
}

#[test]
fn scenario4_nt_account_and_contact() {
    let plan = plan_case("scenario4_nt_and_contact");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(4), Status::Planned));
    assert_eq!(
        kinds(&plan, JOHN),
        [
            ConvertNtAccount,
            MoveMemberships,
            DeleteContact,
            MergeAttributes
        ]
    );
    assert_eq!(
        depends(&plan, MoveMemberships),
        [id(&plan, ConvertNtAccount)]
    );
    assert_eq!(
        change_after(&plan, MergeAttributes, "department"),
        ["Sales"]
    );
    snapshot("scenario4_nt_and_contact", &plan);
}

#[test]
fn scenario5_mail_enabled_user_keeps_its_data() {
    let plan = plan_case("scenario5_mail_user");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(5), Status::Planned));
    let m = s.matched.as_ref().unwrap();
    assert_eq!(
        (m.by, m.via, m.class),
        (By::Hard, Via::Smtp, Class::MailEnabledUser)
    );
    assert_eq!(kinds(&plan, JOHN), [ConvertMailUser]);
    let a = &plan.actions[0];
    let target = a
        .changes
        .iter()
        .find(|c| c.attribute.is("targetAddress"))
        .unwrap();
    assert!(target.after.is_empty(), "targetAddress is removed");
    assert!(
        !a.changes.iter().any(|c| c.attribute.is("title")),
        "directory data is preserved"
    );
    snapshot("scenario5_mail_user", &plan);
}

#[test]
fn scenario6_existing_mailbox_is_unchanged() {
    let plan = plan_case("scenario6_mailbox");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(6), Status::Unchanged));
    assert!(plan.actions.is_empty());
    assert!(!plan.has_changes());
    snapshot("scenario6_mailbox", &plan);
}

#[test]
fn addresses_compare_without_case() {
    let plan = plan_case("case_insensitive_addresses");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(6), Status::Unchanged));
    assert_eq!(s.matched.as_ref().unwrap().via, Via::Smtp);
}

#[test]
fn batch_mode_warns_about_soft_candidates_and_creates() {
    let plan = plan_case("batch_soft_candidates");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(1), Status::Planned));
    assert_eq!(s.candidates.len(), 2, "{:?}", s.candidates);
    let vias: Vec<Via> = s.candidates.iter().map(|c| c.via).collect();
    assert!(vias.contains(&Via::SamAccountName) && vias.contains(&Via::Cn));
    let warnings: Vec<&str> = s
        .messages
        .iter()
        .filter(|m| m.level == Level::Warning)
        .map(|m| m.text.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("would duplicate NT account CN=jsmith,CN=Users,DC=acme,DC=test")),
        "{warnings:?}"
    );
    // The soft candidate owns `jsmith`; the new mailbox must not collide with it.
    assert_eq!(
        change_after(&plan, CreateMailbox, "sAMAccountName"),
        ["jsmith2"]
    );
    snapshot("batch_soft_candidates", &plan);
}

#[test]
fn interactive_mode_waits_for_confirmation() {
    let plan = plan_case("interactive_needs_confirmation");
    assert_eq!(status(&plan, JOHN), Status::NeedsConfirmation);
    assert!(kinds(&plan, JOHN).is_empty());
    // A person without candidates is planned as usual.
    assert_eq!(
        status(&plan, "CN=Jane Doe,OU=Sales,O=Acme"),
        Status::Planned
    );
    snapshot("interactive_needs_confirmation", &plan);

    let plan = plan_case("interactive_confirmed");
    assert_eq!(subject(&plan, JOHN).scenario, Some(2));
    assert_eq!(kinds(&plan, JOHN), [ConvertNtAccount]);
}

#[test]
fn computer_accounts_are_not_nt_accounts() {
    let plan = plan_case("computer_not_nt_account");
    let s = subject(&plan, "CN=Web Server,OU=Sales,O=Acme");
    assert_eq!((s.scenario, s.status), (Some(1), Status::Planned));
    assert!(s.candidates.is_empty());
}

#[test]
fn two_users_hard_matching_is_ambiguous() {
    let plan = plan_case("ambiguous_two_users");
    let s = subject(&plan, JOHN);
    assert_eq!((s.status, s.scenario), (Status::Ambiguous, None));
    assert_eq!(s.candidates.len(), 2);
    assert!(plan.actions.is_empty());
    snapshot("ambiguous_two_users", &plan);
}

#[test]
fn two_confirmed_targets_are_ambiguous() {
    let plan = plan_case("ambiguous_two_pins");
    let s = subject(&plan, JOHN);
    assert_eq!(s.status, Status::Ambiguous);
    assert!(
        s.messages[0]
            .text
            .contains("pins this person to 2 different destination objects"),
        "{:?}",
        s.messages
    );
}

#[test]
fn two_persons_claiming_one_object_are_both_ambiguous() {
    let plan = plan_case("ambiguous_two_persons_one_object");
    for p in [JOHN, "CN=John Smith,OU=East,O=Acme"] {
        let s = subject(&plan, p);
        assert_eq!(s.status, Status::Ambiguous, "{p}");
        assert!(
            s.messages[0].text.contains("claimed by 2 source persons"),
            "{:?}",
            s.messages
        );
    }
    assert!(plan.actions.is_empty());
}

#[test]
fn two_persons_with_one_address_are_both_ambiguous() {
    let plan = plan_case("ambiguous_shared_address");
    for p in [JOHN, "CN=Jo Smith,OU=East,O=Acme"] {
        let s = subject(&plan, p);
        assert_eq!(s.status, Status::Ambiguous, "{p}");
        assert!(
            s.messages[0]
                .text
                .contains("address john.smith@acme.com is held by 2 source persons"),
            "{:?}",
            s.messages
        );
    }
}

#[test]
fn ignore_pins_leave_out_persons_and_candidates() {
    let plan = plan_case("pins_ignore");
    assert!(
        plan.subjects
            .iter()
            .all(|s| s.source.to_string() != "CN=Jane Doe,OU=Sales,O=Acme")
    );
    // The only mailbox holding John's address is ignored, so John gets a new mailbox, and the
    // address the ignored mailbox holds is left off with a warning rather than colliding.
    let s = subject(&plan, JOHN);
    assert_eq!(s.scenario, Some(1));
    assert!(
        s.messages.iter().any(|m| m
            .text
            .contains("is held by CN=John Smith,CN=Users,DC=acme,DC=test")),
        "{:?}",
        s.messages
    );
}

#[test]
fn remigration_pin_is_scenario_6() {
    let plan = plan_case("pins_remigrate");
    let s = subject(&plan, JOHN);
    assert_eq!((s.scenario, s.status), (Some(6), Status::Unchanged));
    let m = s.matched.as_ref().unwrap();
    assert_eq!((m.by, m.via), (By::Pinned, Via::Remigrate));
    assert_eq!(m.object.to_string(), "CN=Archive,CN=Users,DC=acme,DC=test");
}

#[test]
fn a_pin_overrides_a_hard_match_and_says_so() {
    let plan = plan_case("pin_overrides_hard_match");
    let s = subject(&plan, JOHN);
    assert_eq!(s.scenario, Some(2));
    assert!(
        s.messages
            .iter()
            .any(|m| m.text.contains("overrides a hard match")),
        "{:?}",
        s.messages
    );
}

#[test]
fn collisions_derive_unique_names() {
    let plan = plan_case("collisions");
    let creates: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.kind == CreateMailbox)
        .collect();
    assert_eq!(creates.len(), 2);
    let dns: Vec<String> = creates.iter().map(|a| a.target.to_string()).collect();
    assert_eq!(
        dns,
        [
            "CN=John Smith 2,OU=Migrated,DC=acme,DC=test",
            "CN=John Smith 3,OU=Migrated,DC=acme,DC=test"
        ]
    );
    let sams: Vec<Vec<String>> = creates
        .iter()
        .map(|a| {
            a.changes
                .iter()
                .find(|c| c.attribute.is("sAMAccountName"))
                .unwrap()
                .after
                .iter()
                .map(Value::display)
                .collect()
        })
        .collect();
    assert_eq!(
        sams,
        [vec!["jsmith2".to_string()], vec!["jsmith3".to_string()]]
    );
    for s in &plan.subjects {
        assert!(
            s.messages.iter().any(|m| m.text.contains("already exists")),
            "{:?}",
            s.messages
        );
    }
    snapshot("collisions", &plan);
}

#[test]
fn non_ascii_names_from_base64() {
    let plan = plan_case("non_ascii_base64");
    let s = subject(&plan, "CN=Jürgen Müller,OU=Sales,O=Acme");
    assert_eq!(s.name, "Jürgen Müller");
    assert_eq!(s.scenario, Some(3));
    assert_eq!(
        plan.actions[0].target.to_string(),
        "CN=Jürgen Müller,OU=Migrated,DC=acme,DC=test"
    );
    snapshot("non_ascii_base64", &plan);
}

#[test]
fn multi_valued_cn_soft_matches_on_any_name() {
    let plan = plan_case("multi_valued_cn");
    let s = subject(&plan, JOHN);
    assert_eq!(s.candidates.len(), 1);
    assert_eq!(s.candidates[0].value, "Johnny Smith");
}

#[test]
fn merge_policies() {
    let plan = plan_case("merge_prefer_contact");
    assert_eq!(
        change_after(&plan, MergeAttributes, "title"),
        ["Senior Buyer"]
    );
    assert_eq!(
        change_after(&plan, MergeAttributes, "telephoneNumber"),
        ["555"]
    );

    let plan = plan_case("merge_prefer_destination");
    let merge = plan
        .actions
        .iter()
        .find(|a| a.kind == MergeAttributes)
        .unwrap();
    let attrs: Vec<&str> = merge.changes.iter().map(|c| c.attribute.as_str()).collect();
    assert!(
        !attrs.contains(&"title") && !attrs.contains(&"telephoneNumber"),
        "{attrs:?}"
    );
    assert!(
        change_after(&plan, MergeAttributes, "proxyAddresses")
            .contains(&"x500:/o=Acme/cn=js".to_string())
    );
}

#[test]
fn distribution_lists_follow_their_members() {
    let plan = plan_case("distribution_lists");
    let sales = subject(&plan, "CN=Sales Team,OU=Groups,O=Acme");
    assert_eq!(sales.status, Status::Planned);
    assert!(
        sales.messages.iter().any(|m| m
            .text
            .contains("CN=Nobody,OU=Sales,O=Acme is not in this wave")),
        "{:?}",
        sales.messages
    );
    let set = plan
        .actions
        .iter()
        .find(|a| {
            a.kind == SetGroupMembers
                && a.target.to_string() == "CN=Sales Team,OU=Migrated,DC=acme,DC=test"
        })
        .unwrap();
    let members: Vec<String> = set.changes[0].after.iter().map(Value::display).collect();
    assert_eq!(
        members,
        [
            "CN=All Staff,OU=Migrated,DC=acme,DC=test",
            "CN=Jane Doe,CN=Users,DC=acme,DC=test",
            "CN=John Smith,OU=Migrated,DC=acme,DC=test"
        ]
    );
    // A list is filled after its members and nested lists exist.
    assert!(
        set.depends_on
            .contains(&"create_mailbox:CN=John Smith,OU=Migrated,DC=acme,DC=test".to_string())
    );
    assert!(
        set.depends_on
            .contains(&"create_group:CN=All Staff,OU=Migrated,DC=acme,DC=test".to_string())
    );
    assert!(
        set.depends_on
            .contains(&"create_group:CN=Sales Team,OU=Migrated,DC=acme,DC=test".to_string())
    );
    // An existing list (matched by address) is filled, not created.
    let support = subject(&plan, "CN=Support Team,OU=Groups,O=Acme");
    assert_eq!(
        support.matched.as_ref().unwrap().object.to_string(),
        "CN=Support,CN=Users,DC=acme,DC=test"
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| a.kind == CreateGroup && a.subject == support.source)
    );
    snapshot("distribution_lists", &plan);
}

#[test]
fn every_fixture_plans_deterministically() {
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("plan.yaml").exists() || !dir.join("source.ldif").exists() {
            continue;
        }
        let a = plan_file(&dir.join("plan.yaml"));
        let b = plan_file(&dir.join("plan.yaml"));
        assert_eq!(
            mailplan::render::json::render(&a),
            mailplan::render::json::render(&b),
            "{}",
            dir.display()
        );
        mailplan::plan::graph::ActionGraph::build(&a).unwrap();
    }
}

/// Carbonio as the destination: a new person gets `create_account` named by its primary
/// address with the plan's class of service and a password that must be changed, and one
/// `add_account_alias` per further address in Carbonio's domains; a hard match fills the
/// account's empty attributes (`modify_account`); an address held as another account's alias
/// or by a distribution list is ambiguous, naming the holder; a calendar resource is nobody's
/// mailbox; source groups become lists whose members are addresses, after those exist.
#[test]
fn carbonio_destination() {
    let plan = plan_case("carbonio");
    let john = "uid=jsmith,ou=people,dc=old,dc=test";
    let s = subject(&plan, john);
    assert_eq!((s.scenario, s.status), (Some(1), Status::Planned));
    assert_eq!(kinds(&plan, john), [CreateAccount, AddAccountAlias]);
    assert_eq!(
        id(&plan, CreateAccount),
        "create_account:uid=john.smith,ou=people,dc=acme,dc=com"
    );
    assert_eq!(
        change_after(&plan, CreateAccount, "zimbraMailDeliveryAddress"),
        ["john.smith@acme.com"]
    );
    assert_eq!(
        change_after(&plan, CreateAccount, "zimbraPasswordMustChange"),
        ["TRUE"]
    );
    assert_eq!(
        change_after(&plan, CreateAccount, "zimbraCOSId"),
        ["e00428a1-0c00-11d9-836a-000d93afea2a"]
    );
    let alias = plan
        .actions
        .iter()
        .find(|a| a.kind == AddAccountAlias && a.target.to_string().starts_with("uid=js,"))
        .unwrap();
    assert_eq!(
        alias.depends_on,
        ["create_account:uid=john.smith,ou=people,dc=acme,dc=com"]
    );
    assert!(s.messages.iter().any(|m| {
        m.text
            .contains("john@old.test is not in one of the plan's domains")
    }));

    let ann = "uid=adoe,ou=people,dc=old,dc=test";
    let s = subject(&plan, ann);
    assert_eq!(s.scenario, Some(6));
    assert_eq!(s.matched.as_ref().unwrap().by, By::Hard);
    assert_eq!(kinds(&plan, ann), [ModifyAccount, AddAccountAlias]);

    let bob = subject(&plan, "uid=bbrown,ou=people,dc=old,dc=test");
    assert_eq!(bob.status, Status::Ambiguous);
    assert_eq!(
        bob.candidates[0].object.to_string(),
        "uid=bob,ou=people,dc=acme,dc=com"
    );
    let carl = subject(&plan, "uid=cgreen,ou=people,dc=old,dc=test");
    assert_eq!(carl.status, Status::Ambiguous);
    assert_eq!(carl.candidates[0].class, Class::Group);
    assert!(
        carl.messages[0]
            .text
            .contains("held by the distribution list")
    );

    // A soft candidate (an account named by the person's short name) is a warning in batch.
    let mia = subject(&plan, "uid=mlee,ou=people,dc=old,dc=test");
    assert_eq!(mia.status, Status::Planned);
    assert_eq!(mia.candidates[0].via, Via::SamAccountName);

    // Lists: a new one, and members added to an existing one, as addresses.
    let sales = plan
        .actions
        .iter()
        .find(|a| {
            a.kind == AddDistributionListMembers && a.target.to_string().starts_with("uid=sales")
        })
        .unwrap();
    let members: Vec<String> = sales.changes[0].after.iter().map(Value::display).collect();
    assert_eq!(members, ["ann.doe@acme.com", "john.smith@acme.com"]);
    assert!(
        sales
            .depends_on
            .contains(&"create_distribution_list:uid=sales,ou=people,dc=acme,dc=com".to_string())
    );
    let json = serde_json::to_value(&plan).unwrap();
    let kinds_json: std::collections::BTreeSet<String> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds_json.into_iter().collect::<Vec<_>>(),
        [
            "add_account_alias",
            "add_distribution_list_members",
            "create_account",
            "create_distribution_list",
            "modify_account"
        ]
    );
    snapshot("carbonio_destination", &plan);
}

/// Carbonio names an account and a list by its address: the DN's `uid` is the object's `uid`,
/// also when the name it would have had is taken, and a taken account name is said as `uid`.
#[test]
fn carbonio_objects_are_named_by_their_uid() {
    // A list whose cn has odd characters is named by its address's local part.
    let plan = plan_case("carbonio_awkward");
    let list = plan
        .actions
        .iter()
        .find(|a| a.kind == CreateDistributionList)
        .unwrap();
    assert_eq!(list.target.to_string(), "uid=rnd,ou=people,dc=acme,dc=com");
    assert_eq!(change_after(&plan, CreateDistributionList, "uid"), ["rnd"]);

    // Taken names: the account `john` and the entry `uid=help-desk`.
    let plan = plan_case("carbonio_names");
    let john = "uid=jsmith,ou=people,dc=old,dc=test";
    assert_eq!(
        id(&plan, CreateAccount),
        "create_account:uid=john2,ou=people,dc=acme,dc=com"
    );
    assert_eq!(change_after(&plan, CreateAccount, "uid"), ["john2"]);
    let texts: Vec<&str> = subject(&plan, john)
        .messages
        .iter()
        .map(|m| m.text.as_str())
        .collect();
    assert!(
        texts.contains(
            &"account name `john` is taken at the destination; the new mailbox gets uid `john2`"
        ),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("sAMAccountName")),
        "{texts:?}"
    );
    assert_eq!(
        id(&plan, CreateDistributionList),
        "create_distribution_list:uid=help-desk2,ou=people,dc=acme,dc=com"
    );
    assert_eq!(
        change_after(&plan, CreateDistributionList, "uid"),
        ["help-desk2"]
    );
}

/// A new Carbonio list holds what Zimbra's attribute definitions allow on a list, as Carbonio
/// makes one: no zimbraMailDeliveryAddress (a mailbox's), its address in `mail` and
/// `zimbraMailAlias`, and the zimbraMailRecipient class that holds the latter.
#[test]
fn a_new_carbonio_list_has_no_delivery_address() {
    let plan = plan_case("carbonio");
    let list = plan
        .actions
        .iter()
        .find(|a| a.kind == CreateDistributionList)
        .unwrap();
    let changed: Vec<&str> = list.changes.iter().map(|c| c.attribute.as_str()).collect();
    assert!(
        !changed.contains(&"zimbraMailDeliveryAddress"),
        "{changed:?}"
    );
    assert_eq!(
        change_after(&plan, CreateDistributionList, "mail"),
        ["sales@acme.com"]
    );
    assert_eq!(
        change_after(&plan, CreateDistributionList, "zimbraMailAlias"),
        ["sales@acme.com"]
    );
    assert_eq!(
        change_after(&plan, CreateDistributionList, "objectClass"),
        ["zimbraDistributionList", "zimbraMailRecipient"]
    );
    let account = plan
        .actions
        .iter()
        .find(|a| a.kind == CreateAccount)
        .unwrap();
    assert!(
        account
            .changes
            .iter()
            .any(|c| c.attribute.is("zimbraMailDeliveryAddress"))
    );
}
