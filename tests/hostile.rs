//! Hostile inputs: each test builds an input that once panicked, took quadratic time or memory,
//! read what it should not, or showed a secret, and checks that it is now refused (or read) in
//! bounded time, with a located diagnostic and a help line.
//!
//! Timed tests build their input at a size the old code took well over ten seconds on, and allow
//! a bound that holds on a loaded two-core machine in the test profile. A test that overruns is
//! failed at its bound, not waited for.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailplan::spec::{self, PlanFileError, codes};

/// Runs `f` on its own thread and fails the test when it has not finished within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            eprintln!("{what}: {:.2?}", started.elapsed());
            v
        }
        Err(_) => panic!("{what}: not done within {limit:?}"),
    }
}

fn render(e: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, e)
        .unwrap_or_else(|_| panic!("the report does not render"));
    out
}

const PLAN: &str = r#"version: 1
source:
  profile: domino
  notes_domain: ACME
  directory:
    ldif: source.ldif
destination:
  flavor: active-directory
  directory:
    ldif: destination.ldif
  container: "OU=Migrated,DC=acme,DC=test"
  domains: [acme.com]
"#;

fn refused(text: &str) -> PlanFileError {
    match spec::parse(Path::new("plan.yaml"), text) {
        Ok(_) => panic!("accepted:\n{text:.300}"),
        Err(e) => e,
    }
}

/// 1-based line and byte column of a problem's primary label.
fn at(text: &str, e: &PlanFileError, code: &str) -> (usize, usize) {
    let p = e
        .problems()
        .iter()
        .find(|p| p.code() == code)
        .unwrap_or_else(|| panic!("no `{code}` in:\n{}", render(e)));
    assert!(p.help_text().is_some(), "no help: {}", p.message());
    let start = p
        .span()
        .unwrap_or_else(|| panic!("no location: {}", p.message()))
        .start;
    let before = &text.as_bytes()[..start];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, start - line_start + 1)
}

// ---- 1. No panic on any input ----

#[test]
fn a_syntax_error_past_column_65536_is_shown_without_a_panic() {
    let text = format!("{PLAN}x: \"{}\" ] :\n", "a".repeat(70_000));
    let e = refused(&text);
    let shown = render(&e);
    // The file's own line and column, and a window of the line, not all of it.
    assert!(shown.contains("plan.yaml:13:70007"), "{shown:.2000}");
    assert!(shown.len() < 4_000, "{} bytes shown", shown.len());
}

// ---- 2. Linear time: refused early, located ----

#[test]
fn flow_collections_nested_100000_deep_are_refused_at_once_at_the_bracket() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let text = format!(
            "{PLAN}x: {}{}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let e = within(Duration::from_secs(5), "100,000 nested", move || {
            let e = refused(&text);
            (at(&text, &e, codes::SYNTAX), render(&e).len())
        });
        assert_eq!(e.0, (13, 4 + 128 * open.len()));
        assert!(e.1 < 4_000);
    }
}

#[test]
fn brackets_that_are_text_are_not_counted_as_nesting() {
    let deep = "[".repeat(200);
    let text = format!(
        "{PLAN}matching:\n  mode: batch # {deep}\n  ignore:\n    - source: \"CN=a{deep},O=x\"\n    - source: 'CN=b{deep}'\n    - source: CN=c{deep}\ndistribution_lists:\n  filter: |\n    {deep}\n"
    );
    let e = refused(&text);
    assert!(
        e.problems().iter().all(|p| !p.message().contains("nested")),
        "{}",
        render(&e)
    );
}

#[test]
fn a_plan_file_with_100000_unknown_keys_is_reported_quickly_and_shows_the_first_100() {
    let mut text = PLAN.to_string();
    for i in 0..100_000 {
        text.push_str(&format!("k{i}: 1\n"));
    }
    let (problems, shown) = within(Duration::from_secs(20), "100,000 unknown keys", move || {
        let e = refused(&text);
        (e.problems().len(), render(&e))
    });
    assert_eq!(problems, 100_000);
    assert!(shown.contains("100000 problems"), "{shown:.300}");
    assert!(shown.contains("… and 99900 more problems, not shown"));
    assert_eq!(shown.matches("unknown key `").count(), 100);
}

// ---- 4. Located errors for bad encodings and YAML bombs ----

#[test]
fn a_plan_file_that_is_not_utf8_is_refused_at_the_byte() {
    let mut bytes = PLAN.as_bytes().to_vec();
    bytes.extend_from_slice(b"# M\xfcller and M\xfcller\n");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let e = match spec::load(&path) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    let text = String::from_utf8_lossy(&bytes).replace('\u{fffd}', "?");
    assert_eq!(at(&text, &e, "mailplan::spec::not_utf8"), (13, 4));
    let shown = render(&e);
    assert!(shown.contains("plan.yaml:13:4"), "{shown}");
    assert!(
        shown.contains("0xFC") && shown.contains("1 more place"),
        "{shown}"
    );
    assert!(shown.contains("save the plan file as UTF-8"), "{shown}");
}

