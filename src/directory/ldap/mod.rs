//! A live LDAP directory as a `Snapshot`: connect, bind, read every entry with paged searches.
//!
//! This is the read side of the `ldap:` backend, on tokio. Whole directories are read on a
//! connection of mailplan's own (`wire`, `open`); the write side's connections and apply's reads
//! before each write are ldap3's (`connect`, `read_entries_on`). Both turn search results into
//! the same `Entry` values the LDIF reader builds (attribute names as the server spells them,
//! values as raw bytes, so binary attributes such as objectGUID stay exact), so matching and
//! planning cannot tell where a snapshot came from. Search references (Active Directory answers
//! searches from a domain root with references to its other partitions) are skipped and counted;
//! Active Directory's ranged attributes (`member;range=0-1499`) are fetched whole. Any other
//! incomplete answer (size limit, a partial page) is an error, never a smaller snapshot: planning
//! against half a directory would create duplicates.
//! Connection setup lives here too, because the write side (`apply::ldap`) connects the same way.
//! This module must not decide anything about the entries it reads.

mod ber;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::StructureTag;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope};
use smallvec::SmallVec;

use crate::directory::snapshot::{Builder, Organised};
use crate::directory::{AttrName, Dn, Entry, Snapshot, Value, ValueSet};
use crate::spec::{LdapScope, LdapSettings, SecretError};

/// Why a live directory could not be reached or read. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapError {
    #[error("the password for `{who}` cannot be read: {source}")]
    Password { who: String, source: SecretError },
    #[error("cannot read the CA file `{path}`: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("cannot connect to `{url}`: {message}")]
    Connect { url: String, message: String },
    #[error("the TLS certificate of `{url}` is not trusted: {message}")]
    Certificate { url: String, message: String },
    #[error("`{url}` refused the bind as `{who}`: {message}")]
    Bind {
        url: String,
        who: String,
        message: String,
    },
    #[error("searching `{base}` on `{url}` failed: {message}")]
    Search {
        url: String,
        base: String,
        message: String,
    },
    #[error("`{url}` sent an entry that cannot be read: {message}")]
    Malformed { url: String, message: String },
}

impl LdapError {
    /// What a user should do about it.
    pub fn help(&self) -> &'static str {
        match self {
            LdapError::Password { .. } => {
                "set the environment variable or create the file named in `password:`"
            }
            LdapError::CaFile { .. } => "`ca_file:` must name a readable PEM file",
            LdapError::Connect { .. } => {
                "check `url:` (host and port) and that the server is running and reachable"
            }
            LdapError::Certificate { .. } => {
                "give the CA that signed the server's certificate in `ca_file:`, and connect by the name the certificate is issued to; `insecure: true` skips the check (not for production)"
            }
            LdapError::Bind { .. } => {
                "check `bind_dn:` and the password (on Active Directory a userPrincipalName such as `admin@example.com` works too)"
            }
            LdapError::Search { .. } => {
                "check `base:` and `filter:`, and that the bind user may read them (a size limit needs a larger `size.pr`/MaxPageSize or a smaller `page_size:`)"
            }
            LdapError::Malformed { .. } => "the server's answer does not follow RFC 4511",
        }
    }
}

/// What a read saw besides the entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub entries: usize,
    /// Search references (referrals to other servers or partitions) that were skipped.
    pub references_skipped: usize,
    /// Attributes that came in ranges and were fetched whole.
    pub ranged_attributes: usize,
}

/// The label an error names the bind user by.
pub fn who(settings: &LdapSettings) -> String {
    match (&settings.bind_dn, settings.sasl_external) {
        (Some(dn), _) => dn.clone(),
        (None, true) => "SASL EXTERNAL".into(),
        (None, false) => "anonymous".into(),
    }
}

/// The bind password, read from where the plan file says; none for anonymous and SASL binds.
fn password(settings: &LdapSettings) -> Result<String, LdapError> {
    match (&settings.bind_dn, &settings.password) {
        (Some(_), Some(secret)) => secret.resolve().map_err(|source| LdapError::Password {
            who: who(settings),
            source,
        }),
        _ => Ok(String::new()),
    }
}

/// Opens one connection of ldap3's, as the write side uses, and binds as the plan file says.
pub async fn connect(settings: &LdapSettings) -> Result<Ldap, LdapError> {
    let url = settings.url.clone();
    let mut conn = LdapConnSettings::new()
        .set_conn_timeout(settings.timeout)
        .set_starttls(settings.starttls)
        .set_no_tls_verify(settings.insecure);
    if uses_tls(settings) {
        conn = conn.set_config(tls_config(settings)?);
    }
    let password = password(settings)?;
    let (driver, mut ldap) = LdapConnAsync::with_settings(conn, &url)
        .await
        .map_err(|e| connect_error(&url, &e, settings.timeout))?;
    ldap3::drive!(driver);
    let bound = if settings.sasl_external {
        ldap.with_timeout(settings.timeout)
            .sasl_external_bind()
            .await
    } else {
        ldap.with_timeout(settings.timeout)
            .simple_bind(settings.bind_dn.as_deref().unwrap_or(""), &password)
            .await
    };
    match bound {
        Ok(r) if r.rc == 0 => Ok(ldap),
        Ok(r) => Err(LdapError::Bind {
            url,
            who: who(settings),
            message: result_message(r.rc, &r.text),
        }),
        Err(e) => Err(connect_error(&url, &e, settings.timeout)),
    }
}

