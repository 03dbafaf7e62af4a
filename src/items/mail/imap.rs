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
//! names travel in modified UTF-7 and are logical (`/`-separated) outside this module. Secrets
//! never appear in errors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{FolderListing, MailError, MessageMeta};
use crate::items::folders::{check_name, join_levels};
use crate::items::identity::{IDENTITY_FIELDS, identity, parse_headers};
use crate::items::{BadItem, civil_from_days, days_from_civil, mutf7};
use crate::spec::{ImapAuth, ImapSecurity, ImapStore};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Reader = BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>;
type Writer = tokio::io::WriteHalf<Box<dyn Stream>>;

/// One pipelined APPEND: its tag, the command up to the literal, the message, and whether the
/// literal must wait for the server's continuation.
type Append<'a> = (String, Vec<u8>, std::borrow::Cow<'a, [u8]>, bool);

/// The longest response line or literal accepted (a body larger than this is refused as bad).
const MAX_LITERAL: usize = 256 << 20;

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
}

impl Response {
    /// The text after the tag (and after the status for tagged responses).
    fn rest(&self) -> &[u8] {
        let skip = self.tag.len() + 1;
        self.raw.get(skip..).unwrap_or(&[])
    }
    fn status(&self) -> String {
        let rest = String::from_utf8_lossy(self.rest());
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
    /// Who is logged in (for messages), never the password.
    who: String,
    /// The folder EXAMINEd last (wire name), so a batch of fetches in it costs no round trip.
    examined: Option<String>,
    /// Folders known to exist (wire names), so a batch of APPENDs costs no CREATE.
    created: BTreeSet<String>,
}

fn err(who: &str, what: impl std::fmt::Display) -> MailError {
    MailError::Imap(format!("IMAP {who}: {what}"))
}

impl Session {
    /// Connects, secures and logs into `user`'s mailbox.
    pub async fn connect(store: &ImapStore, user: &str) -> Result<Session, MailError> {
        let who = format!("{}@{}:{}", user, store.host, store.port);
        let tcp = TcpStream::connect((store.host.as_str(), store.port))
            .await
            .map_err(|e| err(&who, format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut stream: Box<dyn Stream> = match store.security {
            ImapSecurity::Tls => Box::new(tls(store, tcp, &who).await?),
            _ => Box::new(tcp),
        };
        if store.security == ImapSecurity::StartTls {
            // Before TLS nothing may be trusted: read the greeting, ask for STARTTLS, then
            // throw everything read away.
            let mut buf = BufReader::new(&mut stream);
            let mut line = Vec::new();
            buf.read_until(b'\n', &mut line)
                .await
                .map_err(|e| err(&who, e))?;
            drop(buf);
            stream
                .write_all(b"S0 STARTTLS\r\n")
                .await
                .map_err(|e| err(&who, e))?;
            let mut buf = BufReader::new(&mut stream);
            loop {
                line.clear();
                let n = buf
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| err(&who, e))?;
                if n == 0 {
                    return Err(err(&who, "the server closed the connection"));
                }
                if line.starts_with(b"S0 ") {
                    if !line[3..].to_ascii_uppercase().starts_with(b"OK") {
                        return Err(err(
                            &who,
                            format!(
                                "STARTTLS refused: {}",
                                String::from_utf8_lossy(&line).trim()
                            ),
                        ));
                    }
                    break;
                }
            }
            drop(buf);
            let tcp_again = stream;
            stream = Box::new(tls_over(store, tcp_again, &who).await?);
        }
        let (r, w) = tokio::io::split(stream);
        let mut s = Session {
            reader: BufReader::with_capacity(256 << 10, r),
            writer: w,
            tag: 0,
            caps: BTreeSet::new(),
            delimiter: None,
            who,
            examined: None,
            created: BTreeSet::new(),
        };
        if store.security != ImapSecurity::StartTls {
            let greeting = s.read_response().await?;
            if greeting.status() == "BYE" {
                return Err(err(&s.who, greeting.line()));
            }
        }
        s.capabilities().await?;
        let password = store
            .password
            .resolve()
            .map_err(|e| err(&s.who, format!("password: {e}")))?;
        let admin = store.login.clone().unwrap_or_default();
        let result = match store.auth {
            ImapAuth::Master => {
                let login = format!("{user}*{admin}");
                s.simple(&format!("LOGIN {} {}", quote(&login), quote(&password)))
                    .await
                    .map(drop)
            }
            ImapAuth::Login => s
                .simple(&format!("LOGIN {} {}", quote(user), quote(&password)))
                .await
                .map(drop),
            ImapAuth::Plain => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}\0{admin}\0{password}"));
                s.authenticate_plain(&token).await
            }
        };
        // Never let the server's answer to a login carry the password into an error.
        result.map_err(|e| {
            err(
                &s.who,
                format!(
                    "login refused: {}",
                    e.to_string().replace(&password, "********")
                ),
            )
        })?;
        s.capabilities().await?;
        Ok(s)
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("A{}", self.tag)
    }

