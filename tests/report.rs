//! `mailplan report`: the audit of a wave in Markdown, CSV and HTML, over the embedded example.
//! The HTML page is opened in a real browser (headless Chromium), printed, and its printed text
//! checked, as a reviewer would read it; it must need nothing from the network.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use common::*;

const QUICKSTART: &str = "examples/plans/quickstart.yaml";

fn report(args: &[&str]) -> String {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(["report", QUICKSTART])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn markdown_tells_a_reviewer_the_whole_wave() {
    let md = report(&["--format", "markdown"]);
    assert!(md.starts_with("# Migration wave report\n"), "{md}");
    assert!(
        md.contains("8 persons; 4 to create, 3 to convert, 4 to update, 2 to delete; 7 imports (10 messages, 3 events, 3 contacts). Not migrated: 1 person (1 ambiguous)."),
        "{md}"
    );
    for row in [
        "| 1: new mailbox | 2 |",
        "| 3: new mailbox replacing contact(s) | 1 |",
        "| none (not migrated) | 1 |",
        "| planned | 7 |",
        "| ambiguous | 1 |",
    ] {
        assert!(md.contains(row), "{row}\n{md}");
    }
    // The ambiguity with its candidates, the soft candidate, the largest mailbox first.
    assert!(
        md.contains("| Henry Hill |  | ambiguous: 2 users hold this person's addresses; nothing is planned (candidates: "),
        "{md}"
    );
    assert!(
        md.contains("- Gina Gómez: CN=ggomez,CN=Users,DC=acme,DC=test (sAMAccountName `ggomez`)"),
        "{md}"
    );
    let largest = md.split("## Largest mailboxes").nth(1).unwrap();
    assert!(
        largest.find("Alice Archer").unwrap() < largest.find("Bob Baker").unwrap(),
        "{md}"
    );
    assert!(
        md.contains("| Carol Chen | 3 | planned | scenario 3: new mailbox replacing contact(s); no matching user | CN=Carol Chen,OU=Contacts,DC=acme,DC=test |"),
        "{md}"
    );
}

#[test]
fn csv_is_one_row_per_person_for_a_spreadsheet() {
    let text = report(&["--format", "csv"]);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 8, "{text}");
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let henry = rows
        .iter()
        .find(|r| &r[col("name")] == "Henry Hill")
        .unwrap();
    assert_eq!(&henry[col("status")], "ambiguous");
    assert_eq!(&henry[col("scenario")], "");
    assert!(henry[col("candidates")].contains("CN="), "{henry:?}");
    let alice = rows
        .iter()
        .find(|r| &r[col("name")] == "Alice Archer")
        .unwrap();
    assert_eq!(&alice[col("messages_to_copy")], "6");
    assert_eq!(&alice[col("events_to_copy")], "2");
    assert_eq!(&alice[col("contacts_to_copy")], "2");
    assert_eq!(
        &alice[col("destination")],
        "CN=Alice Archer,OU=Migrated,DC=acme,DC=test"
    );
}

/// Debian's Chromium, or a failure saying how to install it (never a skip).
fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Chromium is not installed; the HTML report is checked in a real browser: \
         apt-get install chromium poppler-utils (scripts/test.sh installs them when run as root)"
    );
}

/// Opens `page` in headless Chromium with no network, prints it to PDF, and returns the
/// printed text.
fn printed_text(page: &Path, dir: &Path) -> String {
    let pdf = dir.join("report.pdf");
    let out = Process::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
            // Nothing the page asks for may come from outside it.
            "--proxy-server=127.0.0.1:9",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        pdf.exists(),
        "Chromium printed nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = Process::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("pdftotext (Debian package poppler-utils): {e}"));
    String::from_utf8_lossy(&text.stdout).into_owned()
}

#[test]
fn html_is_one_self_contained_page_a_browser_renders() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("wave.html");
    Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(root())
        .args(["report", QUICKSTART, "--format", "html", "--out"])
        .arg(&page)
        .assert()
        .success();
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no script, no stylesheet or image from elsewhere (the SVG namespace is a
    // name, not a fetch).
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("src="), "{html}");
    assert!(!html.contains("<link"), "{html}");
    assert_eq!(
        html.matches("http").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    // The two charts: seven scenario bars (1–6 and none), three mailboxes with mail to copy.
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 7 + 3, "{html}");

    let text = printed_text(&page, dir.path());
    for line in [
        "Migration wave report",
        "8 persons; 4 to create, 3 to convert, 4 to update, 2 to delete; 7 imports",
        "Persons by scenario",
        "3: new mailbox replacing contact(s)",
        "Mail to copy, largest mailboxes",
        "Persons by status",
        "Henry Hill: ambiguous",
        "Soft candidates",
        "Gina Gómez",
        "Alice Archer",
        "1.7 KiB",
    ] {
        assert!(
            text.contains(line),
            "`{line}` is not on the printed page:\n{text}"
        );
    }
}
