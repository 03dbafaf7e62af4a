//! Benchmark (not a timed test; ignored by default): copy 20,000 messages of realistic sizes
//! between two Dovecot users with mailplan, and the same set between two other users with mbsync,
//! on one Dovecot, and print messages per second and MiB/s for both.
//!
//! Run: `cargo test --release --test bench_mail -- --ignored --nocapture`
//! (`BENCH_MESSAGES=2000` for a quick run; `BENCH_FOLDERS=1` puts every message into the inbox,
//! where keeping the source's order constrains the copy most).

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dovecot::Dovecot;

/// A small deterministic generator (xorshift), so every run copies the same set.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Most messages under 50 KiB, some up to 500 KiB, a few of several MiB.
fn size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=4 => (1 << 20) + rng.below(4 << 20) as usize,
        5..=99 => (50 << 10) + rng.below(450 << 10) as usize,
        _ => 1_500 + rng.below(48 << 10) as usize,
    }
}

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut m = format!(
        "Message-ID: <bench-{i}@example.test>\r\nFrom: Sender {i} <s{i}@example.test>\r\nTo: User <user@acme.test>\r\nSubject: benchmark message {i}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    let line =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while m.len() < len {
        m.extend_from_slice(line);
    }
    m.truncate(len.max(m.len().min(len)));
    m
}

const FOLDERS: [&str; 8] = [
    "INBOX",
    "Sent",
    "Archive",
    "Archive/2022",
    "Archive/2023",
    "Projects",
    "Projects/Alpha",
    "Customers",
];

/// Writes the set into a user's Maildir on disk (no fsync: seeding is not what is measured).
fn seed(d: &Dovecot, user: &str, n: usize) -> u64 {
    let root = d.maildir(user);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    let folders = std::env::var("BENCH_FOLDERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(FOLDERS.len())
        .clamp(1, FOLDERS.len());
    for (i, _) in (0..n).enumerate() {
        let folder = FOLDERS[(rng.below(FOLDERS.len() as u64)) as usize % folders];
        let dir = if folder == "INBOX" {
            root.clone()
        } else {
            root.join(format!(".{}", folder.replace('/', ".")))
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let data = message(i, size(&mut rng));
        total += data.len() as u64;
        let flags = if rng.below(3) == 0 { "" } else { "S" };
        std::fs::write(
            dir.join("cur").join(format!(
                "{}.M{i}P1.bench,S={}:2,{flags}",
                1_700_000_000 + i,
                data.len()
            )),
            &data,
        )
        .unwrap();
    }
    total
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn mail_copy_throughput_against_mbsync() {
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    assert!(
        Path::new("/usr/bin/mbsync").exists(),
        "mbsync is not installed: apt-get install isync"
    );
    let d = Dovecot::start(&[
        ("jsmith", "x"),
        ("new-jsmith", "y"),
        ("mbsrc", "srcpass"),
        ("mbdst", "y"),
    ]);
    let bytes = seed(&d, "jsmith", n);
    let bytes2 = seed(&d, "mbsrc", n);
    assert_eq!(bytes, bytes2);
    d.fix_owner();
    eprintln!("seeded {n} messages, {:.1} MiB per mailbox", mib(bytes));

    // mailplan: scenario 6 (the mailbox exists), items only.
    let work = tempfile::tempdir().unwrap();
    let fixtures = common::root().join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixtures.join(f), work.path().join(f)).unwrap();
    }
    let pass = d.admin_password_file();
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nsource:\n  profile: domino\n  directory:\n    ldif: source.ldif\ndestination:\n  flavor: active-directory\n  directory:\n    ldif: destination.ldif\n  container: \"OU=Migrated,DC=acme,DC=test\"\nitems:\n  mail:\n    source:\n      imap: {{ url: \"{url}\", tls: none, user: \"{{uid}}\", login: admin, password: {{ file: \"{p}\" }}, auth: master }}\n    destination:\n      imap: {{ url: \"{url}\", tls: none, user: \"new-{{uid}}\", login: admin, password: {{ file: \"{p}\" }}, auth: master }}\n",
            url = d.url(),
            p = pass.display()
        ),
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("mailplan");
    let cpu_start = d.cpu_seconds();
    // What planning costs on its own: both mailboxes listed (UIDs and headers), nothing copied.
    let start = Instant::now();
    let out = Command::new(&bin)
        .args(["plan", "plan.yaml"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let plan_secs = start.elapsed().as_secs_f64();
    let cpu_planned = d.cpu_seconds();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("import mail: {} new messages", thousands(n))),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let start = Instant::now();
    let out = Command::new(&bin)
        .args(["apply", "plan.yaml", "--auto-approve"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let mailplan_secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.count_files("new-jsmith"), n);
    let cpu_applied = d.cpu_seconds();

    // mbsync: the same set, mbsrc → mbdst (master login at the destination, as mailplan).
    let state = work.path().join("mbsync-state");
    std::fs::create_dir_all(&state).unwrap();
    let rc = work.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount src\nHost 127.0.0.1\nPort {port}\nUser mbsrc\nPass srcpass\nSSLType None\nAuthMechs PLAIN\n\nIMAPStore src\nAccount src\n\nIMAPAccount dst\nHost 127.0.0.1\nPort {port}\nUser mbdst*admin\nPass {admin}\nSSLType None\nAuthMechs PLAIN\n\nIMAPStore dst\nAccount dst\n\nChannel copy\nFar :src:\nNear :dst:\nPatterns *\nCreate Near\nSync Pull\nCopyArrivalDate yes\nSyncState {state}/\n",
            port = d.port,
            admin = dovecot::ADMIN_PASSWORD,
            state = state.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let out = Command::new("mbsync")
        .args(["-c", rc.to_str().unwrap(), "-q", "copy"])
        .output()
        .unwrap();
    let mbsync_secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.count_files("mbdst"), n);
    let cpu_mbsync = d.cpu_seconds();

    println!();
    let per_1000 = |cpu: f64| cpu * 1000.0 / n as f64;
    println!(
        "mailplan plan alone (inventory of both mailboxes): {plan_secs:.1} s, Dovecot CPU {:.2} s",
        cpu_planned - cpu_start
    );
    println!(
        "| tool | messages | MiB | seconds | messages/s | MiB/s | Dovecot CPU s / 1,000 messages |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (tool, secs, cpu) in [
        ("mailplan apply", mailplan_secs, cpu_applied - cpu_planned),
        ("mbsync (isync)", mbsync_secs, cpu_mbsync - cpu_applied),
    ] {
        println!(
            "| {tool} | {n} | {:.1} | {secs:.1} | {:.0} | {:.1} | {:.2} |",
            mib(bytes),
            n as f64 / secs,
            mib(bytes) / secs,
            per_1000(cpu)
        );
    }
}
