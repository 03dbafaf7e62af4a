//! IMAP stores: one session per mailbox, logged in with an admin credential (Dovecot's
//! `user*admin` master login or SASL PLAIN with an authorization identity), TLS verified by
//! default.
//!
//! Only the commands a copy needs are spoken: CAPABILITY, STARTTLS, LOGIN / AUTHENTICATE PLAIN,
//! LIST, LSUB, EXAMINE, UID FETCH (headers, sizes, flags and internal dates for listing; bodies
//! only for copying, many UIDs per command), CREATE, SUBSCRIBE and APPEND. A batch is one
//! MULTIAPPEND (RFC 3502) where the server offers it with LITERAL+: one transaction, consecutive
//! UIDs in the batch's order, committed by its final CRLF when the caller says so. Otherwise, or
//! when the server refuses the batch, its APPENDs are pipelined: with LITERAL+ (or LITERAL- for
//! small messages) every command is written without waiting for the server's continuation
//! while a second task reads the tagged answers, so each message gets its own OK or NO. Folder
//! names travel in modified UTF-7 and are logical (`/`-separated) outside this module; a name
//! the server sends that is not modified UTF-7 (8-bit bytes, control characters, a bad `&…-`)
//! is a bad item naming the mailbox and the raw name, never used as it is. Secrets never appear
//! in errors.
//!
//! Every wait has a deadline, the plan file's `timeout:`: connecting, the TLS handshake, the
//! greeting, STARTTLS, each answer and each write. It counts from the last sign of progress
//! (the command sent, a tagged answer, another [`PROGRESS`] bytes moved), so a long listing or a
//! large message may take as long as it keeps coming, while a server that is silent, or drips a
//! few bytes at a time, is given up on; the error names the server and what was awaited.
//! Connecting and logging in, listing and fetching change nothing and are tried again on a new
//! connection after a timeout or a dropped connection ([`ATTEMPTS`] in all); an APPEND is never
//! sent twice, except one the server answered "not now" (see below), which stored nothing.
//! Nothing is allocated by a length the server announced: a response line is read up to
//! [`MAX_LINE`], a literal grows as its bytes arrive, and a message over [`MAX_MESSAGE`] is a
//! bad item, read past without being kept. Strings that a quoted string cannot carry (CR, LF,
//! 8-bit bytes: passwords, user and folder names) are sent as literals, non-synchronising where
//! the server announced LITERAL+ (or LITERAL- for small ones); NUL cannot be sent at all.
//!
//! A server that says "not now" (RFC 5530's `[UNAVAILABLE]`, `[LIMIT]`, `[INUSE]`, a BYE, a
//! login refused over a connection limit) gives [`MailError::Throttled`] or a throttled
//! [`Refusal`], never a refusal of the mailbox or the message: connecting and reading wait for
//! the server's pause ([`throttle`]) and try again; what to resend of a batch is the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{FolderListing, MailError, MessageMeta, Refusal};
use crate::items::folders::{check_name, join_levels};
use crate::items::identity::{IDENTITY_FIELDS, identity, parse_headers};
use crate::items::throttle;
use crate::items::{BadItem, civil_from_days, days_from_civil, mutf7};
use crate::spec::{ImapAuth, ImapSecurity, ImapStore};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Reader = BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>;
type Writer = tokio::io::WriteHalf<Box<dyn Stream>>;

/// One pipelined APPEND: its tag, the command up to the literal, the message, and whether the
/// literal must wait for the server's continuation.
type Append<'a> = (String, Vec<u8>, std::borrow::Cow<'a, [u8]>, bool);

/// The longest response line accepted, its literals not counted. The longest lines mailplan
/// asks for are a FETCH line with a message's flags and a LIST entry, both far below this;
/// SEARCH, whose answer grows with the folder, is never sent.
const MAX_LINE: usize = 1 << 20;
/// The largest message copied from an IMAP server, and the most one response may hold in
/// literals. A larger message is a bad item; its bytes are read past, not kept.
pub const MAX_MESSAGE: usize = 256 << 20;
/// The most the untagged answers to one command other than a FETCH may take together
/// (CAPABILITY, LIST, LSUB, EXAMINE): a LIST of 100,000 folders takes a few megabytes.
const MAX_UNTAGGED: usize = 64 << 20;
/// How many answers a command may bring beyond the ones it asks for (untagged ones nobody
/// asked for: EXPUNGE, FLAGS, `OK Still here`…); more, from a server that keeps talking without
/// ever answering, is refused.
const MAX_ASIDE: u64 = 10_000;
/// Bytes moved that count as progress and start the deadline again.
const PROGRESS: u64 = 64 << 10;
/// How often connecting (with logging in), a listing or a fetch is tried when the connection
/// fails, closes or times out.
const ATTEMPTS: u32 = 3;
/// The largest literal LITERAL- (RFC 7888) lets a client send without waiting.
const LITERAL_MINUS: usize = 4096;
/// Writes go out in pieces of this size, each with its deadline.
const WRITE_PIECE: usize = 64 << 10;

/// What one session accepts from its server.
#[derive(Debug, Clone, Copy)]
struct Limits {
    line: usize,
    literal: usize,
    untagged: usize,
}

const LIMITS: Limits = Limits {
    line: MAX_LINE,
    literal: MAX_MESSAGE,
    untagged: MAX_UNTAGGED,
};

/// `256 MiB`, `4 KiB` or `100 bytes`, for limits in messages.
fn size_text(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

// ---- Deadlines ----

/// The deadline of one session's waits: `timeout` after the last sign of progress (a command
/// sent, a tagged answer, [`PROGRESS`] bytes moved in either direction). Shared by the reading
/// and the writing half of a pipelined command, so that bytes going out keep a wait for the
/// answer alive. While paused (the session waits for something else: another session's batch,
/// or its own share of a copy between two servers) there is no deadline.
struct Clock {
    timeout: Duration,
    base: Instant,
    /// Nanoseconds after `base` of the last progress.
    mark: AtomicU64,
    /// Bytes moved since then, either way.
    moved: AtomicU64,
    /// Bytes received since then.
    arrived: AtomicU64,
    /// Nanoseconds after `base`, plus one, since when it is paused; 0 while it runs.
    paused: AtomicU64,
}

impl Clock {
    fn new(timeout: Duration) -> Clock {
        Clock {
            timeout: timeout.max(Duration::from_millis(1)),
            base: Instant::now(),
            mark: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            paused: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Something happened: the deadline starts again.
    fn reset(&self) {
        self.mark.store(self.now(), Ordering::Relaxed);
        self.moved.store(0, Ordering::Relaxed);
        self.arrived.store(0, Ordering::Relaxed);
    }

    /// `n` bytes moved (`received`: from the server).
    fn moved(&self, n: usize, received: bool) {
        let n = n as u64;
        if received {
            self.arrived.fetch_add(n, Ordering::Relaxed);
        }
        if self.moved.fetch_add(n, Ordering::Relaxed) + n >= PROGRESS {
            self.reset();
        }
    }

    fn pause(&self) {
        self.paused.store(self.now() + 1, Ordering::Relaxed);
    }

    /// Ends a pause: its time does not count (from the last progress on, if that came during
    /// the pause).
    fn resume(&self) {
        let since = self.paused.swap(0, Ordering::Relaxed);
        if since > 0 {
            let mark = self.mark.load(Ordering::Relaxed);
            let from = (since - 1).max(mark);
            let away = self.now().saturating_sub(from);
            self.mark.store(mark + away, Ordering::Relaxed);
        }
    }

    /// When the current wait ends; `None` while paused.
    fn deadline(&self) -> Option<Instant> {
        if self.paused.load(Ordering::Relaxed) != 0 {
            return None;
        }
        let mark = Duration::from_nanos(self.mark.load(Ordering::Relaxed));
        Some(self.base + mark + self.timeout)
    }
}

/// Why a wait or an exchange with the server failed.
#[derive(Debug)]
enum Fail {
    /// Nothing, or too little, arrived before the deadline; `note` tells more (`; 10 of the …`).
    Timeout {
        arrived: u64,
        note: String,
    },
    Closed {
        note: String,
    },
    Io(std::io::Error),
    /// The server ended the session (an untagged BYE).
    Bye(String),
    /// The server broke a bound or the protocol: trying again would not help.
    Refused(String),
}

/// Counts an answer a loop reads past; refuses the [`MAX_ASIDE`]th.
fn count_aside(n: &mut u64) -> Result<(), Fail> {
    *n += 1;
    if *n > MAX_ASIDE {
        return Err(Fail::Refused(format!(
            "the server sent more than {MAX_ASIDE} answers nothing asked for"
        )));
    }
    Ok(())
}

/// Runs `f` under `clock`'s deadline, which other waits may move on while it runs.
async fn within<T>(clock: &Clock, f: impl Future<Output = T>) -> Result<T, Fail> {
    tokio::pin!(f);
    loop {
        let until = clock
            .deadline()
            .unwrap_or_else(|| Instant::now() + clock.timeout);
        match tokio::time::timeout_at(tokio::time::Instant::from_std(until), &mut f).await {
            Ok(v) => return Ok(v),
            Err(_) => {
                if clock.deadline().is_some_and(|d| d <= Instant::now()) {
                    return Err(Fail::Timeout {
                        arrived: clock.arrived.load(Ordering::Relaxed),
                        note: String::new(),
                    });
                }
            }
        }
    }
}

/// [`within`] for I/O.
async fn io<T>(clock: &Clock, f: impl Future<Output = std::io::Result<T>>) -> Result<T, Fail> {
    within(clock, f).await?.map_err(Fail::Io)
}

/// The error of a failed wait for `what`, on the session of `who`: a connection failure (worth
/// another try where the operation changes nothing) or, for a broken bound, a refusal.
fn fail(who: &str, clock: &Clock, what: &str, f: Fail) -> MailError {
    let secs = clock.timeout.as_secs_f64();
    match f {
        Fail::Timeout { arrived: 0, note } => MailError::Connection(format!(
            "IMAP {who}: no answer within {secs} s while waiting for {what} (the `timeout:` setting{note})"
        )),
        Fail::Timeout { arrived, note } => MailError::Connection(format!(
            "IMAP {who}: the answer came too slowly ({arrived} byte{} within {secs} s) while waiting for {what} (the `timeout:` setting{note})",
            if arrived == 1 { "" } else { "s" }
        )),
        Fail::Closed { note } => MailError::Connection(format!(
            "IMAP {who}: the server closed the connection while waiting for {what}{}",
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({})", note.trim_start_matches("; "))
            }
        )),
        Fail::Io(e) => MailError::Connection(format!("IMAP {who}: {e} while waiting for {what}")),
        Fail::Bye(line) => MailError::Throttled {
            endpoint: endpoint_of(who).to_string(),
            message: format!(
                "IMAP {who}: the server ended the session while waiting for {what}: {line}"
            ),
            text: untagged(&line),
        },
        Fail::Refused(why) => {
            MailError::Imap(format!("IMAP {who}: {why} while waiting for {what}"))
        }
    }
}

/// The `host:port` of a session's `user@host:port`.
fn endpoint_of(who: &str) -> &str {
    who.rsplit_once('@').map_or(who, |(_, e)| e)
}

/// Whether a server's answer (a tagged NO or BAD, a BYE) asks to come back later rather than
/// refusing what was asked: RFC 5530's UNAVAILABLE, LIMIT and INUSE response codes, and
/// Dovecot's refusal of a login over `mail_max_userip_connections`, whose wording other servers
/// share.
fn throttling(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (_tag, _status) = (words.next(), words.next());
    let code = words.next().unwrap_or("").to_ascii_uppercase();
    let code = code.trim_start_matches('[');
    let code = code.split(']').next().unwrap_or("");
    matches!(code, "UNAVAILABLE" | "LIMIT" | "INUSE")
        || line
            .to_ascii_lowercase()
            .contains("maximum number of connections")
}

/// A server's answer without its tag (or `*`), as throttling is reported.
fn untagged(line: &str) -> String {
    line.split_once(' ')
        .map_or(line, |(_, rest)| rest)
        .to_string()
}

/// A server's answer, as a refusal of one message.
fn refusal(line: String) -> Refusal {
    if throttling(&line) {
        Refusal {
            text: untagged(&line),
            throttled: true,
        }
    } else {
        Refusal::from(line)
    }
}

/// Writes `bytes` in pieces, each under the deadline.
async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    bytes: &[u8],
    clock: &Clock,
) -> Result<(), Fail> {
    for piece in bytes.chunks(WRITE_PIECE) {
        io(clock, w.write_all(piece)).await?;
        clock.moved(piece.len(), false);
    }
    Ok(())
}

async fn flush<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, clock: &Clock) -> Result<(), Fail> {
    io(clock, w.flush()).await
}

