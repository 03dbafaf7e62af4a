//! The whole flow against a real Active Directory: a Samba AD domain controller with an
//! Exchange-like schema extension as the destination, the Domino-like source in OpenLDAP.
//!
//! Samba listens on fixed ports (389, 636), so this file owns it and runs every step in one
//! test, one after the other, against one provisioned domain (provisioning takes seconds).

mod servers;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use servers::{ADMIN_PASSWORD, SAMBA_ADMIN, SAMBA_BASE, SAMBA_URL, Samba, Slapd};

const SOURCE: &str = "O=Acme";
const PW_ENV: &str = "MAILPLAN_TEST_LDAP_PASSWORD";
const DB: &str = "CN=DB01,CN=Users,DC=test,DC=local";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mailplan(args: &[&str]) -> Output {
    let mut c = Command::cargo_bin("mailplan").expect("binary");
    c.env(PW_ENV, ADMIN_PASSWORD).env("NO_COLOR", "1");
    c.args(args).output().expect("run mailplan")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The quickstart's destination (examples/data/ad.ldif) as changes for the Samba domain: the
/// domain root, CN=Users, CN=Computers and the Exchange configuration exist or are not needed
/// there, and homeMDB names a database object in the domain (AD checks DN-valued attributes).
fn destination_for_samba() -> String {
    let text = std::fs::read_to_string(root().join("examples/data/ad.ldif")).unwrap();
    let mut out = format!(
        "dn: {DB}\nchangetype: add\nobjectClass: top\nobjectClass: container\ncn: DB01\n\n"
    );
    for record in text.split("\n\n") {
        let lines: Vec<&str> = record
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("version:"))
            .collect();
        let Some(dn) = lines.first().and_then(|l| l.strip_prefix("dn: ")) else {
            continue;
        };
        let lower = dn.to_ascii_lowercase();
        if lower == "dc=acme,dc=test"
            || lower == "cn=users,dc=acme,dc=test"
            || lower == "cn=computers,dc=acme,dc=test"
            || lower.ends_with("cn=configuration,dc=acme,dc=test")
            || lower.starts_with("cn=ws001,")
        {
            continue;
        }
        for (i, l) in lines.iter().enumerate() {
            let l = if l.starts_with("homeMDB:") {
                format!("homeMDB: {DB}")
            } else {
                l.replace("DC=acme,DC=test", SAMBA_BASE)
            };
            out.push_str(&l);
            out.push('\n');
            if i == 0 {
                out.push_str("changetype: add\n");
            }
        }
        out.push('\n');
    }
    out
}

fn ldap_block(url: &str, bind_dn: &str, base: &str, extra: &str) -> String {
    format!(
        "    ldap:\n      url: {url}\n      bind_dn: \"{bind_dn}\"\n      password: {{ env: {PW_ENV} }}\n      base: \"{base}\"\n{extra}"
    )
}

