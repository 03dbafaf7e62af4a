//! A live LDAP directory as a `Snapshot`: connect, bind, read every entry with paged searches.
//!
//! This is the read side of the `ldap:` backend (ldap3 on tokio). It turns search results into
//! the same `Entry` values the LDIF reader builds (attribute names as the server spells them,
//! values as raw bytes, so binary attributes such as objectGUID stay exact), so matching and
//! planning cannot tell where a snapshot came from. Search references (Active Directory answers
//! searches from a domain root with references to its other partitions) are skipped and counted;
//! Active Directory's ranged attributes (`member;range=0-1499`) are fetched whole. Any other
//! incomplete answer (size limit, a partial page) is an error, never a smaller snapshot: planning
//! against half a directory would create duplicates.
//! Connection setup lives here too, because the write side (`apply::ldap`) connects the same way.
//! This module must not decide anything about the entries it reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::asn1::StructureTag;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope};
use smallvec::SmallVec;

use crate::directory::{AttrName, Attrs, Dn, Entry, Snapshot, Value, ValueSet};
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

/// Opens one connection and binds as the plan file says.
pub async fn connect(settings: &LdapSettings) -> Result<Ldap, LdapError> {
    let url = settings.url.clone();
    let mut conn = LdapConnSettings::new()
        .set_conn_timeout(settings.timeout)
        .set_starttls(settings.starttls);
    if settings.insecure {
        conn = conn.set_no_tls_verify(true);
    } else {
        conn = conn.set_config(tls_config(settings)?);
    }
    let password = match (&settings.bind_dn, &settings.password) {
        (Some(_), Some(secret)) => secret.resolve().map_err(|source| LdapError::Password {
            who: who(settings),
            source,
        })?,
        _ => String::new(),
    };
    let (driver, mut ldap) = LdapConnAsync::with_settings(conn, &url)
        .await
        .map_err(|e| connect_error(&url, &e))?;
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
        Err(e) => Err(connect_error(&url, &e)),
    }
}