#[test]
fn a_second_document_and_an_alias_bomb_are_located() {
    for (doc, line) in [
        ("---\nversion: 1\n", 13),
        ("...\n--- # again\nversion: 1\n", 14),
        ("--- {version: 1}\n", 13),
    ] {
        let text = format!("{PLAN}{doc}");
        let e = refused(&text);
        assert_eq!(at(&text, &e, codes::SYNTAX), (line, 1), "{}", render(&e));
    }
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (prev, cur) in ('a'..'j').zip('b'..'k') {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
    }
    let text = format!("{PLAN}{bomb}");
    let e = within(Duration::from_secs(5), "alias bomb", move || refused(&text));
    let text = format!("{PLAN}{bomb}");
    let (line, _) = at(&text, &e, codes::SYNTAX);
    assert!(
        text.lines().nth(line - 1).is_some_and(|l| l.contains("*")),
        "{}",
        render(&e)
    );
    assert!(render(&e).contains("alias"));
    // Fewer aliases over a large anchored value: serde_yaml counts only the aliases it follows,
    // and replayed this one for minutes.
    let mut bomb = format!("a: &a [{}]\n", vec!["\"x\""; 4_000].join(","));
    for (prev, cur) in ('a'..'j').zip('b'..'k') {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
    }
    let text = format!("{PLAN}{bomb}");
    let e = within(
        Duration::from_secs(5),
        "alias bomb over a large anchor",
        move || refused(&text),
    );
    let text = format!("{PLAN}{bomb}");
    let (line, _) = at(&text, &e, codes::SYNTAX);
    assert_eq!(line, 16, "{}", render(&e));
}

// ---- 5. Secrets never echoed ----

#[test]
fn a_literal_password_is_masked_in_every_diagnostic() {
    let imap = |password: &str| {
        format!(
            "{PLAN}items:\n  mail:\n    source:\n      imap:\n        url: imaps://mail.acme.test\n        user: \"{{uid}}\"\n        login: admin\n        password: {password}\n        auth: master\n    destination:\n      maildir: \"out/{{primary_smtp}}\"\n"
        )
    };
    for text in [
        imap("hunter2"),
        imap("'hunter2'"),
        imap("\"hunter2\" # the admin's"),
        imap("hunter2 ] :"),
        imap("[hunter2]"),
        imap("\n          hunter2"),
        format!("{PLAN}  unknown: {{ password: hunter2 }}\n"),
    ] {
        let e = refused(&text);
        let shown = render(&e);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    }
    // Where the secret is to be found is no secret, and stays readable.
    let e = refused(&imap("{ env: IMAP_PASSWORD }\n        nonsense: 1"));
    let shown = render(&e);
    assert!(shown.contains("{ env: IMAP_PASSWORD }"), "{shown}");
}

// ---- 3. LDIF `:<` file URLs, and 4. its bytes ----

/// A plan file in a fresh folder, with a source LDIF of one person whose last line is `extra`.
fn ldif_case(extra: &[u8], allow: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let allow = if allow {
        "\n    allow_file_urls: true"
    } else {
        ""
    };
    let plan = PLAN.replace(
        "    ldif: source.ldif",
        &format!("    ldif: export/source.ldif{allow}"),
    );
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
    };
    write("plan.yaml", plan.as_bytes());
    let mut source = b"dn: CN=Jo,O=Acme\nobjectClass: dominoPerson\ncn: Jo\nuid: jo\n".to_vec();
    source.extend_from_slice(extra);
    write("export/source.ldif", &source);
    write("export/photo.jpg", b"\xff\xd8\xff");
    write("outside.txt", b"not for the directory");
    write(
        "destination.ldif",
        b"dn: DC=acme,DC=test\nobjectClass: domain\n",
    );
    let plan = dir.path().join("plan.yaml");
    (dir, plan)
}

fn ldif_error(plan: &Path) -> (String, String) {
    match mailplan::ops::load_inputs(plan) {
        Ok(_) => panic!("the LDIF was read"),
        Err(e) => (e.to_string(), render(&e)),
    }
}