    async fn capabilities(&mut self) -> Result<(), MailError> {
        let untagged = self.simple("CAPABILITY").await?;
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
        if self.caps.contains("SASL-IR") {
            self.send(format!("{tag} AUTHENTICATE PLAIN {token}\r\n").as_bytes())
                .await?;
        } else {
            self.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
                .await?;
            loop {
                let r = self.read_response().await?;
                if r.tag == "+" {
                    break;
                }
                if r.tag == tag {
                    return Err(err(&self.who, r.line()));
                }
            }
            self.send(format!("{token}\r\n").as_bytes()).await?;
        }
        self.finish(&tag).await.map(|_| ())
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), MailError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| err(&self.who, e))?;
        self.writer.flush().await.map_err(|e| err(&self.who, e))
    }

    /// Sends a command without literals and returns its untagged responses, or the NO/BAD.
    async fn simple(&mut self, command: &str) -> Result<Vec<Response>, MailError> {
        let tag = self.next_tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        self.finish(&tag).await
    }

    /// Reads until the tagged response of `tag`.
    async fn finish(&mut self, tag: &str) -> Result<Vec<Response>, MailError> {
        let mut untagged = Vec::new();
        loop {
            let r = self.read_response().await?;
            if r.tag == tag {
                return match r.status().as_str() {
                    "OK" => Ok(untagged),
                    _ => Err(err(&self.who, r.line())),
                };
            }
            if r.tag == "*" && r.status() == "BYE" {
                return Err(err(&self.who, r.line()));
            }
            untagged.push(r);
        }
    }

    async fn read_response(&mut self) -> Result<Response, MailError> {
        read_response(&mut self.reader)
            .await
            .map_err(|e| err(&self.who, e))
    }

    /// Every folder's logical name (or why it has none) and wire name, from `LIST "" "*"`;
    /// `\Noselect` folders are left out.
    async fn folders(&mut self) -> Result<Vec<(Result<String, String>, String)>, MailError> {
        let untagged = self.simple("LIST \"\" \"*\"").await?;
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

    /// The logical name of a wire name, or why it has none: not valid modified UTF-7, or a
    /// level that holds `/` once decoded.
    fn logical(&self, wire: &str) -> Result<String, String> {
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

    /// EXAMINE (read-only, so listing never changes `\Recent` or anything else); the number of
    /// messages.
    async fn examine(&mut self, wire: &str) -> Result<u64, MailError> {
        let untagged = self.simple(&format!("EXAMINE {}", quote(wire))).await?;
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
        let untagged = self.simple("LSUB \"\" \"*\"").await?;
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
        let untagged = self.simple(&format!("LIST \"\" {}", quote(wire))).await?;
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
        if let Err(e) = self.simple(&format!("CREATE {}", quote(&wire))).await
            && !self.exists(&wire).await?
        {
            return Ok(Err(e.to_string()));
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
        Ok(self
            .simple(&format!("SUBSCRIBE {}", quote(&wire)))
            .await
            .map(drop)
            .map_err(|e| e.to_string()))
    }

    pub async fn list(&mut self) -> Result<Vec<FolderListing>, MailError> {
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
                        Err(_) => {
                            // A failed EXAMINE leaves no folder selected.
                            self.examined = None;
                            "its messages are".to_string()
                        }
                    };
                    out.push(FolderListing {
                        bad: vec![BadItem {
                            location: format!("{}/{wire}", self.who),
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
                let untagged = self
                    .simple(&format!(
                        "UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE \
                         BODY.PEEK[HEADER.FIELDS ({IDENTITY_FIELDS})])"
                    ))
                    .await?;
                for r in untagged {
                    match fetch_meta(&r) {
                        Some(Ok(m)) => listing.messages.push(m),
                        Some(Err(e)) => listing.bad.push(BadItem {
                            location: format!("{}/{logical}", self.who),
                            message: e,
                        }),
                        None => {}
                    }
                }
            }
            listing
                .messages
                .sort_by_key(|m| m.key.parse::<u64>().unwrap_or(u64::MAX));
            out.push(listing);
        }
        Ok(out)
    }

    /// Bodies of many messages of one folder in one command; a missing one is `Err`.
    pub async fn fetch_many(
        &mut self,
        folder: &str,
        messages: &[&MessageMeta],
    ) -> Result<Vec<Result<Vec<u8>, String>>, MailError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = self.wire(folder)?;
        if self.examined.as_deref() != Some(wire.as_str()) {
            self.examine(&wire).await?;
            self.examined = Some(wire.clone());
        }
        let set = messages
            .iter()
            .map(|m| m.key.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let untagged = self
            .simple(&format!("UID FETCH {set} (UID BODY.PEEK[])"))
            .await?;
        let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for r in untagged {
            if let Some((uid, body)) = fetch_body(&r) {
                bodies.insert(uid, body);
            }
        }
        Ok(messages
            .iter()
            .map(|m| {
                bodies
                    .remove(&m.key)
                    .ok_or_else(|| format!("UID {} is no longer in {folder}", m.key))
            })
            .collect())
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
        let _ = self.simple(&format!("CREATE {}", quote(&wire))).await;
        self.created.insert(wire.clone());
        Ok(wire)
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
    pub async fn append_batch(
        &mut self,
        folder: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
        commit: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<Result<(), String>>, MailError> {
        let wire = self.ensure_folder(folder).await?;
        if self.caps.contains("MULTIAPPEND") && self.caps.contains("LITERAL+") {
            match self.multiappend(&wire, batch, commit).await? {
                Ok(()) => return Ok(vec![Ok(()); batch.len()]),
                Err(why) if batch.len() == 1 => return Ok(vec![Err(why)]),
                Err(_) => {}
            }
        } else {
            commit.await;
        }
        self.append_each(&wire, batch).await
    }

    /// One APPEND command for the whole batch (see [`Session::append_batch`]); the inner error is
    /// the server's refusal of it.
    async fn multiappend(
        &mut self,
        wire: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
        commit: impl std::future::Future<Output = ()>,
    ) -> Result<Result<(), String>, MailError> {
        let tag = self.next_tag();
        let writer = &mut self.writer;
        let reader = &mut self.reader;
        let write = async {
            writer
                .write_all(format!("{tag} APPEND {}", quote(wire)).as_bytes())
                .await?;
            for (m, data) in batch {
                let data = crlf(data);
                let head = format!(
                    " ({}) \"{}\" {{{}+}}\r\n",
                    append_flags(m).join(" "),
                    internal_date(m.internal_date),
                    data.len()
                );
                writer.write_all(head.as_bytes()).await?;
                writer.write_all(&data).await?;
            }
            writer.flush().await?;
            commit.await;
            writer.write_all(b"\r\n").await?;
            writer.flush().await
        };
        // The server may refuse before the command ends (it still reads the rest of it).
        let read = async {
            loop {
                let r = read_response(reader).await?;
                if r.tag == tag {
                    return Ok(if r.status() == "OK" {
                        Ok(())
                    } else {
                        Err(r.line())
                    });
                }
                if r.tag == "*" && r.status() == "BYE" {
                    return Err(std::io::Error::other(r.line()));
                }
            }
        };
        let (w, r) = tokio::join!(write, read);
        w.map_err(|e| err(&self.who, e))?;
        r.map_err(|e| err(&self.who, e))
    }

    /// One APPEND per message, pipelined when the server takes non-synchronising literals;
    /// one result per message, in order, each the server's own answer to it.
    async fn append_each(
        &mut self,
        wire: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
    ) -> Result<Vec<Result<(), String>>, MailError> {
        let literal_plus = self.caps.contains("LITERAL+");
        let literal_minus = self.caps.contains("LITERAL-");
        let mut commands: Vec<Append<'_>> = Vec::with_capacity(batch.len());
        for (m, data) in batch {
            let data = crlf(data);
            let tag = self.next_tag();
            let sync = !(literal_plus || (literal_minus && data.len() <= 4096));
            let head = format!(
                "{tag} APPEND {} ({}) \"{}\" {{{}{}}}\r\n",
                quote(wire),
                append_flags(m).join(" "),
                internal_date(m.internal_date),
                data.len(),
                if sync { "" } else { "+" }
            );
            commands.push((tag, head.into_bytes(), data, sync));
        }
        let mut results: BTreeMap<String, Result<(), String>> = BTreeMap::new();
        if commands.iter().any(|c| c.3) {
            // No non-synchronising literals: one APPEND at a time, waiting for `+`.
            for (tag, head, data, _) in &commands {
                self.send(head).await?;
                loop {
                    let r = self.read_response().await?;
                    if r.tag == "+" {
                        break;
                    }
                    if r.tag == *tag {
                        results.insert(tag.clone(), Err(r.line()));
                        break;
                    }
                }
                if results.contains_key(tag) {
                    continue;
                }
                self.send(data).await?;
                self.send(b"\r\n").await?;
                let r = self.finish(tag).await;
                results.insert(tag.clone(), r.map(|_| ()).map_err(|e| e.to_string()));
            }
        } else {
            // Write every command while reading the answers, so neither side can block the
            // other on a full socket buffer.
            let tags: BTreeSet<String> = commands.iter().map(|c| c.0.clone()).collect();
            let writer = &mut self.writer;
            let reader = &mut self.reader;
            let write = async {
                for (_, head, data, _) in &commands {
                    writer.write_all(head).await?;
                    writer.write_all(data).await?;
                    writer.write_all(b"\r\n").await?;
                }
                writer.flush().await
            };
            let read = async {
                let mut got: BTreeMap<String, Result<(), String>> = BTreeMap::new();
                while got.len() < tags.len() {
                    let r = read_response(reader).await?;
                    if tags.contains(&r.tag) {
                        let status = r.status();
                        got.insert(
                            r.tag.clone(),
                            if status == "OK" {
                                Ok(())
                            } else {
                                Err(r.line())
                            },
                        );
                    } else if r.tag == "*" && r.status() == "BYE" {
                        return Err(std::io::Error::other(r.line()));
                    }
                }
                Ok::<_, std::io::Error>(got)
            };
            let (w, r) = tokio::join!(write, read);
            w.map_err(|e| err(&self.who, e))?;
            results = r.map_err(|e| err(&self.who, e))?;
        }
        Ok(commands
            .iter()
            .map(|c| {
                results
                    .remove(&c.0)
                    .unwrap_or_else(|| Err("no answer".into()))
            })
            .collect())
    }

    /// Copies one message from this (source) session straight into `dest`'s folder: the FETCH
    /// literal is written into the APPEND literal as it arrives, so a large message is never held
    /// whole. The outer error is a session failure; the inner one the message's own (gone at the
    /// source, refused by the destination).
    pub async fn stream_to(
        &mut self,
        folder: &str,
        m: &MessageMeta,
        dest: &mut Session,
        dest_folder: &str,
    ) -> Result<Result<u64, String>, MailError> {
        if self.delimiter.is_none() {
            self.folders().await?;
        }
        let wire = self.wire(folder)?;
        if self.examined.as_deref() != Some(wire.as_str()) {
            self.examine(&wire).await?;
            self.examined = Some(wire.clone());
        }
        let dest_wire = dest.ensure_folder(dest_folder).await?;
        let tag = self.next_tag();
        self.send(format!("{tag} UID FETCH {} (UID BODY.PEEK[])\r\n", m.key).as_bytes())
            .await?;
        // Up to the FETCH line that announces the body literal.
        let len = loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| err(&self.who, e))?;
            if n == 0 {
                return Err(err(&self.who, "the server closed the connection"));
            }
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return Ok(Err(format!("UID {} is no longer in {folder}", m.key)));
            }
            let trimmed = line
                .strip_suffix(b"\r\n")
                .or_else(|| line.strip_suffix(b"\n"))
                .unwrap_or(&line);
            let upper = String::from_utf8_lossy(trimmed).to_ascii_uppercase();
            if let Some(len) = literal_length(trimmed) {
                if upper.contains("FETCH") && upper.contains("BODY[]") {
                    break len;
                }
                // Some other literal (an unsolicited response): skip it.
                let mut sink = vec![0u8; len.min(MAX_LITERAL)];
                self.reader
                    .read_exact(&mut sink)
                    .await
                    .map_err(|e| err(&self.who, e))?;
            }
        };
        let flags = append_flags(m);
        let plus = dest.caps.contains("LITERAL+");
        let dtag = dest.next_tag();
        let head = format!(
            "{dtag} APPEND {} ({}) \"{}\" {{{len}{}}}\r\n",
            quote(&dest_wire),
            flags.join(" "),
            internal_date(m.internal_date),
            if plus { "+" } else { "" }
        );
        dest.send(head.as_bytes()).await?;
        let mut refused = None;
        if !plus {
            loop {
                let r = dest.read_response().await?;
                if r.tag == "+" {
                    break;
                }
                if r.tag == dtag {
                    refused = Some(r.line());
                    break;
                }
            }
        }
        // Move the literal across in pieces (or drain it when the destination said no).
        let mut left = len;
        let mut buf = vec![0u8; 256 << 10];
        while left > 0 {
            let want = left.min(buf.len());
            let got = self
                .reader
                .read(&mut buf[..want])
                .await
                .map_err(|e| err(&self.who, e))?;
            if got == 0 {
                return Err(err(&self.who, "the server closed the connection"));
            }
            if refused.is_none() {
                dest.writer
                    .write_all(&buf[..got])
                    .await
                    .map_err(|e| err(&dest.who, e))?;
            }
            left -= got;
        }
        // The rest of the FETCH response, then its tagged OK.
        self.finish(&tag).await?;
        if let Some(why) = refused {
            return Ok(Err(why));
        }
        dest.send(b"\r\n").await?;
        Ok(match dest.finish(&dtag).await {
            Ok(_) => Ok(len as u64),
            Err(e) => Err(e.to_string()),
        })
    }

    pub async fn logout(mut self) {
        let _ = self.simple("LOGOUT").await;
    }
}

/// Reads one response with its literals inline.
async fn read_response(reader: &mut Reader) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        let n = reader.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if raw.len() > MAX_LITERAL {
            return Err(std::io::Error::other("response line too long"));
        }
        let line = &raw[start..];
        let trimmed = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        match literal_length(trimmed) {
            Some(len) if len <= MAX_LITERAL => {
                let at = raw.len();
                raw.resize(at + len, 0);
                reader.read_exact(&mut raw[at..]).await?;
            }
            Some(_) => return Err(std::io::Error::other("literal too large")),
            None => break,
        }
    }
    let tag_end = raw.iter().position(|&b| b == b' ').unwrap_or(raw.len());
    let tag = String::from_utf8_lossy(&raw[..tag_end])
        .trim_end()
        .to_string();
    Ok(Response { tag, raw })
}

