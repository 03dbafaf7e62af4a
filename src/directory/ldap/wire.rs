//! The connection the read side searches on: LDAP over TCP, TLS (ldaps:// or StartTLS) or a
//! Unix socket (ldapi://), with requests encoded by ldap3's `asn1` module and answers read in
//! place from the receive buffer.
//!
//! A plan reads whole directories, hundreds of thousands of entries, and ldap3's connection
//! decodes every message into a tree of heap-allocated tags and clones it before handing it out;
//! on the benchmark that cost as much CPU as the server spent answering. Here an answer is read
//! as slices of the bytes received (`ber`), and an entry is built straight from them. The write
//! side, whose messages are few and small, stays on ldap3. One operation is outstanding at a
//! time, which is all a read needs. This module must not decide anything about the entries.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ldap3::asn1::{
    ASNTag, Boolean, Enumerated, Integer, Null, OctetString, Sequence, StructureTag, Tag, TagClass,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ber::{self, BerError, Reader, tag};

/// A byte stream an LDAP session runs over.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How much is read from the socket at a time. Large reads mean few system calls: a page of a
/// thousand entries is a few hundred kilobytes.
const READ_SIZE: usize = 256 * 1024;

/// The largest message accepted (a group with millions of members is well below it).
const MAX_MESSAGE: usize = 1 << 30;

const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// An unsolicited notification (message ID 0) of this name means the server is closing.
const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";

/// Why an exchange with the server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The connection failed, closed or timed out.
    Io(String),
    /// The server's bytes are not a valid LDAP message.
    Malformed(String),
    /// The server answered the operation with this result code and message.
    Result { code: u32, message: String },
}

impl From<BerError> for WireError {
    fn from(e: BerError) -> Self {
        WireError::Malformed(format!("malformed LDAP message: {e}"))
    }
}

/// Where to connect, taken apart from an `ldap://`, `ldaps://` or `ldapi://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp { host: String, port: u16, tls: bool },
    Unix(std::path::PathBuf),
}

