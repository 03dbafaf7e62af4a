//! Servers that throttle: the copy slows down and goes on instead of failing. A real Dovecot
//! whose `mail_max_userip_connections` is lower than the sessions an import opens at once; a
//! hostile IMAP destination on 127.0.0.1 that answers APPENDs (one per message, or one
//! MULTIAPPEND per batch) `NO [LIMIT]` / `NO [UNAVAILABLE]` for a while, or for ever (with a short bound: the import then fails with the
//! server's reason and apply exits 1); and Radicale behind a small proxy that answers the first
//! PUTs `429 Too Many Requests` with `Retry-After: 1`. Every message and contact arrives once,
//! none is a bad item, and the summary says the copy was throttled.

mod common;
#[path = "servers/dovecot.rs"]
mod dovecot;
#[path = "servers/radicale.rs"]
mod radicale;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use dovecot::Dovecot;
use mailplan::items::identity::base;
use mailplan::items::mail::MessageMeta;
use mailplan::items::mail::maildir::Maildir;
use mailplan::spec::{ImapAuth, ImapSecurity, ImapStore, Secret, Template};

const SOURCE: &str = "jsmith";
const TARGET: &str = "new-jsmith";

fn message(n: usize) -> Vec<u8> {
    format!(
        "Message-ID: <t{n}@example.test>\r\nFrom: a@example.test\r\nSubject: throttled {n}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nBody {n}.\r\n"
    )
    .into_bytes()
}

fn meta(n: usize) -> MessageMeta {
    MessageMeta {
        key: String::new(),
        identity: String::new(),
        size: 0,
        flags: vec!["\\Seen".into()],
        internal_date: 1_700_000_000 + n as i64,
    }
}

