//! Servers that misbehave on purpose, as small listeners on 127.0.0.1: one that accepts and never
//! answers, one that announces a length and sends far less, an Active Directory look-alike whose
//! ranged attribute never moves forward. mailplan must give up quickly with an error naming the
//! server and what it waited for, never hang, never loop, never allocate what a peer announced.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mailplan::directory::Dn;
use mailplan::directory::ldap::read_snapshot;
use mailplan::items::dav::{CollectionKind, DavCollection, DavConfig};
use mailplan::spec::{LdapScope, LdapSettings};

/// A listener that accepts every connection and keeps it open without a byte, for as long as
/// the test runs. Returns its port.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// A listener that runs `serve` on every connection, each on a thread of its own.
fn server(serve: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn ldap_settings(port: u16, timeout: Duration) -> LdapSettings {
    LdapSettings {
        url: format!("ldap://127.0.0.1:{port}"),
        bind_dn: None,
        password: None,
        base: Dn::parse("DC=x").unwrap(),
        filter: "(objectClass=*)".into(),
        scope: LdapScope::Sub,
        page_size: 100,
        timeout,
        starttls: false,
        ca_file: None,
        insecure: false,
        sasl_external: false,
    }
}

#[test]
fn an_ldap_server_that_never_answers_is_given_up_on_quickly_by_name() {
    let port = silent_server();
    let started = Instant::now();
    let e = read_snapshot(&ldap_settings(port, Duration::from_millis(300))).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("`ldap://127.0.0.1:{port}`")),
        "names the server: {text}"
    );
    assert!(
        text.contains("no answer within 0.3 s while waiting for the answer to the bind"),
        "says what it waited for: {text}"
    );
    assert!(text.contains("tried 3 times"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// BER as a server sends it: a tag, a definite length (long form when needed), the contents.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        out.push(0x84);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// One LDAP request read off `s`: its message ID, operation tag and raw bytes.
fn request(s: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let mut n = vec![0u8; usize::from(head[1] & 0x7f)];
        s.read_exact(&mut n).ok()?;
        n.iter().fold(0, |a, &b| (a << 8) | usize::from(b))
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    // SEQUENCE { INTEGER id (one byte in these tests), op ... }
    let id = body[2];
    let op = body[3];
    Some((id, op, body))
}

fn message(id: u8, op: Vec<u8>) -> Vec<u8> {
    let mut inner = tlv(0x02, &[id]);
    inner.extend(op);
    tlv(0x30, &inner)
}

/// An LDAPResult of `tag` with this code.
fn result(tag: u8, code: u8) -> Vec<u8> {
    let mut r = tlv(0x0a, &[code]);
    r.extend(tlv(0x04, b""));
    r.extend(tlv(0x04, b""));
    tlv(tag, &r)
}

/// A SearchResultEntry: `CN=g,DC=x` with `member;range=0-1` and two values, whatever was asked.
fn ranged_entry() -> Vec<u8> {
    let values: Vec<u8> = [&b"CN=a,DC=x"[..], b"CN=b,DC=x"]
        .iter()
        .flat_map(|v| tlv(0x04, v))
        .collect();
    let mut attr = tlv(0x04, b"member;range=0-1");
    attr.extend(tlv(0x31, &values));
    let mut body = tlv(0x04, b"CN=g,DC=x");
    body.extend(tlv(0x30, &tlv(0x30, &attr)));
    tlv(0x64, &body)
}

/// An Active Directory look-alike: binds anyone, and answers every search with the first range
/// of a group's members, whichever range was asked for.
fn stuck_ranges(mut s: TcpStream) {
    while let Some((id, op, _)) = request(&mut s) {
        let answer = match op {
            0x60 => message(id, result(0x61, 0)),
            0x63 => {
                let mut a = message(id, ranged_entry());
                a.extend(message(id, result(0x65, 0)));
                a
            }
            _ => return,
        };
        if s.write_all(&answer).is_err() {
            return;
        }
    }
}

#[test]
fn a_ranged_attribute_that_does_not_move_forward_is_refused_not_looped() {
    let port = server(stuck_ranges);
    let started = Instant::now();
    let e = read_snapshot(&ldap_settings(port, Duration::from_secs(5))).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("the values of `member` of `CN=g,DC=x` cannot be read whole")
            && text.contains(
                "asked for the values from 2 on, the server answered with those from 0 on"
            ),
        "{text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Binds anyone, then answers a search with the header of a message of almost a gigabyte and
/// ten bytes of it, and goes silent.
fn lying_length(mut s: TcpStream) {
    while let Some((id, op, _)) = request(&mut s) {
        match op {
            0x60 => {
                let _ = s.write_all(&message(id, result(0x61, 0)));
            }
            _ => {
                let _ = s.write_all(&[0x30, 0x84, 0x3f, 0xff, 0xff, 0xf0]);
                let _ = s.write_all(&[0x04; 10]);
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
        }
    }
}

#[test]
fn an_ldap_server_lying_about_a_length_is_given_up_on_without_waiting_for_it() {
    let port = server(lying_length);
    let started = Instant::now();
    let e = read_snapshot(&ldap_settings(port, Duration::from_millis(500))).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("no answer within 0.5 s while waiting for the results of the search"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn dav(port: u16, timeout: Duration) -> DavCollection {
    DavCollection::new(
        &DavConfig {
            url: format!("http://127.0.0.1:{port}/alice/calendar/"),
            timeout,
            ..Default::default()
        },
        CollectionKind::Calendar,
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_dav_server_that_never_answers_is_given_up_on_quickly_by_name() {
    let port = silent_server();
    let started = Instant::now();
    let e = runtime()
        .block_on(dav(port, Duration::from_millis(300)).list())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "REPORT http://127.0.0.1:{port}/alice/calendar/ failed"
        )),
        "{text}"
    );
    assert!(
        text.contains("no answer in time while waiting for the connection and the answer's headers (0.3 s for each read"),
        "{text}"
    );
    assert!(text.contains("tried 3 times"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Answers with a body it says is ten gigabytes long, sends a few bytes of it, and goes silent.
fn lying_body(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let _ = s.write_all(
        b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 10737418240\r\n\r\n<?xml version=",
    );
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn a_dav_answer_longer_than_it_arrives_is_given_up_on_by_the_read_deadline() {
    let port = server(lying_body);
    let started = Instant::now();
    let e = runtime()
        .block_on(dav(port, Duration::from_millis(300)).list())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("while waiting for the rest of the answer's body"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Sends an answer's headers one byte at a time, each just inside the read deadline: only the
/// deadline on the whole exchange ends it.
fn slow_drip(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    for b in b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 5\r\n\r\nhello".iter() {
        std::thread::sleep(Duration::from_millis(150));
        if s.write_all(&[*b]).is_err() {
            return;
        }
    }
}

#[test]
fn a_dav_server_dripping_its_answer_is_bounded_by_the_whole_exchange() {
    let port = server(slow_drip);
    let started = Instant::now();
    let e = runtime()
        .block_on(dav(port, Duration::from_millis(200)).list())
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("no answer in time"), "{text}");
    // Three attempts of at most ten times the deadline each, and the pauses between them.
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The quickstart plan in a folder of its own, its data read from the examples, with `edit`
/// applied to its text.
fn quickstart_with(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = std::fs::read_to_string(root.join("plans/quickstart.yaml")).unwrap();
    let data = root.join("data");
    let text = text
        .replace("../data/", &format!("{}/", data.display()))
        .replace("../out/", &format!("{}/out/", dir.display()));
    let path = dir.join("plan.yaml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn connections_that_give_secrets_away_are_warned_about_naming_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the plan fails to list the collections, after the warnings.
    let silent = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = quickstart_with(dir.path(), |text| {
        text.replace(
            &format!("      ics_folder: \"{}/out/calendars/{{primary_smtp}}\"", dir.path().display()),
            &format!(
                "      caldav: {{ url: \"http://127.0.0.1:{silent}/{{primary_smtp}}/calendar/\", login: admin, password: {{ env: MAILPLAN_TEST_DAV }}, timeout: 1 }}"
            ),
        )
        .replace(
            &format!("      vcard_folder: \"{}/out/contacts/{{primary_smtp}}\"", dir.path().display()),
            &format!(
                "      carddav: {{ url: \"https://127.0.0.1:{silent}/{{primary_smtp}}/contacts/\", insecure: true, timeout: 1 }}"
            ),
        )
    });
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(
        text.contains("caldav:") && text.contains("carddav:"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailplan"))
        .args(["plan", plan.to_str().unwrap()])
        .env("MAILPLAN_TEST_DAV", "secret")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: CalDAV server `http://127.0.0.1:{silent}/{{…}}/calendar/`: the password is sent without TLS"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: CardDAV server `https://127.0.0.1:{silent}/{{…}}/contacts/`: TLS certificates are NOT verified (insecure: true)"
        )),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}
