//! IMAP servers that misbehave on purpose, as a small scripted server on 127.0.0.1 that answers
//! the quickstart's persons like an ordinary server (one message in the inbox) except where told
//! otherwise: it never greets, drips its greeting, greets with a line that never ends, goes
//! silent at one person's LOGIN, EXAMINE or FETCH, announces a literal of gigabytes and sends ten
//! bytes, lists a message larger than mailplan copies, or names folders in what is not modified
//! UTF-7. `mailplan plan` and `apply` must give up within a bound, with an error naming the
//! server and what was awaited, leave out only the person concerned (exit 1), and never hold in
//! memory what a peer only announced.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The person whose mailbox the server misbehaves for (scenario 6 of the quickstart).
const VICTIM: &str = "ffischer";

/// What the server does wrong.
#[derive(Debug, Clone, Copy)]
enum Misdeed {
    /// None: an ordinary server.
    Nothing,
    /// Accepts and never sends the greeting.
    NoGreeting,
    /// Sends its greeting one byte a second.
    DripGreeting,
    /// Greets with a line that does not end (up to 512 MiB, then silence).
    EndlessLine,
    /// Answers the victim until a command containing this text, then says nothing more.
    SilentAt(&'static str),
    /// Answers the victim's listing FETCH with a header literal announced this long, of
    /// which it sends ten bytes.
    ShortLiteral(u64),
    /// Lists the victim's message with this RFC822.SIZE.
    Size(u64),
    /// Lists these folders (raw names) for the victim, beside the inbox.
    Folders(&'static [&'static [u8]]),
}

/// Every LOGIN command each server heard, by the server's port.
static LOGINS: std::sync::Mutex<BTreeMap<u16, Vec<Vec<u8>>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The message every inbox holds.
fn message(user: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{user}@example.test>\r\nFrom: a@example.test\r\nSubject: hello\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nHello {user}.\r\n"
    )
    .into_bytes()
}

/// Starts the server; returns its port.
fn imap_server(misdeed: Misdeed) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, misdeed));
        }
    });
    port
}

/// Keeps a connection open without a byte until the client goes.
fn hold(mut s: TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// One command from the client, its literals inline (answering `+` to synchronising ones).
fn command(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let start = out.len();
        if r.read_until(b'\n', &mut out).ok()? == 0 {
            return None;
        }
        let line = String::from_utf8_lossy(&out[start..])
            .trim_end()
            .to_string();
        let Some(open) = line.rfind('{').filter(|_| line.ends_with('}')) else {
            return Some(out);
        };
        let spec = &line[open + 1..line.len() - 1];
        let n: usize = spec.trim_end_matches('+').parse().ok()?;
        if !spec.ends_with('+') {
            w.write_all(b"+ go ahead\r\n").ok()?;
        }
        let at = out.len();
        out.resize(at + n, 0);
        r.read_exact(&mut out[at..]).ok()?;
    }
}

