//! The whole flow against a real OpenLDAP server: plan, saved plan, apply, rerun, stale actions,
//! restore, connection problems, and a server killed mid-apply. The Domino-like source and the
//! AD-like destination both live in a throwaway slapd (see `tests/servers`), loaded from the
//! same LDIF files the quickstart example plans offline, so the two plans can be compared.

mod servers;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use servers::{ADMIN_PASSWORD, READER_DN, READER_PASSWORD, Slapd};

const SOURCE: &str = "O=Acme";
const DEST: &str = "DC=acme,DC=test";
const PW_ENV: &str = "MAILPLAN_TEST_LDAP_PASSWORD";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    root().join("examples/data").join(name)
}

fn slapd_with_examples() -> Slapd {
    Slapd::start(
        &[SOURCE, DEST],
        &[
            (SOURCE, &example("domino.ldif")),
            (DEST, &example("ad.ldif")),
        ],
    )
}

fn ldap_block(url: &str, bind_dn: &str, base: &str, extra: &str) -> String {
    format!(
        "    ldap:\n      url: {url}\n      bind_dn: \"{bind_dn}\"\n      password: {{ env: {PW_ENV} }}\n      base: \"{base}\"\n{extra}"
    )
}

/// The quickstart plan with both directories on the server.
fn write_plan(dir: &Path, source: &str, dest: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/plans/quickstart.yaml"))
        .expect("quickstart plan");
    let text = text
        .replace("    ldif: ../data/domino.ldif\n", source)
        .replace("    ldif: ../data/ad.ldif\n", dest);
    assert!(!text.contains("ldif:"), "{text}");
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).expect("write plan");
    path
}

fn standard_plan(dir: &Path, s: &Slapd, dest_extra: &str) -> PathBuf {
    write_plan(
        dir,
        &ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, "      page_size: 3\n"),
        &ldap_block(&s.url(), &s.admin(DEST), DEST, dest_extra),
    )
}

fn mailplan(args: &[&str]) -> Output {
    let mut c = Command::cargo_bin("mailplan").expect("binary");
    c.env(PW_ENV, ADMIN_PASSWORD).env("NO_COLOR", "1");
    c.args(args).output().expect("run mailplan")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn planning_against_slapd_gives_the_same_plan_as_the_ldif_files() {
    let s = slapd_with_examples();
    let dir = tempfile::tempdir().unwrap();
    let plan = standard_plan(dir.path(), &s, "      page_size: 2\n");
    let live = mailplan(&["plan", p(&plan)]);
    let (live_out, live_err) = text(&live);
    assert!(live.status.success(), "{live_err}");
    // The same entries, read from LDIF files.
    let offline_plan = dir.path().join("offline.yaml");
    let quickstart =
        std::fs::read_to_string(root().join("examples/plans/quickstart.yaml")).unwrap();
    std::fs::write(
        &offline_plan,
        quickstart
            .replace("../data/domino.ldif", p(&s.loaded[0]))
            .replace("../data/ad.ldif", p(&s.loaded[1])),
    )
    .unwrap();
    let offline = mailplan(&["plan", p(&offline_plan)]);
    let (offline_out, offline_err) = text(&offline);
    assert!(offline.status.success(), "{offline_err}");
    // slapd spells the attribute types of the DNs it returns in lower case (`cn=bbaker,cn=Users`)
    // where the LDIF file has `CN=`; DNs compare case-insensitively, so only that spelling may
    // differ.
    assert_ne!(live_out, offline_out, "slapd is expected to re-spell DNs");
    assert_eq!(dn_types_upper(&live_out), dn_types_upper(&offline_out));
    assert!(
        live_out.contains("Plan: 4 to create, 3 to convert"),
        "{live_out}"
    );

    // The JSON form too: subjects, actions, changes and preconditions are identical.
    let live = mailplan(&["plan", p(&plan), "--json"]);
    let offline = mailplan(&["plan", p(&offline_plan), "--json"]);
    assert_eq!(
        dn_types_upper(&text(&live).0),
        dn_types_upper(&text(&offline).0)
    );
}

fn dn_types_upper(s: &str) -> String {
    s.replace("cn=", "CN=")
        .replace("ou=", "OU=")
        .replace("dc=", "DC=")
        .replace(",o=", ",O=")
}

/// The standard plan against `s`, saved for review as `reviewed.json` in a new folder.
fn reviewed_plan(s: &Slapd) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plan = standard_plan(dir.path(), s, "");
    let saved = dir.path().join("reviewed.json");
    let o = mailplan(&["plan", p(&plan), "--out", p(&saved)]);
    assert!(o.status.success(), "{}", text(&o).1);
    (dir, plan, saved)
}

