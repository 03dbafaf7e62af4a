//! Connection caps per server endpoint: the gate the importer asks before it opens sessions to
//! a server, so that all of mailplan together never holds more connections to one endpoint
//! (`host:port`) than the plan file (or `mailplan state set-cap`) allows.
//!
//! A permit covers every session of one use at once (the source and destination sessions of a
//! pair of mail sessions): it is taken all or nothing, so two imports never each hold half of
//! what they need and wait for the other. It is given back when dropped. With a SQLite state
//! the gate counts within this process (the apply's parallel imports); with a PostgreSQL state
//! it counts slots in the database that every worker on every machine shares, each slot
//! renewed with its work unit's lease (so a worker killed with -9 gives its slots back after a
//! lease) and revoked when a lowered cap no longer allows it. Waiting for room never fails: it
//! polls, says once on standard error what it waits for, and goes on. This module decides
//! nothing about what to copy and holds no SQL (the state's [`crate::state::caps`] does).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::items::endpoints::{CalendarAt, ContactsAt, MailAt, MailEndpoints};
use crate::spec::{
    CalendarDestination, ContactDestination, ImapStore, Items, MailStore, Template, TemplatePart,
};
use crate::state::caps::Taken;
use crate::state::{Location, StateDb};

/// How often a wait for room asks again.
const POLL: Duration = Duration::from_millis(200);

/// `host:port` as the caps name an endpoint (the host in lower case, an IPv6 address in
/// brackets).
pub fn host_port(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The endpoint of an IMAP store.
pub fn imap_endpoint(store: &ImapStore) -> String {
    host_port(&store.host, store.port)
}

/// The endpoint of a DAV URL (its host and port, the scheme's default port when it names
/// none).
pub fn url_endpoint(url: &str) -> Option<String> {
    parsed_url_endpoint(&url::Url::parse(url).ok()?)
}

/// [`url_endpoint`] of a URL already parsed.
pub fn parsed_url_endpoint(u: &url::Url) -> Option<String> {
    Some(host_port(u.host_str()?, u.port_or_known_default()?))
}

/// The endpoint of a DAV URL template whose scheme, host and port are written out (not taken
/// from the person).
fn template_endpoint(t: &Template) -> Option<String> {
    let mut prefix = String::new();
    let mut whole = true;
    for part in &t.parts {
        match part {
            TemplatePart::Literal(s) => prefix.push_str(s),
            _ => {
                whole = false;
                break;
            }
        }
    }
    let start = prefix.find("://")? + 3;
    let end = match prefix[start..].find(['/', '?', '#']) {
        Some(i) => start + i,
        None if whole => prefix.len(),
        None => return None,
    };
    url_endpoint(&prefix[..end])
}

/// The endpoints the plan file's stores connect to, for checking `items.connections`.
pub fn plan_endpoints(items: &Items) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(m) = &items.mail {
        for s in [&m.source, &m.destination] {
            if let MailStore::Imap(i) = s {
                out.insert(imap_endpoint(i));
            }
        }
    }
    if let Some(CalendarDestination::CalDav(d)) = items.calendars.as_ref().map(|c| &c.destination) {
        out.extend(template_endpoint(&d.url));
    }
    if let Some(ContactDestination::CardDav(d)) = items.contacts.as_ref().map(|c| &c.destination) {
        out.extend(template_endpoint(&d.url));
    }
    out
}

/// The endpoints of one pair of mail sessions: the source's and the destination's (a Maildir
/// has none).
pub fn mail_pair(ep: &MailEndpoints) -> Vec<String> {
    [&ep.source, &ep.destination]
        .into_iter()
        .filter_map(|at| match at {
            MailAt::Imap { store, .. } => Some(imap_endpoint(store)),
            MailAt::Maildir(_) => None,
        })
        .collect()
}

/// The endpoint of a calendar destination (none for a folder).
pub fn calendar_endpoint(at: &CalendarAt) -> Vec<String> {
    match at {
        CalendarAt::CalDav(d) => url_endpoint(&d.url).into_iter().collect(),
        CalendarAt::IcsFolder(_) => Vec::new(),
    }
}

/// The endpoint of a contacts destination (none for a folder).
pub fn contacts_endpoint(at: &ContactsAt) -> Vec<String> {
    match at {
        ContactsAt::CardDav(d) => url_endpoint(&d.url).into_iter().collect(),
        ContactsAt::VcardFolder(_) => Vec::new(),
    }
}

/// The gate imports ask before opening sessions.
#[derive(Clone)]
pub struct Gate(Kind);

#[derive(Clone)]
enum Kind {
    Local(Arc<Local>),
    Shared(Arc<Shared>),
}

/// Counts within this process, against the plan file's caps.
struct Local {
    caps: BTreeMap<String, u32>,
    used: std::sync::Mutex<BTreeMap<String, u32>>,
    freed: tokio::sync::Notify,
}

/// Counts in the shared state, against the caps there.
struct Shared {
    state: Location,
    lease: Duration,
    /// The revocation flag of each slot this process holds.
    held: std::sync::Mutex<HashMap<i64, Arc<AtomicBool>>>,
}

