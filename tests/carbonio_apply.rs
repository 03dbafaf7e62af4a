//! Apply into Carbonio end to end, against the closest real parts that run here: a real slapd
//! loaded with the Carbonio-like schema (the directory Carbonio runs on, read for preconditions
//! and backups) and the stand-in of Carbonio's admin SOAP API (`tests/servers/carbonio.rs`),
//! which writes into that slapd. Not against a live Carbonio: none can run on these machines.
//!
//! What a user checks: the accounts, aliases, lists and members are in the directory; a second
//! plan says "No changes."; a killed apply converges when run again, every object once; a stale
//! action, a refused account and a wrong admin password each fail plainly and name what; no
//! password or token shows anywhere; and the SOAP requests are the published shapes (golden).

mod servers;

#[path = "servers/carbonio.rs"]
mod carbonio;
#[path = "servers/dovecot.rs"]
mod dovecot;
#[path = "servers/radicale.rs"]
mod radicale;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use carbonio::CarbonioStandIn;
use servers::{ADMIN_PASSWORD, Slapd};

const DEST: &str = "dc=acme,dc=com";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/carbonio-apply").join(name)
}

struct World {
    slapd: Slapd,
    soap: CarbonioStandIn,
    dir: tempfile::TempDir,
}

/// Carbonio's directory in a slapd, the admin API stand-in over HTTPS with the harness's CA, and
/// a plan file in a fresh folder; `admin_password` is what the plan gives for the admin.
fn world(admin_password: &str, provisioning: Option<&str>) -> World {
    world_with(admin_password, provisioning, &fixture("source.ldif"), "")
}