/// Whether a connection to `settings.url` uses TLS (ldaps://, or StartTLS): only then are the
/// system's roots worth loading.
fn uses_tls(settings: &LdapSettings) -> bool {
    settings.starttls
        || matches!(
            wire::Address::parse(&settings.url),
            Ok(wire::Address::Tcp { tls: true, .. })
        )
}

/// The TLS set-up of this directory, as `crate::tls` makes it for every protocol.
fn tls_config(settings: &LdapSettings) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    crate::tls::client_config(settings.ca_file.as_deref(), settings.insecure).map_err(|e| match e {
        crate::tls::TlsError::CaFile { path, message } => LdapError::CaFile { path, message },
        crate::tls::TlsError::Setup(message) => LdapError::Connect {
            url: settings.url.clone(),
            message,
        },
    })
}

/// How often opening the read connection is tried when the server cannot be reached or does
/// not answer in time: connecting and binding change nothing, so trying again is safe.
const OPEN_ATTEMPTS: u32 = 3;

/// Opens the connection a read runs on (`wire`) and binds as the plan file says. The TLS roots
/// are loaded only when the connection uses TLS. A connection that fails or times out is tried
/// again (`OPEN_ATTEMPTS` in all); a refused bind or an untrusted certificate is not.
async fn open(settings: &LdapSettings) -> Result<wire::Connection, LdapError> {
    let url = settings.url.clone();
    let address = wire::Address::parse(&url).map_err(|message| LdapError::Connect {
        url: url.clone(),
        message,
    })?;
    let tls = if uses_tls(settings) {
        Some(wire::TlsSetup::new(tls_config(settings)?))
    } else {
        None
    };
    let password = password(settings)?;
    let mut attempt = 1;
    loop {
        match open_once(settings, &address, tls.as_ref(), &password).await {
            Ok(conn) => return Ok(conn),
            Err(Failed::Io(_)) if attempt < OPEN_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt - 1)).await;
                attempt += 1;
            }
            Err(Failed::Io(message)) => {
                let message = if attempt > 1 {
                    format!("{message} (tried {attempt} times)")
                } else {
                    message
                };
                return Err(classify_connect_error(&url, message));
            }
            Err(Failed::Other(e)) => return Err(e),
        }
    }
}

/// Why one attempt at opening the read connection failed: the connection (worth another try
/// unless it is the certificate), or anything else.
enum Failed {
    Io(String),
    Other(LdapError),
}

async fn open_once(
    settings: &LdapSettings,
    address: &wire::Address,
    tls: Option<&wire::TlsSetup>,
    password: &str,
) -> Result<wire::Connection, Failed> {
    let url = &settings.url;
    let failed = |e: wire::WireError| match e {
        wire::WireError::Io(m) => match classify_connect_error(url, m) {
            LdapError::Connect { message, .. } => Failed::Io(message),
            certificate => Failed::Other(certificate),
        },
        e => Failed::Other(wire_connect_error(url, e)),
    };
    let mut conn = wire::Connection::open(address, tls, settings.starttls, settings.timeout)
        .await
        .map_err(failed)?;
    let bound = if settings.sasl_external {
        conn.sasl_external_bind().await
    } else {
        conn.simple_bind(settings.bind_dn.as_deref().unwrap_or(""), password)
            .await
    };
    match bound {
        Ok(()) => Ok(conn),
        Err(wire::WireError::Result { code, message }) => Err(Failed::Other(LdapError::Bind {
            url: url.clone(),
            who: who(settings),
            message: result_message(code, &message),
        })),
        Err(e) => Err(failed(e)),
    }
}

fn wire_connect_error(url: &str, e: wire::WireError) -> LdapError {
    let message = match e {
        wire::WireError::Io(m) | wire::WireError::Malformed(m) => m,
        wire::WireError::Result { code, message } => result_message(code, &message),
    };
    classify_connect_error(url, message)
}

fn connect_error(url: &str, e: &ldap3::LdapError, timeout: Duration) -> LdapError {
    match e {
        ldap3::LdapError::Timeout { .. } => LdapError::Connect {
            url: url.into(),
            message: timed_out(timeout, "the connection and the bind"),
        },
        e => classify_connect_error(url, error_text(e)),
    }
}

/// What a deadline that passed says: how long was waited, for what, and which setting it is.
pub fn timed_out(timeout: Duration, what: &str) -> String {
    format!(
        "no answer within {} s while waiting for {what} (the `timeout:` setting)",
        timeout.as_secs_f64()
    )
}

/// A failed connection is a certificate problem when the TLS layer says so.
fn classify_connect_error(url: &str, message: String) -> LdapError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        LdapError::Certificate {
            url: url.into(),
            message,
        }
    } else {
        LdapError::Connect {
            url: url.into(),
            message,
        }
    }
}

