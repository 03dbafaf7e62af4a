//! A small WebDAV client for one CalDAV calendar or CardDAV address book: list what the
//! collection holds (UID → ETag), create or update one resource per UID with ETag preconditions,
//! and create the collection on the first write when it is missing.
//!
//! It speaks only the few requests the stores need (PROPFIND, REPORT, MKCALENDAR, MKCOL, GET,
//! PUT) and never deletes anything. Listing never writes, so planning can call it. Passwords are
//! sent as HTTP Basic credentials and never appear in errors. TLS is set up by `crate::tls`, as
//! for every protocol: certificates are verified unless the caller sets `insecure` explicitly,
//! and `ca_file` names the roots to trust instead of the system's.
//!
//! Nothing waits on the server for ever and nothing it sends is taken whole on trust: every
//! request has a deadline to connect and one for each read (`timeout`), and a whole exchange
//! ten times that; an answer's body is read in pieces as it arrives, up to a bound
//! ([`MAX_BODY`]), whatever length the server announced. Requests that change nothing (PROPFIND,
//! REPORT, GET) are tried again when the connection fails or a deadline passes.
//!
//! Every PUT goes to a resource directly inside the collection: a UID becomes one plain path
//! segment ([`resource_name`]), and a resource another tool named is written to only when its
//! href (as the server listed it) is a direct child of the collection. A create the server
//! refuses (412, 409) is [`PutOutcome::ChangedAtDestination`] only when a listing shows the UID
//! there; otherwise it is the server's refusal of this item, an error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use quick_xml::events::Event;
use reqwest::{Method, StatusCode, Url};

use crate::items::throttle;

use super::store::{PutOutcome, first_uid, resource_name, same_content};

/// Where a collection is and how to log in. The password is already resolved from the plan's
/// secret; it is kept out of `Debug`.
#[derive(Clone)]
pub struct DavConfig {
    /// The collection's URL (`https://host/dav/alice/calendar/`); a trailing `/` is added.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A PEM file with extra root certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only when the plan says so for this connection.
    pub insecure: bool,
    /// The deadline to connect and for each read of an answer; a whole exchange may take ten
    /// times this.
    pub timeout: Duration,
}

impl Default for DavConfig {
    fn default() -> Self {
        DavConfig {
            url: String::new(),
            user: None,
            password: None,
            ca_file: None,
            insecure: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The plan file's default `timeout:`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer body read: a REPORT listing a whole calendar with its data fits many
/// times over (ten thousand events of a few kilobytes each are tens of megabytes).
pub const MAX_BODY: usize = 256 << 20;

/// How often a request that changes nothing is sent when the connection fails or times out.
const ATTEMPTS: u32 = 3;

impl std::fmt::Debug for DavConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Which kind of collection: decides the query, the media type and how a missing one is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    Calendar,
    AddressBook,
}

impl CollectionKind {
    fn ext(self) -> &'static str {
        match self {
            CollectionKind::Calendar => "ics",
            CollectionKind::AddressBook => "vcf",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            CollectionKind::Calendar => "text/calendar; charset=utf-8",
            CollectionKind::AddressBook => "text/vcard; charset=utf-8",
        }
    }
}

/// Why a WebDAV request failed (a precondition that does not hold is not an error: it is
/// [`PutOutcome::ChangedAtDestination`]).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DavError {
    #[error("invalid WebDAV setting: {0}")]
    Config(String),
    #[error("{method} {url} failed: {message}")]
    #[diagnostic(help(
        "check that the server is reachable and, for https, that its certificate is trusted (ca_file); a slow server may need a longer `timeout:`"
    ))]
    Request {
        method: String,
        url: String,
        message: String,
    },
    #[error("{method} {url} answered {status}{detail}")]
    Status {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url} answered XML that cannot be read: {message}")]
    Xml { url: String, message: String },
    /// The server answered 429 or 503 for longer than mailplan waits (see
    /// [`crate::items::throttle`]).
    #[error("{method} {url}: {message}")]
    Throttled {
        method: String,
        url: String,
        message: String,
    },
}