/// A migration folder with the scenario-6 directories and a plan copying jsmith's mail from
/// `source` into new-jsmith's at `destination` (both YAML mappings for `imap:` or `maildir:`).
fn case(source: &str, destination: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::root().join("tests/fixtures/scenario6_mailbox");
    for f in ["source.ldif", "destination.ldif"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
    }
    let plan = format!(
        "version: 1\nsource:\n  profile: domino\n  directory: {{ ldif: source.ldif }}\ndestination:\n  flavor: active-directory\n  directory: {{ ldif: destination.ldif }}\n  container: \"OU=Migrated,DC=acme,DC=test\"\nitems:\n  mail:\n    source: {source}\n    destination: {destination}\n"
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    dir
}

fn apply(dir: &Path, give_up: &str) -> (Option<i32>, String) {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("MAILPLAN_THROTTLE_GIVE_UP", give_up)
        .args(["apply", "plan.yaml", "--auto-approve"])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

// ---------------------------------------------------------------------------------------------
// Dovecot with a connection limit

fn store(d: &Dovecot) -> ImapStore {
    ImapStore {
        host: "127.0.0.1".into(),
        port: d.port,
        security: ImapSecurity::None,
        user: Template::parse("x").unwrap(),
        login: Some("admin".into()),
        password: Secret::File(d.admin_password_file()),
        auth: ImapAuth::Master,
        ca_file: None,
        insecure: false,
        timeout: Duration::from_secs(30),
    }
}

/// Message identities (without variant) in each folder of a user's mailbox, with how often.
fn held(d: &Dovecot, user: &str) -> BTreeMap<String, usize> {
    let s = store(d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let folders = rt.block_on(async {
        let mut session = mailplan::items::mail::imap::Session::connect(&s, user)
            .await
            .unwrap();
        let l = session.list().await.unwrap();
        session.logout().await;
        l
    });
    let mut out = BTreeMap::new();
    for f in folders {
        for m in f.messages {
            *out.entry(base(&m.identity).to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn dovecot_refusing_sessions_over_its_limit_slows_the_copy_and_everything_arrives_once() {
    let d = Dovecot::start_limited(&[(SOURCE, "x"), (TARGET, "y")], 2);
    let n = 650;
    let md = Maildir::new(d.maildir(SOURCE));
    md.ensure_folder("INBOX").unwrap();
    for i in 0..n {
        md.append("INBOX", &meta(i), &message(i)).unwrap();
    }
    d.fix_owner();
    let url = d.url();
    let pass = d.admin_password_file();
    let imap = |user: &str| {
        format!(
            "{{ imap: {{ url: \"{url}\", tls: none, user: \"{user}\", login: admin, password: {{ file: \"{}\" }}, auth: master }} }}",
            pass.display()
        )
    };
    let dir = case(&imap("{uid}"), &imap("new-{uid}"));
    let (code, out) = apply(dir.path(), "300");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("copied {n} messages")), "{out}");
    assert!(out.contains("is throttling"), "{out}");
    assert!(
        out.contains("throttled: servers asked to slow down"),
        "{out}"
    );
    assert!(!out.contains("bad item"), "{out}");
    let got = held(&d, TARGET);
    assert_eq!(got.len(), n, "{out}");
    assert!(got.values().all(|&c| c == 1), "a message twice: {got:?}");
    // A rerun finds everything there.
    let (code, out) = apply(dir.path(), "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(held(&d, TARGET).len(), n);
}

// ---------------------------------------------------------------------------------------------
// A hostile IMAP destination

/// How the stand-in answers APPEND.
#[derive(Clone, Copy)]
enum Appends {
    /// `NO [LIMIT]` / `NO [UNAVAILABLE]` (alternately) to the first this many, then OK.
    RefuseFirst(usize),
    /// `NO [UNAVAILABLE]` to every one.
    RefuseAll,
}

#[derive(Default)]
struct Held {
    /// Folder → stored messages, in order.
    folders: BTreeMap<String, Vec<Vec<u8>>>,
    appends: usize,
}

/// Starts the stand-in destination; returns its port and what it holds.
/// With `multiappend`, it offers MULTIAPPEND (RFC 3502): a batch is one command, stored or
/// refused whole.
fn hostile_destination(mode: Appends, multiappend: bool) -> (u16, Arc<Mutex<Held>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Held::default()));
    held.lock()
        .unwrap()
        .folders
        .insert("INBOX".into(), Vec::new());
    let shared = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let held = shared.clone();
            std::thread::spawn(move || serve(stream, mode, multiappend, held));
        }
    });
    (port, held)
}

/// One command, its literals inline (answering `+` to synchronising ones).
fn command(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> Option<(String, Vec<Vec<u8>>)> {
    let mut line = Vec::new();
    let mut literals = Vec::new();
    loop {
        let start = line.len();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line[start..])
            .trim_end()
            .to_string();
        let Some(open) = text.rfind('{').filter(|_| text.ends_with('}')) else {
            return Some((String::from_utf8_lossy(&line).into_owned(), literals));
        };
        let spec = &text[open + 1..text.len() - 1];
        let n: usize = spec.trim_end_matches('+').parse().ok()?;
        if !spec.ends_with('+') {
            w.write_all(b"+ go ahead\r\n").ok()?;
        }
        let mut lit = vec![0; n];
        r.read_exact(&mut lit).ok()?;
        literals.push(lit);
    }
}

fn serve(mut s: TcpStream, mode: Appends, multiappend: bool, held: Arc<Mutex<Held>>) {
    let caps = if multiappend {
        "IMAP4rev1 LITERAL+ MULTIAPPEND"
    } else {
        "IMAP4rev1 LITERAL+"
    };
    if s.write_all(format!("* OK [CAPABILITY {caps}] ready\r\n").as_bytes())
        .is_err()
    {
        return;
    }
    let Ok(read_half) = s.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut examined = String::from("INBOX");
    while let Some((text, literals)) = command(&mut r, &mut s) {
        let mut words = text.split_whitespace();
        let tag = words.next().unwrap_or("*").to_string();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let folder = text.split('"').nth(1).unwrap_or("INBOX").to_string();
        let mut h = held.lock().unwrap();
        let mut out: Vec<u8> = Vec::new();
        let mut status = "OK done".to_string();
        match verb.as_str() {
            "CAPABILITY" => out.extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes()),
            "LIST" | "LSUB" => {
                for f in h.folders.keys() {
                    out.extend_from_slice(format!("* {verb} () \".\" \"{f}\"\r\n").as_bytes());
                }
            }
            "CREATE" => {
                h.folders.entry(folder).or_default();
            }
            "EXAMINE" | "SELECT" => {
                let n = h.folders.get(&folder).map_or(0, Vec::len);
                out.extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes());
                examined = folder;
            }
            "UID" => {
                let messages = h.folders.get(&examined).cloned().unwrap_or_default();
                for (i, m) in messages.iter().enumerate() {
                    let end = m
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(m.len(), |p| p + 4);
                    let head = &m[..end];
                    out.extend_from_slice(
                        format!(
                            "* {} FETCH (UID {} RFC822.SIZE {} FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n",
                            i + 1,
                            i + 1,
                            m.len(),
                            head.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(head);
                    out.extend_from_slice(b")\r\n");
                }
            }
            "APPEND" => {
                h.appends += 1;
                let refuse = match mode {
                    Appends::RefuseFirst(k) => h.appends <= k,
                    Appends::RefuseAll => true,
                };
                if refuse {
                    status = if h.appends.is_multiple_of(2) {
                        "NO [UNAVAILABLE] Try again later".into()
                    } else {
                        "NO [LIMIT] Too many messages at once, slow down".into()
                    };
                } else {
                    h.folders.entry(folder).or_default().extend(literals);
                }
            }
            "LOGOUT" => {
                let _ = s.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes());
                return;
            }
            _ => {}
        }
        drop(h);
        out.extend_from_slice(format!("{tag} {status}\r\n").as_bytes());
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// A plan from a Maildir holding `n` messages into the stand-in on `port`.
fn into_hostile(port: u16, n: usize) -> tempfile::TempDir {
    let dir = case(
        "{ maildir: \"src/{uid}\" }",
        &format!(
            "{{ imap: {{ url: \"imap://127.0.0.1:{port}\", tls: none, user: \"new-{{uid}}\", login: admin, password: {{ file: \"admin.pass\" }}, auth: master, timeout: 5 }} }}"
        ),
    );
    std::fs::write(dir.path().join("admin.pass"), "secret").unwrap();
    let md = Maildir::new(dir.path().join("src").join(SOURCE));
    md.ensure_folder("INBOX").unwrap();
    for i in 0..n {
        md.append("INBOX", &meta(i), &message(i)).unwrap();
    }
    dir
}

/// How often each Message-ID is stored in the stand-in's inbox.
fn stored(held: &Mutex<Held>) -> BTreeMap<String, usize> {
    let h = held.lock().unwrap();
    let mut out = BTreeMap::new();
    for m in &h.folders["INBOX"] {
        let text = String::from_utf8_lossy(m);
        let id = text.lines().next().unwrap_or("").to_string();
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

#[test]
fn appends_answered_limit_or_unavailable_are_sent_again_later_and_none_is_a_bad_item() {
    for (multiappend, refused) in [(false, 7), (true, 2)] {
        appends_refused_for_a_while(multiappend, refused);
    }
}

fn appends_refused_for_a_while(multiappend: bool, refused: usize) {
    let (port, held) = hostile_destination(Appends::RefuseFirst(refused), multiappend);
    let dir = into_hostile(port, 5);
    let (code, out) = apply(dir.path(), "300");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("copied 5 messages"), "{out}");
    assert!(!out.contains("bad item"), "{out}");
    assert!(
        out.contains(&format!("127.0.0.1:{port} is throttling (NO [")),
        "{out}"
    );
    assert!(out.contains("throttled by the server"), "{out}");
    assert!(
        out.contains("throttled: servers asked to slow down"),
        "{out}"
    );
    let got = stored(&held);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.values().all(|&c| c == 1), "a message twice: {got:?}");
}

#[test]
fn a_server_that_throttles_for_ever_fails_the_import_with_its_reason() {
    let (port, held) = hostile_destination(Appends::RefuseAll, false);
    let dir = into_hostile(port, 3);
    let (code, out) = apply(dir.path(), "3");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("kept throttling"), "{out}");
    assert!(
        out.contains("[UNAVAILABLE] Try again later") || out.contains("[LIMIT]"),
        "{out}"
    );
    assert!(!out.contains("Apply complete"), "{out}");
    assert!(!out.contains("bad item"), "{out}");
    assert!(stored(&held).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Radicale behind a proxy that answers 429

/// A proxy to `upstream` that answers the first `refuse` PUTs `429` with `Retry-After: 1`
/// and passes everything else on, one request per connection.
fn throttling_proxy(upstream: u16, refuse: usize) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(Mutex::new(0usize));
    let count = refused.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = relay(client, upstream, refuse, &count);
            });
        }
    });
    (port, refused)
}