/// `{123}` or `{123+}` at the end of a line.
fn literal_length(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses response data into values (atoms, strings, literals, lists).
fn parse_values(input: &[u8]) -> Option<Vec<Val>> {
    let mut p = Parser { s: input, i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_space();
        if p.i >= p.s.len() || p.s[p.i] == b'\r' || p.s[p.i] == b'\n' {
            return Some(out);
        }
        out.push(p.value()?);
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
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
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match *self.s.get(self.i)? {
                        b')' => {
                            self.i += 1;
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

fn fetch_meta(r: &Response) -> Option<Result<MessageMeta, String>> {
    let items = match fetch_items(r)? {
        Ok(i) => i,
        Err(e) => return Some(Err(e)),
    };
    let uid = items.get("UID").and_then(Val::atom)?.to_string();
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

/// A quoted string, or a literal-free form the server accepts: `"…"` with `\` and `"`
/// escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
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

/// Parses an INTERNALDATE (`17-Jul-1996 02:44:25 -0700`, day possibly space-padded).
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
    let days = days_from_civil(y, m, d)?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60))
}

// ---- TLS ----

async fn tls(
    store: &ImapStore,
    tcp: TcpStream,
    who: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, MailError> {
    let (connector, name) = connector(store, who)?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| err(who, format!("TLS handshake failed: {e}")))
}

async fn tls_over(
    store: &ImapStore,
    stream: Box<dyn Stream>,
    who: &str,
) -> Result<tokio_rustls::client::TlsStream<Box<dyn Stream>>, MailError> {
    let (connector, name) = connector(store, who)?;
    connector
        .connect(name, stream)
        .await
        .map_err(|e| err(who, format!("TLS handshake failed: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetch_responses_with_literals_and_sections() {
        let raw = b"* 3 FETCH (UID 17 RFC822.SIZE 120 FLAGS (\\Seen $Forwarded) INTERNALDATE \"14-Nov-2023 09:12:00 +0100\" BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] {21}\r\nMessage-ID: <A@B>\r\n\r\n)\r\n";
        let r = Response {
            tag: "*".into(),
            raw: raw.to_vec(),
        };
        let m = fetch_meta(&r).unwrap().unwrap();
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
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_length(b"A1 APPEND x {12+}"), Some(12));
        assert_eq!(literal_length(b"* OK {x}"), None);
    }

    #[test]
    fn quotes_and_line_ends() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(&*crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert!(matches!(crlf(b"a\r\nb"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
    }
}
