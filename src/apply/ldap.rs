//! The write side of a live LDAP directory: `LdapDirectory` implements `DirectoryWriter`.
//!
//! Writes go through a pool of bound connections, as many as actions write at once. Reads (of
//! the live entries the actions preparing ahead check) share one more connection, all in flight
//! on it together, so that they never wait behind writes queued for the server's write lock.
//! Errors are sorted into transient ones (busy, unavailable, a dropped connection, a timeout),
//! which are retried with backoff a bounded number of times on a fresh connection, and permanent
//! ones (constraint violation, no such object, insufficient access…), which fail the action at
//! once with the server's message and the DN. When the server supports the LDAP Assertion
//! control (RFC 4528), a modify or delete carries the action's preconditions as an assertion
//! filter, so the check and the write are one operation; the executor's own check, made when it
//! read the entries (a few moments before the write, for an action prepared ahead), still runs,
//! so servers without the control get the same guarantee minus that window.
//! This module must not decide what to change; it carries out exactly the modifications given.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use ldap3::controls::{Assertion, RawControl};
use ldap3::{Ldap, Mod, Scope};

use crate::apply::WriteError;
use crate::directory::ldap::{self as reader, LdapError, backoff, error_text, result_message};
use crate::directory::ldif::{ModOp, Modification};
use crate::directory::{Dn, Entry};
use crate::plan::Precondition;
use crate::spec::LdapSettings;

const ASSERTION_OID: &str = "1.3.6.1.1.12";
/// Attempts of one operation before a transient error fails the action.
const ATTEMPTS: u32 = 6;

/// A live LDAP directory as an apply destination.
pub struct LdapDirectory {
    settings: LdapSettings,
    idle: Mutex<Vec<Ldap>>,
    /// One permit per connection: an operation holds one while it runs, so there are never
    /// more connections than permits, and operations waiting for one are served in turn.
    slots: tokio::sync::Semaphore,
    /// The connection reads share (ldap3 runs any number of operations on one connection at
    /// once); replaced when it closes or fails.
    shared: tokio::sync::Mutex<Shared>,
    assertions: bool,
}

/// The connection reads share, numbered so that a failed one is replaced once.
#[derive(Default)]
struct Shared {
    number: u64,
    /// `None` until the first read, and after a failed one.
    ldap: Option<Ldap>,
}

/// Which connections an operation runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// The shared read connection.
    Read,
    /// A pooled connection of its own, for as long as the operation runs.
    Write,
}

/// How one attempt of an operation ended.
enum Attempt<T> {
    Done(T),
    /// Worth another try on a fresh connection; the text says why it failed.
    Transient(String),
}

impl LdapDirectory {
    /// Connects once (to fail early on a bad password or an unreachable server) and reads the
    /// root DSE to learn whether the server supports assertions.
    pub async fn connect(settings: &LdapSettings, parallelism: usize) -> Result<Self, LdapError> {
        let mut ldap = reader::connect(settings).await?;
        let assertions = supports_assertions(&mut ldap, settings.timeout).await;
        Ok(LdapDirectory {
            settings: settings.clone(),
            idle: Mutex::new(vec![ldap]),
            slots: tokio::sync::Semaphore::new(parallelism.max(1)),
            shared: Default::default(),
            assertions,
        })
    }