fn relay(
    mut client: TcpStream,
    upstream: u16,
    refuse: usize,
    refused: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(client.try_clone()?);
    loop {
        let mut head = Vec::new();
        loop {
            let start = head.len();
            if r.read_until(b'\n', &mut head)? == 0 {
                return Ok(());
            }
            if &head[start..] == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let length: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        r.read_exact(&mut body)?;
        if text.starts_with("PUT ") {
            let mut n = refused.lock().unwrap();
            if *n < refuse {
                *n += 1;
                client.write_all(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 9\r\n\r\nslow down",
                )?;
                continue;
            }
        }
        // Upstream, one request on its own connection, its answer passed on as it is.
        let head = text
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
            .collect::<Vec<_>>()
            .join("\r\n");
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        up.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        client.write_all(&answer)?;
        // The answer's own framing may be "until the connection closes".
        return Ok(());
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    common::root().join("tests/fixtures/items").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_answered_429_with_retry_after_are_sent_again_and_every_contact_arrives() {
    use mailplan::items::contacts::{self, CardDav, ContactStore, VcardObject, VcardVersion};
    use mailplan::items::store::PutOutcome;
    let server = radicale::Radicale::start();
    let upstream: u16 = server
        .base
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (port, refused) = throttling_proxy(upstream, 3);
    let config = |base: &str| mailplan::items::dav::DavConfig {
        url: format!("{base}alice/contacts/"),
        user: Some("alice".into()),
        password: Some("alicepass".into()),
        ..Default::default()
    };
    let proxied = CardDav::new(
        &config(&format!("http://127.0.0.1:{port}/")),
        VcardVersion::V4,
    )
    .unwrap();
    let (list, bad) = contacts::read_csv(&fixture("contacts.csv")).unwrap();
    assert!(bad.is_empty());
    let (before, _) = mailplan::items::throttle::totals();
    let started = std::time::Instant::now();
    for c in &list {
        let card = VcardObject::new(c, VcardVersion::V4);
        assert_eq!(
            proxied.put(&card, None).await.unwrap(),
            PutOutcome::Created,
            "{}",
            card.vcf
        );
    }
    assert_eq!(*refused.lock().unwrap(), 3);
    let (after, _) = mailplan::items::throttle::totals();
    assert_eq!(after - before, 3);
    // Retry-After: 1 was kept to: at least a second between a refusal and the next PUT.
    assert!(started.elapsed() >= Duration::from_secs(3));
    // Straight from Radicale: every contact, once.
    let direct = CardDav::new(&config(&server.base), VcardVersion::V4).unwrap();
    assert_eq!(direct.list().await.unwrap().len(), list.len());
}
