//! A stand-in of Carbonio's admin SOAP API, for tests only: no Carbonio server can run on the
//! test machines, so this serves, over HTTPS on 127.0.0.1, exactly the requests mailplan sends
//! (`AuthRequest`, `CreateAccountRequest`, `AddAccountAliasRequest`, `ModifyAccountRequest`,
//! `CreateDistributionListRequest`, `AddDistributionListMemberRequest`), in the request and
//! response shapes Carbonio's published SOAP documentation gives, with its faults (SOAP 1.2,
//! `Detail/Error/Code` such as `account.ACCOUNT_EXISTS`). It writes into a real slapd loaded
//! with the Carbonio-like schema, with `ldapmodify`, as Carbonio writes its own LDAP: ids,
//! alias entries and default attributes included. It keeps every request body it received for
//! the golden tests, and can be told to refuse one account, or to answer slowly.
//!
//! It is not Carbonio: it checks only what these requests need (the admin password, the token,
//! names already taken, domains that exist), and it must not be taken for proof that a real
//! Carbonio accepts what mailplan sends beyond those shapes. It touches nothing but its slapd.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_xml::events::Event;

/// The admin account and its password.
pub const ADMIN: &str = "admin@acme.com";
pub const ADMIN_PASSWORD: &str = "Carb0nio-admin!";

/// What the stand-in keeps between requests.
struct State {
    ldap_url: String,
    bind_dn: String,
    bind_password: String,
    base: String,
    /// Bodies received, in order.
    requests: Mutex<Vec<String>>,
    /// Account or list names whose create is refused with a fault.
    refused: Mutex<Vec<String>>,
    /// The token handed out by the last successful AuthRequest.
    token: Mutex<Option<String>>,
    next_id: AtomicU64,
    /// Delay before each write request is carried out.
    delay_ms: AtomicU64,
    /// Requests being carried out right now.
    busy: AtomicUsize,
    stop: AtomicBool,
}