/// [`world`] with another source and more of the plan file (`extra`, at its end).
fn world_with(
    admin_password: &str,
    provisioning: Option<&str>,
    source: &Path,
    extra: &str,
) -> World {
    let slapd = Slapd::start(&[DEST], &[(DEST, &fixture("carbonio-directory.ldif"))]);
    let soap = CarbonioStandIn::start(
        &slapd.url(),
        &slapd.admin(DEST),
        ADMIN_PASSWORD,
        DEST,
        &slapd.certs.cert,
        &slapd.certs.key,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ldap-password"), ADMIN_PASSWORD).unwrap();
    std::fs::write(dir.path().join("soap-password"), admin_password).unwrap();
    let provisioning = provisioning.map(str::to_string).unwrap_or_else(|| {
        format!(
            "    soap:\n      url: {}\n      user: {}\n      password: {{ file: soap-password }}\n      ca_file: {}\n      timeout: 20\n",
            soap.url,
            carbonio::ADMIN,
            slapd.certs.ca.display()
        )
    });
    let text = format!(
        "version: 1\nsource:\n  profile: ldap\n  directory:\n    ldif: {source}\ndestination:\n  flavor: carbonio\n  directory:\n    ldap:\n      url: {url}\n      bind_dn: \"cn=admin,{DEST}\"\n      password: {{ file: ldap-password }}\n      base: \"{DEST}\"\n  domains: [acme.com]\n  cos: default\n  provisioning:\n{provisioning}matching:\n  mode: batch\ndistribution_lists:\n  filter: \"(objectClass=groupOfNames)\"\n{extra}",
        source = source.display(),
        url = slapd.url(),
    );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    World { slapd, soap, dir }
}

fn mailplan(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("mailplan").unwrap();
    c.current_dir(dir).env("NO_COLOR", "1");
    c
}

fn run(w: &World, args: &[&str]) -> Output {
    mailplan(w.dir.path()).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn apply(w: &World) -> Output {
    run(
        w,
        &["apply", "plan.yaml", "--auto-approve", "--parallelism", "1"],
    )
}

fn entry(w: &World, dn: &str) -> String {
    w.slapd.search(dn, "(objectClass=*)", &["*"])
}

fn values(w: &World, dn: &str, attr: &str) -> Vec<String> {
    let prefix = format!("{attr}: ");
    let mut v: Vec<String> = entry(w, dn)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect();
    v.sort();
    v
}

/// What the directory holds that a migration of the fixture must leave: accounts, aliases,
/// lists and members, each once.
fn assert_migrated(w: &World) {
    let john = "uid=john.smith,ou=people,dc=acme,dc=com";
    assert_eq!(
        values(w, john, "zimbraMailDeliveryAddress"),
        ["john.smith@acme.com"]
    );
    assert_eq!(values(w, john, "title"), ["Head of Sales"]);
    assert_eq!(values(w, john, "zimbraMailAlias"), ["js@acme.com"]);
    assert_eq!(values(w, john, "zimbraPasswordMustChange"), ["TRUE"]);
    assert_eq!(values(w, john, "zimbraId").len(), 1);
    let js = "uid=js,ou=people,dc=acme,dc=com";
    assert_eq!(values(w, js, "objectClass"), ["zimbraAlias"]);
    assert_eq!(
        values(w, js, "zimbraAliasTargetId"),
        values(w, john, "zimbraId")
    );
    let mia = "uid=mia.lee,ou=people,dc=acme,dc=com";
    assert_eq!(
        values(w, mia, "zimbraMailDeliveryAddress"),
        ["mia.lee@acme.com"]
    );
    let ann = "uid=ann.doe,ou=people,dc=acme,dc=com";
    assert_eq!(values(w, ann, "title"), ["Engineer"]);
    assert_eq!(values(w, ann, "zimbraMailAlias"), ["ann@acme.com"]);
    let sales = "uid=sales,ou=people,dc=acme,dc=com";
    assert_eq!(
        values(w, sales, "objectClass"),
        ["zimbraDistributionList", "zimbraMailRecipient"]
    );
    assert_eq!(
        values(w, sales, "zimbraMailForwardingAddress"),
        ["ann.doe@acme.com", "john.smith@acme.com"]
    );
    assert_eq!(
        values(
            w,
            "uid=staff,ou=people,dc=acme,dc=com",
            "zimbraMailForwardingAddress"
        ),
        ["ann.doe@acme.com", "mia.lee@acme.com"]
    );
    // Every object once.
    let people = w
        .slapd
        .search("ou=people,dc=acme,dc=com", "(objectClass=*)", &["1.1"]);
    let mut dns = servers::dns(&people);
    let n = dns.len();
    dns.dedup();
    assert_eq!(n, dns.len());
    assert_eq!(n, 12, "{people}");
}

fn no_changes(w: &World) {
    let o = run(w, &["plan", "plan.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("No changes."),
        "{}",
        text(&o)
    );
}

/// The request of the given kind that holds `needle` (the order of the requests, and so the
/// ids the stand-in hands out, vary from run to run), with the auth token and any password
/// taken out.
fn redacted(w: &World, kind: &str, needle: &str) -> String {
    let body = w
        .soap
        .requests()
        .into_iter()
        .find(|r| r.contains(&format!("<{kind} ")) && r.contains(needle))
        .unwrap_or_else(|| panic!("no {kind} with {needle} was sent"));
    let mut out = body.clone();
    for (open, close) in [
        ("<authToken>", "</authToken>"),
        ("<password>", "</password>"),
    ] {
        if let (Some(a), Some(b)) = (out.find(open), out.find(close)) {
            out.replace_range(a + open.len()..b, "[redacted]");
        }
    }
    out.replace("><", ">\n<")
}

/// Passwords of the new accounts, as the stand-in received them.
fn passwords(w: &World) -> Vec<String> {
    w.soap
        .requests()
        .iter()
        .filter(|r| r.contains("<CreateAccountRequest "))
        .filter_map(|r| {
            let a = r.find("<password>")? + "<password>".len();
            let b = r.find("</password>")?;
            Some(r[a..b].to_string())
        })
        .collect()
}

/// Every file under `dir`, as bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[test]
fn apply_creates_accounts_aliases_and_lists_through_soap_and_a_rerun_changes_nothing() {
    let w = world(carbonio::ADMIN_PASSWORD, None);
    let o = apply(&w);
    assert!(o.status.success(), "{}", text(&o));
    assert_migrated(&w);
    no_changes(&w);
    let again = apply(&w);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("No changes."), "{}", text(&again));

    // The accounts and lists changed were backed up first, as the LDAP destination does.
    let backups = run(&w, &["state", "backups", "plan.yaml"]);
    assert!(backups.status.success(), "{}", text(&backups));
    for dn in [
        "uid=ann.doe,ou=people,dc=acme,dc=com",
        "uid=staff,ou=people,dc=acme,dc=com",
    ] {
        assert!(text(&backups).contains(dn), "{}", text(&backups));
    }

    // Random passwords: one per new account, different, sent only in the create.
    let pw = passwords(&w);
    assert_eq!(pw.len(), 2, "{:?}", w.soap.requests());
    assert_ne!(pw[0], pw[1]);
    let token_request = w.soap.requests().into_iter().nth(1).unwrap();
    let token = token_request
        .split("<authToken>")
        .nth(1)
        .and_then(|t| t.split("</authToken>").next())
        .unwrap()
        .to_string();
    let shown = format!("{}{}", text(&o), text(&again));
    for secret in pw
        .iter()
        .chain([&token, &carbonio::ADMIN_PASSWORD.to_string()])
    {
        assert!(!shown.contains(secret.as_str()), "a secret was printed");
        for (path, bytes) in all_files(w.dir.path()) {
            if path.ends_with("soap-password") {
                continue;
            }
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|win| win == secret.as_bytes()),
                "a secret was written into {}",
                path.display()
            );
        }
    }

    // The six requests, as sent.
    for (kind, needle) in [
        ("AuthRequest", "admin@acme.com"),
        ("CreateAccountRequest", "mia.lee@acme.com"),
        ("AddAccountAliasRequest", "ann@acme.com"),
        ("ModifyAccountRequest", "Engineer"),
        ("CreateDistributionListRequest", "sales@acme.com"),
        (
            "AddDistributionListMemberRequest",
            "<dlm>mia.lee@acme.com</dlm>",
        ),
    ] {
        insta::assert_snapshot!(format!("carbonio_soap_{kind}"), redacted(&w, kind, needle));
    }
}