fn serve(mut s: TcpStream, misdeed: Misdeed) {
    let _ = s.set_nodelay(true);
    match misdeed {
        Misdeed::NoGreeting => return hold(s),
        Misdeed::DripGreeting => {
            for b in b"* OK ready\r\n" {
                std::thread::sleep(Duration::from_secs(1));
                if s.write_all(&[*b]).is_err() {
                    return;
                }
            }
        }
        Misdeed::EndlessLine => {
            let _ = s.write_all(b"* OK ");
            let piece = vec![b'a'; 64 << 10];
            for _ in 0..(512 << 20) / piece.len() {
                if s.write_all(&piece).is_err() {
                    return;
                }
            }
            return hold(s);
        }
        _ => {
            if s.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n")
                .is_err()
            {
                return;
            }
        }
    }
    let Ok(read_half) = s.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut user = String::new();
    while let Some(cmd) = command(&mut r, &mut s) {
        let text = String::from_utf8_lossy(&cmd).into_owned();
        let mut words = text.split_whitespace();
        let tag = words.next().unwrap_or("*").to_string();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        if verb == "LOGIN" {
            if let (Ok(mut logins), Ok(at)) = (LOGINS.lock(), s.local_addr()) {
                logins.entry(at.port()).or_default().push(cmd.clone());
            }
            // `LOGIN "person*admin" "password"`: the person is what mailplan opens.
            user = text
                .split('"')
                .nth(1)
                .unwrap_or("")
                .split('*')
                .next()
                .unwrap_or("")
                .to_string();
        }
        let victim = user == VICTIM;
        if let Misdeed::SilentAt(at) = misdeed
            && victim
            && text.contains(at)
        {
            return hold(s);
        }
        let mut answer: Vec<u8> = Vec::new();
        let mut say = |line: &[u8]| answer.extend_from_slice(line);
        match verb.as_str() {
            "CAPABILITY" => say(b"* CAPABILITY IMAP4rev1 LITERAL+\r\n"),
            "LIST" => {
                say(b"* LIST () \".\" \"INBOX\"\r\n");
                if let (Misdeed::Folders(names), true) = (misdeed, victim) {
                    for name in names {
                        say(b"* LIST () \".\" \"");
                        say(name);
                        say(b"\"\r\n");
                    }
                }
            }
            "LSUB" => say(b"* LSUB () \".\" \"INBOX\"\r\n"),
            "EXAMINE" => say(b"* 1 EXISTS\r\n"),
            "UID" if text.contains("BODY.PEEK[]") => {
                let body = message(&user);
                say(format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()).as_bytes());
                say(&body);
                say(b")\r\n");
            }
            "UID" => {
                let headers = format!("Message-ID: <{user}@example.test>\r\n\r\n");
                let size = match misdeed {
                    Misdeed::Size(n) if victim => n,
                    _ => message(&user).len() as u64,
                };
                let head = format!(
                    "* 1 FETCH (UID 1 RFC822.SIZE {size} FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID)] "
                );
                if let (Misdeed::ShortLiteral(n), true) = (misdeed, victim) {
                    let _ = s.write_all(format!("{head}{{{n}}}\r\n0123456789").as_bytes());
                    return hold(s);
                }
                say(format!("{head}{{{}}}\r\n{headers})\r\n", headers.len()).as_bytes());
            }
            "LOGOUT" => {
                let _ = s.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes());
                return;
            }
            _ => {}
        }
        say(format!("{tag} OK done\r\n").as_bytes());
        if s.write_all(&answer).is_err() {
            return;
        }
    }
}

/// The quickstart with its data in `dir`, its mail read from the scripted server on `port`
/// with a two-second `timeout:`.
fn quickstart(dir: &Path, port: u16) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    copy_tree(&root.join("data"), &dir.join("data"));
    let text = std::fs::read_to_string(root.join("plans/quickstart.yaml")).unwrap();
    let source = "    source:\n      maildir: \"../data/mail/{uid}\"\n";
    assert!(text.contains(source), "{text}");
    let text = text
        .replace(
            source,
            &format!(
                "    source:\n      imap: {{ url: \"imap://127.0.0.1:{port}\", tls: none, user: \"{{uid}}\", login: admin, password: {{ env: MAILPLAN_TEST_IMAP }}, timeout: 2 }}\n"
            ),
        )
        .replace("../data/", "data/")
        .replace("../out/", "out/");
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// What a run of `mailplan` did: its output, how long it took and the most memory it held.
struct Run {
    out: Output,
    took: Duration,
    peak_kib: u64,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }
}

/// Runs `mailplan args` in `dir`, watching its memory (peak resident set, from /proc) and
/// killing it if it is still running after two minutes: a run that hangs fails the test
/// instead of hanging it.
fn mailplan(dir: &Path, args: &[&str]) -> Run {
    mailplan_with_password(dir, args, "secret")
}

/// [`mailplan`] with the admin password `password`.
fn mailplan_with_password(dir: &Path, args: &[&str], password: &str) -> Run {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_mailplan"))
        .args(args)
        .current_dir(dir)
        .env("MAILPLAN_TEST_IMAP", password)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Ok(text) = std::fs::read_to_string(&status) {
                let hwm = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                if let Some(kib) = hwm {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                if started.elapsed() > Duration::from_secs(120) {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let _ = watcher.join();
    Run {
        out,
        took,
        peak_kib: peak.load(std::sync::atomic::Ordering::Relaxed),
    }
}

fn plan(misdeed: Misdeed) -> (Run, u16) {
    let port = imap_server(misdeed);
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), port);
    (mailplan(dir.path(), &["plan", "plan.yaml"]), port)
}

/// A bound that holds on a loaded two-core machine: three attempts of two seconds each, the
/// pauses between them, and the rest of the plan.
const BOUND: Duration = Duration::from_secs(45);

/// Before the login the server cannot tell one person from another: everyone's mail is left
/// out, each with an error naming the server and `awaited`, while the rest of the plan (the
/// directory's actions) is still made; the plan exits 1.
fn every_mailbox_left_out(run: &Run, port: u16, awaited: &str) {
    let out = run.all();
    assert_eq!(run.out.status.code(), Some(1), "{out}");
    let errors: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("mail: cannot take the inventory, nothing planned: IMAP "))
        .collect();
    assert!(errors.len() >= 5, "{out}");
    for line in &errors {
        assert!(
            line.contains(&format!("@127.0.0.1:{port}: ")) && line.contains(awaited),
            "{line}"
        );
    }
    eprintln!(
        "{}\n  ({} mailboxes) in {:.1?}, at most {} MiB resident",
        errors[0].trim(),
        errors.len(),
        run.took,
        run.peak_kib >> 10
    );
    assert!(!out.contains("<- import mail"), "{out}");
    assert!(
        out.contains("+ create_mailbox") && out.contains("\nPlan: "),
        "{out}"
    );
    assert!(run.took < BOUND, "took {:?}", run.took);
}