impl DavError {
    /// Whether the server refused this one item (400, 403 on the resource, 413, 415, 422…) rather
    /// than the whole collection being unusable: such an item is a bad item, reported and
    /// skipped, and the next item goes on. Authentication (401), a missing or forbidden
    /// collection, server errors and connection failures are not.
    pub fn is_item_rejected(&self) -> bool {
        match self {
            DavError::Status { method, status, .. } => {
                method == "PUT" && (400..500).contains(status) && !matches!(status, 401 | 404 | 407)
            }
            _ => false,
        }
    }
}

/// One CalDAV calendar or CardDAV address book.
#[derive(Debug)]
pub struct DavCollection {
    client: reqwest::Client,
    url: Url,
    user: Option<String>,
    password: Option<String>,
    kind: CollectionKind,
    /// UID → href of resources seen by `list`, so that a resource created by another tool under
    /// another name is updated in place rather than duplicated.
    hrefs: Mutex<BTreeMap<String, String>>,
    /// Set once the collection is known to exist (checked before the first write).
    ready: tokio::sync::OnceCell<()>,
    /// The deadline to connect and for each read, for errors to name.
    timeout: Duration,
}

impl DavCollection {
    pub fn new(config: &DavConfig, kind: CollectionKind) -> Result<Self, DavError> {
        let mut url = Url::parse(&config.url)
            .map_err(|e| DavError::Config(format!("`{}` is not a URL: {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DavError::Config(format!(
                "`{}` is not an http or https URL",
                config.url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DavError::Config(
                "put the login in `user`/`password`, not in the URL".into(),
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let tls = crate::tls::client_config(config.ca_file.as_deref(), config.insecure)
            .map_err(|e| DavError::Config(e.to_string()))?;
        let timeout = config.timeout.max(Duration::from_millis(1));
        let builder = reqwest::Client::builder()
            // reqwest takes the set-up itself, not a shared handle on it.
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .timeout(timeout.saturating_mul(10));
        let client = builder
            .build()
            .map_err(|e| DavError::Config(format!("cannot set up HTTP: {}", error_chain(&e))))?;
        Ok(DavCollection {
            client,
            url,
            user: config.user.clone(),
            password: config.password.clone(),
            kind,
            hrefs: Mutex::new(BTreeMap::new()),
            ready: tokio::sync::OnceCell::new(),
            timeout,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn request(&self, method: &str, url: &Url) -> reqwest::RequestBuilder {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let rb = self.client.request(method, url.clone());
        match &self.user {
            Some(user) => rb.basic_auth(user, self.password.as_deref()),
            None => rb,
        }
    }

    /// [`DavCollection::send_tries`], keeping to the server's throttling pause: an answer 429
    /// (Too Many Requests) or 503 (Service Unavailable) did nothing, so the request is sent again,
    /// a PUT too, once the pause (or the server's Retry-After) is over, until the server has
    /// throttled too long with no progress ([`DavError::Throttled`]).
    async fn send(
        &self,
        method: &str,
        url: &Url,
        rb: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), DavError> {
        let endpoint = crate::items::caps::parsed_url_endpoint(url).unwrap_or_default();
        let mut rb = rb;
        loop {
            throttle::wait(&endpoint).await;
            let again = rb.try_clone();
            let (status, headers, body) = self.send_tries(method, url, rb).await?;
            if !matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                throttle::progress(&endpoint);
                return Ok((status, headers, body));
            }
            let snippet: String = body.trim().chars().take(200).collect();
            let text = if snippet.is_empty() {
                format!("{method} answered {status}")
            } else {
                format!("{method} answered {status}: {snippet}")
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let asked = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| throttle::retry_after(v, now));
            if let Err(message) = throttle::throttled(&endpoint, &text, asked) {
                return Err(DavError::Throttled {
                    method: method.to_string(),
                    url: url.to_string(),
                    message,
                });
            }
            match again {
                Some(next) => rb = next,
                // A body that cannot be sent again (never the case for mailplan's): the answer
                // stands.
                None => return Ok((status, headers, body)),
            }
        }
    }

    /// Sends a request and reads its answer, at most [`MAX_BODY`] bytes of it. A request that
    /// changes nothing is sent again (up to [`ATTEMPTS`] times) when the connection fails or a
    /// deadline passes; a PUT, MKCOL or MKCALENDAR is sent once.
    async fn send_tries(
        &self,
        method: &str,
        url: &Url,
        rb: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), DavError> {
        let idempotent = matches!(method, "GET" | "PROPFIND" | "REPORT");
        let mut request = Some(rb);
        let mut attempt = 0;
        let mut last = String::new();
        while let Some(rb) = request.take() {
            attempt += 1;
            // A body given as bytes or text can always be cloned (`None` only for a stream).
            let again = if idempotent && attempt < ATTEMPTS {
                rb.try_clone()
            } else {
                None
            };
            match self.send_once(rb).await {
                Ok(answer) => return Ok(answer),
                Err(Sent::Transient(message)) => {
                    last = message;
                    request = again;
                    if request.is_some() {
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                }
                Err(Sent::Failed(message)) => last = message,
            }
        }
        Err(DavError::Request {
            method: method.to_string(),
            url: url.to_string(),
            message: if attempt > 1 {
                format!("{last} (tried {attempt} times)")
            } else {
                last
            },
        })
    }

    async fn send_once(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), Sent> {
        let secs = self.timeout.as_secs_f64();
        let sort = |e: reqwest::Error, awaited: &str| {
            if e.is_timeout() {
                Sent::Transient(format!(
                    "no answer in time while waiting for {awaited} ({secs} s for each read, {} s for the whole request: the `timeout:` setting)",
                    secs * 10.0
                ))
            } else if e.is_connect() || e.is_request() || e.is_body() {
                Sent::Transient(error_chain(&e))
            } else {
                Sent::Failed(error_chain(&e))
            }
        };
        let mut resp = rb
            .send()
            .await
            .map_err(|e| sort(e, "the connection and the answer's headers"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| sort(e, "the rest of the answer's body"))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Sent::Failed(format!(
                    "the answer is larger than the {} MiB accepted",
                    MAX_BODY >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }

    fn status_error(method: &str, url: &Url, status: StatusCode, body: &str) -> DavError {
        let snippet: String = body.trim().chars().take(200).collect();
        DavError::Status {
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            detail: if snippet.is_empty() {
                String::new()
            } else {
                format!(": {snippet}")
            },
        }
    }

    /// UID → ETag of every resource in the collection; a collection that does not exist yet is
    /// empty. Reads the UIDs from the resources themselves (REPORT with the data), so resources
    /// named by another tool are recognised.
    pub async fn list(&self) -> Result<BTreeMap<String, String>, DavError> {
        let mut out = BTreeMap::new();
        let mut hrefs = BTreeMap::new();
        for r in self.resources().await? {
            let Some(uid) = first_uid(&r.data) else {
                continue;
            };
            // Two resources with one UID: the first by href counts, on every run.
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry(uid.clone()) {
                e.insert(r.etag);
                hrefs.insert(uid, r.href);
            }
        }
        if let Ok(mut map) = self.hrefs.lock() {
            map.extend(hrefs);
        }
        Ok(out)
    }

    /// Every resource of the collection with its ETag and content, sorted by href; empty when
    /// the collection does not exist. Never writes.
    pub async fn resources(&self) -> Result<Vec<Resource>, DavError> {
        let body = match self.kind {
            CollectionKind::Calendar => concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">"#,
                r#"<D:prop><D:getetag/><C:calendar-data/></D:prop>"#,
                r#"<C:filter><C:comp-filter name="VCALENDAR"/></C:filter>"#,
                r#"</C:calendar-query>"#
            ),
            CollectionKind::AddressBook => concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">"#,
                r#"<D:prop><D:getetag/><CR:address-data/></D:prop>"#,
                r#"</CR:addressbook-query>"#
            ),
        };
        let rb = self
            .request("REPORT", &self.url)
            .header("Depth", "1")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body);
        let (status, _, text) = self.send("REPORT", &self.url, rb).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if status != StatusCode::MULTI_STATUS {
            return Err(Self::status_error("REPORT", &self.url, status, &text));
        }
        let responses = parse_multistatus(&text).map_err(|message| DavError::Xml {
            url: self.url.to_string(),
            message,
        })?;
        let mut out: Vec<Resource> = responses
            .into_iter()
            .filter_map(|r| {
                let (Some(etag), Some(data)) = (r.etag, r.data) else {
                    return None;
                };
                let href = self.url.join(&r.href).ok()?.to_string();
                Some(Resource { href, etag, data })
            })
            .collect();
        out.sort_by(|a, b| a.href.cmp(&b.href));
        Ok(out)
    }

    /// The vCard versions an address book says it takes (RFC 6352 `supported-address-data`),
    /// e.g. `["3.0", "4.0"]`; empty when the server does not say (Radicale does not) or the
    /// collection does not exist yet. Never writes.
    pub async fn supported_address_versions(&self) -> Result<Vec<String>, DavError> {
        let rb = self
            .request("PROPFIND", &self.url)
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<D:propfind xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">"#,
                r#"<D:prop><CR:supported-address-data/></D:prop></D:propfind>"#
            ));
        let (status, _, text) = self.send("PROPFIND", &self.url, rb).await?;
        match status {
            StatusCode::MULTI_STATUS => {
                parse_address_data_versions(&text).map_err(|message| DavError::Xml {
                    url: self.url.to_string(),
                    message,
                })
            }
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            _ => Err(Self::status_error("PROPFIND", &self.url, status, &text)),
        }
    }

    /// Whether `url` names a resource directly inside the collection (same server, the
    /// collection's path, then one segment with no encoded slash): the only place a PUT goes.
    fn is_member(&self, url: &Url) -> bool {
        let Some(rest) = url.path().strip_prefix(self.url.path()) else {
            return false;
        };
        let lower = rest.to_ascii_lowercase();
        url.origin() == self.url.origin()
            && url.query().is_none()
            && !rest.is_empty()
            && !rest.contains('/')
            && !lower.contains("%2f")
            && !lower.contains("%5c")
            && rest != ".."
            && rest != "."
    }

    /// The resource of a UID: where the last listing found it when that is inside the
    /// collection, else the one [`resource_name`] gives it.
    fn href_for(&self, uid: &str) -> Result<Url, DavError> {
        let known = self.hrefs.lock().ok().and_then(|m| m.get(uid).cloned());
        if let Some(url) = known.and_then(|h| Url::parse(&h).ok())
            && self.is_member(&url)
        {
            return Ok(url);
        }
        let url = self
            .url
            .join(&resource_name(uid, self.kind.ext()))
            .map_err(|e| DavError::Config(format!("no URL for UID `{uid}`: {e}")))?;
        if !self.is_member(&url) {
            return Err(DavError::Config(format!(
                "the resource for UID `{uid}` would be outside `{}`",
                self.url
            )));
        }
        Ok(url)
    }

    /// Writes one resource. `existing` `None`: create only (`If-None-Match: *`); `Some(etag)`:
    /// update only that version (`If-Match`). A destination that already holds the same content
    /// gives [`PutOutcome::Unchanged`] and is not written.
    pub async fn put(
        &self,
        uid: &str,
        text: &str,
        existing: Option<&str>,
    ) -> Result<PutOutcome, DavError> {
        self.ready
            .get_or_try_init(|| self.ensure_collection())
            .await?;
        let url = self.href_for(uid)?;
        if existing.is_some() && self.holds(&url, text).await? {
            return Ok(PutOutcome::Unchanged);
        }
        let mut rb = self
            .request("PUT", &url)
            .header("Content-Type", self.kind.media_type())
            .body(text.to_string());
        rb = match existing {
            None => rb.header("If-None-Match", "*"),
            Some(etag) => rb.header("If-Match", etag),
        };
        let (status, _, body) = self.send("PUT", &url, rb).await?;
        match status {
            // Servers differ in 200/201/204 for an update (Radicale answers 201): the
            // precondition the caller chose says which it was.
            StatusCode::CREATED | StatusCode::OK | StatusCode::NO_CONTENT => {
                Ok(if existing.is_some() {
                    PutOutcome::Updated
                } else {
                    PutOutcome::Created
                })
            }
            // 412: the precondition failed; 409: the server holds this UID in another resource
            // (or has no collection to put it in).
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                if existing.is_some() {
                    return Ok(PutOutcome::ChangedAtDestination);
                }
                self.refused_create(uid, text, &url, status, &body).await
            }
            StatusCode::NOT_FOUND if existing.is_some() => Ok(PutOutcome::ChangedAtDestination),
            _ => Err(Self::status_error("PUT", &url, status, &body)),
        }
    }

    /// Explains a create the server refused with 412 or 409: it is already there with this
    /// content ([`PutOutcome::Unchanged`]), or an item with this UID is there with other content
    /// ([`PutOutcome::ChangedAtDestination`]; the listing finds it also when another tool named
    /// it). Anything else (the resource holds another UID, the collection is gone) is the server's
    /// refusal of this item, an error that names the status and what was found.
    async fn refused_create(
        &self,
        uid: &str,
        text: &str,
        url: &Url,
        status: StatusCode,
        body: &str,
    ) -> Result<PutOutcome, DavError> {
        let here = self.fetch(url).await?;
        if here.as_deref().is_some_and(|h| same_content(h, text)) {
            return Ok(PutOutcome::Unchanged);
        }
        if self.list().await?.contains_key(uid) {
            let other = self.href_for(uid)?;
            if other != *url && self.holds(&other, text).await? {
                return Ok(PutOutcome::Unchanged);
            }
            return Ok(PutOutcome::ChangedAtDestination);
        }
        let found = match here.as_deref().map(first_uid) {
            Some(Some(other)) => format!("the resource holds another item (UID {other})"),
            Some(None) => "the resource holds something else".to_string(),
            None => "no item with this UID is in the collection".to_string(),
        };
        let snippet: String = body.trim().chars().take(200).collect();
        Err(DavError::Status {
            method: "PUT".into(),
            url: url.to_string(),
            status: status.as_u16(),
            detail: if snippet.is_empty() {
                format!(" ({found})")
            } else {
                format!(": {snippet} ({found})")
            },
        })
    }

    /// The text of the resource at `url`, `None` when there is none.
    async fn fetch(&self, url: &Url) -> Result<Option<String>, DavError> {
        let (status, _, body) = self.send("GET", url, self.request("GET", url)).await?;
        match status {
            StatusCode::OK => Ok(Some(body)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            _ => Err(Self::status_error("GET", url, status, &body)),
        }
    }

    /// Whether the resource at `url` exists with the same content as `text`.
    async fn holds(&self, url: &Url, text: &str) -> Result<bool, DavError> {
        Ok(self
            .fetch(url)
            .await?
            .is_some_and(|body| same_content(&body, text)))
    }

    /// Creates the collection when it does not exist (MKCALENDAR, or an extended MKCOL for an
    /// address book), and its parent first when the server asks for it (Radicale creates a
    /// user's principal collection only on that user's own first request).
    async fn ensure_collection(&self) -> Result<(), DavError> {
        let rb = self
            .request("PROPFIND", &self.url)
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#);
        let (status, _, body) = self.send("PROPFIND", &self.url, rb).await?;
        match status {
            StatusCode::MULTI_STATUS | StatusCode::OK => return Ok(()),
            StatusCode::NOT_FOUND => {}
            _ => return Err(Self::status_error("PROPFIND", &self.url, status, &body)),
        }
        for attempt in 0..2 {
            let (method, xml) = match self.kind {
                CollectionKind::Calendar => (
                    "MKCALENDAR",
                    concat!(
                        r#"<?xml version="1.0" encoding="utf-8"?>"#,
                        r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">"#,
                        r#"<D:set><D:prop><C:supported-calendar-component-set>"#,
                        r#"<C:comp name="VEVENT"/><C:comp name="VTODO"/><C:comp name="VJOURNAL"/>"#,
                        r#"</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#
                    ),
                ),
                CollectionKind::AddressBook => (
                    "MKCOL",
                    concat!(
                        r#"<?xml version="1.0" encoding="utf-8"?>"#,
                        r#"<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">"#,
                        r#"<D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/>"#,
                        r#"</D:resourcetype></D:prop></D:set></D:mkcol>"#
                    ),
                ),
            };
            let rb = self
                .request(method, &self.url)
                .header("Content-Type", "application/xml; charset=utf-8")
                .body(xml);
            let (status, _, body) = self.send(method, &self.url, rb).await?;
            match status {
                s if s.is_success() => return Ok(()),
                // 405: it exists already (created concurrently).
                StatusCode::METHOD_NOT_ALLOWED => return Ok(()),
                StatusCode::CONFLICT if attempt == 0 => {
                    let parent = self.url.join("..").map_err(|e| {
                        DavError::Config(format!("no parent for `{}`: {e}", self.url))
                    })?;
                    let (ps, _, pbody) = self
                        .send("MKCOL", &parent, self.request("MKCOL", &parent))
                        .await?;
                    if !(ps.is_success() || ps == StatusCode::METHOD_NOT_ALLOWED) {
                        return Err(Self::status_error("MKCOL", &parent, ps, &pbody));
                    }
                }
                _ => return Err(Self::status_error(method, &self.url, status, &body)),
            }
        }
        Err(DavError::Config(format!(
            "cannot create the collection `{}`",
            self.url
        )))
    }
}

/// How one attempt at a request failed: worth another try (the connection failed, a deadline
/// passed) or not.
enum Sent {
    Transient(String),
    Failed(String),
}

/// The error and its causes on one line (reqwest's top-level message alone hides why a TLS
/// handshake failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The `version` attributes of `address-data-type` elements whose content type is vCard.
fn parse_address_data_versions(xml: &str) -> Result<Vec<String>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e)
                if e.local_name().as_ref() == b"address-data-type" =>
            {
                let mut content_type = String::from("text/vcard");
                let mut version = None;
                for a in e.attributes().flatten() {
                    let value = String::from_utf8_lossy(&a.value).into_owned();
                    match a.key.local_name().as_ref() {
                        b"content-type" => content_type = value,
                        b"version" => version = Some(value),
                        _ => {}
                    }
                }
                if content_type.eq_ignore_ascii_case("text/vcard") {
                    out.extend(version);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One resource of a collection, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Absolute URL.
    pub href: String,
    pub etag: String,
    /// The iCalendar or vCard text.
    pub data: String,
}

/// One `<response>` of a multistatus: the href and, from its 200 propstat, the ETag and the data.
#[derive(Debug, Default, PartialEq)]
struct Response {
    href: String,
    etag: Option<String>,
    data: Option<String>,
}

/// Reads a WebDAV multistatus by local names (prefixes differ from server to server).
fn parse_multistatus(xml: &str) -> Result<Vec<Response>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<Response> = None;
    // Props of the propstat being read, kept only when its status is 200.
    let mut etag: Option<String> = None;
    let mut data: Option<String> = None;
    let mut status = String::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "response" => current = Some(Response::default()),
                    "propstat" => {
                        etag = None;
                        data = None;
                        status.clear();
                    }
                    _ => {}
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => text.push_str(&crate::xml_text::reference(&r)?),
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(String::as_str).unwrap_or("");
                match name.as_str() {
                    "href" if parent == "response" => {
                        if let Some(r) = current.as_mut() {
                            r.href = text.trim().to_string();
                        }
                    }
                    "getetag" => etag = Some(text.trim().to_string()),
                    "calendar-data" | "address-data" => data = Some(text.clone()),
                    "status" if parent == "propstat" => status = text.trim().to_string(),
                    "propstat" if status.split_whitespace().nth(1) == Some("200") => {
                        if let Some(r) = current.as_mut() {
                            r.etag = r.etag.take().or(etag.take());
                            r.data = r.data.take().or(data.take());
                        }
                    }
                    "response" => out.extend(current.take()),
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_with_prefixes_entities_and_failed_propstats() {
        let xml = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
 <d:response><d:href>/alice/cal/</d:href>
  <d:propstat><d:prop><d:getetag/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
 </d:response>
 <d:response><d:href>/alice/cal/a%40b.ics</d:href>
  <d:propstat><d:prop><d:getetag>"e1"</d:getetag>
   <c:calendar-data>BEGIN:VCALENDAR&#13;
BEGIN:VEVENT&#13;
UID:a@b &amp; c&#13;
END:VEVENT&#13;
END:VCALENDAR</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
 </d:response>
</d:multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].etag, None);
        assert_eq!(r[1].href, "/alice/cal/a%40b.ics");
        assert_eq!(r[1].etag.as_deref(), Some("\"e1\""));
        assert_eq!(
            first_uid(r[1].data.as_deref().unwrap()).as_deref(),
            Some("a@b & c")
        );
    }

    #[test]
    fn supported_address_data_versions() {
        let xml = r#"<?xml version="1.0"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:response>
<D:href>/home/a/book/</D:href><D:propstat><D:prop><C:supported-address-data>
<C:address-data-type content-type="text/vcard" version="4.0"/>
<C:address-data-type content-type="text/vcard" version="3.0"/>
<C:address-data-type content-type="application/vcard+json" version="4.0"/>
</C:supported-address-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response></D:multistatus>"#;
        assert_eq!(parse_address_data_versions(xml).unwrap(), ["3.0", "4.0"]);
        assert!(
            parse_address_data_versions("<multistatus/>")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn puts_go_only_directly_inside_the_collection() {
        let c = DavConfig {
            url: "http://127.0.0.1:1/alice/cal".into(),
            ..Default::default()
        };
        let d = DavCollection::new(&c, CollectionKind::Calendar).unwrap();
        let base = "http://127.0.0.1:1/alice/cal/";
        for uid in ["a/b", "../../bob/cal/x", "%2F", "plain@acme.com", "?q=1#f"] {
            let url = d.href_for(uid).unwrap();
            assert_eq!(
                url.as_str(),
                format!("{base}{}", resource_name(uid, "ics")),
                "{uid}"
            );
        }
        // Where a listing found a UID counts only when it is directly inside the collection.
        let listed = [
            (
                "other",
                "http://127.0.0.1:1/alice/cal/named-by-another-tool.ics",
            ),
            ("bob", "http://127.0.0.1:1/bob/cal/bob.ics"),
            ("deeper", "http://127.0.0.1:1/alice/cal/sub/deeper.ics"),
            ("slash", "http://127.0.0.1:1/alice/cal/a%2Fslash.ics"),
            ("host", "http://elsewhere:1/alice/cal/host.ics"),
            ("query", "http://127.0.0.1:1/alice/cal/query.ics?x=1"),
        ];
        if let Ok(mut m) = d.hrefs.lock() {
            for (uid, href) in listed {
                m.insert(uid.into(), href.into());
            }
        }
        assert_eq!(
            d.href_for("other").unwrap().as_str(),
            "http://127.0.0.1:1/alice/cal/named-by-another-tool.ics"
        );
        for uid in ["bob", "deeper", "slash", "host", "query"] {
            assert_eq!(
                d.href_for(uid).unwrap().as_str(),
                format!("{base}{uid}.ics"),
                "{uid}"
            );
        }
    }

    #[test]
    fn config_rejects_credentials_in_url_and_hides_password() {
        let c = DavConfig {
            url: "http://u:p@127.0.0.1/x".into(),
            ..Default::default()
        };
        assert!(DavCollection::new(&c, CollectionKind::Calendar).is_err());
        let c = DavConfig {
            url: "http://127.0.0.1/x".into(),
            password: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let d = DavCollection::new(&c, CollectionKind::Calendar).unwrap();
        assert_eq!(d.url().as_str(), "http://127.0.0.1/x/");
    }
}