// ---- Reading answers ----

/// Reads one line (through its LF) onto `out`, refusing one longer than `limit`.
async fn read_line<R: AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    out: &mut Vec<u8>,
    limit: usize,
    clock: &Clock,
) -> Result<(), Fail> {
    let start = out.len();
    loop {
        let buf = io(clock, r.fill_buf()).await?;
        if buf.is_empty() {
            return Err(Fail::Closed {
                note: String::new(),
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if out.len() - start + take > limit {
            return Err(Fail::Refused(format!(
                "the server sent a line longer than the {} accepted",
                size_text(limit)
            )));
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        clock.moved(take, true);
        if done {
            return Ok(());
        }
    }
}

/// Reads a literal of `len` bytes onto `out`, or past it (`None`), as its bytes arrive: room is
/// made for what arrived, never for what was announced. A failure says how much had arrived.
async fn read_literal<R: AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    mut out: Option<&mut Vec<u8>>,
    len: u64,
    clock: &Clock,
) -> Result<(), Fail> {
    let mut left = len;
    let note = |left: u64| {
        format!(
            "; {} of the {len} bytes of a literal had arrived",
            len - left
        )
    };
    while left > 0 {
        let buf = match io(clock, r.fill_buf()).await {
            Ok(b) => b,
            Err(Fail::Timeout { arrived, .. }) => {
                return Err(Fail::Timeout {
                    arrived,
                    note: note(left),
                });
            }
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Err(Fail::Closed { note: note(left) });
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(&buf[..take]);
        }
        r.consume(take);
        clock.moved(take, true);
        left -= take as u64;
    }
    Ok(())
}

/// The length of the literal announced at the end of a line (`{123}`, or `{123+}` as a client
/// writes it); an error when the number does not fit 64 bits.
fn literal_length(line: &[u8]) -> Result<Option<u64>, String> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = body.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "the server announced a literal of {} digits, more than any length",
                digits.len()
            )
        })
}

/// A line without its CRLF (or LF).
fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line)
}

/// Whether a response is `* <n> FETCH …`.
fn is_fetch(raw: &[u8]) -> bool {
    let Some(rest) = raw.strip_prefix(b"* ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0
        && rest
            .get(digits..digits + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b" FETCH "))
}

/// Reads one response with its literals inline. A literal that would take the response past
/// `limits.literal` is read past in a FETCH (the response then holds `{0}` in its place and
/// says how large it was, so that one message is a bad item and the session goes on) and
/// refused anywhere else.
async fn read_response<R: AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    clock: &Clock,
    limits: Limits,
) -> Result<Response, Fail> {
    let mut raw = Vec::new();
    let mut held = 0usize;
    let mut oversized = None;
    loop {
        let start = raw.len();
        read_line(r, &mut raw, limits.line, clock).await?;
        if raw.len() > limits.literal.saturating_add(limits.line) {
            return Err(Fail::Refused(format!(
                "the server sent an answer longer than the {} accepted",
                size_text(limits.literal.saturating_add(limits.line))
            )));
        }
        let Some(len) = literal_length(trim_line(&raw[start..])).map_err(Fail::Refused)? else {
            break;
        };
        match usize::try_from(len) {
            Ok(n) if held.saturating_add(n) <= limits.literal => {
                read_literal(r, Some(&mut raw), len, clock).await?;
                held += n;
            }
            _ if is_fetch(&raw) => {
                read_literal(r, None, len, clock).await?;
                oversized.get_or_insert(len);
                let open = raw[start..]
                    .iter()
                    .rposition(|&b| b == b'{')
                    .map_or(raw.len(), |i| start + i);
                raw.truncate(open);
                raw.extend_from_slice(b"{0}\r\n");
            }
            _ => {
                return Err(Fail::Refused(format!(
                    "the server announced a literal of {len} bytes, more than the {} accepted",
                    size_text(limits.literal)
                )));
            }
        }
    }
    let tag_end = raw.iter().position(|&b| b == b' ').unwrap_or(raw.len());
    let tag = String::from_utf8_lossy(&raw[..tag_end])
        .trim_end()
        .to_string();
    Ok(Response {
        tag,
        raw,
        oversized,
    })
}

// ---- Commands ----

/// A command as it goes on the wire: text, and strings that travel as literals.
struct Command {
    parts: Vec<Part>,
    /// How errors name it: the verb and its arguments, never a password.
    what: String,
}

enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

impl Command {
    fn new(verb: &str) -> Command {
        Command {
            parts: vec![Part::Text(verb.as_bytes().to_vec())],
            what: verb.to_string(),
        }
    }

    /// Text sent as written: atoms, lists, sequence sets, patterns already quoted.
    fn raw(mut self, text: &str) -> Command {
        self.text(b" ");
        self.text(text.as_bytes());
        self.what.push(' ');
        self.what.push_str(text);
        self
    }

    /// A string argument (a folder name), shown in errors.
    fn string(self, s: &str) -> Result<Command, String> {
        let shown = format!("{s:?}");
        self.push_string(s.as_bytes(), Some(&shown))
    }

    /// A string argument that errors do not show (a user name, a password).
    fn secret(self, s: &str) -> Result<Command, String> {
        self.push_string(s.as_bytes(), None)
    }

    fn push_string(mut self, s: &[u8], shown: Option<&str>) -> Result<Command, String> {
        self.text(b" ");
        match encode(s)? {
            Some(quoted) => self.text(&quoted),
            None => self.parts.push(Part::Literal(s.to_vec())),
        }
        if let Some(shown) = shown {
            self.what.push(' ');
            self.what.push_str(shown);
        }
        Ok(self)
    }

    fn text(&mut self, bytes: &[u8]) {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.extend_from_slice(bytes),
            _ => self.parts.push(Part::Text(bytes.to_vec())),
        }
    }
}

/// How an IMAP string goes on the wire: `Some` quoted string (`"` and `\` escaped), `None` for
/// a literal (it holds CR, LF or 8-bit bytes, which a quoted string cannot carry), or why it
/// cannot be sent at all.
fn encode(s: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if s.contains(&0) {
        return Err("it holds a NUL character, which no IMAP string can carry".into());
    }
    if s.iter().any(|&b| b == b'\r' || b == b'\n' || b >= 0x80) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(Some(out))
}

/// A quoted string, for a command that cannot carry a literal where it is written (a pipelined
/// APPEND's folder, always a modified UTF-7 name that passed [`check_name`]).
fn quoted(s: &str) -> Result<String, String> {
    match encode(s.as_bytes())? {
        Some(q) => Ok(String::from_utf8_lossy(&q).into_owned()),
        None => Err("it holds CR, LF or 8-bit bytes, which only a literal can carry".into()),
    }
}

// ---- Responses ----

/// A parsed response value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Val>),
    Nil,
}

