//! Throttling: a server that says "not now" (IMAP `[UNAVAILABLE]`, `[LIMIT]`, `[INUSE]`, a BYE
//! under load, a connection limit at login; HTTP 429 and 503) slows this process's requests to
//! it down instead of failing the copy.
//!
//! Each endpoint (`host:port`) has one pause, shared by every task of the process: a throttled
//! answer sets "no new request to it before T", the pause doubling from 1 s up to 60 s (longer
//! when the server's Retry-After asks, up to [`MAX_RETRY_AFTER`]), and each success brings it
//! down a step. The clients wait for it before opening a connection and before each batch or
//! request, and try the throttled operation again, until the endpoint has throttled for
//! [`give_up_after`] with no progress: then the caller fails with the server's text. Every
//! throttling and every wait is counted, for the import that met it ([`Tally`]) and for the
//! run ([`totals`]).
//!
//! This module only decides how long to wait and when to give up. It must not talk to servers,
//! nor decide what is sent again: that is the client's, which resends only what the server did
//! not confirm.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first pause; each throttling in a row doubles it.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause mailplan chooses itself.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause a server's Retry-After is followed for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How long an endpoint may throttle with no progress before the copy gives up, unless
/// `MAILPLAN_THROTTLE_GIVE_UP` (seconds) says otherwise.
const GIVE_UP: Duration = Duration::from_secs(15 * 60);
/// An endpoint's slowdown is said on standard error at most once in this long.
const SAY_EVERY: Duration = Duration::from_secs(60);

/// One endpoint's pause.
#[derive(Debug)]
struct Gate {
    /// No new request before this.
    until: Instant,
    /// Throttlings in a row, less one for each success since: the pause's exponent.
    level: u32,
    /// The first throttling since the endpoint last made progress.
    since: Option<Instant>,
    /// When the slowdown was last said.
    said: Option<Instant>,
}

static GATES: Mutex<BTreeMap<String, Gate>> = Mutex::new(BTreeMap::new());
static TIMES: AtomicU64 = AtomicU64::new(0);
static WAITED_MS: AtomicU64 = AtomicU64::new(0);

/// What one import met: how many throttled answers, and how long its sessions waited.
#[derive(Debug, Default)]
pub struct Tally {
    times: AtomicU64,
    waited_ms: AtomicU64,
}

impl Tally {
    /// Throttled answers met, and the time waited (summed over the import's sessions).
    pub fn get(&self) -> (u64, Duration) {
        (
            self.times.load(Ordering::Relaxed),
            Duration::from_millis(self.waited_ms.load(Ordering::Relaxed)),
        )
    }
}

tokio::task_local! {
    static TALLY: Arc<Tally>;
}

/// Runs `f` counting the throttling it meets into `tally`.
pub async fn tallied<F: Future>(tally: Arc<Tally>, f: F) -> F::Output {
    TALLY.scope(tally, f).await
}

/// `f`, counting into the tally of the task that calls this (for a task spawned by it).
pub fn inherit<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let tally = TALLY.try_with(Arc::clone).ok();
    async move {
        match tally {
            Some(t) => TALLY.scope(t, f).await,
            None => f.await,
        }
    }
}

/// Throttled answers met by this process, and the time its sessions waited for them.
pub fn totals() -> (u64, Duration) {
    (
        TIMES.load(Ordering::Relaxed),
        Duration::from_millis(WAITED_MS.load(Ordering::Relaxed)),
    )
}

/// How long an endpoint may throttle with no progress before the copy gives up.
pub fn give_up_after() -> Duration {
    std::env::var("MAILPLAN_THROTTLE_GIVE_UP")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(GIVE_UP)
}

fn gates() -> std::sync::MutexGuard<'static, BTreeMap<String, Gate>> {
    GATES.lock().unwrap_or_else(|p| p.into_inner())
}

/// A duration for people: `800 ms`, `12 s`, `3 min 5 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = d.as_secs();
    if s < 60 {
        return format!("{s} s");
    }
    match s % 60 {
        0 => format!("{} min", s / 60),
        r => format!("{} min {r} s", s / 60),
    }
}