/// Room for one use of some endpoints' connections; given back when dropped.
pub struct Permit {
    revoked: Arc<AtomicBool>,
    release: Release,
}

enum Release {
    Nothing,
    Local(Arc<Local>, Vec<String>),
    Shared(Arc<Shared>, Vec<i64>),
}

impl Permit {
    /// Whether a lowered cap took this permit's room away: its sessions are to be closed
    /// (after the work in flight) and the permit dropped.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.release, Release::Nothing) {
            Release::Nothing => {}
            Release::Local(gate, endpoints) => gate.give_back(&endpoints),
            Release::Shared(gate, slots) => gate.give_back(&slots),
        }
    }
}

impl Local {
    /// Takes room for `endpoints`, or names the first endpoint without enough.
    fn try_take(&self, endpoints: &[String]) -> Result<(), (String, u32, u32)> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted: BTreeMap<&String, u32> = BTreeMap::new();
        for e in endpoints.iter().filter(|e| self.caps.contains_key(*e)) {
            *wanted.entry(e).or_default() += 1;
        }
        for (e, n) in &wanted {
            let cap = self.caps.get(*e).copied().unwrap_or(u32::MAX);
            if used.get(*e).copied().unwrap_or(0) + n > cap {
                return Err(((*e).clone(), cap, *n));
            }
        }
        for (e, n) in wanted {
            *used.entry(e.clone()).or_default() += n;
        }
        Ok(())
    }

    fn give_back(&self, endpoints: &[String]) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        for e in endpoints.iter().filter(|e| self.caps.contains_key(*e)) {
            if let Some(n) = used.get_mut(e) {
                *n = n.saturating_sub(1);
            }
        }
        drop(used);
        self.freed.notify_waiters();
    }
}

impl Shared {
    fn give_back(&self, slots: &[i64]) {
        if let Ok(mut held) = self.held.lock() {
            for s in slots {
                held.remove(s);
            }
        }
        // Best effort: a slot not given back ends with its lease.
        if let Ok(db) = StateDb::open_at(&self.state)
            && let Some(caps) = db.caps()
        {
            let _ = caps.give_back(slots);
        }
    }
}

/// What one attempt found: a permit, or the endpoint that has no room (its cap, what was
/// wanted of it).
type Attempt = Result<Permit, (String, u32, u32)>;

impl Gate {
    /// Counts within this process against `caps` (endpoint → connections).
    pub fn local(caps: BTreeMap<String, u32>) -> Gate {
        Gate(Kind::Local(Arc::new(Local {
            caps,
            used: Default::default(),
            freed: tokio::sync::Notify::new(),
        })))
    }

    /// Counts in the shared state at `state`; slots are taken under `lease`.
    pub fn shared(state: Location, lease: Duration) -> Gate {
        Gate(Kind::Shared(Arc::new(Shared {
            state,
            lease,
            held: Default::default(),
        })))
    }

    /// The same gate taking slots under another lease.
    pub fn with_lease(self, lease: Duration) -> Gate {
        match self.0 {
            Kind::Shared(s) => Gate::shared(s.state.clone(), lease),
            local => Gate(local),
        }
    }