#[test]
fn ldif_file_urls_are_read_only_when_the_plan_allows_them_and_only_from_its_folder() {
    // Not allowed: refused at the line, saying how to allow it; nothing is read.
    for url in ["file:///dev/zero", "file:///etc/passwd", "file:photo.jpg"] {
        let (_dir, plan) = ldif_case(format!("jpegPhoto:< {url}\n").as_bytes(), false);
        let (message, shown) = within(Duration::from_secs(10), url, move || ldif_error(&plan));
        assert!(message.contains("line 5"), "{message}");
        assert!(message.contains("allow_file_urls: true"), "{message}");
        assert!(shown.contains("source.ldif:5:1"), "{shown}");
    }
    // Allowed: a file beside the LDIF is read; devices and files elsewhere are not.
    let (_dir, plan) = ldif_case(b"jpegPhoto:< file:photo.jpg\n", true);
    let inputs = mailplan::ops::load_inputs(&plan).unwrap_or_else(|e| panic!("{e}"));
    let jo = mailplan::directory::Dn::parse("CN=Jo,O=Acme").unwrap_or_else(|e| panic!("{e}"));
    let photo = inputs
        .source
        .get(&jo)
        .and_then(|e| e.get("jpegPhoto").cloned());
    assert_eq!(
        photo.and_then(|v| v.iter().next().map(|v| v.as_bytes().to_vec())),
        Some(b"\xff\xd8\xff".to_vec())
    );
    for url in [
        "file:///dev/zero",
        "file:///etc/passwd",
        "file:../outside.txt",
    ] {
        let (_dir, plan) = ldif_case(format!("jpegPhoto:< {url}\n").as_bytes(), true);
        let (message, _) = within(Duration::from_secs(10), url, move || ldif_error(&plan));
        assert!(message.contains("not in the LDIF's folder"), "{message}");
    }
}

#[test]
fn an_ldif_with_a_latin1_byte_is_refused_at_its_line_and_column() {
    let (_dir, plan) = ldif_case(b"sn: M\xfcller\n", false);
    let (message, shown) = ldif_error(&plan);
    assert!(
        message.contains("line 5") && message.contains("0xFC"),
        "{message}"
    );
    assert!(shown.contains("source.ldif:5:6"), "{shown}");
    assert!(!shown.contains("check that the path is right"), "{shown}");
}

// ---- 2. Linear time: contacts CSV and ICS ----

#[test]
fn a_contacts_csv_of_40000_rows_is_read_in_linear_time() {
    let mut csv = String::from("\"firstName\",\"lastName\",\"email\"\n");
    for i in 0..40_000 {
        csv.push_str(&format!("\"F{i}\",\"L{i}\",\"u{i}@x.example\"\n"));
    }
    // The same contact again, and a row with a field too many, at the end: their lines are right.
    csv.push_str("\"F1\",\"L1\",\"u1@x.example\"\n\"a\",\"b\",\"c\",\"d\"\n");
    let (contacts, bad) = within(Duration::from_secs(5), "40,000 CSV rows", move || {
        mailplan::items::contacts::csv::parse_csv(csv.as_bytes(), "c.csv")
    });
    assert_eq!(contacts.len(), 40_000);
    let lines: Vec<&str> = bad.iter().map(|b| b.location.as_str()).collect();
    assert_eq!(lines, ["c.csv:40002", "c.csv:40003"]);
    // A header of 100,000 columns, most of them repeated.
    let header: Vec<String> = (0..100_000).map(|i| format!("c{}", i % 50)).collect();
    let csv = format!(
        "email,{}\na@x.example,{}\n",
        header.join(","),
        vec!["x"; 100_000].join(",")
    );
    let (_, bad) = within(Duration::from_secs(5), "100,000 columns", move || {
        mailplan::items::contacts::csv::parse_csv(csv.as_bytes(), "c.csv")
    });
    assert_eq!(bad.len(), 99_950);
}

#[test]
fn an_ics_with_thousands_of_nested_components_each_with_a_bad_line_is_read_in_linear_time() {
    for n in [10_000usize, 100_000] {
        let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n");
        ics.push_str("BEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20240101T100000Z\r\n");
        for _ in 0..n {
            ics.push_str("BEGIN:VALARM\r\nbad line\r\n");
        }
        ics.push_str(&"END:VALARM\r\n".repeat(n));
        ics.push_str("END:VEVENT\r\nBEGIN:VEVENT\r\nUID:e2\r\nDTSTART:20240102T100000Z\r\n");
        ics.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
        let (items, bad) = within(Duration::from_secs(10), "nested VALARMs", move || {
            mailplan::items::calendar::ics::parse_ics(ics.as_bytes(), "c.ics")
        });
        // The broken event is one bad item at its line; the next event is read.
        assert_eq!(items.len(), 1, "{n}");
        assert_eq!(bad.len(), 1, "{n}: {bad:?}");
        assert!(bad[0].location.starts_with("c.ics:4"), "{bad:?}");
    }
}

// ---- 2. Linear memory: many persons sharing one address ----