/// An ldap3 error with its causes, which carry the useful part (the I/O or TLS reason).
pub fn error_text(e: &ldap3::LdapError) -> String {
    if let ldap3::LdapError::LdapResult { result } = e {
        return result_message(result.rc, &result.text);
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// An LDAP result code with its name and the server's own message.
pub fn result_message(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        68 => "entryAlreadyExists",
        80 => "other",
        122 => "assertionFailed",
        _ => "",
    };
    let text = text.trim_end_matches('\0').trim();
    match (name, text.is_empty()) {
        ("", true) => format!("result code {rc}"),
        ("", false) => format!("result code {rc}: {text}"),
        (n, true) => format!("{n} ({rc})"),
        (n, false) => format!("{n} ({rc}): {text}"),
    }
}

/// Reads every entry the settings select, handing each to `push` as soon as it is whole.
pub async fn read_into(
    settings: &LdapSettings,
    push: &mut dyn FnMut(Entry),
) -> Result<ReadStats, LdapError> {
    let mut conn = open(settings).await?;
    let result = read_all(&mut conn, settings, push)
        .await
        .map_err(|f| match f {
            SearchFailure::Malformed(message) => LdapError::Malformed {
                url: settings.url.clone(),
                message,
            },
            f => LdapError::Search {
                url: settings.url.clone(),
                base: settings.base.to_string(),
                message: f.to_string(),
            },
        });
    conn.unbind().await;
    result
}

/// Why a search on an open connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchFailure {
    /// The server answered with this result code and message.
    #[error("{}", result_message(*.0, .1))]
    Code(u32, String),
    /// The connection failed (reset, closed, timed out).
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Malformed(String),
}

fn failure(e: &ldap3::LdapError, timeout: Duration) -> SearchFailure {
    match e {
        ldap3::LdapError::LdapResult { result } => {
            SearchFailure::Code(result.rc, result.text.clone())
        }
        ldap3::LdapError::Timeout { .. } => {
            SearchFailure::Connection(timed_out(timeout, "the results of the search"))
        }
        e => SearchFailure::Connection(error_text(e)),
    }
}

impl From<wire::WireError> for SearchFailure {
    fn from(e: wire::WireError) -> Self {
        match e {
            wire::WireError::Io(m) => SearchFailure::Connection(m),
            wire::WireError::Malformed(m) => SearchFailure::Malformed(m),
            wire::WireError::Result { code, message } => SearchFailure::Code(code, message),
        }
    }
}

fn wire_scope(s: LdapScope) -> wire::Scope {
    match s {
        LdapScope::Base => wire::Scope::Base,
        LdapScope::One => wire::Scope::One,
        LdapScope::Sub => wire::Scope::Sub,
    }
}

/// Runs the search the settings describe, paged unless it reads one entry, and hands each
/// entry to `push`: at once, or, when some of its attributes came in ranges, once the rest of
/// them is read after the search.
async fn read_all(
    conn: &mut wire::Connection,
    settings: &LdapSettings,
    push: &mut dyn FnMut(Entry),
) -> Result<ReadStats, SearchFailure> {
    let base = settings.base.to_string();
    let page = match settings.scope {
        LdapScope::Base => None,
        _ => Some(i32::try_from(settings.page_size).unwrap_or(i32::MAX)),
    };
    let mut stats = ReadStats::default();
    let mut names = Names::default();
    let mut ranged: Vec<(Entry, Vec<(String, u64)>)> = Vec::new();
    conn.search(
        &base,
        wire_scope(settings.scope),
        &settings.filter,
        &["*"],
        page,
        &mut |found| {
            match found {
                wire::Found::Reference => stats.references_skipped += 1,
                wire::Found::Entry(body) => {
                    let parsed = read_entry(body, &mut names)?;
                    stats.entries += 1;
                    let incomplete = parsed.incomplete();
                    if incomplete.is_empty() {
                        push(parsed.entry);
                    } else {
                        ranged.push((parsed.entry, incomplete));
                    }
                }
            }
            Ok(())
        },
    )
    .await?;
    for (mut entry, incomplete) in ranged {
        let dn = entry.dn.to_string();
        for (attr, low) in incomplete {
            stats.ranged_attributes += 1;
            let values = read_rest(conn, &dn, &attr, low, None).await?;
            let name = AttrName::new_unchecked(&attr);
            for v in values {
                entry.add(name.clone(), v);
            }
        }
        push(entry);
    }
    Ok(stats)
}