#[test]
fn apply_rerun_stale_action_and_restore_against_slapd() {
    let s = slapd_with_examples();
    let (_dir, plan, saved) = reviewed_plan(&s);

    // Between review and apply, someone edits Erin's mail-enabled user.
    let erin = "CN=Erin Evans,CN=Users,DC=acme,DC=test";
    s.ldapmodify(
        DEST,
        &format!("dn: {erin}\nchangetype: modify\nreplace: targetAddress\ntargetAddress: SMTP:erin@elsewhere.example\n-\n"),
    );
    let o = mailplan(&["apply", p(&saved), "--parallelism", "4"]);
    let (out, err) = text(&o);
    assert!(
        !o.status.success(),
        "the stale action must fail the run\n{out}{err}"
    );
    let all = format!("{out}{err}").to_lowercase();
    assert!(all.contains(&erin.to_lowercase()), "{all}");
    assert!(all.contains("changed since the plan was made"), "{all}");
    // Everything else was applied: Alice's new mailbox is on the server.
    let alice = s.search(
        "OU=Migrated,DC=acme,DC=test",
        "(cn=Alice Archer)",
        &["proxyAddresses", "homeMDB"],
    );
    assert!(alice.contains("SMTP:alice.archer@acme.com"), "{alice}");
    // Carol's contact is gone and its group membership moved to her mailbox.
    let carol = "CN=Carol Chen,OU=Contacts,DC=acme,DC=test";
    assert!(servers::dns(&s.search(carol, "(objectClass=*)", &["dn"])).is_empty());
    let team = s
        .search(
            "CN=Marketing Team,OU=Groups,DC=acme,DC=test",
            "(objectClass=*)",
            &["member"],
        )
        .to_lowercase();
    assert!(
        team.contains("member: cn=carol chen,ou=migrated,dc=acme,dc=test"),
        "{team}"
    );
    assert!(!team.contains("ou=contacts"), "{team}");

    // Planning again picks up what is left (Erin), applying it converges.
    let o = mailplan(&["apply", p(&plan), "--auto-approve"]);
    assert!(o.status.success(), "{}{}", text(&o).0, text(&o).1);
    let o = mailplan(&["plan", p(&plan), "--detailed-exitcode"]);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a rerun must show no changes:\n{out}{err}"
    );
    assert!(out.contains("No changes."), "{out}");

    // The deleted contact comes back from its backup.
    let o = mailplan(&["state", "restore", p(&plan), carol, "--auto-approve"]);
    assert!(o.status.success(), "{}{}", text(&o).0, text(&o).1);
    let back = s.search(
        carol,
        "(objectClass=*)",
        &["proxyAddresses", "telephoneNumber"],
    );
    assert!(back.contains("SMTP:carol.chen@acme.com"), "{back}");
    assert!(back.contains("telephoneNumber: +1 555 0103"), "{back}");
}