    async fn attempt(&self, endpoints: &[String], holder: &str) -> Result<Attempt, String> {
        let revoked = Arc::new(AtomicBool::new(false));
        if endpoints.is_empty() {
            return Ok(Ok(Permit {
                revoked,
                release: Release::Nothing,
            }));
        }
        match &self.0 {
            Kind::Local(gate) => Ok(gate.try_take(endpoints).map(|()| Permit {
                revoked,
                release: Release::Local(gate.clone(), endpoints.to_vec()),
            })),
            Kind::Shared(gate) => {
                let (state, list, who, lease) = (
                    gate.state.clone(),
                    endpoints.to_vec(),
                    holder.to_owned(),
                    gate.lease,
                );
                let taken = tokio::task::spawn_blocking(move || {
                    let db = StateDb::open_at(&state).map_err(|e| e.to_string())?;
                    let caps = db
                        .caps()
                        .ok_or("this state keeps no connection caps (they need PostgreSQL)")?;
                    caps.take_slots(&list, &who, lease)
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| format!("a state task failed: {e}"))??;
                Ok(match taken {
                    Taken::Granted(slots) => {
                        if let Ok(mut held) = gate.held.lock() {
                            for s in &slots {
                                held.insert(*s, revoked.clone());
                            }
                        }
                        Ok(Permit {
                            revoked,
                            release: Release::Shared(gate.clone(), slots),
                        })
                    }
                    Taken::Full {
                        endpoint,
                        connections,
                        wanted,
                    } => Err((endpoint, connections, wanted)),
                })
            }
        }
    }

    /// Room for one connection to each of `endpoints` (an endpoint named twice counts twice),
    /// taken all at once for `holder` (the work unit's owner, whose lease renewal keeps it);
    /// waits as long as it takes. Fails only when the state cannot be asked.
    pub async fn acquire(&self, endpoints: &[String], holder: &str) -> Result<Permit, String> {
        let mut said = false;
        loop {
            match self.attempt(endpoints, holder).await? {
                Ok(permit) => return Ok(permit),
                Err((endpoint, cap, wanted)) => {
                    if !said {
                        said = true;
                        let hint = if wanted > cap {
                            format!(
                                "; one use needs {wanted} of them, so nothing starts until \
                                 `mailplan state set-cap` raises it"
                            )
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "waiting for the cap of {endpoint} ({cap} connections, all in use){hint}"
                        );
                    }
                    match &self.0 {
                        Kind::Local(gate) => {
                            let _ = tokio::time::timeout(POLL * 5, gate.freed.notified()).await;
                        }
                        Kind::Shared(_) => tokio::time::sleep(POLL).await,
                    }
                }
            }
        }
    }

    /// [`Gate::acquire`] without waiting: `None` when there is no room now.
    pub async fn try_acquire(
        &self,
        endpoints: &[String],
        holder: &str,
    ) -> Result<Option<Permit>, String> {
        Ok(self.attempt(endpoints, holder).await?.ok())
    }

    /// Marks the permits holding any of `slots` revoked (a lease renewal found them beyond
    /// their endpoint's cap).
    pub fn revoke(&self, slots: &[i64]) {
        if let Kind::Shared(gate) = &self.0
            && let Ok(held) = gate.held.lock()
        {
            for s in slots {
                if let Some(flag) = held.get(s) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[(&str, u32)]) -> Gate {
        Gate::local(list.iter().map(|(e, n)| (e.to_string(), *n)).collect())
    }

    fn pair(a: &str, b: &str) -> Vec<String> {
        vec![a.to_string(), b.to_string()]
    }

    #[tokio::test]
    async fn a_pair_is_taken_whole_or_not_at_all() {
        let gate = caps(&[("src:993", 3), ("dst:993", 2)]);
        let one = gate.acquire(&pair("src:993", "dst:993"), "").await.unwrap();
        let two = gate.acquire(&pair("src:993", "dst:993"), "").await.unwrap();
        // The destination is full: the third pair takes nothing, not even the source's room.
        assert!(
            gate.try_acquire(&pair("src:993", "dst:993"), "")
                .await
                .unwrap()
                .is_none()
        );
        let alone = gate
            .try_acquire(&["src:993".to_string()], "")
            .await
            .unwrap();
        assert!(alone.is_some(), "the source still had room for one");
        drop((one, two, alone));
    }

    #[tokio::test]
    async fn room_comes_back_when_a_permit_is_dropped_and_a_waiter_gets_it() {
        let gate = caps(&[("mail:143", 2)]);
        let first = gate
            .acquire(&pair("mail:143", "mail:143"), "")
            .await
            .unwrap();
        assert!(!first.revoked());
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire(&pair("mail:143", "mail:143"), "").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "the cap of 2 is held by the first pair"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter got the room back")
            .unwrap()
            .unwrap();
        drop(second);
        assert!(
            gate.try_acquire(&pair("mail:143", "mail:143"), "")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn many_imports_crossing_two_endpoints_never_deadlock_nor_exceed_a_cap() {
        let gate = caps(&[("a:1", 2), ("b:1", 2)]);
        let inside = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u32>::new()));
        let most = Arc::new(std::sync::Mutex::new(0u32));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (gate, inside, most) = (gate.clone(), inside.clone(), most.clone());
            // Half ask for (a, b), half for (b, a): taken one at a time, each holding one
            // half, they would wait for each other forever.
            let want = if i % 2 == 0 {
                pair("a:1", "b:1")
            } else {
                pair("b:1", "a:1")
            };
            tasks.spawn(async move {
                let permit = gate.acquire(&want, "").await.unwrap();
                {
                    let mut inside = inside.lock().unwrap();
                    for e in &want {
                        *inside.entry(e.clone()).or_default() += 1;
                    }
                    let peak = inside.values().copied().max().unwrap_or(0);
                    let mut most = most.lock().unwrap();
                    *most = (*most).max(peak);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                {
                    let mut inside = inside.lock().unwrap();
                    for e in &want {
                        *inside.entry(e.clone()).or_default() -= 1;
                    }
                }
                drop(permit);
            });
        }
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
        })
        .await
        .expect("every import got its pair");
        assert_eq!(*most.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn endpoints_without_a_cap_are_not_counted() {
        let gate = caps(&[("capped:993", 1)]);
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(
                gate.try_acquire(&pair("free:993", "free:993"), "")
                    .await
                    .unwrap(),
            );
        }
        assert!(held.iter().all(Option::is_some));
        assert!(gate.try_acquire(&[], "").await.unwrap().is_some());
    }

    #[test]
    fn endpoints_are_named_host_colon_port() {
        assert_eq!(host_port("Mail.Acme.TEST", 993), "mail.acme.test:993");
        assert_eq!(host_port("::1", 143), "[::1]:143");
        assert_eq!(
            url_endpoint("https://dav.acme.test/dav/x/").as_deref(),
            Some("dav.acme.test:443")
        );
        assert_eq!(
            url_endpoint("http://127.0.0.1:5232/u/").as_deref(),
            Some("127.0.0.1:5232")
        );
    }
}