    /// Whether writes carry RFC 4528 assertions.
    pub fn uses_assertions(&self) -> bool {
        self.assertions
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Ldap>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it broken.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn checkout(&self) -> Result<Ldap, String> {
        let pooled = self.idle().pop();
        if let Some(mut ldap) = pooled
            && !ldap.is_closed()
        {
            return Ok(ldap);
        }
        reader::connect(&self.settings)
            .await
            .map_err(|e| e.to_string())
    }

    fn checkin(&self, ldap: Ldap) {
        self.idle().push(ldap);
    }

    /// A handle on the shared read connection and its number, connecting it first if need be.
    async fn shared(&self) -> Result<(u64, Ldap), String> {
        // Held across the connect, so that reads finding the connection closed open one, not
        // one each.
        let mut shared = self.shared.lock().await;
        if let Some(ldap) = &shared.ldap {
            let mut ldap = ldap.clone();
            if !ldap.is_closed() {
                return Ok((shared.number, ldap));
            }
        }
        let ldap = reader::connect(&self.settings)
            .await
            .map_err(|e| e.to_string())?;
        shared.number += 1;
        shared.ldap = Some(ldap.clone());
        Ok((shared.number, ldap))
    }

    /// Drops shared connection `number` after a read on it failed for a reason worth another
    /// try (a timeout, say, on a connection that still looks open). A newer one is kept: the
    /// reads that failed together replace it once, not once each.
    async fn forget_shared(&self, number: u64) {
        let mut shared = self.shared.lock().await;
        if shared.number == number {
            shared.ldap = None;
        }
    }

    /// Runs `op` on a pooled connection, retrying transient failures on a new connection.
    /// `retry_ok` says which result codes mean "an earlier attempt already did it": after a
    /// connection dropped mid-operation the server may have applied the write without answering.
    async fn run<T, F>(
        &self,
        lane: Lane,
        what: &str,
        dn: &Dn,
        retry_ok: &[u32],
        mut op: F,
    ) -> Result<T, WriteError>
    where
        F: AsyncOp<T>,
    {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let mut shared = None;
            let (connection, _slot) = match lane {
                Lane::Read => match self.shared().await {
                    Ok((number, ldap)) => {
                        shared = Some(number);
                        (Ok(ldap), None)
                    }
                    Err(e) => (Err(e), None),
                },
                // The semaphore is never closed, so this only waits.
                Lane::Write => {
                    let slot = self.slots.acquire().await.ok();
                    (self.checkout().await, slot)
                }
            };
            let mut ldap = match connection {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            // A shared handle is a clone: dropping it leaves the connection to the others.
            let checkin = |ldap| {
                if lane == Lane::Write {
                    self.checkin(ldap)
                }
            };
            match op.call(&mut ldap, self.settings.timeout).await {
                Ok(Attempt::Done(v)) => {
                    checkin(ldap);
                    return Ok(v);
                }
                Ok(Attempt::Transient(why)) => {
                    // A pooled connection is dropped here; the shared one by its number.
                    if let Some(number) = shared {
                        self.forget_shared(number).await;
                    }
                    last = why;
                }
                Err(rc) if attempt > 0 && retry_ok.contains(&rc.0) => {
                    checkin(ldap);
                    return op.already_done();
                }
                Err(rc) => {
                    checkin(ldap);
                    return Err(permanent(what, dn, rc.0, &rc.1));
                }
            }
        }
        Err(WriteError::Server {
            dn: dn.clone(),
            message: format!(
                "{what} on `{}` failed {ATTEMPTS} times, the last time with: {last}",
                self.settings.url
            ),
        })
    }

    fn assertion(&self, dn: &Dn, guard: &[Precondition]) -> Option<RawControl> {
        if !self.assertions {
            return None;
        }
        let filter = assertion_filter(dn, guard)?;
        // Checked again here: ldap3 panics on a filter it cannot parse.
        ldap3::parse_filter(&filter).ok()?;
        // Critical: a server that cannot evaluate the assertion must refuse the write.
        let mut control: RawControl = Assertion::new(filter);
        control.crit = true;
        Some(control)
    }

    async fn modify_with(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
        control: Option<RawControl>,
    ) -> Result<(), WriteError> {
        let dn_text = dn.to_string();
        let op = Modify {
            dn: dn_text,
            mods,
            control,
        };
        self.run(Lane::Write, "modify", dn, &[20, 16], op).await
    }
}

/// One LDAP operation that can be attempted again. A result code error comes back as
/// `Err((rc, text))` so `run` can decide whether a retry found it already done.
trait AsyncOp<T>: Send {
    fn call(
        &mut self,
        ldap: &mut Ldap,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Attempt<T>, (u32, String)>> + Send;
    fn already_done(&self) -> Result<T, WriteError>;
}

/// The outcome of one ldap3 call that had `timeout` to answer, sorted.
fn sort(
    result: Result<ldap3::LdapResult, ldap3::LdapError>,
    timeout: Duration,
) -> Result<Attempt<()>, (u32, String)> {
    match result {
        Ok(r) if r.rc == 0 => Ok(Attempt::Done(())),
        Ok(r) if is_transient(r.rc) => Ok(Attempt::Transient(result_message(r.rc, &r.text))),
        Ok(r) => Err((r.rc, r.text)),
        Err(ldap3::LdapError::LdapResult { result }) if is_transient(result.rc) => {
            Ok(Attempt::Transient(result_message(result.rc, &result.text)))
        }
        Err(ldap3::LdapError::LdapResult { result }) => Err((result.rc, result.text)),
        Err(ldap3::LdapError::Timeout { .. }) => {
            Ok(Attempt::Transient(reader::timed_out(timeout, "the answer")))
        }
        // Everything else is the connection: reset, closed.
        Err(e) => Ok(Attempt::Transient(error_text(&e))),
    }
}

/// busy, unavailable, timeLimitExceeded, adminLimitExceeded (AD under load), and `other` on a
/// server shutting down are worth another try; the rest will not change by themselves.
fn is_transient(rc: u32) -> bool {
    matches!(rc, 3 | 51 | 52)
}

fn permanent(what: &str, dn: &Dn, rc: u32, text: &str) -> WriteError {
    let message = result_message(rc, text);
    match rc {
        // Only an add meets it: the entry is there, which callers tell apart from a refusal.
        68 => WriteError::AlreadyExists(dn.clone()),
        // For an add, the parent is missing; the executor reads that way only for creates.
        32 if what == "add" => WriteError::NoSuchObject(dn.parent()),
        16 | 20 => WriteError::Conflict {
            dn: dn.clone(),
            message: format!("{what} refused: {message}"),
        },
        122 => WriteError::Stale {
            dn: dn.clone(),
            message: format!("{what} refused: the entry changed since it was checked ({message})"),
        },
        _ => WriteError::Server {
            dn: dn.clone(),
            message: format!("{what} refused: {message}"),
        },
    }
}

struct Add {
    entry: Entry,
}

impl AsyncOp<()> for Add {
    async fn call(
        &mut self,
        ldap: &mut Ldap,
        timeout: Duration,
    ) -> Result<Attempt<()>, (u32, String)> {
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = self
            .entry
            .attrs
            .iter()
            .filter(|(a, v)| !v.is_empty() && !server_owned(a.as_str()))
            .map(|(a, v)| {
                (
                    a.as_str().as_bytes().to_vec(),
                    v.iter().map(|x| x.as_bytes().to_vec()).collect(),
                )
            })
            .collect();
        let dn = self.entry.dn.to_string();
        sort(ldap.with_timeout(timeout).add(&dn, attrs).await, timeout)
    }
    fn already_done(&self) -> Result<(), WriteError> {
        Ok(())
    }
}

struct Modify {
    dn: String,
    mods: Vec<Modification>,
    control: Option<RawControl>,
}

impl AsyncOp<()> for Modify {
    async fn call(
        &mut self,
        ldap: &mut Ldap,
        timeout: Duration,
    ) -> Result<Attempt<()>, (u32, String)> {
        let mods: Vec<Mod<Vec<u8>>> = self
            .mods
            .iter()
            .map(|m| {
                let attr = m.attr.as_str().as_bytes().to_vec();
                let values: HashSet<Vec<u8>> =
                    m.values.iter().map(|v| v.as_bytes().to_vec()).collect();
                match m.op {
                    ModOp::Add => Mod::Add(attr, values),
                    ModOp::Delete => Mod::Delete(attr, values),
                    ModOp::Replace => Mod::Replace(attr, values),
                    ModOp::Increment => {
                        Mod::Increment(attr, values.into_iter().next().unwrap_or_default())
                    }
                }
            })
            .collect();
        let mut l = ldap.with_timeout(timeout);
        if let Some(c) = &self.control {
            l = l.with_controls(vec![c.clone()]);
        }
        sort(l.modify(&self.dn, mods).await, timeout)
    }
    fn already_done(&self) -> Result<(), WriteError> {
        Ok(())
    }
}

struct Delete {
    dn: String,
    control: Option<RawControl>,
}

impl AsyncOp<()> for Delete {
    async fn call(
        &mut self,
        ldap: &mut Ldap,
        timeout: Duration,
    ) -> Result<Attempt<()>, (u32, String)> {
        let mut l = ldap.with_timeout(timeout);
        if let Some(c) = &self.control {
            l = l.with_controls(vec![c.clone()]);
        }
        sort(l.delete(&self.dn).await, timeout)
    }
    fn already_done(&self) -> Result<(), WriteError> {
        Ok(())
    }
}

struct Get {
    dn: String,
    settings: LdapSettings,
}

impl AsyncOp<Option<Entry>> for Get {
    async fn call(
        &mut self,
        ldap: &mut Ldap,
        _timeout: Duration,
    ) -> Result<Attempt<Option<Entry>>, (u32, String)> {
        let mut settings = self.settings.clone();
        settings.scope = crate::spec::LdapScope::Base;
        settings.filter = "(objectClass=*)".into();
        settings.base = match Dn::parse(&self.dn) {
            Ok(dn) => dn,
            Err(e) => return Err((34, e.to_string())),
        };
        match reader::read_entries_on(ldap, &settings).await {
            Ok(mut entries) => Ok(Attempt::Done(entries.pop())),
            Err(reader::SearchFailure::Code(32, _)) => Ok(Attempt::Done(None)),
            Err(reader::SearchFailure::Code(rc, text)) if is_transient(rc) => {
                Ok(Attempt::Transient(result_message(rc, &text)))
            }
            Err(reader::SearchFailure::Code(rc, text)) => Err((rc, text)),
            Err(reader::SearchFailure::Connection(why)) => Ok(Attempt::Transient(why)),
            Err(reader::SearchFailure::Malformed(why)) => Err((2, why)),
        }
    }
    fn already_done(&self) -> Result<Option<Entry>, WriteError> {
        Ok(None)
    }
}

impl crate::apply::DirectoryWriter for LdapDirectory {
    async fn get(&self, dn: &Dn) -> Result<Option<Entry>, WriteError> {
        let op = Get {
            dn: dn.to_string(),
            settings: self.settings.clone(),
        };
        self.run(Lane::Read, "read", dn, &[], op).await
    }