impl Val {
    fn atom(&self) -> Option<&str> {
        match self {
            Val::Atom(a) => Some(a),
            _ => None,
        }
    }
    fn text(&self) -> Option<String> {
        match self {
            Val::Atom(a) => Some(a.clone()),
            Val::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// One response: `*` untagged, `+` continuation, or tagged; its bytes with literals inline.
#[derive(Debug)]
struct Response {
    tag: String,
    raw: Vec<u8>,
    /// The length of a literal too large to keep, read past and replaced by `{0}`.
    oversized: Option<u64>,
}

impl Response {
    /// The text after the tag (and after the status for tagged responses).
    fn rest(&self) -> &[u8] {
        let skip = self.tag.len() + 1;
        self.raw.get(skip..).unwrap_or(&[])
    }
    fn status(&self) -> String {
        let rest = self.rest();
        let rest = String::from_utf8_lossy(&rest[..rest.len().min(16)]);
        rest.split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    }
    fn line(&self) -> String {
        let end = self
            .raw
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(self.raw.len());
        String::from_utf8_lossy(&self.raw[..end.min(300)]).into_owned()
    }
}

pub struct Session {
    reader: Reader,
    writer: Writer,
    tag: u64,
    caps: BTreeSet<String>,
    delimiter: Option<char>,
    /// Who is logged in where (`user@host:port`, for messages), never the password.
    who: String,
    /// `host:port`, whose throttling pause this session keeps to.
    endpoint: String,
    /// The folder EXAMINEd last (wire name), so a batch of fetches in it costs no round trip.
    examined: Option<String>,
    /// Folders known to exist (wire names), so a batch of APPENDs costs no CREATE.
    created: BTreeSet<String>,
    clock: Clock,
    limits: Limits,
    /// Where the session was opened, to open it again after a failed read; `None` for a
    /// session over a stream it was given, which is not.
    origin: Option<(ImapStore, String)>,
    /// Untagged responses read while a command waited for a continuation, for its `finish`.
    early: Vec<Response>,
    /// A read or write failed, or an answer was left half read: nothing more can be said on
    /// this connection.
    broken: bool,
}

fn err(who: &str, what: impl std::fmt::Display) -> MailError {
    MailError::Imap(format!("IMAP {who}: {what}"))
}

/// What a command that expects no untagged answers does with them: lets [`MAX_ASIDE`] of them
/// pass, and refuses a server that keeps talking without ever answering.
fn aside(who: &str, what: &str) -> impl FnMut(Response) -> Result<(), MailError> + use<> {
    let (who, what) = (who.to_string(), what.to_string());
    let mut n = 0u64;
    move |_| {
        n += 1;
        if n > MAX_ASIDE {
            return Err(err(
                &who,
                format!(
                    "the server sent more than {MAX_ASIDE} other answers while waiting for the answer to {what}"
                ),
            ));
        }
        Ok(())
    }
}

/// Runs `$op` (an expression awaiting a read-only operation of `$s`) and, when the connection
/// failed, closed or timed out, tries it again on a new connection, [`ATTEMPTS`] times in all.
/// Only for operations that change nothing at the server.
/// A throttled answer (see [`throttle`]) is tried again too, on a new connection once the
/// server's pause is over, until the server has throttled too long with no progress.
macro_rules! retried {
    ($s:ident, $op:expr) => {{
        let mut attempt = 1;
        let mut reopen = false;
        loop {
            let result = if !reopen {
                $op.await
            } else {
                match $s.reconnect().await {
                    Ok(()) => $op.await,
                    Err(e) => Err(e),
                }
            };
            match result {
                Err(MailError::Throttled { endpoint, text, .. }) if $s.origin.is_some() => {
                    if let Err(reason) = throttle::throttled(&endpoint, &text, None) {
                        break Err(MailError::Connection(format!("IMAP {}: {reason}", $s.who)));
                    }
                    reopen = true;
                }
                Err(e) if e.is_connection() && attempt < ATTEMPTS && $s.origin.is_some() => {
                    tokio::time::sleep(crate::directory::ldap::backoff(attempt - 1)).await;
                    attempt += 1;
                    reopen = true;
                }
                Err(e) if attempt > 1 => break Err(e.tried(attempt)),
                Ok(v) => {
                    throttle::progress(&$s.endpoint);
                    break Ok(v);
                }
                other => break other,
            }
        }
    }};
}

impl Session {
    /// Connects, secures and logs into `user`'s mailbox; a connection that fails or times out
    /// is tried again ([`ATTEMPTS`] in all), a refused login or certificate is not. A server
    /// that throttles (a BYE at the greeting or after the login, a login refused over a
    /// connection limit) is tried again once its pause is over, until it has throttled too long
    /// with no progress.
    pub async fn connect(store: &ImapStore, user: &str) -> Result<Session, MailError> {
        let mut attempt = 1;
        loop {
            match Session::connect_once(store, user).await {
                Err(MailError::Throttled { endpoint, text, .. }) => {
                    if let Err(reason) = throttle::throttled(&endpoint, &text, None) {
                        // Like a server that cannot be reached: not a refusal of this mailbox.
                        return Err(MailError::Connection(format!(
                            "IMAP {user}@{endpoint}: {reason}"
                        )));
                    }
                }
                Err(e) if e.is_connection() && attempt < ATTEMPTS => {
                    tokio::time::sleep(crate::directory::ldap::backoff(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) if attempt > 1 => return Err(e.tried(attempt)),
                other => return other,
            }
        }
    }

    async fn connect_once(store: &ImapStore, user: &str) -> Result<Session, MailError> {
        // The endpoint as the caps and the throttling pauses name it.
        let endpoint = crate::items::caps::imap_endpoint(store);
        let who = format!("{user}@{endpoint}");
        let password = store
            .password
            .resolve()
            .map_err(|e| err(&who, format!("password: {e}")))?;
        throttle::wait(&endpoint).await;
        let clock = Clock::new(store.timeout);
        let tcp = match within(
            &clock,
            TcpStream::connect((store.host.as_str(), store.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(MailError::Connection(format!(
                    "IMAP {who}: cannot connect: {e}"
                )));
            }
            Err(f) => return Err(fail(&who, &clock, "the connection", f)),
        };
        let _ = tcp.set_nodelay(true);
        let mut stream: Box<dyn Stream> = match store.security {
            ImapSecurity::Tls => Box::new(handshake(store, tcp, &who, &clock).await?),
            _ => Box::new(tcp),
        };
        if store.security == ImapSecurity::StartTls {
            starttls(&mut stream, &who, &clock).await?;
            stream = Box::new(handshake(store, stream, &who, &clock).await?);
        }
        let mut s = Session::over(
            stream,
            who,
            clock,
            LIMITS,
            Some((store.clone(), user.to_string())),
        );
        let greeted = store.security != ImapSecurity::StartTls;
        s.start(greeted, store.auth, user, store.login.as_deref(), &password)
            .await?;
        Ok(s)
    }

    /// A session over an open stream, before its greeting.
    fn over(
        stream: Box<dyn Stream>,
        who: String,
        clock: Clock,
        limits: Limits,
        origin: Option<(ImapStore, String)>,
    ) -> Session {
        let (r, w) = tokio::io::split(stream);
        let endpoint = endpoint_of(&who).to_string();
        Session {
            endpoint,
            reader: BufReader::with_capacity(256 << 10, r),
            writer: w,
            tag: 0,
            caps: BTreeSet::new(),
            delimiter: None,
            who,
            examined: None,
            created: BTreeSet::new(),
            clock,
            limits,
            origin,
            early: Vec::new(),
            broken: false,
        }
    }

    /// Opens the session again where it was opened, keeping what is known about its folders.
    async fn reconnect(&mut self) -> Result<(), MailError> {
        let Some((store, user)) = self.origin.clone() else {
            return Err(MailError::Connection(format!(
                "IMAP {}: the session cannot be opened again",
                self.who
            )));
        };
        let mut fresh = Session::connect_once(&store, &user).await?;
        fresh.created = std::mem::take(&mut self.created);
        fresh.delimiter = self.delimiter.or(fresh.delimiter);
        *self = fresh;
        Ok(())
    }

    /// The greeting (unless STARTTLS read it already), the capabilities, the login, and the
    /// capabilities again (they may change once logged in).
    async fn start(
        &mut self,
        greeted: bool,
        auth: ImapAuth,
        user: &str,
        admin: Option<&str>,
        password: &str,
    ) -> Result<(), MailError> {
        if greeted {
            let greeting = self.read("the greeting").await?;
            if greeting.status() == "BYE" {
                self.broken = true;
                return Err(MailError::Throttled {
                    endpoint: self.endpoint.clone(),
                    message: format!(
                        "IMAP {}: the server refused the session: {}",
                        self.who,
                        greeting.line()
                    ),
                    text: untagged(&greeting.line()),
                });
            }
            self.clock.reset();
        }
        self.capabilities().await?;
        let admin = admin.unwrap_or_default();
        let unsendable = |what: &str, why: String| err(&self.who, format!("{what}: {why}"));
        let result = match auth {
            ImapAuth::Master | ImapAuth::Login => {
                let login = match auth {
                    ImapAuth::Master => format!("{user}*{admin}"),
                    _ => user.to_string(),
                };
                let command = Command::new("LOGIN")
                    .secret(&login)
                    .map_err(|why| unsendable("the user name cannot be sent", why))?
                    .secret(password)
                    .map_err(|why| unsendable("the password cannot be sent", why))?;
                self.simple(command).await.map(drop)
            }
            ImapAuth::Plain => {
                for (what, value) in [
                    ("the user name", user),
                    ("the admin login", admin),
                    ("the password", password),
                ] {
                    if value.contains('\0') {
                        return Err(unsendable(
                            &format!("{what} cannot be sent"),
                            "it holds a NUL character, which SASL PLAIN uses between its parts"
                                .into(),
                        ));
                    }
                }
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}\0{admin}\0{password}"));
                self.authenticate_plain(&token).await
            }
        };
        // Never let the server's answer to a login carry the password into an error.
        let hide = |m: String| {
            if password.is_empty() {
                m
            } else {
                m.replace(password, "********")
            }
        };
        result.map_err(|e| match e {
            MailError::Connection(m) => MailError::Connection(hide(m)),
            MailError::Throttled {
                endpoint,
                text,
                message,
            } => MailError::Throttled {
                endpoint,
                text: hide(text),
                message: hide(format!("login refused for now: {message}")),
            },
            e => err(&self.who, format!("login refused: {}", hide(e.to_string()))),
        })?;
        self.capabilities().await
    }

    /// The error for a tagged NO or BAD: throttled (see [`throttling`]) or a refusal.
    fn refused(&self, line: String) -> MailError {
        if throttling(&line) {
            MailError::Throttled {
                endpoint: self.endpoint.clone(),
                message: format!("IMAP {}: {line}", self.who),
                text: untagged(&line),
            }
        } else {
            err(&self.who, line)
        }
    }

    /// `host:port`, for the server's throttling pause.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("A{}", self.tag)
    }

    /// Reads one response; `what` names what was awaited, for a timeout's error.
    async fn read(&mut self, what: &str) -> Result<Response, MailError> {
        match read_response(&mut self.reader, &self.clock, self.limits).await {
            Ok(r) => Ok(r),
            Err(f) => {
                self.broken = true;
                Err(fail(&self.who, &self.clock, what, f))
            }
        }
    }

    /// Writes and flushes; `what` names the command, for a timeout's error. Writing is this
    /// side's move: the deadline starts from it, so time the session spent idle between
    /// commands (waiting for another session's batch, say) does not count.
    async fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), MailError> {
        self.clock.reset();
        let written = match write_all(&mut self.writer, bytes, &self.clock).await {
            Ok(()) => flush(&mut self.writer, &self.clock).await,
            Err(f) => Err(f),
        };
        written.map_err(|f| {
            self.broken = true;
            fail(
                &self.who,
                &self.clock,
                &format!("the server to take {what}"),
                f,
            )
        })
    }

    async fn capabilities(&mut self) -> Result<(), MailError> {
        let untagged = self.simple(Command::new("CAPABILITY")).await?;
        for r in untagged {
            let line = String::from_utf8_lossy(r.rest()).to_string();
            let mut words = line.split_whitespace();
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("CAPABILITY"))
            {
                self.caps = words.map(|w| w.to_ascii_uppercase()).collect();
            }
        }
        Ok(())
    }

    async fn authenticate_plain(&mut self, token: &str) -> Result<(), MailError> {
        let tag = self.next_tag();
        let what = "AUTHENTICATE PLAIN";
        if self.caps.contains("SASL-IR") {
            self.write(
                format!("{tag} AUTHENTICATE PLAIN {token}\r\n").as_bytes(),
                what,
            )
            .await?;
        } else {
            self.write(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes(), what)
                .await?;
            loop {
                let r = self.read("the continuation for AUTHENTICATE PLAIN").await?;
                if r.tag == "+" {
                    break;
                }
                if r.tag == tag {
                    return Err(self.refused(r.line()));
                }
                self.set_aside(r)?;
            }
            self.write(format!("{token}\r\n").as_bytes(), what).await?;
        }
        self.clock.reset();
        let each = aside(&self.who, what);
        self.finish(&tag, what, each).await
    }

    /// Keeps an untagged response that came while a command waited for its continuation, for
    /// its `finish`; at most [`MAX_ASIDE`] of them.
    fn set_aside(&mut self, r: Response) -> Result<(), MailError> {
        if self.early.len() as u64 >= MAX_ASIDE {
            self.broken = true;
            return Err(err(
                &self.who,
                format!(
                    "the server sent more than {MAX_ASIDE} answers while a command waited for its continuation"
                ),
            ));
        }
        self.early.push(r);
        Ok(())
    }

    /// Sends a command under `tag`: a literal goes without waiting where the server announced
    /// LITERAL+ (or LITERAL- and it is small), else after the server's `+`. The inner error is
    /// the server's refusal before the command was whole.
    async fn send(
        &mut self,
        tag: &str,
        command: &Command,
    ) -> Result<Result<(), Response>, MailError> {
        if self.broken {
            return Err(MailError::Connection(format!(
                "IMAP {}: the connection cannot be used after its earlier failure",
                self.who
            )));
        }
        let plus = self.caps.contains("LITERAL+");
        let minus = self.caps.contains("LITERAL-");
        let mut out = format!("{tag} ").into_bytes();
        for part in &command.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Literal(bytes) => {
                    let waits = !(plus || (minus && bytes.len() <= LITERAL_MINUS));
                    let mark = if waits { "" } else { "+" };
                    out.extend_from_slice(format!("{{{}{mark}}}\r\n", bytes.len()).as_bytes());
                    if waits {
                        self.write(&out, &command.what).await?;
                        out.clear();
                        self.clock.reset();
                        let what = format!("the continuation for {}", command.what);
                        loop {
                            let r = self.read(&what).await?;
                            if r.tag == "+" {
                                break;
                            }
                            if r.tag == tag {
                                self.clock.reset();
                                return Ok(Err(r));
                            }
                            self.set_aside(r)?;
                        }
                    }
                    out.extend_from_slice(bytes);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.write(&out, &command.what).await?;
        self.clock.reset();
        Ok(Ok(()))
    }

    /// Sends a command and hands each untagged response to `each`, until its tagged answer: OK,
    /// or the NO/BAD as an error.
    async fn run(
        &mut self,
        command: Command,
        each: impl FnMut(Response) -> Result<(), MailError>,
    ) -> Result<(), MailError> {
        let tag = self.next_tag();
        if let Err(refused) = self.send(&tag, &command).await? {
            return Err(self.refused(refused.line()));
        }
        self.finish(&tag, &command.what, each).await
    }

    /// Sends a command and returns its untagged responses (at most `limits.untagged` bytes of
    /// them), or the NO/BAD.
    async fn simple(&mut self, command: Command) -> Result<Vec<Response>, MailError> {
        let (who, what, limit) = (self.who.clone(), command.what.clone(), self.limits.untagged);
        let mut untagged = Vec::new();
        let mut total = 0usize;
        self.run(command, |r| {
            total = total.saturating_add(r.raw.len());
            if total > limit {
                return Err(err(
                    &who,
                    format!(
                        "the server's answer to {what} is longer than the {} accepted",
                        size_text(limit)
                    ),
                ));
            }
            untagged.push(r);
            Ok(())
        })
        .await?;
        Ok(untagged)
    }

    /// Reads until the tagged response of `tag` (the answer to `what`), handing every other
    /// response to `each` (see [`aside`] for a command that asks for none).
    async fn finish(
        &mut self,
        tag: &str,
        what: &str,
        mut each: impl FnMut(Response) -> Result<(), MailError>,
    ) -> Result<(), MailError> {
        let awaited = format!("the answer to {what}");
        let mut early = std::mem::take(&mut self.early).into_iter();
        loop {
            let r = match early.next() {
                Some(r) => r,
                None => self.read(&awaited).await?,
            };
            if r.tag == tag {
                self.clock.reset();
                return match r.status().as_str() {
                    "OK" => Ok(()),
                    _ => Err(self.refused(r.line())),
                };
            }
            if r.tag == "*" && r.status() == "BYE" {
                self.broken = true;
                return Err(fail(&self.who, &self.clock, &awaited, Fail::Bye(r.line())));
            }
            if let Err(e) = each(r) {
                // The rest of the answer is still on its way: the connection is out of step.
                self.broken = true;
                return Err(e);
            }
        }
    }

    /// Every folder's logical name (or why it has none) and wire name, from `LIST "" "*"`;
    /// `\Noselect` folders are left out.
    async fn folders(&mut self) -> Result<Vec<(Result<String, String>, String)>, MailError> {
        let untagged = self.simple(Command::new("LIST").raw("\"\" \"*\"")).await?;
        let mut out = Vec::new();
        for r in untagged {
            let vals = parse_values(r.rest()).unwrap_or_default();
            if vals
                .first()
                .and_then(Val::atom)
                .map(str::to_ascii_uppercase)
                != Some("LIST".into())
            {
                continue;
            }
            let (Some(Val::List(attrs)), Some(delim), Some(name)) =
                (vals.get(1), vals.get(2), vals.get(3).and_then(Val::text))
            else {
                continue;
            };
            let noselect = attrs.iter().any(|a| {
                a.atom().is_some_and(|a| {
                    a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
                })
            });
            let delim = delim.text().and_then(|d| d.chars().next());
            if self.delimiter.is_none() {
                self.delimiter = delim;
            }
            if noselect {
                continue;
            }
            out.push((self.logical(&name), name));
        }
        // Readable names first, by logical name; then the others by wire name.
        out.sort_by(|a, b| {
            let key = |f: &(Result<String, String>, String)| match &f.0 {
                Ok(l) => (false, l.clone()),
                Err(_) => (true, f.1.clone()),
            };
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// The level separator of this server's folder names, once they were listed.
    pub fn delimiter(&self) -> Option<char> {
        self.delimiter
    }

    /// The logical name of a wire name, or why it has none: not modified UTF-7 (which is
    /// printable ASCII only, so a byte outside it is refused too, never taken as it is), or a
    /// level that holds `/` once decoded.
    fn logical(&self, wire: &str) -> Result<String, String> {
        if let Some(c) = wire.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!(
                "it is not valid modified UTF-7: it holds {}, which modified UTF-7 writes as `&…-`",
                match c {
                    char::REPLACEMENT_CHARACTER => "bytes that are not UTF-8".to_string(),
                    c if c.is_control() => format!("the control character {:?}", c),
                    c => format!("the non-ASCII character `{c}`"),
                }
            ));
        }
        let decoded = mutf7::decode(wire).ok_or("it is not valid modified UTF-7")?;
        if decoded.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        let levels: Vec<String> = match self.delimiter {
            Some('/') => return Ok(decoded),
            Some(d) => decoded.split(d).map(str::to_string).collect(),
            None => vec![decoded],
        };
        join_levels(&levels)
    }

    /// The wire name of a logical name, which must be safe to store here.
    fn wire(&self, logical: &str) -> Result<String, MailError> {
        if logical.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        check_name(logical, self.delimiter).map_err(|why| MailError::UnsafeFolder {
            folder: logical.to_string(),
            why,
        })?;
        let name = match self.delimiter {
            Some(d) if d != '/' => logical.replace('/', &d.to_string()),
            _ => logical.to_string(),
        };
        Ok(mutf7::encode(&name))
    }

    /// `verb "name"`, or why the name cannot be sent.
    fn with_folder(&self, verb: &str, wire: &str) -> Result<Command, MailError> {
        Command::new(verb).string(wire).map_err(|why| {
            err(
                &self.who,
                format!("the folder name {wire:?} cannot be sent: {why}"),
            )
        })
    }

    /// EXAMINE (read-only, so listing never changes `\Recent` or anything else); the number of
    /// messages.
    async fn examine(&mut self, wire: &str) -> Result<u64, MailError> {
        let command = self.with_folder("EXAMINE", wire)?;
        let untagged = self.simple(command).await?;
        Ok(untagged
            .iter()
            .filter_map(|r| {
                let line = String::from_utf8_lossy(r.rest()).to_string();
                let mut w = line.split_whitespace();
                let n = w.next()?.parse::<u64>().ok()?;
                w.next()
                    .is_some_and(|x| x.eq_ignore_ascii_case("EXISTS"))
                    .then_some(n)
            })
            .next_back()
            .unwrap_or(0))
    }

    /// The wire names of the subscribed folders (`LSUB "" "*"`).
    async fn subscriptions(&mut self) -> Result<BTreeSet<String>, MailError> {
        let untagged = self.simple(Command::new("LSUB").raw("\"\" \"*\"")).await?;
        let mut out = BTreeSet::new();
        for r in untagged {
            let vals = parse_values(r.rest()).unwrap_or_default();
            let lsub = vals
                .first()
                .and_then(Val::atom)
                .is_some_and(|a| a.eq_ignore_ascii_case("LSUB"));
            if let (true, Some(name)) = (lsub, vals.get(3).and_then(Val::text)) {
                out.insert(if name.eq_ignore_ascii_case("INBOX") {
                    "INBOX".to_string()
                } else {
                    name
                });
            }
        }
        Ok(out)
    }

    /// Whether a folder with exactly this wire name is listed (and can hold messages).
    async fn exists(&mut self, wire: &str) -> Result<bool, MailError> {
        let command = Command::new("LIST").raw("\"\"");
        let command = command.string(wire).map_err(|why| {
            err(
                &self.who,
                format!("the folder name {wire:?} cannot be sent: {why}"),
            )
        })?;
        let untagged = self.simple(command).await?;
        Ok(untagged.iter().any(|r| {
            let vals = parse_values(r.rest()).unwrap_or_default();
            let selectable = match vals.get(1) {
                Some(Val::List(attrs)) => !attrs.iter().any(|a| {
                    a.atom().is_some_and(|a| {
                        a.eq_ignore_ascii_case("\\Noselect")
                            || a.eq_ignore_ascii_case("\\NonExistent")
                    })
                }),
                _ => false,
            };
            selectable && vals.get(3).and_then(Val::text).as_deref() == Some(wire)
        }))
    }

    /// CREATE, with the server's refusal as the inner error; a folder that exists already is
    /// fine (RFC 5530's ALREADYEXISTS, or a plain NO from a server that does not say why).
    pub async fn create_folder(&mut self, folder: &str) -> Result<Result<(), String>, MailError> {
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if wire == "INBOX" || self.created.contains(&wire) {
            return Ok(Ok(()));
        }
        let command = self.with_folder("CREATE", &wire)?;
        if let Err(e) = self.simple(command).await {
            if self.broken || matches!(e, MailError::Throttled { .. }) {
                return Err(e);
            }
            if !self.exists(&wire).await? {
                return Ok(Err(e.to_string()));
            }
        }
        self.created.insert(wire);
        Ok(Ok(()))
    }

    /// SUBSCRIBE, with the server's refusal as the inner error.
    pub async fn subscribe(&mut self, folder: &str) -> Result<Result<(), String>, MailError> {
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let command = self.with_folder("SUBSCRIBE", &wire)?;
        match self.simple(command).await {
            Ok(_) => Ok(Ok(())),
            Err(e) if self.broken || matches!(e, MailError::Throttled { .. }) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// Every folder with its messages (headers only); tried again on a new connection when the
    /// connection fails or times out.
    pub async fn list(&mut self) -> Result<Vec<FolderListing>, MailError> {
        retried!(self, self.list_once())
    }

    async fn list_once(&mut self) -> Result<Vec<FolderListing>, MailError> {
        let mut out = Vec::new();
        let folders = self.folders().await?;
        let subscribed = self.subscriptions().await?;
        for (logical, wire) in folders {
            let logical = match logical {
                Ok(l) => l,
                Err(why) => {
                    // How many messages it holds, if the server lets it be opened at all.
                    let what = match self.examine(&wire).await {
                        Ok(n) => {
                            self.examined = Some(wire.clone());
                            super::its_messages(n)
                        }
                        Err(e) if self.broken => return Err(e),
                        Err(_) => {
                            // A failed EXAMINE leaves no folder selected.
                            self.examined = None;
                            "its messages are".to_string()
                        }
                    };
                    let shown: String = wire.escape_debug().collect();
                    out.push(FolderListing {
                        bad: vec![BadItem {
                            location: format!("{}/{shown}", self.who),
                            message: format!(
                                "the folder name cannot be read: {why}; {what} not copied and \
                                 the folder is not created"
                            ),
                        }],
                        name: wire,
                        skipped: true,
                        ..Default::default()
                    });
                    continue;
                }
            };
            let exists = self.examine(&wire).await?;
            self.examined = Some(wire.clone());
            let mut listing = FolderListing {
                name: logical.clone(),
                subscribed: subscribed.contains(&wire),
                ..Default::default()
            };
            if exists > 0 {
                self.list_messages(&logical, exists, &mut listing).await?;
            }
            listing
                .messages
                .sort_by_key(|m| m.key.parse::<u64>().unwrap_or(u64::MAX));
            out.push(listing);
        }
        Ok(out)
    }

    /// The messages of the folder EXAMINEd last (`exists` of them, the server said) into
    /// `listing`; a message larger than [`MAX_MESSAGE`] is a bad item. A server that answers
    /// with far more messages than it said the folder holds is refused, so a listing cannot
    /// grow without end.
    async fn list_messages(
        &mut self,
        logical: &str,
        exists: u64,
        listing: &mut FolderListing,
    ) -> Result<(), MailError> {
        let who = self.who.clone();
        let limit = self.limits.literal;
        let most = exists.saturating_mul(2).saturating_add(MAX_ASIDE);
        let mut answered = 0u64;
        let command = Command::new("UID FETCH").raw(&format!(
            "1:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS ({IDENTITY_FIELDS})])"
        ));
        self.run(command, |r| {
            answered += 1;
            if answered > most {
                return Err(err(
                    &who,
                    format!(
                        "the server sent more than {most} answers listing `{logical}`, which it said holds {exists} messages"
                    ),
                ));
            }
            let Some(meta) = fetch_meta(&r, limit) else {
                return Ok(());
            };
            match meta {
                Ok(m) if m.size > limit as u64 => listing.bad.push(BadItem {
                    location: format!("{who}/{logical} UID {}", m.key),
                    message: format!(
                        "the message is {} bytes, more than the {} mailplan copies from IMAP; not copied",
                        m.size,
                        size_text(limit)
                    ),
                }),
                Ok(m) => listing.messages.push(m),
                Err(e) => listing.bad.push(BadItem {
                    location: format!("{who}/{logical}"),
                    message: e,
                }),
            }
            Ok(())
        })
        .await
    }

    /// Bodies of many messages of one folder in one command; a missing one, or one too large
    /// to hold, is `Err`. Tried again on a new connection when the connection fails or times
    /// out.
    pub async fn fetch_many(
        &mut self,
        folder: &str,
        messages: &[&MessageMeta],
    ) -> Result<Vec<Result<Vec<u8>, String>>, MailError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        retried!(self, self.fetch_many_once(folder, messages))
    }

    async fn fetch_many_once(
        &mut self,
        folder: &str,
        messages: &[&MessageMeta],
    ) -> Result<Vec<Result<Vec<u8>, String>>, MailError> {
        self.open_folder(folder).await?;
        let set = messages
            .iter()
            .map(|m| m.key.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let wanted: BTreeSet<&str> = messages.iter().map(|m| m.key.as_str()).collect();
        let limit = self.limits.literal;
        let mut held = 0usize;
        let mut bodies: BTreeMap<String, Result<Vec<u8>, String>> = BTreeMap::new();
        let most = (messages.len() as u64).saturating_add(MAX_ASIDE);
        let mut answered = 0u64;
        let who = self.who.clone();
        let command = Command::new("UID FETCH").raw(&format!("{set} (UID BODY.PEEK[])"));
        self.run(command, |r| {
            answered += 1;
            if answered > most {
                return Err(err(
                    &who,
                    format!(
                        "the server sent more than {most} answers to a fetch of {} messages",
                        messages.len()
                    ),
                ));
            }
            let oversized = r.oversized;
            let Some((uid, body)) = fetch_body(&r) else {
                return Ok(());
            };
            // Only what was asked for, once: whatever else the server sends is not kept.
            if !wanted.contains(uid.as_str()) || bodies.contains_key(&uid) {
                return Ok(());
            }
            let body = match oversized {
                Some(n) => Err(format!(
                    "the message is {n} bytes, more than the {} mailplan copies from IMAP",
                    size_text(limit)
                )),
                None if held.saturating_add(body.len()) > limit => Err(format!(
                    "not read: the server sent more than {} for this batch of messages",
                    size_text(limit)
                )),
                None => {
                    held += body.len();
                    Ok(body)
                }
            };
            bodies.insert(uid, body);
            Ok(())
        })
        .await?;
        Ok(messages
            .iter()
            .map(|m| {
                bodies
                    .remove(&m.key)
                    .unwrap_or_else(|| Err(format!("UID {} is no longer in {folder}", m.key)))
            })
            .collect())
    }

    /// EXAMINEs a folder unless it is open already.
    async fn open_folder(&mut self, folder: &str) -> Result<String, MailError> {
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = self.wire(folder)?;
        if self.examined.as_deref() != Some(wire.as_str()) {
            self.examine(&wire).await?;
            self.examined = Some(wire.clone());
        }
        Ok(wire)
    }

    pub async fn fetch(&mut self, folder: &str, m: &MessageMeta) -> Result<Vec<u8>, MailError> {
        self.fetch_many(folder, &[m])
            .await?
            .pop()
            .unwrap_or_else(|| Err("nothing fetched".into()))
            .map_err(|e| err(&self.who, e))
    }

    async fn ensure_folder(&mut self, folder: &str) -> Result<String, MailError> {
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = self.wire(folder)?;
        if wire == "INBOX" || self.created.contains(&wire) {
            return Ok(wire);
        }
        // ALREADYEXISTS (RFC 5530), or a server that just says NO: the APPEND will tell.
        let command = self.with_folder("CREATE", &wire)?;
        if let Err(e) = self.simple(command).await
            && self.broken
        {
            return Err(e);
        }
        self.created.insert(wire.clone());
        Ok(wire)
    }

    /// The quoted form of a destination folder's wire name, for an APPEND.
    fn append_target(&self, folder: &str, wire: &str) -> Result<String, MailError> {
        quoted(wire).map_err(|why| MailError::UnsafeFolder {
            folder: folder.to_string(),
            why,
        })
    }

    /// APPENDs a batch into one folder (created when missing), in order; one result per
    /// message. `commit` resolves when this batch may be stored: when the batch before it into
    /// the same folder, on another session, is stored, so UIDs follow the source's order.
    ///
    /// With MULTIAPPEND (RFC 3502) and LITERAL+ the batch is one command, and so one server
    /// transaction that gives its messages consecutive UIDs: everything but the command's final
    /// CRLF is sent at once (the server stores the messages as they arrive), then `commit` is
    /// awaited, then the CRLF commits them. A refused multiappend stores nothing: it is sent
    /// again as one pipelined APPEND per message, so each message gets its own answer and one bad
    /// message stays one bad item. Without MULTIAPPEND, `commit` is awaited first and the
    /// APPENDs are pipelined.
    ///
    /// Nothing here is sent twice after a timeout or a dropped connection: whether the server
    /// stored the messages is then unknown, and an APPEND sent again could store them twice. The
    /// session fails instead; a rerun works out what is missing from the ledger and from the
    /// destination's own listing, which shows what did arrive. A message the server answered
    /// "not now" (a throttled [`Refusal`]; a refused multiappend stores nothing) is the caller's
    /// to send again.
    pub async fn append_batch(
        &mut self,
        folder: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
        commit: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<Result<(), Refusal>>, MailError> {
        let wire = self.ensure_folder(folder).await?;
        let target = self.append_target(folder, &wire)?;
        if self.caps.contains("MULTIAPPEND") && self.caps.contains("LITERAL+") {
            match self.multiappend(&target, batch, commit).await? {
                Ok(()) => return Ok(vec![Ok(()); batch.len()]),
                Err(why) if batch.len() == 1 || throttling(&why) => {
                    return Ok(vec![Err(refusal(why)); batch.len()]);
                }
                Err(_) => {}
            }
        } else {
            commit.await;
        }
        self.append_each(&target, batch).await
    }

    /// One APPEND command for the whole batch into the (quoted) folder `target` (see
    /// [`Session::append_batch`]); the inner error is the server's refusal of it.
    async fn multiappend(
        &mut self,
        target: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
        commit: impl std::future::Future<Output = ()>,
    ) -> Result<Result<(), String>, MailError> {
        if self.broken {
            return Err(self.unusable());
        }
        let tag = self.next_tag();
        let what = format!("APPEND {target}");
        self.clock.reset();
        let (writer, reader, clock, limits) =
            (&mut self.writer, &mut self.reader, &self.clock, self.limits);
        let write = async {
            write_all(writer, format!("{tag} APPEND {target}").as_bytes(), clock).await?;
            for (m, data) in batch {
                let data = crlf(data);
                let head = format!(
                    " ({}) \"{}\" {{{}+}}\r\n",
                    append_flags(m).join(" "),
                    internal_date(m.internal_date),
                    data.len()
                );
                write_all(writer, head.as_bytes(), clock).await?;
                write_all(writer, &data, clock).await?;
            }
            flush(writer, clock).await?;
            // Waiting for the batch before this one is no fault of this server's.
            clock.pause();
            commit.await;
            clock.resume();
            write_all(writer, b"\r\n", clock).await?;
            flush(writer, clock).await
        };
        // The server may refuse before the command ends (it still reads the rest of it).
        let read = async {
            let mut ignored = 0;
            loop {
                let r = read_response(reader, clock, limits).await?;
                if r.tag == tag {
                    clock.reset();
                    return Ok(if r.status() == "OK" {
                        Ok(())
                    } else {
                        Err(r.line())
                    });
                }
                if r.tag == "*" && r.status() == "BYE" {
                    return Err(Fail::Bye(r.line()));
                }
                count_aside(&mut ignored)?;
            }
        };
        let (w, r) = tokio::join!(write, read);
        if let Err(f) = w {
            self.broken = true;
            return Err(fail(
                &self.who,
                &self.clock,
                &format!("the server to take {what}"),
                f,
            ));
        }
        r.map_err(|f| {
            self.broken = true;
            fail(&self.who, &self.clock, &format!("the answer to {what}"), f)
        })
    }

    fn unusable(&self) -> MailError {
        MailError::Connection(format!(
            "IMAP {}: the connection cannot be used after its earlier failure",
            self.who
        ))
    }

    /// One APPEND per message into the (quoted) folder `target`, pipelined when the server
    /// takes non-synchronising literals; one result per message, in order, each the server's own
    /// answer to it.
    async fn append_each(
        &mut self,
        target: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
    ) -> Result<Vec<Result<(), Refusal>>, MailError> {
        if self.broken {
            return Err(self.unusable());
        }
        let literal_plus = self.caps.contains("LITERAL+");
        let literal_minus = self.caps.contains("LITERAL-");
        let what = format!("APPEND {target}");
        let mut commands: Vec<Append<'_>> = Vec::with_capacity(batch.len());
        for (m, data) in batch {
            let data = crlf(data);
            let tag = self.next_tag();
            let sync = !(literal_plus || (literal_minus && data.len() <= LITERAL_MINUS));
            let head = format!(
                "{tag} APPEND {target} ({}) \"{}\" {{{}{}}}\r\n",
                append_flags(m).join(" "),
                internal_date(m.internal_date),
                data.len(),
                if sync { "" } else { "+" }
            );
            commands.push((tag, head.into_bytes(), data, sync));
        }
        let mut results: BTreeMap<String, Result<(), Refusal>> = BTreeMap::new();
        if commands.iter().any(|c| c.3) {
            // No non-synchronising literals: one APPEND at a time, waiting for `+`.
            for (tag, head, data, _) in &commands {
                self.write(head, &what).await?;
                self.clock.reset();
                let mut ignored = 0;
                loop {
                    let r = self.read(&format!("the continuation for {what}")).await?;
                    if r.tag == "+" {
                        break;
                    }
                    if r.tag == *tag {
                        results.insert(tag.clone(), Err(refusal(r.line())));
                        break;
                    }
                    let bye = r.tag == "*" && r.status() == "BYE";
                    let f = match count_aside(&mut ignored) {
                        _ if bye => Fail::Bye(r.line()),
                        Err(f) => f,
                        Ok(()) => continue,
                    };
                    self.broken = true;
                    let what = format!("the continuation for {what}");
                    return Err(fail(&self.who, &self.clock, &what, f));
                }
                if results.contains_key(tag) {
                    continue;
                }
                self.write(data, &what).await?;
                self.write(b"\r\n", &what).await?;
                self.clock.reset();
                let each = aside(&self.who, &what);
                let r = match self.finish(tag, &what, each).await {
                    Ok(()) => Ok(()),
                    Err(e) if self.broken => return Err(e),
                    Err(MailError::Throttled { text, .. }) => Err(Refusal {
                        text,
                        throttled: true,
                    }),
                    Err(e) => Err(Refusal::from(e.to_string())),
                };
                results.insert(tag.clone(), r);
            }
        } else {
            // Write every command while reading the answers, so neither side can block the
            // other on a full socket buffer.
            let tags: BTreeSet<String> = commands.iter().map(|c| c.0.clone()).collect();
            self.clock.reset();
            let (writer, reader, clock, limits) =
                (&mut self.writer, &mut self.reader, &self.clock, self.limits);
            let write = async {
                for (_, head, data, _) in &commands {
                    write_all(writer, head, clock).await?;
                    write_all(writer, data, clock).await?;
                    write_all(writer, b"\r\n", clock).await?;
                }
                flush(writer, clock).await
            };
            let read = async {
                let mut got: BTreeMap<String, Result<(), Refusal>> = BTreeMap::new();
                let mut ignored = 0;
                while got.len() < tags.len() {
                    let r = read_response(reader, clock, limits).await?;
                    if tags.contains(&r.tag) {
                        clock.reset();
                        let status = r.status();
                        got.insert(
                            r.tag.clone(),
                            if status == "OK" {
                                Ok(())
                            } else {
                                Err(refusal(r.line()))
                            },
                        );
                    } else if r.tag == "*" && r.status() == "BYE" {
                        return Err(Fail::Bye(r.line()));
                    } else {
                        count_aside(&mut ignored)?;
                    }
                }
                Ok::<_, Fail>(got)
            };
            let (w, r) = tokio::join!(write, read);
            if let Err(f) = w {
                self.broken = true;
                return Err(fail(
                    &self.who,
                    &self.clock,
                    &format!("the server to take {what}"),
                    f,
                ));
            }
            results = r.map_err(|f| {
                self.broken = true;
                fail(&self.who, &self.clock, &format!("the answer to {what}"), f)
            })?;
        }
        Ok(commands
            .iter()
            .map(|c| {
                results
                    .remove(&c.0)
                    .unwrap_or_else(|| Err(Refusal::from("no answer".to_string())))
            })
            .collect())
    }

    /// Copies one message from this (source) session straight into `dest`'s folder: the FETCH
    /// literal is written into the APPEND literal as it arrives, so a large message is never held
    /// whole. The outer error is a session failure; the inner one the message's own (gone at the
    /// source, too large, refused by the destination). Like any APPEND, never sent twice.
    pub async fn stream_to(
        &mut self,
        folder: &str,
        m: &MessageMeta,
        dest: &mut Session,
        dest_folder: &str,
    ) -> Result<Result<u64, String>, MailError> {
        self.open_folder(folder).await?;
        let dest_wire = dest.ensure_folder(dest_folder).await?;
        let target = dest.append_target(dest_folder, &dest_wire)?;
        if self.broken {
            return Err(self.unusable());
        }
        if dest.broken {
            return Err(dest.unusable());
        }
        let tag = self.next_tag();
        let what = format!("UID FETCH {} (UID BODY.PEEK[])", m.key);
        self.write(format!("{tag} {what}\r\n").as_bytes(), &what)
            .await?;
        self.clock.reset();
        let awaited = format!("the answer to {what}");
        // Up to the FETCH line that announces the body literal.
        let mut ignored = 0;
        let len = loop {
            if let Err(f) = count_aside(&mut ignored) {
                self.broken = true;
                return Err(fail(&self.who, &self.clock, &awaited, f));
            }
            let mut line = Vec::new();
            if let Err(f) =
                read_line(&mut self.reader, &mut line, self.limits.line, &self.clock).await
            {
                self.broken = true;
                return Err(fail(&self.who, &self.clock, &awaited, f));
            }
            if line.starts_with(format!("{tag} ").as_bytes()) {
                self.clock.reset();
                return Ok(Err(format!("UID {} is no longer in {folder}", m.key)));
            }
            let trimmed = trim_line(&line);
            let len = match literal_length(trimmed) {
                Ok(len) => len,
                Err(why) => {
                    self.broken = true;
                    return Err(fail(&self.who, &self.clock, &awaited, Fail::Refused(why)));
                }
            };
            if let Some(len) = len {
                let upper = String::from_utf8_lossy(trimmed).to_ascii_uppercase();
                if upper.contains("FETCH") && upper.contains("BODY[]") {
                    break len;
                }
                // Some other literal (an unsolicited response): read past it.
                if let Err(f) = read_literal(&mut self.reader, None, len, &self.clock).await {
                    self.broken = true;
                    return Err(fail(&self.who, &self.clock, &awaited, f));
                }
            }
        };
        if len > self.limits.literal as u64 {
            // Too large to copy: read past it, so the session goes on.
            if let Err(f) = read_literal(&mut self.reader, None, len, &self.clock).await {
                self.broken = true;
                return Err(fail(&self.who, &self.clock, &awaited, f));
            }
            let each = aside(&self.who, &what);
            self.finish(&tag, &what, each).await?;
            return Ok(Err(format!(
                "the message is {len} bytes, more than the {} mailplan copies from IMAP",
                size_text(self.limits.literal)
            )));
        }
        let flags = append_flags(m);
        let plus = dest.caps.contains("LITERAL+");
        let dtag = dest.next_tag();
        let dwhat = format!("APPEND {target}");
        let head = format!(
            "{dtag} APPEND {target} ({}) \"{}\" {{{len}{}}}\r\n",
            flags.join(" "),
            internal_date(m.internal_date),
            if plus { "+" } else { "" }
        );
        self.clock.pause();
        let asked = dest.write(head.as_bytes(), &dwhat).await;
        dest.clock.reset();
        let mut refused = None;
        let mut waited = Ok(());
        if asked.is_ok() && !plus {
            let continuation = format!("the continuation for {dwhat}");
            let mut ignored = 0;
            loop {
                let r = match dest.read(&continuation).await {
                    Ok(r) => r,
                    Err(e) => {
                        waited = Err(e);
                        break;
                    }
                };
                if r.tag == "+" {
                    break;
                }
                if r.tag == dtag {
                    refused = Some(r.line());
                    break;
                }
                if let Err(f) = count_aside(&mut ignored) {
                    dest.broken = true;
                    waited = Err(fail(&dest.who, &dest.clock, &continuation, f));
                    break;
                }
            }
        }
        self.clock.resume();
        asked?;
        waited?;
        // Move the literal across in pieces (or read past it when the destination said no),
        // each side's deadline stopped while the other is waited for.
        let mut left = len;
        while left > 0 {
            dest.clock.pause();
            let got = io(&self.clock, self.reader.fill_buf()).await;
            dest.clock.resume();
            let buf = match got {
                Ok([]) => {
                    self.broken = true;
                    return Err(fail(
                        &self.who,
                        &self.clock,
                        &awaited,
                        Fail::Closed {
                            note: String::new(),
                        },
                    ));
                }
                Ok(b) => b,
                Err(f) => {
                    self.broken = true;
                    return Err(fail(&self.who, &self.clock, &awaited, f));
                }
            };
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            if refused.is_none() {
                self.clock.pause();
                let sent = write_all(&mut dest.writer, &buf[..take], &dest.clock).await;
                self.clock.resume();
                if let Err(f) = sent {
                    dest.broken = true;
                    return Err(fail(
                        &dest.who,
                        &dest.clock,
                        &format!("the server to take {dwhat}"),
                        f,
                    ));
                }
            }
            self.reader.consume(take);
            self.clock.moved(take, true);
            left -= take as u64;
        }
        // The rest of the FETCH response, then its tagged OK.
        self.clock.pause();
        let each = aside(&self.who, &what);
        let fetched = self.finish(&tag, &what, each).await;
        self.clock.resume();
        fetched?;
        if let Some(why) = refused {
            // Nothing was stored: "not now" is tried again by the caller.
            if throttling(&why) {
                return Err(dest.refused(why));
            }
            return Ok(Err(why));
        }
        dest.write(b"\r\n", &dwhat).await?;
        dest.clock.reset();
        let each = aside(&dest.who, &dwhat);
        match dest.finish(&dtag, &dwhat, each).await {
            Ok(()) => Ok(Ok(len)),
            Err(e) if dest.broken || matches!(e, MailError::Throttled { .. }) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    pub async fn logout(mut self) {
        if self.broken {
            return;
        }
        // Politeness only: a server that does not answer is not waited for long.
        let bound = self.clock.timeout.min(Duration::from_secs(5));
        let _ = tokio::time::timeout(bound, self.simple(Command::new("LOGOUT"))).await;
    }
}

/// Asks for STARTTLS on a connection not yet secured, and reads until its answer; whatever was
/// read before TLS is dropped, as nothing sent before it may be trusted.
async fn starttls(stream: &mut Box<dyn Stream>, who: &str, clock: &Clock) -> Result<(), MailError> {
    let mut line = Vec::new();
    {
        let mut buf = BufReader::new(&mut *stream);
        read_line(&mut buf, &mut line, MAX_LINE, clock)
            .await
            .map_err(|f| fail(who, clock, "the greeting", f))?;
    }
    if line.starts_with(b"* BYE") {
        return Err(MailError::Connection(format!(
            "IMAP {who}: the server refused the session: {}",
            String::from_utf8_lossy(trim_line(&line))
        )));
    }
    clock.reset();
    write_all(stream, b"S0 STARTTLS\r\n", clock)
        .await
        .map_err(|f| fail(who, clock, "the server to take STARTTLS", f))?;
    flush(stream, clock)
        .await
        .map_err(|f| fail(who, clock, "the server to take STARTTLS", f))?;
    clock.reset();
    let mut buf = BufReader::new(&mut *stream);
    let mut ignored = 0;
    loop {
        count_aside(&mut ignored).map_err(|f| fail(who, clock, "the answer to STARTTLS", f))?;
        line.clear();
        read_line(&mut buf, &mut line, MAX_LINE, clock)
            .await
            .map_err(|f| fail(who, clock, "the answer to STARTTLS", f))?;
        if let Some(rest) = line.strip_prefix(b"S0 ") {
            if !rest.to_ascii_uppercase().starts_with(b"OK") {
                return Err(err(
                    who,
                    format!(
                        "STARTTLS refused: {}",
                        String::from_utf8_lossy(&line).trim()
                    ),
                ));
            }
            clock.reset();
            return Ok(());
        }
    }
}

/// Parses response data into values (atoms, strings, literals, lists).
fn parse_values(input: &[u8]) -> Option<Vec<Val>> {
    let mut p = Parser {
        s: input,
        i: 0,
        depth: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_space();
        if p.i >= p.s.len() || p.s[p.i] == b'\r' || p.s[p.i] == b'\n' {
            return Some(out);
        }
        out.push(p.value()?);
    }
}

/// How deeply lists may nest in a response (BODYSTRUCTURE, the deepest IMAP has, needs a few
/// levels per MIME level); deeper is unreadable rather than a deep recursion.
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Val> {
        self.skip_space();
        match *self.s.get(self.i)? {
            b'(' => {
                if self.depth >= MAX_DEPTH {
                    return None;
                }
                self.depth += 1;
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match *self.s.get(self.i)? {
                        b')' => {
                            self.i += 1;
                            self.depth -= 1;
                            return Some(Val::List(items));
                        }
                        _ => items.push(self.value()?),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let c = *self.s.get(self.i)?;
                    self.i += 1;
                    match c {
                        b'\\' => {
                            out.push(*self.s.get(self.i)?);
                            self.i += 1;
                        }
                        b'"' => return Some(Val::Str(out)),
                        c => out.push(c),
                    }
                }
            }
            b'{' => {
                let close = self.s[self.i..].iter().position(|&b| b == b'}')? + self.i;
                let digits = std::str::from_utf8(&self.s[self.i + 1..close]).ok()?;
                let n: usize = digits.trim_end_matches('+').parse().ok()?;
                let mut start = close + 1;
                if self.s.get(start) == Some(&b'\r') {
                    start += 1;
                }
                if self.s.get(start) == Some(&b'\n') {
                    start += 1;
                }
                let end = start.checked_add(n)?;
                let bytes = self.s.get(start..end)?.to_vec();
                self.i = end;
                Some(Val::Str(bytes))
            }
            _ => {
                let start = self.i;
                let mut depth = 0;
                while let Some(&c) = self.s.get(self.i) {
                    match c {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b')' | b'(' | b'\r' | b'\n' if depth <= 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
                let atom = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                Some(if atom.eq_ignore_ascii_case("NIL") {
                    Val::Nil
                } else {
                    Val::Atom(atom)
                })
            }
        }
    }
}

/// The `(…)` of `* n FETCH (…)` as name → value pairs; `None` for other responses.
fn fetch_items(r: &Response) -> Option<Result<BTreeMap<String, Val>, String>> {
    if r.tag != "*" {
        return None;
    }
    let rest = r.rest();
    let text = String::from_utf8_lossy(&rest[..rest.len().min(40)]).to_ascii_uppercase();
    let mut words = text.split_whitespace();
    words.next()?.parse::<u64>().ok()?;
    if words.next() != Some("FETCH") {
        return None;
    }
    let vals = match parse_values(rest) {
        Some(v) => v,
        None => return Some(Err(format!("unreadable FETCH response: {}", r.line()))),
    };
    let mut map = BTreeMap::new();
    let Some(Val::List(items)) = vals.into_iter().nth(2) else {
        return Some(Err(format!("unreadable FETCH response: {}", r.line())));
    };
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        if let Val::Atom(name) = name {
            let name = name.to_ascii_uppercase();
            // `BODY[HEADER.FIELDS (…)]` → `BODY[HEADER`, `BODY[]` stays.
            let key = match name.find(".FIELDS") {
                Some(at) => name[..at].to_string(),
                None => name,
            };
            // Moved, not copied: a body may be megabytes.
            map.insert(key, value);
        }
    }
    Some(Ok(map))
}

/// A listing's FETCH response as a message, or why it cannot be read; `limit` is what a
/// literal (here: the headers) may take.
fn fetch_meta(r: &Response, limit: usize) -> Option<Result<MessageMeta, String>> {
    let items = match fetch_items(r)? {
        Ok(i) => i,
        Err(e) => return Some(Err(e)),
    };
    let uid = items.get("UID").and_then(Val::atom)?.to_string();
    if let Some(n) = r.oversized {
        return Some(Err(format!(
            "UID {uid}: the server sent {n} bytes of its headers, more than the {} accepted; not copied",
            size_text(limit)
        )));
    }
    let size: u64 = items
        .get("RFC822.SIZE")
        .and_then(Val::atom)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut flags: Vec<String> = match items.get("FLAGS") {
        Some(Val::List(f)) => f
            .iter()
            .filter_map(|v| v.atom().map(str::to_string))
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .collect(),
        _ => Vec::new(),
    };
    flags.sort();
    let date = items
        .get("INTERNALDATE")
        .and_then(Val::text)
        .and_then(|d| parse_internal_date(&d))
        .unwrap_or(0);
    let header = match items.get("BODY[HEADER") {
        Some(Val::Str(h)) => h.clone(),
        _ => Vec::new(),
    };
    let headers = parse_headers(&header);
    Some(Ok(MessageMeta {
        identity: identity(&headers, size),
        key: uid,
        size,
        flags,
        internal_date: date,
    }))
}

fn fetch_body(r: &Response) -> Option<(String, Vec<u8>)> {
    let mut items = fetch_items(r)?.ok()?;
    let uid = items.get("UID").and_then(Val::atom)?.to_string();
    match items.remove("BODY[]")? {
        Val::Str(b) => Some((uid, b)),
        _ => None,
    }
}

/// The flags an APPEND sets: the message's, without `\Recent` (only a server sets it).
fn append_flags(m: &MessageMeta) -> Vec<&str> {
    m.flags
        .iter()
        .map(String::as_str)
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect()
}

/// Bare LFs become CRLF: IMAP transfers messages with CRLF line ends. A message that has none
/// (anything read from an IMAP server) is not copied.
fn crlf(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = data
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    if !bare {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    std::borrow::Cow::Owned(out)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `17-Jul-1996 02:44:25 +0000` for seconds since 1970.
fn internal_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an INTERNALDATE (`17-Jul-1996 02:44:25 -0700`, day possibly space-padded); a field
/// out of its range (a year of more than four digits, an hour past 23) is no date.
fn parse_internal_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let mut parts = date.split('-');
    let d: u32 = parts.next()?.trim().parse().ok()?;
    let mon = parts.next()?;
    let y: i64 = parts.next()?.parse().ok()?;
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as u32 + 1;
    let mut rest = rest.split_whitespace();
    let time = rest.next()?;
    let zone = rest.next().unwrap_or("+0000");
    let mut t = time.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let z = zone.trim_start_matches(['+', '-']);
    let zh: i64 = z.get(..2)?.parse().ok()?;
    let zm: i64 = z.get(2..4)?.parse().ok()?;
    let in_range = (0..=9999).contains(&y)
        && (0..24).contains(&hh)
        && (0..60).contains(&mm)
        && (0..=60).contains(&ss)
        && (0..=99).contains(&zh)
        && (0..60).contains(&zm);
    if !in_range {
        return None;
    }
    let days = days_from_civil(y, m, d)?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60))
}

// ---- TLS ----

/// The TLS handshake over `stream`, with its deadline.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ImapStore,
    stream: S,
    who: &str,
    clock: &Clock,
) -> Result<tokio_rustls::client::TlsStream<S>, MailError> {
    let (connector, name) = connector(store, who)?;
    match within(clock, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => {
            clock.reset();
            Ok(tls)
        }
        Ok(Err(e)) => Err(err(who, format!("TLS handshake failed: {e}"))),
        Err(f) => Err(fail(who, clock, "the TLS handshake", f)),
    }
}

fn connector(
    store: &ImapStore,
    who: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    MailError,
> {
    // The one TLS set-up every protocol shares: `ca_file` and `insecure` mean the same here.
    let config: Arc<rustls::ClientConfig> =
        crate::tls::client_config(store.ca_file.as_deref(), store.insecure)
            .map_err(|e| err(who, e))?;
    let name = rustls::pki_types::ServerName::try_from(store.host.clone()).map_err(|e| {
        err(
            who,
            format!("`{}` is not a TLS server name: {e}", store.host),
        )
    })?;
    Ok((tokio_rustls::TlsConnector::from(config), name))
}

// ---- Fuzzing ----

/// The user the fuzzing script logs in as, and its password: 8-bit, a quote and a backslash,
/// so the login goes as literals (see `tests/imap.rs`, which records a real server's answers
/// to this script for the fuzz corpus).
#[doc(hidden)]
pub const FUZZ_LOGIN: (&str, &str) = ("fuzz", "pä\"ss\\wörd");

/// What the fuzzing script does once logged in, on `s` (whose answers are fuzzed) and `sink`
/// (the destination a message is streamed into): list every folder, fetch up to three messages
/// of the first two folders that have any and stream the first into `sink`, make a folder and
/// append a message to it.
#[doc(hidden)]
pub async fn fuzz_script(s: &mut Session, sink: &mut Session) {
    let Ok(folders) = s.list().await else {
        return;
    };
    for f in folders
        .iter()
        .filter(|f| !f.skipped && !f.messages.is_empty())
        .take(2)
    {
        let some: Vec<&MessageMeta> = f.messages.iter().take(3).collect();
        let _ = s.fetch_many(&f.name, &some).await;
        if let Some(m) = some.first() {
            let _ = s.stream_to(&f.name, m, sink, "INBOX").await;
        }
    }
    let folder = "Fuzz/Näme \"x\" \\ y";
    let _ = s.create_folder(folder).await;
    let _ = s.subscribe(folder).await;
    let meta = MessageMeta {
        key: String::new(),
        identity: String::new(),
        size: 0,
        flags: vec!["\\Seen".into()],
        internal_date: 1_700_000_000,
    };
    let body = b"Subject: fuzz\r\n\r\nbody\r\n".to_vec();
    let _ = s
        .append_batch(folder, &[(&meta, body)], std::future::ready(()))
        .await;
}

/// Plays `data` as everything a server sends to one session (greeting, answers, literals) and
/// hangs up, while the session logs in as [`FUZZ_LOGIN`] and runs [`fuzz_script`], with small
/// bounds (4 KiB lines, 16 KiB literals) so that inputs a fuzzer makes reach them. Whatever the
/// bytes, this must return, quickly, without panicking; what the session made of them does not
/// matter.
#[doc(hidden)]
pub fn fuzz_session(data: &[u8]) {
    replay(data);
}

/// [`fuzz_session`], returning what the session sent.
fn replay(data: &[u8]) -> Vec<u8> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        let limits = Limits {
            line: 4 << 10,
            literal: 16 << 10,
            untagged: 64 << 10,
        };
        let (client, server) = tokio::io::duplex(64 << 10);
        let (mut from_client, mut to_client) = tokio::io::split(server);
        let serve = async move {
            let _ = to_client.write_all(data).await;
            let _ = to_client.shutdown().await;
        };
        let drain = async move {
            let mut sent = Vec::new();
            let mut sink = [0u8; 4096];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut from_client, &mut sink).await {
                if n == 0 {
                    break;
                }
                sent.extend_from_slice(&sink[..n.min(sink.len())]);
            }
            sent
        };
        // The destination of a streamed message: takes an APPEND and says OK.
        let (sink_client, sink_server) = tokio::io::duplex(64 << 10);
        let (mut sink_in, mut sink_out) = tokio::io::split(sink_server);
        let sink_serve = async move {
            let _ = sink_out.write_all(b"+ go\r\nA1 OK done\r\n").await;
            let _ = sink_out.shutdown().await;
            let mut buf = [0u8; 4096];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut sink_in, &mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let run = async move {
            let clock = Clock::new(Duration::from_secs(2));
            let mut s = Session::over(
                Box::new(client),
                "fuzz@fuzz:143".into(),
                clock,
                limits,
                None,
            );
            let mut sink = Session::over(
                Box::new(sink_client),
                "sink@fuzz:143".into(),
                Clock::new(Duration::from_secs(2)),
                limits,
                None,
            );
            sink.delimiter = Some('.');
            let (user, password) = FUZZ_LOGIN;
            if s.start(true, ImapAuth::Login, user, None, password)
                .await
                .is_ok()
            {
                fuzz_script(&mut s, &mut sink).await;
                s.logout().await;
            }
        };
        tokio::join!(serve, drain, sink_serve, run).1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetch_responses_with_literals_and_sections() {
        let raw = b"* 3 FETCH (UID 17 RFC822.SIZE 120 FLAGS (\\Seen $Forwarded) INTERNALDATE \"14-Nov-2023 09:12:00 +0100\" BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] {21}\r\nMessage-ID: <A@B>\r\n\r\n)\r\n";
        let r = Response {
            tag: "*".into(),
            raw: raw.to_vec(),
            oversized: None,
        };
        let m = fetch_meta(&r, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(m.key, "17");
        assert_eq!(m.size, 120);
        assert_eq!(crate::items::identity::base(&m.identity), "mid:a@b");
        assert_eq!(
            m.flags,
            vec!["$Forwarded".to_string(), "\\Seen".to_string()]
        );
        assert_eq!(m.internal_date, 1_699_949_520);
        assert_eq!(
            parse_internal_date(&internal_date(m.internal_date)),
            Some(m.internal_date)
        );
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}"), Ok(Some(12)));
        assert_eq!(literal_length(b"A1 APPEND x {12+}"), Ok(Some(12)));
        assert_eq!(literal_length(b"* OK {x}"), Ok(None));
        assert_eq!(
            literal_length(b"* 1 FETCH (BODY[] {4294967296}"),
            Ok(Some(4_294_967_296))
        );
        assert!(literal_length(b"* 1 FETCH (BODY[] {99999999999999999999999}").is_err());
        // Fields out of range are no date (and no overflow).
        assert_eq!(
            parse_internal_date("01-Jan-2024 99999999999999:00:00 +0000"),
            None
        );
        assert_eq!(
            parse_internal_date("01-Jan-9223372036854775807 00:00:00 +0000"),
            None
        );
    }

    #[test]
    fn throttling_answers_are_told_from_refusals() {
        assert!(throttling("A1 NO [LIMIT] slow down"));
        assert!(throttling("A1 NO [UNAVAILABLE] try later"));
        assert!(throttling("A1 no [inuse] busy"));
        assert!(throttling(
            "A3 NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"
        ));
        assert!(throttling(
            "* BYE Maximum number of connections from user+IP exceeded"
        ));
        assert!(!throttling("A1 NO [OVERQUOTA] mailbox full"));
        assert!(!throttling("A1 NO message too large"));
        assert!(!throttling("A1 NO the words [LIMIT] later in the text"));
        let r = refusal("A7 NO [LIMIT] slow down".into());
        assert_eq!(
            (r.text.as_str(), r.throttled),
            ("NO [LIMIT] slow down", true)
        );
        let r = refusal("A7 NO too big".into());
        assert_eq!((r.text.as_str(), r.throttled), ("A7 NO too big", false));
    }

    #[test]
    fn quotes_and_line_ends() {
        assert_eq!(
            encode(b"a\"b\\c").unwrap(),
            Some(b"\"a\\\"b\\\\c\"".to_vec())
        );
        assert_eq!(&*crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert!(matches!(crlf(b"a\r\nb"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
    }

    #[test]
    fn strings_a_quoted_string_cannot_carry_go_as_literals_and_nul_is_refused() {
        // CR, LF and 8-bit bytes: literals, never quoted strings.
        for s in ["pass\r\nA2 DELETE INBOX", "line\nend", "pässwörd", "\r"] {
            assert_eq!(encode(s.as_bytes()), Ok(None), "{s:?}");
            let c = Command::new("LOGIN")
                .secret("u")
                .unwrap()
                .secret(s)
                .unwrap();
            assert!(
                matches!(c.parts.as_slice(), [Part::Text(t), Part::Literal(l)] if t == b"LOGIN \"u\" " && l == s.as_bytes()),
                "{s:?}"
            );
            // A password is never part of how the command is named.
            assert_eq!(c.what, "LOGIN");
        }
        let e = encode(b"a\0b").unwrap_err();
        assert!(e.contains("NUL"), "{e}");
        assert!(Command::new("LOGIN").secret("a\0b").is_err());
        assert!(quoted("Sent\r\n").is_err());
        assert_eq!(quoted("Sent \"x\"").unwrap(), "\"Sent \\\"x\\\"\"");
        // A folder name is shown as it is in errors.
        let c = Command::new("EXAMINE").string("INBOX").unwrap();
        assert_eq!(c.what, "EXAMINE \"INBOX\"");
    }

    /// A session over an in-memory connection whose server sends `answers` (all at once, then
    /// nothing more) and records what the client sent; with `limits` and a 300 ms timeout.
    async fn scripted(
        answers: &'static [u8],
        limits: Limits,
    ) -> (Session, tokio::task::JoinHandle<Vec<u8>>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut from_client, mut to_client) = tokio::io::split(server);
        let heard = tokio::spawn(async move {
            let _ = to_client.write_all(answers).await;
            let mut heard = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_millis(700),
                tokio::io::AsyncReadExt::read_to_end(&mut from_client, &mut heard),
            )
            .await;
            heard
        });
        let s = Session::over(
            Box::new(client),
            "u@127.0.0.1:143".into(),
            Clock::new(Duration::from_millis(300)),
            limits,
            None,
        );
        (s, heard)
    }

    #[tokio::test]
    async fn a_synchronising_literal_waits_for_the_continuation_and_literal_plus_does_not() {
        // No LITERAL+: `{n}`, then the password only after `+`.
        let (mut s, heard) = scripted(
            b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\nA1 OK\r\n+ go on\r\nA2 OK in\r\n* CAPABILITY IMAP4rev1\r\nA3 OK\r\n",
            LIMITS,
        )
        .await;
        s.start(true, ImapAuth::Login, "u", None, "pass\r\nword")
            .await
            .unwrap();
        drop(s);
        let heard = heard.await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&heard),
            "A1 CAPABILITY\r\nA2 LOGIN \"u\" {10}\r\npass\r\nword\r\nA3 CAPABILITY\r\n"
        );
        // LITERAL+: `{n+}` and the bytes at once.
        let (mut s, heard) = scripted(
            b"* OK hi\r\n* CAPABILITY IMAP4rev1 LITERAL+\r\nA1 OK\r\nA2 OK in\r\nA3 OK\r\n",
            LIMITS,
        )
        .await;
        s.start(true, ImapAuth::Login, "u", None, "pässwörd")
            .await
            .unwrap();
        drop(s);
        let heard = heard.await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&heard),
            "A1 CAPABILITY\r\nA2 LOGIN \"u\" {10+}\r\npässwörd\r\nA3 CAPABILITY\r\n"
        );
        // NUL: refused before anything is sent, without the password in the message.
        let (mut s, _) = scripted(b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\nA1 OK\r\n", LIMITS).await;
        let e = s
            .start(true, ImapAuth::Login, "u", None, "se\0cret")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the password cannot be sent: it holds a NUL character"),
            "{e}"
        );
        assert!(!e.contains("cret"), "{e}");
    }

    #[tokio::test]
    async fn answers_are_bounded_and_a_wait_names_what_it_waited_for() {
        let small = Limits {
            line: 64,
            literal: 100,
            untagged: 1000,
        };
        // A line over the limit is refused, naming the server and what was awaited.
        let (mut s, _) = scripted(
            b"* OK aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            small,
        )
        .await;
        let e = s.read("the greeting").await.unwrap_err().to_string();
        assert_eq!(
            e,
            "IMAP u@127.0.0.1:143: the server sent a line longer than the 64 bytes accepted while waiting for the greeting"
        );
        // A literal over the limit outside a FETCH is refused.
        let (mut s, _) = scripted(b"* LIST () \".\" {4294967296}\r\nabc", small).await;
        let e = s.read("the answer to LIST").await.unwrap_err().to_string();
        assert!(
            e.contains("the server announced a literal of 4294967296 bytes, more than the 100 bytes accepted while waiting for the answer to LIST"),
            "{e}"
        );
        // In a FETCH it is read past and marked, and the session goes on.
        let (mut s, _) = scripted(
            b"* 1 FETCH (UID 7 BODY[] {150}\r\n012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789)\r\n* 2 FETCH (UID 8 BODY[] {3}\r\nabc)\r\n",
            small,
        )
        .await;
        let r = s.read("a body").await.unwrap();
        assert_eq!(r.oversized, Some(150));
        assert_eq!(fetch_body(&r), Some(("7".to_string(), Vec::new())));
        let r = s.read("a body").await.unwrap();
        assert_eq!(fetch_body(&r), Some(("8".to_string(), b"abc".to_vec())));
        // A literal that stops arriving: the deadline, with how much had come.
        let (mut s, _) = scripted(b"* 1 FETCH (UID 7 BODY[] {50}\r\n0123456789", small).await;
        let started = Instant::now();
        let e = s.read("the answer to UID FETCH 7").await.unwrap_err();
        assert!(e.is_connection(), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("the answer came too slowly (40 bytes within 0.3 s) while waiting for the answer to UID FETCH 7 (the `timeout:` setting; 10 of the 50 bytes of a literal had arrived)"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Silence.
        let (mut s, _) = scripted(b"", small).await;
        let e = s.read("the greeting").await.unwrap_err().to_string();
        assert_eq!(
            e,
            "IMAP u@127.0.0.1:143: no answer within 0.3 s while waiting for the greeting (the `timeout:` setting)"
        );
    }

    #[tokio::test]
    async fn a_server_that_keeps_talking_without_answering_is_refused() {
        let mut answers = b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\nA1 OK\r\n".to_vec();
        for _ in 0..=MAX_ASIDE {
            answers.extend_from_slice(b"* OK still here\r\n");
        }
        let (mut s, _) = scripted(answers.leak(), LIMITS).await;
        let e = s
            .start(true, ImapAuth::Plain, "u", Some("admin"), "secret")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the server sent more than 10000 answers while a command waited for its continuation"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn time_idle_between_commands_does_not_count() {
        // The server answers each command 50 ms after it arrives.
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(server);
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Commands only, not the lines of a message.
                let tag = line.split(' ').next().unwrap_or("").to_string();
                if !tag.starts_with('A') || !tag[1..].chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = w.write_all(format!("{tag} OK done\r\n").as_bytes()).await;
            }
        });
        let mut s = Session::over(
            Box::new(client),
            "u@127.0.0.1:143".into(),
            Clock::new(Duration::from_millis(200)),
            LIMITS,
            None,
        );
        s.simple(Command::new("NOOP")).await.unwrap();
        // Idle for longer than the timeout (another session's batch, say): the next command
        // still gets its full time.
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.simple(Command::new("NOOP")).await.unwrap();
        // So do pipelined APPENDs, whose answers are read while they are written.
        s.caps.insert("LITERAL+".into());
        s.delimiter = Some('.');
        tokio::time::sleep(Duration::from_millis(400)).await;
        let meta = MessageMeta {
            key: String::new(),
            identity: String::new(),
            size: 0,
            flags: Vec::new(),
            internal_date: 0,
        };
        let batch = [(&meta, b"Subject: x\r\n\r\nbody\r\n".to_vec())];
        let stored = s
            .append_batch("INBOX", &batch, std::future::ready(()))
            .await
            .unwrap();
        assert_eq!(stored, [Ok(())]);
    }

    #[tokio::test]
    async fn a_clock_paused_for_another_session_does_not_run_out() {
        let clock = Clock::new(Duration::from_millis(100));
        clock.pause();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(clock.deadline().is_none());
        clock.resume();
        let left = clock
            .deadline()
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(50), "{left:?}");
        // A wait while paused lasts until the pause ends and the deadline passes.
        clock.pause();
        let waited = within(&clock, tokio::time::sleep(Duration::from_millis(250))).await;
        assert!(waited.is_ok());
    }

    #[test]
    fn folder_names_that_are_not_modified_utf7_have_no_logical_name() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (s, _) = rt.block_on(scripted(b"", LIMITS));
        assert_eq!(s.logical("Entw&APw-rfe").as_deref(), Ok("Entwürfe"));
        for (wire, why) in [
            ("Caf\u{e9}", "the non-ASCII character `é`"),
            ("a\r\nb", "the control character '\\r'"),
            ("x\u{fffd}", "bytes that are not UTF-8"),
            ("&Jjo", "not valid modified UTF-7"),
        ] {
            let e = s.logical(wire).unwrap_err();
            assert!(e.contains(why), "{wire:?}: {e}");
        }
    }

    #[test]
    fn the_fuzz_corpus_takes_the_script_the_whole_way() {
        // Recorded from Dovecot by `tests/imap.rs`: when the script or the commands change and
        // this fails, record it again, or the fuzzer starts from answers that no longer fit.
        let sent = replay(include_bytes!(
            "../../../tests/fuzz/corpus/imap/dovecot-session.txt"
        ));
        let sent = String::from_utf8_lossy(&sent);
        for step in [
            "A2 LOGIN \"fuzz\" {12+}\r\npä\"ss\\wörd\r\n",
            "A4 LIST \"\" \"*\"\r\n",
            "A13 UID FETCH 1 (UID BODY.PEEK[])\r\n",
            "A18 CREATE \"Fuzz.N&AOQ-me \\\"x\\\" \\\\ y\"\r\n",
            "A20 APPEND \"Fuzz.N&AOQ-me \\\"x\\\" \\\\ y\" (\\Seen) ",
            "A21 LOGOUT\r\n",
        ] {
            assert!(sent.contains(step), "{step:?} not in:\n{sent}");
        }
    }

    #[test]
    fn deep_nesting_is_unreadable_not_a_deep_recursion() {
        let mut line = b"LIST ".to_vec();
        line.extend(std::iter::repeat_n(b'(', 100_000));
        assert_eq!(parse_values(&line), None);
        let mut ok = b"LIST ".to_vec();
        ok.extend(std::iter::repeat_n(b'(', 50));
        ok.extend(std::iter::repeat_n(b')', 50));
        assert!(parse_values(&ok).is_some());
    }
}