/// The victim's mail is left out with an error naming the server and `awaited`; everyone else
/// is planned; the plan exits 1.
fn only_the_victim_left_out(run: &Run, port: u16, awaited: &str) {
    let out = run.all();
    assert_eq!(run.out.status.code(), Some(1), "{out}");
    let server = format!("IMAP {VICTIM}@127.0.0.1:{port}: ");
    let line = out
        .lines()
        .find(|l| l.contains(&server))
        .unwrap_or_else(|| panic!("no error names the server: {out}"));
    assert!(
        line.contains("mail: cannot take the inventory, nothing planned") && line.contains(awaited),
        "{line}"
    );
    eprintln!(
        "{}\n  in {:.1?}, at most {} MiB resident",
        line.trim(),
        run.took,
        run.peak_kib >> 10
    );
    assert_eq!(out.matches(&server).count(), 1, "{out}");
    // The others' mail is planned, one message each.
    assert!(
        out.matches("<- import mail: 1 new message").count() >= 2,
        "{out}"
    );
    assert!(
        out.contains("Not migrated: 2 persons (1 error, 1 ambiguous)"),
        "{out}"
    );
    assert!(!out.contains("secret"), "{out}");
    assert!(run.took < BOUND, "took {:?}", run.took);
}

#[test]
fn a_server_that_never_greets_is_given_up_on_by_name() {
    let (run, port) = plan(Misdeed::NoGreeting);
    every_mailbox_left_out(
        &run,
        port,
        "no answer within 2 s while waiting for the greeting (the `timeout:` setting) (tried 3 times)",
    );
}

#[test]
fn a_server_that_stops_answering_at_login_examine_or_fetch_leaves_that_person_out() {
    for (at, awaited) in [
        (
            "LOGIN",
            "no answer within 2 s while waiting for the answer to LOGIN",
        ),
        (
            "EXAMINE",
            "no answer within 2 s while waiting for the answer to EXAMINE \"INBOX\"",
        ),
        (
            "UID FETCH 1:*",
            "no answer within 2 s while waiting for the answer to UID FETCH 1:* (UID RFC822.SIZE",
        ),
    ] {
        let (run, port) = plan(Misdeed::SilentAt(at));
        only_the_victim_left_out(&run, port, awaited);
        assert!(run.all().contains("(tried 3 times)"), "{}", run.all());
    }
}

#[test]
fn a_server_dripping_its_greeting_is_given_up_on() {
    let (run, port) = plan(Misdeed::DripGreeting);
    every_mailbox_left_out(
        &run,
        port,
        " within 2 s) while waiting for the greeting (the `timeout:` setting) (tried 3 times)",
    );
    assert!(
        run.all().contains("the answer came too slowly ("),
        "{}",
        run.all()
    );
}

#[test]
fn a_greeting_that_never_ends_is_refused_at_a_megabyte() {
    let (run, port) = plan(Misdeed::EndlessLine);
    every_mailbox_left_out(
        &run,
        port,
        "the server sent a line longer than the 1 MiB accepted while waiting for the greeting",
    );
    // Refused, not tried again.
    assert!(!run.all().contains("tried 3 times"), "{}", run.all());
    assert!(run.peak_kib < 150 << 10, "peak {} KiB", run.peak_kib);
}