/// A saved plan creates mailboxes without reading their DNs first (the add refuses an entry
/// that exists): one that someone else created since the plan fails as stale, alone, and the
/// person is not tied to that foreign object by the state.
#[test]
fn a_mailbox_created_by_someone_else_since_the_plan_is_stale() {
    let s = slapd_with_examples();
    let (_dir, plan, saved) = reviewed_plan(&s);
    let alice = "CN=Alice Archer,OU=Migrated,DC=acme,DC=test";
    s.ldapmodify(
        DEST,
        &format!(
            "dn: {alice}\nchangetype: add\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: Alice Archer\nsn: Archer\n\
             description: made by hand\n"
        ),
    );
    let o = mailplan(&["apply", p(&saved), "--parallelism", "4"]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains(&format!(
            "`{alice}` exists now; the plan expected it not to"
        )),
        "{all}"
    );
    // The rest applied: Carol's contact is gone.
    let carol = "CN=Carol Chen,OU=Contacts,DC=acme,DC=test";
    assert!(servers::dns(&s.search(carol, "(objectClass=*)", &["dn"])).is_empty());
    // The hand-made entry is untouched, and the next plan does not claim it for Alice.
    let hand = s.search(alice, "(objectClass=*)", &["description", "proxyAddresses"]);
    assert!(hand.contains("description: made by hand"), "{hand}");
    assert!(!hand.contains("proxyAddresses"), "{hand}");
    let o = mailplan(&["plan", p(&plan)]);
    let out = text(&o).0;
    assert!(!out.contains("link recorded by an earlier apply"), "{out}");
}