pub struct CarbonioStandIn {
    /// `https://127.0.0.1:PORT/service/admin/soap`
    pub url: String,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl CarbonioStandIn {
    /// Serves HTTPS with `cert`/`key` (PEM), writing into the directory at `ldap_url` under
    /// `base` as `bind_dn`.
    pub fn start(
        ldap_url: &str,
        bind_dn: &str,
        bind_password: &str,
        base: &str,
        cert: &Path,
        key: &Path,
    ) -> CarbonioStandIn {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .expect("read certificate")
                .collect::<Result<_, _>>()
                .expect("parse certificate");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("read key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(State {
            ldap_url: ldap_url.to_string(),
            bind_dn: bind_dn.to_string(),
            bind_password: bind_password.to_string(),
            base: base.to_string(),
            requests: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            token: Mutex::new(None),
            next_id: AtomicU64::new(1),
            delay_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let state = shared.clone();
                        let config = config.clone();
                        std::thread::spawn(move || serve(stream, config, state));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CarbonioStandIn {
            url: format!("https://127.0.0.1:{port}/service/admin/soap"),
            state,
            thread: Some(thread),
            port,
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Refuses the create of `name` (an account or a list) with a `service.PERM_DENIED` fault.
    pub fn refuse(&self, name: &str) {
        self.state.refused.lock().unwrap().push(name.to_string());
    }

    /// Waits until no request is being carried out (one whose client was killed goes on to
    /// the end, as on a real server), at most 30 seconds.
    pub fn wait_idle(&self) {
        let start = std::time::Instant::now();
        while self.state.busy.load(Ordering::SeqCst) > 0
            && start.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits this long before carrying out each write request.
    pub fn slow_down(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for CarbonioStandIn {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, config: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(&mut tls);
    let mut length = 0usize;
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, answer) = if first.starts_with("POST /service/admin/soap ") {
        state.busy.fetch_add(1, Ordering::SeqCst);
        state.requests.lock().unwrap().push(body.clone());
        let answer = match handle(&state, &body) {
            Ok(xml) => (200, envelope(&xml)),
            Err((code, reason)) => (500, fault(&code, &reason)),
        };
        state.busy.fetch_sub(1, Ordering::SeqCst);
        answer
    } else {
        (404, String::new())
    };
    let reply = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        if status == 200 { "OK" } else { "Error" },
        answer.len()
    );
    let _ = tls.write_all(reply.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";

fn envelope(body: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"{SOAP}\"><soap:Header><context xmlns=\"urn:zimbra\"/></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

fn fault(code: &str, reason: &str) -> String {
    envelope(&format!(
        "<soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code><soap:Reason><soap:Text>{}</soap:Text></soap:Reason><soap:Detail><Error xmlns=\"urn:zimbra\"><Code>{code}</Code><Trace>stand-in</Trace></Error></soap:Detail></soap:Fault>",
        esc(reason)
    ))
}

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

type Fault = (String, String);

fn f(code: &str, reason: impl Into<String>) -> Fault {
    (code.to_string(), reason.into())
}

/// A parsed element: local name, attributes, text, children.
#[derive(Default, Debug, Clone)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    kids: Vec<El>,
}

impl El {
    fn kid(&self, name: &str) -> Option<&El> {
        self.kids.iter().find(|k| k.name == name)
    }
    fn kids<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.kids.iter().filter(move |k| k.name == name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse(xml: &str) -> Result<El, String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut stack = vec![El::default()];
    let start = |e: &quick_xml::events::BytesStart<'_>| {
        let mut el = El {
            name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
            ..El::default()
        };
        for a in e.attributes().flatten() {
            el.attrs.push((
                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map(|v| v.into_owned())
                    .unwrap_or_default(),
            ));
        }
        el
    };
    loop {
        match r.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => {
                let el = start(&e);
                stack.last_mut().unwrap().kids.push(el);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(g) => {
                let s = match g.decode().map_err(|e| e.to_string())?.as_ref() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    _ => g
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .unwrap_or_default(),
                };
                stack.last_mut().unwrap().text.push_str(&s);
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced")?;
                stack.last_mut().ok_or("unbalanced")?.kids.push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack
        .pop()
        .and_then(|mut root| root.kids.pop())
        .ok_or_else(|| "empty document".to_string())
}

/// Carries out one request; its response element, or a fault (code, reason).
fn handle(state: &State, body: &str) -> Result<String, Fault> {
    let env = parse(body).map_err(|e| f("service.PARSE_ERROR", e))?;
    let req = env
        .kid("Body")
        .and_then(|b| b.kids.first())
        .ok_or_else(|| f("service.INVALID_REQUEST", "no request in the body"))?
        .clone();
    if req.name == "AuthRequest" {
        let user = req.kid("account").map(|a| a.text.trim().to_string());
        let password = req.kid("password").map(|p| p.text.clone());
        if user.as_deref() != Some(ADMIN) || password.as_deref() != Some(ADMIN_PASSWORD) {
            return Err(f(
                "account.AUTH_FAILED",
                format!("authentication failed for [{}]", user.unwrap_or_default()),
            ));
        }
        let token = format!(
            "0_standin{:08x}",
            state.next_id.fetch_add(1, Ordering::SeqCst) * 7919
        );
        *state.token.lock().unwrap() = Some(token.clone());
        return Ok(format!(
            "<AuthResponse xmlns=\"urn:zimbraAdmin\"><authToken>{token}</authToken><lifetime>43199998</lifetime></AuthResponse>"
        ));
    }
    let sent = env
        .kid("Header")
        .and_then(|h| h.kid("context"))
        .and_then(|c| c.kid("authToken"))
        .map(|t| t.text.trim().to_string());
    if sent.is_none() || sent != *state.token.lock().unwrap() {
        return Err(f("service.AUTH_REQUIRED", "no valid authtoken present"));
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let text = |name: &str| -> Result<String, Fault> {
        req.kid(name)
            .map(|e| e.text.trim().to_string())
            .ok_or_else(|| {
                f(
                    "service.INVALID_REQUEST",
                    format!("missing required element: {name}"),
                )
            })
    };
    let attrs: Vec<(String, String)> = req
        .kids("a")
        .map(|a| (a.attr("n").unwrap_or_default().to_string(), a.text.clone()))
        .collect();
    match req.name.as_str() {
        "CreateAccountRequest" => {
            let name = text("name")?.to_ascii_lowercase();
            let (dn, local) = new_dn(state, &name)?;
            check_refused(state, &name)?;
            if taken(state, &name) {
                return Err(f(
                    "account.ACCOUNT_EXISTS",
                    format!("email address already exists: {name}"),
                ));
            }
            let id = new_id(state);
            let mut ldif = format!(
                "dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: zimbraAccount\nobjectClass: amavisAccount\nuid: {local}\nmail: {name}\nzimbraMailDeliveryAddress: {name}\nzimbraId: {id}\n"
            );
            for (n, v) in &attrs {
                ldif.push_str(&line(n, v));
            }
            for (n, v) in [
                ("zimbraAccountStatus", "active"),
                ("cn", local.as_str()),
                ("sn", local.as_str()),
            ] {
                if !attrs.iter().any(|(a, _)| a.eq_ignore_ascii_case(n)) {
                    ldif.push_str(&line(n, v));
                }
            }
            modify(state, &ldif, &name)?;
            Ok(format!(
                "<CreateAccountResponse xmlns=\"urn:zimbraAdmin\"><account name=\"{}\" id=\"{id}\"/></CreateAccountResponse>",
                esc(&name)
            ))
        }
        "CreateDistributionListRequest" => {
            let name = text("name")?.to_ascii_lowercase();
            let (dn, local) = new_dn(state, &name)?;
            check_refused(state, &name)?;
            if taken(state, &name) {
                let list = !search(
                    state,
                    &format!("(&(objectClass=zimbraDistributionList)(mail={name}))"),
                )
                .is_empty();
                return Err(if list {
                    f(
                        "account.DISTRIBUTION_LIST_EXISTS",
                        format!("email address already exists: {name}"),
                    )
                } else {
                    f(
                        "account.ACCOUNT_EXISTS",
                        format!("email address already exists: {name}"),
                    )
                });
            }
            let id = new_id(state);
            let mut ldif = format!(
                "dn: {dn}\nchangetype: add\nobjectClass: zimbraDistributionList\nobjectClass: zimbraMailRecipient\nuid: {local}\nmail: {name}\nzimbraId: {id}\n"
            );
            for (n, v) in &attrs {
                ldif.push_str(&line(n, v));
            }
            if !attrs
                .iter()
                .any(|(a, _)| a.eq_ignore_ascii_case("zimbraMailStatus"))
            {
                ldif.push_str("zimbraMailStatus: enabled\n");
            }
            // As Carbonio does: a list's own address is also its first zimbraMailAlias.
            if !attrs.iter().any(|(a, v)| {
                a.eq_ignore_ascii_case("zimbraMailAlias") && v.eq_ignore_ascii_case(&name)
            }) {
                ldif.push_str(&line("zimbraMailAlias", &name));
            }
            modify(state, &ldif, &name)?;
            Ok(format!(
                "<CreateDistributionListResponse xmlns=\"urn:zimbraAdmin\"><dl name=\"{}\" id=\"{id}\" dynamic=\"0\"/></CreateDistributionListResponse>",
                esc(&name)
            ))
        }
        "AddAccountAliasRequest" => {
            let id = text("id")?;
            let alias = text("alias")?.to_ascii_lowercase();
            let account = by_id(state, &id, "zimbraAccount")
                .ok_or_else(|| f("account.NO_SUCH_ACCOUNT", format!("no such account: {id}")))?;
            let (dn, local) = new_dn(state, &alias)?;
            if taken(state, &alias) {
                return Err(f(
                    "account.ACCOUNT_EXISTS",
                    format!("email address already exists: {alias}"),
                ));
            }
            let alias_id = new_id(state);
            let ldif = format!(
                "dn: {dn}\nchangetype: add\nobjectClass: zimbraAlias\nuid: {local}\nzimbraId: {alias_id}\nzimbraAliasTargetId: {id}\n\ndn: {account}\nchangetype: modify\nadd: zimbraMailAlias\nzimbraMailAlias: {alias}\n-\nadd: mail\nmail: {alias}\n-\n"
            );
            modify(state, &ldif, &alias)?;
            Ok("<AddAccountAliasResponse xmlns=\"urn:zimbraAdmin\"/>".into())
        }
        "ModifyAccountRequest" => {
            let id = text("id")?;
            let account = by_id(state, &id, "zimbraAccount")
                .ok_or_else(|| f("account.NO_SUCH_ACCOUNT", format!("no such account: {id}")))?;
            let mut ldif = format!("dn: {account}\nchangetype: modify\n");
            // Plain names replace (all their values at once); `+` adds, `-` removes values.
            let mut replaced: Vec<String> = Vec::new();
            for (n, v) in &attrs {
                if let Some(a) = n.strip_prefix('+') {
                    ldif.push_str(&format!("add: {a}\n{}-\n", line(a, v)));
                } else if let Some(a) = n.strip_prefix('-') {
                    ldif.push_str(&format!("delete: {a}\n{}-\n", line(a, v)));
                } else if !replaced.contains(n) {
                    replaced.push(n.clone());
                    ldif.push_str(&format!("replace: {n}\n"));
                    for (m, v) in attrs.iter().filter(|(m, _)| m == n) {
                        if !v.is_empty() {
                            ldif.push_str(&line(m, v));
                        }
                    }
                    ldif.push_str("-\n");
                }
            }
            modify(state, &ldif, &id)?;
            Ok(format!(
                "<ModifyAccountResponse xmlns=\"urn:zimbraAdmin\"><account id=\"{id}\"/></ModifyAccountResponse>"
            ))
        }
        "AddDistributionListMemberRequest" => {
            let id = text("id")?;
            let list = by_id(state, &id, "zimbraDistributionList").ok_or_else(|| {
                f(
                    "account.NO_SUCH_DISTRIBUTION_LIST",
                    format!("no such distribution list: {id}"),
                )
            })?;
            let have = search_attr(state, &list, "zimbraMailForwardingAddress");
            let new: Vec<String> = req
                .kids("dlm")
                .map(|m| m.text.trim().to_string())
                .filter(|m| !have.iter().any(|h| h.eq_ignore_ascii_case(m)))
                .collect();
            // Members already there are allowed: the request is then a no-op for them.
            if !new.is_empty() {
                let mut ldif =
                    format!("dn: {list}\nchangetype: modify\nadd: zimbraMailForwardingAddress\n");
                for m in &new {
                    ldif.push_str(&line("zimbraMailForwardingAddress", m));
                }
                ldif.push_str("-\n");
                modify(state, &ldif, &id)?;
            }
            Ok("<AddDistributionListMemberResponse xmlns=\"urn:zimbraAdmin\"/>".into())
        }
        other => Err(f(
            "service.UNKNOWN_DOCUMENT",
            format!("unknown document: {other}"),
        )),
    }
}

/// One LDIF line, base64 so that any value passes.
fn line(attr: &str, value: &str) -> String {
    use base64::Engine as _;
    format!(
        "{attr}:: {}\n",
        base64::engine::general_purpose::STANDARD.encode(value)
    )
}

fn new_id(state: &State) -> String {
    let n = state.next_id.fetch_add(1, Ordering::SeqCst);
    format!("5c1c1a8e-0000-4000-8000-{:012}", 1000 + n)
}

fn check_refused(state: &State, name: &str) -> Result<(), Fault> {
    if state
        .refused
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(f(
            "service.PERM_DENIED",
            format!("permission denied: cannot create {name}"),
        ));
    }
    Ok(())
}

/// Where Carbonio puts `local@domain`: `uid=local,ou=people` under the domain's entry, which must
/// exist as a `zimbraDomain`.
fn new_dn(state: &State, name: &str) -> Result<(String, String), Fault> {
    let Some((local, domain)) = name.rsplit_once('@') else {
        return Err(f(
            "service.INVALID_REQUEST",
            format!("invalid address: {name}"),
        ));
    };
    let domains = search(
        state,
        &format!("(&(objectClass=zimbraDomain)(zimbraDomainName={domain}))"),
    );
    let Some(domain_dn) = domains.first() else {
        return Err(f(
            "account.NO_SUCH_DOMAIN",
            format!("no such domain: {domain}"),
        ));
    };
    Ok((
        format!("uid={local},ou=people,{domain_dn}"),
        local.to_string(),
    ))
}

fn taken(state: &State, name: &str) -> bool {
    let local = name.split('@').next().unwrap_or_default();
    !search(
        state,
        &format!(
            "(|(mail={name})(zimbraMailDeliveryAddress={name})(zimbraMailAlias={name})(&(objectClass=zimbraAlias)(uid={local})))"
        ),
    )
    .is_empty()
}

fn by_id(state: &State, id: &str, class: &str) -> Option<String> {
    search(state, &format!("(&(objectClass={class})(zimbraId={id}))"))
        .into_iter()
        .next()
}

fn ldapsearch(state: &State, base: &str, scope: &str, filter: &str, attrs: &[&str]) -> String {
    let out = Command::new("ldapsearch")
        .args(["-LLL", "-o", "ldif-wrap=no", "-x", "-H", &state.ldap_url])
        .args(["-D", &state.bind_dn, "-w", &state.bind_password])
        .args(["-b", base, "-s", scope, filter])
        .args(attrs)
        .output()
        .expect("run ldapsearch");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DNs of the entries under the base that match.
fn search(state: &State, filter: &str) -> Vec<String> {
    ldapsearch(state, &state.base, "sub", filter, &["1.1"])
        .lines()
        .filter_map(|l| l.strip_prefix("dn: ").map(str::to_string))
        .collect()
}

fn search_attr(state: &State, dn: &str, attr: &str) -> Vec<String> {
    let prefix = format!("{attr}: ");
    ldapsearch(state, dn, "base", "(objectClass=*)", &[attr])
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// Runs `ldapmodify`; LDAP's refusals become Carbonio's faults.
fn modify(state: &State, ldif: &str, what: &str) -> Result<(), Fault> {
    let mut file = tempfile::NamedTempFile::new().expect("temp LDIF");
    file.write_all(ldif.as_bytes()).expect("write temp LDIF");
    let out = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            &state.ldap_url,
            "-D",
            &state.bind_dn,
            "-w",
            &state.bind_password,
        ])
        .arg("-f")
        .arg(file.path())
        .output()
        .expect("run ldapmodify");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(68) => Err(f(
            "account.ACCOUNT_EXISTS",
            format!("email address already exists: {what}"),
        )),
        Some(32) => Err(f(
            "account.NO_SUCH_ACCOUNT",
            format!("no such account: {what}"),
        )),
        _ => Err(f(
            "service.FAILURE",
            format!(
                "system failure: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}