/// Reads one entry (base scope) on a connection of ldap3's, as apply does before it writes, and
/// completes its ranged attributes.
pub async fn read_entries_on(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<Vec<Entry>, SearchFailure> {
    let base = settings.base.to_string();
    let (results, _) = ldap
        .with_timeout(settings.timeout)
        .search(&base, Scope::Base, &settings.filter, vec!["*"])
        .await
        .map_err(|e| failure(&e, settings.timeout))?
        .success()
        .map_err(|e| failure(&e, settings.timeout))?;
    let mut entries = Vec::new();
    for re in results {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        let parsed = parse_entry(re, &mut Names::default()).map_err(SearchFailure::Malformed)?;
        let incomplete = parsed.incomplete();
        let mut entry = parsed.entry;
        let dn = entry.dn.to_string();
        for (attr, low) in incomplete {
            let mut rest = RangeFetch::new(&attr, low, None);
            while let Some(wanted) = rest.wanted() {
                let (results, _) = ldap
                    .with_timeout(settings.timeout)
                    .search(&dn, Scope::Base, "(objectClass=*)", vec![wanted.as_str()])
                    .await
                    .map_err(|e| failure(&e, settings.timeout))?
                    .success()
                    .map_err(|e| failure(&e, settings.timeout))?;
                let answer = match results.into_iter().next() {
                    Some(re) => Some(
                        parse_entry(re, &mut Names::default()).map_err(SearchFailure::Malformed)?,
                    ),
                    None => None,
                };
                rest.take(&dn, answer)?;
            }
            let name = AttrName::new_unchecked(&attr);
            for v in rest.values {
                entry.add(name.clone(), v);
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The rest of a ranged attribute, from value `low` on (Active Directory's incremental
/// retrieval: ask for `attr;range=low-*` until the server answers with a range ending in `*`).
/// The caller runs the searches, on whichever connection it reads with.
struct RangeFetch {
    attr: String,
    /// The next value to ask for; `None` once the last range has come.
    low: Option<u64>,
    /// How many values to ask for at a time; `None` leaves it to the server.
    step: Option<u64>,
    values: Vec<Value>,
}

impl RangeFetch {
    fn new(attr: &str, low: u64, step: Option<u64>) -> Self {
        RangeFetch {
            attr: attr.to_string(),
            low: Some(low),
            step,
            values: Vec::new(),
        }
    }

    /// The attribute to ask for next, or `None` when every value is in.
    fn wanted(&self) -> Option<String> {
        let low = self.low?;
        Some(match self.step {
            Some(n) => format!(
                "{};range={low}-{}",
                self.attr,
                low.saturating_add(n.max(1) - 1)
            ),
            None => format!("{};range={low}-*", self.attr),
        })
    }

    /// Takes the entry the last search returned (`None`: it returned none). Each answer must
    /// start where it was asked to and bring new values: a server that answers a range it was
    /// not asked for, or says more values follow without sending any, would otherwise be asked
    /// again and again, for ever.
    fn take(&mut self, dn: &str, answer: Option<Parsed>) -> Result<(), SearchFailure> {
        let Some(parsed) = answer else {
            return Err(SearchFailure::Malformed(format!(
                "`{dn}` disappeared while its `{}` was read",
                self.attr
            )));
        };
        let Some(low) = self.low else {
            return Ok(());
        };
        let name = AttrName::new_unchecked(&self.attr);
        let values = parsed.entry.attrs.get(&name);
        let count = values.map_or(0, |set| set.len());
        let refuse = |why: String| {
            Err(SearchFailure::Malformed(format!(
                "the values of `{}` of `{dn}` cannot be read whole: {why}; not asked again",
                self.attr
            )))
        };
        let ranged = parsed
            .ranges
            .iter()
            .find(|r| r.attr.eq_ignore_ascii_case(&self.attr));
        self.low = match ranged {
            // No range: these are the last values (or there are none).
            None => None,
            Some(r) if r.from != low => {
                return refuse(format!(
                    "asked for the values from {low} on, the server answered with those from {} on",
                    r.from
                ));
            }
            Some(Ranged { next: None, .. }) => None,
            Some(Ranged {
                next: Some(next), ..
            }) if count == 0 || *next <= low => {
                return refuse(format!(
                    "asked for the values from {low} on, the server sent none but says more follow"
                ));
            }
            Some(Ranged {
                next: Some(next), ..
            }) => Some(*next),
        };
        if let Some(set) = values {
            self.values.extend(set.iter().cloned());
        }
        Ok(())
    }
}

/// The values of a ranged attribute from `low` on, read on a connection of `wire`'s.
async fn read_rest(
    conn: &mut wire::Connection,
    dn: &str,
    attr: &str,
    low: u64,
    step: Option<u64>,
) -> Result<Vec<Value>, SearchFailure> {
    let mut rest = RangeFetch::new(attr, low, step);
    while let Some(wanted) = rest.wanted() {
        let answer = read_base(conn, dn, &wanted).await?;
        rest.take(dn, answer)?;
    }
    Ok(rest.values)
}

/// The one entry a base-scope search for `attr` returns, on a connection of `wire`'s.
async fn read_base(
    conn: &mut wire::Connection,
    dn: &str,
    attr: &str,
) -> Result<Option<Parsed>, SearchFailure> {
    let mut first = None;
    conn.search(
        dn,
        wire::Scope::Base,
        "(objectClass=*)",
        &[attr],
        None,
        &mut |found| {
            if let (wire::Found::Entry(body), true) = (found, first.is_none()) {
                first = Some(read_entry(body, &mut Names::default())?);
            }
            Ok(())
        },
    )
    .await?;
    Ok(first)
}

/// Reads one attribute of one entry in ranges of `step` values, the way the reader continues
/// a ranged attribute. Servers that cap values per answer (AD at 1,500) do this on their own;
/// asking for small ranges shows the same exchange on any server that supports ranges.
pub async fn read_attribute_in_ranges(
    settings: &LdapSettings,
    dn: &Dn,
    attr: &str,
    step: u64,
) -> Result<Vec<Value>, LdapError> {
    let mut conn = open(settings).await?;
    let dn = dn.to_string();
    let result = read_rest(&mut conn, &dn, attr, 0, Some(step)).await;
    conn.unbind().await;
    result.map_err(|f| LdapError::Search {
        url: settings.url.clone(),
        base: dn.clone(),
        message: f.to_string(),
    })
}

#[derive(Debug)]
struct Parsed {
    entry: Entry,
    /// The attributes that came in ranges.
    ranges: Vec<Ranged>,
}

/// An attribute that came in a range (`member;range=1500-2999`).
#[derive(Debug)]
struct Ranged {
    attr: String,
    /// The index of the first value this answer holds.
    from: u64,
    /// The index of the next value to ask for; `None` when these were the last (`1500-*`).
    next: Option<u64>,
}

impl Parsed {
    /// An entry named by the DN the server sent, with no attributes yet.
    fn start(dn: &[u8]) -> Result<(Parsed, &str), String> {
        let text = std::str::from_utf8(dn)
            .map_err(|_| "malformed search result entry: the DN is not UTF-8".to_string())?;
        let dn = Dn::parse(text).map_err(|e| format!("the DN `{text}` is not valid: {e}"))?;
        let parsed = Parsed {
            entry: Entry::new(dn),
            ranges: Vec::new(),
        };
        Ok((parsed, text))
    }

    /// Ranged attributes that are not complete yet, with the index of the next value to ask for.
    fn incomplete(&self) -> Vec<(String, u64)> {
        self.ranges
            .iter()
            .filter_map(|r| Some((r.attr.clone(), r.next?)))
            .collect()
    }

    /// Adds an attribute as the server sent it: its name on the wire, which may carry a range,
    /// and its values.
    fn attribute(
        &mut self,
        names: &mut Names,
        dn: &str,
        raw_name: &[u8],
        values: SmallVec<[Value; 1]>,
    ) -> Result<(), String> {
        let (attr, range) = names.attr(raw_name, dn)?;
        let count = values.len() as u64;
        if let Some((low, high)) = range {
            // `member;range=0-1499`: more values follow from 1500 on; `1500-*`: no more.
            let next = high.map(|high| {
                high.max(low.saturating_add(count.saturating_sub(1)))
                    .saturating_add(1)
            });
            self.ranges.push(Ranged {
                attr: attr.as_str().to_string(),
                from: low,
                next,
            });
        }
        self.entry
            .attrs
            .add_all(attr, ValueSet::from_values(values));
        Ok(())
    }
}

/// The attribute names one read has met, by the bytes the server sent: a directory repeats a
/// few dozen names millions of times, and each is then checked and interned once. Ranged names
/// (`member;range=0-1499`) are not kept: their range differs from entry to entry.
#[derive(Default)]
struct Names(rustc_hash::FxHashMap<Vec<u8>, AttrName>);

impl Names {
    /// Far more than any schema has; past it, names are checked each time (a server sending
    /// endless new names costs time, not memory).
    const MAX: usize = 4096;

    /// The attribute a name on the wire stands for, and its range when it is ranged.
    fn attr(&mut self, raw: &[u8], dn: &str) -> Result<(AttrName, Option<Range>), String> {
        if let Some(attr) = self.0.get(raw) {
            return Ok((attr.clone(), None));
        }
        let name = std::str::from_utf8(raw)
            .map_err(|_| "malformed search result entry: an attribute has no name".to_string())?;
        let (base_name, range) = split_range(name);
        let attr = AttrName::new(base_name)
            .map_err(|e| format!("`{dn}` has an attribute `{name}` that is not valid: {e}"))?;
        if range.is_none() && self.0.len() < Self::MAX {
            self.0.insert(raw.to_vec(), attr.clone());
        }
        Ok((attr, range))
    }
}

/// Where a ranged attribute's values start, and end (`None`: they are the last ones).
type Range = (u64, Option<u64>);

/// A SearchResultEntry's contents as `wire` hands them over, read without trusting them.
fn read_entry(body: &[u8], names: &mut Names) -> Result<Parsed, String> {
    let bad = |e: ber::BerError| format!("malformed search result entry: {e}");
    let mut r = ber::Reader::new(body);
    let dn = r.expect(ber::tag::OCTET_STRING, "no DN").map_err(bad)?;
    let (mut parsed, dn_text) = Parsed::start(dn)?;
    let mut attrs = ber::Reader::new(
        r.expect(ber::tag::SEQUENCE, "no attribute list")
            .map_err(bad)?,
    );
    while !attrs.is_empty() {
        let mut pa = ber::Reader::new(
            attrs
                .expect(ber::tag::SEQUENCE, "an attribute is not a sequence")
                .map_err(bad)?,
        );
        let name = pa
            .expect(ber::tag::OCTET_STRING, "an attribute has no name")
            .map_err(bad)?;
        let mut vals = ber::Reader::new(
            pa.expect(ber::tag::SET, "an attribute has no value set")
                .map_err(bad)?,
        );
        let mut values = SmallVec::new();
        while !vals.is_empty() {
            let v = vals
                .expect(ber::tag::OCTET_STRING, "a value is not a string")
                .map_err(bad)?;
            values.push(Value::bytes(v));
        }
        parsed.attribute(names, dn_text, name, values)?;
    }
    Ok(parsed)
}

/// A SearchResultEntry from ldap3, read without trusting it (ldap3's own conversion panics on
/// bad input).
fn parse_entry(re: ResultEntry, names: &mut Names) -> Result<Parsed, String> {
    let bad = |what: &str| format!("malformed search result entry: {what}");
    let mut parts =
        re.0.match_id(4)
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| bad("not an entry"))?
            .into_iter();
    let dn_bytes = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or_else(|| bad("no DN"))?;
    let (mut parsed, dn_text) = Parsed::start(&dn_bytes)?;
    let attrs = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| bad("no attribute list"))?;
    for a in attrs {
        let mut pa = a
            .expect_constructed()
            .ok_or_else(|| bad("an attribute is not a sequence"))?
            .into_iter();
        let raw = pa
            .next()
            .and_then(StructureTag::expect_primitive)
            .ok_or_else(|| bad("an attribute has no name"))?;
        let values = pa
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| bad("an attribute has no value set"))?;
        let mut set = SmallVec::with_capacity(values.len());
        for v in values {
            match v.expect_primitive() {
                Some(bytes) => set.push(Value::bytes(bytes)),
                None => return Err(bad("a value is not a string")),
            }
        }
        parsed.attribute(names, dn_text, &raw, set)?;
    }
    Ok(parsed)
}

/// `member;range=0-1499` is `member` from value 0 to 1499; `member;range=1500-*` is the last
/// part. Other options (`;binary`, `;lang-de`) stay part of the name.
fn split_range(name: &str) -> (&str, Option<Range>) {
    // Every attribute name of every entry comes through here: no copy to search in.
    const RANGE: &[u8] = b";range=";
    let Some(at) = name
        .as_bytes()
        .windows(RANGE.len())
        .position(|w| w.eq_ignore_ascii_case(RANGE))
    else {
        return (name, None);
    };
    let spec = &name[at + ";range=".len()..];
    let Some((low, high)) = spec.split_once('-') else {
        return (name, None);
    };
    let Ok(low) = low.parse::<u64>() else {
        return (name, None);
    };
    let high = if high == "*" {
        None
    } else {
        match high.parse::<u64>() {
            Ok(h) => Some(h),
            Err(_) => return (name, None),
        }
    };
    (&name[..at], Some((low, high)))
}

/// Reads a live directory into a snapshot, from synchronous code (the loaders run on plain
/// threads); a small runtime of its own drives the connection.
pub fn read_snapshot(settings: &LdapSettings) -> Result<(Snapshot, ReadStats), ReadSnapshotError> {
    let (organised, stats) = read_organised(settings, Builder::new(None, |_| ()))?;
    Ok((organised.snapshot, stats))
}

/// [`read_snapshot`], with each entry organised by `builder` as it arrives (see
/// [`Builder`]): its lookups and tags come with the snapshot.
///
/// The builder works on a thread of its own, fed batches of entries as they are decoded: the
/// read goes only as fast as the thread that decodes keeps up with the server, and the server
/// waits for the request of each page until the last page is decoded, so that thread does
/// nothing else.
pub fn read_organised<T: Copy + Send, F: FnMut(&Entry) -> T + Send>(
    settings: &LdapSettings,
    mut builder: Builder<T, F>,
) -> Result<(Organised<T>, ReadStats), ReadSnapshotError> {
    // Large enough that handing over costs nothing next to organising; small enough that a
    // batch is still in the shared cache when the builder takes it.
    const BATCH: usize = 256;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            ReadSnapshotError::Ldap(LdapError::Connect {
                url: settings.url.clone(),
                message: format!("cannot start the network runtime: {e}"),
            })
        })?;
    let (stats, builder) = std::thread::scope(|scope| {
        let (batches, arrived) = std::sync::mpsc::channel::<Vec<Entry>>();
        let organiser = scope.spawn(move || {
            for batch in arrived {
                for entry in batch {
                    builder.push(entry);
                }
            }
            builder
        });
        let mut batch = Vec::with_capacity(BATCH);
        let stats = runtime.block_on(read_into(settings, &mut |entry| {
            batch.push(entry);
            if batch.len() == BATCH {
                // The builder only stops by panicking, which the join below raises again.
                let _ = batches.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
            }
        }));
        let _ = batches.send(batch);
        drop(batches);
        let builder = organiser
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (stats, builder)
    });
    let stats = stats.map_err(ReadSnapshotError::Ldap)?;
    let organised = builder
        .finish()
        .map_err(|d| ReadSnapshotError::Duplicate(d.0))?;
    Ok((organised, stats))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadSnapshotError {
    #[error(transparent)]
    Ldap(LdapError),
    #[error("the server returned the entry `{0}` twice")]
    Duplicate(Dn),
}

/// Runs the LDAP reader over `data` as a server's bytes, for fuzzing (the `ldap_ber` target of
/// `tests/fuzz/targets.rs`):
/// as received messages read in place, and as the answer to a paged search through the
/// connection's buffering, with every entry read as the snapshot reads it and its ranged
/// attributes continued from the same answer. Whatever the bytes, this must return, quickly,
/// without panicking; what it found does not matter.
#[doc(hidden)]
pub fn fuzz_reader(data: &[u8]) {
    let read = |body: &[u8], names: &mut Names| -> Result<(), String> {
        let parsed = read_entry(body, names)?;
        let dn = parsed.entry.dn.to_string();
        for (attr, low) in parsed.incomplete() {
            let mut rest = RangeFetch::new(&attr, low, None);
            let mut rounds = 0;
            while rest.wanted().is_some() && rounds < 3 {
                rounds += 1;
                let again = read_entry(body, &mut Names::default())?;
                rest.take(&dn, Some(again)).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    };
    let mut names = Names::default();
    wire::parse_all(data, &mut |body| {
        let _ = read(body, &mut names);
    });
    let mut names = Names::default();
    let _ = wire::replay_search(data, &mut |found| match found {
        wire::Found::Entry(body) => read(body, &mut names),
        wire::Found::Reference => Ok(()),
    });
}

/// Waits `attempt`'s share of an exponential backoff (100 ms, 200 ms, 400 ms, … at most 3.2 s).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_split_from_names() {
        assert_eq!(split_range("member"), ("member", None));
        assert_eq!(
            split_range("member;range=0-1499"),
            ("member", Some((0, Some(1499))))
        );
        assert_eq!(
            split_range("member;Range=1500-*"),
            ("member", Some((1500, None)))
        );
        assert_eq!(split_range("member;range=x-1"), ("member;range=x-1", None));
        assert_eq!(
            split_range("userCertificate;binary"),
            ("userCertificate;binary", None)
        );
    }

    #[test]
    fn names_met_before_are_not_checked_again_but_ranges_and_bad_names_are() {
        let mut names = Names::default();
        let dn = "CN=g,DC=acme";
        let (mail, range) = names.attr(b"mail", dn).unwrap();
        assert_eq!((mail.as_str(), range), ("mail", None));
        let (again, _) = names.attr(b"mail", dn).unwrap();
        assert_eq!(again, mail);
        assert_eq!(names.0.len(), 1, "kept once");

        // A range is read from every name that has one, and such names are not kept.
        for (wire, want) in [
            (&b"member;range=0-1499"[..], (0, Some(1499))),
            (&b"member;range=1500-*"[..], (1500, None)),
            (&b"member;range=0-1499"[..], (0, Some(1499))),
        ] {
            let (attr, range) = names.attr(wire, dn).unwrap();
            assert!(attr.is("member"));
            assert_eq!(range, Some(want));
        }
        assert_eq!(names.0.len(), 1);

        // A bad name is refused every time, naming the entry.
        for _ in 0..2 {
            let e = names.attr(b"bad name", dn).unwrap_err();
            assert!(
                e.contains("`CN=g,DC=acme` has an attribute `bad name`"),
                "{e}"
            );
        }
        assert!(
            names
                .attr(&[0xff, b'x'], dn)
                .unwrap_err()
                .contains("has no name")
        );

        // Past the limit, names are still read, only no longer kept.
        for i in 0..Names::MAX + 10 {
            let wire = format!("x{i}").into_bytes();
            assert_eq!(names.attr(&wire, dn).unwrap().0.as_str(), format!("x{i}"));
        }
        assert_eq!(names.0.len(), Names::MAX);
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n => {
                out.extend([0x82, (n >> 8) as u8, n as u8]);
            }
        }
        out.extend_from_slice(content);
        out
    }

    /// A SearchResultEntry's contents: the DN and the attribute list.
    fn entry_body(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (name, values) in attrs {
            let set: Vec<u8> = values.iter().flat_map(|v| tlv(0x04, v)).collect();
            let mut attr = tlv(0x04, name.as_bytes());
            attr.extend(tlv(0x31, &set));
            list.extend(tlv(0x30, &attr));
        }
        let mut body = tlv(0x04, dn.as_bytes());
        body.extend(tlv(0x30, &list));
        body
    }

    #[test]
    fn entries_are_read_from_the_wire_with_their_bytes_and_ranges() {
        let guid: &[u8] = &[0x00, 0xff, 0x10, 0x80, 0x7f, 0x01, 0x02, 0x03];
        let body = entry_body(
            "CN=Big Group,DC=acme,DC=test",
            &[
                ("objectGUID", &[guid]),
                ("cn", &[b"Big Group"]),
                (
                    "member;range=0-1",
                    &[b"CN=a,DC=acme,DC=test", b"CN=b,DC=acme,DC=test"],
                ),
                ("mail", &[b"b@acme.test", b"a@acme.test", b"a@acme.test"]),
            ],
        );
        let parsed = read_entry(&body, &mut Names::default()).unwrap();
        let e = &parsed.entry;
        assert_eq!(e.dn, Dn::parse("cn=big group,dc=acme,dc=test").unwrap());
        let get = |name: &str| -> Vec<Vec<u8>> {
            e.attrs
                .get(&AttrName::new(name).unwrap())
                .map(|s| s.iter().map(|v| v.as_bytes().to_vec()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            get("objectguid"),
            [guid.to_vec()],
            "binary values kept exactly"
        );
        assert_eq!(
            get("MAIL"),
            [b"a@acme.test".to_vec(), b"b@acme.test".to_vec()],
            "a set"
        );
        assert_eq!(
            get("member").len(),
            2,
            "a ranged attribute keeps its name without the range"
        );
        assert_eq!(parsed.incomplete(), [("member".to_string(), 2)]);

        // Every cut of the body is an error, never a smaller entry or a panic.
        for cut in 0..body.len() {
            assert!(
                read_entry(&body[..cut], &mut Names::default()).is_err(),
                "cut at {cut}"
            );
        }
        // Values that are not strings, and DNs that are not DNs, are refused by name.
        let mut bad = tlv(0x04, b"CN=x,DC=y");
        bad.extend(tlv(
            0x30,
            &tlv(
                0x30,
                &[tlv(0x04, b"cn"), tlv(0x31, &tlv(0x02, &[1]))].concat(),
            ),
        ));
        let e = read_entry(&bad, &mut Names::default()).unwrap_err();
        assert!(e.contains("a value is not a string"), "{e}");
        let e = read_entry(&entry_body("not a dn", &[]), &mut Names::default()).unwrap_err();
        assert!(e.contains("the DN `not a dn` is not valid"), "{e}");
        let e = read_entry(
            &entry_body("CN=x,DC=y", &[("bad name", &[b"v"])]),
            &mut Names::default(),
        )
        .unwrap_err();
        assert!(e.contains("`CN=x,DC=y` has an attribute `bad name`"), "{e}");
    }

    /// Runs a ranged read against `answer`, which plays the server: given the attribute asked
    /// for, the entry it returns. At most 100 requests are allowed before the test gives up.
    fn ranged_read(
        step: Option<u64>,
        mut answer: impl FnMut(&str) -> Vec<u8>,
    ) -> (Result<Vec<Value>, SearchFailure>, usize) {
        let mut rest = RangeFetch::new("member", 2, step);
        let mut asked = 0;
        while let Some(wanted) = rest.wanted() {
            asked += 1;
            assert!(asked <= 100, "asked {asked} times, the last for {wanted}");
            let parsed = read_entry(&answer(&wanted), &mut Names::default()).unwrap();
            if let Err(e) = rest.take("CN=g,DC=x", Some(parsed)) {
                return (Err(e), asked);
            }
        }
        (Ok(rest.values), asked)
    }

    #[test]
    fn a_ranged_attribute_must_move_forward_or_its_read_is_refused() {
        let v: &[&[u8]] = &[b"CN=c,DC=x", b"CN=d,DC=x"];
        // A server that answers as asked: read to the end.
        let (values, asked) = ranged_read(None, |wanted| {
            let name = if wanted == "member;range=2-*" {
                "member;range=2-3"
            } else {
                "member;range=4-*"
            };
            entry_body("CN=g,DC=x", &[(name, v)])
        });
        assert_eq!((values.unwrap().len(), asked), (4, 2));

        // A server that answers the first range again and again.
        let (result, asked) = ranged_read(None, |_| {
            entry_body("CN=g,DC=x", &[("member;range=0-1", v)])
        });
        match result {
            Err(SearchFailure::Malformed(m)) => assert!(
                m.contains(
                    "asked for the values from 2 on, the server answered with those from 0 on"
                ),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(asked, 1);

        // A server that says more values follow but sends none.
        let (result, _) = ranged_read(Some(2), |_| {
            entry_body("CN=g,DC=x", &[("member;range=2-3", &[])])
        });
        assert!(
            matches!(&result, Err(SearchFailure::Malformed(m)) if m.contains("sent none but says more follow")),
            "{result:?}"
        );

        // A range ending at the largest number does not overflow.
        let (result, _) = ranged_read(None, |_| {
            entry_body("CN=g,DC=x", &[("member;range=2-18446744073709551615", v)])
        });
        assert!(result.is_ok() || matches!(result, Err(SearchFailure::Malformed(_))));
    }

    #[test]
    fn result_codes_are_named() {
        assert_eq!(
            result_message(49, "80090308: LdapErr\0"),
            "invalidCredentials (49): 80090308: LdapErr"
        );
        assert_eq!(result_message(50, ""), "insufficientAccessRights (50)");
        assert_eq!(result_message(999, "x"), "result code 999: x");
    }
}