#[test]
fn four_thousand_persons_sharing_one_address_make_one_conflict_naming_each_once() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut source = std::fs::read_to_string(data.join("domino.ldif")).unwrap_or_default();
    for i in 0..4_000 {
        source.push_str(&format!(
            "\ndn: CN=P{i},OU=Sales,O=Acme\nobjectClass: dominoPerson\ncn: P{i}\nuid: p{i}\nmail: shared@acme.com\n"
        ));
    }
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"))
    };
    write("domino.ldif", &source);
    write(
        "ad.ldif",
        &std::fs::read_to_string(data.join("ad.ldif")).unwrap_or_default(),
    );
    let plan = std::fs::read_to_string(data.join("../plans/quickstart.yaml")).unwrap_or_default();
    let plan = plan.replace("../data/", "");
    let plan = &plan[..plan.find("\nitems:").unwrap_or(plan.len())];
    write("plan.yaml", plan);
    let path = dir.path().join("plan.yaml");
    let (text, json, plan) = within(Duration::from_secs(30), "4,000 claimants", move || {
        let inputs = mailplan::ops::load_inputs(&path).unwrap_or_else(|e| panic!("{e}"));
        let plan = mailplan::ops::make_plan(&inputs).unwrap_or_else(|e| panic!("{e}"));
        let text =
            mailplan::render::text::render(&plan, mailplan::render::text::Style { color: false });
        (text, mailplan::render::json::render(&plan), plan)
    });
    // The whole truth, once: one plan-wide error names all 4,000; each person names five.
    let conflict: Vec<_> = plan
        .messages
        .iter()
        .filter(|m| m.text.starts_with("address shared@acme.com"))
        .collect();
    assert_eq!(conflict.len(), 1);
    assert_eq!(conflict[0].text.matches(",OU=Sales,O=Acme").count(), 4_000);
    let ambiguous = plan
        .subjects
        .iter()
        .filter(|s| s.status == mailplan::plan::Status::Ambiguous)
        .filter(|s| s.messages.iter().any(|m| m.text.contains("and 3995 more")))
        .count();
    assert_eq!(ambiguous, 4_000);
    // Bounded output (it was 412 MB of text and 2 GB of memory).
    assert!(text.len() < 4_000_000, "{} bytes of text", text.len());
    assert!(json.len() < 6_000_000, "{} bytes of JSON", json.len());
}

// ---- 6. Addresses are validated before they are written ----

#[test]
fn source_values_that_are_no_address_are_warnings_and_never_proxy_addresses() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut source = std::fs::read_to_string(data.join("domino.ldif")).unwrap_or_default();
    source.push_str(
        "\ndn: CN=Zed Zero,OU=Sales,O=Acme\nobjectClass: dominoPerson\ncn: Zed Zero\nuid: zzero\n\
         mail: *@acme.com\nmail: zed.zero@acme.com\nmail: zed zero@acme.com\n\
         mail:: emVkAXplcm9AYWNtZS5jb20=\nuid: *@acme.com\n",
    );
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"))
    };
    write("domino.ldif", &source);
    write(
        "ad.ldif",
        &std::fs::read_to_string(data.join("ad.ldif")).unwrap_or_default(),
    );
    let plan = std::fs::read_to_string(data.join("../plans/quickstart.yaml")).unwrap_or_default();
    let plan = plan.replace("../data/", "");
    write(
        "plan.yaml",
        &plan[..plan.find("\nitems:").unwrap_or(plan.len())],
    );
    let inputs =
        mailplan::ops::load_inputs(&dir.path().join("plan.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = mailplan::ops::make_plan(&inputs).unwrap_or_else(|e| panic!("{e}"));
    let zed = plan
        .subjects
        .iter()
        .find(|s| s.name == "Zed Zero")
        .unwrap_or_else(|| panic!("no subject"));
    let warnings: Vec<&str> = zed.messages.iter().map(|m| m.text.as_str()).collect();
    for (attr, value) in [
        ("mail", "*@acme.com"),
        ("mail", "zed zero@acme.com"),
        ("mail", "zed\\u{1}zero@acme.com"),
        ("uid", "*@acme.com"),
    ] {
        let needle = format!("source attribute `{attr}` holds \"{value}\"");
        assert!(
            warnings.iter().any(|w| w.contains(&needle)),
            "{needle} in {warnings:#?}"
        );
    }
    let written: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.subject == zed.source)
        .flat_map(|a| a.changes.iter())
        .filter(|c| c.attribute.is("proxyAddresses") || c.attribute.is("mail"))
        .flat_map(|c| {
            c.after
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
        .collect();
    assert!(
        written.iter().any(|v| v == "SMTP:zed.zero@acme.com"),
        "{written:?}"
    );
    assert!(
        written
            .iter()
            .all(|v| !v.contains('*') && !v.contains("zed zero") && !v.contains('\u{1}')),
        "{written:?}"
    );
}