/// The TLS setup when certificates are verified: the system's roots plus `ca_file`.
fn tls_config(settings: &LdapSettings) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are not fatal: `ca_file` may be all that is needed.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &settings.ca_file {
        let ca_error = |message: String| LdapError::CaFile {
            path: path.clone(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("it holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::Connect {
            url: settings.url.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn connect_error(url: &str, e: &ldap3::LdapError) -> LdapError {
    let message = error_text(e);
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

fn scope(s: LdapScope) -> Scope {
    match s {
        LdapScope::Base => Scope::Base,
        LdapScope::One => Scope::OneLevel,
        LdapScope::Sub => Scope::Subtree,
    }
}

/// Reads every entry the settings select.
pub async fn read(settings: &LdapSettings) -> Result<(Vec<Entry>, ReadStats), LdapError> {
    let mut ldap = connect(settings).await?;
    let result = read_with(&mut ldap, settings).await;
    let _ = ldap.unbind().await;
    result
}

async fn read_with(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<(Vec<Entry>, ReadStats), LdapError> {
    read_on(ldap, settings).await.map_err(|f| match f {
        SearchFailure::Malformed(message) => LdapError::Malformed {
            url: settings.url.clone(),
            message,
        },
        f => LdapError::Search {
            url: settings.url.clone(),
            base: settings.base.to_string(),
            message: f.to_string(),
        },
    })
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

fn failure(e: &ldap3::LdapError) -> SearchFailure {
    match e {
        ldap3::LdapError::LdapResult { result } => {
            SearchFailure::Code(result.rc, result.text.clone())
        }
        e => SearchFailure::Connection(error_text(e)),
    }
}

/// Only the entries, for a base-scope read of one object.
pub async fn read_entries_on(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<Vec<Entry>, SearchFailure> {
    read_on(ldap, settings).await.map(|r| r.0)
}

/// Runs the search the settings describe on an open connection: paged unless it reads one entry.
pub async fn read_on(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<(Vec<Entry>, ReadStats), SearchFailure> {
    let base = settings.base.to_string();
    let page = i32::try_from(settings.page_size).unwrap_or(i32::MAX);
    // Only the paging adapter: ldap3's EntriesOnly would drop search references silently, and
    // they are counted here instead.
    let adapters: Vec<Box<dyn Adapter<&str, Vec<&str>>>> = match settings.scope {
        LdapScope::Base => Vec::new(),
        _ => vec![Box::new(PagedResults::new(page))],
    };
    let mut stream = ldap
        .with_timeout(settings.timeout)
        .streaming_search_with(
            adapters,
            &base,
            scope(settings.scope),
            &settings.filter,
            vec!["*"],
        )
        .await
        .map_err(|e| failure(&e))?;
    let mut stats = ReadStats::default();
    let mut entries = Vec::new();
    let mut names = Names::default();
    let mut ranged: Vec<(usize, String, u64)> = Vec::new();
    loop {
        let re = match stream.next().await {
            Ok(Some(re)) => re,
            Ok(None) => break,
            Err(e) => {
                let _ = stream.finish().await;
                return Err(failure(&e));
            }
        };
        if re.is_ref() {
            stats.references_skipped += 1;
            continue;
        }
        if re.is_intermediate() {
            continue;
        }
        let parsed = parse_entry(re, &mut names).map_err(SearchFailure::Malformed)?;
        for (attr, next_low) in &parsed.incomplete {
            ranged.push((entries.len(), attr.clone(), *next_low));
        }
        entries.push(parsed.entry);
    }
    let done = stream.finish().await;
    if done.rc != 0 {
        return Err(SearchFailure::Code(done.rc, done.text));
    }
    for (i, attr, low) in ranged {
        stats.ranged_attributes += 1;
        let dn = entries[i].dn.to_string();
        let values = fetch_range(ldap, settings, &dn, &attr, low, None).await?;
        let name = AttrName::new_unchecked(&attr);
        for v in values {
            entries[i].add(name.clone(), v);
        }
    }
    stats.entries = entries.len();
    Ok((entries, stats))
}

/// The rest of a ranged attribute, from value `low` on (Active Directory's incremental
/// retrieval: ask for `attr;range=low-*` until the server answers with a range ending in `*`).
async fn fetch_range(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    dn: &str,
    attr: &str,
    mut low: u64,
    step: Option<u64>,
) -> Result<Vec<Value>, SearchFailure> {
    let mut out = Vec::new();
    loop {
        let wanted = match step {
            Some(n) => format!("{attr};range={low}-{}", low + n.max(1) - 1),
            None => format!("{attr};range={low}-*"),
        };
        let (results, done) = ldap
            .with_timeout(settings.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", vec![wanted.as_str()])
            .await
            .map_err(|e| failure(&e))?
            .success()
            .map_err(|e| failure(&e))?;
        let _ = done;
        let Some(re) = results.into_iter().next() else {
            return Err(SearchFailure::Malformed(format!(
                "`{dn}` disappeared while its `{attr}` was read"
            )));
        };
        let parsed = parse_entry(re, &mut Names::default()).map_err(SearchFailure::Malformed)?;
        let name = AttrName::new_unchecked(attr);
        let got: Vec<Value> = parsed
            .entry
            .attrs
            .get(&name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let n = got.len() as u64;
        out.extend(got);
        match parsed.incomplete.first() {
            Some((_, next)) if n > 0 => low = *next,
            _ => return Ok(out),
        }
    }
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
    let mut ldap = connect(settings).await?;
    let result = fetch_range(&mut ldap, settings, &dn.to_string(), attr, 0, Some(step)).await;
    let _ = ldap.unbind().await;
    result.map_err(|f| LdapError::Search {
        url: settings.url.clone(),
        base: dn.to_string(),
        message: f.to_string(),
    })
}

struct Parsed {
    entry: Entry,
    /// Ranged attributes that are not complete yet, with the index of the next value to ask for.
    incomplete: Vec<(String, u64)>,
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
    fn attr(&mut self, raw: Vec<u8>, dn: &str) -> Result<(AttrName, Option<Range>), String> {
        if let Some(attr) = self.0.get(raw.as_slice()) {
            return Ok((attr.clone(), None));
        }
        let name = String::from_utf8(raw)
            .map_err(|_| "malformed search result entry: an attribute has no name".to_string())?;
        let (base_name, range) = split_range(&name);
        let attr = AttrName::new(base_name)
            .map_err(|e| format!("`{dn}` has an attribute `{name}` that is not valid: {e}"))?;
        if range.is_none() && self.0.len() < Self::MAX {
            self.0.insert(name.into_bytes(), attr.clone());
        }
        Ok((attr, range))
    }
}

/// Where a ranged attribute's values start, and end (`None`: they are the last ones).
type Range = (u64, Option<u64>);

/// A SearchResultEntry, read without trusting it (ldap3's own conversion panics on bad input).
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
    let dn_text = String::from_utf8(dn_bytes).map_err(|_| bad("the DN is not UTF-8"))?;
    let dn = Dn::parse(&dn_text).map_err(|e| format!("the DN `{dn_text}` is not valid: {e}"))?;
    let mut incomplete = Vec::new();
    let attrs = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| bad("no attribute list"))?;
    let mut entry = Entry {
        dn,
        attrs: Attrs::with_capacity(attrs.len()),
    };
    for a in attrs {
        let mut pa = a
            .expect_constructed()
            .ok_or_else(|| bad("an attribute is not a sequence"))?
            .into_iter();
        let raw = pa
            .next()
            .and_then(StructureTag::expect_primitive)
            .ok_or_else(|| bad("an attribute has no name"))?;
        let (attr, range) = names.attr(raw, &dn_text)?;
        let values = pa
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| bad(&format!("`{attr}` has no value set")))?;
        let count = values.len() as u64;
        // A loop rather than collecting `Result`s: it runs for every attribute of every entry.
        let mut set = SmallVec::with_capacity(values.len());
        for v in values {
            match v.expect_primitive() {
                Some(bytes) => set.push(Value::bytes(bytes)),
                None => return Err(bad(&format!("a value of `{attr}` is not a string"))),
            }
        }
        let values = ValueSet::from_values(set);
        if let Some((low, Some(high))) = range {
            // `member;range=0-1499`: more values follow from 1500 on.
            let next = high.max(low.saturating_add(count.saturating_sub(1))) + 1;
            incomplete.push((attr.as_str().to_string(), next));
        }
        entry.attrs.add_all(attr, values);
    }
    Ok(Parsed { entry, incomplete })
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            ReadSnapshotError::Ldap(LdapError::Connect {
                url: settings.url.clone(),
                message: format!("cannot start the network runtime: {e}"),
            })
        })?;
    let (entries, stats) = runtime
        .block_on(read(settings))
        .map_err(ReadSnapshotError::Ldap)?;
    let snapshot = Snapshot::new(entries).map_err(|d| ReadSnapshotError::Duplicate(d.0))?;
    Ok((snapshot, stats))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadSnapshotError {
    #[error(transparent)]
    Ldap(LdapError),
    #[error("the server returned the entry `{0}` twice")]
    Duplicate(Dn),
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
        let (mail, range) = names.attr(b"mail".to_vec(), dn).unwrap();
        assert_eq!((mail.as_str(), range), ("mail", None));
        let (again, _) = names.attr(b"mail".to_vec(), dn).unwrap();
        assert_eq!(again, mail);
        assert_eq!(names.0.len(), 1, "kept once");

        // A range is read from every name that has one, and such names are not kept.
        for (wire, want) in [
            (&b"member;range=0-1499"[..], (0, Some(1499))),
            (&b"member;range=1500-*"[..], (1500, None)),
            (&b"member;range=0-1499"[..], (0, Some(1499))),
        ] {
            let (attr, range) = names.attr(wire.to_vec(), dn).unwrap();
            assert!(attr.is("member"));
            assert_eq!(range, Some(want));
        }
        assert_eq!(names.0.len(), 1);

        // A bad name is refused every time, naming the entry.
        for _ in 0..2 {
            let e = names.attr(b"bad name".to_vec(), dn).unwrap_err();
            assert!(
                e.contains("`CN=g,DC=acme` has an attribute `bad name`"),
                "{e}"
            );
        }
        assert!(
            names
                .attr(vec![0xff, b'x'], dn)
                .unwrap_err()
                .contains("has no name")
        );

        // Past the limit, names are still read, only no longer kept.
        for i in 0..Names::MAX + 10 {
            let wire = format!("x{i}").into_bytes();
            assert_eq!(names.attr(wire, dn).unwrap().0.as_str(), format!("x{i}"));
        }
        assert_eq!(names.0.len(), Names::MAX);
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