impl Address {
    pub fn parse(url: &str) -> Result<Address, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let scheme = parsed.scheme().to_ascii_lowercase();
        match scheme.as_str() {
            "ldap" | "ldaps" => {
                let host = match parsed.host() {
                    Some(url::Host::Ipv6(a)) => a.to_string(),
                    Some(h) => h.to_string(),
                    None => return Err("the URL names no host".into()),
                };
                let tls = scheme == "ldaps";
                let port = parsed.port().unwrap_or(if tls { 636 } else { 389 });
                Ok(Address::Tcp { host, port, tls })
            }
            "ldapi" => {
                let host = parsed.host_str().unwrap_or_default();
                let path = percent_decode(host)?;
                if path.is_empty() {
                    return Err("an ldapi:// URL needs the socket's path, percent-encoded".into());
                }
                Ok(Address::Unix(path.into()))
            }
            other => Err(format!(
                "`{other}://` is not an LDAP URL (ldap://, ldaps:// or ldapi://)"
            )),
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{s}` has a bad percent escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// One LDAP session.
pub struct Connection {
    stream: Box<dyn Stream>,
    /// Received bytes; `buf[start..]` have not been read yet.
    buf: Vec<u8>,
    start: usize,
    next_id: i64,
    timeout: Duration,
}

/// What a search found, one message at a time: an entry's contents (the SearchResultEntry's
/// elements, still encoded) or a search reference.
pub enum Found<'a> {
    Entry(&'a [u8]),
    Reference,
}

/// An LDAPMessage, read in place.
struct Message<'a> {
    id: i64,
    op: u8,
    body: &'a [u8],
    controls: Option<&'a [u8]>,
}

fn message(bytes: &[u8]) -> Result<Message<'_>, BerError> {
    let mut outer = Reader::new(bytes);
    let mut r = Reader::new(outer.expect(tag::SEQUENCE, "an LDAPMessage is not a sequence")?);
    let id = r.integer(tag::INTEGER, "an LDAPMessage has no message ID")?;
    let (op, body) = r.next()?;
    let controls = match r.peek_tag() {
        Some(tag::CONTROLS) => Some(r.next()?.1),
        // Anything else after the operation is ignored: Active Directory puts the name of its
        // notice of disconnection there.
        _ => None,
    };
    Ok(Message {
        id,
        op,
        body,
        controls,
    })
}

/// An LDAPResult's code and diagnostic message, and the reader left after them (past the
/// matched DN and any referral) for the fields some operations add.
fn result(body: &[u8]) -> Result<(u32, String, Reader<'_>), BerError> {
    let mut r = Reader::new(body);
    let code = r.integer(tag::ENUMERATED, "a result has no result code")?;
    r.expect(tag::OCTET_STRING, "a result has no matched DN")?;
    let text = r.expect(tag::OCTET_STRING, "a result has no diagnostic message")?;
    if r.peek_tag() == Some(tag::REFERRAL) {
        r.next()?;
    }
    let code = u32::try_from(code).map_err(|_| BerError("a result code is negative"))?;
    Ok((code, String::from_utf8_lossy(text).into_owned(), r))
}

/// The cookie of a paged-results response control, if the controls hold one.
fn paged_cookie(controls: &[u8]) -> Result<Option<Vec<u8>>, BerError> {
    let mut list = Reader::new(controls);
    while !list.is_empty() {
        let mut c = Reader::new(list.expect(tag::SEQUENCE, "a control is not a sequence")?);
        let oid = c.expect(tag::OCTET_STRING, "a control has no type")?;
        if c.peek_tag() == Some(tag::BOOLEAN) {
            c.next()?;
        }
        if oid != PAGED_RESULTS_OID.as_bytes() {
            continue;
        }
        let value = c.expect(tag::OCTET_STRING, "the paged results control has no value")?;
        let mut v = Reader::new(value);
        let mut fields =
            Reader::new(v.expect(tag::SEQUENCE, "the paged results value is not a sequence")?);
        fields.integer(tag::INTEGER, "the paged results value has no size")?;
        let cookie = fields.expect(tag::OCTET_STRING, "the paged results value has no cookie")?;
        return Ok(Some(cookie.to_vec()));
    }
    Ok(None)
}

fn octets(bytes: &[u8]) -> Tag {
    Tag::OctetString(OctetString {
        inner: bytes.to_vec(),
        ..Default::default()
    })
}

fn application(id: u64, inner: Vec<Tag>) -> Tag {
    Tag::Sequence(Sequence {
        id,
        class: TagClass::Application,
        inner,
    })
}

/// A control as RFC 4511 encodes it; criticality is left at its default, false.
fn control(oid: &str, value: Option<Vec<u8>>) -> Tag {
    let mut inner = vec![octets(oid.as_bytes())];
    if let Some(v) = value {
        inner.push(Tag::OctetString(OctetString {
            inner: v,
            ..Default::default()
        }));
    }
    Tag::Sequence(Sequence {
        inner,
        ..Default::default()
    })
}

/// The value of a paged-results request control (RFC 2696).
fn paged_value(size: i32, cookie: &[u8]) -> Result<Vec<u8>, WireError> {
    let value = Tag::Sequence(Sequence {
        inner: vec![
            Tag::Integer(Integer {
                inner: i64::from(size),
                ..Default::default()
            }),
            octets(cookie),
        ],
        ..Default::default()
    });
    encode(value.into_structure())
}

fn encode(tag: StructureTag) -> Result<Vec<u8>, WireError> {
    let mut buf = BytesMut::new();
    ldap3::asn1::write::encode_into(&mut buf, tag).map_err(|e| WireError::Io(e.to_string()))?;
    Ok(buf.to_vec())
}

/// An LDAPMessage: its ID, the operation and the controls, if any.
fn encode_message(id: i64, op: Tag, controls: Option<Vec<Tag>>) -> Result<Vec<u8>, WireError> {
    let mut inner = vec![
        Tag::Integer(Integer {
            inner: id,
            ..Default::default()
        }),
        op,
    ];
    if let Some(controls) = controls {
        inner.push(Tag::Sequence(Sequence {
            id: 0,
            class: TagClass::Context,
            inner: controls,
        }));
    }
    encode(
        Tag::Sequence(Sequence {
            inner,
            ..Default::default()
        })
        .into_structure(),
    )
}

/// How a search is scoped, as RFC 4511 numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base = 0,
    One = 1,
    Sub = 2,
}

impl Connection {
    /// Opens a session to `address`; `tls` is the client set-up for ldaps:// and StartTLS.
    pub async fn open(
        address: &Address,
        tls: Option<&TlsSetup>,
        starttls: bool,
        timeout: Duration,
    ) -> Result<Connection, WireError> {
        let io = |e: std::io::Error| WireError::Io(e.to_string());
        let stream: Box<dyn Stream> = match address {
            Address::Unix(path) => {
                let s = within(
                    timeout,
                    "the connection",
                    tokio::net::UnixStream::connect(path),
                )
                .await?
                .map_err(io)?;
                Box::new(s)
            }
            Address::Tcp {
                host,
                port,
                tls: tls_now,
            } => {
                let tcp = within(
                    timeout,
                    "the connection",
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await?
                .map_err(io)?;
                let _ = tcp.set_nodelay(true);
                if *tls_now {
                    let setup = tls.ok_or_else(|| WireError::Io("no TLS set-up".into()))?;
                    Box::new(setup.handshake(host, Box::new(tcp), timeout).await?)
                } else {
                    Box::new(tcp)
                }
            }
        };
        let mut conn = Connection {
            stream,
            buf: Vec::new(),
            start: 0,
            next_id: 1,
            timeout,
        };
        if starttls {
            let Address::Tcp { host, .. } = address else {
                return Err(WireError::Io("StartTLS needs a TCP connection".into()));
            };
            let setup = tls.ok_or_else(|| WireError::Io("no TLS set-up".into()))?;
            conn = conn.start_tls(host, setup).await?;
        }
        Ok(conn)
    }

    /// A session over a stream already open, for tests that play the server.
    #[cfg(test)]
    fn over(
        stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        timeout: Duration,
    ) -> Self {
        Connection {
            stream: Box::new(stream),
            buf: Vec::new(),
            start: 0,
            next_id: 1,
            timeout,
        }
    }

    async fn start_tls(mut self, host: &str, setup: &TlsSetup) -> Result<Connection, WireError> {
        let request = application(
            23,
            vec![Tag::OctetString(OctetString {
                id: 0,
                class: TagClass::Context,
                inner: STARTTLS_OID.as_bytes().to_vec(),
            })],
        );
        let id = self.send(request, None).await?;
        let range = self.receive(id, "the answer to StartTLS").await?;
        let m = message(&self.buf[range])?;
        if m.op != tag::EXTENDED_RESPONSE {
            return Err(WireError::Malformed("StartTLS was not answered".into()));
        }
        let (code, text, _) = result(m.body)?;
        if code != 0 {
            return Err(WireError::Result {
                code,
                message: format!("StartTLS refused: {text}"),
            });
        }
        if self.start != self.buf.len() {
            return Err(WireError::Malformed(
                "the server sent data before the TLS handshake".into(),
            ));
        }
        let stream = setup.handshake(host, self.stream, self.timeout).await?;
        Ok(Connection {
            stream: Box::new(stream),
            buf: Vec::new(),
            start: 0,
            next_id: self.next_id,
            timeout: self.timeout,
        })
    }

    /// A simple bind (RFC 4513 section 5.1); an empty DN and password bind anonymously.
    pub async fn simple_bind(&mut self, dn: &str, password: &str) -> Result<(), WireError> {
        let request = application(
            0,
            vec![
                Tag::Integer(Integer {
                    inner: 3,
                    ..Default::default()
                }),
                octets(dn.as_bytes()),
                Tag::OctetString(OctetString {
                    id: 0,
                    class: TagClass::Context,
                    inner: password.as_bytes().to_vec(),
                }),
            ],
        );
        self.bind(request).await
    }

    /// A SASL EXTERNAL bind: the identity is the TLS client certificate's or the Unix socket
    /// peer's.
    pub async fn sasl_external_bind(&mut self) -> Result<(), WireError> {
        let credentials = Tag::Sequence(Sequence {
            id: 3,
            class: TagClass::Context,
            inner: vec![octets(b"EXTERNAL"), octets(b"")],
        });
        let request = application(
            0,
            vec![
                Tag::Integer(Integer {
                    inner: 3,
                    ..Default::default()
                }),
                octets(b""),
                credentials,
            ],
        );
        self.bind(request).await
    }

    async fn bind(&mut self, request: Tag) -> Result<(), WireError> {
        let id = self.send(request, None).await?;
        let range = self.receive(id, "the answer to the bind").await?;
        let m = message(&self.buf[range])?;
        if m.op != tag::BIND_RESPONSE {
            return Err(WireError::Malformed("the bind was not answered".into()));
        }
        match result(m.body)? {
            (0, _, _) => Ok(()),
            (code, message, _) => Err(WireError::Result { code, message }),
        }
    }

    /// Runs one search to its end, paged when `page` is given, handing each entry and reference
    /// to `found` as it arrives. A result other than success ends it with that result.
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        page: Option<i32>,
        found: &mut dyn FnMut(Found<'_>) -> Result<(), String>,
    ) -> Result<(), WireError> {
        let filter = ldap3::parse_filter(filter)
            .map_err(|_| WireError::Io(format!("the filter `{filter}` cannot be encoded")))?;
        let mut cookie: Vec<u8> = Vec::new();
        loop {
            let request = application(
                3,
                vec![
                    octets(base.as_bytes()),
                    Tag::Enumerated(Enumerated {
                        inner: scope as i64,
                        ..Default::default()
                    }),
                    // Never dereference aliases, no size or time limit of the client's own.
                    Tag::Enumerated(Enumerated {
                        inner: 0,
                        ..Default::default()
                    }),
                    Tag::Integer(Integer {
                        inner: 0,
                        ..Default::default()
                    }),
                    Tag::Integer(Integer {
                        inner: 0,
                        ..Default::default()
                    }),
                    Tag::Boolean(Boolean {
                        inner: false,
                        ..Default::default()
                    }),
                    filter.clone(),
                    Tag::Sequence(Sequence {
                        inner: attrs.iter().map(|a| octets(a.as_bytes())).collect(),
                        ..Default::default()
                    }),
                ],
            );
            let controls = match page {
                Some(size) => Some(vec![control(
                    PAGED_RESULTS_OID,
                    Some(paged_value(size, &cookie)?),
                )]),
                None => None,
            };
            let id = self.send(request, controls).await?;
            loop {
                let range = self
                    .receive(id, "the results of the search (the next entry or page)")
                    .await?;
                let m = message(&self.buf[range])?;
                match m.op {
                    tag::SEARCH_RESULT_ENTRY => {
                        found(Found::Entry(m.body)).map_err(WireError::Malformed)?
                    }
                    tag::SEARCH_RESULT_REFERENCE => {
                        found(Found::Reference).map_err(WireError::Malformed)?
                    }
                    tag::INTERMEDIATE_RESPONSE => {}
                    tag::SEARCH_RESULT_DONE => {
                        let (code, message, _) = result(m.body)?;
                        if code != 0 {
                            return Err(WireError::Result { code, message });
                        }
                        let next = match (page, m.controls) {
                            (Some(_), Some(c)) => paged_cookie(c)?,
                            _ => None,
                        };
                        match next {
                            Some(c) if !c.is_empty() => {
                                cookie = c;
                                break;
                            }
                            _ => return Ok(()),
                        }
                    }
                    _ => {
                        return Err(WireError::Malformed(format!(
                            "a search was answered with an unexpected message (tag {:#04x})",
                            m.op
                        )));
                    }
                }
            }
        }
    }

    /// Ends the session politely; errors do not matter any more.
    pub async fn unbind(mut self) {
        let unbind = Tag::Null(Null {
            id: 2,
            class: TagClass::Application,
            inner: (),
        });
        let _ = self.send(unbind, None).await;
        let _ = self.stream.shutdown().await;
    }

    async fn send(&mut self, op: Tag, controls: Option<Vec<Tag>>) -> Result<i64, WireError> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = encode_message(id, op, controls)?;
        within(
            self.timeout,
            "a request to be sent",
            self.stream.write_all(&bytes),
        )
        .await?
        .map_err(|e| WireError::Io(e.to_string()))?;
        within(self.timeout, "a request to be sent", self.stream.flush())
            .await?
            .map_err(|e| WireError::Io(e.to_string()))?;
        Ok(id)
    }

    /// The next message for the operation `id`, as a range of `buf`; `what` names the answer
    /// awaited, for a timeout's error. A notice of disconnection ends the session with the
    /// server's reason; a message for another operation is an error.
    async fn receive(&mut self, id: i64, what: &str) -> Result<Range<usize>, WireError> {
        let range = self.next_message(what).await?;
        let m = message(&self.buf[range.clone()])?;
        if m.id == id {
            return Ok(range);
        }
        if m.id == 0 && m.op == tag::EXTENDED_RESPONSE {
            let (code, text, _) = result(m.body)?;
            let oid = NOTICE_OF_DISCONNECTION_OID;
            return Err(WireError::Io(format!(
                "the server ended the session ({}; {oid})",
                super::result_message(code, &text)
            )));
        }
        Err(WireError::Malformed(format!(
            "the server answered message {} while {id} was outstanding",
            m.id
        )))
    }

    /// Reads until a whole message is buffered; returns where it is.
    async fn next_message(&mut self, what: &str) -> Result<Range<usize>, WireError> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(len) = ber::element_len(pending)? {
                if len > MAX_MESSAGE {
                    return Err(WireError::Malformed(format!(
                        "a message of {len} bytes is larger than the {MAX_MESSAGE} accepted"
                    )));
                }
                if pending.len() >= len {
                    let range = self.start..self.start + len;
                    self.start += len;
                    return Ok(range);
                }
            }
            self.fill(what).await?;
        }
    }

    /// Reads more bytes. Room is made for one read at a time, never for the length a header
    /// announced: that is only a number the server sent, and a message's memory grows with the
    /// bytes that actually arrive (a header claiming a gigabyte followed by a few bytes costs a
    /// few hundred kilobytes).
    async fn fill(&mut self, what: &str) -> Result<(), WireError> {
        // Bytes already read are dropped only here, before a read: earlier ranges are no longer
        // in use once the caller asks for more. They are moved down only when that frees at
        // least half the buffer, so a page is not copied over and over.
        if self.start > 0 && (self.start == self.buf.len() || self.start * 2 >= self.buf.capacity())
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Grows the buffer geometrically as a large message arrives (amortised, as a vector
        // grows), into the spare capacity: nothing is zeroed first.
        self.buf.reserve(READ_SIZE);
        let n = within(self.timeout, what, self.stream.read_buf(&mut self.buf))
            .await?
            .map_err(|e| WireError::Io(e.to_string()))?;
        if n == 0 {
            return Err(WireError::Io(format!(
                "the server closed the connection while {what} was awaited"
            )));
        }
        Ok(())
    }
}

/// Reads `bytes` as a run of received messages, in place, as the connection does, handing each
/// search entry's contents to `entry`. For fuzzing the reader (`super::fuzz_reader`): it stops
/// at the first element that is not whole and ignores what cannot be read.
pub(super) fn parse_all(mut bytes: &[u8], entry: &mut dyn FnMut(&[u8])) {
    while let Ok(Some(len)) = ber::element_len(bytes) {
        let Some(one) = bytes.get(..len) else {
            return;
        };
        if let Ok(m) = message(one) {
            match m.op {
                tag::SEARCH_RESULT_ENTRY => entry(m.body),
                _ => {
                    let _ = result(m.body);
                }
            }
            if let Some(c) = m.controls {
                let _ = paged_cookie(c);
            }
        }
        bytes = &bytes[len..];
    }
}

/// Plays `answer` as all a server sends to one paged search and then hangs up, and reads it as
/// a search does, through the connection's own buffering. For fuzzing the reader.
pub(super) fn replay_search(
    answer: &[u8],
    found: &mut dyn FnMut(Found<'_>) -> Result<(), String>,
) -> Result<(), WireError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WireError::Io(e.to_string()))?;
    let answer = answer.to_vec();
    runtime.block_on(async move {
        // Room for the whole answer: the server's write never waits for a reader that gave up.
        let (client, mut server) = tokio::io::duplex(answer.len().max(64 * 1024));
        let mut conn = Connection {
            stream: Box::new(client),
            buf: Vec::new(),
            start: 0,
            next_id: 1,
            timeout: Duration::from_secs(5),
        };
        let serve = async move {
            let _ = server.write_all(&answer).await;
        };
        let (result, ()) = tokio::join!(
            conn.search(
                "DC=x",
                Scope::Sub,
                "(objectClass=*)",
                &["*"],
                Some(10),
                found
            ),
            serve
        );
        result
    })
}

/// Runs `f` with the deadline `timeout`; `what` names what was awaited in the error.
async fn within<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = T>,
) -> Result<T, WireError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| WireError::Io(super::timed_out(timeout, what)))
}

/// The TLS client set-up for one directory: the roots (or none, with `insecure: true`).
pub struct TlsSetup {
    connector: tokio_rustls::TlsConnector,
}

impl TlsSetup {
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        TlsSetup {
            connector: tokio_rustls::TlsConnector::from(config),
        }
    }

    async fn handshake(
        &self,
        host: &str,
        stream: Box<dyn Stream>,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<Box<dyn Stream>>, WireError> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| WireError::Io(format!("`{host}` is not a TLS server name: {e}")))?;
        within(
            timeout,
            "the TLS handshake",
            self.connector.connect(name, stream),
        )
        .await?
        .map_err(|e| {
            WireError::Io(format!(
                "TLS handshake failed: {}",
                crate::tls::handshake_reason(&e)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        assert_eq!(
            Address::parse("ldap://127.0.0.1:3890"),
            Ok(Address::Tcp {
                host: "127.0.0.1".into(),
                port: 3890,
                tls: false
            })
        );
        assert_eq!(
            Address::parse("LDAPS://dc1.acme.test"),
            Ok(Address::Tcp {
                host: "dc1.acme.test".into(),
                port: 636,
                tls: true
            })
        );
        assert_eq!(
            Address::parse("ldap://[::1]"),
            Ok(Address::Tcp {
                host: "::1".into(),
                port: 389,
                tls: false
            })
        );
        assert_eq!(
            Address::parse("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"),
            Ok(Address::Unix("/var/run/slapd/ldapi".into()))
        );
        assert!(
            Address::parse("http://x")
                .unwrap_err()
                .contains("not an LDAP URL")
        );
        assert!(Address::parse("ldapi://").is_err());
        assert!(Address::parse("ldapi://%2").is_err());
    }

    /// A message as a server would send it.
    fn wire(id: i64, op: Tag, controls: Option<Vec<Tag>>) -> Vec<u8> {
        encode_message(id, op, controls).unwrap()
    }

    fn done(code: i64, text: &str) -> Tag {
        application(
            5,
            vec![
                Tag::Enumerated(Enumerated {
                    inner: code,
                    ..Default::default()
                }),
                octets(b""),
                octets(text.as_bytes()),
            ],
        )
    }

    #[test]
    fn results_and_paging_cookies_are_read() {
        let bytes = wire(
            7,
            done(4, "size limit"),
            Some(vec![
                control("1.2.3", None),
                control(
                    PAGED_RESULTS_OID,
                    Some(paged_value(0, b"next-page").unwrap()),
                ),
            ]),
        );
        let m = message(&bytes).unwrap();
        assert_eq!((m.id, m.op), (7, tag::SEARCH_RESULT_DONE));
        let (code, text, _) = result(m.body).unwrap();
        assert_eq!((code, text.as_str()), (4, "size limit"));
        assert_eq!(
            paged_cookie(m.controls.unwrap()).unwrap(),
            Some(b"next-page".to_vec())
        );

        let bytes = wire(8, done(0, ""), Some(vec![control("1.2.3", None)]));
        let m = message(&bytes).unwrap();
        assert_eq!(paged_cookie(m.controls.unwrap()).unwrap(), None);
    }

    #[test]
    fn every_truncated_message_is_an_error() {
        let bytes = wire(
            3,
            done(0, "fine"),
            Some(vec![control(
                PAGED_RESULTS_OID,
                Some(paged_value(0, b"c").unwrap()),
            )]),
        );
        assert!(message(&bytes).is_ok());
        for cut in 0..bytes.len() {
            let short = &bytes[..cut];
            let parsed = message(short).and_then(|m| {
                result(m.body)?;
                m.controls.map(paged_cookie).transpose()
            });
            assert!(parsed.is_err(), "cut at {cut} was read");
        }
    }
    fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Tag {
        application(
            4,
            vec![
                octets(dn.as_bytes()),
                Tag::Sequence(Sequence {
                    inner: attrs
                        .iter()
                        .map(|(name, values)| {
                            Tag::Sequence(Sequence {
                                inner: vec![
                                    octets(name.as_bytes()),
                                    Tag::Set(ldap3::asn1::Set {
                                        inner: values.iter().map(|v| octets(v)).collect(),
                                        ..Default::default()
                                    }),
                                ],
                                ..Default::default()
                            })
                        })
                        .collect(),
                    ..Default::default()
                }),
            ],
        )
    }

    fn reference() -> Tag {
        application(19, vec![octets(b"ldap://elsewhere/DC=x")])
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Reads one request the client sent: its message ID, operation tag and paging cookie.
    async fn request(server: &mut tokio::io::DuplexStream) -> (i64, u8, Option<Vec<u8>>) {
        let mut buf = Vec::new();
        loop {
            if let Ok(Some(len)) = ber::element_len(&buf)
                && buf.len() >= len
            {
                let m = message(&buf[..len]).unwrap();
                let cookie = m.controls.map(|c| {
                    // The request control's value is the same SEQUENCE a response carries.
                    paged_cookie(c).unwrap().unwrap()
                });
                return (m.id, m.op, cookie);
            }
            let mut chunk = [0u8; 4096];
            let n = server.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client hung up");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// What a search delivered: entries by DN, references as "ref".
    fn collect<'a>(seen: &'a mut Vec<String>) -> impl FnMut(Found<'_>) -> Result<(), String> + 'a {
        |found| {
            seen.push(match found {
                Found::Entry(body) => {
                    let mut r = Reader::new(body);
                    String::from_utf8(r.expect(tag::OCTET_STRING, "dn").unwrap().to_vec()).unwrap()
                }
                Found::Reference => "ref".into(),
            });
            Ok(())
        }
    }

    #[test]
    fn a_paged_search_follows_the_cookie_and_delivers_everything_in_order() {
        runtime().block_on(async {
            let (client, mut server) = tokio::io::duplex(1 << 20);
            let mut conn = Connection::over(client, Duration::from_secs(5));
            let serve = async move {
                let (id, op, cookie) = request(&mut server).await;
                assert_eq!((op, cookie.as_deref()), (0x63, Some(&b""[..])));
                let mut page = wire(id, entry("CN=a,DC=x", &[("cn", &[b"a"])]), None);
                page.extend(wire(id, reference(), None));
                page.extend(wire(
                    id,
                    done(0, ""),
                    Some(vec![control(
                        PAGED_RESULTS_OID,
                        Some(paged_value(0, b"page2").unwrap()),
                    )]),
                ));
                // Sent a byte at a time: messages are found however the bytes arrive.
                for b in page {
                    server.write_all(&[b]).await.unwrap();
                }
                let (id2, _, cookie) = request(&mut server).await;
                assert!(id2 > id);
                assert_eq!(cookie.as_deref(), Some(&b"page2"[..]));
                let mut page = wire(id2, entry("CN=b,DC=x", &[("cn", &[b"b"])]), None);
                page.extend(wire(
                    id2,
                    done(0, ""),
                    Some(vec![control(
                        PAGED_RESULTS_OID,
                        Some(paged_value(0, b"").unwrap()),
                    )]),
                ));
                server.write_all(&page).await.unwrap();
                server
            };
            let mut seen = Vec::new();
            let mut found = collect(&mut seen);
            let (result, _server) = tokio::join!(
                conn.search(
                    "DC=x",
                    Scope::Sub,
                    "(objectClass=*)",
                    &["*"],
                    Some(1),
                    &mut found
                ),
                serve
            );
            drop(found);
            result.unwrap();
            assert_eq!(seen, ["CN=a,DC=x", "ref", "CN=b,DC=x"]);
        });
    }

    /// Runs a search against a server that answers with `answer` and then stays silent, or
    /// hangs up when `hang_up`.
    fn search_answered_with(
        answer: Vec<u8>,
        timeout: Duration,
        hang_up: bool,
    ) -> (Result<(), WireError>, Vec<String>) {
        runtime().block_on(async {
            let (client, mut server) = tokio::io::duplex(1 << 20);
            let mut conn = Connection::over(client, timeout);
            let serve = async move {
                request(&mut server).await;
                server.write_all(&answer).await.unwrap();
                (!hang_up).then_some(server)
            };
            let mut seen = Vec::new();
            let mut found = collect(&mut seen);
            let (result, _server) = tokio::join!(
                conn.search(
                    "DC=x",
                    Scope::Sub,
                    "(objectClass=*)",
                    &["*"],
                    Some(10),
                    &mut found
                ),
                serve
            );
            drop(found);
            (result, seen)
        })
    }

    #[test]
    fn a_length_the_server_announces_is_not_allocated_before_the_bytes_arrive() {
        // A header announcing a message of almost a gigabyte, a hundred bytes of it, silence.
        let mut answer = vec![0x30, 0x84, 0x3f, 0xff, 0xff, 0xf0];
        answer.extend([0x04; 100]);
        runtime().block_on(async {
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let mut conn = Connection::over(client, Duration::from_millis(200));
            let serve = async move {
                request(&mut server).await;
                server.write_all(&answer).await.unwrap();
                server
            };
            let mut found = |_: Found<'_>| Ok(());
            let (result, _server) = tokio::join!(
                conn.search(
                    "DC=x",
                    Scope::Sub,
                    "(objectClass=*)",
                    &["*"],
                    None,
                    &mut found
                ),
                serve
            );
            assert!(
                matches!(&result, Err(WireError::Io(m)) if m.contains("no answer within")),
                "{result:?}"
            );
            assert!(
                conn.buf.capacity() <= 2 * READ_SIZE,
                "{} bytes reserved for 106 received",
                conn.buf.capacity()
            );
        });
    }

    #[test]
    fn a_server_that_fails_midway_is_an_error_never_a_short_read() {
        let first = wire(1, entry("CN=a,DC=x", &[("cn", &[b"a"])]), None);
        let second = wire(1, entry("CN=b,DC=x", &[("cn", &[b"b"])]), None);

        // The connection closes in the middle of a message.
        let mut answer = first.clone();
        answer.extend(&second[..second.len() / 2]);
        let (result, seen) = search_answered_with(answer, Duration::from_secs(5), true);
        match &result {
            Err(WireError::Io(m)) => assert!(
                m.starts_with("the server closed the connection while the results of the search"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(seen, ["CN=a,DC=x"]);

        // The server goes silent: the timeout ends the wait and says which setting it was.
        let (result, _) = search_answered_with(first.clone(), Duration::from_millis(200), false);
        match result {
            Err(WireError::Io(m)) => assert!(
                m.contains("no answer within 0.2 s while waiting for the results of the search")
                    && m.contains("`timeout:`"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }

        // Bytes that are not BER.
        let (result, _) =
            search_answered_with(vec![0x30, 0x80, 0, 0], Duration::from_secs(5), false);
        assert!(matches!(result, Err(WireError::Malformed(m)) if m.contains("indefinite")));

        // A message for an operation that is not outstanding.
        let (result, _) =
            search_answered_with(wire(9, done(0, ""), None), Duration::from_secs(5), false);
        assert!(matches!(result, Err(WireError::Malformed(m)) if m.contains("message 9")));

        // A notice of disconnection carries the server's reason.
        let notice = application(
            24,
            vec![
                Tag::Enumerated(Enumerated {
                    inner: 52,
                    ..Default::default()
                }),
                octets(b""),
                octets(b"shutting down"),
            ],
        );
        let (result, _) =
            search_answered_with(wire(0, notice, None), Duration::from_secs(5), false);
        match result {
            Err(WireError::Io(m)) => {
                assert!(m.contains("unavailable (52): shutting down"), "{m}")
            }
            other => panic!("{other:?}"),
        }

        // A result other than success ends the search with it.
        let (result, _) = search_answered_with(
            wire(1, done(4, "too many"), None),
            Duration::from_secs(5),
            false,
        );
        assert_eq!(
            result,
            Err(WireError::Result {
                code: 4,
                message: "too many".into()
            })
        );

        // A message past the size accepted is refused before it is read.
        let (result, _) = search_answered_with(
            vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
            Duration::from_secs(5),
            false,
        );
        assert!(matches!(result, Err(WireError::Malformed(m)) if m.contains("larger than")));
    }
}