    async fn add(&self, entry: Entry) -> Result<(), WriteError> {
        let dn = entry.dn.clone();
        self.run(Lane::Write, "add", &dn, &[68], Add { entry })
            .await
    }

    async fn modify(&self, dn: &Dn, mods: Vec<Modification>) -> Result<(), WriteError> {
        self.modify_with(dn, mods, None).await
    }

    fn add_checks_existence(&self) -> bool {
        true
    }

    async fn delete(&self, dn: &Dn) -> Result<(), WriteError> {
        let op = Delete {
            dn: dn.to_string(),
            control: None,
        };
        self.run(Lane::Write, "delete", dn, &[32], op).await
    }

    async fn modify_guarded(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
        guard: &[Precondition],
    ) -> Result<(), WriteError> {
        let control = self.assertion(dn, guard);
        self.modify_with(dn, mods, control).await
    }

    async fn delete_guarded(&self, dn: &Dn, guard: &[Precondition]) -> Result<(), WriteError> {
        let op = Delete {
            dn: dn.to_string(),
            control: self.assertion(dn, guard),
        };
        self.run(Lane::Write, "delete", dn, &[32], op).await
    }
}

/// Attributes a directory maintains itself and refuses in an add. They are in entries read from
/// Active Directory (and so in backups), and a restored entry gets fresh ones from the server:
/// a new objectGUID and objectSid, new timestamps, and memberOf from the groups that list it.
const SERVER_OWNED: [&str; 24] = [
    "objectGUID",
    "objectSid",
    "distinguishedName",
    "name",
    "whenCreated",
    "whenChanged",
    "uSNCreated",
    "uSNChanged",
    "instanceType",
    "dSCorePropagationData",
    "memberOf",
    "sAMAccountType",
    "isCriticalSystemObject",
    "pwdLastSet",
    "badPwdCount",
    "badPasswordTime",
    "lastLogon",
    "lastLogoff",
    "lastLogonTimestamp",
    "logonCount",
    "primaryGroupID",
    "objectCategory",
    "entryUUID",
    "entryCSN",
];

fn server_owned(attr: &str) -> bool {
    SERVER_OWNED.iter().any(|a| a.eq_ignore_ascii_case(attr))
}

/// Reads `supportedControl` from the root DSE.
async fn supports_assertions(ldap: &mut Ldap, timeout: Duration) -> bool {
    let Ok(res) = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
        .await
    else {
        return false;
    };
    let Ok((entries, _)) = res.success() else {
        return false;
    };
    entries.into_iter().any(|re| {
        let e = ldap3::SearchEntry::construct(re);
        e.attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("supportedControl"))
            .any(|(_, v)| v.iter().any(|oid| oid == ASSERTION_OID))
    })
}

/// The action's preconditions on `dn` as one RFC 4515 filter, or `None` when they say nothing
/// a filter can check. `Values` asserts each expected value (or absence), `Contains` its value,
/// `Lacks` the absence of its value;
/// existence is implied by the operation itself, and classification is the executor's check.
pub fn assertion_filter(dn: &Dn, guard: &[Precondition]) -> Option<String> {
    let mut terms: BTreeSet<String> = BTreeSet::new();
    for p in guard {
        match p {
            Precondition::Values {
                object,
                attribute,
                values,
            } if object == dn && simple_name(attribute.as_str()) => {
                if values.is_empty() {
                    terms.insert(format!("(!({}=*))", attribute.as_str()));
                }
                for v in values.iter() {
                    terms.insert(format!("({}={})", attribute.as_str(), escape(v.as_bytes())));
                }
            }
            Precondition::Contains {
                object,
                attribute,
                value,
            } if object == dn && simple_name(attribute.as_str()) => {
                terms.insert(format!(
                    "({}={})",
                    attribute.as_str(),
                    escape(value.as_bytes())
                ));
            }
            Precondition::Lacks {
                object,
                attribute,
                value,
            } if object == dn && simple_name(attribute.as_str()) => {
                terms.insert(format!(
                    "(!({}={}))",
                    attribute.as_str(),
                    escape(value.as_bytes())
                ));
            }
            _ => {}
        }
    }
    match terms.len() {
        0 => None,
        1 => terms.into_iter().next(),
        _ => Some(format!("(&{})", terms.into_iter().collect::<String>())),
    }
}

fn simple_name(a: &str) -> bool {
    a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && a.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}

/// RFC 4515 value escaping: the special characters, NUL and every non-ASCII byte as `\hh`.
fn escape(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    for &b in v {
        if matches!(b, b'*' | b'(' | b')' | b'\\' | 0) || !b.is_ascii() {
            out.push_str(&format!("\\{b:02x}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{AttrName, Value, ValueSet};

    #[test]
    fn preconditions_become_an_assertion_on_their_object_only() {
        let dn = Dn::parse("CN=Ext,OU=Contacts,DC=acme,DC=com").unwrap();
        let other = Dn::parse("CN=Group,DC=acme,DC=com").unwrap();
        let guard = vec![
            Precondition::Values {
                object: dn.clone(),
                attribute: AttrName::new("proxyAddresses").unwrap(),
                values: ValueSet::from_iter([Value::text("SMTP:a(1)*@x")]),
            },
            Precondition::Values {
                object: dn.clone(),
                attribute: AttrName::new("homeMDB").unwrap(),
                values: ValueSet::default(),
            },
            Precondition::Contains {
                object: other.clone(),
                attribute: AttrName::new("member").unwrap(),
                value: Value::text("x"),
            },
            Precondition::Exists {
                object: dn.clone(),
                class: None,
            },
        ];
        let f = assertion_filter(&dn, &guard).unwrap();
        assert_eq!(f, "(&(!(homeMDB=*))(proxyAddresses=SMTP:a\\281\\29\\2a@x))");
        assert!(ldap3::parse_filter(&f).is_ok());
        assert_eq!(
            assertion_filter(&other, &guard).as_deref(),
            Some("(member=x)")
        );
        let g = assertion_filter(
            &dn,
            &[Precondition::Contains {
                object: dn.clone(),
                attribute: AttrName::new("sn").unwrap(),
                value: Value::bytes(vec![0xc3, 0xb6, 0]),
            }],
        )
        .unwrap();
        assert_eq!(g, "(sn=\\c3\\b6\\00)");
        assert!(ldap3::parse_filter(&g).is_ok());
        let lacks = assertion_filter(
            &other,
            &[Precondition::Lacks {
                object: other.clone(),
                attribute: AttrName::new("member").unwrap(),
                value: Value::text("CN=a(b),DC=x"),
            }],
        )
        .unwrap();
        assert_eq!(lacks, "(!(member=CN=a\\28b\\29,DC=x))");
        assert!(ldap3::parse_filter(&lacks).is_ok());
    }
}