#[test]
fn a_killed_apply_converges_when_run_again_with_every_object_once() {
    killed_and_run_again(false);
}

#[test]
fn a_killed_apply_of_a_saved_plan_resumes_with_every_object_once() {
    killed_and_run_again(true);
}

/// Kills an apply with SIGKILL among its writes, then runs it again: of the plan file, which is
/// planned again, or of a saved plan, which resumes and recognises what the killed run wrote.
fn killed_and_run_again(saved: bool) {
    let w = world(carbonio::ADMIN_PASSWORD, None);
    let input = if saved {
        let o = run(&w, &["plan", "plan.yaml", "--out", "saved.json"]);
        assert!(o.status.success(), "{}", text(&o));
        "saved.json"
    } else {
        "plan.yaml"
    };
    w.soap.slow_down(Duration::from_millis(400));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mailplan"))
        .current_dir(w.dir.path())
        .args(["apply", input, "--auto-approve", "--parallelism", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a few writes have gone through: some done, some on the wire, some not sent.
    let start = Instant::now();
    while w.soap.requests().len() < 4 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    assert!(
        w.soap.requests().len() < 10,
        "the apply ended before the kill"
    );
    w.soap.slow_down(Duration::ZERO);
    // What was on the wire when the apply died is carried out, as a real server would.
    w.soap.wait_idle();
    let o = run(
        &w,
        &["apply", input, "--auto-approve", "--parallelism", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_migrated(&w);
    no_changes(&w);
}

#[test]
fn a_stale_action_fails_alone_and_the_rest_is_applied() {
    let w = world(carbonio::ADMIN_PASSWORD, None);
    let o = run(&w, &["plan", "plan.yaml", "--out", "saved.json"]);
    assert!(o.status.success(), "{}", text(&o));
    // Someone gives Ann a title between the plan and the apply.
    w.slapd.ldapmodify(
        DEST,
        "dn: uid=ann.doe,ou=people,dc=acme,dc=com\nchangetype: modify\nadd: title\ntitle: Boss\n",
    );
    let o = run(
        &w,
        &[
            "apply",
            "saved.json",
            "--auto-approve",
            "--parallelism",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("modify_account:uid=ann.doe"), "{out}");
    assert!(
        out.contains("stale") || out.contains("changed since"),
        "{out}"
    );
    assert_eq!(
        values(&w, "uid=ann.doe,ou=people,dc=acme,dc=com", "title"),
        ["Boss"]
    );
    assert_eq!(
        values(
            &w,
            "uid=john.smith,ou=people,dc=acme,dc=com",
            "zimbraMailAlias"
        ),
        ["js@acme.com"]
    );
    assert!(
        !w.soap
            .requests()
            .iter()
            .any(|r| r.contains("<ModifyAccountRequest "))
    );
}

#[test]
fn a_refused_account_is_named_with_the_fault_code_and_the_rest_is_applied() {
    let w = world(carbonio::ADMIN_PASSWORD, None);
    w.soap.refuse("mia.lee@acme.com");
    let o = apply(&w);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("service.PERM_DENIED"), "{out}");
    assert!(out.contains("mia.lee@acme.com"), "{out}");
    assert!(entry(&w, "uid=mia.lee,ou=people,dc=acme,dc=com").is_empty());
    assert_eq!(
        values(
            &w,
            "uid=sales,ou=people,dc=acme,dc=com",
            "zimbraMailForwardingAddress"
        ),
        ["ann.doe@acme.com", "john.smith@acme.com"]
    );
}

#[test]
fn a_wrong_admin_password_is_a_clear_error_and_nothing_is_written() {
    let wrong = "not-the-admin-password";
    let w = world(wrong, None);
    let before = w.slapd.search(DEST, "(objectClass=*)", &["*"]);
    let o = apply(&w);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("account.AUTH_FAILED"), "{out}");
    assert!(!out.contains(wrong), "{out}");
    assert_eq!(w.slapd.search(DEST, "(objectClass=*)", &["*"]), before);
    assert_eq!(w.soap.requests().len(), 1);
}

/// A world where Carbonio's Auto Provisioning creates the accounts: the domain is set up for
/// it, John Smith has contacts to import, and apply waits at most `wait` seconds.
fn auto_world(wait: u64) -> World {
    let w = world_with(
        carbonio::ADMIN_PASSWORD,
        Some(&format!("    auto: true\n    wait: {wait}\n")),
        &fixture("source-auto.ldif"),
        "items:\n  contacts:\n    source: { csv: \"export/{uid}.csv\" }\n    destination: { vcard_folder: \"out/contacts/{uid}\" }\n",
    );
    w.slapd.ldapmodify(
        DEST,
        "dn: dc=acme,dc=com\nchangetype: modify\nadd: zimbraAutoProvMode\nzimbraAutoProvMode: EAGER\n-\nadd: zimbraAutoProvLdapURL\nzimbraAutoProvLdapURL: ldap://old.test\n-\nadd: zimbraAutoProvLdapSearchBase\nzimbraAutoProvLdapSearchBase: ou=people,dc=old,dc=test\n-\nadd: zimbraAutoProvLdapSearchFilter\nzimbraAutoProvLdapSearchFilter: (mail=%n)\n-\nadd: zimbraAutoProvAccountNameMap\nzimbraAutoProvAccountNameMap: mail\n-\n",
    );
    let export = w.dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/items/contacts.csv"),
        export.join("jsmith.csv"),
    )
    .unwrap();
    w
}

const AUTO_JOHN: &str = "uid=john.smith,ou=people,dc=acme,dc=com";

#[test]
fn with_auto_provisioning_apply_waits_for_the_account_then_imports() {
    let w = auto_world(60);
    let o = run(&w, &["plan", "plan.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Auto Provisioning will create account john.smith@acme.com"),
        "{}",
        text(&o)
    );
    // Carbonio creates the account two seconds into the apply.
    let url = w.slapd.url();
    let admin = w.slapd.admin(DEST);
    let maker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        servers::ldapmodify(
            &url,
            &admin,
            ADMIN_PASSWORD,
            &format!(
                "dn: {AUTO_JOHN}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: zimbraAccount\nuid: john.smith\ncn: John Smith\nsn: Smith\nmail: john.smith@acme.com\nzimbraMailDeliveryAddress: john.smith@acme.com\nzimbraId: 5c1c1a8e-0000-4000-8000-000000000099\nzimbraAccountStatus: active\n"
            ),
        );
    });
    let started = Instant::now();
    let o = run(&w, &["apply", "plan.yaml", "--auto-approve"]);
    maker.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let contacts = std::fs::read_dir(w.dir.path().join("out/contacts/jsmith"))
        .unwrap()
        .count();
    assert!(contacts > 0, "{}", text(&o));
    // No SOAP: Carbonio made the account.
    assert!(w.soap.requests().is_empty());
}