#[test]
fn a_literal_announced_huge_and_never_sent_is_neither_allocated_nor_waited_for() {
    // 4 GiB: more than a message may be, read past; 200 MiB: within it, kept as it arrives.
    for announced in [4u64 << 30, 200 << 20] {
        let (run, port) = plan(Misdeed::ShortLiteral(announced));
        only_the_victim_left_out(
            &run,
            port,
            &format!(
                "bytes within 2 s) while waiting for the answer to UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT RECEIVED)]) (the `timeout:` setting; 10 of the {announced} bytes of a literal had arrived) (tried 3 times)"
            ),
        );
        // Nothing near what was announced was ever held.
        assert!(
            run.peak_kib < 150 << 10,
            "{announced}: peak {} KiB",
            run.peak_kib
        );
    }
}

#[test]
fn a_message_larger_than_mailplan_copies_is_a_named_bad_item_and_apply_exits_1() {
    let port = imap_server(Misdeed::Size(300_000_000));
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), port);
    let run = mailplan(dir.path(), &["plan", "plan.yaml"]);
    let out = run.all();
    let bad = format!(
        "{VICTIM}@127.0.0.1:{port}/INBOX UID 1: the message is 300000000 bytes, more than the 256 MiB mailplan copies from IMAP; not copied"
    );
    assert!(
        out.contains(&format!("mail: bad item skipped: {bad}")),
        "{out}"
    );
    assert_eq!(run.out.status.code(), Some(0), "{out}");
    // Apply says which message it skipped, counts it, and exits 1.
    let run = mailplan(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    let err = run.stderr();
    assert_eq!(run.out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("  bad item: {bad}")), "{err}");
    assert!(
        err.contains("Apply finished with errors.") && err.contains("1 bad item skipped"),
        "{err}"
    );
    // The others' messages arrived.
    assert!(err.contains("copied 1 message"), "{err}");
}

#[test]
fn an_apply_whose_source_stops_answering_a_fetch_fails_that_person_by_name() {
    let port = imap_server(Misdeed::SilentAt("BODY.PEEK[]"));
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), port);
    let run = mailplan(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    let err = run.all();
    assert_eq!(run.out.status.code(), Some(1), "{err}");
    let expected = format!(
        "IMAP {VICTIM}@127.0.0.1:{port}: no answer within 2 s while waiting for the answer to UID FETCH 1 (UID BODY.PEEK[]) (the `timeout:` setting) (tried 3 times)"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("Apply finished with errors."), "{err}");
    assert!(err.contains("copied 1 message"), "{err}");
    assert!(run.took < BOUND * 2, "took {:?}", run.took);
}

#[test]
fn folder_names_that_are_not_modified_utf7_are_bad_items_naming_mailbox_and_raw_name() {
    let port = imap_server(Misdeed::Folders(&[
        b"Caf\xc3\xa9",
        b"&Jjo",
        b"Esc\x1b[31mape",
    ]));
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), port);
    let run = mailplan(dir.path(), &["plan", "plan.yaml"]);
    let out = run.all();
    let at = format!("mail: bad item skipped: {VICTIM}@127.0.0.1:{port}/");
    for (name, why) in [
        (
            "Café",
            "it is not valid modified UTF-7: it holds the non-ASCII character `é`",
        ),
        ("&Jjo", "it is not valid modified UTF-7;"),
        (
            "Esc\\u{1b}[31mape",
            "it is not valid modified UTF-7: it holds the control character '\\u{1b}'",
        ),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{at}{name}: ")))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        assert!(
            line.contains(&format!("the folder name cannot be read: {why}"))
                && line.contains("its 1 message is not copied and the folder is not created"),
            "{line}"
        );
    }
    // No terminal escape reaches the output.
    assert!(!out.contains('\x1b'), "{out}");
    // The inbox is still planned.
    assert!(out.contains("<- import mail: 1 new message"), "{out}");
}

#[test]
fn a_password_with_a_line_break_goes_as_a_literal_not_as_a_second_command() {
    // The server ignores what it is sent: a quoted string holding CRLF would end the LOGIN
    // there and make the rest of the password a command of its own.
    let port = imap_server(Misdeed::Nothing);
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), port);
    let password = "sec\r\nA9 DELETE INBOX";
    let run = mailplan_with_password(dir.path(), &["plan", "plan.yaml"], password);
    let out = run.all();
    assert_eq!(run.out.status.code(), Some(0), "{out}");
    assert!(!out.contains("DELETE"), "{out}");
    let logins = LOGINS
        .lock()
        .unwrap()
        .get(&port)
        .cloned()
        .unwrap_or_default();
    assert!(logins.len() >= 5, "{logins:?}");
    for login in logins {
        let login = String::from_utf8_lossy(&login).into_owned();
        assert!(
            login.ends_with(&format!(" {{{}+}}\r\n{password}\r\n", password.len())),
            "{login:?}"
        );
    }
}