fn samba_plan(dir: &Path, slapd: &Slapd, dest_extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/plans/quickstart.yaml")).unwrap();
    let mut text = text
        .replace(
            "    ldif: ../data/domino.ldif\n",
            &ldap_block(&slapd.url(), &slapd.admin(SOURCE), SOURCE, ""),
        )
        .replace(
            "    ldif: ../data/ad.ldif\n",
            &ldap_block(SAMBA_URL, SAMBA_ADMIN, SAMBA_BASE, dest_extra),
        )
        .replace("DC=acme,DC=test", SAMBA_BASE)
        // Samba has no Exchange accepted-domain objects: no domain list to check.
        .replace("  domains: [acme.com]\n", "");
    let start = text.find("  mailbox_database:").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    text.replace_range(start..end, &format!("  mailbox_database: \"{DB}\""));
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_whole_flow_against_samba_active_directory() {
    let slapd = Slapd::start(
        &[SOURCE],
        &[(SOURCE, &root().join("examples/data/domino.ldif"))],
    );
    let mut samba = Samba::start();
    samba.ldapmodify(&destination_for_samba());
    let dir = tempfile::tempdir().unwrap();
    let plan = samba_plan(dir.path(), &slapd, "      page_size: 50\n");

    // Plan: every scenario is found in the live domain, and the domain's references to its
    // other partitions are skipped and said so.
    let o = mailplan(&["plan", p(&plan)]);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("search reference(s)"), "{text}");
    for expected in [
        "Alice Archer — scenario 1",
        "Bob Baker — scenario 2",
        "Carol Chen — scenario 3",
        "Dan Dorsey — scenario 4",
        "Erin Evans — scenario 5",
        "Frank Fischer (scenario 6",
        "Henry Hill: ambiguous",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // The computer account DC1$ is not an NT account anyone could match.
    assert!(!text.contains("DC1$"), "{text}");

    // Saved plan, then an edit on the server before apply: that action alone is stale.
    let saved = dir.path().join("reviewed.json");
    let o = mailplan(&["plan", p(&plan), "--out", p(&saved)]);
    assert!(o.status.success(), "{}", out(&o));
    let erin = format!("CN=Erin Evans,CN=Users,{SAMBA_BASE}");
    samba.ldapmodify(&format!(
        "dn: {erin}\nchangetype: modify\nreplace: department\ndepartment: Audit\n-\n"
    ));
    let o = mailplan(&["apply", p(&saved), "--parallelism", "4"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Apply finished with errors. 12 applied, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("stale:  convert_mail_user:{erin}")),
        "{text}"
    );
    let alice = samba.search(
        &format!("OU=Migrated,{SAMBA_BASE}"),
        "(cn=Alice Archer)",
        &["proxyAddresses", "homeMDB", "userAccountControl"],
    );
    assert!(alice.contains("SMTP:alice.archer@acme.com"), "{alice}");
    assert!(alice.contains(&format!("homeMDB: {DB}")), "{alice}");
    let team = samba.search(
        &format!("CN=Marketing Team,OU=Groups,{SAMBA_BASE}"),
        "(objectClass=*)",
        &["member"],
    );
    assert!(
        team.contains(&format!("member: CN=Carol Chen,OU=Migrated,{SAMBA_BASE}")),
        "{team}"
    );
    assert!(!team.contains("OU=Contacts"), "{team}");

    // Rerun: the rest is applied, then nothing is left to do.
    let o = mailplan(&["apply", p(&plan), "--auto-approve"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = mailplan(&["plan", p(&plan), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("No changes."), "{}", out(&o));

    // Restore the deleted contact from its backup.
    let carol = format!("CN=Carol Chen,OU=Contacts,{SAMBA_BASE}");
    let o = mailplan(&["state", "restore", p(&plan), &carol, "--auto-approve"]);
    assert!(o.status.success(), "{}", out(&o));
    let back = samba.search(
        &carol,
        "(objectClass=*)",
        &["proxyAddresses", "telephoneNumber"],
    );
    assert!(back.contains("SMTP:carol.chen@acme.com"), "{back}");
    assert!(back.contains("telephoneNumber: +1 555 0103"), "{back}");

    // Binary attributes come back as bytes: a GUID set over LDAP reads back unchanged, and
    // objectGUID is 16 bytes on every entry.
    let frank = format!("CN=Frank Fischer,CN=Users,{SAMBA_BASE}");
    samba.ldapmodify(&format!(
        "dn: {frank}\nchangetype: modify\nreplace: msExchMailboxGuid\nmsExchMailboxGuid:: 3q2+78r+ur4AESIzRFVmdw==\n-\n"
    ));
    let settings = ldap_settings(SAMBA_BASE, dir.path());
    let (snapshot, stats) = mailplan::directory::ldap::read_snapshot(&settings).unwrap();
    assert!(stats.references_skipped > 0);
    let e = snapshot
        .get(&mailplan::directory::Dn::parse(&frank).unwrap())
        .unwrap();
    let guid = e.get("msExchMailboxGuid").unwrap().first().unwrap();
    assert_eq!(
        guid.as_bytes(),
        &[
            0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x66, 0x77
        ]
    );
    assert_eq!(
        e.get("objectGUID")
            .unwrap()
            .first()
            .unwrap()
            .as_bytes()
            .len(),
        16
    );

    // Large member lists come in ranges from AD (1,500 values at a time); they are read whole.
    let mut big = format!(
        "dn: CN=Big List,OU=Groups,{SAMBA_BASE}\nchangetype: add\nobjectClass: group\ncn: Big List\ngroupType: 8\n\n"
    );
    for i in 0..1600 {
        big.push_str(&format!(
            "dn: CN=member{i:04},OU=Contacts,{SAMBA_BASE}\nchangetype: add\nobjectClass: contact\ncn: member{i:04}\n\n"
        ));
    }
    big.push_str(&format!(
        "dn: CN=Big List,OU=Groups,{SAMBA_BASE}\nchangetype: modify\nadd: member\n"
    ));
    for i in 0..1600 {
        big.push_str(&format!(
            "member: CN=member{i:04},OU=Contacts,{SAMBA_BASE}\n"
        ));
    }
    big.push_str("-\n");
    samba.ldapmodify(&big);
    let (snapshot, _) = mailplan::directory::ldap::read_snapshot(&settings).unwrap();
    let list_dn =
        mailplan::directory::Dn::parse(&format!("CN=Big List,OU=Groups,{SAMBA_BASE}")).unwrap();
    let list = snapshot.get(&list_dn).unwrap();
    assert_eq!(list.get("member").unwrap().len(), 1600);
    // Samba answers with every value at once; asked for ranges, it answers in ranges, which
    // is what Windows AD does by itself above 1,500 values.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ranged = runtime
        .block_on(mailplan::directory::ldap::read_attribute_in_ranges(
            &settings, &list_dn, "member", 500,
        ))
        .unwrap();
    let ranged: std::collections::BTreeSet<_> = ranged.into_iter().collect();
    assert_eq!(ranged.len(), 1600);
    assert!(
        ranged
            .iter()
            .all(|v| list.get("member").unwrap().contains(v))
    );

    // Connection problems on AD: a wrong password, and a user that may read but not write.
    let mut wrong = ldap_settings(SAMBA_BASE, dir.path());
    wrong.password = Some(mailplan::spec::Secret::Env("MAILPLAN_TEST_NOT_SET".into()));
    let e = mailplan::directory::ldap::read_snapshot(&wrong).unwrap_err();
    assert!(e.to_string().contains("MAILPLAN_TEST_NOT_SET"), "{e}");
    wrong.password = Some(servers::secret_file(
        dir.path(),
        "wrong.pw",
        "not-the-password",
    ));
    let e = mailplan::directory::ldap::read_snapshot(&wrong)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused the bind as `Administrator@test.local`"),
        "{e}"
    );
    assert!(e.contains("invalidCredentials (49)"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");

    // LDAPS with Samba's self-signed certificate: refused unless the plan says insecure.
    let mut tls = ldap_settings(SAMBA_BASE, dir.path());
    tls.url = "ldaps://127.0.0.1:636".into();
    let e = mailplan::directory::ldap::read_snapshot(&tls)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not trusted"), "{e}");
    tls.insecure = true;
    assert!(mailplan::directory::ldap::read_snapshot(&tls).is_ok());

    // A domain user may read the directory but not change it: a write fails with AD's reason
    // and the DN, and nothing changes.
    let o = std::process::Command::new("samba-tool")
        .args(["user", "create", "reader", "Read3r!Pass", "-H", SAMBA_URL])
        .arg(format!("-UAdministrator%{ADMIN_PASSWORD}"))
        .arg("-s")
        .arg(samba.dir.path().join("etc/smb.conf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let mut as_reader = ldap_settings(SAMBA_BASE, dir.path());
    as_reader.bind_dn = Some("reader@test.local".into());
    as_reader.password = Some(servers::secret_file(dir.path(), "reader.pw", "Read3r!Pass"));
    let carol = mailplan::directory::Dn::parse(&carol).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use mailplan::apply::DirectoryWriter;
        let d = mailplan::apply::LdapDirectory::connect(&as_reader, 2)
            .await
            .unwrap();
        assert!(
            d.get(&carol).await.unwrap().is_some(),
            "the reader can read"
        );
        let e = d.delete(&carol).await.unwrap_err().to_string();
        assert!(e.contains("CN=Carol Chen,OU=Contacts"), "{e}");
        assert!(e.contains("insufficientAccessRights (50)"), "{e}");
        assert!(
            d.get(&carol).await.unwrap().is_some(),
            "nothing was deleted"
        );
    });

    // The domain controller crashes in the middle of an apply and is started again: a rerun
    // finishes the wave with one mailbox per person and leaves nothing to do.
    let mut wave = String::new();
    for i in 0..150 {
        wave.push_str(&format!(
            "dn: CN=Wave Person{i:03},OU=Sales,{SOURCE}\nchangetype: add\nobjectClass: top\n\
             objectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n\
             objectClass: dominoPerson\ncn: Wave Person{i:03}\nsn: Person{i:03}\nuid: wave{i:03}\n\
             mail: wave.person{i:03}@acme.com\n\n"
        ));
    }
    slapd.ldapmodify(SOURCE, &wave);
    let migrated = format!("OU=Migrated,{SAMBA_BASE}");
    let wave_mailboxes = |samba: &Samba| {
        servers::dns(&samba.search(&migrated, "(&(objectClass=user)(cn=Wave Person*))", &["dn"]))
    };
    let mut apply = servers::apply_in_background(&plan, PW_ENV, ADMIN_PASSWORD);
    let started = std::time::Instant::now();
    while wave_mailboxes(&samba).len() < 15 && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        apply.try_wait().unwrap().is_none(),
        "the apply finished before the server could be killed under it"
    );
    let made_before_kill = wave_mailboxes(&samba).len();
    assert!(made_before_kill < 150, "the wave was done before the kill");
    samba.kill();
    std::thread::sleep(std::time::Duration::from_millis(700));
    samba.restart();
    // Its writes are retried with backoff; whatever it could not finish, the rerun does.
    let first = apply.wait_with_output().unwrap();
    let first_err = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first_err.contains("applied"), "{first_err}");
    let o = mailplan(&["apply", p(&plan), "--auto-approve", "--parallelism", "4"]);
    assert!(
        o.status.success(),
        "first run:\n{first_err}\nrerun:\n{}",
        out(&o)
    );
    let o = mailplan(&["plan", p(&plan), "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let made = wave_mailboxes(&samba);
    assert_eq!(made.len(), 150, "one mailbox per person: {made:?}");
    for i in 0..150 {
        let dn = format!(
            "cn=wave person{i:03},ou=migrated,{}",
            SAMBA_BASE.to_lowercase()
        );
        assert!(made.contains(&dn), "{dn} missing from {made:?}");
    }
}

fn ldap_settings(base: &str, dir: &Path) -> mailplan::spec::LdapSettings {
    mailplan::spec::LdapSettings {
        url: SAMBA_URL.into(),
        bind_dn: Some(SAMBA_ADMIN.into()),
        password: Some(servers::secret_file(dir, "admin.pw", ADMIN_PASSWORD)),
        base: mailplan::directory::Dn::parse(base).unwrap(),
        filter: "(objectClass=*)".into(),
        scope: mailplan::spec::LdapScope::Sub,
        page_size: 200,
        timeout: std::time::Duration::from_secs(30),
        starttls: false,
        ca_file: None,
        insecure: false,
        sasl_external: false,
    }
}