#[test]
fn a_self_signed_certificate_given_as_ca_file_is_trusted_for_ldaps_and_starttls() {
    let s = Slapd::start_self_signed(
        &[SOURCE, DEST],
        &[
            (SOURCE, &example("domino.ldif")),
            (DEST, &example("ad.ldif")),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = format!("      ca_file: {}\n", s.certs.cert.display());
    let dest = ldap_block(&s.url(), &s.admin(DEST), DEST, "");
    let plan_with = |source: String| {
        let plan = write_plan(dir.path(), &source, &dest);
        let o = mailplan(&["plan", p(&plan)]);
        let (out, err) = text(&o);
        (o.status.code(), format!("{out}{err}"))
    };
    // The server's own certificate as ca_file: trusted over LDAPS (read by mailplan's reader)
    // and over StartTLS, by either name it carries.
    let (code, all) = plan_with(ldap_block(&s.tls_url(), &s.admin(SOURCE), SOURCE, &ca));
    assert_eq!(code, Some(0), "{all}");
    let (code, all) = plan_with(ldap_block(
        &s.url().replace("127.0.0.1", "localhost"),
        &s.admin(SOURCE),
        SOURCE,
        &format!("{ca}      starttls: true\n"),
    ));
    assert_eq!(code, Some(0), "{all}");
    // Without it, the certificate is not trusted.
    let (code, all) = plan_with(ldap_block(&s.tls_url(), &s.admin(SOURCE), SOURCE, ""));
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("is not trusted"), "{all}");

    // The write side (ldap3's connections) trusts it the same way.
    let settings = mailplan::spec::LdapSettings {
        url: s.tls_url(),
        bind_dn: Some(s.admin(DEST)),
        password: Some(servers::secret_file(dir.path(), "pw", ADMIN_PASSWORD)),
        base: mailplan::directory::Dn::parse(DEST).unwrap(),
        filter: "(objectClass=*)".into(),
        scope: mailplan::spec::LdapScope::Sub,
        page_size: 500,
        timeout: std::time::Duration::from_secs(10),
        starttls: false,
        ca_file: Some(s.certs.cert.clone()),
        insecure: false,
        sasl_external: false,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writer = runtime.block_on(mailplan::apply::LdapDirectory::connect(&settings, 1));
    assert!(writer.is_ok(), "{:?}", writer.err());
    let untrusted = mailplan::spec::LdapSettings {
        ca_file: None,
        ..settings
    };
    let e = runtime
        .block_on(mailplan::apply::LdapDirectory::connect(&untrusted, 1))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("is not trusted"), "{e}");
}

#[test]
fn connection_problems_are_clear_errors() {
    let s = slapd_with_examples();
    let dir = tempfile::tempdir().unwrap();
    let run_plan = |source: String| {
        let plan = write_plan(
            dir.path(),
            &source,
            &ldap_block(&s.url(), &s.admin(DEST), DEST, ""),
        );
        let o = mailplan(&["plan", p(&plan)]);
        let (out, err) = text(&o);
        (o.status.code(), format!("{out}{err}"))
    };

    // A wrong password.
    let mut c = Command::cargo_bin("mailplan").unwrap();
    let plan = write_plan(
        dir.path(),
        &ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, ""),
        &ldap_block(&s.url(), &s.admin(DEST), DEST, ""),
    );
    let o = c
        .env(PW_ENV, "wrong")
        .args(["plan", p(&plan)])
        .output()
        .unwrap();
    let all = text(&o).1;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        all.contains("refused the bind as `cn=admin,O=Acme`"),
        "{all}"
    );
    assert!(all.contains("invalidCredentials (49)"), "{all}");
    assert!(
        !all.contains(ADMIN_PASSWORD) && !all.contains("wrong`"),
        "{all}"
    );

    // An unreachable server.
    let closed = servers::free_port();
    let (code, all) = run_plan(ldap_block(
        &format!("ldap://127.0.0.1:{closed}"),
        &s.admin(SOURCE),
        SOURCE,
        "      timeout: 3\n",
    ));
    assert_eq!(code, Some(1));
    assert!(
        all.contains(&format!("cannot connect to `ldap://127.0.0.1:{closed}`")),
        "{all}"
    );

    // A certificate that does not verify (signed by a CA the system does not trust).
    let (code, all) = run_plan(ldap_block(&s.tls_url(), &s.admin(SOURCE), SOURCE, ""));
    assert_eq!(code, Some(1));
    assert!(all.contains("is not trusted"), "{all}");
    assert!(all.contains("ca_file"), "{all}");

    // The same server verifies with its CA given, over LDAPS and over StartTLS.
    let ca = format!("      ca_file: {}\n", s.certs.ca.display());
    let (code, all) = run_plan(ldap_block(&s.tls_url(), &s.admin(SOURCE), SOURCE, &ca));
    assert_eq!(code, Some(0), "{all}");
    let (code, all) = run_plan(ldap_block(
        &s.url().replace("127.0.0.1", "localhost"),
        &s.admin(SOURCE),
        SOURCE,
        &format!("{ca}      starttls: true\n"),
    ));
    assert_eq!(code, Some(0), "{all}");

    // insecure: true works, and says so.
    let (code, all) = run_plan(ldap_block(
        &s.tls_url(),
        &s.admin(SOURCE),
        SOURCE,
        "      insecure: true\n",
    ));
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("warning: source directory"), "{all}");
    assert!(all.contains("NOT verified"), "{all}");

    // A password sent over plain ldap:// is said out loud, naming the server; over TLS it is not.
    let plain = format!(
        "source directory `{}`: the bind password is sent without TLS",
        s.url()
    );
    let (code, all) = run_plan(ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, ""));
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains(&format!("warning: {plain}")), "{all}");
    let (_, all) = run_plan(ldap_block(&s.tls_url(), &s.admin(SOURCE), SOURCE, &ca));
    assert!(!all.contains("source directory `ldaps"), "{all}");
    let (_, all) = run_plan(ldap_block(
        &s.url().replace("127.0.0.1", "localhost"),
        &s.admin(SOURCE),
        SOURCE,
        &format!("{ca}      starttls: true\n"),
    ));
    assert!(!all.contains("source directory `ldap://localhost"), "{all}");

    // A search that finds nothing (here a filter no entry matches; on a real server also a bind
    // user who may not see into the base) is said out loud, before any of its consequences.
    let (code, all) = run_plan(ldap_block(
        &s.url(),
        &s.admin(SOURCE),
        SOURCE,
        "      filter: \"(objectClass=noSuchClass)\"\n",
    ));
    // The quickstart plan pins persons by DN, so the empty source is also an error; the warning
    // comes first and says why.
    assert_eq!(code, Some(1), "{all}");
    let warning = format!(
        "warning: source directory `{}` returned no entries under `O=Acme` with filter `(objectClass=noSuchClass)`; check the base and the filter, and that `cn=admin,O=Acme` may read them",
        s.url()
    );
    let (Some(warned), Some(missing)) = (
        all.find(&warning),
        all.find("`CN=Bob Baker,OU=Sales,O=Acme` is not in the source directory"),
    ) else {
        panic!("no warning, or no missing pin: {all}");
    };
    assert!(warned < missing, "{all}");
    let (_, all) = run_plan(ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, ""));
    assert!(!all.contains("returned no entries"), "{all}");

    // A bind user that may read but not write: the plan works, each write fails with the
    // server's reason and the DN.
    let mut c = Command::cargo_bin("mailplan").unwrap();
    let plan = write_plan(
        dir.path(),
        &ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, ""),
        &ldap_block(&s.url(), READER_DN, DEST, "").replace(
            &format!("{{ env: {PW_ENV} }}"),
            "{ env: MAILPLAN_TEST_READER }",
        ),
    );
    let o = c
        .env(PW_ENV, ADMIN_PASSWORD)
        .env("MAILPLAN_TEST_READER", READER_PASSWORD)
        .args(["apply", p(&plan), "--auto-approve"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("insufficientAccessRights (50)"), "{all}");
    assert!(
        all.contains("`CN=Alice Archer,OU=Migrated,DC=acme,DC=test`: add refused"),
        "{all}"
    );

    // Writes go over TLS too, verified with the CA given: the destination over LDAPS, the
    // source over StartTLS. The rerun plans nothing, so every write arrived.
    let plan = write_plan(
        dir.path(),
        &ldap_block(
            &s.url().replace("127.0.0.1", "localhost"),
            &s.admin(SOURCE),
            SOURCE,
            &format!("{ca}      starttls: true\n"),
        ),
        &ldap_block(&s.tls_url(), &s.admin(DEST), DEST, &ca),
    );
    let o = mailplan(&["apply", p(&plan), "--auto-approve"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let o = mailplan(&["plan", p(&plan), "--detailed-exitcode"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
}

#[test]
fn killing_slapd_mid_apply_then_rerunning_converges() {
    let data = tempfile::tempdir().unwrap();
    let o = mailplan(&[
        "generate",
        "--persons",
        "400",
        "--destination-objects",
        "800",
        "--seed",
        "7",
        "--out",
        p(data.path()),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let mut s = Slapd::start(
        &[SOURCE, DEST],
        &[
            (SOURCE, &data.path().join("source.ldif")),
            (DEST, &data.path().join("destination.ldif")),
        ],
    );
    let generated = std::fs::read_to_string(data.path().join("plan.yaml")).unwrap();
    let text_plan = generated
        .replace(
            "    ldif: source.ldif\n",
            &ldap_block(&s.url(), &s.admin(SOURCE), SOURCE, ""),
        )
        .replace(
            "    ldif: destination.ldif\n",
            &ldap_block(&s.url(), &s.admin(DEST), DEST, "      timeout: 5\n"),
        );
    let plan = data.path().join("live.yaml");
    std::fs::write(&plan, text_plan).unwrap();
    let users_in_migrated = |s: &Slapd| {
        servers::dns(&s.search("OU=Migrated,DC=acme,DC=test", "(objectClass=user)", &["dn"])).len()
    };
    let existing = users_in_migrated(&s);

    // Paging is real: an ordinary user may read at most 500 entries per search here, yet the
    // paged read gets them all.
    let unpaged = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-H",
            &s.url(),
            "-D",
            READER_DN,
            "-w",
            READER_PASSWORD,
            "-b",
            DEST,
        ])
        .arg("(objectClass=*)")
        .arg("dn")
        .output()
        .unwrap();
    assert_eq!(unpaged.status.code(), Some(4), "sizeLimitExceeded expected");
    let reader = mailplan::spec::LdapSettings {
        url: s.url(),
        bind_dn: Some(READER_DN.into()),
        password: Some(servers::secret_file(
            data.path(),
            "reader.pw",
            READER_PASSWORD,
        )),
        base: mailplan::directory::Dn::parse(DEST).unwrap(),
        filter: "(objectClass=*)".into(),
        scope: mailplan::spec::LdapScope::Sub,
        page_size: 100,
        timeout: std::time::Duration::from_secs(10),
        starttls: false,
        ca_file: None,
        insecure: false,
        sasl_external: false,
    };
    let (snapshot, stats) = mailplan::directory::ldap::read_snapshot(&reader).unwrap();
    assert_eq!(snapshot.len(), 800);
    assert_eq!(stats.entries, 800);
    let before = mailplan(&["plan", p(&plan), "--json"]);
    assert!(before.status.success(), "{}", text(&before).1);

    let mut apply = servers::apply_in_background(&plan, PW_ENV, ADMIN_PASSWORD);
    // Let it get going, then crash the server under it and bring it back.
    let started = std::time::Instant::now();
    loop {
        let made = users_in_migrated(&s) - existing;
        if made >= 20 || started.elapsed() > std::time::Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        apply.try_wait().unwrap().is_none(),
        "the apply finished before the server could be killed under it"
    );
    s.kill();
    std::thread::sleep(std::time::Duration::from_millis(700));
    s.restart();
    let first = apply.wait_with_output().unwrap();
    let first_err = String::from_utf8_lossy(&first.stderr).into_owned();

    // Whatever the first run managed, a rerun finishes the job and then nothing is left.
    let o = mailplan(&["apply", p(&plan), "--auto-approve", "--parallelism", "4"]);
    assert!(
        o.status.success(),
        "first run:\n{first_err}\nrerun:\n{}{}",
        text(&o).0,
        text(&o).1
    );
    let o = mailplan(&["plan", p(&plan), "--detailed-exitcode"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");

    // Nothing duplicated: one mailbox per planned creation, and no person ambiguous now that
    // was not ambiguous before.
    let planned: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    let creates = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "create_mailbox")
        .count();
    assert!(
        creates > 100,
        "the run must be long enough to be interrupted"
    );
    let found: std::collections::BTreeSet<String> =
        servers::dns(&s.search("OU=Migrated,DC=acme,DC=test", "(objectClass=user)", &["dn"]))
            .into_iter()
            .collect();
    let missing: Vec<String> = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "create_mailbox")
        .map(|a| a["target"].as_str().unwrap().to_lowercase())
        .filter(|t| !found.contains(t))
        .collect();
    assert!(missing.is_empty(), "planned mailboxes missing: {missing:?}");
    assert_eq!(users_in_migrated(&s), existing + creates);
    assert!(first_err.contains("applied"), "{first_err}");
    let ambiguous = |v: &serde_json::Value| {
        v["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "ambiguous")
            .count()
    };
    let after = mailplan(&["plan", p(&plan), "--json"]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(ambiguous(&after), ambiguous(&planned));
    // Nothing lost: every deleted contact has a backup.
    let deletes = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "delete_contact")
        .count();
    let o = mailplan(&["state", "backups", p(&plan)]);
    let backups = text(&o).0;
    assert!(
        backups.lines().count() >= deletes,
        "{deletes} deletions but backups:\n{backups}"
    );
}

#[test]
fn writes_carry_their_preconditions_as_an_assertion() {
    use mailplan::apply::{DirectoryWriter, LdapDirectory};
    use mailplan::directory::ldif::{ModOp, Modification};
    use mailplan::directory::{AttrName, Dn, Value, ValueSet};
    use mailplan::plan::Precondition;

    let s = slapd_with_examples();
    let settings = mailplan::spec::LdapSettings {
        url: s.url(),
        bind_dn: Some(s.admin(DEST)),
        password: Some(servers::secret_file(
            s.dir.path(),
            "admin.pw",
            ADMIN_PASSWORD,
        )),
        base: Dn::parse(DEST).unwrap(),
        filter: "(objectClass=*)".into(),
        scope: mailplan::spec::LdapScope::Sub,
        page_size: 100,
        timeout: std::time::Duration::from_secs(10),
        starttls: false,
        ca_file: None,
        insecure: false,
        sasl_external: false,
    };
    let erin = Dn::parse("CN=Erin Evans,CN=Users,DC=acme,DC=test").unwrap();
    let target = AttrName::new("targetAddress").unwrap();
    let guard = |value: &str| {
        vec![Precondition::Values {
            object: erin.clone(),
            attribute: target.clone(),
            values: ValueSet::from_iter([Value::text(value)]),
        }]
    };
    let mods = vec![Modification {
        op: ModOp::Replace,
        attr: AttrName::new("department").unwrap(),
        values: vec![Value::text("Audit")],
    }];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let d = LdapDirectory::connect(&settings, 2).await.unwrap();
        assert!(d.uses_assertions(), "slapd supports RFC 4528");
        // The server holds another targetAddress than the one the plan saw: refused as stale,
        // and nothing is written.
        let e = d
            .modify_guarded(&erin, mods.clone(), &guard("SMTP:someone@else.example"))
            .await
            .unwrap_err();
        assert!(e.is_stale(), "{e}");
        assert!(e.to_string().contains("assertionFailed (122)"), "{e}");
        let live = d.get(&erin).await.unwrap().unwrap();
        assert_eq!(live.text("department"), Some("Finance"));
        // The value the plan saw: the same write goes through.
        d.modify_guarded(
            &erin,
            mods.clone(),
            &guard("SMTP:erin.evans@notes.acme.com"),
        )
        .await
        .unwrap();
        let live = d.get(&erin).await.unwrap().unwrap();
        assert_eq!(live.text("department"), Some("Audit"));
        // Permanent errors fail at once with the DN and the server's reason.
        let gone = Dn::parse("CN=Nobody,CN=Users,DC=acme,DC=test").unwrap();
        let e = d.modify(&gone, mods.clone()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "`CN=Nobody,CN=Users,DC=acme,DC=test`: modify refused: noSuchObject (32)"
        );
        assert_eq!(d.get(&gone).await.unwrap(), None);
    });
}

#[test]
fn sasl_external_over_the_local_socket_reads_the_directory() {
    let s = slapd_with_examples();
    let dir = tempfile::tempdir().unwrap();
    let external = |base: &str| {
        format!(
            "    ldap:\n      url: \"{}\"\n      sasl: external\n      base: \"{base}\"\n",
            s.ldapi_url()
        )
    };
    let plan = write_plan(dir.path(), &external(SOURCE), &external(DEST));
    let o = mailplan(&["plan", p(&plan)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("Plan: 4 to create, 3 to convert"), "{out}");
}

type Values = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// The destination's entries, by DN (lower case), as the server holds them: each attribute's
/// values, DN values (`member`) compared as DNs (the server may spell `CN=` as `cn=`).
fn destination_entries(s: &Slapd) -> std::collections::BTreeMap<String, Values> {
    mailplan::directory::ldif::parse_entries(&s.search(DEST, "(objectClass=*)", &[]), None)
        .expect("the server's LDIF")
        .into_iter()
        .map(|e| {
            let attrs = e
                .attrs
                .iter()
                .map(|(a, values)| {
                    let values = values
                        .iter()
                        .map(|v| {
                            let t = v.display();
                            match mailplan::directory::Dn::parse(&t) {
                                Ok(dn) if t.contains(',') => dn.key().to_owned(),
                                _ => t,
                            }
                        })
                        .collect();
                    (a.to_string(), values)
                })
                .collect();
            (e.dn.to_string().to_lowercase(), attrs)
        })
        .collect()
}

#[test]
fn state_undo_takes_an_apply_back_on_slapd() {
    let s = slapd_with_examples();
    let dir = tempfile::tempdir().unwrap();
    let plan = standard_plan(dir.path(), &s, "");
    let original = destination_entries(&s);
    let o = mailplan(&["apply", p(&plan), "--auto-approve"]);
    assert!(o.status.success(), "{}{}", text(&o).0, text(&o).1);
    assert_ne!(destination_entries(&s), original);
    let o = mailplan(&["state", "undo", p(&plan), "1", "--auto-approve"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let now = destination_entries(&s);
    let differ: Vec<String> = now
        .keys()
        .chain(original.keys())
        .filter(|k| now.get(*k) != original.get(*k))
        .map(|k| {
            format!(
                "{k}:\n  now  {:?}\n  was  {:?}",
                now.get(k),
                original.get(k)
            )
        })
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // A second undo of the same run is refused.
    let o = mailplan(&["state", "undo", p(&plan), "1", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("run 1 was already undone by run 2"),
        "{}",
        text(&o).1
    );
}