/// Records that `endpoint` answered `text` to say "not now" (with the server's Retry-After, if
/// it gave one): the endpoint's pause is set, doubled from the last one, unless one is still
/// running. `Err` with the reason to fail with
/// once it has throttled for [`give_up_after`] with no progress; else the caller waits
/// ([`wait`]) and tries again.
pub fn throttled(endpoint: &str, text: &str, retry_after: Option<Duration>) -> Result<(), String> {
    TIMES.fetch_add(1, Ordering::Relaxed);
    let _ = TALLY.try_with(|t| t.times.fetch_add(1, Ordering::Relaxed));
    let now = Instant::now();
    let bound = give_up_after();
    let mut gates = gates();
    let gate = gates.entry(endpoint.to_string()).or_insert(Gate {
        until: now,
        level: 0,
        since: None,
        said: None,
    });
    let since = *gate.since.get_or_insert(now);
    if now.duration_since(since) >= bound {
        return Err(format!(
            "the server {endpoint} kept throttling for {} with no progress: {text}",
            human(bound)
        ));
    }
    // An answer to a request sent before the pause began (another session's, typically) says
    // nothing new: the pause is not doubled again for it.
    if gate.until > now {
        if let Some(r) = retry_after {
            gate.until = gate.until.max(now + r.min(MAX_RETRY_AFTER));
        }
        return Ok(());
    }
    let ours = FIRST_PAUSE
        .saturating_mul(1u32 << gate.level.min(16))
        .min(MAX_PAUSE);
    let pause = retry_after
        .map(|r| r.min(MAX_RETRY_AFTER))
        .map_or(ours, |r| r.max(ours));
    gate.level = gate.level.saturating_add(1).min(16);
    gate.until = gate.until.max(now + pause);
    if gate.said.is_none_or(|s| now.duration_since(s) >= SAY_EVERY) {
        gate.said = Some(now);
        eprintln!(
            "{endpoint} is throttling ({}); slowing down: no new request to it for {}",
            text.trim(),
            human(pause)
        );
    }
    Ok(())
}

/// Waits until `endpoint` may be asked again; the time waited is counted.
pub async fn wait(endpoint: &str) {
    loop {
        let until = match gates().get(endpoint) {
            Some(g) => g.until,
            None => return,
        };
        let now = Instant::now();
        if until <= now {
            return;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
        let waited = until.duration_since(now).as_millis() as u64;
        WAITED_MS.fetch_add(waited, Ordering::Relaxed);
        let _ = TALLY.try_with(|t| t.waited_ms.fetch_add(waited, Ordering::Relaxed));
    }
}

/// Records that `endpoint` did what was asked: the time without progress starts again, and the
/// pause comes down a step.
pub fn progress(endpoint: &str) {
    let mut gates = gates();
    if let Some(g) = gates.get_mut(endpoint) {
        g.since = None;
        g.level = g.level.saturating_sub(1);
    }
}

/// An HTTP Retry-After value: seconds, or an HTTP-date (IMF-fixdate) counted from `now_unix`
/// (seconds since 1970). `None` when it is neither, or in the past.
pub fn retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    // `Sun, 06 Nov 1994 08:49:37 GMT`
    let rest = v.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let days = crate::items::days_from_civil(year.parse().ok()?, month, day.parse().ok()?)?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(0..24).contains(h) || !(0..60).contains(m) || !(0..61).contains(s) {
        return None;
    }
    let at = days * 86_400 + h * 3600 + m * 60 + s;
    let secs = u64::try_from(at - now_unix).ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date_is_bounded() {
        assert_eq!(retry_after(" 3 ", 0), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("999999", 0), Some(MAX_RETRY_AFTER));
        // 1994-11-06 08:49:37 UTC is 784111777.
        let at = 784_111_777;
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at - 30),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + 1), None);
        assert_eq!(retry_after("soon", 0), None);
        assert_eq!(retry_after("Sun, 06 Nov 1994 25:49:37 GMT", 0), None);
    }

    #[tokio::test]
    async fn a_throttling_endpoint_pauses_doubles_and_gives_up_without_progress() {
        let ep = "pause.test:1";
        let tally = Arc::new(Tally::default());
        tallied(tally.clone(), async {
            throttled(ep, "NO [LIMIT] busy", None).unwrap();
            let start = Instant::now();
            wait(ep).await;
            assert!(start.elapsed() >= Duration::from_millis(900));
            throttled(ep, "NO [LIMIT] busy", None).unwrap();
            // An answer while paused does not double the pause again.
            throttled(ep, "NO [LIMIT] busy", None).unwrap();
            let level = gates()[ep].level;
            assert_eq!(level, 2);
            progress(ep);
            assert_eq!(gates()[ep].level, 1);
            assert!(gates()[ep].since.is_none());
        })
        .await;
        let (times, waited) = tally.get();
        assert_eq!(times, 3);
        assert!(waited >= Duration::from_millis(900));
        // Throttling since long ago with no progress: given up, with the server's text.
        gates().get_mut(ep).unwrap().since = Instant::now().checked_sub(give_up_after());
        let e = throttled(ep, "NO [LIMIT] busy", None).unwrap_err();
        assert!(
            e.contains("kept throttling") && e.contains("NO [LIMIT] busy"),
            "{e}"
        );
    }
}