#[test]
fn with_auto_provisioning_an_account_that_never_appears_leaves_the_person_out() {
    let w = auto_world(3);
    let started = Instant::now();
    let o = run(&w, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    let out = text(&o);
    assert!(out.contains(AUTO_JOHN), "{out}");
    assert!(
        out.contains("Auto Provisioning did not create the account within 3 s"),
        "{out}"
    );
    assert!(
        out.contains("not migrated (error): John Smith (uid=jsmith,ou=people,dc=old,dc=test)"),
        "{out}"
    );
    assert!(!w.dir.path().join("out/contacts/jsmith").exists());
}

#[test]
fn a_server_certificate_that_is_not_trusted_is_refused_and_nothing_is_written() {
    // The same stand-in, its CA not given: the system's roots do not know it.
    let w = world(carbonio::ADMIN_PASSWORD, Some("    soap: {}\n"));
    let url = w.soap.url.clone();
    let plan = std::fs::read_to_string(w.dir.path().join("plan.yaml")).unwrap();
    let plan = plan.replace(
        "    soap: {}\n",
        &format!(
            "    soap:\n      url: {url}\n      user: {}\n      password: {{ file: soap-password }}\n      timeout: 20\n",
            carbonio::ADMIN
        ),
    );
    std::fs::write(w.dir.path().join("plan.yaml"), plan).unwrap();
    let before = w.slapd.search(DEST, "(objectClass=*)", &["*"]);
    let o = apply(&w);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("AuthRequest"), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    assert!(w.soap.requests().is_empty());
    assert_eq!(w.slapd.search(DEST, "(objectClass=*)", &["*"]), before);
}

/// A plan with items, as a Carbonio migration is written: the server's address once
/// (`destination.url`, a Radicale serving Carbonio's `/dav/` paths), mail into a Dovecot as the
/// admin with SASL PLAIN and the account as authorization identity. Only the IMAP URL is given,
/// as Carbonio's default (`imaps://` the server's host, port 993) is not where the test's Dovecot
/// listens; the login defaults (the account's address, SASL PLAIN) stay the flavor's.
#[tokio::test]
async fn apply_with_items_creates_the_account_then_copies_mail_calendar_and_contacts() {
    use mailplan::items::calendar::{self, CalDav, CalendarStore, DavConfig};
    use mailplan::items::mail::MessageMeta;
    use mailplan::items::mail::maildir::Maildir;

    const JOHN: &str = "john.smith@acme.com";
    let imap = dovecot::Dovecot::start(&[(JOHN, "john-secret")]);
    let dav = radicale::Radicale::start();
    // Carbonio's `/dav/` always exists; Radicale makes a collection only under an existing one.
    let made = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"MKCOL").unwrap(),
            format!("{}dav/", dav.base),
        )
        .basic_auth("admin", Some("adminpass"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{}", made.status());

    // John Smith alone, with his mail, calendar and contacts exported.
    let source = tempfile::tempdir().unwrap();
    let john_only: String = std::fs::read_to_string(fixture("source.ldif"))
        .unwrap()
        .split("\n\n")
        .take(2)
        .collect::<Vec<_>>()
        .join("\n\n");
    let ldif = source.path().join("john.ldif");
    std::fs::write(&ldif, format!("{john_only}\n")).unwrap();
    let items = format!(
        "items:\n  mail:\n    source: {{ maildir: \"export/mail/{{uid}}\" }}\n    destination:\n      imap: {{ url: \"{url}\", tls: none, login: admin, password: {{ file: \"{pass}\" }} }}\n  calendars:\n    source: {{ ics: \"export/{{uid}}.ics\" }}\n    destination:\n      caldav: {{ login: admin, password: {{ file: dav.pass }} }}\n  contacts:\n    source: {{ csv: \"export/{{uid}}.csv\" }}\n    destination:\n      carddav: {{ login: admin, password: {{ file: dav.pass }} }}\n",
        url = imap.url(),
        pass = imap.admin_password_file().display(),
    );
    let w = world_with(carbonio::ADMIN_PASSWORD, None, &ldif, &items);
    let plan = w.dir.path().join("plan.yaml");
    let yaml = std::fs::read_to_string(&plan).unwrap().replace(
        "  cos: default\n",
        &format!(
            "  cos: default\n  url: {}\n",
            dav.base.trim_end_matches('/')
        ),
    );
    std::fs::write(&plan, yaml).unwrap();
    std::fs::write(w.dir.path().join("dav.pass"), "adminpass\n").unwrap();
    let export = w.dir.path().join("export");
    let md = Maildir::new(export.join("mail/jsmith"));
    for (folder, id) in [
        ("INBOX", "m1@example.test"),
        ("INBOX", "m2@example.test"),
        ("Sent", "s1@example.test"),
    ] {
        md.ensure_folder(folder).unwrap();
        let meta = MessageMeta {
            key: String::new(),
            identity: String::new(),
            size: 0,
            flags: vec!["\\Seen".into()],
            internal_date: 1_700_000_000,
        };
        let message = format!(
            "Message-ID: <{id}>\r\nFrom: a@example.test\r\nSubject: {id}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n"
        );
        md.append(folder, &meta, message.as_bytes()).unwrap();
    }
    let ics = root().join("tests/fixtures/items/notes-export.ics");
    std::fs::copy(&ics, export.join("jsmith.ics")).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/items/contacts.csv"),
        export.join("jsmith.csv"),
    )
    .unwrap();

    let o = apply(&w);
    assert!(o.status.success(), "{}\n{}", text(&o), dav.log());
    // The account came through the admin API, then its items.
    assert_eq!(
        values(
            &w,
            "uid=john.smith,ou=people,dc=acme,dc=com",
            "zimbraMailDeliveryAddress"
        ),
        [JOHN]
    );
    assert!(
        w.soap
            .requests()
            .iter()
            .any(|r| r.contains("CreateAccountRequest"))
    );
    assert_eq!(imap.count_files(JOHN), 3, "{}", text(&o));
    // Logged in as the account with the admin's credential, by SASL PLAIN.
    let login = std::fs::read_to_string(imap.dir.path().join("log/dovecot.log")).unwrap();
    assert!(
        login
            .lines()
            .any(|l| l.contains(&format!("user=<{JOHN}>")) && l.contains("method=PLAIN")),
        "{login}"
    );
    let (events, bad) = calendar::read_ics(&ics).unwrap();
    assert!(bad.is_empty());
    let calendar = CalDav::new(&DavConfig {
        url: format!("{}dav/{JOHN}/Calendar/", dav.base),
        user: Some("admin".into()),
        password: Some("adminpass".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(calendar.list().await.unwrap().len(), events.len());
    let log = dav.log();
    assert!(log.contains(&format!("/dav/{JOHN}/Contacts/")), "{log}");

    // Run again: nothing to do, nothing copied twice.
    no_changes(&w);
    let requests = w.soap.requests().len();
    let o = apply(&w);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(w.soap.requests().len(), requests);
    assert_eq!(imap.count_files(JOHN), 3);
    assert_eq!(calendar.list().await.unwrap().len(), events.len());
}
